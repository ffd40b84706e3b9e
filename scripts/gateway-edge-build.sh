#!/usr/bin/env bash
# Builds edge-gateway/ (Cloudflare Worker in Rust) with worker-build into
# edge-gateway/build/, in $EDGE_CARGO_TARGET_DIR (its own lock file, so its own target
# dir). Installs its npm deps (wrangler, binaryen) when they do not match the lock file.
# Needs: the wasm32-unknown-unknown target, worker-build 0.8.7 and wasm-bindgen-cli
# (scripts/setup.sh installs them).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$wm_root/edge-gateway"
wm_npm_ci "$PWD"

command -v worker-build >/dev/null || { echo "worker-build not found: run scripts/setup.sh" >&2; exit 1; }
command -v wasm-bindgen >/dev/null || { echo "wasm-bindgen not found: run scripts/setup.sh" >&2; exit 1; }

ESBUILD="$PWD/node_modules/@esbuild/linux-x64/bin/esbuild"
[ -x "$ESBUILD" ] || ESBUILD="$PWD/node_modules/.bin/esbuild"

WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_BINDGEN_BIN
export ESBUILD_BIN="$ESBUILD"
export WASM_OPT_BIN="$PWD/node_modules/binaryen/bin/wasm-opt"
CARGO_TARGET_DIR="$EDGE_CARGO_TARGET_DIR" worker-build --release
test -f build/worker/shim.mjs
echo "gateway-edge-build: built $(pwd)/build/worker/shim.mjs"
