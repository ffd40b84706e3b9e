#!/usr/bin/env bash
# Packs @wallet-mpc/web once (npm pack -> .pack/wallet-mpc-web.tgz) and builds every
# example against that tarball, as a user installs it (npm ci from each lock file).
# Fails on any error. web/ must already be built (npm run build; the wasm in web/wasm/).
#   bash web/examples/build.sh [extension|vite-page|webpack-page ...]   (default: all)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
examples=("$@")
[ ${#examples[@]} -gt 0 ] || examples=(extension vite-page webpack-page)
bash "$here/pack.sh"
for ex in "${examples[@]}"; do
  [ -d "$here/$ex" ] || { echo "no example $ex" >&2; exit 1; }
  printf '\n== example %s: npm ci + npm run build\n' "$ex"
  start=$(date +%s)
  (cd "$here/$ex" && npm ci --no-audit --no-fund --loglevel=error && npm run --silent build)
  echo "example $ex built in $(( $(date +%s) - start )) s"
done
