#!/usr/bin/env bash
# The browser end-to-end suite, as CI runs it:
#   bash playwright-tests/run.sh [playwright args...]
# 1. npm ci in web/ and playwright-tests/ (skipped when node_modules matches the lock)
# 2. wasm core: crates/mpc-wasm/build.sh -> web/wasm/ (skipped with SKIP_WASM_BUILD=1)
# 3. the package and the demo: (cd web && npm run build), its unit tests (npm test)
# 4. native servers: SIGN_GATEWAY_BIN / SIGN_SERVICE_BIN / RECOVERY_AGENT_BIN if set,
#    otherwise cargo-built here (one package per invocation: sign-service keeps GMP)
#    into $CARGO_TARGET_DIR (default $HOME/.cache/wallet-mpc/target-recovery)
# 5. Playwright with Debian's Chromium (/usr/bin/chromium; never downloads a browser)
# Exits non-zero on any failure. Screenshots and logs: playwright-tests/test-results/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

command -v /usr/bin/chromium >/dev/null 2>&1 || [ -n "${CHROMIUM_BIN:-}" ] || {
  echo "Debian chromium is missing (apt-get install -y chromium)" >&2; exit 1; }

# npm ci only when node_modules was not installed from this exact lock file.
npm_ci() {
  local dir="$1" sum
  sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$dir/node_modules/.lock-sha256" 2>/dev/null)" = "$sum" ]; then
    echo "$dir: node_modules up to date"
    return
  fi
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$sum" > "$dir/node_modules/.lock-sha256"
}

say "npm ci (web, playwright-tests)"
npm_ci "$repo/web"
npm_ci "$here"

if [ "${SKIP_WASM_BUILD:-}" != "1" ]; then
  say "wasm core (crates/mpc-wasm/build.sh)"
  bash "$repo/crates/mpc-wasm/build.sh"
fi

say "package + demo (web: npm run build)"
(cd "$repo/web" && npm run --silent build)

say "package unit tests (node --test)"
(cd "$repo/web" && npm test --silent)

wasm="$repo/web/wasm/mpc_wasm_bg.wasm"
raw=$(stat -c %s "$wasm"); gz=$(gzip -9c "$wasm" | wc -c)
printf 'wasm size: %s bytes raw, %s bytes gzip -9\n' "$raw" "$gz"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target-recovery}"
build_bin() { # $1 env var, $2 package, $3 bin
  if [ -z "${!1:-}" ]; then
    say "cargo build -p $2 (set $1 to reuse a build)"
    (cd "$repo" && cargo build -q -p "$2" --bin "$3")
    export "$1=$CARGO_TARGET_DIR/debug/$3"
  fi
  [ -x "${!1}" ] || { echo "$1=${!1} is not an executable" >&2; exit 1; }
}
build_bin SIGN_GATEWAY_BIN sign-gateway sign-gateway
build_bin SIGN_SERVICE_BIN sign-service sign-service
build_bin RECOVERY_AGENT_BIN recovery-agent recovery-agent

say "playwright (headless Debian Chromium)"
cd "$here"
set +e
npx --no-install playwright test "$@"
rc=$?
set -e
echo "wasm size: $raw bytes raw, $gz bytes gzip -9"
echo "artifacts: $here/test-results (screenshots, server logs), report: $here/playwright-report"
exit $rc
