#!/usr/bin/env bash
# Installs what building and testing the wallet needs. Idempotent: every step is
# skipped when already done, so it is cheap on a machine that has run it before.
#
#   scripts/setup.sh [PART...]        (no PART: all of them, what CI needs)
#
#   native    Debian m4 and pkg-config (GMP is built from source by gmp-mpfr-sys),
#             softhsm2 (the PKCS#11 token the cosigner's HSM tests run against),
#             redis-server (the gateway's tests of its rooms on Redis start their own)
#             and postgresql (the server the cosigner's PostgreSQL store tests start)
#   web       the browser participant and the npm package: Node + npm, the
#             wasm32-unknown-unknown target, wasm-bindgen-cli, clang + llvm-ar (the
#             wasm core's libsecp256k1, via rust-bitcoin)
#   demo      native + web (scripts/demo.sh)
#   lint      rustfmt, clippy, PyYAML (the deploy files' checks, scripts/tests)
#   browser   Debian chromium + chromium-driver (browser tests; never downloaded)
#   bindings  a JDK, JNA, python3-venv, npm (the UniFFI bindings' Kotlin/Python tests)
#   edge      worker-build and the npm dependencies of edge-gateway/ (wrangler, binaryen)
#   evm       Foundry's anvil (an Ethereum node; the binary ships in its npm package) and
#             solc-js, from testing/evm-tools/package-lock.json
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
parts=" ${*:-native web lint browser bindings edge evm} "
parts="${parts/ demo / native web }"
want() { [[ "$parts" == *" $1 "* ]]; }
for p in $parts; do
  case "$p" in native|web|lint|browser|bindings|edge|evm) ;;
    *) echo "setup.sh: unknown part '$p' (native web demo lint browser bindings edge evm)" >&2; exit 2 ;;
  esac
done
log() { printf '\n== setup: %s\n' "$*"; }

need_apt=()
if want native; then
  command -v m4 >/dev/null 2>&1 || need_apt+=(m4)
  command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
  [ -f /usr/lib/softhsm/libsofthsm2.so ] || need_apt+=(softhsm2)
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || need_apt+=(redis-server)
  # PostgreSQL server binaries (initdb, pg_ctl): the cosigner's PostgreSQL store tests
  # start their own server.
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
fi
if want web || want bindings || want edge || want evm; then
  command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
fi
if want web; then
  # The wasm core carries rust-bitcoin, whose libsecp256k1 (C) the cc crate compiles
  # for wasm32 with clang and archives with llvm-ar.
  command -v clang >/dev/null 2>&1 || need_apt+=(clang)
  command -v llvm-ar >/dev/null 2>&1 || need_apt+=(llvm)
fi
if want lint; then
  python3 -c 'import yaml' >/dev/null 2>&1 || need_apt+=(python3-yaml)
fi
if want browser; then
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  [ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
fi
if want bindings; then
  command -v java >/dev/null 2>&1 || need_apt+=(default-jdk-headless)
  [ -f /usr/share/java/jna.jar ] || need_apt+=(libjna-java)
  python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

if want lint; then
  components=$(rustup component list --installed 2>/dev/null)
  grep -q '^rustfmt' <<<"$components" || { log "rustfmt"; rustup component add rustfmt; }
  grep -q '^clippy' <<<"$components" || { log "clippy"; rustup component add clippy; }
fi
if want web || want edge; then
  rustup target list --installed | grep -q '^wasm32-unknown-unknown$' || { log "wasm32 target"; rustup target add wasm32-unknown-unknown; }
  if ! wasm-bindgen --version 2>/dev/null | grep -q "$wm_wasm_bindgen_version"; then
    log "wasm-bindgen-cli $wm_wasm_bindgen_version (a few minutes, once)"
    cargo install wasm-bindgen-cli --version "$wm_wasm_bindgen_version"
  fi
fi
if want edge; then
  if ! worker-build --version 2>/dev/null | grep -q '0.8.7'; then
    log "worker-build 0.8.7 (about 12 minutes, once)"
    cargo install worker-build --version 0.8.7
  fi
  wm_npm_ci "$wm_root/edge-gateway"
fi
if want evm; then
  # The binary is the optional platform package (@foundry-rs/anvil-linux-amd64); the
  # wrapper's postinstall script is not needed.
  wm_npm_ci "$wm_evm_tools"
  "$ANVIL_BIN" --version >/dev/null || { echo "setup.sh: anvil does not run ($ANVIL_BIN)" >&2; exit 1; }
fi
log "done:$parts"
