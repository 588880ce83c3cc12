#!/usr/bin/env bash
# Runs a real single-node Slurm cluster (Debian's Slurm 22.05: slurmctld + slurmd + munge)
# on this host, for tests that need an actual scheduler behind an HPC provider. Several
# clusters with different NAMEs can run side by side: each gets its own ClusterName,
# SlurmctldPort/SlurmdPort, node name, state/spool/log/pid dirs and slurm.conf.
#
#   scripts/slurm-local.sh up     NAME [--dir DIR]   start (idempotent), wait until ready
#   scripts/slurm-local.sh down   NAME [--dir DIR]   cancel its jobs, stop its daemons
#   scripts/slurm-local.sh status NAME [--dir DIR]   exit 0 if up, 3 if down
#   scripts/slurm-local.sh run    NAME [--dir DIR]   `up`, then stay in the foreground until a
#                                                    daemon dies (exit 1) or SIGTERM (stops the
#                                                    daemons): the entry of a Slurm container
#
# Clients pick a cluster with SLURM_CONF; `up` and `status` print an `export SLURM_CONF=...`
# line, so a caller can do:
#   eval "$(scripts/slurm-local.sh up a | grep ^export)"
#
# Environment:
#   SLURM_LOCAL_DIR    parent of the per-cluster dirs (default <repo>/target/slurm-local)
#   SLURM_CTLD_PORT    slurmctld port (default derived from NAME, see ports_for)
#   SLURM_SLURMD_PORT  slurmd port    (default SLURM_CTLD_PORT + 1)
#   SLURM_REAL_MEMORY  node RealMemory in MB (default 4000, capped by the host's memory)
#   SLURM_LOCAL_NODES  number of compute nodes, 1-16 (default: as in the cluster's existing
#                      slurm.conf, else 1): one slurmd each, on ports SLURM_SLURMD_PORT, +1, ...
#   SLURM_LOCAL_ADDR   address the daemons are reached at (default 127.0.0.1; on a container
#                      network, the container's host name, so that other containers submit)
#
# Needs root: it installs packages, starts munged, and the daemons run as SlurmUser=root so
# that jobs run as the (root) submitter. munged is shared by all clusters and is never
# stopped by this script (stopping it would break the other clusters).
#
# Facts go to stdout as `key: value` lines (plus the export line); progress goes to stderr.
# Jobs submitted within ~3 s of a fresh start stay PENDING until slurmctld's first
# scheduling pass; finished jobs need `squeue --states=all` (plain squeue hides them).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly repo_root
readonly partition="debug"
readonly ready_timeout=30 # seconds `up` waits for the node to become usable

usage() {
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 2
}

log() { echo "slurm-local: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# --- one-time host setup (shared by all clusters) -------------------------------------------

# Serialises the host-wide setup (apt, munged) when two `up`s run at once.
with_host_lock() {
    local lock="${TMPDIR:-/tmp}/slurm-local.host.lock"
    exec 8>"$lock"
    flock -w 300 8 || die "timed out waiting for $lock"
    "$@"
    exec 8>&- # release the lock; the daemons started later must not inherit it
}

ensure_packages() {
    if command -v sinfo >/dev/null && command -v slurmctld >/dev/null &&
        command -v slurmd >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    log "installing slurmctld slurmd slurm-client munge (apt-get)..."
    local pkgs=(slurmctld slurmd slurm-client munge)
    export DEBIAN_FRONTEND=noninteractive
    # The package index may be stale or missing on a fresh machine: update only if needed.
    if ! apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 8>&-; then
        apt-get update >&2 8>&-
        apt-get install -y --no-install-recommends "${pkgs[@]}" >&2 8>&-
    fi
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

# Starts munged as the munge user unless a working one exists. Its health is checked with a
# real munge/unmunge round trip (pgrep would also match a defunct munged).
ensure_munged() {
    if munge_works; then
        return 0
    fi
    local key=/etc/munge/munge.key
    if [ ! -s "$key" ]; then
        log "creating $key"
        install -d -o munge -g munge -m 0700 /etc/munge
        (umask 077 && dd if=/dev/urandom of="$key" bs=1024 count=1 status=none)
        chown munge:munge "$key"
        chmod 0400 "$key"
    fi
    # Without systemd nobody creates the socket dir under /run.
    install -d -o munge -g munge -m 0755 /run/munge
    log "starting munged"
    # 8>&-: munged keeps inherited fds open and would hold the host lock forever.
    runuser -u munge -- /usr/sbin/munged </dev/null >/dev/null 2>&1 8>&- ||
        die "munged failed to start (see /var/log/munge/munged.log)"
    local i
    for i in $(seq 1 50); do
        if munge_works; then
            # Recorded for information only: `down` never stops munged, because the other
            # clusters on this host share it.
            mkdir -p "$dir"
            echo "munged pid $(cat /run/munge/munged.pid 2>/dev/null || echo '?') started by" \
                "slurm-local.sh at $(date -u +%FT%TZ); left running by down" >"$dir/munged.started"
            return 0
        fi
        sleep 0.1
    done
    die "munged does not answer: munge -n | unmunge fails"
}

# --- per-cluster layout ---------------------------------------------------------------------

# Deterministic ports from NAME, so two clusters get different ports without coordination
# and the same cluster gets the same ports on every run: an even port in [16817, 17815] for
# slurmctld, the next one for slurmd. Two names can collide (1 in 500); `up` then fails with
# "port in use" and SLURM_CTLD_PORT/SLURM_SLURMD_PORT override the choice.
ports_for() {
    local hash
    hash="$(printf '%s' "$1" | cksum | cut -d' ' -f1)"
    ctld_port="${SLURM_CTLD_PORT:-$((16817 + 2 * (hash % 500)))}"
    slurmd_port="${SLURM_SLURMD_PORT:-$((ctld_port + 1))}"
    [[ "$ctld_port" =~ ^[1-9][0-9]{0,4}$ && "$slurmd_port" =~ ^[1-9][0-9]{0,4}$ ]] ||
        die "ports must be numbers (got '$ctld_port', '$slurmd_port')"
    [ $((slurmd_port + node_count - 1)) -le 65535 ] || die "slurmd ports above 65535"
}

# Sets the globals every command uses. Slurm lowercases ClusterName, so NAME must be
# lowercase already (keeps names, dirs and `sinfo -M` output consistent).
setup_names() {
    name="$1"
    [[ "$name" =~ ^[a-z][a-z0-9_-]{0,30}$ ]] ||
        die "NAME must match [a-z][a-z0-9_-]{0,30} (got '$name')"
    dir="${dir_opt:-${SLURM_LOCAL_DIR:-$repo_root/target/slurm-local}/$name}"
    # Absolute, because the daemons are recognised by the conf path on their command line.
    dir="$(realpath -m "$dir")"
    conf="$dir/slurm.conf"
    host="$(hostname -s)"
    addr="${SLURM_LOCAL_ADDR:-127.0.0.1}"
    [[ "$addr" =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$ ]] ||
        die "SLURM_LOCAL_ADDR must be a host name or an IPv4 address (got '$addr')"
    node_count="${SLURM_LOCAL_NODES:-}"
    # down/status of a running cluster: as many nodes as its conf has.
    if [ -z "$node_count" ] && [ -f "$conf" ]; then node_count="$(grep -c '^NodeName=' "$conf" || true)"; fi
    node_count="${node_count:-1}"
    [[ "$node_count" =~ ^([1-9]|1[0-6])$ ]] || die "SLURM_LOCAL_NODES must be 1-16 (got '$node_count')"
    # Distinct node names per cluster; all of them are this host.
    nodes=()
    local k
    for ((k = 1; k <= node_count; k++)); do nodes+=("${name}-node$k"); done
    ctld_pidfile="$dir/run/slurmctld.pid"
    ctld_log="$dir/log/slurmctld.log"
    ports_for "$name"
}

# Per-node files (slurm.conf names them with %n, the node name).
slurmd_pidfile() { echo "$dir/run/slurmd-$1.pid"; }
slurmd_log() { echo "$dir/log/slurmd-$1.log"; }

real_memory_mb() {
    local want="${SLURM_REAL_MEMORY:-4000}" total_kb
    total_kb="$(awk '/^MemTotal:/{print $2}' /proc/meminfo)"
    # slurmd drains a node that has less memory than configured.
    local have=$((total_kb / 1024 - 256))
    if [ "$have" -lt "$want" ]; then want="$have"; fi
    echo "$want"
}

write_conf() {
    mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run"
    local tmp="$conf.tmp.$$"
    cat >"$tmp" <<EOF
# Written by scripts/slurm-local.sh for cluster '$name'; rewritten on every start.
ClusterName=$name
# The host name must be this host's (slurmctld checks it); the address is where clients
# reach it (loopback unless SLURM_LOCAL_ADDR says otherwise).
SlurmctldHost=$host($addr)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$ctld_pidfile
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$ctld_log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
# Finished jobs stay visible to scontrol/squeue for an hour (there is no sacct here).
MinJobAge=3600
# Seconds between SIGTERM and SIGKILL on cancel/timeout.
KillWait=5
# No GresTypes and no Gres= on the nodes: a GPU-less cluster. One slurmd per node, each on
# its own port.
EOF
    local k memory cpus
    memory="$(real_memory_mb)"
    cpus="$(nproc)"
    for ((k = 0; k < node_count; k++)); do
        echo "NodeName=${nodes[k]} NodeHostname=$host NodeAddr=$addr Port=$((slurmd_port + k)) CPUs=$cpus RealMemory=$memory State=UNKNOWN" >>"$tmp"
    done
    echo "PartitionName=$partition Nodes=$(IFS=,; echo "${nodes[*]}") Default=YES MaxTime=INFINITE State=UP" >>"$tmp"
    mv "$tmp" "$conf"
}

# --- process bookkeeping --------------------------------------------------------------------

# Prints the PID in pidfile $1 if that process is alive and is daemon $2 started with this
# cluster's conf (guards against stale pidfiles and recycled PIDs). Fails otherwise.
our_pid() {
    local pidfile="$1" daemon="$2" pid cmdline
    [ -s "$pidfile" ] || return 1
    pid="$(tr -dc '0-9' <"$pidfile")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ] || return 1
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    [[ "$cmdline" == *"$daemon"*"-f $conf"* ]] || return 1
    echo "$pid"
}

ctld_pid() { our_pid "$ctld_pidfile" slurmctld; }
slurmd_pid() { our_pid "$(slurmd_pidfile "$1")" slurmd; }

# The pids of the running slurmds, space-separated.
slurmd_pids() {
    local n pids=()
    for n in "${nodes[@]}"; do pids+=("$(slurmd_pid "$n" || true)"); done
    echo "${pids[*]}"
}

all_slurmd_alive() {
    local n
    for n in "${nodes[@]}"; do slurmd_pid "$n" >/dev/null || return 1; done
}

# Node states as sinfo sees them (e.g. "idle", "idle,mixed", "down*"), empty if unreachable.
node_state() {
    SLURM_CONF="$conf" timeout 10 sinfo -h -o %T 2>/dev/null | sort -u | paste -sd, - || true
}

# Every node idle, mixed, allocated or completing.
node_usable() {
    local state
    [ -n "$1" ] || return 1
    for state in ${1//,/ }; do
        case "$state" in
        idle | mixed | allocated | completing) ;;
        *) return 1 ;;
        esac
    done
}

# Up = every daemon alive and the controller answers with usable nodes.
is_up() {
    ctld_pid >/dev/null && all_slurmd_alive && node_usable "$(node_state)"
}

stop_daemons() {
    local n pid
    for n in "${nodes[@]}"; do
        if pid="$(slurmd_pid "$n")"; then stop_pid "$pid" "slurmd $n"; fi
    done
    if pid="$(ctld_pid)"; then stop_pid "$pid" slurmctld; fi
}

# True if something listens on TCP port $1 (read from /proc: `ss` is not on minimal images).
port_in_use() {
    local hex
    hex="$(printf '%04X' "$1")"
    awk -v p="$hex" '$4 == "0A" && substr($2, index($2, ":") + 1) == p { found = 1 }
        END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Sends TERM to a pid, waits up to 15 s for it to exit, then KILL. A zombie counts as
# exited: on hosts whose init is slow to reap, daemons linger as <defunct>.
stop_pid() {
    local pid="$1" what="$2" i
    log "stopping $what (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 150); do
        [ -d "/proc/$pid" ] && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ] || return 0
        sleep 0.1
    done
    log "$what (pid $pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
}

show_logs() {
    local f n
    for f in "$ctld_log" $(for n in "${nodes[@]}"; do slurmd_log "$n"; done); do
        [ -f "$f" ] || continue
        echo "----- tail of $f" >&2
        tail -n 30 "$f" >&2
    done
}

print_facts() {
    echo "cluster: $name"
    echo "dir: $dir"
    echo "conf: $conf"
    echo "slurmctld_port: $ctld_port"
    echo "slurmd_port: $slurmd_port"
    echo "nodes: ${nodes[*]}"
    echo "partition: $partition"
    echo "slurmctld_pid: $(ctld_pid || echo none)"
    echo "slurmd_pids: $(slurmd_pids)"
    echo "node_state: $(node_state)"
    echo "logs: $dir/log"
    echo "export SLURM_CONF=$conf"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
    local start=$SECONDS
    if is_up; then
        log "cluster '$name' already up"
        print_facts
        return 0
    fi
    with_host_lock ensure_packages
    with_host_lock ensure_munged

    # Half-up (a daemon died, or a node is down): restart all from a clean slate.
    stop_daemons

    local p k ports=("$ctld_port")
    for ((k = 0; k < node_count; k++)); do
        p=$((slurmd_port + k))
        [ "$p" != "$ctld_port" ] || die "slurmctld's port $ctld_port is also a slurmd port"
        ports+=("$p")
    done
    for p in "${ports[@]}"; do
        if port_in_use "$p"; then
            die "port $p is in use (another cluster or program); set SLURM_CTLD_PORT/SLURM_SLURMD_PORT"
        fi
    done

    write_conf
    rm -f "$ctld_pidfile" "$dir"/run/slurmd-*.pid
    # All daemonise and close their stdio, so `$(slurm-local.sh up ...)` does not hang.
    # slurmctld recovers the jobs saved in StateSaveLocation from an earlier run.
    log "starting slurmctld for '$name' on port $ctld_port"
    SLURM_CONF="$conf" slurmctld -f "$conf" </dev/null >>"$dir/log/slurmctld.stdio" 2>&1 ||
        fail_up "slurmctld failed to start"
    for ((k = 0; k < node_count; k++)); do
        log "starting slurmd ${nodes[k]} on port $((slurmd_port + k))"
        SLURM_CONF="$conf" slurmd -f "$conf" -N "${nodes[k]}" </dev/null >>"$dir/log/slurmd.stdio" 2>&1 ||
            fail_up "slurmd ${nodes[k]} failed to start"
    done

    local state=""
    while [ $((SECONDS - start)) -lt "$ready_timeout" ]; do
        state="$(node_state)"
        if node_usable "$state" && ctld_pid >/dev/null && all_slurmd_alive; then
            log "cluster '$name' up in $((SECONDS - start))s"
            print_facts
            return 0
        fi
        # Each daemon writes its pidfile within a second of starting: fail fast if one
        # has died (bad config, port taken) instead of waiting for the full timeout.
        if [ $((SECONDS - start)) -ge 5 ]; then
            ctld_pid >/dev/null || fail_up "slurmctld exited (see its log above)"
            all_slurmd_alive || fail_up "a slurmd exited (see its log above)"
        fi
        sleep 0.5
    done
    fail_up "cluster '$name' not ready after ${ready_timeout}s (node state: '${state:-unreachable}')"
}

# A failed `up` shows the logs and stops whatever it started, so a retry starts clean.
fail_up() {
    show_logs
    stop_daemons
    die "$1"
}

# `up`, then watch the daemons in the foreground: a container's entry. Exits 1 when one
# dies (the container's restart policy starts the cluster again; slurmctld recovers its
# jobs) and stops them on SIGTERM without cancelling jobs.
cmd_run() {
    cmd_up >/dev/null
    trap 'log "stopping (signal)"; stop_daemons; exit 0' TERM INT
    log "cluster '$name' up; watching its daemons"
    while ctld_pid >/dev/null && all_slurmd_alive; do
        sleep 5 &
        wait $! || true
    done
    show_logs
    die "a daemon of cluster '$name' exited"
}

cmd_down() {
    local cpid
    cpid="$(ctld_pid || true)"
    if [ -z "$cpid" ] && [ -z "$(slurmd_pids | tr -d ' ')" ]; then
        log "cluster '$name' already down"
        return 0
    fi
    # Cancel this cluster's jobs first: slurmstepd and the job processes outlive slurmd, so
    # stopping the daemons alone would leave orphans behind. The jobs stay in the saved
    # state (as CANCELLED) and are shown again after the next `up`.
    if [ -n "$cpid" ]; then
        local jobs i
        jobs="$(SLURM_CONF="$conf" timeout 10 squeue -h -o %i 2>/dev/null || true)"
        if [ -n "$jobs" ]; then
            log "cancelling jobs: $(echo "$jobs" | tr '\n' ' ')"
            # shellcheck disable=SC2086 # one job id per word
            SLURM_CONF="$conf" scancel $jobs 2>/dev/null || true
            # KillWait=5: give the jobs time to finish their TERM/KILL sequence.
            for i in $(seq 1 30); do
                [ -z "$(SLURM_CONF="$conf" timeout 10 squeue -h -o %i 2>/dev/null || true)" ] && break
                sleep 0.5
            done
        fi
    fi
    stop_daemons
    rm -f "$ctld_pidfile" "$dir"/run/slurmd-*.pid
    log "cluster '$name' down (munged left running: it is shared with other clusters)"
}

cmd_status() {
    if is_up; then
        echo "status: up"
        print_facts
        SLURM_CONF="$conf" sinfo
        return 0
    fi
    echo "status: down"
    echo "cluster: $name"
    echo "conf: $conf"
    echo "slurmctld_pid: $(ctld_pid || echo none)"
    echo "slurmd_pids: $(slurmd_pids)"
    echo "node_state: $(node_state)"
    return 3
}

main() {
    local cmd="" name_arg=""
    dir_opt=""
    while [ $# -gt 0 ]; do
        case "$1" in
        --dir) [ $# -ge 2 ] || usage; dir_opt="$2"; shift 2 ;;
        --dir=*) dir_opt="${1#--dir=}"; shift ;;
        -h | --help) usage ;;
        -*) usage ;;
        *)
            if [ -z "$cmd" ]; then cmd="$1"
            elif [ -z "$name_arg" ]; then name_arg="$1"
            else usage
            fi
            shift
            ;;
        esac
    done
    [ -n "$cmd" ] && [ -n "$name_arg" ] || usage
    [ "$(id -u)" -eq 0 ] || die "must run as root (installs packages, runs munged and slurm daemons)"
    setup_names "$name_arg"
    case "$cmd" in
    up) cmd_up ;;
    run) cmd_run ;;
    down) cmd_down ;;
    status)
        local rc=0
        cmd_status || rc=$?
        exit "$rc"
        ;;
    *) usage ;;
    esac
}

main "$@"
