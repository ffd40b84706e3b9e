#!/usr/bin/env bash
# Protocol benchmark for both big-integer backends (pure Rust and GMP).
# Usage: scripts/bench-core.sh   (env: BENCH_ITERS=3, BENCH_PRIMES=0 to skip the prime row)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target}"
echo "== pure Rust (num-bigint) =="
cargo bench -q -p mpc-core --bench protocol
echo
echo "== GMP (rug) =="
cargo bench -q -p mpc-core --bench protocol --no-default-features --features backend-rug
