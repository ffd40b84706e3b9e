#!/usr/bin/env bash
# Load benchmark of the native sign-gateway (release build, real process on loopback).
# Usage: scripts/gateway-bench.sh [--rooms 300 --subscribers 3 --rate 5 --duration 20 --size 512]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
cargo build --release -p sign-gateway -p gateway-tests --bins
target="${CARGO_TARGET_DIR:-$here/target}"
ulimit -n 65536 2>/dev/null || true
exec "$target/release/gateway-bench" --gateway-bin "$target/release/sign-gateway" "$@"
