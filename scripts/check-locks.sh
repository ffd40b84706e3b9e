#!/usr/bin/env bash
# The repository's cargo workspaces (root, sign-service) share one target
# directory; a dependency compiles once only if every lock file picks the same version.
# Fails, naming the package, when a lock file of another workspace resolves a crate the
# root also uses to a different semver-compatible version (a second copy of the same
# crate compiled for nothing; a semver-incompatible extra version, e.g. sha3 0.11 that
# alloy needs beside the root's 0.10, is a different crate and is allowed) (fix: copy the root's Cargo.lock over it and run
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
def compat(v):
    """The semver-compatibility class of a version: 1.2.3 -> 1, 0.2.3 -> 0.2, 0.0.3 -> 0.0.3."""
    parts = v.split("-")[0].split(".")
    if parts[0] != "0":
        return parts[0]
    if parts[1] != "0":
        return "0." + parts[1]
    return v
base = versions(root / "Cargo.lock")
bad = []
for other in ["sign-service/Cargo.lock"]:
    path = root / other
    if not path.exists():
        continue
    for name, vs in versions(path).items():
        if name not in base:
            continue
        classes = {compat(b): b for b in base[name]}
        for v in sorted(vs - base[name]):
            if compat(v) in classes:
                bad.append(f"{other}: {name} {v} but the root lock has {classes[compat(v)]}")
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
