#!/usr/bin/env bash
# Installs what building and testing the wallet needs. Idempotent: every step is
# skipped when already done, so it is cheap on a machine that has run it before.
#   - Debian packages: m4 (GMP is built from source by gmp-mpfr-sys), pkg-config
#   - Rust: rustfmt, clippy, the wasm32-unknown-unknown target
#   - wasm-bindgen-cli 0.2.130 and worker-build 0.8.7 (edge gateway build)
#   - npm dependencies of edge-gateway/ (wrangler, binaryen)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '\n== setup: %s\n' "$*"; }

need_apt=()
command -v m4 >/dev/null 2>&1 || need_apt+=(m4)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
# Browser tests (wasm-bindgen-test, Playwright) use Debian's Chromium: never downloaded.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# UniFFI Kotlin test: a JDK and JNA.
command -v java >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
[ -f /usr/share/java/jna.jar ] || need_apt+=(libjna-java)
# Python bindings test venv.
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || { log "rustfmt"; rustup component add rustfmt; }
rustup component list --installed 2>/dev/null | grep -q '^clippy' || { log "clippy"; rustup component add clippy; }
rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || { log "wasm32 target"; rustup target add wasm32-unknown-unknown; }

export PATH="$HOME/.cargo/bin:$PATH"
if ! wasm-bindgen --version 2>/dev/null | grep -q '0.2.130'; then
  log "wasm-bindgen-cli 0.2.130 (a few minutes, once)"
  cargo install wasm-bindgen-cli --version 0.2.130
fi
if ! worker-build --version 2>/dev/null | grep -q '0.8.7'; then
  log "worker-build 0.8.7 (about 12 minutes, once)"
  cargo install worker-build --version 0.8.7
fi

if [ ! -x "$here/edge-gateway/node_modules/.bin/wrangler" ] || [ ! -x "$here/edge-gateway/node_modules/binaryen/bin/wasm-opt" ]; then
  log "npm ci (edge-gateway)"
  (cd "$here/edge-gateway" && npm ci --no-audit --no-fund)
fi
log "done"
