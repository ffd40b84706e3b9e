#!/usr/bin/env bash
# One benchmark command for the whole wallet: runs every suite, then prints one report
# (markdown tables side by side) and writes JSON + an SVG chart.
#
# Usage: scripts/bench.sh [--quick] [--only suite1,suite2] [--out DIR]
#   suites: protocol-rust protocol-gmp gateway
#   --quick   fewer iterations and shorter load runs (a smoke run, noisy figures)
# Results: DIR (default bench-results/<UTC timestamp>)/{*.json,results.json,report.md,report.svg}
# Everything is release-built into $CARGO_TARGET_DIR (default ~/.cache/wallet-mpc/target).
# Run it on an idle machine: the figures are wall-clock times.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target}"

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
if [ "$quick" = 1 ]; then
  iters=2
  gw_args=(--rooms 50 --subscribers 3 --rate 5 --duration 5)
fi

want() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }
section() { printf '\n==== %s ====\n' "$*"; }
failed=()
run() { # run <name> <command...>: a failing suite is reported, the others still run
  local name="$1"; shift
  section "$name"
  if ! "$@"; then
    echo "suite $name FAILED" >&2
    failed+=("$name")
  fi
}

protocol_rust() {
  BENCH_ITERS=$iters BENCH_PRIMES=0 BENCH_JSON="$out/protocol-native-rust.json" \
    cargo bench -q -p mpc-core --bench protocol
}
protocol_gmp() {
  BENCH_ITERS=$iters BENCH_PRIMES=0 BENCH_JSON="$out/protocol-native-gmp.json" \
    cargo bench -q -p mpc-core --bench protocol --no-default-features --features backend-rug
}
gateway() {
  cargo build -q --release -p sign-gateway -p gateway-tests --bins
  ulimit -n 65536 2>/dev/null || true
  "$CARGO_TARGET_DIR/release/gateway-bench" --gateway-bin "$CARGO_TARGET_DIR/release/sign-gateway" \
    "${gw_args[@]}" --json "$out/gateway.json"
}

want protocol-rust && run protocol-rust protocol_rust
want protocol-gmp && run protocol-gmp protocol_gmp
want gateway && run gateway gateway

section report
python3 "$root/scripts/bench_report.py" "$out"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "FAILED suites: ${failed[*]}" >&2
  exit 1
fi
