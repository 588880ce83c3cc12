#!/usr/bin/env bash
# Builds release binaries and runs the project's benchmarks (see docs/benchmarks.md):
#   1. state_machine     in-process: execute_tx, x/hpc scheduler, store commit/proofs
#   2. chain_throughput  real nodes: hpcd vs CometBFT kvstore, same run, committed tx/s
# Extra arguments are passed to chain_throughput, e.g. `scripts/bench.sh --txs 5000`.
# Output is also saved under target/bench/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

COMETBFT_BIN="$(./scripts/install-cometbft.sh | tail -n 1)"
export COMETBFT_BIN

# Optional third baseline: the same kvstore app behind CometBFT's socket ABCI client
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

echo "== cargo build --release -p hpc-bench -p hpcd" >&2
cargo build --release -p hpc-bench -p hpcd

mkdir -p target/bench
stamp="$(date -u +%Y%m%dT%H%M%SZ)"

echo "== state_machine" >&2
target/release/state_machine | tee "target/bench/state_machine-$stamp.md"

echo "== chain_throughput $*" >&2
target/release/chain_throughput "$@" | tee "target/bench/chain_throughput-$stamp.md"
