#!/usr/bin/env bash
# The repository's cargo workspaces (root, sign-service, bindings) share one target
# directory; a dependency compiles once only if every lock file picks the same version.
# Fails, naming the package, when a lock file of another workspace resolves a crate the
# root also uses to a different version (fix: copy the root's Cargo.lock over it and run
# `cargo metadata` there, or `cargo update -p NAME --precise VERSION`).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
python3 - "$wm_root" <<'PY'
import sys, tomllib, pathlib
root = pathlib.Path(sys.argv[1])
def versions(lock):
    out = {}
    for p in tomllib.loads(lock.read_text())["package"]:
        out.setdefault(p["name"], set()).add(p["version"])
    return out
base = versions(root / "Cargo.lock")
bad = []
for other in ["sign-service/Cargo.lock", "bindings/Cargo.lock"]:
    path = root / other
    if not path.exists():
        continue
    for name, vs in versions(path).items():
        if name in base and not vs <= base[name]:
            bad.append(f"{other}: {name} {sorted(vs)} but the root lock has {sorted(base[name])}")
for b in bad:
    print(b, file=sys.stderr)
if bad:
    sys.exit(1)
print("lock files agree with the root Cargo.lock")
PY
