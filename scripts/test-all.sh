#!/usr/bin/env bash
# The one command that sets up and runs every check and test of the project:
#   bash scripts/test-all.sh
# It installs what is missing (scripts/setup.sh), checks formatting and clippy, builds
# the participant for wasm32, builds the edge gateway, and runs all tests (protocol,
# backend interop GMP <-> pure Rust, CLI, envelopes, both gateways' contract suite,
# cosigner and end-to-end tests across real processes).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
export PATH="$HOME/.cargo/bin:$PATH"
# One target dir outside the clone, shared by every run (build once).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target}"
export EDGE_CARGO_TARGET_DIR="${EDGE_CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target-edge}"
export CARGO_TERM_COLOR=never
# CI builds from scratch-ish: incremental caches only cost disk (13 GB) and time here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "setup"
bash scripts/setup.sh

step "cargo fmt --check"
cargo fmt --all -- --check
(cd edge-gateway && cargo fmt -- --check)

step "clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "wasm32 build of the participant"
cargo build -p mpc-core -p mpc-wire --target wasm32-unknown-unknown

step "edge gateway build (worker-build)"
bash scripts/gateway-edge-build.sh
(cd edge-gateway && CARGO_TARGET_DIR="$EDGE_CARGO_TARGET_DIR" cargo clippy --target wasm32-unknown-unknown -- -D warnings)

step "tests"
export REQUIRE_EDGE_GATEWAY=1
status=0
# sign-service is tested in its own invocation: built together with the pure-Rust
# crates, cargo would unify mpc-core's features and the cosigner would lose GMP.
cargo test --workspace --exclude sign-service --no-fail-fast || status=1
step "tests: sign-service (GMP)"
cargo test -p sign-service --no-fail-fast || status=1
if [ "$status" -ne 0 ]; then
  step "SOME TESTS FAILED (see above)"
  exit 1
fi
step "all checks passed"
