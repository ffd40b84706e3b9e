#!/usr/bin/env bash
# One benchmark command for the whole wallet: runs every suite, then prints one report
# (markdown tables side by side) and writes JSON + an SVG chart.
#
# Usage: scripts/bench.sh [--quick] [--only suite1,suite2] [--out DIR]
#   suites: protocol-rust protocol-gmp wasm primes presign psbt scale gateway browser
#   --quick   fewer iterations and shorter load runs (a smoke run, noisy figures)
# Results: DIR (default bench-results/<UTC timestamp>)/{*.json,results.json,report.md,report.svg,targets.svg}
# Everything is release-built into $CARGO_TARGET_DIR (default ~/.cache/wallet-mpc/target).
# Run it on an idle machine: the figures are wall-clock times.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
root="$wm_root"
cd "$root"

quick=0
only=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --only) only="${2:?--only needs a comma-separated list}"; shift ;;
    --out) out="${2:?--out needs a directory}"; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
out="${out:-$root/bench-results/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$out"
iters=5
gw_args=(--rooms 300 --subscribers 3 --rate 5 --duration 20)
primes_args=(--samples 8 --lib-samples 6)
presign_args=(--signatures 50 --full 5)
psbt_args=(--rounds 5)
scale_args=(--pool 150 --full 50 --clients 40)
browser_n=15   # EIP-191 and EIP-712 signatures each (a pool of 2n+2 <= 32)
browser_full_n=5  # full signings in the browser (onboarding bench)
if [ "$quick" = 1 ]; then
  iters=2
  gw_args=(--rooms 50 --subscribers 3 --rate 5 --duration 5)
  primes_args=(--samples 2 --lib-samples 2)
  presign_args=(--signatures 10 --full 2)
  psbt_args=(--rounds 2)
  scale_args=(--pool 28 --full 12 --clients 8)
  browser_n=5
  browser_full_n=2
fi

want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
failed=()
bench_start=$(date +%s)
WM_STEPS_FILE="$out/steps.tsv"
export WM_STEPS_FILE
: >"$WM_STEPS_FILE"
run() { # run <name> <command...>: a failing suite is reported, the others still run
  local name="$1"; shift
  wm_step "$name" "$@" || failed+=("$name")
}

protocol_rust() {
  BENCH_ITERS=$iters BENCH_PRIMES=0 BENCH_JSON="$out/protocol-native-rust.json" \
    cargo bench -q -p mpc-core --bench protocol --features backend-num-bigint
}
protocol_gmp() {
  BENCH_ITERS=$iters BENCH_PRIMES=0 BENCH_JSON="$out/protocol-native-gmp.json" \
    cargo bench -q -p mpc-core --bench protocol --features backend-rug
}
wasm() {
  # Release wasm in headless Chromium (wasm-bindgen-test-runner + Debian chromedriver);
  # aux info included (minutes). The test prints one "BENCH_JSON {...}" line.
  local log="$out/wasm.log"
  MPC_WASM_BENCH_AUX=1 bash crates/mpc-wasm/test.sh --bench 2>&1 | tee "$log"
  python3 - "$log" "$out/protocol-wasm.json" <<'PY'
import json, sys
line = next((l for l in open(sys.argv[1]) if "BENCH_JSON " in l), None)
if line is None:
    sys.exit("no BENCH_JSON line in the wasm bench output")
vals = json.loads(line.split("BENCH_JSON ", 1)[1])
rows = [{"key": k, "label": k, "seconds": v, "samples": 1} for k, v in vals.items()]
json.dump({"suite": "protocol", "platform": "wasm-chromium", "backend": "num-bigint (wasm32)",
           "rows": rows}, open(sys.argv[2], "w"), indent=2)
PY
}
primes() {
  bash crates/safe-primes/bench.sh "$out/primes.json" "${primes_args[@]}"
}
presign() {
  # Real sign-gateway + sign-service (GMP) + client; the bench builds them (release).
  cargo run -q --release -p e2e-tests --bin presign-bench -- "${presign_args[@]}" --json "$out/presign.json"
}
psbt() {
  # Bitcoin: 1- and 5-input PSBTs signed and finalized over the real gateway and
  # cosigner, in full and from the inputs' path pools; each checked by libbitcoinconsensus.
  cargo run -q --release -p e2e-tests --bin psbt-bench -- "${psbt_args[@]}" --json "$out/psbt.json"
}
browser() {
  # The browser wallet in headless Chromium against RELEASE servers: online signing from
  # the presignature pool (p50/p95 and its breakdown), for an independent account
  # (browser-presign.json) and an HD account at m/44/60/0/0/0 (browser-presign-hd.json),
  # and prime preparation in 1 and 2
  # prime Workers followed by onboarding with the prepared primes (minutes).
  wm_build_servers release
  BENCH_PRESIGN=1 BENCH_PRESIGN_N="${browser_n}" BENCH_PRESIGN_JSON="$out/browser-presign.json" \
    bash playwright-tests/run.sh tests/presign-bench.spec.ts
  BENCH_ONBOARD=1 BENCH_FULL_N="${browser_full_n}" BENCH_ONBOARD_JSON="$out/browser-onboarding.json" SKIP_WASM_BUILD=1 \
    bash playwright-tests/run.sh tests/onboarding-bench.spec.ts
  BENCH_PRIMES=1 BENCH_PRIMES_JSON="$out/browser-primes.json" SKIP_WASM_BUILD=1 \
    bash playwright-tests/run.sh tests/prepare-bench.spec.ts
}
scale() {
  # Two cosigners on one PostgreSQL, two gateways on one Redis (all started by the
  # bench), concurrent pool and full signings from many clients, cosigner A killed
  # mid-run; the store and the devices' pools checked afterwards (docs/operations.md).
  cargo run -q --release -p e2e-tests --bin scale-bench -- "${scale_args[@]}" --json "$out/scale.json"
}
gateway() {
  cargo build -q --release -p sign-gateway -p gateway-tests --bins
  ulimit -n 65536 2>/dev/null || true
  "$CARGO_TARGET_DIR/release/gateway-bench" --gateway-bin "$CARGO_TARGET_DIR/release/sign-gateway" \
    "${gw_args[@]}" --json "$out/gateway.json"
}

want protocol-rust && run protocol-rust protocol_rust
want protocol-gmp && run protocol-gmp protocol_gmp
want wasm && run wasm wasm
want primes && run primes primes
want presign && run presign presign
want psbt && run psbt psbt
want scale && run scale scale
want gateway && run gateway gateway
want browser && run browser browser

wm_step report python3 "$root/scripts/bench_report.py" "$out" || failed+=(report)
wm_steps_report "$bench_start"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED suites: ${failed[*]}" >&2
  exit 1
fi
