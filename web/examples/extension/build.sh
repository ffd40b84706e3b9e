#!/usr/bin/env bash
# Builds the example extension against the PACKED package, as a user installs it:
#   bash web/examples/extension/build.sh [--build-package]
# 1. npm pack of web/ into web/examples/.pack/wallet-mpc-web.tgz (web/ must be built:
#    --build-package runs `npm run build` there first; the wasm core must be in web/wasm/)
# 2. npm ci here (the tarball is a file: dependency; the lock file pins everything else)
# 3. vite build (pages + content scripts, then the one-file service worker) and the
#    dist/ check. Output: web/examples/extension/dist (load it unpacked).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$here/../pack.sh" ${1:+--build}
cd "$here"
npm ci --no-audit --no-fund --loglevel=error
npm run --silent build
echo "extension built: $here/dist (id neiifbkbohppngiengclifkgpommjobj)"
