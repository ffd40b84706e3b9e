#!/usr/bin/env bash
# The browser end-to-end suite, as CI runs it:
#   bash playwright-tests/run.sh [playwright args...]
# 1. npm ci in web/ and playwright-tests/ (skipped when node_modules matches the lock)
# 2. wasm core: crates/mpc-wasm/build.sh -> web/wasm/ (skipped with SKIP_WASM_BUILD=1)
# 3. the package and the demo: (cd web && npm run build), the examples built against
#    its npm pack tarball (web/examples/build.sh), its unit tests (npm test)
# 4. native servers: SIGN_GATEWAY_BIN / SIGN_SERVICE_BIN / RECOVERY_AGENT_BIN if set,
#    otherwise built here (scripts/lib.sh wm_build_servers) into $CARGO_TARGET_DIR
# 5. Playwright with Debian's Chromium (/usr/bin/chromium; never downloads a browser)
# Exits non-zero on any failure. Screenshots and logs: playwright-tests/test-results/.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
. "$repo/scripts/lib.sh"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1

command -v /usr/bin/chromium >/dev/null 2>&1 || [ -n "${CHROMIUM_BIN:-}" ] || {
  echo "Debian chromium is missing (apt-get install -y chromium)" >&2; exit 1; }

wm_say "npm ci (web, playwright-tests)"
wm_npm_ci "$repo/web"
wm_npm_ci "$here"

if [ "${SKIP_WASM_BUILD:-}" != "1" ]; then
  wm_say "wasm core (crates/mpc-wasm/build.sh)"
  bash "$repo/crates/mpc-wasm/build.sh"
fi

wm_say "package + demo (web: npm run build)"
(cd "$repo/web" && npm run --silent build)

wm_say "examples against the packed package (web/examples/build.sh: npm pack, extension, Vite and webpack pages)"
bash "$repo/web/examples/build.sh"

wm_say "package unit tests (node --test)"
(cd "$repo/web" && npm test --silent)

wasm="$repo/web/wasm/mpc_wasm_bg.wasm"
raw=$(stat -c %s "$wasm"); gz=$(gzip -9c "$wasm" | wc -c)
printf 'wasm size: %s bytes raw, %s bytes gzip -9\n' "$raw" "$gz"

if [ -z "${SIGN_GATEWAY_BIN:-}" ] || [ -z "${SIGN_SERVICE_BIN:-}" ] || [ -z "${RECOVERY_AGENT_BIN:-}" ]; then
  wm_say "building the servers (set SIGN_GATEWAY_BIN, SIGN_SERVICE_BIN and RECOVERY_AGENT_BIN to reuse builds)"
  wm_build_servers
fi
for b in SIGN_GATEWAY_BIN SIGN_SERVICE_BIN RECOVERY_AGENT_BIN; do
  [ -x "${!b}" ] || { echo "$b=${!b} is not an executable" >&2; exit 1; }
done
export SIGN_GATEWAY_BIN SIGN_SERVICE_BIN RECOVERY_AGENT_BIN

wm_say "playwright (headless Debian Chromium)"
cd "$here"
set +e
npx --no-install playwright test "$@"
rc=$?
set -e
echo "wasm size: $raw bytes raw, $gz bytes gzip -9"
echo "artifacts: $here/test-results (screenshots, server logs), report: $here/playwright-report"
exit $rc
