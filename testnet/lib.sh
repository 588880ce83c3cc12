# shellcheck shell=bash
# Helpers shared by testnet/devnet.sh and testnet/localnet.sh (sourced, not run).
# Dependencies: bash, coreutils, curl, python3 (python3 only parses JSON).

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TESTNET_DIR="$REPO_ROOT/testnet"
BIN_DIR="$REPO_ROOT/.bin"
DEV_ACCOUNTS_FILE="$TESTNET_DIR/dev-accounts.json"
# Every dev account gets this much at genesis.
DEV_ACCOUNT_FUNDS="${DEV_ACCOUNT_FUNDS:-1000000000000uvirt}"
# Set by ensure_hpcd / ensure_cometbft.
HPCD="${HPCD_BIN:-}"
COMETBFT="${COMETBFT_BIN:-}"

if [ -t 1 ]; then
    _bold=$'\033[1m' _red=$'\033[31m' _yellow=$'\033[33m' _green=$'\033[32m' _reset=$'\033[0m'
else
    _bold='' _red='' _yellow='' _green='' _reset=''
fi

step() { printf '%s==>%s %s\n' "$_bold" "$_reset" "$*"; }
ok() { printf '%s  ok%s %s\n' "$_green" "$_reset" "$*"; }
warn() { printf '%swarning:%s %s\n' "$_yellow" "$_reset" "$*" >&2; }
die() {
    printf '%serror:%s %s\n' "$_red" "$_reset" "$*" >&2
    exit 1
}

# Seconds since the epoch with milliseconds, for timings.
now_ms() { date +%s%3N; }
elapsed_since() { # START_MS -> "12.3s"
    local ms=$(($(now_ms) - $1))
    printf '%d.%ds' $((ms / 1000)) $((ms % 1000 / 100))
}

# ---------------------------------------------------------------------------
# Tools

require_basics() {
    local tool
    for tool in curl python3; do
        command -v "$tool" >/dev/null 2>&1 || die "'$tool' is required but not on PATH (install it with your package manager, e.g. apt-get install $tool)"
    done
}

# Makes sure `cargo` is available, with a hint on how to get it.
require_cargo() {
    if command -v cargo >/dev/null 2>&1; then
        return 0
    fi
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        PATH="$HOME/.cargo/bin:$PATH"
        return 0
    fi
    die "cargo (Rust) is not installed. Install Rust with:
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
then open a new shell (or run: . \"\$HOME/.cargo/env\") and re-run this script.
(Alternatively point HPCD_BIN at a prebuilt hpcd binary.)"
}

# Installs CometBFT into .bin if missing (scripts/install-cometbft.sh) and sets $COMETBFT.
ensure_cometbft() {
    if [ -n "$COMETBFT" ]; then
        [ -x "$COMETBFT" ] || die "COMETBFT_BIN=$COMETBFT is not an executable file"
        return 0
    fi
    step "checking CometBFT (scripts/install-cometbft.sh)"
    local out
    if ! out="$("$REPO_ROOT/scripts/install-cometbft.sh")"; then
        die "installing CometBFT failed (see the messages above). It needs Go (https://go.dev/dl/); or set COMETBFT_BIN to an existing cometbft v0.38 binary."
    fi
    COMETBFT="$(printf '%s\n' "$out" | tail -n 1)"
    [ -x "$COMETBFT" ] || die "scripts/install-cometbft.sh printed '$COMETBFT', which is not an executable"
    ok "cometbft $("$COMETBFT" version) at $COMETBFT"
}

# --no-build: use the existing target/debug/hpcd.
use_existing_build() {
    HPCD_PREBUILT=yes
    HPCD="${HPCD:-$REPO_ROOT/target/debug/hpcd}"
    [ -x "$HPCD" ] || die "--no-build: $HPCD does not exist yet; build it once with cargo build -p hpcd"
}

# Builds hpcd (debug) unless HPCD_BIN is given, and sets $HPCD.
ensure_hpcd() {
    if [ -n "$HPCD" ]; then
        [ -x "$HPCD" ] || die "HPCD_BIN=$HPCD is not an executable file"
        HPCD_PREBUILT=yes
        ok "using prebuilt hpcd at $HPCD (HPCD_BIN or --no-build; not rebuilding)"
        return 0
    fi
    require_cargo
    step "building hpcd (cargo build -p hpcd; the first build takes a few minutes)"
    local t0
    t0="$(now_ms)"
    (cd "$REPO_ROOT" && cargo build -p hpcd) ||
        die "cargo build -p hpcd failed (see the compiler output above). To run the last successfully built binary instead, pass --no-build (or HPCD_BIN=path/to/hpcd)."
    HPCD="$REPO_ROOT/target/debug/hpcd"
    [ -x "$HPCD" ] || die "cargo build succeeded but $HPCD is missing"
    ok "hpcd built in $(elapsed_since "$t0"): $HPCD"
}

# Sets $ENFORCER: ENFORCER_BIN when given, else the hpc-enforcer next to $HPCD when hpcd
# was prebuilt (HPCD_BIN / --no-build), else a fresh `cargo build -p hpc-enforcer`.
ensure_enforcer() {
    ENFORCER="${ENFORCER_BIN:-$(dirname "$HPCD")/hpc-enforcer}"
    if [ -n "${ENFORCER_BIN:-}" ] || [ "${HPCD_PREBUILT:-no}" = yes ]; then
        [ -x "$ENFORCER" ] || die "$ENFORCER is not an executable file (build it with cargo build -p hpc-enforcer, or set ENFORCER_BIN)"
        ok "using prebuilt hpc-enforcer at $ENFORCER"
        return 0
    fi
    require_cargo
    step "building hpc-enforcer (cargo build -p hpc-enforcer)"
    (cd "$REPO_ROOT" && cargo build -p hpc-enforcer) || die "cargo build -p hpc-enforcer failed (see the compiler output above)"
    ENFORCER="$REPO_ROOT/target/debug/hpc-enforcer"
    [ -x "$ENFORCER" ] || die "cargo build succeeded but $ENFORCER is missing"
}

# ---------------------------------------------------------------------------
# Processes and ports

# pid_alive PIDFILE: true when the file names a running process.
pid_alive() {
    local pid
    [ -f "$1" ] || return 1
    pid="$(cat "$1" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    process_alive "$pid"
}

# process_alive PID: running and not a zombie (a killed, not yet reaped process).
process_alive() {
    local stat
    kill -0 "$1" 2>/dev/null || return 1
    if [ -r "/proc/$1/stat" ] && stat="$(cat "/proc/$1/stat" 2>/dev/null)"; then
        stat="${stat##*) }"
        [ "${stat%% *}" != Z ] || return 1
    fi
    return 0
}

# stop_pidfile PIDFILE LABEL [TIMEOUT_S]: SIGTERM, wait, SIGKILL as a last resort.
# hpcd stops its cometbft child itself (it allows cometbft 15s).
stop_pidfile() {
    local pidfile="$1" label="$2" timeout="${3:-30}" pid i
    if ! pid_alive "$pidfile"; then
        if [ -f "$pidfile" ]; then
            echo "$label: not running (removing stale pid file $pidfile)"
            rm -f "$pidfile"
        else
            echo "$label: not running"
        fi
        return 0
    fi
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < timeout * 10; i++)); do
        process_alive "$pid" || break
        sleep 0.1
    done
    if process_alive "$pid"; then
        warn "$label (pid $pid) did not exit within ${timeout}s of SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$pidfile"
    echo "$label: stopped (pid $pid)"
}

# port_in_use PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# check_ports_free "PORT:label" ...: dies naming every busy port.
check_ports_free() {
    local spec port label busy=()
    for spec in "$@"; do
        port="${spec%%:*}"
        label="${spec#*:}"
        if port_in_use "$port"; then
            busy+=("127.0.0.1:$port ($label)")
        fi
    done
    if [ "${#busy[@]}" -gt 0 ]; then
        local msg
        msg="these ports are already in use:"
        for spec in "${busy[@]}"; do msg+=$'\n'"    $spec"; done
        msg+=$'\n'"Another node (devnet, localnet or a manual hpcd/cometbft) is probably running."
        msg+=$'\n'"Find it with: ss -ltnp | grep -E ':($(printf '%s\n' "$@" | cut -d: -f1 | paste -sd'|'))\\b'   (or lsof -i :PORT), then stop it."
        die "$msg"
    fi
}

# ---------------------------------------------------------------------------
# CometBFT RPC

# rpc_status RPC_URL: prints "HEIGHT APP_HASH CATCHING_UP" or fails.
rpc_status() {
    curl -sf --max-time 2 "$1/status" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)["result"]["sync_info"]
print(s["latest_block_height"], s["latest_app_hash"] or "-", str(s["catching_up"]).lower())
' 2>/dev/null
}

# rpc_height RPC_URL: prints the latest height, or 0 when unreachable.
rpc_height() {
    local st
    if st="$(rpc_status "$1")"; then
        echo "${st%% *}"
    else
        echo 0
    fi
}

# ---------------------------------------------------------------------------
# Dev accounts (testnet/dev-accounts.json: PUBLIC test keys)

# Prints "name address" for every dev account.
dev_accounts() {
    python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
for a in doc["accounts"]:
    print(a["name"], a["address"])
' "$DEV_ACCOUNTS_FILE"
}

dev_field() { # NAME FIELD
    python3 -c '
import json, sys
doc = json.load(open(sys.argv[1]))
match = [a for a in doc["accounts"] if a["name"] == sys.argv[2]]
if not match:
    sys.exit("no dev account named %r in %s" % (sys.argv[2], sys.argv[1]))
print(match[0][sys.argv[3]])
' "$DEV_ACCOUNTS_FILE" "$1" "$2"
}

dev_address() { dev_field "$1" address; }
dev_mnemonic() { dev_field "$1" mnemonic; }

# recover_dev_keys HOME: recovers every dev key into HOME's `test` keyring and checks
# the derived address against dev-accounts.json.
recover_dev_keys() {
    local home="$1" name expected got
    [ -f "$DEV_ACCOUNTS_FILE" ] || die "$DEV_ACCOUNTS_FILE is missing"
    while read -r name expected; do
        got="$(dev_mnemonic "$name" |
            "$HPCD" keys add "$name" --recover --overwrite --keyring-backend test --home "$home" -o json |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["address"])')" ||
            die "hpcd keys add $name --recover failed"
        if [ "$got" != "$expected" ]; then
            die "ADDRESS MISMATCH for dev key '$name': the mnemonic in $DEV_ACCOUNTS_FILE derives
    $got
but the file records
    $expected
The dev accounts file or hpcd's key derivation (HD path / bech32 prefix) changed. Refusing to continue."
        fi
        ok "key $name = $got"
    done < <(dev_accounts)
}

# fund_dev_genesis HOME: funds every dev account in HOME's genesis and makes `authority`
# the x/hpc authority (keys must be in HOME's test keyring), then checks the result.
fund_dev_genesis() {
    local home="$1" name addr
    while read -r name addr; do
        "$HPCD" genesis add-account "$name" "$DEV_ACCOUNT_FUNDS" --keyring-backend test --home "$home" >/dev/null ||
            die "hpcd genesis add-account $name failed"
    done < <(dev_accounts)
    "$HPCD" genesis set-hpc-authority authority --keyring-backend test --home "$home" >/dev/null ||
        die "hpcd genesis set-hpc-authority failed"
    python3 - "$home/config/genesis.json" "$DEV_ACCOUNTS_FILE" <<'EOF' || die "genesis check failed"
import json, sys
g = json.load(open(sys.argv[1]))["app_state"]
accounts = json.load(open(sys.argv[2]))["accounts"]
funded = {b["address"] for b in g["bank"]["balances"]}
missing = [a["name"] for a in accounts if a["address"] not in funded]
if missing:
    sys.exit("genesis: not funded: %s" % ", ".join(missing))
want = next(a["address"] for a in accounts if a["name"] == "authority")
if g["hpc"]["authority"] != want:
    sys.exit("genesis: hpc.authority is %r, expected %r" % (g["hpc"]["authority"], want))
EOF
    ok "funded ${DEV_ACCOUNT_FUNDS} to each dev account; x/hpc authority = $(dev_address authority)"
}

print_dev_accounts() {
    local name addr
    while read -r name addr; do
        printf '    %-10s %s\n' "$name" "$addr"
    done < <(dev_accounts)
    echo "    (PUBLIC TEST KEYS from testnet/dev-accounts.json; never use them for real funds)"
}

# set_toml_line FILE SECTION.KEY VALUE: replaces the first `KEY = ...` line inside
# [SECTION] (or before any section when SECTION is empty, e.g. ".proxy_app") with
# `KEY = VALUE` (VALUE is written verbatim: quote strings yourself). Pure bash.
set_toml_line() {
    local file="$1" key="$2" value="$3" tmp line section="" replaced=0
    local want_section="${key%.*}" want_key="${key##*.}"
    tmp="$(mktemp "$file.XXXX")"
    while IFS= read -r line || [ -n "$line" ]; do
        if [[ "$line" =~ ^[[:space:]]*\[([^]]+)\] ]]; then
            section="${BASH_REMATCH[1]}"
        elif [ "$replaced" = 0 ] && [ "$section" = "$want_section" ] &&
            [[ "$line" =~ ^${want_key}[[:space:]]*= ]]; then
            line="$want_key = $value"
            replaced=1
        fi
        printf '%s\n' "$line"
    done <"$file" >"$tmp"
    if [ "$replaced" = 0 ]; then
        rm -f "$tmp"
        die "$file: no '$want_key' in section [${want_section}]"
    fi
    cat "$tmp" >"$file" # keeps the file's permissions
    rm -f "$tmp"
}

# ---------------------------------------------------------------------------
# Provider enforcers (devnet, localnet and the compose network)

# register_cluster_once CLUSTER PROVIDER KEYRING_HOME GRPC_ADDR NODES LATENCY_MS: registers
# the dev provider's cluster unless the chain already has it.
register_cluster_once() {
    local cluster="$1" provider="$2" home="$3" grpc="$4" nodes="$5" latency="$6" out
    if "$HPCD" query hpc cluster "$cluster" --grpc-addr "$grpc" >/dev/null 2>&1; then
        return 0
    fi
    out="$("$HPCD" tx hpc register-cluster "$cluster" --region dev --total-nodes "$nodes" \
        --price-per-node-hour 1000000 --latency-ms "$latency" --from "$provider" \
        --keyring-backend test --home "$home" --grpc-addr "$grpc" --yes -o json 2>&1)" ||
        die "registering $cluster for $provider failed: $out"
    ok "registered $cluster ($nodes nodes) for $provider"
}

# enforcer_yaml PROVIDER CLUSTER RPC_URL GRPC_URL CHAIN_ID KEYRING_HOME ADMIN METRICS STATE_DIR
# SCHEDULER_YAML: the config of a dev provider's enforcer (test keyring: dev networks only),
# permissive with automatic fallback.
enforcer_yaml() {
    cat <<YAML
# Written by testnet/ for the dev provider $1 (test keyring: dev networks only).
hpc:
  enabled: true
  cluster_id: "$2"
  provider_address: "$(dev_address "$1")"
  routing:
    enforcement_mode: "permissive"
    allow_automatic_fallback: true
chain:
  rpc_url: "$3"
  grpc_addr: "$4"
  chain_id: "$5"
key:
  keyring_backend: test
  keyring_dir: "$6"
  name: $1
${10}
workload:
  # Dev networks only: scripts may also be fetched from local files (file://).
  allowed_uri_schemes: [https, file]
health:
  probe_interval_seconds: 5
  heartbeat_interval_seconds: 30
metrics:
  listen: "$8"
admin:
  listen: "$7"
state_dir: "$9"
YAML
}

# embedded_scheduler_yaml NODES WORKDIR
embedded_scheduler_yaml() {
    printf 'scheduler:\n  adapter: embedded\n  embedded:\n    nodes: %s\n    workdir: "%s"\n' "$1" "$2"
}

# slurm_scheduler_yaml SLURM_CONF JOBS_DIR: a Slurm cluster reached with SLURM_CONF; the job
# directories must be visible to its nodes at the same path.
slurm_scheduler_yaml() {
    cat <<YAML
scheduler:
  adapter: slurm
  slurm:
    slurm_conf: "$1"
    scontrol_path: scontrol
    jobs_dir: "$2"
    command_timeout_seconds: 10
YAML
}

# Name the failing command instead of exiting silently under `set -e`. Not in subshells:
# a $(...) whose failure the caller handles would otherwise be reported too.
_on_err() { # STATUS COMMAND LINE
    [ "$BASH_SUBSHELL" -eq 0 ] || return 0
    printf '%serror:%s unexpected failure (exit %s) at line %s: %s\n' \
        "$_red" "$_reset" "$1" "$3" "${2%%$'\n'*}" >&2
}
set -E
trap '_on_err "$?" "$BASH_COMMAND" "$LINENO"' ERR
