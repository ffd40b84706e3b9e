# Shared shell pieces of the project's scripts. Source it:
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"      (from scripts/)
# It sets `wm_root` (the repository), puts ~/.cargo/bin on PATH and exports the ONE
# target directory every cargo workspace of the repository builds into (the root
# workspace, sign-service, bindings, edge-gateway), so nothing is compiled twice.

wm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wallet-mpc/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# The cosigner is a cargo workspace of its own (GMP only): every cargo command for it
# passes this manifest.
wm_cosigner_manifest="$wm_root/sign-service/Cargo.toml"

# wm_build_servers [release]
# Builds the server binaries the end-to-end suites, the demo and the benchmarks start
# (sign-gateway, recovery-agent, the CLI `client`, and sign-service from its own
# workspace) and exports SIGN_GATEWAY_BIN, RECOVERY_AGENT_BIN, CLIENT_BIN,
# SIGN_SERVICE_BIN. A no-op when they are up to date.
wm_build_servers() {
  local profile=debug flag=()
  if [ "${1:-}" = release ]; then profile=release; flag=(--release); fi
  (cd "$wm_root" && cargo build -q "${flag[@]}" -p sign-gateway --bin sign-gateway \
      -p recovery-agent --bin recovery-agent -p wallet-cli --bin client)
  cargo build -q "${flag[@]}" --manifest-path "$wm_cosigner_manifest" --bin sign-service
  export SIGN_GATEWAY_BIN="$CARGO_TARGET_DIR/$profile/sign-gateway"
  export RECOVERY_AGENT_BIN="$CARGO_TARGET_DIR/$profile/recovery-agent"
  export CLIENT_BIN="$CARGO_TARGET_DIR/$profile/client"
  export SIGN_SERVICE_BIN="$CARGO_TARGET_DIR/$profile/sign-service"
}

# wm_free_port: a port that was free a moment ago on 127.0.0.1 (for servers that cannot
# bind port 0 and report it).
wm_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
