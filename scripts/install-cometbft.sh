#!/usr/bin/env bash
# Installs the pinned CometBFT release into <repo>/.bin with `go install`, once.
# Prints the path of the binary on stdout (last line). Idempotent: an existing binary of
# the pinned version is kept.
set -euo pipefail

COMETBFT_VERSION="${COMETBFT_VERSION:-v0.38.19}"
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${COMETBFT_BIN_DIR:-$repo_root/.bin}"
bin="$bin_dir/cometbft"

if [ -x "$bin" ] && [ "$("$bin" version 2>/dev/null)" = "${COMETBFT_VERSION#v}" ]; then
    echo "cometbft ${COMETBFT_VERSION} already installed" >&2
    echo "$bin"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "error: Go is required to install CometBFT (https://go.dev/dl/); 'go' is not on PATH" >&2
    exit 1
fi

mkdir -p "$bin_dir"
echo "installing cometbft ${COMETBFT_VERSION} into $bin_dir (go install; first run downloads modules)..." >&2
GOBIN="$bin_dir" go install "github.com/cometbft/cometbft/cmd/cometbft@${COMETBFT_VERSION}"
installed="$("$bin" version)"
if [ "$installed" != "${COMETBFT_VERSION#v}" ]; then
    echo "error: installed cometbft reports version '$installed', expected ${COMETBFT_VERSION#v}" >&2
    exit 1
fi
echo "cometbft $installed installed at $bin" >&2
echo "$bin"
