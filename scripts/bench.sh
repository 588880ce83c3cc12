#!/usr/bin/env bash
# The benchmark suite (see docs/benchmarks.md):
#   1. state_machine     in-process: execute_tx, the verified-signature cache, the x/hpc
#                        scheduler, SubmitJob as clusters grow, store commit/proofs, list
#                        queries from 10 000 to 1 000 000 stored audit records, audit
#                        record batches and the disk they take
#   2. chain_throughput  real nodes: hpcd vs CometBFT kvstore and kvstore-socket in the same
#                        run: committed tx/s and CPU per committed tx
#   3. routing_load      real nodes and 2 enforcers: routing latency at 100 jobs/s for 5
#                        minutes, gRPC point queries under that load, audit records/s while
#                        a backlog drains, RSS and disk over time (--secs 1800: the soak)
#
#   scripts/bench.sh [ARGS]      release builds, full runs; ARGS go to chain_throughput
#                                (e.g. --txs 20000 --accounts 20000 --hpcd-block-max-gas=-1);
#                                writes docs/benchmarks/summary.json
#   scripts/bench.sh --soak [ARGS] (--soak, like --smoke, only as the first argument)
#                                the same, then the 30-minute soak (routing_load at 50 jobs/s
#                                for 1800 s; ~45 minutes more), its figures in the same summary
#   scripts/bench.sh --smoke     debug builds, a few seconds of each, the soak's path included
#                                (CI: they keep working); writes target/bench/summary-smoke.json
#
# Every figure is printed with its baseline; the raw output is saved under target/bench/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

mode=full
soak=no
case "${1:-}" in
    --smoke) mode=smoke; soak=yes; shift ;;
    --soak) soak=yes; shift ;;
esac

COMETBFT_BIN="$(./scripts/install-cometbft.sh | tail -n 1)"
export COMETBFT_BIN

# The kvstore-socket baseline: the same kvstore app behind CometBFT's socket ABCI client
# (abci-cli of the pinned CometBFT release). Built from the Go module cache when the
# cometbft module is there (install-cometbft.sh put it there), else with `go install`.
if [ ! -x .bin/abci-cli ] && command -v go >/dev/null 2>&1; then
    version="${COMETBFT_VERSION:-v0.38.19}"
    src="$(go env GOMODCACHE)/github.com/cometbft/cometbft@${version}"
    echo "== building abci-cli ${version} into .bin/ (for the kvstore-socket baseline)" >&2
    if [ -d "$src" ]; then
        (cd "$src" && GOFLAGS=-mod=mod GOBIN="$root/.bin" go install ./abci/cmd/abci-cli) \
            || echo "warning: abci-cli build failed; kvstore-socket baseline skipped" >&2
    else
        GOBIN="$root/.bin" go install "github.com/cometbft/cometbft/abci/cmd/abci-cli@${version}" \
            || echo "warning: abci-cli install failed; kvstore-socket baseline skipped" >&2
    fi
fi

target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
mkdir -p target/bench
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
figures="target/bench/figures-$mode-$stamp.jsonl"
if [ "$mode" = smoke ]; then
    echo "== cargo build -p hpc-bench -p hpcd -p hpc-enforcer (debug: smoke)" >&2
    cargo build -p hpc-bench -p hpcd -p hpc-enforcer
    bin="$target_dir/debug"
    state_args=(--txs 40 --accounts 4 --block-txs 20 --reps 1 --list-records 1000,5000 --audit-records 200)
    chain_args=(--txs 200 --accounts 20 "$@")
    routing_args=(--rate 20 --secs 5 --backlog 100 --accounts 10 --idle-jobs 2 --sample-secs 2)
    soak_args=(--rate 10 --secs 4 --backlog 0 --accounts 10 --idle-jobs 1 --sample-secs 1)
    summary=target/bench/summary-smoke.json
else
    echo "== cargo build --release -p hpc-bench -p hpcd -p hpc-enforcer" >&2
    cargo build --release -p hpc-bench -p hpcd -p hpc-enforcer
    bin="$target_dir/release"
    state_args=()
    chain_args=("$@")
    routing_args=()
    soak_args=(--rate 50 --secs 1800 --backlog 0 --sample-secs 60 --wait-secs 600)
    summary=docs/benchmarks/summary.json
fi
export HPCD_BIN="$bin/hpcd"

echo "== state_machine ${state_args[*]}" >&2
"$bin/state_machine" "${state_args[@]}" --summary "$figures" | tee "target/bench/state_machine-$mode-$stamp.md"

echo "== chain_throughput ${chain_args[*]}" >&2
"$bin/chain_throughput" "${chain_args[@]}" --summary "$figures" | tee "target/bench/chain_throughput-$mode-$stamp.md"

echo "== routing_load ${routing_args[*]}" >&2
"$bin/routing_load" "${routing_args[@]}" --summary "$figures" | tee "target/bench/routing_load-$mode-$stamp.md"

if [ "$soak" = yes ]; then
    echo "== routing_load (soak) ${soak_args[*]}" >&2
    "$bin/routing_load" "${soak_args[@]}" --label soak --summary "$figures" \
        | tee "target/bench/soak-$mode-$stamp.md"
fi

# One JSON document: every figure with its baseline, the commit and the machine.
mkdir -p "$(dirname "$summary")"
python3 - "$figures" "$summary" "$mode" "$soak" <<'PY'
import json, os, subprocess, sys
figures_path, summary_path, mode, soak = sys.argv[1:]
figures = [json.loads(line) for line in open(figures_path) if line.strip()]
expected = [
    "execute_tx Deliver of a MsgSend after CheckTx (signature verified once)",
    "scheduler: schedule() over 10 000 clusters, per decision",
    "SubmitJob (execute_tx) with 10 000 active clusters",
]
expected_prefixes = ["slowest list query at "]
expected += [
    "routing latency p50 under load (SubmitJob block to hpc_job_routed block)",
    "routing latency p99 under load",
    "gRPC Query/Job p99 under load",
    "RSS of hpcd + cometbft at the end of the load",
    "hpcd RSS growth over the second half of the load",
    "audit records committed per second through 2 enforcers (backlog drain)",
]
if soak == "yes":
    expected += [
        "routing latency p99 under load [soak]",
        "hpcd RSS growth over the second half of the load [soak]",
    ]
expected += [
    "audit records/s through execute_tx (batches of params.max_batch_size, one core)",
    "disk per 1 000 000 audit records, keep-recent 2 (extrapolated from the run)",
]
if os.path.exists(".bin/abci-cli"):
    expected += ["committed MsgSend tx/s", "CPU per committed MsgSend (hpcd + cometbft)"]
names = {f["name"] for f in figures}
missing = [name for name in expected if name not in names]
missing += [p + "…" for p in expected_prefixes if not any(n.startswith(p) for n in names)]
if missing:
    sys.exit(f"bench: figures missing from the run: {missing}")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
doc = {
    "mode": mode,
    "soak": soak == "yes",
    "commit": commit,
    "machine": f"{os.cpu_count()} CPUs",
    "figures": figures,
}
with open(summary_path, "w") as out:
    json.dump(doc, out, indent=2, ensure_ascii=False)
    out.write("\n")
for f in figures:
    print(f"{f['name']}: {f['value']:.3g} {f['unit']} vs {f['baseline_name']} {f['baseline']:.3g} (ratio {f['ratio']:.2f}); goal: {f['goal']}")
print(f"bench: {len(figures)} figures written to {summary_path}")
PY
