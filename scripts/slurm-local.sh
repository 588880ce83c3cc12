#!/usr/bin/env bash
# Runs a real single-node Slurm cluster (Debian's Slurm 22.05: slurmctld + slurmd + munge)
# on this host, for tests that need an actual scheduler behind an HPC provider. Several
# clusters with different NAMEs can run side by side: each gets its own ClusterName,
# SlurmctldPort/SlurmdPort, node name, state/spool/log/pid dirs and slurm.conf.
#
#   scripts/slurm-local.sh up     NAME [--dir DIR]   start (idempotent), wait until ready
#   scripts/slurm-local.sh down   NAME [--dir DIR]   cancel its jobs, stop its daemons
#   scripts/slurm-local.sh status NAME [--dir DIR]   exit 0 if up, 3 if down
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
    # Distinct node name per cluster; all of them are this host, reached over loopback.
    node="${name}-node1"
    ctld_pidfile="$dir/run/slurmctld.pid"
    slurmd_pidfile="$dir/run/slurmd.pid"
    ctld_log="$dir/log/slurmctld.log"
    slurmd_log="$dir/log/slurmd.log"
    ports_for "$name"
}

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
# The host name must be this host's (slurmctld checks it); the address pins loopback.
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$ctld_pidfile
SlurmdPidFile=$slurmd_pidfile
SlurmctldLogFile=$ctld_log
SlurmdLogFile=$slurmd_log
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
# No GresTypes and no Gres= on the node: a GPU-less cluster.
NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$(real_memory_mb) State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
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
slurmd_pid() { our_pid "$slurmd_pidfile" slurmd; }

# Node state as sinfo sees it (e.g. idle, mixed, allocated, down*), empty if unreachable.
node_state() {
    SLURM_CONF="$conf" timeout 10 sinfo -h -o %T 2>/dev/null | head -n 1 || true
}

node_usable() {
    case "$1" in
    idle | mixed | allocated | completing) return 0 ;;
    *) return 1 ;;
    esac
}

# Up = both daemons alive and the controller answers with a usable node.
is_up() {
    ctld_pid >/dev/null && slurmd_pid >/dev/null && node_usable "$(node_state)"
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
    local f
    for f in "$ctld_log" "$slurmd_log"; do
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
    echo "node: $node"
    echo "partition: $partition"
    echo "slurmctld_pid: $(ctld_pid || echo none)"
    echo "slurmd_pid: $(slurmd_pid || echo none)"
    echo "node_state: $(node_state)"
    echo "logs: $ctld_log $slurmd_log"
    echo "export SLURM_CONF=$conf"
}

# --- commands -------------------------------------------------------------------------------

cmd_up() {
    local start=$SECONDS pid
    if is_up; then
        log "cluster '$name' already up"
        print_facts
        return 0
    fi
    with_host_lock ensure_packages
    with_host_lock ensure_munged

    # Half-up (one daemon died, or the node is down): restart both from a clean slate.
    if pid="$(slurmd_pid)"; then stop_pid "$pid" slurmd; fi
    if pid="$(ctld_pid)"; then stop_pid "$pid" slurmctld; fi

    [ "$ctld_port" != "$slurmd_port" ] || die "slurmctld and slurmd ports must differ ($ctld_port)"
    local p
    for p in "$ctld_port" "$slurmd_port"; do
        if port_in_use "$p"; then
            die "port $p is in use (another cluster or program); set SLURM_CTLD_PORT/SLURM_SLURMD_PORT"
        fi
    done

    write_conf
    rm -f "$ctld_pidfile" "$slurmd_pidfile"
    # Both daemonise and close their stdio, so `$(slurm-local.sh up ...)` does not hang.
    # slurmctld recovers the jobs saved in StateSaveLocation from an earlier run.
    log "starting slurmctld for '$name' on port $ctld_port"
    SLURM_CONF="$conf" slurmctld -f "$conf" </dev/null >>"$dir/log/slurmctld.stdio" 2>&1 ||
        fail_up "slurmctld failed to start"
    log "starting slurmd $node on port $slurmd_port"
    SLURM_CONF="$conf" slurmd -f "$conf" -N "$node" </dev/null >>"$dir/log/slurmd.stdio" 2>&1 ||
        fail_up "slurmd failed to start"

    local state=""
    while [ $((SECONDS - start)) -lt "$ready_timeout" ]; do
        state="$(node_state)"
        if node_usable "$state" && ctld_pid >/dev/null && slurmd_pid >/dev/null; then
            log "cluster '$name' up in $((SECONDS - start))s"
            print_facts
            return 0
        fi
        # Each daemon writes its pidfile within a second of starting: fail fast if one
        # has died (bad config, port taken) instead of waiting for the full timeout.
        if [ $((SECONDS - start)) -ge 5 ]; then
            ctld_pid >/dev/null || fail_up "slurmctld exited (see its log above)"
            slurmd_pid >/dev/null || fail_up "slurmd exited (see its log above)"
        fi
        sleep 0.5
    done
    fail_up "cluster '$name' not ready after ${ready_timeout}s (node state: '${state:-unreachable}')"
}

# A failed `up` shows the logs and stops whatever it started, so a retry starts clean.
fail_up() {
    local pid
    show_logs
    if pid="$(slurmd_pid)"; then stop_pid "$pid" slurmd; fi
    if pid="$(ctld_pid)"; then stop_pid "$pid" slurmctld; fi
    die "$1"
}

cmd_down() {
    local cpid dpid
    cpid="$(ctld_pid || true)"
    dpid="$(slurmd_pid || true)"
    if [ -z "$cpid" ] && [ -z "$dpid" ]; then
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
    if [ -n "$dpid" ]; then stop_pid "$dpid" slurmd; fi
    if [ -n "$cpid" ]; then stop_pid "$cpid" slurmctld; fi
    rm -f "$ctld_pidfile" "$slurmd_pidfile"
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
    echo "slurmd_pid: $(slurmd_pid || echo none)"
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
