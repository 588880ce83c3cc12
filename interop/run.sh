#!/usr/bin/env bash
# The independent-client suite: CosmJS (npm), cosmpy (pip) and the Cosmos SDK's Go client
# (Go modules), unchanged, against a fresh devnet (one validator and both dev providers'
# enforcers) in its own directory and ports.
#
#   ./interop/run.sh            install the clients' pinned packages when missing, start the
#                               devnet, run the three suites, stop the devnet (also on failure)
#
# Environment: INTEROP_DIR (devnet dir, default target/interop-devnet), INTEROP_PORT_OFFSET
# (added to the devnet's ports, default 700), HPCD_BIN / ENFORCER_BIN (prebuilt binaries).
# Needs node + npm, python3 (with venv) and go; packages come from the npm registry, PyPI
# and the Go module proxy.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
devnet_dir="${INTEROP_DIR:-$repo/target/interop-devnet}"
offset="${INTEROP_PORT_OFFSET:-700}"
export DEVNET_DIR="$devnet_dir" DEVNET_PORT_OFFSET="$offset"

log() { echo "interop: $*"; }

install_cosmjs() {
    command -v npm >/dev/null || { log "error: npm is required (Node.js 20+)"; exit 1; }
    if [ ! -d "$here/cosmjs/node_modules/@cosmjs/stargate" ]; then
        log "installing CosmJS (npm ci, versions pinned in interop/cosmjs/package-lock.json)"
        (cd "$here/cosmjs" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

install_cosmpy() {
    local venv="$here/cosmpy/.venv"
    if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import cosmpy, grpc_tools, websockets' 2>/dev/null; then
        log "installing cosmpy (pip, versions pinned in interop/cosmpy/requirements.txt)"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/cosmpy/requirements.txt"
    fi
}

# The Go client is a program of ours built with the SDK's own client packages
# (versions pinned in interop/gosdk/go.sum).
build_gosdk() {
    command -v go >/dev/null || { log "error: go is required (the Go SDK client)"; exit 1; }
    log "building the Go SDK client (cosmos-sdk $(awk '$1 == "github.com/cosmos/cosmos-sdk" {print $2}' "$here/gosdk/go.mod"))"
    mkdir -p "$repo/target/interop"
    (cd "$here/gosdk" && go build -o "$repo/target/interop/gosdk" .)
}

install_cosmjs
install_cosmpy
build_gosdk

trap '"$repo/testnet/devnet.sh" stop >/dev/null 2>&1 || true' EXIT
log "starting a fresh devnet in $devnet_dir (ports +$offset)"
"$repo/testnet/devnet.sh" --reset >"$devnet_dir.log" 2>&1 || { tail -n 30 "$devnet_dir.log"; log "error: the devnet did not start"; exit 1; }

export RPC_URL="http://127.0.0.1:$((26657 + offset))" GRPC_ADDR="127.0.0.1:$((9090 + offset))"
export CHAIN_ID=virtengine-devnet-1 DEV_ACCOUNTS="$repo/testnet/dev-accounts.json" PROTO_DIR="$repo/proto"
log "CosmJS $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$here/cosmjs/node_modules/@cosmjs/stargate/package.json")"
(cd "$here/cosmjs" && timeout 300 node suite.mjs)
log "cosmpy $("$here/cosmpy/.venv/bin/python" -c 'import importlib.metadata as m; print(m.version("cosmpy"))')"
timeout 300 "$here/cosmpy/.venv/bin/python" "$here/cosmpy/suite.py"
account() { python3 -c 'import json,sys; print([a for a in json.load(open(sys.argv[1]))["accounts"] if a["name"] == sys.argv[2]][0][sys.argv[3]])' "$DEV_ACCOUNTS" "$1" "$2"; }
timeout 120 "$repo/target/interop/gosdk" "$RPC_URL" "$GRPC_ADDR" "$CHAIN_ID" "$(account alice mnemonic)" "$(account bob address)"
log "all three clients passed"
