#!/usr/bin/env bash
# Release build of the browser participant: wasm32 + wasm-bindgen --target web into
# web/wasm/ (override with MPC_WASM_OUT), then wasm-opt -O when available (npm
# `binaryen`, installed once into $HOME/.cache/wallet-mpc/npm-tools; MPC_WASM_NO_OPT=1
# skips it). Prints raw and gzip sizes. Target dir: the shared one of scripts/lib.sh.
#
#   build.sh [--with-tests]
#
# --with-tests builds the library and the wasm32 browser test targets of the crate in the
# same compile ($wm_wasm_test_targets: `test.sh` then only runs them; not the examples,
# which are native tools), and checks the benchmark target without building it (its
# own run, `test.sh --bench`, builds it): the one release build that the wasm tests,
# the npm package and Playwright all use. CI runs it with clippy inside the build.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/../../scripts/lib.sh"
out=${MPC_WASM_OUT:-$wm_root/web/wasm}
tools=${MPC_NPM_TOOLS:-$HOME/.cache/wallet-mpc/npm-tools}
binaryen_version=${BINARYEN_VERSION:-123.0.0}
targets=(--lib)
case "${1:-}" in
  --with-tests) targets=(--lib "${wm_wasm_test_targets[@]}") ;;
  "") ;;
  *) echo "usage: build.sh [--with-tests]" >&2; exit 2 ;;
esac

have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}') || true
if [ "$have" != "$wm_wasm_bindgen_version" ]; then
  echo "build.sh: wasm-bindgen CLI $wm_wasm_bindgen_version required (found '${have:-none}'): run scripts/setup.sh demo" >&2
  exit 1
fi

(cd "$wm_root" && cargo build --release --target wasm32-unknown-unknown -p mpc-wasm "${targets[@]}")
if [ "${1:-}" = --with-tests ]; then
  (cd "$wm_root" && cargo check --release --target wasm32-unknown-unknown -p mpc-wasm --test bench)
fi
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
