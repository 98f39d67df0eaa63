#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for SECONDS, one after the other, on one core
# (`-jobs=1 -workers=1`), starting from the committed seeds (fuzz/seeds/<target>/, copied into
# the gitignored fuzz/corpus/<target>/). Prints each target's exec count and a summary table;
# exits non-zero if any target crashed (the reproducer is in fuzz/artifacts/<target>/).
#
#   fuzz/run-all.sh SECONDS [TARGET...]     # default: every target in fuzz/Cargo.toml
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Logs go to
# fuzz/artifacts/run-all/<target>.log.
set -uo pipefail

SECONDS_EACH=${1:?usage: fuzz/run-all.sh SECONDS [TARGET...]}
shift
FUZZ_DIR=$(cd "$(dirname "$0")" && pwd)
cd "$FUZZ_DIR"
TOOLCHAIN=${FUZZ_TOOLCHAIN:-nightly}
# -a: debug assertions, so arithmetic overflow panics instead of wrapping. FUZZ_SANITIZER=none
# runs without AddressSanitizer: the code under test is safe Rust, and the targets that compile
# regexes (config, relabel) run ~50x slower under ASan (regex-automata's NFA builds allocate a
# lot), so slowly that one large repetition (`\pL{265}`) exceeds the 10 s unit timeout there
# while it compiles in 0.2 s in a release build.
BUILD_FLAGS=(-a)
if [ -n "${FUZZ_SANITIZER:-}" ]; then
    BUILD_FLAGS+=(-s "$FUZZ_SANITIZER")
fi

if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    mapfile -t TARGETS < <(cargo "+$TOOLCHAIN" fuzz list)
fi

echo "== building ${#TARGETS[@]} targets ($(cargo "+$TOOLCHAIN" fuzz --version), $(rustc "+$TOOLCHAIN" --version))"
cargo "+$TOOLCHAIN" fuzz build "${BUILD_FLAGS[@]}" || exit 2

LOGS="$FUZZ_DIR/artifacts/run-all"
mkdir -p "$LOGS"
SUMMARY=()
FAILED=0
for target in "${TARGETS[@]}"; do
    corpus="$FUZZ_DIR/corpus/$target"
    mkdir -p "$corpus" "$FUZZ_DIR/artifacts/$target"
    if [ -d "$FUZZ_DIR/seeds/$target" ]; then
        cp -n "$FUZZ_DIR/seeds/$target/"* "$corpus/" 2>/dev/null || true
    fi
    log="$LOGS/$target.log"
    echo "== $target: ${SECONDS_EACH}s, corpus $(ls "$corpus" | wc -l) inputs"
    start=$(date +%s)
    # With -jobs, libFuzzer runs the job in a child whose output goes to fuzz-0.log in the
    # working directory; run in $LOGS so that file lands there, then append it to the log.
    rm -f "$LOGS/fuzz-0.log"
    (cd "$LOGS" && cargo "+$TOOLCHAIN" fuzz run --fuzz-dir "$FUZZ_DIR" "${BUILD_FLAGS[@]}" "$target" "$corpus" -- \
        -max_total_time="$SECONDS_EACH" -jobs=1 -workers=1 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$FUZZ_DIR/artifacts/$target/") >"$log" 2>&1
    rc=$?
    [ -f "$LOGS/fuzz-0.log" ] && cat "$LOGS/fuzz-0.log" >>"$log"
    elapsed=$(( $(date +%s) - start ))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    [ -n "$execs" ] || execs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | grep -o '[0-9]*')
    [ -n "$execs" ] || execs="?"
    if [ $rc -eq 0 ] && ! grep -qE '^(==[0-9]+==ERROR|SUMMARY: libFuzzer)|panicked at' "$log"; then
        result="ok"
    else
        result="CRASH (rc $rc, see $log)"
        FAILED=1
        grep -E 'panicked at|==ERROR|SUMMARY|Test unit written|artifact_prefix' "$log" | head -20
    fi
    echo "   $target: $execs runs in ${elapsed}s: $result"
    SUMMARY+=("| $target | $execs | ${elapsed} s | $result |")
done

echo
echo "| target | runs (execs) | duration | result |"
echo "| --- | --- | --- | --- |"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
