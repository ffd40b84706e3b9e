#!/usr/bin/env bash
# Tests of crates/mpc-wasm: native unit/fixture tests, then wasm-bindgen-test in
# headless Chromium (CHROMEDRIVER, default /usr/bin/chromedriver; chromium flags in
# webdriver.json). Target dir: the shared one of scripts/lib.sh.
#
#   test.sh [--browser-only] [--bench]
#
# --browser-only skips the native tests (CI runs them with the root workspace).
# --bench also runs the in-browser measurements (release). The browser tests run the
# release wasm32 build that `build.sh --with-tests` makes (the same compile as the npm
# package's wasm; big-integer code is unusable unoptimised). Exits non-zero on any
# failure.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../../scripts/lib.sh"
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-900}
# How long the runner waits for chromedriver to listen (its default, 5 s, is too short on
# a loaded machine: CI #10 failed "driver failed to bind port during startup" while the
# root nextest started beside it).
export WASM_BINDGEN_TEST_DRIVER_TIMEOUT=${WASM_BINDGEN_TEST_DRIVER_TIMEOUT:-120}
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=${CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER:-wasm-bindgen-test-runner}
command -v wasm-bindgen-test-runner >/dev/null || { echo "test.sh: wasm-bindgen-test-runner $wm_wasm_bindgen_version missing: run scripts/setup.sh" >&2; exit 1; }
[ -x "$CHROMEDRIVER" ] || { echo "test.sh: chromedriver not found at $CHROMEDRIVER" >&2; exit 1; }

browser_only=0 bench=0
for a in "$@"; do
  case "$a" in
    --browser-only) browser_only=1 ;;
    --bench) bench=1 ;;
    *) echo "usage: test.sh [--browser-only] [--bench]" >&2; exit 2 ;;
  esac
done

cd "$wm_root"
[ "$browser_only" = 1 ] || cargo test -p mpc-wasm -p mpc-party
# The runner reads webdriver.json from the package directory (cargo's cwd for tests).
cargo test --release --target wasm32-unknown-unknown -p mpc-wasm "${wm_wasm_test_targets[@]}"
if [ "$bench" = 1 ]; then
  cargo test --release --target wasm32-unknown-unknown -p mpc-wasm --test bench -- --include-ignored --nocapture
fi
