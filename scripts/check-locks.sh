#!/usr/bin/env bash
# The repository's cargo workspaces (root, sign-service) share one target
# directory; a dependency compiles once only if every lock file picks the same version.
# Fails, naming the package, when a lock file of another workspace resolves a crate the
# root also uses to a different version (fix: copy the root's Cargo.lock over it and run
# `cargo metadata` there, or `cargo update -p NAME --precise VERSION`).
# Likewise fails when the workspaces' [profile] tables differ: a dependency built with
# another profile is compiled again.
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
for other in ["sign-service/Cargo.lock"]:
    path = root / other
    if not path.exists():
        continue
    for name, vs in versions(path).items():
        if name in base and not vs <= base[name]:
            bad.append(f"{other}: {name} {sorted(vs)} but the root lock has {sorted(base[name])}")
def profiles(manifest):
    return tomllib.loads(manifest.read_text()).get("profile", {})
for other in ["sign-service/Cargo.toml"]:
    if profiles(root / other) != profiles(root / "Cargo.toml"):
        bad.append(f"{other}: [profile] tables differ from the root Cargo.toml's")
for b in bad:
    print(b, file=sys.stderr)
if bad:
    sys.exit(1)
print("lock files and profiles agree with the root workspace")
PY
