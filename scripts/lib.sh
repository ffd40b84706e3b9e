# shellcheck shell=bash
# Shared shell pieces of the project's scripts. Source it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"      (from scripts/)
# It sets `wm_root` (the repository), puts ~/.cargo/bin on PATH and exports the ONE
# target directory every cargo workspace of the repository builds into (the root
# workspace, sign-service, bindings, the wasm32 participant), so nothing is compiled
# twice. The edge gateway (its own lock file and toolchain driver, worker-build) keeps
# its own, $EDGE_CARGO_TARGET_DIR. CI (scripts/test-all.sh) also builds the wasm32
# participant in a dir of its own, $WASM_CARGO_TARGET_DIR, so that build runs beside the
# native ones instead of waiting for their lock (scripts building wasm by hand, demo.sh
# and bench.sh, keep the shared dir).
#
# Pieces: wm_say; steps with timing (wm_step, wm_steps_report); npm installs
# (wm_npm_ci); lint inside the build (wm_lint_in_build); the servers (wm_build_servers,
# wm_spawn, wm_start_gateway, wm_start_cosigner, wm_start_agent, wm_wait_port_file,
# wm_stop).

wm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target}"
export EDGE_CARGO_TARGET_DIR="${EDGE_CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target-edge}"
export WASM_CARGO_TARGET_DIR="${WASM_CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target-wasm}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The cosigner is a cargo workspace of its own (GMP only): every cargo command for it
# passes this manifest.
wm_cosigner_manifest="$wm_root/sign-service/Cargo.toml"
# The EVM tools the tests start (scripts/setup.sh evm installs them from
# testing/evm-tools/package-lock.json): Foundry's anvil, whose binary ships inside its
# npm package, and solc-js. Tests find anvil through $ANVIL_BIN.
wm_evm_tools="$wm_root/testing/evm-tools"
export ANVIL_BIN="${ANVIL_BIN:-$wm_evm_tools/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil}"
export SOLCJS_BIN="${SOLCJS_BIN:-$wm_evm_tools/node_modules/.bin/solcjs}"
# The wasm-bindgen CLI must match the wasm-bindgen crate of the lock file exactly.
wm_wasm_bindgen_version=0.2.130
# The wasm32 test targets CI builds and runs in headless Chromium (crates/mpc-wasm
# build.sh --with-tests, test.sh): not the benchmark (`--test bench`, its own run).
wm_wasm_test_targets=(--test web --test primes)

wm_say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# ------------------------------------------------------------------------------ steps
# wm_step NAME COMMAND...: runs COMMAND (a program or a shell function; `set -e` holds
# inside it) as one named, timed step, returns its status and records
# "start<TAB>seconds<TAB>status<TAB>name<TAB>cpu" in $WM_STEPS_FILE when that is set (see
# wm_steps_report); cpu is how busy the whole machine's cores were during the step, in
# percent (wm_cpu_busy: whether a step leaves cores idle, for the CI-time budget). It runs in a subshell: what it exports stays there.
# With WM_STEP_LOG_DIR set (parallel lanes), the step's output goes to a file there and is
# printed in one piece when the step ends, so lanes running side by side do not mix
# their lines.
# wm_cpu_ticks: "busy total" jiffies of all cores so far (/proc/stat; "0 0" elsewhere).
wm_cpu_ticks() {
  awk '/^cpu /{t=0; for(i=2;i<=NF;i++) t+=$i; print t-$5-$6, t; exit}' /proc/stat 2>/dev/null \
    || echo "0 0"
}

# wm_cpu_busy "BUSY0 TOTAL0": percent of the cores busy since that wm_cpu_ticks sample.
wm_cpu_busy() {
  local b0 t0 b1 t1
  read -r b0 t0 <<<"$1"
  read -r b1 t1 <<<"$(wm_cpu_ticks)"
  if [ "$((t1 - t0))" -gt 0 ]; then echo "$((100 * (b1 - b0) / (t1 - t0)))%"; else echo "-"; fi
}

wm_step() {
  local name="$1" t0 rc errexit=0 status log="" ticks
  shift
  t0=$(date +%s)
  ticks=$(wm_cpu_ticks)
  [[ $- == *e* ]] && errexit=1
  if [ -n "${WM_STEP_LOG_DIR:-}" ]; then
    log="$WM_STEP_LOG_DIR/$(printf '%s' "$name" | tr -c 'A-Za-z0-9._-' '_').log"
    printf '== %s: started (%s)\n' "$name" "$(date +%T)"
  else
    printf '\n== %s (%s)\n' "$name" "$(date +%T)"
  fi
  set +e
  if [ -n "$log" ]; then
    (set -e; "$@") >"$log" 2>&1 </dev/null
  else
    (set -e; "$@")
  fi
  rc=$?
  [ "$errexit" = 1 ] && set -e
  local dt=$(($(date +%s) - t0)) cpu
  cpu=$(wm_cpu_busy "$ticks")
  status=ok
  [ "$rc" -eq 0 ] || status="FAILED (exit $rc)"
  if [ -n "$log" ]; then
    {
      flock 9
      printf '\n== %s (%s, %ss): output\n' "$name" "$status" "$dt"
      cat "$log"
      printf '== %s: %s in %ss\n' "$name" "$status" "$dt"
    } 9>>"$WM_STEP_LOG_DIR/.print.lock"
  else
    printf '== %s: %s in %ss\n' "$name" "$status" "$dt"
  fi
  if [ -n "${WM_STEPS_FILE:-}" ]; then
    printf '%s\t%s\t%s\t%s\t%s\n' "$t0" "$dt" "$status" "$name" "$cpu" >>"$WM_STEPS_FILE"
  fi
  return "$rc"
}

# wm_steps_report [START_EPOCH [START_TICKS]]: the table of the steps recorded in
# $WM_STEPS_FILE (in start order; steps of parallel lanes overlap; "cpu": the machine's
# cores busy during the step, whoever kept them busy) and the wall time since
# START_EPOCH (with START_TICKS, a wm_cpu_ticks sample taken then: the run's cpu too).
wm_steps_report() {
  local start="${1:-}" ticks="${2:-}" now
  now=$(date +%s)
  printf '\n== step times\n'
  printf '%-58s %8s  %8s  %5s  %s\n' step "start s" seconds cpu status
  sort -n -k1,1 "$WM_STEPS_FILE" | while IFS=$'\t' read -r t0 dt status name cpu; do
    printf '%-58s %8s  %8s  %5s  %s\n' "$name" "$((t0 - ${start:-$t0}))" "$dt" "${cpu:--}" "$status"
  done
  if [ -n "$start" ]; then
    local wall=$((now - start)) busy=""
    [ -n "$ticks" ] && busy=", cores busy $(wm_cpu_busy "$ticks")"
    printf 'wall time: %ss (%dm%02ds)%s\n' "$wall" "$((wall / 60))" "$((wall % 60))" "$busy"
  fi
}

# -------------------------------------------------------------------------------- npm
# wm_npm_ci DIR: `npm ci` in DIR unless its node_modules was installed from this exact
# package-lock.json (a hash stamp in node_modules).
wm_npm_ci() {
  local dir="$1" sum
  sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$dir/node_modules/.lock-sha256" 2>/dev/null)" = "$sum" ]; then
    echo "$dir: node_modules up to date"
    return
  fi
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$sum" >"$dir/node_modules/.lock-sha256"
}

# ------------------------------------------------------------------------------- lint
# wm_lint_in_build: from now on every cargo build in this shell (and what it starts)
# also runs clippy with -D warnings on the members of the workspace it builds, exactly
# as `cargo clippy --all-targets -- -D warnings` would: clippy-driver is a full rustc
# driver, used for workspace members only. A lint then fails the build, and one compile
# gives both the lints and the binaries. Every build of a CI run must see the same two
# variables, or cargo treats the members as changed and compiles them again.
wm_lint_in_build() {
  RUSTC_WORKSPACE_WRAPPER="$(rustup which clippy-driver)"
  export RUSTC_WORKSPACE_WRAPPER
  export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
}

# ---------------------------------------------------------------------------- servers
# wm_build_servers [release]
# Builds the server binaries the end-to-end suites, the demo and the benchmarks start
# (sign-gateway, recovery-agent, the CLI's `client` and `key-gen`, and sign-service from
# its own workspace) and exports SIGN_GATEWAY_BIN, RECOVERY_AGENT_BIN, CLIENT_BIN,
# KEY_GEN_BIN, SIGN_SERVICE_BIN. A no-op when they are up to date. WM_SERVERS_BUILT=1:
# they were built already (CI builds every target of each workspace in one go): only
# export the paths.
wm_build_servers() {
  local profile=debug flag=()
  if [ "${1:-}" = release ]; then profile=release; flag=(--release); fi
  if [ "${WM_SERVERS_BUILT:-}" != 1 ]; then
    (cd "$wm_root" && cargo build -q "${flag[@]}" -p sign-gateway --bin sign-gateway \
        -p recovery-agent --bin recovery-agent -p wallet-cli --bin client --bin key-gen)
    cargo build -q "${flag[@]}" --manifest-path "$wm_cosigner_manifest" --bin sign-service
  fi
  export SIGN_GATEWAY_BIN="$CARGO_TARGET_DIR/$profile/sign-gateway"
  export RECOVERY_AGENT_BIN="$CARGO_TARGET_DIR/$profile/recovery-agent"
  export CLIENT_BIN="$CARGO_TARGET_DIR/$profile/client"
  export KEY_GEN_BIN="$CARGO_TARGET_DIR/$profile/key-gen"
  export SIGN_SERVICE_BIN="$CARGO_TARGET_DIR/$profile/sign-service"
  local b
  for b in SIGN_GATEWAY_BIN RECOVERY_AGENT_BIN CLIENT_BIN KEY_GEN_BIN SIGN_SERVICE_BIN; do
    [ -x "${!b}" ] || { echo "wm_build_servers: $b=${!b} is missing" >&2; return 1; }
  done
}

# wm_wait_port_file FILE PID LOG [TIMEOUT_S]: waits until the server PID has written its
# bound address to FILE (the `--port-file` contract: HOST:PORT and a newline, written
# atomically once the listener is bound) and prints it. Fails, showing the end of LOG,
# when PID exits first or after TIMEOUT_S (default 60).
wm_wait_port_file() {
  local file="$1" pid="$2" log="$3" timeout="${4:-60}" start=$SECONDS
  until [ -s "$file" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "server $pid exited before writing $file; end of $log:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    if [ $((SECONDS - start)) -ge "$timeout" ]; then
      echo "server $pid wrote no $file in ${timeout}s; end of $log:" >&2
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.05
  done
  cat "$file"
}

# The servers started by this shell (wm_spawn), for wm_stop.
wm_pids=()

# wm_spawn LOG COMMAND...: starts COMMAND in the background with its output appended to
# LOG; sets WM_PID and remembers it for wm_stop. Call it (and wm_start_*) directly, not
# in $(...): the server must be a child of this shell.
wm_spawn() {
  local log="$1"
  shift
  "$@" >>"$log" 2>&1 &
  WM_PID=$!
  wm_pids+=("$WM_PID")
}

# wm_start_gateway LOG [VAR=VALUE...]: starts $SIGN_GATEWAY_BIN on 127.0.0.1, port 0,
# with the given environment (SIGN_GATEWAY_*), output appended to LOG; waits for the
# port it reports and sets WM_GATEWAY_PID and WM_GATEWAY_URL.
wm_start_gateway() {
  local log="$1" port_file="${1%.log}.port" addr
  shift
  rm -f "$port_file"
  wm_spawn "$log" env "$@" SIGN_GATEWAY_HOST=127.0.0.1 SIGN_GATEWAY_PORT=0 \
    "$SIGN_GATEWAY_BIN" --port-file "$port_file"
  WM_GATEWAY_PID=$WM_PID
  addr=$(wm_wait_port_file "$port_file" "$WM_PID" "$log" 30) || return 1
  WM_GATEWAY_URL="http://$addr"
}

# wm_start_cosigner LOG [VAR=VALUE...]: starts $SIGN_SERVICE_BIN on 127.0.0.1, port 0,
# with the given environment (SIGN_SERVICE_*), output appended to LOG; waits for the
# port it reports and sets WM_COSIGNER_PID and WM_COSIGNER_URL.
wm_start_cosigner() {
  local log="$1" port_file="${1%.log}.port" addr
  shift
  rm -f "$port_file"
  wm_spawn "$log" env "$@" SIGN_SERVICE_HOST=127.0.0.1 SIGN_SERVICE_PORT=0 \
    "$SIGN_SERVICE_BIN" --port-file "$port_file"
  WM_COSIGNER_PID=$WM_PID
  addr=$(wm_wait_port_file "$port_file" "$WM_PID" "$log" 60) || return 1
  WM_COSIGNER_URL="http://$addr"
}

# wm_start_agent LOG [ARG...]: starts $RECOVERY_AGENT_BIN on 127.0.0.1, port 0, with the
# given arguments, output appended to LOG; sets WM_AGENT_PID and WM_AGENT_URL.
wm_start_agent() {
  local log="$1" port_file="${1%.log}.port" addr
  shift
  rm -f "$port_file"
  wm_spawn "$log" "$RECOVERY_AGENT_BIN" --listen 127.0.0.1:0 --port-file "$port_file" "$@"
  WM_AGENT_PID=$WM_PID
  addr=$(wm_wait_port_file "$port_file" "$WM_PID" "$log" 30) || return 1
  WM_AGENT_URL="http://$addr"
}

# wm_stop [PID...]: stops the given servers (default: every one wm_spawn started) and
# waits for them.
wm_stop() {
  local p
  [ $# -gt 0 ] || set -- "${wm_pids[@]}"
  for p in "$@"; do kill "$p" 2>/dev/null || true; done
  for p in "$@"; do wait "$p" 2>/dev/null || true; done
}
