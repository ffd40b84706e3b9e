#!/usr/bin/env python3
"""Collects the JSON files written by scripts/bench.sh into one report.

Usage: scripts/bench_report.py <results-dir>

Reads every `*.json` in the directory (each has a "suite" field), writes
`results.json` (everything, merged), `report.md` (the side-by-side tables) and
`report.svg` (a log-scale bar chart of the protocol costs per backend), `targets.svg`
(each performance target: measured relative to its goal), `scale.svg` (the scale
benchmark's signings completed over time, the cosigner kill marked), and prints the
markdown. Standard library only.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

PROTOCOL_ROWS = [
    ("aux_info_3_parties", "aux info, 3 parties (fixture primes)"),
    ("aux_info_1_party", "aux info, 1 party (its own work)"),
    ("dkg_3_parties", "DKG 2-of-3, 3 parties"),
    ("full_sign_2_parties", "full signing, 2 parties"),
    ("presign_2_parties", "presignature, 2 parties"),
    ("online_sign_2_parties", "signing from a presignature"),
]
BACKENDS = [
    ("native-gmp", "native GMP"),
    ("native-rust", "native pure Rust"),
    ("wasm-chromium", "WASM, headless Chromium"),
]
COLORS = {"native-gmp": "#2b6cb0", "native-rust": "#dd6b20", "wasm-chromium": "#38a169"}


def fmt_secs(s: float | None) -> str:
    if s is None:
        return "n/a"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def backend_key(doc: dict) -> str:
    if doc.get("platform") == "wasm-chromium":
        return "wasm-chromium"
    b = str(doc.get("backend", "")).lower()
    return "native-gmp" if ("rug" in b or "gmp" in b) else "native-rust"


def load(dirpath: Path) -> list[dict]:
    docs = []
    for p in sorted(dirpath.glob("*.json")):
        if p.name == "results.json":
            continue
        try:
            doc = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            print(f"warning: skipping {p.name}: {e}", file=sys.stderr)
            continue
        doc["_file"] = p.name
        docs.append(doc)
    return docs


def protocol_table(docs: list[dict]) -> tuple[list[str], dict]:
    grid: dict[str, dict[str, float]] = {}
    for d in docs:
        if d.get("suite") != "protocol":
            continue
        b = backend_key(d)
        for r in d.get("rows", []):
            grid.setdefault(r["key"], {})[b] = r["seconds"]
    if not grid:
        return [], grid
    lines = [
        "## Protocol cost (all participating parties' work in one thread)",
        "",
        "| operation | " + " | ".join(label for _, label in BACKENDS) + " |",
        "|---|" + "---:|" * len(BACKENDS),
    ]
    for key, label in PROTOCOL_ROWS:
        if key not in grid:
            continue
        cells = [fmt_secs(grid[key].get(b)) for b, _ in BACKENDS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines, grid


def kind(doc: dict) -> str:
    """What a results file holds: its `suite` field, else its `benchmark` field (the
    safe-primes bench), else its file name (`presign.json` from presign-bench)."""
    return doc.get("suite") or doc.get("benchmark") or Path(doc["_file"]).stem


def find(docs: list[dict], k: str) -> dict | None:
    return next((d for d in docs if kind(d) == k), None)


def fmt_ms(v) -> str:
    return "n/a" if v is None else fmt_secs(v / 1000)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def presign_native(d: dict) -> list[str]:
    """presign-bench: the real gateway and cosigner next to the in-process library."""
    measured = [("full_sign_gateway", "full signing over the gateway, device + cosigner"),
                ("full_sign_library_two_threads", "full signing, in-process library, 2 threads"),
                ("full_sign_library_single_thread", "full signing, in-process library, 1 thread"),
                ("online_sign_pool_wall", "online signing from the pool, device + cosigner")]
    rows = [[label, fmt_ms(m.get("p50_ms")), fmt_ms(m.get("p95_ms")), str(m.get("n", "?"))]
            for key, label in measured for m in [d.get(key) or {}]]
    refill = d.get("refill") or {}
    lines = ["", "## End to end over the real gateway and cosigner (native, release)", "",
             f"Client backend: {d.get('client_backend', '?')}; cosigner: GMP.", ""]
    lines += table(["measurement", "p50", "p95", "n"], rows)
    r2, r1 = d.get("ratio_gateway_vs_library_two_threads_p50"), d.get("ratio_gateway_vs_library_single_thread_p50")
    if r2 is not None:
        lines += ["", f"Overhead ratio gateway / in-process (p50): **{r2:.2f}x** vs 2 threads, "
                      f"{r1:.2f}x vs 1 thread."]
    if refill:
        lines += [f"Refill: {refill.get('generated')} presignatures in {refill.get('seconds', 0):.1f} s "
                  f"({refill.get('presignatures_per_second', 0):.2f}/s, {refill.get('concurrency')} lanes)."]
    if d.get("wallet_creation_seconds") is not None:
        lines += [f"Wallet creation (aux info + DKG, dev primes): {d['wallet_creation_seconds']:.1f} s."]
    return lines


def psbt(d: dict) -> list[str]:
    """psbt-bench: PSBTs signed and finalized over the real gateway and cosigner."""
    measured = [("psbt_1_input_full", "1-input PSBT, full signing"),
                ("psbt_5_inputs_full", "5-input PSBT, full signing"),
                ("psbt_1_input_pool", "1-input PSBT, from the pool"),
                ("psbt_5_inputs_pool", "5-input PSBT, from the pools")]
    rows = [[label, fmt_ms(m.get("p50_ms")), fmt_ms(m.get("p95_ms")), str(m.get("n", "?"))]
            for key, label in measured for m in [d.get(key) or {}]]
    lines = ["", "## Bitcoin PSBTs over the real gateway and cosigner (native, release)", "",
             f"Client backend: {d.get('client_backend', '?')}; cosigner: GMP; every transaction "
             "checked by libbitcoinconsensus.", ""]
    return lines + table(["PSBT signed and finalized", "p50", "p95", "n"], rows)


def presign_web(d: dict) -> list[str]:
    parts = [("online_ms", "online signing, device-measured"), ("page_ms", "signMessage() seen by the page"),
             ("eip712_online_ms", "EIP-712 online signing, device-measured"),
             ("eip712_page_ms", "signTypedData() seen by the page"),
             ("take_ms", "  IndexedDB take (strict)"), ("decrypt_ms", "  decrypt"),
             ("partial_ms", "  wasm partial signature"), ("auth_ms", "  request signature"),
             ("rpc_ms", "  cosigner round trip"), ("combine_ms", "  combine + verify")]
    rows = [[label, fmt_ms((d.get(k) or {}).get("p50")), fmt_ms((d.get(k) or {}).get("p95"))]
            for k, label in parts if k in d]
    who = (f"HD account at {d['derivation_path']}" if d.get("kind") == "hd"
           else "independent account at its root")
    lines = ["", f"## Browser <-> cosigner over the local gateway (headless Chromium, presignature pool, {who})",
             "", f"n = {d.get('n', '?')} signatures."]
    lines += [""] + table(["measurement", "p50", "p95"], rows)
    if d.get("refill_per_presignature_ms") is not None:
        lines += ["", f"Refill in the presign Worker: {d['refill_per_presignature_ms'] / 1000:.1f} s per presignature."]
    return lines


def primes_native(d: dict) -> list[str]:
    rows = []
    for r in d.get("rows", []):
        rmed, rmean = r.get("ratio_vs_library_wall_median"), r.get("ratio_vs_library_wall_mean")
        rows.append([f"{r.get('generator')} ({r.get('backend')})", str(r.get("threads")), str(r.get("samples")),
                     fmt_secs(r.get("wall_median")), fmt_secs(r.get("wall_mean")),
                     fmt_secs(r.get("wall_min")), fmt_secs(r.get("wall_max")),
                     "-" if rmed is None else f"{rmed:.1f}x", "-" if rmean is None else f"{rmean:.1f}x"])
    lines = ["", f"## Safe primes ({d.get('bits', '?')} bits): ours vs the library's generator", "",
             f"Seconds per safe prime (wall). Library: {d.get('library_function', '?')}. "
             "Ratio = library / ours on the same backend (multi-thread rows vs the library's one thread).", ""]
    return lines + table(["generator", "threads", "n", "median", "mean", "min", "max",
                          "ratio (median)", "ratio (mean)"], rows)


def primes_web(d: dict) -> list[str]:
    lines = ["", "## Browser: safe primes in Web Workers, then onboarding with them", ""]
    rows = [[str(p.get("workers")), fmt_secs(p.get("wallMs", 0) / 1000), f"{p.get('candidates', 0):,}",
             f"{p.get('ratePerSec', 0):,.0f}"] for p in d.get("prepare", [])]
    if rows:
        lines += table(["prime Workers", "4 primes, wall", "candidates", "candidates/s"], rows)
    ob = d.get("onboarding")
    if ob:
        lines += ["", "Onboarding with prepared primes (createWallet):", ""]
        steps = [("primesMs", "load the prepared primes"), ("auxInfoMs", "aux info (3 parties, device in wasm)"),
                 ("keygenMs", "DKG"), ("createTotalMs", "createWallet() total")]
        lines += table(["step", "time"], [[label, fmt_secs(ob[k] / 1000)] for k, label in steps if k in ob])
    return lines


def onboarding_web(d: dict) -> list[str]:
    """onboarding-bench.spec.ts: creating a wallet in the browser, its cost to the page,
    and full signing (the fallback when no presignature is available)."""
    lt = d.get("page_long_tasks") or {}
    fs = d.get("full_sign_ms") or {}
    rows = [["enrollDevice() total (aux info ahead of time)", fmt_ms(d.get("enroll_ms"))],
            ["  its aux info (3 parties, device in wasm)", fmt_ms(d.get("enroll_aux_info_ms"))],
            ["createWallet() after enrollment (DKG only)", fmt_ms(d.get("create_after_enroll_ms"))],
            ["  its DKG", fmt_ms(d.get("create_after_enroll_dkg_ms"))],
            ["aux info (3 parties, device in wasm) in a combined createWallet", fmt_ms(d.get("aux_info_ms"))],
            ["DKG: what creating an account runs", fmt_ms(d.get("dkg_ms"))],
            ["createWallet() total", fmt_ms(d.get("create_total_ms"))],
            ["page long tasks while creating (count / longest)",
             f"{lt.get('count', '?')} / {fmt_ms(lt.get('longest_ms'))}"],
            ["renderer peak RSS (page + protocol Worker)", f"{d.get('renderer_peak_rss_mib', 0):.1f} MiB"],
            [f"full signing, p50 / p95 (n = {fs.get('n', '?')})", f"{fmt_ms(fs.get('p50'))} / {fmt_ms(fs.get('p95'))}"],
            ["wasm size raw / gzip -9", f"{d.get('wasm_bytes', 0):,} B / {d.get('wasm_gzip_bytes', 0):,} B"]]
    return ["", "## Browser onboarding and full signing (headless Chromium, dev primes)", ""] + table(
        ["measurement", "value"], rows)


def gateway(d: dict) -> list[str]:
    lines = ["", "## Gateway throughput (sign-gateway, loopback)", "",
             f"{d.get('rooms')} rooms x {d.get('subscribers_per_room')} subscribers, {d.get('rate_per_room')} "
             f"msg/s per room for {d.get('duration_secs')} s, {d.get('message_bytes')} B messages.", ""]
    rows = [["delivered messages/s", f"{d.get('delivered_per_sec', 0):,.0f}"],
            ["published messages/s", f"{d.get('published_per_sec', 0):,.0f}"],
            ["delivery latency p50", fmt_ms(d.get("latency_p50_ms"))],
            ["delivery latency p99", fmt_ms(d.get("latency_p99_ms"))],
            ["delivery latency max", fmt_ms(d.get("latency_max_ms"))],
            ["peak RSS", f"{d.get('peak_rss_mib', 0):.1f} MiB"],
            ["concurrent SSE subscribers", str(d.get("max_subscribers"))]]
    return lines + table(["metric", "value"], rows)


def scale(d: dict) -> list[str]:
    """scale-bench: two cosigners on PostgreSQL, two gateways on Redis, one cosigner killed."""
    s, setup, kill = d.get("signings") or {}, d.get("setup") or {}, d.get("kill") or {}
    retries, store, machine = d.get("retries") or {}, d.get("store") or {}, d.get("machine") or {}
    lines = ["", "## Scale: 2 cosigners on PostgreSQL, 2 gateways on Redis, one cosigner killed mid-run", "",
             f"{s.get('total')} signings ({s.get('pool')} pool, {s.get('full')} full) from "
             f"{setup.get('clients')} client tasks on {setup.get('wallets')} wallet(s); "
             f"**{s.get('signed')} signed, {s.get('failed')} failed** in {s.get('seconds', 0):.1f} s "
             f"= {s.get('throughput_per_second', 0):.2f} signatures/s "
             f"(through A {s.get('through_a')}, through B {s.get('through_b')}).", ""]
    rows = [[label, fmt_ms(m.get("p50_ms")), fmt_ms(m.get("p95_ms")), fmt_ms(m.get("max_ms")), str(m.get("n", "?"))]
            for key, label in [("latency_pool", "from the pool"), ("latency_full", "full signing"),
                               ("latency_all", "all"), ("latency_retried", "retried (after the kill)")]
            for m in [d.get(key) or {}]]
    lines += table(["signing (client wall, retries included)", "p50", "p95", "max", "n"], rows)
    codes = ", ".join(f"{k} {v}" for k, v in (retries.get("by_code") or {}).items()) or "none"
    lines += ["", f"Cosigner A SIGKILLed at {kill.get('at_seconds', 0):.1f} s with {kill.get('in_flight_pool')} pool "
                  f"and {kill.get('in_flight_full')} full signings in flight on it; retries: {retries.get('total')} "
                  f"({retries.get('caused_by_kill')} caused by the kill; codes: {codes}).",
              f"Store: {store.get('taken_during_run')} presignatures taken during the run, "
              f"{store.get('taken_by_pool_signatures')} by pool signatures, {store.get('taken_without_signature')} "
              f"lost with the killed cosigner; checks {'passed' if d.get('checks_passed') else '**FAILED**'}.",
              f"Setup: wallet creation {setup.get('wallet_creation_seconds', 0):.1f} s, "
              f"{setup.get('presignatures_filled')} presignatures in {setup.get('refill_seconds', 0):.1f} s. "
              f"Machine: {machine.get('cores')} cores, {machine.get('cpu_busy_percent', 0):.0f}% busy during the "
              f"signings, load average {machine.get('load_average_before')} before.",
              ]
    for p in d.get("problems") or []:
        lines.append(f"- FAILED: {p}")
    return lines


def scale_svg(d: dict | None) -> str:
    """Signings completed over time, pool and full, the kill of cosigner A marked."""
    if not d or not d.get("timeline"):
        return ""
    ends = {"pool": sorted(e[1] for e in d["timeline"] if e[2] == "pool" and e[4]),
            "full": sorted(e[1] for e in d["timeline"] if e[2] == "full" and e[4])}
    kill_at = (d.get("kill") or {}).get("at_seconds")
    t_max = max([e[1] for e in d["timeline"]] + [kill_at or 0, 1e-3])
    n_max = max(1, max(len(v) for v in ends.values()))
    left, top, width, height = 60, 50, 560, 260
    colors = {"pool": "#2b6cb0", "full": "#dd6b20"}

    def x(t: float) -> float:
        return left + width * t / t_max

    def y(n: float) -> float:
        return top + height - height * n / n_max

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{top + height + 50}" '
           'font-family="sans-serif" font-size="12">', '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="22" font-size="15" font-weight="bold">scale-bench: signings completed over time '
           '(cosigner A killed at the dashed line)</text>',
           f'<line x1="{left}" y1="{top + height}" x2="{left + width}" y2="{top + height}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + height}" stroke="black"/>',
           f'<text x="{left + width / 2}" y="{top + height + 35}" text-anchor="middle">seconds '
           f'(0 to {t_max:.1f})</text>',
           f'<text x="{left - 6}" y="{top + 4}" text-anchor="end">{n_max}</text>',
           f'<text x="{left - 6}" y="{top + height}" text-anchor="end">0</text>']
    for i, (k, v) in enumerate(ends.items()):
        if not v:
            continue
        pts = [f"{x(0):.1f},{y(0):.1f}"] + [f"{x(t):.1f},{y(n + 1):.1f}" for n, t in enumerate(v)]
        out.append(f'<polyline fill="none" stroke="{colors[k]}" stroke-width="2" points="{" ".join(pts)}"/>')
        out.append(f'<text x="{left + width + 8}" y="{top + 14 + 16 * i}" fill="{colors[k]}">{k} ({len(v)})</text>')
    if kill_at is not None:
        out.append(f'<line x1="{x(kill_at):.1f}" y1="{top}" x2="{x(kill_at):.1f}" y2="{top + height}" '
                   'stroke="#e53e3e" stroke-dasharray="4 3"/>')
        out.append(f'<text x="{x(kill_at) + 4:.1f}" y="{top + 12}" fill="#e53e3e">SIGKILL A</text>')
    out.append("</svg>")
    return "\n".join(out)


def targets(docs: list[dict]) -> list[tuple[str, float | None, float, str, str]]:
    """(target, measured, limit, "<=" or ">=", unit) for the performance targets."""
    out = []
    web = find(docs, "presign-web")
    out.append(("online signing from the pool, browser <-> cosigner, p50",
                (web or {}).get("online_ms", {}).get("p50"), 20.0, "<=", "ms"))
    out.append(("EIP-712 online signing from the pool, browser <-> cosigner, p50",
                (web or {}).get("eip712_online_ms", {}).get("p50"), 20.0, "<=", "ms"))
    hd = find(docs, "presign-web-hd")
    out.append(("HD signing from the pool (m/44/60/0/0/0), browser <-> cosigner, p50",
                (hd or {}).get("online_ms", {}).get("p50"), 20.0, "<=", "ms"))
    out.append(("stretch: online signing from the pool, browser <-> cosigner, p50",
                (web or {}).get("online_ms", {}).get("p50"), 10.0, "<=", "ms"))
    nat = find(docs, "presign")
    out.append(("full signing over the gateway / in-process library (p50, 2 threads)",
                (nat or {}).get("ratio_gateway_vs_library_two_threads_p50"), 1.15, "<=", "x"))
    pr = find(docs, "safe_primes")
    for backend in ("num-bigint", "rug"):
        r = next((r for r in (pr or {}).get("rows", []) if r.get("generator") == "ours"
                  and r.get("backend") == backend and r.get("threads") == 1), None)
        out.append((f"safe primes, ours vs library, {backend}, 1 thread (median)",
                    (r or {}).get("ratio_vs_library_wall_median"), 5.0, ">=", "x"))
    pw = find(docs, "primes-web")
    ob = (pw or {}).get("onboarding") or {}
    total = ob.get("createTotalMs")
    out.append(("browser onboarding (aux info + DKG), prepared primes",
                None if total is None else total / 1000, 60.0, "<=", "s"))
    ob_web = find(docs, "onboarding-web")
    after = (ob_web or {}).get("create_after_enroll_ms")
    if after is None:
        after = (ob_web or {}).get("dkg_ms")
    out.append(("account creation after enrollment (createWallet, DKG only), browser",
                None if after is None else after / 1000, 1.0, "<=", "s"))
    out.append(("longest page task while a wallet is created (the UI never blocks)",
                ((ob_web or {}).get("page_long_tasks") or {}).get("longest_ms"), 200.0, "<=", "ms"))
    return out


def targets_table(ts) -> list[str]:
    rows = []
    for name, v, limit, op, unit in ts:
        if v is None:
            rows.append([name, "not measured", f"{op} {limit:g} {unit}", "-"])
            continue
        ok = v <= limit if op == "<=" else v >= limit
        rows.append([name, f"{v:.2f} {unit}", f"{op} {limit:g} {unit}", "met" if ok else "**missed**"])
    return ["", "## Targets", ""] + table(["target", "measured", "goal", ""], rows)


def targets_svg(ts) -> str:
    """One bar per target: measured / goal, so 1.0 is the line to stay on the good side of."""
    items = [(n, (v / lim) if op == "<=" else (lim / v), v, lim, op, u) for n, v, lim, op, u in ts if v]
    if not items:
        return ""
    left, width, bar, top = 430, 360, 18, 50
    hi = max(2.0, max(i[1] for i in items) * 1.1)
    height = top + len(items) * (bar + 10) + 40

    def x(r: float) -> float:
        return left + width * min(r, hi) / hi

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 140}" height="{height}" '
           'font-family="sans-serif" font-size="12">', '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="22" font-size="15" font-weight="bold">wallet-mpc targets: measured relative to '
           'the goal (left of the line = met)</text>']
    y = top
    for name, r, v, lim, op, u in items:
        color = "#38a169" if r <= 1 else "#e53e3e"
        out.append(f'<text x="{left - 8}" y="{y + bar - 5}" text-anchor="end">{escape(name)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{max(1.0, x(r) - left):.1f}" height="{bar}" fill="{color}"/>')
        out.append(f'<text x="{x(r) + 4:.1f}" y="{y + bar - 5}">{escape(f"{v:.2f} {u} (goal {op} {lim:g})")}</text>')
        y += bar + 10
    out.append(f'<line x1="{x(1.0):.1f}" y1="{top - 8}" x2="{x(1.0):.1f}" y2="{y}" stroke="black" '
               'stroke-dasharray="4 3"/>')
    out.append(f'<text x="{x(1.0):.1f}" y="{y + 16}" text-anchor="middle">goal</text>')
    out.append("</svg>")
    return "\n".join(out)


def escape(t: str) -> str:
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def flat(v, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(v, dict):
        return [kv for k, x in v.items() for kv in flat(x, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(v, float):
        return [(prefix, f"{v:.3f}")]
    return [(prefix, str(v))]


# Report sections per kind of results file, in the order they are shown.
SECTIONS = {"presign": presign_native, "psbt": psbt, "scale": scale, "presign-web": presign_web, "presign-web-hd": presign_web,
            "safe_primes": primes_native,
            "primes-web": primes_web, "onboarding-web": onboarding_web, "gateway": gateway}


def suite_tables(docs: list[dict]) -> list[str]:
    lines: list[str] = []
    for k, section in SECTIONS.items():
        d = find(docs, k)
        if d:
            lines += section(d)
    for d in docs:  # suites this report does not know yet: every field, flattened
        if kind(d) in SECTIONS or kind(d) == "protocol":
            continue
        lines += ["", f"## {d.get('title') or kind(d)}", ""]
        lines += table(["field", "value"], [[k, v] for k, v in flat(
            {k: v for k, v in d.items() if not k.startswith("_") and k != "suite"})])
    return lines


def svg_chart(grid: dict) -> str:
    keys = [(k, label) for k, label in PROTOCOL_ROWS if k in grid]
    bar_h, gap, left, width = 14, 14, 290, 520
    present = [b for b, _ in BACKENDS if any(b in grid[k] for k, _ in keys)]
    group_h = bar_h * max(1, len(present)) + gap
    top = 60
    height = top + group_h * len(keys) + 50
    vals = [v for k, _ in keys for v in grid[k].values() if v and v > 0]
    if not vals:
        return ""
    lo = 10 ** math.floor(math.log10(min(vals)))
    hi = 10 ** math.ceil(math.log10(max(vals)))
    span = math.log10(hi) - math.log10(lo) or 1.0

    def x(v: float) -> float:
        return left + width * (math.log10(v) - math.log10(lo)) / span

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 120}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="22" font-size="15" font-weight="bold">wallet-mpc protocol cost '
        "(log scale, lower is better)</text>",
    ]
    lx = left
    for b, label in BACKENDS:
        if b not in present:
            continue
        out.append(f'<rect x="{lx}" y="32" width="12" height="12" fill="{COLORS[b]}"/>')
        out.append(f'<text x="{lx + 16}" y="43">{label}</text>')
        lx += 40 + 7 * len(label)
    d = lo
    while d <= hi * 1.0001:
        xx = x(d)
        out.append(f'<line x1="{xx:.1f}" y1="{top - 6}" x2="{xx:.1f}" y2="{height - 40}" stroke="#ddd"/>')
        out.append(f'<text x="{xx:.1f}" y="{height - 25}" text-anchor="middle">{fmt_secs(d)}</text>')
        d *= 10
    y = top
    for k, label in keys:
        out.append(f'<text x="{left - 8}" y="{y + group_h / 2}" text-anchor="end">{label}</text>')
        yy = y
        for b in present:
            v = grid[k].get(b)
            if v and v > 0:
                w = max(1.0, x(v) - left)
                out.append(
                    f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{COLORS[b]}"/>'
                )
                out.append(f'<text x="{left + w + 4:.1f}" y="{yy + bar_h - 4}">{fmt_secs(v)}</text>')
            yy += bar_h
        y += group_h
    out.append("</svg>")
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    d = Path(sys.argv[1])
    if not d.is_dir():
        print(f"error: {d} is not a directory", file=sys.stderr)
        return 2
    docs = load(d)
    if not docs:
        print(f"error: no benchmark JSON files in {d}", file=sys.stderr)
        return 1
    lines, grid = protocol_table(docs)
    ts = targets(docs)
    lines += targets_table(ts)
    lines += suite_tables(docs)
    md = "\n".join(["# wallet-mpc benchmark report", ""] + lines) + "\n"
    (d / "report.md").write_text(md)
    (d / "results.json").write_text(
        json.dumps([{k: v for k, v in x.items() if k != "_file"} | {"file": x["_file"]} for x in docs], indent=2)
    )
    written = [d / "report.md", d / "results.json"]
    for name, svg in (("report.svg", svg_chart(grid)), ("targets.svg", targets_svg(ts)),
                      ("scale.svg", scale_svg(find(docs, "scale")))):
        if svg:
            (d / name).write_text(svg)
            written.append(d / name)
    print(md)
    print("written: " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
