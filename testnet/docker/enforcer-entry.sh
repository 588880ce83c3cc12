#!/usr/bin/env bash
# Entry of a provider enforcer in the compose network:
#   enforcer-entry.sh PROVIDER VALIDATOR INDEX
# waits for its validator, recovers the dev provider's key (PUBLIC TEST KEYS) into /state,
# registers the provider's cluster once, writes its config and runs hpc-enforcer.
set -euo pipefail
# shellcheck source=testnet/lib.sh
. /opt/virtengine/testnet/lib.sh

provider="$1" validator="$2" index="$3"
state=/state
chain_id="${CHAIN_ID:-virtengine-localnet-1}"
rpc="http://$validator:26657"
HPCD="$HPCD_BIN"

step "waiting for $validator"
until [ "$(rpc_height "$rpc")" -ge 1 ]; do sleep 1; done
mkdir -p "$state/keys"
dev_mnemonic "$provider" |
    "$HPCD" keys add "$provider" --recover --overwrite --keyring-backend test --home "$state/keys" >/dev/null
register_cluster_once "cluster-$provider" "$provider" "$state/keys" "$validator:9090" 8 $((20 + 60 * index))
enforcer_yaml "$provider" "cluster-$provider" "$rpc" "http://$validator:9090" "$chain_id" "$state/keys" \
    "127.0.0.1:8081" "127.0.0.1:9464" "$state/enforcer" "$(embedded_scheduler_yaml 8 "$state")" >"$state/enforcer.yaml"
exec "$ENFORCER_BIN" start --config "$state/enforcer.yaml"
