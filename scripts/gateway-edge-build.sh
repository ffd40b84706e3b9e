#!/usr/bin/env bash
# Builds edge-gateway/ (Cloudflare Worker in Rust) with worker-build into
# edge-gateway/build/. Idempotent: installs npm deps (wrangler, binaryen) only if missing.
# Needs: cargo, the wasm32-unknown-unknown target, worker-build 0.8.7 and
# wasm-bindgen-cli 0.2.130 in PATH or ~/.cargo/bin (cargo install --locked ...).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here/edge-gateway"

if [ ! -x node_modules/.bin/wrangler ] || [ ! -x node_modules/binaryen/bin/wasm-opt ]; then
  echo "gateway-edge-build: installing npm deps (npm ci)"
  npm ci --no-audit --no-fund
fi

find_bin() { command -v "$1" 2>/dev/null || { [ -x "$HOME/.cargo/bin/$1" ] && echo "$HOME/.cargo/bin/$1"; } || true; }
WORKER_BUILD="$(find_bin worker-build)"
WASM_BINDGEN="$(find_bin wasm-bindgen)"
[ -n "$WORKER_BUILD" ] || { echo "worker-build not found: cargo install --locked worker-build --version 0.8.7" >&2; exit 1; }
[ -n "$WASM_BINDGEN" ] || { echo "wasm-bindgen not found: cargo install --locked wasm-bindgen-cli --version 0.2.130" >&2; exit 1; }

ESBUILD="$PWD/node_modules/@esbuild/linux-x64/bin/esbuild"
[ -x "$ESBUILD" ] || ESBUILD="$PWD/node_modules/.bin/esbuild"

export WASM_BINDGEN_BIN="$WASM_BINDGEN"
export ESBUILD_BIN="$ESBUILD"
export WASM_OPT_BIN="$PWD/node_modules/binaryen/bin/wasm-opt"
export CARGO_TARGET_DIR="${EDGE_CARGO_TARGET_DIR:-$PWD/target}"
"$WORKER_BUILD" --release
test -f build/worker/shim.mjs
echo "gateway-edge-build: built $(pwd)/build/worker/shim.mjs"
