#!/usr/bin/env bash
# Packs @wallet-mpc/web the way a user receives it: `npm pack` in web/ (its prepack
# refuses a package without wasm/ or dist/) into web/examples/.pack/, as
# wallet-mpc-web.tgz (a fixed name: the examples depend on "file:../.pack/wallet-mpc-web.tgz").
#   bash web/examples/pack.sh [--build]   # --build: npm run build in web/ first
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
web="$(cd "$here/.." && pwd)"
if [ "${1:-}" = "--build" ]; then (cd "$web" && npm run --silent build); fi
mkdir -p "$here/.pack"
rm -f "$here/.pack/"*.tgz
name=$(cd "$web" && npm pack --silent --pack-destination "$here/.pack" | tail -n1)
mv "$here/.pack/$name" "$here/.pack/wallet-mpc-web.tgz"
echo "packed $here/.pack/wallet-mpc-web.tgz ($(stat -c %s "$here/.pack/wallet-mpc-web.tgz") bytes)"
