#!/usr/bin/env bash
# Copies the .proto files of the Cosmos services hpcd serves (and everything they import)
# into proto/third_party from the Go module cache, at pinned versions. The files are
# committed; run this only to move to other versions. They feed gRPC reflection (build.rs
# compiles them into the descriptor set); no Rust code is generated from them.
#
#   scripts/vendor-cosmos-protos.sh      (needs Go; downloads the modules through the Go proxy)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$repo/proto/third_party"
COSMOS_SDK=github.com/cosmos/cosmos-sdk@v0.50.11
GOGOPROTO=github.com/cosmos/gogoproto@v1.7.0
COSMOS_PROTO=github.com/cosmos/cosmos-proto@v1.0.0-beta.5
GATEWAY=github.com/grpc-ecosystem/grpc-gateway@v1.16.0 # google/api/{annotations,http}.proto

# The services served (chain-module/hpcd/src/grpc.rs); their imports are followed.
SERVICES=(
    cosmos/auth/v1beta1/query.proto
    cosmos/bank/v1beta1/query.proto
    cosmos/tx/v1beta1/service.proto
    cosmos/base/tendermint/v1beta1/query.proto
    cosmos/consensus/v1/query.proto
)

dir_of() { # MODULE@VERSION -> its directory in the module cache (downloaded if needed)
    (cd "$(mktemp -d)" && go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
}

roots=(
    "$(dir_of "$COSMOS_SDK")/proto"
    "$(dir_of "$GOGOPROTO")"
    "$(dir_of "$COSMOS_PROTO")/proto"
    "$(dir_of "$GATEWAY")/third_party/googleapis"
)

declare -A done_files=()
copy_closure() {
    local file="$1" root found="" import
    [ -z "${done_files[$file]:-}" ] || return 0
    done_files[$file]=1
    case "$file" in google/protobuf/*) return 0 ;; esac # built into protox
    for root in "${roots[@]}"; do
        if [ -f "$root/$file" ]; then found="$root/$file"; break; fi
    done
    [ -n "$found" ] || { echo "error: $file not found in ${roots[*]}" >&2; exit 1; }
    install -D -m 0644 "$found" "$dest/$file"
    while read -r import; do
        copy_closure "$import"
    done < <(sed -n 's/^import[[:space:]]*\(public[[:space:]]*\)\{0,1\}"\([^"]*\)";.*/\2/p' "$found")
}

for service in "${SERVICES[@]}"; do copy_closure "$service"; done
install -D -m 0644 "$(dir_of "$COSMOS_SDK")/LICENSE" "$dest/LICENSES/cosmos-sdk"
install -D -m 0644 "$(dir_of "$GOGOPROTO")/LICENSE" "$dest/LICENSES/gogoproto"
install -D -m 0644 "$(dir_of "$COSMOS_PROTO")/LICENSE" "$dest/LICENSES/cosmos-proto"
install -D -m 0644 "$(dir_of "$GATEWAY")/third_party/googleapis/LICENSE" "$dest/LICENSES/googleapis"
echo "copied ${#done_files[@]} files (well-known types excluded) into $dest"
