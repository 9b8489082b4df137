#!/usr/bin/env bash
# `make fuzz`: builds the libFuzzer targets in Fuzz/ (issue 16) and runs each one for a bounded
# time over its corpus in Fuzz/corpus/<target>: the fast path's request-head parser, its chunked
# body framing and the JSON validator, each checked against its invariants (the oracles in
# Fuzz/Sources/FuzzedParsers: NIO's decoder, a reference decoder, Foundation's JSONSerialization).
# A crash, a hang (10 s for one input) or a broken invariant fails the run; the input is printed
# with the command that replays it, and belongs in a unit test (Tests/SkiffAPITests/FuzzFindingsTests.swift).
#
#   FUZZ_SECONDS=60    seconds per target (scripts/test.sh runs 20)
#   FUZZ_TARGETS="request-head chunked-body json"
#   scripts/fuzz.sh --merge          afterwards, adds inputs that reached new code to Fuzz/corpus
#   scripts/fuzz.sh --replay FILE... runs inputs once through every target (a crash file, say)
#
# The build has its own scratch path and flags (-sanitize=fuzzer,address -parse-as-library); it
# needs swift-nio only and takes about two minutes on two cores the first time.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-request-head chunked-body json}
SCRATCH=${FUZZ_SCRATCH_PATH:-$PWD/.build-libfuzzer}
MERGE=0
REPLAY=()
case "${1:-}" in
    --merge) MERGE=1 ;;
    --replay) shift; REPLAY=("$@") ;;
    "") ;;
    *) echo "usage: scripts/fuzz.sh [--merge | --replay FILE...]" >&2; exit 2 ;;
esac

executable() { # target -> product
    case $1 in
        request-head) echo FuzzRequestHead ;;
        chunked-body) echo FuzzChunkedBody ;;
        json) echo FuzzJSONValidator ;;
        *) echo "unknown fuzz target $1" >&2; exit 2 ;;
    esac
}

echo "== building the fuzz targets (libFuzzer + AddressSanitizer, $SCRATCH)"
swift build --package-path Fuzz --scratch-path "$SCRATCH" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library
BIN=$(swift build --package-path Fuzz --scratch-path "$SCRATCH" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library --show-bin-path)

# Swift's own backtracer would catch the crash before libFuzzer could save its input. Leak checks
# are off: NIO and Foundation keep caches for the life of the process, which LeakSanitizer reports.
export SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0

if ((${#REPLAY[@]})); then
    for target in $FUZZ_TARGETS; do
        echo "== replaying on $target"
        "$BIN/$(executable "$target")" -runs=1 "${REPLAY[@]}"
    done
    exit 0
fi

WORK=$(mktemp -d /tmp/skiff-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failed=0
for target in $FUZZ_TARGETS; do
    product=$(executable "$target")
    mkdir -p "$WORK/$target/new" "$WORK/$target/artifacts"
    echo "== fuzzing $target ($product) for ${FUZZ_SECONDS} s over Fuzz/corpus/$target"
    # New inputs go to a scratch folder first (listed first: libFuzzer writes there); the corpus
    # in the repository only grows by --merge.
    target_failed=0
    if ! "$BIN/$product" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -dict="Fuzz/dictionaries/$target.dict" -artifact_prefix="$WORK/$target/artifacts/" \
        "$WORK/$target/new" "Fuzz/corpus/$target" >"$WORK/$target/log" 2>&1; then
        failed=1
        target_failed=1
        echo "!! $target: a crash, hang or broken invariant"
        grep -E "INVARIANT BROKEN|ERROR:|SUMMARY:" "$WORK/$target/log" | head -20 || true
        for artifact in "$WORK/$target/artifacts"/*; do
            [ -e "$artifact" ] || continue
            mkdir -p .fuzz-findings
            cp "$artifact" ".fuzz-findings/$target-$(basename "$artifact")"
            echo "   input (base64): $(base64 -w0 "$artifact")"
            echo "   kept as .fuzz-findings/$target-$(basename "$artifact"); replay: scripts/fuzz.sh --replay .fuzz-findings/$target-$(basename "$artifact")"
        done
        echo "   add the input to Tests/SkiffAPITests/FuzzFindingsTests.swift as a regular test"
        tail -40 "$WORK/$target/log"
    else
        grep -E "stat::number_of_executed_units|stat::new_units_added" "$WORK/$target/log" | sed 's/^/   /'
    fi
    if [ "$MERGE" = 1 ] && [ "$target_failed" = 0 ]; then
        echo "== merging new coverage of $target into Fuzz/corpus/$target"
        "$BIN/$product" -merge=1 "Fuzz/corpus/$target" "$WORK/$target/new" >"$WORK/$target/merge.log" 2>&1 || tail -20 "$WORK/$target/merge.log"
    fi
done
exit "$failed"
