#!/usr/bin/env bash
# Runs every test of the project: formatting, clippy, unit tests, the end-to-end tests that
# start real cometbft + hpcd processes on loopback ports, and a short run of every fuzz
# target. Installs what it needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v cargo >/dev/null 2>&1; then
    echo "error: cargo is required; install Rust from https://rustup.rs" >&2
    exit 1
fi

start=$(date +%s)
# A one-shot run gains nothing from incremental caches, which doubled the build's disk use.
export CARGO_INCREMENTAL=0
COMETBFT_BIN="$(./scripts/install-cometbft.sh | tail -n 1)"
export COMETBFT_BIN

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== a real Slurm cluster for the Slurm adapter's test (scripts/slurm-local.sh; installs Slurm when missing)"
slurm_dir="$PWD/target/slurm-local/adapter-test"
HPC_SLURM_CONF="$(./scripts/slurm-local.sh up adapter-test --dir "$slurm_dir" | sed -n 's/^conf: //p')"
export HPC_SLURM_CONF
trap './scripts/slurm-local.sh down adapter-test --dir "$slurm_dir" >/dev/null 2>&1 || true' EXIT

echo "== cargo test (unit, integration and end-to-end)"
cargo test --workspace --locked

echo "== 4-validator network: app hashes must agree at every height"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
HPCD_BIN="$target_dir/debug/hpcd" ./testnet/localnet.sh smoke 4

echo "== independent clients: CosmJS, cosmpy and the Go SDK client, unchanged, against a devnet (interop/run.sh)"
HPCD_BIN="$target_dir/debug/hpcd" ./interop/run.sh

echo "== the README's walk-through, as written, against a devnet (scripts/readme-test.sh)"
HPCD_BIN="$target_dir/debug/hpcd" ./scripts/readme-test.sh

echo "== benchmark smoke: every bench binary on a tiny load (full runs: scripts/bench.sh)"
./scripts/bench.sh --smoke

echo "== compose network: 4 validators + 2 enforcers in Docker under faults (testnet/compose.sh test)"
./testnet/compose.sh test

echo "== fuzz smoke: every cargo-fuzz target for 15 s (longer runs: scripts/fuzz.sh SECONDS)"
./scripts/fuzz.sh 15

echo "== all tests passed in $(( $(date +%s) - start ))s"
