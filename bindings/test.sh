#!/usr/bin/env bash
# Tests of the UniFFI bindings, as CI runs them. Idempotent: installs only what is
# missing, reuses every build it can.
#
#   bindings/test.sh
#
# 1. tools: a JDK, JNA, python3-venv (scripts/setup.sh), a python3 venv with the test
#    libraries ($HOME/.cache/wallet-mpc/venv-bindings, pinned in tests/requirements.txt),
#    the Kotlin compiler (npm `kotlin-compiler` 2.4 in $HOME/.cache/wallet-mpc/kotlin);
# 2. the cdylib + Python/Kotlin/Swift bindings (generate.sh, target dir
#    the shared $CARGO_TARGET_DIR of scripts/lib.sh; BINDINGS_NO_BUILD=1: built already);
# 3. Swift: the generated sources exist and carry the API (compiled if swiftc exists);
# 4. the servers: $SIGN_GATEWAY_BIN / $SIGN_SERVICE_BIN if set, else built by
#    scripts/lib.sh (wm_build_servers; sign-service from its own GMP workspace);
# 5. the Kotlin test compiled (cached by content hash);
# 6. pytest: smoke tests, then the real-process tests (gateway + cosigner on loopback,
#    wallet created through the bindings, EIP-1559 signature verified with eth-account
#    and eth-keys, typed errors, progress), the EVM tests (a transaction signed through
#    the bindings mined by anvil, typed data, an authorization refused), the Bitcoin
#    PSBT tests (embit builds the PSBTs and verifies the signed inputs), then the
#    Kotlin test in the same session.
#
# Environment: SIGN_GATEWAY_BIN, SIGN_SERVICE_BIN (prebuilt servers), BINDINGS_NO_BUILD,
# WALLET_MPC_CACHE (default $HOME/.cache/wallet-mpc), PYTHON (default python3),
# PYTEST_ARGS (extra pytest arguments), WALLET_MPC_KEEP=1 (keep the temp dirs).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
. "$root/scripts/lib.sh"
cache="${WALLET_MPC_CACHE:-$HOME/.cache/wallet-mpc}"
venv="$cache/venv-bindings"
kotlin_dir="$cache/kotlin"
kotlin_version="2.4"
started=$SECONDS

step() { printf '\n[bindings %4ss] %s\n' "$((SECONDS - started))" "$*"; }

# ----------------------------------------------------------------------------- tools
step "tools"
# A JDK, JNA, python3-venv and npm (Debian packages; idempotent, quick when present);
# anvil for the EVM tests (testing/evm-tools).
bash "$root/scripts/setup.sh" bindings evm
jna_jar=/usr/share/java/jna.jar
python="${PYTHON:-python3}"
req="$here/tests/requirements.txt"
req_stamp="$venv/.requirements.sha256"
req_hash="$(sha256sum "$req" | cut -d' ' -f1)"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ "$(cat "$req_stamp" 2>/dev/null)" != "$req_hash" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
  echo "$req_hash" > "$req_stamp"
fi

kotlinc="$kotlin_dir/node_modules/kotlin-compiler/bin/kotlinc"
if [ ! -x "$kotlinc" ] || ! grep -q "\"version\": \"$kotlin_version" "$kotlin_dir/node_modules/kotlin-compiler/package.json"; then
  mkdir -p "$kotlin_dir"
  npm install --prefix "$kotlin_dir" --no-audit --no-fund --silent "kotlin-compiler@$kotlin_version"
fi
kotlin_lib="$kotlin_dir/node_modules/kotlin-compiler/lib"

# ------------------------------------------------------------------------- bindings
step "cdylib + bindings (generate.sh)"
"$here/generate.sh" >/dev/null
gen="$here/generated"
libdir="$CARGO_TARGET_DIR/debug"

# ---------------------------------------------------------------------------- swift
step "swift sources"
swift_src="$gen/swift/wallet_mpc_ffi.swift"
for f in "$swift_src" "$gen/swift/wallet_mpc_ffiFFI.h" "$gen/swift/wallet_mpc_ffiFFI.modulemap"; do
  [ -s "$f" ] || { echo "missing generated Swift file $f" >&2; exit 1; }
done
for api in "func newMpcClient(" "func signTx(" "func signMessage(" "func createWallet(" \
  "func getPublicKey(" "func listAccounts(" "func defaultMpcConfig(" "public struct MpcConfig" \
  "enum MpcError: Swift.Error" "case UnknownAccount(" "case CosignerUnavailable(" \
  "public protocol ProgressListener" "public enum ChainStyle" "func signTransaction(" \
  "func signTypedData(" "func signAuthorization(" "public struct SignedTransaction"; do
  grep -qF "$api" "$swift_src" || { echo "generated Swift lacks '$api'" >&2; exit 1; }
done
if command -v swiftc >/dev/null 2>&1; then
  swift_out="$(mktemp -d)"
  swiftc -parse-as-library -emit-library -module-name wallet_mpc_ffi \
    -Xcc -fmodule-map-file="$gen/swift/wallet_mpc_ffiFFI.modulemap" -I "$gen/swift" \
    -L "$libdir" -lwallet_mpc_ffi -o "$swift_out/libwallet_mpc_ffi_swift.so" "$swift_src"
  rm -rf "$swift_out"
  echo "Swift sources compiled with $(swiftc --version 2>&1 | head -1)"
else
  echo "Swift sources generated and checked (no swiftc here: not compiled)"
fi

# -------------------------------------------------------------------------- servers
step "servers"
if [ -z "${SIGN_GATEWAY_BIN:-}" ] || [ -z "${SIGN_SERVICE_BIN:-}" ]; then
  wm_build_servers
fi
for b in "$SIGN_GATEWAY_BIN" "$SIGN_SERVICE_BIN"; do
  [ -x "$b" ] || { echo "server binary $b is missing" >&2; exit 1; }
done
export SIGN_GATEWAY_BIN SIGN_SERVICE_BIN
echo "gateway: $SIGN_GATEWAY_BIN"
echo "cosigner: $SIGN_SERVICE_BIN"

# --------------------------------------------------------------------------- kotlin
step "kotlin test (compile)"
kt_gen="$gen/kotlin/uniffi/wallet_mpc_ffi/wallet_mpc_ffi.kt"
# The shared vocabulary (ErrorCode, kinds, roles) is wallet-types' own component.
kt_types="$gen/kotlin/uniffi/wallet_types/wallet_types.kt"
kt_test="$here/tests/kotlin/BindingsTest.kt"
kt_hash="$(cat "$kt_gen" "$kt_types" "$kt_test" "$kotlin_dir/node_modules/kotlin-compiler/build.txt" | sha256sum | cut -c1-16)"
kt_jar="$kotlin_dir/build/bindings-test-$kt_hash.jar"
cp_deps="$kotlin_lib/kotlinx-coroutines-core-jvm.jar:$jna_jar"
if [ ! -s "$kt_jar" ]; then
  mkdir -p "$kotlin_dir/build"
  rm -f "$kotlin_dir"/build/bindings-test-*.jar
  "$kotlinc" -nowarn -jvm-target 17 -cp "$cp_deps" -d "$kt_jar.tmp.jar" "$kt_gen" "$kt_types" "$kt_test"
  mv "$kt_jar.tmp.jar" "$kt_jar"
else
  echo "reusing $kt_jar"
fi
# JNA finds libwallet_mpc_ffi.so through jna.library.path (Debian's JNA loads its own
# libjnidispatch from the system JNI directory).
WALLET_MPC_KOTLIN_CMD="java -Djna.library.path=$libdir"
WALLET_MPC_KOTLIN_CMD+=" -cp $kt_jar:$kotlin_lib/kotlin-stdlib.jar:$cp_deps BindingsTestKt"
export WALLET_MPC_KOTLIN_CMD WALLET_MPC_REQUIRE_KOTLIN=1

# ---------------------------------------------------------------------------- tests
step "pytest (smoke, real processes, Kotlin)"
export WALLET_MPC_FFI_PY="$gen/python"
cd "$here"
set +e
# shellcheck disable=SC2086
"$venv/bin/python" -m pytest -p no:cacheprovider -v -rfEs --durations=5 \
  tests/test_smoke.py tests/test_e2e.py tests/test_backup.py tests/test_evm.py tests/test_bitcoin_psbt.py \
  tests/test_kotlin.py ${PYTEST_ARGS:-}
rc=$?
set -e
step "done (exit $rc)"
exit $rc
