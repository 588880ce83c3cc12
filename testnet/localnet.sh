#!/usr/bin/env bash
# A multi-validator network of local processes (no Docker), for CI and determinism checks.
#
#   ./testnet/localnet.sh start [N] [--reset] [--no-build] [--no-enforcers]
#                                              create N validators (default 4) on first run,
#                                              start them, wait until all are at height >= 3,
#                                              then start one enforcer per dev provider
#                                              (provider1 on node1, provider2 on node2)
#   ./testnet/localnet.sh stop                 stop every node (state is kept)
#   ./testnet/localnet.sh status               pid, height and app hash of every node
#   ./testnet/localnet.sh check-apphash [H]    compare app_hash of /block?height=h on every
#                                              node for h in 1..H (default: the lowest current
#                                              height; also "A-B"); exit 1 on any difference
#   ./testnet/localnet.sh logs [I]             follow node I's log (default: all nodes)
#   ./testnet/localnet.sh reset                stop and delete .localnet
#   ./testnet/localnet.sh smoke [N]            CI: fresh network with its enforcers, 2 bank txs,
#                                              a script job routed and COMPLETED, height >= 20,
#                                              check-apphash, stop (exit 1 on any failure)
#
# Node I lives in <repo>/.localnet/nodeI with ports BASE+10*I (BASE=21000, below Linux's
# ephemeral range 32768-60999 so outgoing connections never hold them; env
# LOCALNET_BASE_PORT): P2P +0, CometBFT RPC +1, gRPC +3, all on 127.0.0.1; ABCI on a unix
# socket in each home. Enforcer J (provider1, provider2) lives in .localnet/enforcer-<provider>,
# admin API on BASE+500+10*J and metrics on +1, embedded scheduler with 8 nodes.
# Chain id virtengine-localnet-1, timeout_commit 500ms, each validator has power 10.
# The dev accounts (testnet/dev-accounts.json) are PUBLIC TEST KEYS: never hold real funds.
#
# Internal: `localnet.sh init-docker N DIR` writes the same network for testnet/docker-compose.yml
# (listening on 0.0.0.0 with standard ports; peers addressed as nodeI:26656).
set -euo pipefail

# shellcheck source=testnet/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHAIN_ID="${LOCALNET_CHAIN_ID:-virtengine-localnet-1}"
LOCALNET_DIR="${LOCALNET_DIR:-$REPO_ROOT/.localnet}"
BASE_PORT="${LOCALNET_BASE_PORT:-21000}"
TIMEOUT_COMMIT="${LOCALNET_TIMEOUT_COMMIT:-500ms}"
START_TIMEOUT="${LOCALNET_START_TIMEOUT:-120}"
VALIDATOR_POWER=10
READY_HEIGHT=3
NETWORK_FILE="network.env" # inside the network dir: N, chain id, base port, mode

usage() {
    cat <<'USAGE'
usage: ./testnet/localnet.sh start [N=4] [--reset] [--no-build] [--no-enforcers] | stop | status | check-apphash [H|A-B] | logs [I] | reset

  start [N]          create N validator homes under .localnet (first run or --reset), start
                     them all, wait until every node is at height >= 3, start the enforcers of
                     provider1 (on node1) and provider2 (on node2), print endpoints
                     (--no-build: use the existing target/debug binaries, skip cargo;
                     --no-enforcers: validators only)
  stop               stop every node (SIGTERM; state is kept, start resumes it)
  status             pid, height and app hash of every node (exit 1 if any is down)
  check-apphash [H]  fetch /block?height=h from every node for h = 1..H (default: the lowest
                     current height; "A-B" for a range) and fail if any app_hash differs
  logs [I]           follow node I's log (default: all)
  reset              stop and delete .localnet
  smoke [N]          CI: start a fresh N-node network with its enforcers, send 2 bank txs
                     through different nodes, compare balances, route a script job to
                     COMPLETED, wait for height 20, check-apphash, stop

ports: node I uses 21000+10*I (P2P), +1 (RPC), +3 (gRPC) on 127.0.0.1 (ABCI: unix socket)
enforcers: admin API on 21500+10*J, metrics on +1 (J = 0 for provider1, 1 for provider2)
environment: HPCD_BIN, ENFORCER_BIN, COMETBFT_BIN, LOCALNET_BASE_PORT, LOCALNET_START_TIMEOUT (s, default 120)
USAGE
}

node_home() { echo "$LOCALNET_DIR/node$1"; }
node_log() { echo "$LOCALNET_DIR/node$1.log"; }
node_pidfile() { echo "$LOCALNET_DIR/node$1.pid"; }
p2p_port() { echo $((BASE_PORT + 10 * $1)); }
rpc_port() { echo $((BASE_PORT + 10 * $1 + 1)); }
grpc_port() { echo $((BASE_PORT + 10 * $1 + 3)); }
rpc_url() { echo "http://127.0.0.1:$(rpc_port "$1")"; }

# The size of the existing network (0 when none).
network_size() {
    local n=0
    if [ -f "$LOCALNET_DIR/$NETWORK_FILE" ]; then
        n="$(. "$LOCALNET_DIR/$NETWORK_FILE" && echo "${NODES:-0}")"
    fi
    echo "$n"
}

# Sets NODES, CHAIN_ID and BASE_PORT from the existing network, or dies.
load_network() {
    local file="$LOCALNET_DIR/$NETWORK_FILE"
    [ -f "$file" ] || die "no localnet in $LOCALNET_DIR; create one with ./testnet/localnet.sh start"
    # shellcheck disable=SC1090
    . "$file"
    [ "${NODES:-0}" -gt 0 ] || die "$file is damaged (no NODES=); ./testnet/localnet.sh reset"
}

TEMP_DIRS=()
STOP_ON_EXIT=no
on_exit() { # (the script's exit status is kept)
    trap - ERR
    if [ "${#TEMP_DIRS[@]}" -gt 0 ]; then rm -rf "${TEMP_DIRS[@]}"; fi
    if [ "$STOP_ON_EXIT" = yes ]; then
        STOP_ON_EXIT=no
        echo "(stopping the network after the failure above)" >&2
        cmd_stop || true
    fi
}
trap on_exit EXIT

# ---------------------------------------------------------------------------
# Network generation (shared with the Docker setup)

# generate_network N DIR MODE: N validator homes in DIR sharing one genesis.
# MODE "local": ports BASE+10*I on 127.0.0.1; "docker": standard ports on 0.0.0.0, peers
# reached by service name nodeI.
generate_network() {
    local n="$1" dir="$2" mode="$3" i home cfg peers j
    local -a ids=()
    step "creating $n validator homes for $CHAIN_ID in $dir ($mode)"
    # Emptied, not removed: in the compose network $dir is a volume's mount point.
    mkdir -p "$dir"
    find "$dir" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
    for ((i = 0; i < n; i++)); do
        home="$dir/node$i"
        cfg="$home/config/config.toml"
        if [ "$mode" = local ]; then
            "$HPCD" init "node$i" --chain-id "$CHAIN_ID" --home "$home" --base-port "$(p2p_port "$i")" \
                --timeout-commit "$TIMEOUT_COMMIT" --cometbft-bin "$COMETBFT" >/dev/null ||
                die "hpcd init node$i failed"
            set_toml_line "$home/config/app.toml" "cometbft.binary" "\"$COMETBFT\""
        else
            "$HPCD" init "node$i" --chain-id "$CHAIN_ID" --home "$home" \
                --timeout-commit "$TIMEOUT_COMMIT" --cometbft-bin "$COMETBFT" >/dev/null ||
                die "hpcd init node$i failed"
            set_toml_line "$cfg" "p2p.laddr" '"tcp://0.0.0.0:26656"'
            set_toml_line "$cfg" "rpc.laddr" '"tcp://0.0.0.0:26657"'
            set_toml_line "$cfg" "p2p.addr_book_strict" 'false' # container IPs are private
            set_toml_line "$home/config/app.toml" "grpc.address" '"0.0.0.0:9090"'
        fi
        ids+=("$("$COMETBFT" show-node-id --home "$home")")
    done
    ok "initialized node0..node$((n - 1))"

    # One genesis: every node's consensus key as a validator, then the dev accounts.
    python3 - "$dir/node0/config/genesis.json" "$VALIDATOR_POWER" "$dir" "$n" <<'EOF' || die "writing the validator set failed"
import json, sys
path, power, dir_, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
doc = json.load(open(path))
validators = []
for i in range(n):
    key = json.load(open("%s/node%d/config/priv_validator_key.json" % (dir_, i)))
    validators.append({"address": key["address"], "pub_key": key["pub_key"],
                       "power": power, "name": "node%d" % i})
doc["validators"] = validators
with open(path, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
EOF
    ok "validator set: $n validators with power $VALIDATOR_POWER each"
    step "recovering the dev keys into node0's test keyring"
    recover_dev_keys "$dir/node0"
    step "writing genesis accounts and the x/hpc authority"
    fund_dev_genesis "$dir/node0"
    for ((i = 1; i < n; i++)); do
        cp "$dir/node0/config/genesis.json" "$dir/node$i/config/genesis.json"
    done

    # Everyone peers with everyone else.
    for ((i = 0; i < n; i++)); do
        peers=""
        for ((j = 0; j < n; j++)); do
            [ "$j" = "$i" ] && continue
            if [ "$mode" = local ]; then
                peers+="${peers:+,}${ids[$j]}@127.0.0.1:$(p2p_port "$j")"
            else
                peers+="${peers:+,}${ids[$j]}@node$j:26656"
            fi
        done
        set_toml_line "$dir/node$i/config/config.toml" "p2p.persistent_peers" "\"$peers\""
    done
    ok "genesis copied to every node; persistent_peers set (full mesh)"
    printf 'NODES=%s\nCHAIN_ID=%s\nBASE_PORT=%s\nMODE=%s\nCREATED=%s\n' \
        "$n" "$CHAIN_ID" "$BASE_PORT" "$mode" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$dir/$NETWORK_FILE"
}

# ---------------------------------------------------------------------------
# Processes

any_running() {
    local i n="$1"
    for ((i = 0; i < n; i++)); do
        pid_alive "$(node_pidfile "$i")" && return 0
    done
    return 1
}

launch_node() { # I
    local i="$1" log pidfile
    log="$(node_log "$i")"
    pidfile="$(node_pidfile "$i")"
    rm -f "$pidfile"
    printf '\n===== localnet.sh start %s =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$log"
    PATH="$BIN_DIR:$PATH" nohup "$HPCD" start --home "$(node_home "$i")" --cometbft-bin "$COMETBFT" \
        >>"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

show_log_tail() { # I
    echo "----- last 30 lines of $(node_log "$1") -----" >&2
    tail -n 30 "$(node_log "$1")" >&2
}

# Waits until every node reports height >= READY_HEIGHT.
wait_until_ready() { # N
    local n="$1" i h t0 waited ticks=0 heights all
    t0="$(now_ms)"
    while :; do
        heights="" all=yes low=""
        for ((i = 0; i < n; i++)); do
            if ! pid_alive "$(node_pidfile "$i")"; then
                echo >&2
                show_log_tail "$i"
                die "node$i exited during startup (log: $(node_log "$i")). Stop the rest with ./testnet/localnet.sh stop"
            fi
            h="$(rpc_height "$(rpc_url "$i")")"
            heights+="${heights:+ }$h"
            [ "$h" -ge "$READY_HEIGHT" ] || all=no
        done
        [ "$all" = yes ] && break
        waited=$((($(now_ms) - t0) / 1000))
        if [ "$waited" -ge "$START_TIMEOUT" ]; then
            echo >&2
            for ((i = 0; i < n; i++)); do show_log_tail "$i"; done
            die "not every node reached height $READY_HEIGHT within ${START_TIMEOUT}s (heights: $heights). Nodes are still running; inspect the logs above, then ./testnet/localnet.sh stop"
        fi
        if [ -t 1 ]; then
            printf '\r    waiting for height %s on all nodes: %ss (heights %s)  ' "$READY_HEIGHT" "$waited" "$heights"
        elif [ $((ticks % 10)) -eq 0 ]; then
            printf '    waiting for height %s on all nodes: %ss (heights %s)\n' "$READY_HEIGHT" "$waited" "$heights"
        fi
        ticks=$((ticks + 1))
        sleep 0.5
    done
    [ -t 1 ] && printf '\r%*s\r' 78 ''
    ok "all $n nodes at height >= $READY_HEIGHT after $(elapsed_since "$t0") (heights: $heights)"
}

print_endpoints() { # N
    local n="$1" i
    echo
    echo "${_bold}VirtEngine localnet: $n validators, chain id $CHAIN_ID${_reset}"
    printf '  %-6s %-8s %-24s %-17s %-17s %s\n' node pid "CometBFT RPC" gRPC P2P log
    for ((i = 0; i < n; i++)); do
        printf '  %-6s %-8s %-24s %-17s %-17s %s\n' "node$i" "$(cat "$(node_pidfile "$i")")" \
            "$(rpc_url "$i")" "127.0.0.1:$(grpc_port "$i")" "127.0.0.1:$(p2p_port "$i")" ".localnet/node$i.log"
    done
    echo
    local j p
    for j in "${!ENFORCER_PROVIDERS[@]}"; do
        p="${ENFORCER_PROVIDERS[$j]}"
        pid_alive "$(enforcer_dir "$p")/enforcer.pid" || continue
        echo "  enforcer $p: cluster-$p on node$(enforcer_node "$n" "$j"), admin 127.0.0.1:$(enforcer_admin_port "$j"), log .localnet/enforcer-$p/enforcer.log"
    done
    echo
    echo "  accounts (funded at genesis; keys in .localnet/node0's test keyring):"
    print_dev_accounts
    echo
    echo "  try (from $REPO_ROOT):"
    echo "    target/debug/hpcd tx bank send alice $(dev_address bob) 100uvirt --keyring-backend test --home .localnet/node0 --grpc-addr 127.0.0.1:$(grpc_port 0) --yes"
    echo "    target/debug/hpcd query bank balances $(dev_address bob) --grpc-addr 127.0.0.1:$(grpc_port 1)"
    echo "    ./testnet/localnet.sh check-apphash     # every node agrees on every app hash"
    echo "  stop: ./testnet/localnet.sh stop    reset: ./testnet/localnet.sh reset"
}

# ---------------------------------------------------------------------------
# Enforcers: provider1 follows node1, provider2 node2 (node0 when the network is smaller).

ENFORCER_PROVIDERS=(provider1 provider2)
enforcer_dir() { echo "$LOCALNET_DIR/enforcer-$1"; }
enforcer_admin_port() { echo $((BASE_PORT + 500 + 10 * $1)); }
enforcer_node() { # N J
    if [ "$1" -gt 2 ]; then echo $(($2 + 1)); else echo 0; fi
}

start_enforcers() { # N
    local n="$1" j p dir node admin
    ensure_enforcer
    step "starting one hpc-enforcer per dev provider"
    for j in "${!ENFORCER_PROVIDERS[@]}"; do
        p="${ENFORCER_PROVIDERS[$j]}"
        dir="$(enforcer_dir "$p")"
        node="$(enforcer_node "$n" "$j")"
        admin="$(enforcer_admin_port "$j")"
        mkdir -p "$dir"
        register_cluster_once "cluster-$p" "$p" "$(node_home 0)" "127.0.0.1:$(grpc_port "$node")" 8 $((20 + 60 * j))
        enforcer_yaml "$p" "cluster-$p" "$(rpc_url "$node")" "http://127.0.0.1:$(grpc_port "$node")" \
            "$CHAIN_ID" "$(node_home 0)" "127.0.0.1:$admin" "127.0.0.1:$((admin + 1))" "$dir/state" \
            "$(embedded_scheduler_yaml 8 "$dir")" >"$dir/enforcer.yaml"
        if pid_alive "$dir/enforcer.pid"; then
            ok "enforcer for $p already running (pid $(cat "$dir/enforcer.pid"))"
            continue
        fi
        nohup "$ENFORCER" start --config "$dir/enforcer.yaml" >>"$dir/enforcer.log" 2>&1 </dev/null &
        echo $! >"$dir/enforcer.pid"
        ok "enforcer for $p on node$node (pid $!, admin 127.0.0.1:$admin, log ${dir#"$REPO_ROOT"/}/enforcer.log)"
    done
}

stop_enforcers() {
    local p
    for p in "${ENFORCER_PROVIDERS[@]}"; do
        [ -f "$(enforcer_dir "$p")/enforcer.pid" ] && stop_pidfile "$(enforcer_dir "$p")/enforcer.pid" "hpc-enforcer ($p)" 15
    done
    return 0
}

# ---------------------------------------------------------------------------
# Actions

cmd_start() { # N RESET ENFORCERS
    local n="$1" reset="$2" enforcers="${3:-yes}" existing i t0 ports=()
    t0="$(now_ms)"
    require_basics
    [[ "$n" =~ ^[1-9][0-9]*$ ]] || die "N must be a positive number of validators, got '$n'"
    [ "$n" -le 50 ] || die "N=$n is more validators than this script is meant for (max 50)"
    existing="$(network_size)"
    if [ "$reset" = yes ]; then
        [ "$existing" -eq 0 ] || cmd_stop
        step "wiping $LOCALNET_DIR"
        rm -rf "$LOCALNET_DIR"
        existing=0
        CHAIN_ID="${LOCALNET_CHAIN_ID:-virtengine-localnet-1}"
        BASE_PORT="${LOCALNET_BASE_PORT:-21000}"
    elif [ "$existing" -gt 0 ]; then
        load_network # its ports and chain id
        if any_running "$existing"; then
            die "the localnet is already running ($existing nodes). See ./testnet/localnet.sh status, or stop it with ./testnet/localnet.sh stop"
        fi
        if [ "$existing" != "$n" ]; then
            die "$LOCALNET_DIR holds a $existing-node network; run ./testnet/localnet.sh start $existing, or start $n --reset for a new one"
        fi
    fi
    for ((i = 0; i < n; i++)); do
        ports+=("$(p2p_port "$i"):node$i P2P" "$(rpc_port "$i"):node$i RPC" "$(grpc_port "$i"):node$i gRPC")
    done
    if [ "$enforcers" = yes ]; then
        for i in "${!ENFORCER_PROVIDERS[@]}"; do
            ports+=("$(enforcer_admin_port "$i"):${ENFORCER_PROVIDERS[$i]} enforcer admin" "$(($(enforcer_admin_port "$i") + 1)):${ENFORCER_PROVIDERS[$i]} enforcer metrics")
        done
    fi
    check_ports_free "${ports[@]}"
    ensure_cometbft
    ensure_hpcd
    if [ "$existing" -gt 0 ]; then
        ok "resuming the existing $n-node network in $LOCALNET_DIR (start --reset for a fresh one)"
    else
        generate_network "$n" "$LOCALNET_DIR" local
    fi
    step "starting $n nodes (logs: $LOCALNET_DIR/nodeI.log)"
    for ((i = 0; i < n; i++)); do
        launch_node "$i"
    done
    wait_until_ready "$n"
    [ "$enforcers" = yes ] && start_enforcers "$n"
    print_endpoints "$n"
    echo
    ok "localnet up in $(elapsed_since "$t0")"
}

cmd_stop() {
    local n i
    if [ ! -f "$LOCALNET_DIR/$NETWORK_FILE" ]; then
        echo "no localnet in $LOCALNET_DIR"
        return 0
    fi
    load_network
    n="$NODES"
    stop_enforcers
    step "stopping $n nodes"
    # In parallel: stopping one by one would leave the rest without a quorum for a while.
    for ((i = 0; i < n; i++)); do
        stop_pidfile "$(node_pidfile "$i")" "node$i" 30 &
    done
    wait
}

cmd_status() {
    local n i st height app_hash catching_up state rc=0
    load_network
    n="$NODES"
    echo "localnet: $n validators, chain id $CHAIN_ID, $LOCALNET_DIR"
    printf '  %-6s %-10s %-8s %-66s %s\n' node process height "app hash" "RPC"
    for ((i = 0; i < n; i++)); do
        if pid_alive "$(node_pidfile "$i")"; then
            state="$(cat "$(node_pidfile "$i")")"
        else
            state="DOWN"
            rc=1
        fi
        if st="$(rpc_status "$(rpc_url "$i")")"; then
            read -r height app_hash catching_up <<<"$st"
        else
            height="-" app_hash="(RPC unreachable)"
            rc=1
        fi
        printf '  %-6s %-10s %-8s %-66s %s\n' "node$i" "$state" "$height" "$app_hash" "$(rpc_url "$i")"
    done
    local p
    for p in "${ENFORCER_PROVIDERS[@]}"; do
        if pid_alive "$(enforcer_dir "$p")/enforcer.pid"; then
            echo "  enforcer $p: running (pid $(cat "$(enforcer_dir "$p")/enforcer.pid"))"
        else
            echo "  enforcer $p: not running"
        fi
    done
    return "$rc"
}

# check-apphash [H | A-B]
cmd_check_apphash() {
    local n i h low="" from=1 to spec="${1:-}" tmp t0
    t0="$(now_ms)"
    load_network
    n="$NODES"
    for ((i = 0; i < n; i++)); do
        h="$(rpc_height "$(rpc_url "$i")")"
        [ "$h" -gt 0 ] || die "node$i's RPC $(rpc_url "$i") is unreachable (is the localnet running? ./testnet/localnet.sh status)"
        if [ -z "$low" ] || [ "$h" -lt "$low" ]; then low="$h"; fi
    done
    case "$spec" in
    "") to="$low" ;;
    *-*) from="${spec%-*}" to="${spec#*-}" ;;
    *) to="$spec" ;;
    esac
    [[ "$from" =~ ^[0-9]+$ && "$to" =~ ^[0-9]+$ ]] && [ "$from" -ge 1 ] && [ "$from" -le "$to" ] ||
        die "HEIGHTS must be H or A-B with 1 <= A <= B, got '$spec'"
    [ "$to" -le "$low" ] ||
        die "height $to is not yet committed on every node (lowest current height: $low)"
    step "comparing app_hash at heights $from..$to across $n nodes"
    tmp="$(mktemp -d)"
    TEMP_DIRS+=("$tmp")
    for ((i = 0; i < n; i++)); do
        # curl's URL globbing fetches every height over one connection.
        curl -sf --max-time 60 "$(rpc_url "$i")/block?height=[$from-$to]" -o "$tmp/node${i}_#1.json" ||
            die "fetching blocks $from..$to from node$i ($(rpc_url "$i")) failed"
    done
    python3 - "$tmp" "$n" "$from" "$to" <<'EOF' || die "app hash check FAILED: the nodes disagree (see MISMATCH lines above); the state machine is not deterministic"
import json, sys
tmp, n, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
bad = 0
for h in range(lo, hi + 1):
    hashes, blocks = [], []
    for i in range(n):
        doc = json.load(open("%s/node%d_%d.json" % (tmp, i, h)))
        if "result" not in doc:
            sys.exit("node%d: no block at height %d: %s" % (i, h, doc.get("error")))
        hashes.append(doc["result"]["block"]["header"]["app_hash"])
        blocks.append(doc["result"]["block_id"]["hash"])
    if len(set(hashes)) != 1 or len(set(blocks)) != 1:
        bad += 1
        print("MISMATCH at height %d:" % h)
        for i in range(n):
            print("  node%d app_hash %s block %s" % (i, hashes[i], blocks[i]))
if bad:
    print("%d of %d heights differ between nodes" % (bad, hi - lo + 1))
    sys.exit(1)
print("  last: height %d app_hash %s" % (hi, hashes[0]))
EOF
    ok "all $n nodes agree on app_hash (and block hash) at every height $from..$to ($((to - from + 1)) heights, $(elapsed_since "$t0"))"
}

cmd_logs() {
    local n files=() i
    load_network
    n="$NODES"
    if [ -n "${1:-}" ]; then
        [[ "$1" =~ ^[0-9]+$ ]] && [ "$1" -lt "$n" ] || die "no node$1 (the network has node0..node$((n - 1)))"
        exec tail -n 50 -F "$(node_log "$1")"
    fi
    for ((i = 0; i < n; i++)); do files+=("$(node_log "$i")"); done
    exec tail -n 10 -F "${files[@]}"
}

# The lowest height over all nodes (0 if any is unreachable).
lowest_height() { # N
    local i h low=""
    for ((i = 0; i < $1; i++)); do
        h="$(rpc_height "$(rpc_url "$i")")"
        if [ -z "$low" ] || [ "$h" -lt "$low" ]; then low="$h"; fi
    done
    echo "${low:-0}"
}

# smoke [N]: what CI runs. A fresh N-node network, two bank sends through different nodes,
# identical balances on every node, >= SMOKE_HEIGHT blocks, check-apphash, stop.
# wait_for_job_state JOB STATE SECONDS (as node0 reports it)
wait_for_job_state() {
    local job="$1" want="$2" deadline=$((SECONDS + $3)) state=""
    while [ "$SECONDS" -lt "$deadline" ]; do
        state="$("$HPCD" query hpc job "$job" --grpc-addr "127.0.0.1:$(grpc_port 0)" -o json 2>/dev/null |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["job"]["state"])' 2>/dev/null || true)"
        [ "$state" = "$want" ] && return 0
        sleep 1
    done
    die "$job is ${state:-unknown}, not $want, after $3 s (enforcer logs: $LOCALNET_DIR/enforcer-*/enforcer.log)"
}

cmd_smoke() { # N
    local n="$1" t0 target="${LOCALNET_SMOKE_HEIGHT:-20}" i bob p1 out ref="" h waited job
    t0="$(now_ms)"
    STOP_ON_EXIT=yes
    cmd_start "$n" yes
    bob="$(dev_address bob)"
    p1="$(dev_address provider1)"
    step "bank send alice -> bob 100uvirt through node0's gRPC"
    out="$("$HPCD" tx bank send alice "$bob" 100uvirt --keyring-backend test --home "$(node_home 0)" \
        --grpc-addr "127.0.0.1:$(grpc_port 0)" --yes -o json)" || die "bank send through node0 failed: $out"
    ok "included at height $(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["height"], "txhash", d["txhash"])' <<<"$out")"
    step "bank send bob -> provider1 7uvirt through node$((n - 1))'s gRPC"
    out="$("$HPCD" tx bank send bob "$p1" 7uvirt --keyring-backend test --home "$(node_home 0)" \
        --grpc-addr "127.0.0.1:$(grpc_port $((n - 1)))" --yes -o json)" || die "bank send through node$((n - 1)) failed: $out"
    ok "included at height $(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["height"], "txhash", d["txhash"])' <<<"$out")"
    step "x/hpc: alice submits a script job (the scheduler runs on every validator); a provider's enforcer routes and runs it"
    printf '#!/bin/sh\necho hello from localnet\n' >"$(node_home 0)/job.sh"
    out="$("$HPCD" tx hpc submit-job --nodes 1 --script "$(node_home 0)/job.sh" \
        --from alice --keyring-backend test --home "$(node_home 0)" --grpc-addr "127.0.0.1:$(grpc_port $((n - 1)))" --yes -o json)" || die "submit-job failed: $out"
    job="$(python3 -c 'import json,sys; d=json.load(sys.stdin); print([a["value"] for e in d["events"] if e["type"]=="hpc_job_scheduled" for a in e["attributes"] if a["key"]=="job_id"][0])' <<<"$out")"
    wait_for_job_state "$job" JOB_STATE_COMPLETED 90
    ok "$job COMPLETED; audit record: $("$HPCD" query hpc audit-records --job "$job" --grpc-addr "127.0.0.1:$(grpc_port 0)" -o json |
        python3 -c 'import json,sys; r=json.load(sys.stdin)["records"][0]; print(r["status"], "on", r["actual_cluster_id"])')"
    # Nodes may lag a block behind the one that answered; give them a moment.
    sleep 2
    for ((i = 0; i < n; i++)); do
        out="$("$HPCD" query bank balances "$bob" --grpc-addr "127.0.0.1:$(grpc_port "$i")" -o json | tr -d ' \n')" ||
            die "balance query on node$i failed"
        if [ -z "$ref" ]; then
            ref="$out"
        elif [ "$out" != "$ref" ]; then
            die "node$i reports bob's balance $out, node0 reports $ref"
        fi
    done
    ok "every node reports bob's balance $ref"
    step "waiting for height $target on all nodes"
    while :; do
        h="$(lowest_height "$n")"
        [ "$h" -ge "$target" ] && break
        waited=$((($(now_ms) - t0) / 1000))
        [ "$waited" -lt $((START_TIMEOUT * 2)) ] || die "the network did not reach height $target (lowest height $h)"
        sleep 1
    done
    ok "lowest height $h"
    cmd_check_apphash
    STOP_ON_EXIT=no
    cmd_stop
    ok "smoke test passed in $(elapsed_since "$t0")"
}

cmd_reset() {
    cmd_stop
    step "deleting $LOCALNET_DIR"
    rm -rf "$LOCALNET_DIR"
}

# Used by testnet/docker-compose.yml's init service (HPCD_BIN and COMETBFT_BIN are set
# in the image). Idempotent: an existing network is kept.
cmd_init_docker() { # N DIR
    local n="$1" dir="$2"
    if [ -f "$dir/$NETWORK_FILE" ]; then
        ok "$dir already holds a network; keeping it (delete the volume to start over)"
        return 0
    fi
    ensure_cometbft
    ensure_hpcd
    generate_network "$n" "$dir" docker
}

main() {
    local action="${1:-}"
    [ $# -gt 0 ] && shift
    case "$action" in
    start)
        local n=4 reset=no enforcers=yes arg
        for arg in "$@"; do
            case "$arg" in
            --reset) reset=yes ;;
            --no-build) use_existing_build ;;
            --no-enforcers) enforcers=no ;;
            *) n="$arg" ;;
            esac
        done
        cmd_start "$n" "$reset" "$enforcers"
        ;;
    stop) cmd_stop ;;
    status) cmd_status || exit 1 ;;
    check-apphash) cmd_check_apphash "${1:-}" ;;
    logs) cmd_logs "${1:-}" ;;
    reset) cmd_reset ;;
    smoke)
        local arg n=4
        for arg in "$@"; do
            case "$arg" in
            --no-build) use_existing_build ;;
            *) n="$arg" ;;
            esac
        done
        cmd_smoke "$n"
        ;;
    init-docker)
        [ $# -eq 2 ] || die "usage: localnet.sh init-docker N DIR"
        cmd_init_docker "$1" "$2"
        ;;
    -h | --help | help | "") usage ;;
    *) die "unknown action '$action' (try ./testnet/localnet.sh --help)" ;;
    esac
}

main "$@"
