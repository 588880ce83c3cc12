#!/usr/bin/env bash
# A single-validator development chain in one command.
#
#   ./testnet/devnet.sh [start] [--slurm]   install what is missing, build, init (first run), start
#   ./testnet/devnet.sh --reset      stop, wipe the devnet dir, re-init and start (also: start --reset)
#   ./testnet/devnet.sh stop         stop the node, the enforcers and (with --slurm) their Slurm clusters
#   ./testnet/devnet.sh status       is it running, height, app hash, endpoints
#   ./testnet/devnet.sh logs         follow the node's log
#
# Node home: <devnet dir>/node (chain id virtengine-devnet-1). Endpoints on 127.0.0.1:
# CometBFT RPC 26657, gRPC 9090, P2P 26656, enforcer admin 8081/8082 and metrics 9464/9465
# (each plus DEVNET_PORT_OFFSET); ABCI on the unix socket <devnet dir>/node/data/abci.sock.
# With --slurm each dev provider's enforcer drives its own real Slurm cluster
# (scripts/slurm-local.sh, state in <devnet dir>/slurm-<provider>); the choice is kept
# until --reset.
# Environment: DEVNET_DIR (default <repo>/.devnet), DEVNET_PORT_OFFSET (added to every
# port, default 0: two devnets side by side need different dirs and offsets), HPCD_BIN
# (use this hpcd, skip the build), COMETBFT_BIN (use this cometbft), DEVNET_START_TIMEOUT
# (seconds to wait for the first block, default 90).
# The dev accounts (testnet/dev-accounts.json) are PUBLIC TEST KEYS: never hold real funds.
set -euo pipefail

# shellcheck source=testnet/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CHAIN_ID="virtengine-devnet-1"
MONIKER="devnet"
DEVNET_DIR="$(realpath -m "${DEVNET_DIR:-$REPO_ROOT/.devnet}")"
NODE_HOME="$DEVNET_DIR/node"
LOG_FILE="$DEVNET_DIR/hpcd.log"
PID_FILE="$DEVNET_DIR/hpcd.pid"
INIT_MARKER="$DEVNET_DIR/initialized"
# Present when the dev providers run on Slurm (start --slurm); removed by --reset.
SLURM_MARKER="$DEVNET_DIR/scheduler-slurm"
PORT_OFFSET="${DEVNET_PORT_OFFSET:-0}"
case "$PORT_OFFSET" in
'' | *[!0-9]*) echo "error: DEVNET_PORT_OFFSET must be a non-negative integer (got '$PORT_OFFSET')" >&2; exit 2 ;;
esac
[ "$PORT_OFFSET" -le 20000 ] || { echo "error: DEVNET_PORT_OFFSET must be at most 20000" >&2; exit 2; }
P2P_PORT=$((26656 + PORT_OFFSET))
RPC_PORT=$((26657 + PORT_OFFSET))
GRPC_PORT=$((9090 + PORT_OFFSET))
ADMIN_PORT=$((8081 + PORT_OFFSET))
METRICS_PORT=$((9464 + PORT_OFFSET))
RPC_URL="http://127.0.0.1:$RPC_PORT"
START_TIMEOUT="${DEVNET_START_TIMEOUT:-90}"

usage() {
    cat <<'USAGE'
usage: ./testnet/devnet.sh [start] [--slurm] [--reset] [--no-build] | stop | status | logs

  start      (default) install cometbft if missing, build hpcd, init on first run, start,
             wait for the first block and print endpoints, accounts and example commands
  --slurm    the dev providers' enforcers drive real Slurm clusters (one each, started
             with scripts/slurm-local.sh, which installs Slurm and munge when missing)
             instead of the embedded scheduler; kept until --reset
  --reset    stop, wipe the devnet dir and start a fresh chain
  --no-build use the existing target/debug/hpcd instead of running cargo build
  stop       stop the node (SIGTERM hpcd; it stops cometbft), the enforcers and their
             Slurm clusters. State is kept.
  status     running?, height, app hash, endpoints (exit 1 when not running)
  logs       follow the node's log

environment: DEVNET_DIR (default .devnet), DEVNET_PORT_OFFSET (added to every port,
             default 0), HPCD_BIN (prebuilt hpcd: skip cargo), COMETBFT_BIN (cometbft to
             use), DEVNET_START_TIMEOUT (seconds to wait for the first block, default 90)
USAGE
}

is_running() { pid_alive "$PID_FILE"; }

# ---------------------------------------------------------------------------

init_chain() {
    step "initializing $CHAIN_ID in $NODE_HOME"
    rm -rf "$NODE_HOME" "$INIT_MARKER"
    mkdir -p "$DEVNET_DIR"
    "$HPCD" init "$MONIKER" --chain-id "$CHAIN_ID" --home "$NODE_HOME" --cometbft-bin "$COMETBFT" >/dev/null ||
        die "hpcd init failed"
    # Keep everything on 127.0.0.1 (cometbft listens for p2p on 0.0.0.0 by default), and
    # record the cometbft binary so a plain `hpcd start --home .devnet/node` works too.
    set_toml_line "$NODE_HOME/config/config.toml" "p2p.laddr" "\"tcp://127.0.0.1:$P2P_PORT\""
    set_toml_line "$NODE_HOME/config/config.toml" "rpc.laddr" "\"tcp://127.0.0.1:$RPC_PORT\""
    set_toml_line "$NODE_HOME/config/app.toml" "grpc.address" "\"127.0.0.1:$GRPC_PORT\""
    set_toml_line "$NODE_HOME/config/app.toml" "cometbft.binary" "\"$COMETBFT\""
    ok "hpcd init"
    step "recovering the dev keys into the test keyring of $NODE_HOME"
    recover_dev_keys "$NODE_HOME"
    step "writing genesis accounts and the x/hpc authority"
    fund_dev_genesis "$NODE_HOME"
    printf 'chain_id=%s\ninitialized_at=%s\n' "$CHAIN_ID" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$INIT_MARKER"
}

launch_node() {
    step "starting hpcd (log: $LOG_FILE)"
    mkdir -p "$DEVNET_DIR"
    printf '\n===== devnet.sh start %s =====\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$LOG_FILE"
    # nohup+exec: $! is hpcd itself; it survives this shell and the terminal closing.
    PATH="$BIN_DIR:$PATH" nohup "$HPCD" start --home "$NODE_HOME" --cometbft-bin "$COMETBFT" \
        >>"$LOG_FILE" 2>&1 </dev/null &
    echo $! >"$PID_FILE"
}

# Waits until the RPC reports height >= 1 and gRPC accepts connections.
wait_until_ready() {
    local pid t0 waited=0 ticks=0 height=0 grpc=no
    pid="$(cat "$PID_FILE")"
    t0="$(now_ms)"
    trap 'echo; warn "interrupted; the node keeps running in the background (pid $pid). Stop it with: ./testnet/devnet.sh stop"; exit 130' INT
    while :; do
        if ! process_alive "$pid"; then
            rm -f "$PID_FILE"
            echo
            echo "----- last 40 lines of $LOG_FILE -----" >&2
            tail -n 40 "$LOG_FILE" >&2
            die "hpcd (pid $pid) exited during startup; see the log above ($LOG_FILE)"
        fi
        height="$(rpc_height "$RPC_URL")"
        if port_in_use "$GRPC_PORT"; then grpc=yes; else grpc=no; fi
        if [ "$height" -ge 1 ] && [ "$grpc" = yes ]; then
            break
        fi
        waited=$((($(now_ms) - t0) / 1000))
        if [ "$waited" -ge "$START_TIMEOUT" ]; then
            echo
            echo "----- last 40 lines of $LOG_FILE -----" >&2
            tail -n 40 "$LOG_FILE" >&2
            die "the node did not become ready within ${START_TIMEOUT}s (RPC height=$height, gRPC open=$grpc). It is still running as pid $pid; inspect the log above, then ./testnet/devnet.sh stop (or --reset)"
        fi
        if [ -t 1 ]; then
            printf '\r    waiting for the first block: %ss (height %s, gRPC %s)  ' "$waited" "$height" "$grpc"
        elif [ $((ticks % 10)) -eq 0 ]; then
            printf '    waiting for the first block: %ss (height %s, gRPC %s)\n' "$waited" "$height" "$grpc"
        fi
        sleep 0.5
        ticks=$((ticks + 1))
    done
    trap - INT
    [ -t 1 ] && printf '\r%*s\r' 72 ''
    ok "node ready in $(elapsed_since "$t0"): height $height"
}

# ---------------------------------------------------------------------------
# Enforcers: one per dev provider, each with its own cluster and embedded scheduler.

ENFORCER_PROVIDERS=(provider1 provider2)

enforcer_dir() { echo "$DEVNET_DIR/enforcer-$1"; }

slurm_name() { echo "dev${PORT_OFFSET}-$1"; }
slurm_dir() { echo "$DEVNET_DIR/slurm-$1"; }

# scheduler_yaml PROVIDER DIR NODES: the enforcer's `scheduler:` section; with Slurm,
# starts (or reuses) the provider's own cluster first.
scheduler_yaml() {
    local p="$1" dir="$2" nodes="$3" out conf
    if [ ! -f "$SLURM_MARKER" ]; then
        embedded_scheduler_yaml "$nodes" "$dir"
        return
    fi
    out="$("$REPO_ROOT/scripts/slurm-local.sh" up "$(slurm_name "$p")" --dir "$(slurm_dir "$p")")" ||
        die "starting the Slurm cluster of $p failed (see above)"
    conf="$(sed -n 's/^conf: //p' <<<"$out")"
    [ -n "$conf" ] || die "scripts/slurm-local.sh printed no conf: line"
    slurm_scheduler_yaml "$conf" "$dir/jobs"
}

# start_enforcer INDEX PROVIDER: registers the provider's cluster once, writes its config
# and starts it in the background.
start_enforcer() {
    local i="$1" p="$2" dir cluster nodes
    dir="$(enforcer_dir "$p")"
    cluster="cluster-$p"
    # A slurm-local cluster has one node.
    if [ -f "$SLURM_MARKER" ]; then nodes=1; else nodes=$((4 * (i + 1))); fi
    mkdir -p "$dir"
    register_cluster_once "$cluster" "$p" "$NODE_HOME" "127.0.0.1:$GRPC_PORT" "$nodes" $((20 + 60 * i))
    enforcer_yaml "$p" "$cluster" "$RPC_URL" "http://127.0.0.1:$GRPC_PORT" "$CHAIN_ID" "$NODE_HOME" \
        "127.0.0.1:$((ADMIN_PORT + i))" "127.0.0.1:$((METRICS_PORT + i))" "$dir/state" \
        "$(scheduler_yaml "$p" "$dir" "$nodes")" >"$dir/enforcer.yaml"
    if pid_alive "$dir/enforcer.pid"; then
        ok "enforcer for $p already running (pid $(cat "$dir/enforcer.pid"))"
        return 0
    fi
    nohup "$ENFORCER" start --config "$dir/enforcer.yaml" >>"$dir/enforcer.log" 2>&1 &
    echo $! >"$dir/enforcer.pid"
    ok "enforcer for $p started (pid $!, admin 127.0.0.1:$((ADMIN_PORT + i)), metrics 127.0.0.1:$((METRICS_PORT + i))/metrics)"
}

start_enforcers() {
    step "starting one hpc-enforcer per dev provider"
    local i=0 p since
    since="$(rpc_height "$RPC_URL")"
    for p in "${ENFORCER_PROVIDERS[@]}"; do
        start_enforcer "$i" "$p"
        i=$((i + 1))
    done
    # After a restart the clusters' last heartbeats are old and the scheduler skips them
    # (HEARTBEAT_STALE): wait for each enforcer's first heartbeat before saying "up".
    for p in "${ENFORCER_PROVIDERS[@]}"; do
        wait_for_heartbeat "cluster-$p" "$since"
    done
}

# wait_for_heartbeat CLUSTER HEIGHT: until CLUSTER has a heartbeat after HEIGHT (60 s).
wait_for_heartbeat() {
    local cluster="$1" since="$2" h deadline=$((SECONDS + 60))
    while :; do
        h="$("$HPCD" query hpc cluster "$cluster" --grpc-addr "127.0.0.1:$GRPC_PORT" -o json 2>/dev/null |
            python3 -c 'import json,sys; print(int(json.load(sys.stdin)["cluster"].get("last_heartbeat_height", 0)))' 2>/dev/null || echo 0)"
        if [ "$h" -gt "$since" ]; then
            ok "$cluster: heartbeat at height $h"
            return
        fi
        [ "$SECONDS" -lt "$deadline" ] || die "no heartbeat from the enforcer of $cluster within 60 s; see $(enforcer_dir "${cluster#cluster-}")/enforcer.log"
        sleep 0.5
    done
}

stop_enforcers() {
    local p
    for p in "${ENFORCER_PROVIDERS[@]}"; do
        [ -f "$(enforcer_dir "$p")/enforcer.pid" ] && stop_pidfile "$(enforcer_dir "$p")/enforcer.pid" "hpc-enforcer ($p)" 15
        if [ -f "$SLURM_MARKER" ] && [ -d "$(slurm_dir "$p")" ]; then
            "$REPO_ROOT/scripts/slurm-local.sh" down "$(slurm_name "$p")" --dir "$(slurm_dir "$p")" >/dev/null ||
                warn "stopping the Slurm cluster of $p failed"
        fi
    done
    return 0
}

scheduler_name() {
    if [ -f "$SLURM_MARKER" ]; then echo "each on its own Slurm cluster"; else echo "embedded scheduler"; fi
}

print_summary() {
    local alice bob
    alice="$(dev_address alice)"
    bob="$(dev_address bob)"
    cat <<EOF

${_bold}VirtEngine devnet is running${_reset}
  chain id      $CHAIN_ID
  pid           $(cat "$PID_FILE") (hpcd; it supervises cometbft)
  CometBFT RPC  $RPC_URL
  gRPC          127.0.0.1:$GRPC_PORT
  ABCI          $NODE_HOME/data/abci.sock   P2P 127.0.0.1:$P2P_PORT
  home          $NODE_HOME   (keyring backend: test)
  log           $LOG_FILE   (./testnet/devnet.sh logs)

  accounts (each funded with $DEV_ACCOUNT_FUNDS at genesis; 'authority' is the x/hpc authority):
$(print_dev_accounts)

  try (from $REPO_ROOT):
    target/debug/hpcd query bank balances $alice --grpc-addr 127.0.0.1:$GRPC_PORT
    target/debug/hpcd tx bank send alice $bob 100uvirt --keyring-backend test --home $NODE_HOME --grpc-addr 127.0.0.1:$GRPC_PORT --yes
    target/debug/hpcd query tx <txhash printed by the send> --grpc-addr 127.0.0.1:$GRPC_PORT

  enforcers (permissive, $(scheduler_name); config, state, log and job directories in $DEVNET_DIR/enforcer-*/):
    provider1  cluster-provider1  admin 127.0.0.1:$ADMIN_PORT  metrics 127.0.0.1:$METRICS_PORT/metrics
    provider2  cluster-provider2  admin 127.0.0.1:$((ADMIN_PORT + 1))  metrics 127.0.0.1:$((METRICS_PORT + 1))/metrics

  route a job (the chain picks a cluster, that provider's enforcer runs the script and audits it):
    printf '#!/bin/sh\necho "hello from \$HPC_JOB_ID on \$(hostname)"\n' > hello.sh
    target/debug/hpcd tx hpc submit-job --nodes 1 --script hello.sh --from alice --keyring-backend test --home $NODE_HOME --grpc-addr 127.0.0.1:$GRPC_PORT --yes
    target/debug/hpcd query hpc job hpc-job-1 --grpc-addr 127.0.0.1:$GRPC_PORT       (state, exit_code, local_job_id)
    cat $DEVNET_DIR/enforcer-provider1/jobs/hpc-job-1/job.out

  stop:   ./testnet/devnet.sh stop      (state is kept; start again with ./testnet/devnet.sh)
  reset:  ./testnet/devnet.sh --reset   (wipes $DEVNET_DIR and starts a fresh chain)
EOF
}

# ---------------------------------------------------------------------------
# Actions

cmd_start() {
    local reset="$1" slurm="$2" t0
    t0="$(now_ms)"
    require_basics
    if [ "$reset" = yes ]; then
        cmd_stop
        case "$DEVNET_DIR" in
        / | "$REPO_ROOT" | "$HOME") die "refusing to wipe DEVNET_DIR=$DEVNET_DIR" ;;
        esac
        step "wiping $DEVNET_DIR"
        rm -rf "$DEVNET_DIR"
    fi
    if is_running; then
        die "the devnet is already running (pid $(cat "$PID_FILE")). See ./testnet/devnet.sh status, or stop it with ./testnet/devnet.sh stop"
    fi
    if [ -f "$PID_FILE" ]; then
        warn "removing stale pid file $PID_FILE (pid $(cat "$PID_FILE") is not running; the node crashed or was killed)"
        rm -f "$PID_FILE"
    fi
    if [ "$slurm" = yes ]; then
        if [ -f "$INIT_MARKER" ] && [ ! -f "$SLURM_MARKER" ]; then
            die "the devnet in $DEVNET_DIR runs the embedded scheduler; start a Slurm one with --reset --slurm (or another DEVNET_DIR)"
        fi
        mkdir -p "$DEVNET_DIR"
        date -u +%Y-%m-%dT%H:%M:%SZ >"$SLURM_MARKER"
    fi
    check_ports_free "$P2P_PORT:CometBFT P2P" "$RPC_PORT:CometBFT RPC" "$GRPC_PORT:gRPC" \
        "$ADMIN_PORT:enforcer admin (provider1)" "$((ADMIN_PORT + 1)):enforcer admin (provider2)" \
        "$METRICS_PORT:enforcer metrics (provider1)" "$((METRICS_PORT + 1)):enforcer metrics (provider2)"
    ensure_cometbft
    ensure_hpcd
    if [ -f "$INIT_MARKER" ] && [ -f "$NODE_HOME/config/genesis.json" ]; then
        ok "reusing the existing chain in $NODE_HOME (state persists; --reset for a fresh one)"
    else
        if [ -d "$NODE_HOME" ]; then
            warn "$NODE_HOME exists but its initialization never finished; re-initializing"
        fi
        init_chain
    fi
    launch_node
    wait_until_ready
    ensure_enforcer
    start_enforcers
    print_summary
    echo
    ok "devnet up in $(elapsed_since "$t0")"
}

cmd_stop() {
    step "stopping the devnet"
    stop_enforcers
    stop_pidfile "$PID_FILE" "hpcd" 30
}

cmd_status() {
    local st height app_hash catching_up
    if is_running; then
        echo "hpcd:          running (pid $(cat "$PID_FILE"))"
    elif [ -f "$PID_FILE" ]; then
        echo "hpcd:          NOT running (stale pid file $PID_FILE: it crashed or was killed; see $LOG_FILE)"
    else
        echo "hpcd:          not running"
    fi
    if [ -f "$INIT_MARKER" ]; then
        echo "home:          $NODE_HOME ($(paste -sd' ' "$INIT_MARKER"))"
    else
        echo "home:          $NODE_HOME (not initialized)"
    fi
    if st="$(rpc_status "$RPC_URL")"; then
        read -r height app_hash catching_up <<<"$st"
        echo "CometBFT RPC:  $RPC_URL  height $height  app hash $app_hash  catching up $catching_up"
    else
        echo "CometBFT RPC:  $RPC_URL  unreachable"
    fi
    if port_in_use "$GRPC_PORT"; then
        echo "gRPC:          127.0.0.1:$GRPC_PORT open"
    else
        echo "gRPC:          127.0.0.1:$GRPC_PORT closed"
    fi
    echo "log:           $LOG_FILE"
    local p
    for p in "${ENFORCER_PROVIDERS[@]}"; do
        if pid_alive "$(enforcer_dir "$p")/enforcer.pid"; then
            echo "enforcer:      $p running (pid $(cat "$(enforcer_dir "$p")/enforcer.pid"), log $(enforcer_dir "$p")/enforcer.log)"
        else
            echo "enforcer:      $p not running"
        fi
    done
    is_running
}

cmd_logs() {
    [ -f "$LOG_FILE" ] || die "no log yet ($LOG_FILE); start the devnet first"
    exec tail -n 50 -F "$LOG_FILE"
}

main() {
    local action="" reset=no slurm=no arg
    for arg in "$@"; do
        case "$arg" in
        --reset | reset) reset=yes ;;
        --slurm) slurm=yes ;;
        --no-build) use_existing_build ;;
        start | stop | status | logs)
            [ -z "$action" ] || die "only one action at a time (got '$action' and '$arg')"
            action="$arg"
            ;;
        -h | --help | help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$arg' (try ./testnet/devnet.sh --help)" ;;
        esac
    done
    action="${action:-start}"
    if { [ "$reset" = yes ] || [ "$slurm" = yes ]; } && [ "$action" != start ]; then
        die "--reset and --slurm go with start (./testnet/devnet.sh --reset --slurm)"
    fi
    case "$action" in
    start) cmd_start "$reset" "$slurm" ;;
    stop) cmd_stop ;;
    status) cmd_status || exit 1 ;;
    logs) cmd_logs ;;
    esac
}

main "$@"
