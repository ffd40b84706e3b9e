#!/usr/bin/env bash
# The one command that sets up and runs every check and test of the project:
#   bash scripts/test-all.sh
# It installs what is missing (scripts/setup.sh), checks formatting and clippy, builds
# the participant for wasm32, builds the edge gateway, and runs all tests (protocol,
# backend interop GMP <-> pure Rust, safe primes, CLI, envelopes, both gateways'
# contract suite, cosigner, presignature pools, recovery agent and end-to-end tests
# across real processes), the wasm participant's tests in headless Chromium, the
# UniFFI bindings (Python + Kotlin against real servers) and the browser end-to-end
# suite (Playwright, Debian Chromium).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$wm_root"
cd "$here"
export EDGE_CARGO_TARGET_DIR="${EDGE_CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target-edge}"
# CI builds from scratch-ish: incremental caches only cost disk (13 GB) and time here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

step "setup"
bash scripts/setup.sh

step "lock files agree (shared target dir)"
bash scripts/check-locks.sh

step "cargo fmt --check"
cargo fmt --all -- --check
(cd sign-service && cargo fmt -- --check)
(cd edge-gateway && cargo fmt -- --check)

step "clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --manifest-path "$wm_cosigner_manifest" --all-targets -- -D warnings

step "wasm32 build of the participant"
cargo build -p mpc-core -p mpc-wire -p safe-primes --target wasm32-unknown-unknown
cargo clippy --release --target wasm32-unknown-unknown -p mpc-wasm --all-targets -- -D warnings

step "bindings: fmt + clippy (own workspace)"
(cd bindings && cargo fmt -- --check)
(cd bindings && cargo clippy --all-targets -- -D warnings)

step "edge gateway build (worker-build)"
bash scripts/gateway-edge-build.sh
(cd edge-gateway && CARGO_TARGET_DIR="$EDGE_CARGO_TARGET_DIR" cargo clippy --target wasm32-unknown-unknown -- -D warnings)

step "tests"
export REQUIRE_EDGE_GATEWAY=1
status=0
cargo test --workspace --no-fail-fast || status=1
step "tests: sign-service (its own workspace, GMP)"
cargo test --manifest-path "$wm_cosigner_manifest" --no-fail-fast || status=1
step "tests: mpc-core fast primes with GMP"
cargo test -p mpc-core --features backend-rug --test fast_primes || status=1

# The servers as the browser and bindings suites run them.
wm_build_servers

step "tests: benchmark report (scripts/bench_report.py)"
python3 -m unittest discover -s scripts/tests || status=1

step "tests: wasm participant in headless Chromium (wasm-bindgen-test)"
bash crates/mpc-wasm/test.sh || status=1
step "tests: UniFFI bindings (Python + Kotlin against real gateway + cosigner)"
bash bindings/test.sh || status=1
step "tests: browser end to end (Playwright, headless Debian Chromium)"
bash playwright-tests/run.sh || status=1
if [ "$status" -ne 0 ]; then
  step "SOME TESTS FAILED (see above)"
  exit 1
fi
step "all checks passed"
