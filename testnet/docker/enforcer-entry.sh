#!/usr/bin/env bash
# Entry of a provider enforcer in the compose network:
#   enforcer-entry.sh PROVIDER VALIDATOR INDEX SLURM_HOST
# waits for its validator and for its Slurm cluster (the SLURM_HOST container: slurm.conf in
# /slurm, munged's socket in /run/munge, job directories in /jobs, all shared with it),
# recovers the dev provider's key (PUBLIC TEST KEYS) into /state, registers the provider's
# cluster once (as many nodes as its Slurm cluster has), writes its config and runs
# hpc-enforcer.
set -euo pipefail
# shellcheck source=testnet/lib.sh
. /opt/virtengine/testnet/lib.sh

provider="$1" validator="$2" index="$3" slurm_host="$4"
state=/state
slurm_conf=/slurm/slurm.conf
chain_id="${CHAIN_ID:-virtengine-localnet-1}"
rpc="http://$validator:26657"
HPCD="$HPCD_BIN"

step "waiting for $validator and for $slurm_host's Slurm cluster"
until [ "$(rpc_height "$rpc")" -ge 1 ]; do sleep 1; done
until [ -f "$slurm_conf" ] && SLURM_CONF="$slurm_conf" timeout 10 sinfo -h >/dev/null 2>&1; do sleep 1; done
nodes="$(grep -c '^NodeName=' "$slurm_conf")"
mkdir -p "$state/keys"
dev_mnemonic "$provider" |
    "$HPCD" keys add "$provider" --recover --overwrite --keyring-backend test --home "$state/keys" >/dev/null
register_cluster_once "cluster-$provider" "$provider" "$state/keys" "$validator:9090" "$nodes" $((20 + 60 * index))
enforcer_yaml "$provider" "cluster-$provider" "$rpc" "http://$validator:9090" "$chain_id" "$state/keys" \
    "127.0.0.1:8081" "127.0.0.1:9464" "$state/enforcer" "$(slurm_scheduler_yaml "$slurm_conf" /jobs)" >"$state/enforcer.yaml"
exec "$ENFORCER_BIN" start --config "$state/enforcer.yaml"
