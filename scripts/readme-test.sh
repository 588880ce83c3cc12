#!/usr/bin/env bash
# Runs the README's walk-through ("Five-minute walk-through" and "Route a job") as written,
# against a fresh devnet. So that it never touches a devnet of yours, the devnet lives in a
# scratch directory (its `.devnet`) with its ports moved by README_PORT_OFFSET (default 800),
# and the README's 127.0.0.1:26657 is rewritten to the moved port; nothing else changes.
#
#   scripts/readme-test.sh      (HPCD_BIN / ENFORCER_BIN: prebuilt binaries)
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
offset="${README_PORT_OFFSET:-800}"
scratch="$(mktemp -d "${TMPDIR:-/tmp}/readme-test.XXXXXX")"
export DEVNET_DIR="$scratch/.devnet" DEVNET_PORT_OFFSET="$offset"
trap '"$repo/testnet/devnet.sh" stop >/dev/null 2>&1 || true; rm -rf "$scratch"' EXIT

echo "readme-test: starting a devnet in $DEVNET_DIR (ports +$offset)"
"$repo/testnet/devnet.sh" --reset >"$scratch/devnet.log" 2>&1 || { tail -n 30 "$scratch/devnet.log"; exit 1; }
ln -s "$repo/docs" "$scratch/docs"
ln -s "$repo/target" "$scratch/target"

# The README's sh blocks from the walk-through to the next top-level section.
python3 - "$repo/README.md" "$offset" >"$scratch/walkthrough.sh" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
start = text.index("## Five-minute walk-through")
end = text.index("\n## ", start + 1)
blocks = re.findall(r"```sh\n(.*?)```", text[start:end], re.S)
if len(blocks) < 2:
    sys.exit("README: expected the walk-through's sh blocks")
script = "\n".join(blocks).replace("127.0.0.1:26657", "127.0.0.1:%d" % (26657 + int(sys.argv[2])))
print(script)
PY
echo "readme-test: running $(grep -c . "$scratch/walkthrough.sh") README lines"
export HPCD_GRPC_ADDR="127.0.0.1:$((9090 + offset))"
(cd "$scratch" && timeout 300 bash -euo pipefail "$scratch/walkthrough.sh") >"$scratch/walkthrough.out" 2>&1 || {
    cat "$scratch/walkthrough.out"
    echo "readme-test: FAILED (the README's commands above)" >&2
    exit 1
}
grep -q "hello from hpc-job-1" "$scratch/walkthrough.out" || {
    cat "$scratch/walkthrough.out"
    echo "readme-test: FAILED: the routed job's output is missing" >&2
    exit 1
}
grep -q "verified from trusted block 1" "$scratch/walkthrough.out" || {
    cat "$scratch/walkthrough.out"
    echo "readme-test: FAILED: the audit record's proof was not verified" >&2
    exit 1
}
echo "readme-test: the README's commands ran as written; hpc-job-1 COMPLETED on a provider's cluster and its audit record verified"
