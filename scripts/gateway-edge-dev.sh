#!/usr/bin/env bash
# Runs the built edge gateway locally with wrangler dev (no account, no network).
# Usage: scripts/gateway-edge-dev.sh [--port 8787] [--var ACCESS_SECRET:...]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$wm_root/edge-gateway"
[ -f build/worker/shim.mjs ] || bash "$wm_root/scripts/gateway-edge-build.sh"
export WRANGLER_SEND_METRICS=false CLOUDFLARE_CF_FETCH_ENABLED=false
exec node_modules/.bin/wrangler dev --local --ip 127.0.0.1 "$@"
