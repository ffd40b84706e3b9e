"""Tests of scripts/bench_report.py on small results dirs shaped like bench.sh's output.

Run: python3 -m unittest discover -s scripts/tests
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import unittest
import xml.dom.minidom
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "bench_report.py"


def write(d: Path, name: str, doc: dict) -> None:
    (d / name).write_text(json.dumps(doc))


def run(d: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPORT), str(d)], capture_output=True, text=True)


def primes_row(gen: str, backend: str, threads: int, median: float, ratio: float | None) -> dict:
    return {"generator": gen, "backend": backend, "threads": threads, "samples": 2, "wall_median": median,
            "wall_mean": median, "wall_min": median, "wall_max": median,
            "ratio_vs_library_wall_median": ratio, "ratio_vs_library_wall_mean": ratio}


class BenchReport(unittest.TestCase):
    def full_dir(self, d: Path, onboarding_ms: float) -> None:
        write(d, "protocol-native-gmp.json", {"suite": "protocol", "backend": "rug (GMP)", "rows": [
            {"key": "full_sign_2_parties", "label": "x", "seconds": 1.6, "samples": 5}]})
        write(d, "protocol-wasm.json", {"suite": "protocol", "platform": "wasm-chromium", "rows": [
            {"key": "full_sign_2_parties", "label": "x", "seconds": 17.0, "samples": 1}]})
        write(d, "presign.json", {"client_backend": "num-bigint", "profile": "release",
                                  "full_sign_gateway": {"p50_ms": 2600.0, "p95_ms": 2900.0, "n": 5},
                                  "full_sign_library_two_threads": {"p50_ms": 2000.0, "p95_ms": 2100.0, "n": 5},
                                  "ratio_gateway_vs_library_two_threads_p50": 1.3,
                                  "ratio_gateway_vs_library_single_thread_p50": 0.6})
        write(d, "browser-presign.json", {"suite": "presign-web", "n": 20, "online_ms": {"p50": 17.5, "p95": 20.2},
                                          "eip712_online_ms": {"p50": 21.5, "p95": 24.0},
                                          "rpc_ms": {"p50": 10.7, "p95": 12.9}})
        write(d, "primes.json", {"benchmark": "safe_primes", "bits": 1536, "rows": [
            primes_row("ours", "num-bigint", 1, 2.3, 9.5), primes_row("library", "num-bigint", 1, 22.0, None),
            primes_row("ours", "rug", 1, 2.1, 4.0), primes_row("library", "rug", 1, 8.4, None)]})
        write(d, "browser-primes.json", {"suite": "primes-web", "prepare": [
            {"workers": 1, "wallMs": 43765, "candidates": 2002427, "ratePerSec": 45849}],
            "onboarding": {"auxInfoMs": onboarding_ms - 150, "keygenMs": 150, "createTotalMs": onboarding_ms}})
        write(d, "browser-onboarding.json", {"suite": "onboarding-web", "aux_info_ms": 130_000, "dkg_ms": 180,
                                             "create_total_ms": 131_000, "renderer_peak_rss_mib": 212.5,
                                             "page_long_tasks": {"count": 3, "longest_ms": 260, "over_200ms": 1},
                                             "full_sign_ms": {"p50": 9800, "p95": 11000, "n": 5},
                                             "wasm_bytes": 2105455, "wasm_gzip_bytes": 791252})
        write(d, "gateway.json", {"suite": "gateway", "delivered_per_sec": 4499.3, "latency_p99_ms": 0.71})
        write(d, "mystery.json", {"suite": "mystery", "nested": {"a": 1.5}})

    def test_targets_are_judged_against_their_goals(self):
        with tempfile.TemporaryDirectory() as t:
            d = Path(t)
            self.full_dir(d, onboarding_ms=55_000)
            p = run(d)
            self.assertEqual(p.returncode, 0, p.stderr)
            md = (d / "report.md").read_text()
            lines = {ln.split(" | ")[0].lstrip("| "): ln for ln in md.splitlines() if " | " in ln}
            self.assertIn("| met |", lines["online signing from the pool, browser <-> cosigner, p50"])
            self.assertIn("**missed**", lines["EIP-712 online signing from the pool, browser <-> cosigner, p50"])
            self.assertIn("**missed**", lines["full signing over the gateway / in-process library (p50, 2 threads)"])
            self.assertIn("| met |", lines["safe primes, ours vs library, num-bigint, 1 thread (median)"])
            self.assertIn("**missed**", lines["safe primes, ours vs library, rug, 1 thread (median)"])
            self.assertIn("| met |", lines["browser onboarding (aux info + DKG), prepared primes"])
            self.assertIn("| met |", lines["account creation after enrollment (createWallet, DKG only), browser"])
            self.assertIn("**missed**", lines["longest page task while a wallet is created (the UI never blocks)"])
            self.assertIn("| renderer peak RSS (page + protocol Worker) | 212.5 MiB |", md)
            self.assertIn("2,105,455 B / 791,252 B", md)
            # side by side: the GMP and WASM columns of one row
            self.assertRegex(md, r"\| full signing, 2 parties \| 1\.60 s \| n/a \| 17\.00 s \|")
            self.assertIn("| cosigner round trip | 10.7 ms | 12.9 ms |", md.replace("|   ", "| "))
            self.assertIn("| nested.a | 1.500 |", md)  # an unknown suite still shows up
            for svg in ("report.svg", "targets.svg"):
                xml.dom.minidom.parse(str(d / svg))  # well-formed ("<=" escaped)

    def test_missing_suites_are_reported_not_measured(self):
        with tempfile.TemporaryDirectory() as t:
            d = Path(t)
            write(d, "gateway.json", {"suite": "gateway", "delivered_per_sec": 10.0})
            p = run(d)
            self.assertEqual(p.returncode, 0, p.stderr)
            md = (d / "report.md").read_text()
            self.assertEqual(md.count("not measured"), 10)
            self.assertFalse((d / "targets.svg").exists())

    def test_scale_section_and_chart(self):
        with tempfile.TemporaryDirectory() as t:
            d = Path(t)
            write(d, "scale.json", {
                "suite": "scale", "setup": {"clients": 4, "wallets": 2, "wallet_creation_seconds": 30.0,
                                            "presignatures_filled": 6, "refill_seconds": 12.0},
                "signings": {"total": 6, "pool": 4, "full": 2, "signed": 6, "failed": 0, "seconds": 9.5,
                             "throughput_per_second": 0.63, "through_a": 2, "through_b": 4},
                "latency_pool": {"p50_ms": 40.0, "p95_ms": 90.0, "max_ms": 95.0, "n": 4},
                "latency_full": {"p50_ms": 4000.0, "p95_ms": 7000.0, "max_ms": 7000.0, "n": 2},
                "kill": {"at_seconds": 3.2, "in_flight_pool": 1, "in_flight_full": 1},
                "retries": {"total": 2, "caused_by_kill": 2, "by_code": {"cosigner_unavailable": 2}},
                "store": {"taken_during_run": 5, "taken_by_pool_signatures": 4, "taken_without_signature": 1},
                "machine": {"cores": 2, "cpu_busy_percent": 97.0, "load_average_before": "0.5 0.4 0.3"},
                "checks_passed": True, "problems": [],
                "timeline": [[0, 0.05, "pool", 1, True], [0, 3.3, "pool", 2, True], [0, 1.0, "pool", 1, True],
                             [0.1, 2.0, "pool", 1, True], [0, 4.0, "full", 1, True], [0, 9.5, "full", 2, True]]})
            p = run(d)
            self.assertEqual(p.returncode, 0, p.stderr)
            md = (d / "report.md").read_text()
            self.assertIn("## Scale: 2 cosigners on PostgreSQL", md)
            self.assertIn("**6 signed, 0 failed**", md)
            self.assertIn("| from the pool | 40.0 ms | 90.0 ms | 95.0 ms | 4 |", md)
            self.assertIn("cosigner_unavailable 2", md)
            svg = (d / "scale.svg").read_text()
            xml.dom.minidom.parseString(svg)
            self.assertIn("SIGKILL A", svg)
            self.assertEqual(svg.count("<polyline"), 2)

    def test_empty_dir_and_bad_json(self):
        with tempfile.TemporaryDirectory() as t:
            d = Path(t)
            self.assertEqual(run(d).returncode, 1)
            (d / "broken.json").write_text("{not json")
            write(d, "gateway.json", {"suite": "gateway"})
            p = run(d)
            self.assertEqual(p.returncode, 0)
            self.assertIn("skipping broken.json", p.stderr)


if __name__ == "__main__":
    unittest.main()
