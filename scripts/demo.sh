#!/usr/bin/env bash
# The main job: a local 2-of-3 wallet end to end, on this machine.
#   bash scripts/demo.sh
# Builds the binaries, starts the gateway (sign-gateway) and the cosigner (sign-service,
# GMP) on free loopback ports, creates a wallet with the client (device + recovery
# parties, real DKG through the gateway), then signs with device+cosigner,
# recovery+cosigner and device+recovery (cosigner stopped), and verifies every
# signature. Work files go to $DEMO_DIR (default: a new temporary directory).
#
# Safe primes for the device and recovery parties are generated fresh (about a minute
# in pure Rust); DEMO_FAST=1 uses the repository's PUBLIC test primes instead (not a
# wallet to hold money). The cosigner generates its own with GMP.
#
# Then it serves the browser demo wallet (web/demo) against the same gateway, a fresh
# cosigner and a local recovery agent, prints its URL and keeps everything running
# until Ctrl-C. DEMO_SERVE=0 skips the browser part (CI); DEMO_WEB_PORT (default 8090).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
here="$wm_root"
cd "$here"
bin="$CARGO_TARGET_DIR/debug"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

command -v m4 >/dev/null 2>&1 || { say "installing m4 (GMP build)"; apt-get update -qq && apt-get install -y -qq m4; }

say "building (first run: several minutes)"
wm_build_servers

DEMO_DIR="${DEMO_DIR:-$(mktemp -d -t wallet-demo-XXXXXX)}"
mkdir -p "$DEMO_DIR"
free_port() { wm_free_port; }
GW_PORT=$(free_port); CO_PORT=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say "gateway on 127.0.0.1:$GW_PORT (log: $DEMO_DIR/gateway.log)"
SIGN_GATEWAY_PORT=$GW_PORT "$bin/sign-gateway" > "$DEMO_DIR/gateway.log" 2>&1 &
pids+=($!)

start_cosigner() {
  SIGN_SERVICE_PORT=$CO_PORT \
  SIGN_SERVICE_GATEWAY_URL="http://127.0.0.1:$GW_PORT" \
  SIGN_SERVICE_KEY_STORE="$DEMO_DIR/cosigner.redb" \
  SIGN_SERVICE_AUDIT_LOG="$DEMO_DIR/cosigner-audit.jsonl" \
  SIGN_SERVICE_STORE_KEY="$STORE_KEY" \
  SIGN_SERVICE_INSECURE_DEV_PRIMES="${DEMO_FAST:+true}" \
    "$bin/sign-service" >> "$DEMO_DIR/cosigner.log" 2>&1 &
  CO_PID=$!
  pids+=($CO_PID)
}
STORE_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
say "cosigner on 127.0.0.1:$CO_PORT (log: $DEMO_DIR/cosigner.log)"
start_cosigner

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "service on port $1 did not start; see logs in $DEMO_DIR" >&2; exit 1
}
wait_port "$GW_PORT"; wait_port "$CO_PORT"

export WALLET_CLIENT_PASSPHRASE="demo device passphrase"
export WALLET_RECOVERY_PASSPHRASE="demo recovery passphrase"
client() { (cd "$DEMO_DIR" && "$bin/client" --cosigner "http://127.0.0.1:$CO_PORT" "$@"); }

say "create wallet (aux info + DKG through the gateway)"
if [ -n "${DEMO_FAST:-}" ]; then client create-wallet --accounts 1 --insecure-dev-primes; else client create-wallet --accounts 1; fi

PATH_ETH="m/44/60/0/0/0"
say "address at $PATH_ETH"
client address --path "$PATH_ETH"
ADDR=$(client --json address --path "$PATH_ETH" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ethereum_address"])')

verify() { # $1 = json output of a sign-message
  local sig
  sig=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["rsv"])' "$1")
  client verify --message "hello from wallet-mpc" --signature "$sig" --address "$ADDR"
}

say "sign: device + cosigner"
OUT=$(client --json sign-message --path "$PATH_ETH" "hello from wallet-mpc"); echo "$OUT"
verify "$OUT"

say "sign: recovery + cosigner (lost device)"
OUT=$(client --json --recovery sign-message --path "$PATH_ETH" "hello from wallet-mpc"); echo "$OUT"
verify "$OUT"

say "sign: device + recovery with the cosigner stopped"
kill "$CO_PID"; wait "$CO_PID" 2>/dev/null || true
OUT=$(client --json offline-sign --path "$PATH_ETH" --message "hello from wallet-mpc"); echo "$OUT"
verify "$OUT"

say "done: three signatures by three different pairs verified for $ADDR"
echo "files: $DEMO_DIR"

[ "${DEMO_SERVE:-1}" = "0" ] && exit 0

# ---------------------------------------------------------------- browser demo wallet
WEB_PORT="${DEMO_WEB_PORT:-8090}"
ORIGIN="http://127.0.0.1:$WEB_PORT"
say "building the browser participant (wasm) and the npm package (first run: minutes)"
command -v node >/dev/null 2>&1 || { echo "node (20+) is needed for the browser demo; run scripts/setup.sh" >&2; exit 1; }
bash crates/mpc-wasm/build.sh
(cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run --silent build)

say "restarting the gateway and the cosigner with CORS for $ORIGIN"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
export SIGN_GATEWAY_CORS_ORIGINS="$ORIGIN" SIGN_SERVICE_CORS_ORIGINS="$ORIGIN"
SIGN_GATEWAY_PORT=$GW_PORT "$bin/sign-gateway" >> "$DEMO_DIR/gateway.log" 2>&1 &
pids+=($!)
# The browser wallet gets its own cosigner store (the CLI wallet above stays intact).
SIGN_SERVICE_PORT=$CO_PORT \
SIGN_SERVICE_GATEWAY_URL="http://127.0.0.1:$GW_PORT" \
SIGN_SERVICE_KEY_STORE="$DEMO_DIR/cosigner-web.redb" \
SIGN_SERVICE_AUDIT_LOG="$DEMO_DIR/cosigner-web-audit.jsonl" \
SIGN_SERVICE_STORE_KEY="$STORE_KEY" \
SIGN_SERVICE_INSECURE_DEV_PRIMES="${DEMO_FAST:+true}" \
  "$bin/sign-service" >> "$DEMO_DIR/cosigner.log" 2>&1 &
pids+=($!)
AG_PORT=$(free_port)
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
agent_flags=()
[ -n "${DEMO_FAST:-}" ] && agent_flags+=(--insecure-dev-primes)
RECOVERY_AGENT_PASSPHRASE="demo recovery agent passphrase" \
  "$bin/recovery-agent" --listen "127.0.0.1:$AG_PORT" --data-dir "$DEMO_DIR/recovery-agent" \
  --token "$TOKEN" --allow-origin "$ORIGIN" --gateway-url "http://127.0.0.1:$GW_PORT" \
  "${agent_flags[@]}" >> "$DEMO_DIR/recovery-agent.log" 2>&1 &
pids+=($!)
wait_port "$GW_PORT"; wait_port "$CO_PORT"; wait_port "$AG_PORT"
serve_flags=()
[ -n "${DEMO_FAST:-}" ] && serve_flags+=(--dev-primes)
say "browser demo wallet (Ctrl-C stops everything; logs in $DEMO_DIR)"
node web/demo/serve.mjs --port "$WEB_PORT" --host 127.0.0.1 \
  --cosigner "http://127.0.0.1:$CO_PORT" --gateway "http://127.0.0.1:$GW_PORT" \
  --agent "http://127.0.0.1:$AG_PORT" --token "$TOKEN" "${serve_flags[@]}"
