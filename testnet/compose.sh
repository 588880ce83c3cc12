#!/usr/bin/env bash
# The compose network (testnet/docker-compose.yml): 4 validators, 2 provider enforcers and
# their Slurm clusters.
#
#   ./testnet/compose.sh image [--debug]   build virtengine/hpcd:local: release (or debug) binaries
#                                          built here, stripped, on a Debian bookworm base
#                                          (debian:bookworm-slim, or one made with debootstrap
#                                          from this machine's Debian mirror when no registry
#                                          serves it)
#   ./testnet/compose.sh up                start the network, wait until every service is healthy
#   ./testnet/compose.sh status            services, heights and app hashes
#   ./testnet/compose.sh down              stop and delete the network and its volumes
#   ./testnet/compose.sh test              CI: build a debug image (virtengine/hpcd:test), start
#                                          the network as project virtengine-faults on ports
#                                          27xxx, run testnet/compose_faults.py, always remove
#                                          the network (and stop an engine it started)
#   ./testnet/compose.sh soak [MIN] [JOBS] drive jobs and bank txs through the running network for
#                                          MIN minutes (default 5, at most JOBS jobs) and print
#                                          jobs, decisions, records, violations, lost, mempool,
#                                          blocks, app-hash agreement, memory and disk growth
#   ./testnet/compose.sh engine            install (apt) and start a Docker engine if none runs
#   ./testnet/compose.sh engine-stop       stop the engine if this script started it
#
# Environment: COMPOSE_PROJECT (default virtengine), HPCD_IMAGE (default virtengine/hpcd:local),
# NODEi_RPC_PORT / NODEi_GRPC_PORT (host ports, see docker-compose.yml). Needs root (or a user in the docker group) for the engine.
set -euo pipefail

# shellcheck source=testnet/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROJECT="${COMPOSE_PROJECT:-virtengine}"
COMPOSE_FILE="$TESTNET_DIR/docker-compose.yml"
IMAGE="${HPCD_IMAGE:-virtengine/hpcd:local}"
LOCAL_BASE=virtengine/debian-base:bookworm
DOCKER_DIR="$REPO_ROOT/target/docker"
DOCKERD_PID="$DOCKER_DIR/dockerd.pid"
NODES=(node0 node1 node2 node3)
ENFORCERS=(enforcer1 enforcer2)
SLURM_CLUSTERS=(slurm1 slurm2)

compose() {
    if command -v docker-compose >/dev/null 2>&1; then
        docker-compose -f "$COMPOSE_FILE" -p "$PROJECT" "$@"
    else
        docker compose -f "$COMPOSE_FILE" -p "$PROJECT" "$@"
    fi
}

# Host RPC port of node I (the compose file's defaults unless overridden).
node_rpc_port() {
    local var="NODE$1_RPC_PORT" defaults=(26657 26667 26677 26687)
    echo "${!var:-${defaults[$1]}}"
}

# ---------------------------------------------------------------------------
# Engine

cmd_engine() {
    if docker info >/dev/null 2>&1; then
        ok "Docker engine running"
        return 0
    fi
    local missing=()
    command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
    command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
    command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
    if [ "${#missing[@]}" -gt 0 ]; then
        step "installing ${missing[*]} (apt-get)"
        command -v apt-get >/dev/null 2>&1 || die "no apt-get: install ${missing[*]} yourself"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null ||
            { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >/dev/null; } ||
            die "apt-get install ${missing[*]} failed"
    fi
    step "starting dockerd (log: $DOCKER_DIR/dockerd.log)"
    mkdir -p "$DOCKER_DIR"
    nohup dockerd >"$DOCKER_DIR/dockerd.log" 2>&1 </dev/null &
    echo $! >"$DOCKERD_PID"
    local deadline=$((SECONDS + 60))
    until docker info >/dev/null 2>&1; do
        pid_alive "$DOCKERD_PID" || { tail -n 20 "$DOCKER_DIR/dockerd.log" >&2; die "dockerd exited"; }
        [ "$SECONDS" -lt "$deadline" ] || die "dockerd not ready within 60 s (log: $DOCKER_DIR/dockerd.log)"
        sleep 1
    done
    ok "dockerd ready (pid $(cat "$DOCKERD_PID"))"
}

cmd_engine_stop() {
    if [ -f "$DOCKERD_PID" ]; then
        stop_pidfile "$DOCKERD_PID" dockerd 30
    else
        ok "no dockerd started by this script"
    fi
}

# ---------------------------------------------------------------------------
# Image

# The base image: debian:bookworm-slim if present or pullable, else a local debootstrap one.
base_image() {
    if docker image inspect debian:bookworm-slim >/dev/null 2>&1 ||
        timeout 30 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
        echo debian:bookworm-slim
        return
    fi
    if ! docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
        local mirror rootfs="$DOCKER_DIR/rootfs"
        mirror="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
        [ -n "$mirror" ] || mirror="$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)"
        [ -n "$mirror" ] || die "no registry serves debian:bookworm-slim and no Debian mirror is configured for debootstrap"
        step "building $LOCAL_BASE with debootstrap from $mirror (about a minute)" >&2
        rm -rf "$rootfs"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$DOCKER_DIR/debootstrap.log" 2>&1 ||
            die "debootstrap failed (log: $DOCKER_DIR/debootstrap.log)"
        tar -C "$rootfs" -c . | docker import - "$LOCAL_BASE" >/dev/null
        rm -rf "$rootfs"
    fi
    echo "$LOCAL_BASE"
}

cmd_image() {
    local profile=release flag=--release base ctx="$DOCKER_DIR/context" t0
    [ "${1:-}" = --debug ] && profile=debug flag=""
    t0="$(now_ms)"
    require_cargo
    cmd_engine
    mkdir -p "$DOCKER_DIR"
    base="$(base_image)"
    ok "base image $base"
    ensure_cometbft
    step "building hpcd and hpc-enforcer ($profile)"
    # shellcheck disable=SC2086
    (cd "$REPO_ROOT" && cargo build $flag --locked -p hpcd -p hpc-enforcer) || die "cargo build failed"
    rm -rf "$ctx"
    mkdir -p "$ctx/bin"
    cp "$REPO_ROOT/target/$profile/hpcd" "$REPO_ROOT/target/$profile/hpc-enforcer" "$COMETBFT" "$ctx/bin/"
    strip "$ctx/bin/"* 2>/dev/null || warn "strip failed; the image keeps debug symbols"
    cp -r "$TESTNET_DIR" "$ctx/testnet"
    mkdir -p "$ctx/scripts"
    cp "$REPO_ROOT/scripts/slurm-local.sh" "$ctx/scripts/"
    cp "$TESTNET_DIR/Dockerfile" "$ctx/Dockerfile"
    step "building $IMAGE (context $(du -sh "$ctx" | cut -f1))"
    docker build -q --build-arg "BASE=$base" -t "$IMAGE" "$ctx" >/dev/null || die "docker build failed"
    ok "$IMAGE built in $(elapsed_since "$t0")"
}

# ---------------------------------------------------------------------------
# Network

# Health of a service's container: healthy, starting, unhealthy, or missing.
health_of() {
    local id
    id="$(compose ps -q "$1" 2>/dev/null || true)"
    [ -n "$id" ] || { echo missing; return; }
    docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id" 2>/dev/null || echo missing
}

wait_healthy() { # TIMEOUT SERVICE...
    local timeout="$1" s deadline pending
    shift
    deadline=$((SECONDS + timeout))
    while :; do
        pending=""
        for s in "$@"; do
            [ "$(health_of "$s")" = healthy ] || pending+=" $s"
        done
        [ -z "$pending" ] && return 0
        [ "$SECONDS" -lt "$deadline" ] || die "not healthy within ${timeout}s:$pending (see: ./testnet/compose.sh logs)"
        sleep 2
    done
}

cmd_up() {
    local t0
    t0="$(now_ms)"
    cmd_engine
    docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no $IMAGE image: run ./testnet/compose.sh image first"
    step "starting $PROJECT (4 validators, 2 enforcers, 2 Slurm clusters)"
    compose up -d >/dev/null 2>&1 || { compose up -d; die "compose up failed"; }
    wait_healthy 180 "${NODES[@]}" "${SLURM_CLUSTERS[@]}" "${ENFORCERS[@]}"
    ok "$PROJECT up in $(elapsed_since "$t0")"
    cmd_status
}

cmd_status() {
    local i st height app_hash catching_up
    for i in "${!NODES[@]}"; do
        if st="$(rpc_status "http://127.0.0.1:$(node_rpc_port "$i")")"; then
            read -r height app_hash catching_up <<<"$st"
            printf '  %-9s %-9s height %-6s app hash %s\n' "${NODES[$i]}" "$(health_of "${NODES[$i]}")" "$height" "$app_hash"
        else
            printf '  %-9s %-9s RPC unreachable\n' "${NODES[$i]}" "$(health_of "${NODES[$i]}")"
        fi
    done
    for s in "${ENFORCERS[@]}" "${SLURM_CLUSTERS[@]}"; do
        printf '  %-9s %s\n' "$s" "$(health_of "$s")"
    done
}

cmd_down() {
    step "removing $PROJECT (containers, network, volumes)"
    compose down -v --remove-orphans >/dev/null 2>&1 || compose down -v --remove-orphans
    ok "$PROJECT removed"
}

cmd_test() {
    local t0 i
    t0="$(now_ms)"
    # Global: the EXIT trap runs after this function has returned.
    STARTED_ENGINE=no
    docker info >/dev/null 2>&1 || STARTED_ENGINE=yes
    PROJECT=virtengine-faults
    IMAGE=virtengine/hpcd:test
    export HPCD_IMAGE="$IMAGE"
    for i in 0 1 2 3; do
        export "NODE${i}_RPC_PORT=$((27657 + 10 * i))" "NODE${i}_GRPC_PORT=$((27090 + i))"
    done
    # Always leave nothing behind, also on failure (a failed `up` already made volumes).
    trap 'cmd_down; [ "$STARTED_ENGINE" = no ] || cmd_engine_stop' EXIT
    cmd_image --debug
    compose down -v --remove-orphans >/dev/null 2>&1 || true
    cmd_up
    HPCD_BIN="$REPO_ROOT/target/debug/hpcd" COMPOSE_PROJECT="$PROJECT" python3 "$TESTNET_DIR/compose_faults.py" ||
        { compose logs --tail=40 >&2 || true; die "compose fault tests failed"; }
    step "soak smoke: 30 s (longer: ./testnet/compose.sh soak MINUTES)"
    HPCD_BIN="$REPO_ROOT/target/debug/hpcd" COMPOSE_PROJECT="$PROJECT" python3 "$TESTNET_DIR/compose_faults.py" soak 0.5 ||
        die "soak smoke failed"
    ok "compose fault tests passed in $(elapsed_since "$t0")"
}

main() {
    local action="${1:-}"
    [ $# -gt 0 ] && shift
    case "$action" in
    engine) cmd_engine ;;
    engine-stop) cmd_engine_stop ;;
    image) cmd_image "$@" ;;
    up) cmd_up ;;
    status) cmd_status ;;
    down) cmd_down ;;
    test) cmd_test ;;
    soak)
        HPCD_BIN="${HPCD_BIN:-$REPO_ROOT/target/debug/hpcd}" COMPOSE_PROJECT="$PROJECT" \
            python3 "$TESTNET_DIR/compose_faults.py" soak "${1:-5}" "${2:-10000}"
        ;;
    logs) compose logs --tail=100 "$@" ;;
    -h | --help | help | "") sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' ;;
    *) die "unknown action '$action' (try ./testnet/compose.sh --help)" ;;
    esac
}

main "$@"
