#!/usr/bin/env bash
# Builds the wallet-mpc-ffi cdylib and generates Python, Kotlin and Swift bindings
# into bindings/generated/{python,kotlin,swift} (git-ignored).
#
#   bindings/generate.sh            # debug build (profile "dev")
#   PROFILE=release bindings/generate.sh
#   LANGUAGES="python" bindings/generate.sh
#   BINDINGS_NO_BUILD=1 bindings/generate.sh   # the library is built already (CI builds
#                                              # every target of the workspace at once)
#
# The bindings are generated from the metadata embedded in the library itself
# (`uniffi-bindgen generate --library`), with the uniffi-bindgen built from this crate,
# so generator and scaffolding are always the same uniffi version.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../scripts/lib.sh"
cd "$here"

PROFILE="${PROFILE:-dev}"
LANGUAGES="${LANGUAGES:-python kotlin swift}"
OUT="${OUT:-$here/generated}"

if [ "$PROFILE" = dev ]; then profile_dir=debug; else profile_dir="$PROFILE"; fi

[ "${BINDINGS_NO_BUILD:-}" = 1 ] || cargo build -p wallet-mpc-ffi --profile "$PROFILE" --lib --bin uniffi-bindgen

case "$(uname -s)" in
  Darwin) lib="$CARGO_TARGET_DIR/$profile_dir/libwallet_mpc_ffi.dylib" ;;
  *)      lib="$CARGO_TARGET_DIR/$profile_dir/libwallet_mpc_ffi.so" ;;
esac
bindgen="$CARGO_TARGET_DIR/$profile_dir/uniffi-bindgen"

for lang in $LANGUAGES; do
  rm -rf "${OUT:?}/$lang"
  mkdir -p "$OUT/$lang"
  "$bindgen" generate --library "$lib" --language "$lang" --out-dir "$OUT/$lang"
done

# The Python module loads the shared library from its own directory.
if [[ " $LANGUAGES " == *" python "* ]]; then
  cp "$lib" "$OUT/python/"
fi

echo "generated into $OUT:"
find "$OUT" -type f | sort
