#!/usr/bin/env bash
# Deploys the edge gateway to Cloudflare (an account and `wrangler login`, or
# CLOUDFLARE_API_TOKEN, needed):
#   scripts/gateway-edge-deploy.sh staging|production [--dry-run]
# Builds it (scripts/gateway-edge-build.sh), refuses an environment whose ACCESS_SECRET
# secret is not set (an open gateway), then `wrangler deploy --env ENV`.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
env_name="${1:-}"
case "$env_name" in
  staging|production) ;;
  *) echo "usage: scripts/gateway-edge-deploy.sh staging|production [--dry-run]" >&2; exit 2 ;;
esac
shift
cd "$wm_root/edge-gateway"
wm_npm_ci "$wm_root/edge-gateway"
bash "$wm_root/scripts/gateway-edge-build.sh"
wrangler=node_modules/.bin/wrangler
if [ "${1:-}" = "--dry-run" ]; then
  exec "$wrangler" deploy --env "$env_name" --dry-run --outdir "build/deploy-$env_name"
fi
if ! "$wrangler" secret list --env "$env_name" 2>/dev/null | grep -q '"ACCESS_SECRET"'; then
  echo "gateway-edge-deploy: ACCESS_SECRET is not set for $env_name (the gateway would be open):" >&2
  echo "  (cd edge-gateway && npx wrangler secret put ACCESS_SECRET --env $env_name)" >&2
  exit 1
fi
exec "$wrangler" deploy --env "$env_name"
