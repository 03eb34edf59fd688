#!/usr/bin/env bash
# Fuzzes the firmware parsers briefly: the cargo-fuzz targets in fuzz/ (catalog, jcat, archive,
# capsule, fv, vss, esl, pe, tiano, pkcs7, scan), each for FUZZ_SECONDS, from seeds fuzz/seeds.py writes.
#
#   scripts/fuzz.sh                         every target, 15 s each (what CI runs)
#   scripts/fuzz.sh fv pe                   only these targets
#   FUZZ_SECONDS=600 scripts/fuzz.sh scan   longer, by hand
#
# Needs the nightly toolchain (cargo +nightly) and python3; installs cargo-fuzz with
# `cargo install --locked` when it is missing. Builds in FUZZ_TARGET_DIR (default
# $HOME/.cache/metal-automata/fuzz-target), never in the workspace's target dir, and keeps the
# growing corpus outside the repo in FUZZ_CORPUS_DIR/<target> (default
# $HOME/.cache/metal-automata/fuzz-corpus); crashes land in fuzz/artifacts/<target>/ (git-ignored)
# and libFuzzer's output in $FUZZ_TARGET_DIR/logs/<target>.log. A crash, panic, overflow,
# allocation over the 2 GiB RSS limit or an input slower than FUZZ_TIMEOUT (25 s) fails the run:
# the script prints the reproducer's path and the command that replays it, runs the other
# targets, and exits 1.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${FUZZ_SECONDS:-15}
TIMEOUT=${FUZZ_TIMEOUT:-25}
TARGET_DIR=${FUZZ_TARGET_DIR:-$HOME/.cache/metal-automata/fuzz-target}
CORPUS=${FUZZ_CORPUS_DIR:-$HOME/.cache/metal-automata/fuzz-corpus}
LOGS=$TARGET_DIR/logs
# The caller's CARGO_TARGET_DIR (scripts/test.sh sets the busy main one) must not be used.
export CARGO_TARGET_DIR=$TARGET_DIR
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
ALL=(catalog jcat archive capsule fv vss esl pe tiano pkcs7 scan)
if [ $# -gt 0 ]; then TARGETS=("$@"); else TARGETS=("${ALL[@]}"); fi
step() { echo; echo "==> $*"; }

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    step "cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

step "seed corpora (fuzz/seeds.py into $CORPUS)"
python3 fuzz/seeds.py "$CORPUS"

step "cargo fuzz build (target dir $TARGET_DIR)"
started=$(date +%s)
cargo +nightly fuzz build --target-dir "$TARGET_DIR"
echo "built in $(( $(date +%s) - started )) s"

mkdir -p "$LOGS"
failed=()
for t in "${TARGETS[@]}"; do
    step "fuzz $t for $SECS s"
    stamp=$(mktemp)
    log=$LOGS/$t.log
    status=0
    cargo +nightly fuzz run --target-dir "$TARGET_DIR" "$t" "$CORPUS/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -timeout="$TIMEOUT" \
        -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    corpus=$(find "$CORPUS/$t" -type f | wc -l)
    if [ "$status" = 0 ]; then
        echo "$t: ok, ${runs:-?} runs, ${rate:-?} exec/s, corpus $corpus"
    else
        failed+=("$t")
        echo "$t: FAILED (exit $status), ${runs:-?} runs; the end of $log:"
        tail -n 60 "$log"
        found=0
        while IFS= read -r a; do
            found=1
            echo "reproducer: $PWD/$a"
            echo "replay:     cargo +nightly fuzz run --target-dir $TARGET_DIR $t $a"
        done < <(find "fuzz/artifacts/$t" -type f -newer "$stamp" 2>/dev/null)
        [ $found = 1 ] || echo "no reproducer was written (a build or setup failure?)"
    fi
    rm -f "$stamp"
done

echo
echo "fuzz: $(( ${#TARGETS[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed targets: ${failed[*]}"
    exit 1
fi
