#!/usr/bin/env bash
# The one command that sets up and runs every check and test of the project:
#   bash scripts/test-all.sh
# It installs what is missing (scripts/setup.sh), checks formatting and the lock files,
# then builds every target of every workspace ONCE with clippy -D warnings inside the
# build (scripts/lib.sh wm_lint_in_build): the root workspace (with the UniFFI
# bindings), sign-service, the wasm32 participant (release: its browser tests, the npm
# package and Playwright use that one build) and the edge gateway. Then the suites run,
# in two lanes side by side, of about the same length (step times of a cold run: the
# root nextest ~18 min; sign-service ~5 + Playwright ~15): the root workspace's suites
# (cargo nextest: protocol, backend interop GMP <-> pure Rust, safe primes, CLI,
# envelopes, both gateways' contract suite, presignature pools, recovery agent and
# end-to-end tests across real processes; then client-core's flows in one process)
# and the other ones (the benchmark report's and deploy files' unit tests, the wasm
# participant in headless Chromium, the GMP prime test, the doc tests, the cosigner's
# suite, the browser end-to-end suite with Playwright and Debian Chromium, the UniFFI
# bindings' Python and Kotlin tests against real servers).
# The wasm32 and edge builds run beside the native builds, in target dirs of their own
# ($WASM_CARGO_TARGET_DIR, $EDGE_CARGO_TARGET_DIR). No suite builds
# anything: the servers are built before they start (E2E_NO_BUILD, *_BIN).
# It ends with a table of every step's time and the run's wall time.
#
# WM_LANES=1 runs the two lanes one after the other (to measure what running them side
# by side gains).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$wm_root"
run_start=$(date +%s)
run_ticks=$(wm_cpu_ticks)
WM_STEPS_FILE="$(mktemp -t wallet-mpc-steps-XXXXXX)"
export WM_STEPS_FILE
# At the end, whatever happened: the step table; and no background step left running.
trap 'jobs -pr | xargs -r kill 2>/dev/null; wm_steps_report "$run_start" "$run_ticks"; rm -rf "$WM_STEPS_FILE" "${lanes_dir:-}"' EXIT
# CI builds from scratch-ish: incremental caches only cost disk (13 GB) and time here.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Property tests draw the same cases in every run, so a failure is the code's and comes
# back when rerun (long runs with fresh randomness: docs/SECURITY.md).
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261202}"

wm_step "setup" bash scripts/setup.sh
wm_step "lock files and profiles agree (shared target dir)" bash scripts/check-locks.sh
fmt_all() {
  cargo fmt --all -- --check
  cargo fmt --manifest-path "$wm_cosigner_manifest" -- --check
  cargo fmt --manifest-path edge-gateway/Cargo.toml -- --check
}
wm_step "cargo fmt --check (every workspace)" fmt_all

# ------------------------------------------------------------------ one build, linted
# From here on every cargo build lints the members it compiles (-D warnings), and every
# build of this run, nested ones included, shares the same fingerprints.
wm_lint_in_build
lanes_dir="$(mktemp -d -t wallet-mpc-lanes-XXXXXX)"
# Two builds run beside the native ones, each in a target dir of its own (a shared dir
# would make them wait for its lock): the edge gateway, and the wasm32 participant (its
# host proc macros compile once more there; the rest of it is wasm32 code anyway). A
# cargo build does not keep both cores busy all the time (links, the last crates of the
# graph): these fill the gaps.
WM_STEP_LOG_DIR="$lanes_dir" wm_step "build + clippy: edge gateway (worker-build, own target dir)" \
  bash scripts/gateway-edge-build.sh &
edge_pid=$!
wasm_build() {
  CARGO_TARGET_DIR="$WASM_CARGO_TARGET_DIR" bash crates/mpc-wasm/build.sh --with-tests
}
WM_STEP_LOG_DIR="$lanes_dir" wm_step "build + clippy: wasm32 participant (release, own target dir) + npm wasm" \
  wasm_build &
wasm_pid=$!
# `cargo build --all-targets` compiles exactly what `cargo test --all-targets --no-run`
# does (and puts the binaries in place): the test runs below find everything fresh.
wm_step "build + clippy: root workspace (with bindings), every target" \
  cargo build --workspace --all-targets
wm_step "build + clippy: sign-service workspace, every target" \
  cargo build --manifest-path "$wm_cosigner_manifest" --all-targets
# The GMP variant of mpc-core: its fast-primes test and the party process the backend
# interop test starts (the test runs this same build, which is then fresh).
wm_step "build: mpc-core with GMP (fast_primes test, interop party)" \
  cargo build -p mpc-core --features backend-rug --test fast_primes --example stdio_party
build_status=0
wait "$edge_pid" || build_status=1
wait "$wasm_pid" || build_status=1
[ "$build_status" = 0 ] || { wm_say "A BUILD FAILED (see above)"; exit 1; }

# ---------------------------------------------------------------------------- suites
# The servers as the suites start them, from the builds above.
WM_SERVERS_BUILT=1 wm_build_servers
export E2E_NO_BUILD=1 REQUIRE_EDGE_GATEWAY=1 SKIP_WASM_BUILD=1 BINDINGS_NO_BUILD=1
nextest_config="$wm_root/.config/nextest.toml"

lane_rust() {
  local rc=0
  wm_step "tests: root workspace (nextest)" \
    cargo nextest run --workspace --config-file "$nextest_config" \
      -E 'not (package(client-core) & binary(flows))' || rc=1
  # client-core's flow tests share one wallet, created once per process by the real
  # create flow (aux info + DKG in process): one process for all of them (cargo test),
  # not one per test (nextest), which would create it 40 times. `--workspace`, not
  # `-p client-core`: the features then unify as in the build above, and the test binary
  # built there is the one that runs (with `-p`, cargo compiled ~3 min of the graph again).
  wm_step "tests: client-core flows (one process, one fixture wallet)" \
    cargo test --workspace --test flows || rc=1
  return $rc
}
# The other lane ends minutes before the Rust lane: the short steps that leave a core
# idle (one browser, doc tests, a GMP prime test) run here, next to the Rust lane's
# nextest, not after it.
lane_other() {
  local rc=0
  wm_step "tests: benchmark report and deploy files (scripts/tests)" \
    python3 -m unittest discover -s scripts/tests || rc=1
  wm_step "tests: wasm participant in headless Chromium (wasm-bindgen-test)" \
    env CARGO_TARGET_DIR="$WASM_CARGO_TARGET_DIR" bash crates/mpc-wasm/test.sh --browser-only || rc=1
  wm_step "tests: mpc-core fast primes with GMP" \
    cargo nextest run -p mpc-core --features backend-rug --test fast_primes \
      --config-file "$nextest_config" || rc=1
  wm_step "tests: root workspace doc tests" cargo test --workspace --doc || rc=1
  wm_step "tests: sign-service workspace (nextest, GMP)" \
    cargo nextest run --manifest-path "$wm_cosigner_manifest" --config-file "$nextest_config" || rc=1
  wm_step "tests: browser end to end (Playwright, headless Debian Chromium)" \
    bash playwright-tests/run.sh || rc=1
  wm_step "tests: UniFFI bindings (Python + Kotlin against real gateway + cosigner)" \
    bash bindings/test.sh || rc=1
  return $rc
}

status=0
if [ "${WM_LANES:-2}" = 1 ]; then
  lane_rust || status=1
  lane_other || status=1
else
  WM_STEP_LOG_DIR="$lanes_dir"
  export WM_STEP_LOG_DIR
  lane_rust & rust_pid=$!
  lane_other & other_pid=$!
  wait "$rust_pid" || status=1
  wait "$other_pid" || status=1
  unset WM_STEP_LOG_DIR
fi
if [ "$status" -ne 0 ]; then
  wm_say "SOME TESTS FAILED (see above)"
  exit 1
fi
wm_say "all checks passed"
