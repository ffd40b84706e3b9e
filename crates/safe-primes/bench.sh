#!/usr/bin/env bash
# Safe-prime generation: ours vs the library's generator, pure Rust and GMP, one table each
# and one merged JSON.
#   crates/safe-primes/bench.sh [OUT.json] [extra bench args, e.g. --samples 12 --lib-samples 8]
# Needs m4 for GMP (gmp-mpfr-sys builds GMP from source, cached in ~/.cache/gmp-mpfr-sys).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-target/safe-primes-bench.json}"
shift || true
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$(dirname "$out")"
echo "== pure Rust (num-bigint): ours vs library" >&2
cargo bench -p safe-primes --features bench-num-bigint --bench safe_primes -- --json "$tmp/nb.json" "$@"
echo "== GMP (rug): ours vs library" >&2
cargo bench -p safe-primes --features bench-rug --bench safe_primes -- --json "$tmp/rug.json" "$@"
python3 - "$tmp/nb.json" "$tmp/rug.json" "$out" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
a["rows"] += b["rows"]
json.dump(a, open(sys.argv[3], "w"), indent=2)
PY
echo "wrote $out" >&2
