#!/usr/bin/env bash
# The main job, end to end on this machine:
#
#   bash scripts/demo.sh
#
# Needs Rust 1.95.0 (rust-toolchain.toml; through rustup), python3 with pip and any Terraform
# >= 1.0 on PATH; it checks them all first and names every one that is missing. It installs
# only protoc (PyPI, into .tools/py), never a system package, and needs no root and no account.
# 5 to 10 minutes the first time on 2 cores (mostly building), under a minute after.
#
# 1. checks and installs its tools (scripts/setup.sh --for=demo) and builds the provider and
#    bentocloud-local
# 2. starts bentocloud-local (a local BentoCloud control plane) on a free loopback port
# 3. installs the provider from a local filesystem mirror and applies examples/quickstart
# 4. changes the bento version (-var bento_version=v2) and applies again, printing the rolling
#    update as the control plane reports it
# 5. lists the fleet through the bentocloud_deployments data source, and checks that a plan
#    afterwards changes no deployment
#
# Everything lives in .work/demo (recreated on every run). The fleet page (ENDPOINT/) is printed
# at the start and at the end. The server is stopped at the end (after the rollout watcher, on
# every exit path); KEEP_RUNNING=1 leaves it running and prints how to reach it.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() {
    echo "demo: ERROR: $*" >&2
    exit 1
}

step "checking what the demo needs"
echo "Rust 1.95.0 (rust-toolchain.toml), python3 with pip, Terraform >= 1.0 on PATH; it installs"
echo "only protoc (PyPI, into .tools/py): no system package, no root. 5 to 10 minutes the"
echo "first time on 2 cores (mostly building), under a minute after."
# shellcheck source=scripts/setup.sh
source "$ROOT/scripts/setup.sh" --for=demo
TF="$BENTOCLOUD_TF"

step "building terraform-provider-bentocloud and bentocloud-local"
cargo build --bin terraform-provider-bentocloud --bin bentocloud-local
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/debug"
[ -x "$BIN/terraform-provider-bentocloud" ] || fail "provider binary missing after build"
[ -x "$BIN/bentocloud-local" ] || fail "bentocloud-local binary missing after build"

WORK="$ROOT/.work/demo"
rm -rf "$WORK"
mkdir -p "$WORK/data" "$WORK/plugin-cache"

step "starting bentocloud-local"
# --auto-register-bentos: the quickstart deploys bentos nobody pushed (iris_classifier:v1 and
# v2, summarizer:v1); on BentoCloud you would `bentoml push` them first, and by default
# bentocloud-local answers 404 for them as BentoCloud does.
"$BIN/bentocloud-local" serve --listen 127.0.0.1:0 --data-dir "$WORK/data" --auto-register-bentos \
    >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
POLLER_PID=""
# Stops the rollout watcher (its pid is the python process itself, see watch_rollout).
stop_poller() {
    if [ -n "$POLLER_PID" ]; then
        kill "$POLLER_PID" 2>/dev/null || true
        wait "$POLLER_PID" 2>/dev/null || true
        POLLER_PID=""
    fi
}
cleanup() {
    # The watcher first: left running after the server stopped, it only reported refused
    # connections after the demo had ended.
    stop_poller
    if [ "${KEEP_RUNNING:-0}" = "1" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        echo ""
        echo "bentocloud-local is still running (pid $SERVER_PID), log: $WORK/server.log"
        echo "  fleet page: $(cat "$WORK/data/endpoint" 2>/dev/null)/"
        echo "  export BENTO_CLOUD_API_ENDPOINT=$(cat "$WORK/data/endpoint" 2>/dev/null)"
        echo "  export BENTO_CLOUD_API_KEY=$(cat "$WORK/data/token" 2>/dev/null)"
        echo "  stop it with: kill $SERVER_PID"
    else
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
# Ctrl-C and kill end the script through the EXIT trap too.
trap 'exit 130' INT
trap 'exit 143' TERM

deadline=$((SECONDS + 60))
until [ -s "$WORK/data/endpoint" ] && [ -s "$WORK/data/token" ]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        cat "$WORK/server.log" >&2
        fail "bentocloud-local exited before it was listening (log above)"
    fi
    [ $SECONDS -lt $deadline ] || fail "bentocloud-local did not write endpoint/token within 60s (log: $WORK/server.log)"
    sleep 0.2
done
ENDPOINT="$(tr -d '\n' <"$WORK/data/endpoint")"
TOKEN="$(tr -d '\n' <"$WORK/data/token")"
echo "listening on $ENDPOINT (data dir $WORK/data)"
echo "fleet page: $ENDPOINT/ (already logged in: $ENDPOINT/#token=$TOKEN)"

# The provider, installed the way Terraform installs any provider: from a filesystem mirror,
# under the version Cargo.toml gives and the platform Terraform runs on (linux_amd64,
# darwin_arm64, ...).
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -n1)"
MIRROR="$WORK/mirror/registry.terraform.io/bentocloud/bentocloud/$VERSION/$BENTOCLOUD_TF_PLATFORM"
mkdir -p "$MIRROR"
cp "$BIN/terraform-provider-bentocloud" "$MIRROR/terraform-provider-bentocloud_v$VERSION"
cat >"$WORK/terraformrc" <<RC
plugin_cache_dir = "$WORK/plugin-cache"
provider_installation {
  filesystem_mirror {
    path    = "$WORK/mirror"
    include = ["registry.terraform.io/bentocloud/bentocloud"]
  }
  direct {
    exclude = ["registry.terraform.io/bentocloud/bentocloud"]
  }
}
RC

export TF_CLI_CONFIG_FILE="$WORK/terraformrc"
export TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1 TF_INPUT=0
export BENTO_CLOUD_API_ENDPOINT="$ENDPOINT"
export BENTO_CLOUD_API_KEY="$TOKEN"
# bentocloud-local syncs the reported status every 2 s (like the real platform, it lags): the
# provider's settle window is that plus a second.
export BENTOCLOUD_STATUS_SYNC_PERIOD=3s

cp -r "$ROOT/examples/quickstart" "$WORK/quickstart"
cd "$WORK/quickstart"

step "terraform init (Terraform $("$TF" version | head -n1 | cut -d' ' -f2))"
"$TF" init -input=false -no-color >"$WORK/init.log" 2>&1 || {
    cat "$WORK/init.log"
    fail "terraform init failed"
}
grep -i 'bentocloud' "$WORK/init.log" || true

step "terraform apply: create the quickstart deployments (bento_version=v1)"
"$TF" apply -input=false -auto-approve -no-color

# Prints every change of the iris deployment's status / rollout while the next apply runs.
# Started in the background; `exec` makes the background job's pid the python process itself,
# so stop_poller's kill reaches it (killing a subshell would leave its python child running).
# It also exits by itself once the script that started it is gone.
watch_rollout() {
    exec python3 - "$ENDPOINT" "$TOKEN" "$$" <<'PY'
import json, os, signal, sys, time, urllib.request
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
# SIGUSR1 (sent once apply has returned): print the state after it, then exit.
final = []
signal.signal(signal.SIGUSR1, lambda *_: final.append(True))
endpoint, token, parent = sys.argv[1].rstrip("/"), sys.argv[2], int(sys.argv[3])
url = endpoint + "/api/local/v1/deployments/iris-classifier?cluster=local-east"
last = None
while os.getppid() == parent:
    asked_last = bool(final)  # this poll starts after the signal: it is the last one
    try:
        req = urllib.request.Request(url, headers={"X-YATAI-API-TOKEN": token})
        d = json.load(urllib.request.urlopen(req, timeout=5))
        r = d.get("rollout") or {}
        rev = (d.get("latest_revision") or {}).get("uid", "")
        line = "  [server] status=%-14s phase=%-14s ready=%s/%s updated=%s revision=%s" % (
            d.get("status"), r.get("phase", "-"), r.get("ready_replicas", "-"),
            r.get("desired_replicas", "-"), r.get("updated_replicas", "-"), rev[:12])
        if line != last:
            print(line, flush=True)
            last = line
    except Exception as e:  # the demo's watcher only reports; terraform decides success
        line = "  [server] (poll failed: %s)" % e
        if line != last:
            print(line, flush=True)
            last = line
    if asked_last:
        break
    time.sleep(0.25)
PY
}

step "terraform apply -var bento_version=v2: rolling update of iris-classifier"
watch_rollout &
POLLER_PID=$!
"$TF" apply -input=false -auto-approve -no-color -var bento_version=v2
# The watcher prints the state after apply, then exits.
kill -USR1 "$POLLER_PID" 2>/dev/null || true
wait "$POLLER_PID" 2>/dev/null || true
POLLER_PID=""

step "the fleet, through data.bentocloud_deployments (label team=quickstart, both clusters)"
"$TF" output -no-color fleet
# The status is BentoCloud's as read right after the apply: the platform reports it at its next
# status sync, so a rollout the provider saw finish on its pods may still read `deploying`.
echo "(statuses as reported when read; BentoCloud's lags a rollout by up to one status sync)"

step "terraform plan (expect: no changes to the deployments)"
# The deployments must have converged. Outputs may differ from the apply's: `fleet` reads the
# statuses live, and the next status sync may have changed one since.
"$TF" plan -input=false -no-color -var bento_version=v2 -out="$WORK/final.tfplan"
"$TF" show -json "$WORK/final.tfplan" >"$WORK/final-plan.json"
python3 - "$WORK/final-plan.json" <<'PY' || fail "the plan after apply changes deployments (plan above)"
import json, sys
plan = json.load(open(sys.argv[1]))
changed = [r["address"] for r in plan.get("resource_changes", [])
           if r.get("mode") == "managed" and r["change"]["actions"] != ["no-op"]]
if changed:
    print("changes planned for: " + ", ".join(changed), file=sys.stderr)
    sys.exit(1)
print("no changes to the deployments")
PY

step "done"
echo "The quickstart ran against $ENDPOINT; files in $WORK."
if [ "${KEEP_RUNNING:-0}" = "1" ]; then
    echo "fleet page: $ENDPOINT/ (already logged in: $ENDPOINT/#token=$TOKEN)"
else
    echo "fleet page: $ENDPOINT/ (served until this script ends; KEEP_RUNNING=1 keeps it up)"
fi
