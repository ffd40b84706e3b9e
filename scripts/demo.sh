#!/usr/bin/env bash
# The main job: a local 2-of-3 wallet end to end, on this machine.
#   bash scripts/demo.sh
# Installs what it needs (scripts/setup.sh demo: m4 for GMP, Node, the wasm32 target,
# the wasm-bindgen CLI; idempotent; `native` only with DEMO_SERVE=0), builds the binaries, starts the gateway
# (sign-gateway) and the cosigner (sign-service, GMP) on loopback, creates a wallet with
# the client (device + recovery parties, real DKG through the gateway), then signs with
# device+cosigner, recovery+cosigner and device+recovery (cosigner stopped), and
# verifies every signature. Work files go to $DEMO_DIR (default: a new temporary
# directory).
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
cd "$wm_root"

if [ "${DEMO_SERVE:-1}" = 0 ]; then bash scripts/setup.sh native; else bash scripts/setup.sh demo; fi

wm_say "building (first run: several minutes)"
wm_build_servers

DEMO_DIR="${DEMO_DIR:-$(mktemp -d -t wallet-demo-XXXXXX)}"
mkdir -p "$DEMO_DIR"
trap wm_stop EXIT
STORE_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')

# start_cosigner NAME [VAR=VALUE...]: a cosigner with its own store ($DEMO_DIR/NAME.redb)
# against the gateway at $WM_GATEWAY_URL.
start_cosigner() {
  local name="$1"
  shift
  wm_start_cosigner "$DEMO_DIR/cosigner.log" \
    SIGN_SERVICE_GATEWAY_URL="$WM_GATEWAY_URL" \
    SIGN_SERVICE_KEY_STORE="$DEMO_DIR/$name.redb" \
    SIGN_SERVICE_AUDIT_LOG="$DEMO_DIR/$name-audit.jsonl" \
    SIGN_SERVICE_STORE_KEY="$STORE_KEY" \
    SIGN_SERVICE_INSECURE_DEV_PRIMES="${DEMO_FAST:+true}" "$@"
}

wm_start_gateway "$DEMO_DIR/gateway.log"
wm_say "gateway on $WM_GATEWAY_URL (log: $DEMO_DIR/gateway.log)"
# The operator's registration issuer: the cosigner creates a wallet only for a
# credential it signed (single use, expiring).
ISSUER=$("$SIGN_SERVICE_BIN" registration new-issuer --out "$DEMO_DIR/registration-issuer.key" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])')
start_cosigner cosigner SIGN_SERVICE_REGISTRATION_ISSUERS="$ISSUER"
wm_say "cosigner on $WM_COSIGNER_URL (log: $DEMO_DIR/cosigner.log)"

export WALLET_CLIENT_PASSPHRASE="demo device passphrase"
export WALLET_RECOVERY_PASSPHRASE="demo recovery passphrase"
client() { (cd "$DEMO_DIR" && "$CLIENT_BIN" --cosigner "$WM_COSIGNER_URL" "$@"); }

wm_say "issue a registration credential (the operator), enroll the device with it (aux info through the gateway: the slow part, ahead of time)"
WALLET_REGISTRATION_CREDENTIAL=$("$SIGN_SERVICE_BIN" registration issue \
  --issuer-key "$DEMO_DIR/registration-issuer.key" --ttl-secs 3600)
export WALLET_REGISTRATION_CREDENTIAL
if [ -n "${DEMO_FAST:-}" ]; then client enroll --insecure-dev-primes; else client enroll; fi
unset WALLET_REGISTRATION_CREDENTIAL
wm_say "create the wallet from the enrollment (DKG only: about a second)"
client create-wallet --accounts 1

PATH_ETH="m/44/60/0/0/0"
wm_say "address at $PATH_ETH"
client address --path "$PATH_ETH"
ADDR=$(client --json address --path "$PATH_ETH" | python3 -c 'import json,sys; print(json.load(sys.stdin)["ethereum_address"])')

verify() { # $1 = json output of a sign-message
  local sig
  sig=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["rsv"])' "$1")
  client verify --message "hello from wallet-mpc" --signature "$sig" --address "$ADDR"
}

wm_say "sign: device + cosigner"
OUT=$(client --json sign-message --path "$PATH_ETH" "hello from wallet-mpc"); echo "$OUT"
verify "$OUT"

wm_say "sign: recovery + cosigner (lost device)"
OUT=$(client --json --recovery sign-message --path "$PATH_ETH" "hello from wallet-mpc"); echo "$OUT"
verify "$OUT"

wm_say "sign: device + recovery with the cosigner stopped"
wm_stop "$WM_COSIGNER_PID"
OUT=$(client --json offline-sign --path "$PATH_ETH" --message "hello from wallet-mpc"); echo "$OUT"
verify "$OUT"

wm_say "done: three signatures by three different pairs verified for $ADDR"
echo "files: $DEMO_DIR"

[ "${DEMO_SERVE:-1}" = "0" ] && exit 0

# ---------------------------------------------------------------- browser demo wallet
WEB_PORT="${DEMO_WEB_PORT:-8090}"
ORIGIN="http://127.0.0.1:$WEB_PORT"
wm_say "building the browser participant (wasm) and the npm package (first run: minutes)"
bash crates/mpc-wasm/build.sh
wm_npm_ci web
(cd web && npm run --silent build)
# The Manifest V3 wallet extension, built with Vite against the packed package.
wm_say "building the browser-extension wallet (web/examples/extension, against npm pack of web/)"
bash web/examples/build.sh extension
EXT_ID=neiifbkbohppngiengclifkgpommjobj   # fixed by the public key in its manifest
EXT_ORIGIN="chrome-extension://$EXT_ID"

wm_say "restarting the gateway and the cosigner with CORS for $ORIGIN"
wm_stop
wm_start_gateway "$DEMO_DIR/gateway.log" SIGN_GATEWAY_CORS_ORIGINS="$ORIGIN,$EXT_ORIGIN"
# The browser wallet gets its own cosigner store (the CLI wallet above stays intact).
# The demo page creates wallets without a registration credential: this cosigner runs
# with open registration (development only).
start_cosigner cosigner-web SIGN_SERVICE_CORS_ORIGINS="$ORIGIN,$EXT_ORIGIN" SIGN_SERVICE_DEV_OPEN_REGISTRATION=true
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
agent_flags=()
[ -n "${DEMO_FAST:-}" ] && agent_flags+=(--insecure-dev-primes)
RECOVERY_AGENT_PASSPHRASE="demo recovery agent passphrase" \
  wm_start_agent "$DEMO_DIR/recovery-agent.log" --data-dir "$DEMO_DIR/recovery-agent" \
  --token "$TOKEN" --allow-origin "$ORIGIN" --allow-origin "$EXT_ORIGIN" --gateway-url "$WM_GATEWAY_URL" "${agent_flags[@]}"
cat <<EXT

The extension wallet (same servers): chrome://extensions -> Developer mode -> Load unpacked ->
  $wm_root/web/examples/extension/dist
then its options (Details -> Extension options):
  cosignerUrl $WM_COSIGNER_URL
  agentUrl    $WM_AGENT_URL
  agentToken  $TOKEN
and create the wallet from its popup. A plain dapp page that finds it by EIP-6963 and asks it to
sign (each request approved in the extension's window): $ORIGIN/examples/extension/dapp/
EXT
serve_flags=()
[ -n "${DEMO_FAST:-}" ] && serve_flags+=(--dev-primes)
wm_say "browser demo wallet (Ctrl-C stops everything; logs in $DEMO_DIR)"
node web/demo/serve.mjs --port "$WEB_PORT" --host 127.0.0.1 \
  --cosigner "$WM_COSIGNER_URL" --gateway "$WM_GATEWAY_URL" \
  --agent "$WM_AGENT_URL" --token "$TOKEN" "${serve_flags[@]}"
