#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) targets of fuzz/ for a while each.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 30; TARGET defaults to every target of fuzz/Cargo.toml.
# Needs a nightly toolchain (rustup toolchain install nightly); installs cargo-fuzz if it
# is missing. Each target runs on a COPY of fuzz/corpus/<target> (under
# fuzz/.work/corpus/<target>, git-ignored), so the checked-in seeds stay small; new inputs
# found stay in that copy. Prints, per target, the execs and exec/s libFuzzer reports.
# Exits non-zero if any target crashed (a panic, a failed assertion, a timeout or OOM),
# printing the crash artifact's path (fuzz/artifacts/<target>/).
#
# Environment:
#   FUZZ_SANITIZER  sanitizer for `cargo fuzz` (default none: the code under test is safe
#                   Rust, and ASan halves the exec rate; use "address" for unsafe code)
#   FUZZ_JOBS       libFuzzer -fork=N workers per target (default 1: one process)
#   FUZZ_ARGS       extra libFuzzer arguments (e.g. "-rss_limit_mb=4096")
#   NICE            priority of the builds and runs (default 10)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FUZZ_DIR="$ROOT/fuzz"
SECONDS_PER_TARGET="${1:-30}"
[ $# -gt 0 ] && shift
SANITIZER="${FUZZ_SANITIZER:-none}"
NICE="${NICE:-10}"
FUZZ_JOBS="${FUZZ_JOBS:-1}"

die() {
    echo "fuzz.sh: $*" >&2
    exit 2
}

case "$SECONDS_PER_TARGET" in
'' | *[!0-9]*) die "SECONDS_PER_TARGET must be a whole number of seconds, got '$SECONDS_PER_TARGET'" ;;
esac

command -v cargo >/dev/null || die "cargo not found (install Rust with rustup: https://rustup.rs)"
if ! cargo +nightly --version >/dev/null 2>&1; then
    die "no nightly toolchain: cargo-fuzz needs one (libFuzzer instrumentation uses -Z flags).
Install it with:  rustup toolchain install nightly"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    nice -n "$NICE" cargo install cargo-fuzz --locked
fi

ALL_TARGETS=$(cd "$ROOT" && cargo +nightly fuzz list --fuzz-dir "$FUZZ_DIR")
if [ $# -gt 0 ]; then
    TARGETS=("$@")
    for t in "${TARGETS[@]}"; do
        grep -qx "$t" <<<"$ALL_TARGETS" || die "unknown target '$t' (targets: $(echo $ALL_TARGETS))"
    done
else
    read -r -d '' -a TARGETS <<<"$ALL_TARGETS" || true
fi

echo "==> building ${TARGETS[*]} (cargo +nightly fuzz build, sanitizer $SANITIZER, debug assertions on)"
for t in "${TARGETS[@]}"; do
    (cd "$ROOT" && nice -n "$NICE" cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR" -s "$SANITIZER" "$t")
done

WORK="$FUZZ_DIR/.work"
LOGS="$WORK/logs"
mkdir -p "$LOGS"
failed=()
summary=()
for t in "${TARGETS[@]}"; do
    corpus="$WORK/corpus/$t"
    mkdir -p "$corpus"
    if [ -d "$FUZZ_DIR/corpus/$t" ]; then
        cp -n "$FUZZ_DIR/corpus/$t"/* "$corpus"/ 2>/dev/null || true
    fi
    args=("-max_total_time=$SECONDS_PER_TARGET" "-print_final_stats=1")
    [ -f "$FUZZ_DIR/dicts/$t.dict" ] && args+=("-dict=$FUZZ_DIR/dicts/$t.dict")
    [ "$FUZZ_JOBS" -gt 1 ] && args+=("-fork=$FUZZ_JOBS")
    # shellcheck disable=SC2206
    [ -n "${FUZZ_ARGS:-}" ] && args+=($FUZZ_ARGS)
    log="$LOGS/$t.log"
    echo "==> fuzzing $t for ${SECONDS_PER_TARGET}s (corpus copy: $corpus, log: $log)"
    set +e
    (cd "$ROOT" && nice -n "$NICE" cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" -s "$SANITIZER" "$t" "$corpus" -- "${args[@]}") >"$log" 2>&1
    rc=$?
    set -e
    # libFuzzer's final stats: "stat::number_of_executed_units: N", "stat::average_exec_per_sec: N".
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        # No final stats (a crash): the last status line "#N ... exec/s: R ...".
        last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
        execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$last")
        rate=$(sed -n 's/.*exec\/s: \([0-9]*\).*/\1/p' <<<"$last")
    fi
    units=$(ls "$corpus" | wc -l)
    if [ "$rc" -ne 0 ]; then
        artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
        echo "!! $t CRASHED (exit $rc) after ${execs:-?} execs"
        grep -m1 -E "panicked at|ERROR: libFuzzer|==ERROR" "$log" || true
        grep -m1 -A3 "panicked at" "$log" | tail -n +2 || true
        echo "   crash artifact: ${artifact:-<none written; see $log>}"
        echo "   reproduce: cargo +nightly fuzz run -s $SANITIZER $t ${artifact:-<artifact>}"
        echo "   minimise:  cargo +nightly fuzz tmin -s $SANITIZER $t ${artifact:-<artifact>}"
        failed+=("$t")
        summary+=("$(printf '%-16s CRASH  execs %-10s exec/s %-8s artifact %s' "$t" "${execs:-?}" "${rate:-?}" "${artifact:-?}")")
    else
        summary+=("$(printf '%-16s ok     execs %-10s exec/s %-8s %ss, corpus %s inputs' "$t" "${execs:-?}" "${rate:-?}" "$SECONDS_PER_TARGET" "$units")")
    fi
    echo "   $t: execs ${execs:-?}, exec/s ${rate:-?}, exit $rc"
done

echo
echo "==> summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), ${SECONDS_PER_TARGET}s per target)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "==> crashes in: ${failed[*]} (artifacts under $FUZZ_DIR/artifacts/, logs under $LOGS/)"
    exit 1
fi
