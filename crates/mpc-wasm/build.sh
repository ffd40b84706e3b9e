#!/usr/bin/env bash
# Release build of the browser participant: wasm32 + wasm-bindgen --target web into
# web/wasm/ (override with MPC_WASM_OUT), then wasm-opt -O when available (npm
# `binaryen`, installed once into $HOME/.cache/wallet-mpc/npm-tools; MPC_WASM_NO_OPT=1
# skips it). Prints raw and gzip sizes.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target-wasm}
out=${MPC_WASM_OUT:-$root/web/wasm}
tools=${MPC_NPM_TOOLS:-$HOME/.cache/wallet-mpc/npm-tools}
binaryen_version=${BINARYEN_VERSION:-123.0.0}
PATH="$HOME/.cargo/bin:$PATH"

want=0.2.130
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}') || true
if [ "$have" != "$want" ]; then
  echo "build.sh: wasm-bindgen CLI $want required (found '${have:-none}'): cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi

(cd "$root" && cargo build --release --target wasm32-unknown-unknown -p mpc-wasm)
wasm="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/mpc_wasm.wasm"
mkdir -p "$out"
wasm-bindgen --target web --out-dir "$out" "$wasm"
bg="$out/mpc_wasm_bg.wasm"
size() { printf '%s raw %8d B  gzip -9 %8d B\n' "$1" "$(stat -c %s "$2")" "$(gzip -9 -c "$2" | wc -c)"; }
size "wasm-bindgen output:" "$bg"

if [ "${MPC_WASM_NO_OPT:-0}" != 1 ]; then
  opt="$tools/node_modules/.bin/wasm-opt"
  if [ ! -x "$opt" ] && command -v npm >/dev/null; then
    mkdir -p "$tools"
    npm install --prefix "$tools" --no-audit --no-fund --silent "binaryen@$binaryen_version" >&2 \
      || echo "build.sh: could not install binaryen; leaving the wasm unoptimised" >&2
  fi
  if [ -x "$opt" ]; then
    "$opt" -O --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
      --enable-mutable-globals --enable-reference-types --enable-multivalue \
      "$bg" -o "$bg.opt"
    mv "$bg.opt" "$bg"
    size "after wasm-opt -O:  " "$bg"
  fi
fi
echo "build.sh: wrote $out"
