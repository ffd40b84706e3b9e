#!/usr/bin/env bash
# Tests of crates/mpc-wasm: native unit/fixture tests, then wasm-bindgen-test in
# headless Chromium (CHROMEDRIVER, default /usr/bin/chromedriver; chromium flags in
# webdriver.json). `test.sh --bench` also runs the in-browser measurements (release).
# Idempotent; exits non-zero on any failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target-wasm}
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-900}
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER:-wasm-bindgen-test-runner}
PATH="$HOME/.cargo/bin:$PATH"
command -v wasm-bindgen-test-runner >/dev/null || { echo "test.sh: wasm-bindgen-test-runner 0.2.130 missing (cargo install wasm-bindgen-cli --version 0.2.130)" >&2; exit 1; }
[ -x "$CHROMEDRIVER" ] || { echo "test.sh: chromedriver not found at $CHROMEDRIVER" >&2; exit 1; }

cd "$root"
cargo test -p mpc-wasm -p mpc-party
# The runner reads webdriver.json from the package directory (cargo's cwd for tests).
# Release: shares the build with build.sh (and big-integer code is unusable unoptimised).
cargo test --release --target wasm32-unknown-unknown -p mpc-wasm --tests
if [ "${1:-}" = "--bench" ]; then
  cargo test --release --target wasm32-unknown-unknown -p mpc-wasm --test bench -- --include-ignored --nocapture
fi
