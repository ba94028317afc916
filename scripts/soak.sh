#!/usr/bin/env bash
# Soak: more and longer seeded random sequences of operations on three deployments than the test
# suite runs (the runner is tests/integration/sequences.rs: applies of random
# configurations, out-of-band edits, terminates and deletes through the API, applies under
# injected faults, kill -9 of the control plane and Ctrl-C mid-apply, a never-ready bento then a
# good one, imports), with the real Terraform 1.11.4 against a real bentocloud-local process.
#
#   bash scripts/soak.sh                                  # 10 sequences of 12 steps, random seed
#   SEED=42 STEPS=20 SEQUENCES=5 bash scripts/soak.sh     # sequence k uses seed SEED + k
#   SEED=<a failing seed> SEQUENCES=1 STEPS=<its step> bash scripts/soak.sh   # replay one
#
# Without SEED the runner picks one and prints it first. A failing sequence does not stop the
# others; the run ends with every failing seed, its step, and the command that replays it (the
# operations and configurations come from the seed alone). Tools as for the test suite
# (scripts/setup.sh). Log: .work/soak-logs/. Extra arguments go to `cargo test`.
# SEQ_PROVIDER_LOG=DIR also keeps the provider's DEBUG log of each sequence (DIR/seq-<seed>.log).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/setup.sh
source "$ROOT/scripts/setup.sh"

export SEQUENCES="${SEQUENCES:-10}"
export STEPS="${STEPS:-12}"
if [ -n "${SEED:-}" ]; then
    export SEED
fi
export CARGO_TERM_COLOR=never
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

LOGS="$ROOT/.work/soak-logs"
mkdir -p "$LOGS"
LOG="$LOGS/soak-$(date -u +%Y%m%d-%H%M%S).log"
echo "soak: SEED=${SEED:-(random, printed below)} SEQUENCES=$SEQUENCES STEPS=$STEPS; log $LOG" >&2

set +e
cargo test --test integration "$@" -- --exact sequences::random_sequences_tf1_11 --nocapture 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e

echo "" >&2
echo "soak: $(grep -E '^\[seq\] [0-9]+ sequences' "$LOG" | tail -n1 || echo 'no summary (see the log)')" >&2
grep -E '^  replay: ' "$LOG" | sort -u >&2 || true
if [ "$rc" -ne 0 ]; then
    echo "soak: FAILED (exit $rc); log $LOG" >&2
else
    echo "soak: passed; log $LOG" >&2
fi
exit "$rc"
