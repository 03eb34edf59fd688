#!/usr/bin/env bash
# The whole test run, on a fresh machine or a developer's: what CI runs (.ci/run calls this).
#
#   scripts/test.sh           fmt, clippy, build, Rust tests on both log backends, Python peers
#   scripts/test.sh --quick   skip fmt and clippy
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
QUICK=0; [ "${1:-}" = "--quick" ] && QUICK=1

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/metal-automata/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
VENV=${MA_TEST_VENV:-$HOME/.cache/metal-automata/venv}
step() { echo; echo "==> $*"; }
started=$(date +%s)

step "dependencies"
scripts/install-deps.sh

if [ $QUICK = 0 ]; then
    step "cargo fmt --check"
    cargo fmt --all --check
    step "cargo clippy"
    cargo clippy --workspace --all-targets --release -- -D warnings
fi

step "a qemu server for the agent (Debian kernel, busybox, swtpm, OVMF)"
eval "$(scripts/agent-vm.sh)"

step "cargo build"
cargo build --release --workspace --all-targets

step "Kafka broker (Apache Kafka from Maven Central)"
export KAFKA_STATE_DIR=${KAFKA_STATE_DIR:-$(mktemp -d -t ma-kafka-XXXX)}
export KAFKA_PORT=${KAFKA_PORT:-19092} KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19093}
trap 'scripts/kafka.sh stop || true' EXIT
scripts/kafka.sh start
export MA_TEST_KAFKA=127.0.0.1:$KAFKA_PORT
export MA_TEST_KAFKA_SCRIPT=$ROOT/scripts/kafka.sh
export MA_TEST_BIN=$CARGO_TARGET_DIR/release/metal-automata

step "Rust tests (embedded log and Kafka at $MA_TEST_KAFKA)"
cargo test --release --workspace

step "fuzz the firmware parsers (${FUZZ_SECONDS:-15} s per target)"
if cargo +nightly --version >/dev/null 2>&1; then
    scripts/fuzz.sh
else
    echo "no nightly toolchain here: cargo-fuzz cannot run, fuzzing skipped"
fi

step "Python peer tests"
"$VENV/bin/python" -m pytest -q tests/python

echo
echo "All tests passed in $(( $(date +%s) - started )) s."
