#!/usr/bin/env python3
"""The benchmark, run by `bash scripts/bench.sh` (which installs and builds first).

Measures every figure side by side with its baseline in one run, prints a table of medians and
ratios, and writes it with the command line and the machine to BENCHMARKS.md, plus a picture of
one rolling update under load. Everything runs on this machine, over loopback only; every loop is
bounded. Work files live in .work/bench (recreated on every run).

Environment (set by scripts/bench.sh): BENCH_ROOT, BENCH_TF (Terraform 1.11.4), BENCH_NULL
(the Go null provider binary), BENCH_BENTOML (the bentoml CLI), BENCH_REPEATS (default 5),
BENCH_FLEET (default 200), BENCH_LIST (default 10000), BENCH_CMDLINE (for the report).
"""

import concurrent.futures
import csv
import json
import os
import platform
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.environ.get("BENCH_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TF = os.environ.get("BENCH_TF", "terraform")
NULL_BIN = os.environ["BENCH_NULL"]
NULL_VERSION = "2.1.2"
BENTOML = os.environ["BENCH_BENTOML"]
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
FLEET = int(os.environ.get("BENCH_FLEET", "200"))
LIST_N = int(os.environ.get("BENCH_LIST", "10000"))
CMDLINE = os.environ.get("BENCH_CMDLINE", "bash scripts/bench.sh")
REL = os.path.join(ROOT, "target", "release")
# The provider as shipped: `cargo build -p terraform-provider-bentocloud --profile dist` (see scripts/release.sh).
PROVIDER = os.path.join(ROOT, "target", "dist", "terraform-provider-bentocloud")
LOCAL = os.path.join(REL, "bentocloud-local")
DRIVER = os.path.join(REL, "bentocloud-bench")
WORK = os.path.join(ROOT, ".work", "bench")
IMAGE_REL = "docs/images/rolling-update.png"
CLUSTER = "local-east"

results = {}  # figure key -> dict
errors = []  # stages that failed
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "").split(",")))  # stages to run again (all when empty)
procs = []


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def med(xs):
    return statistics.median(xs) if xs else float("nan")


# ------------------------------------------------------------------------------------------
# bentocloud-local servers and the API


class Server:
    def __init__(self, name, timing):
        self.dir = os.path.join(WORK, "srv-" + name)
        os.makedirs(self.dir, exist_ok=True)
        cfg = os.path.join(self.dir, "platform.json")
        with open(cfg, "w") as f:
            json.dump({"timing": timing}, f)
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.p = subprocess.Popen(
            # The fleets deploy bentos nobody pushed (`fleet:v1`, ...): the benchmark measures the
            # provider, not bento handling, so its servers register them on first sight.
            [LOCAL, "serve", "--listen", "127.0.0.1:0", "--data-dir", self.dir, "--config", cfg,
             "--auto-register-bentos"],
            stdout=self.log, stderr=subprocess.STDOUT)
        procs.append(self.p)
        deadline = time.time() + 60
        while not (os.path.exists(os.path.join(self.dir, "endpoint")) and os.path.exists(os.path.join(self.dir, "token"))):
            if self.p.poll() is not None or time.time() > deadline:
                raise SystemExit(f"bench: bentocloud-local {name} did not start (log {self.dir}/server.log)")
            time.sleep(0.05)
        time.sleep(0.1)
        self.endpoint = open(os.path.join(self.dir, "endpoint")).read().strip().rstrip("/")
        self.token = open(os.path.join(self.dir, "token")).read().strip()

    def env(self):
        e = dict(os.environ)
        e["BENTO_CLOUD_API_ENDPOINT"] = self.endpoint
        e["BENTO_CLOUD_API_KEY"] = self.token
        return e

    def call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.endpoint + path, data=data, method=method,
                                     headers={"X-YATAI-API-TOKEN": self.token, "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"null")

    def deployment(self, name):
        # The local route: the API document plus bentocloud-local's rollout progress.
        return self.call("GET", f"/api/local/v1/deployments/{name}?cluster={CLUSTER}")

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()


def deployment_body(name, bento, replicas=1, strategy=None):
    svc = {"scaling": {"min_replicas": replicas, "max_replicas": replicas}, "config_overrides": {}}
    if strategy:
        svc["deployment_strategy"] = strategy
    return {"name": name, "bento": bento, "services": {"apiserver": svc}}


def create_many(srv, names, bento, workers=8):
    def one(n):
        srv.call("POST", f"/api/v2/deployments?cluster={CLUSTER}", deployment_body(n, bento))
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, names))


# ------------------------------------------------------------------------------------------
# Terraform working directories


def mirror(path, wrap_dir=None, fmt="%M", ext="rss"):
    """A filesystem mirror with both providers; with wrap_dir, each binary is a shell script that
    runs the real one under /usr/bin/time and appends `fmt` (peak RSS in KiB by default) to
    wrap_dir/<name>.<ext>."""
    bc = os.path.join(path, "registry.terraform.io/bentocloud/bentocloud/0.1.0/linux_amd64")
    nl = os.path.join(path, f"registry.terraform.io/hashicorp/null/{NULL_VERSION}/linux_amd64")
    os.makedirs(bc, exist_ok=True)
    os.makedirs(nl, exist_ok=True)
    for d, real, fname, short in ((bc, PROVIDER, "terraform-provider-bentocloud_v0.1.0", "bentocloud"),
                                  (nl, NULL_BIN, f"terraform-provider-null_v{NULL_VERSION}_x4", "null")):
        dst = os.path.join(d, fname)
        if wrap_dir:
            with open(dst, "w") as f:
                f.write(f"#!/bin/sh\nexec /usr/bin/time -a -o {wrap_dir}/{short}.{ext} -f '{fmt}' {real} \"$@\"\n")
            os.chmod(dst, 0o755)
        else:
            shutil.copy(real, dst)
    return path


def cli_config(path, mirror_dir):
    with open(path, "w") as f:
        f.write(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror_dir}"\n  }}\n}}\n')
    return path


class TfDir:
    def __init__(self, name, main_tf, cli, env):
        self.dir = os.path.join(WORK, "tf", name)
        os.makedirs(self.dir, exist_ok=True)
        with open(os.path.join(self.dir, "main.tf"), "w") as f:
            f.write(main_tf)
        self.env = dict(env)
        self.env["TF_CLI_CONFIG_FILE"] = cli
        self.env["TF_IN_AUTOMATION"] = "1"
        self.env["CHECKPOINT_DISABLE"] = "1"
        for k in ("TF_LOG", "TF_LOG_PATH", "TF_LOG_PROVIDER"):
            self.env.pop(k, None)

    def run(self, *args, extra_env=None, check=True):
        env = dict(self.env)
        env.update(extra_env or {})
        t0 = time.perf_counter()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        p = subprocess.run([TF, *args], cwd=self.dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL)
        el = time.perf_counter() - t0
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU (user + system) of Terraform and of every process it started and reaped (providers).
        self.last_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        if check and p.returncode != 0:
            raise SystemExit(f"bench: terraform {' '.join(args)} in {self.dir} failed:\n{p.stdout.decode()[-4000:]}")
        return el, p

    def init(self):
        self.run("init", "-input=false", "-no-color")

    def plan(self, extra_env=None):
        el, _ = self.run("plan", "-input=false", "-no-color", extra_env=extra_env)
        return el


BC_HEAD = '''terraform {
  required_providers {
    bentocloud = {
      source  = "bentocloud/bentocloud"
      version = "0.1.0"
    }
  }
}
'''
NULL_HEAD = f'''terraform {{
  required_providers {{
    null = {{
      source  = "hashicorp/null"
      version = "{NULL_VERSION}"
    }}
  }}
}}
'''


def bc_fleet_tf(n):
    return BC_HEAD + f'''
resource "bentocloud_deployment" "d" {{
  count            = {n}
  name             = format("fleet-{n}-%04d", count.index)
  cluster          = "{CLUSTER}"
  bento            = "fleet:v1"
  min_replicas     = 1
  max_replicas     = 1
  wait_for_rollout = false
}}
'''


def null_fleet_tf(n):
    return NULL_HEAD + f'''
resource "null_resource" "d" {{
  count = {n}
}}
'''


# ------------------------------------------------------------------------------------------
# Provider log parsing (TF_LOG_PROVIDER=DEBUG writes hclog JSON lines of target bentocloud::client)


def debug_env(lp):
    """The provider's DEBUG events as hclog JSON lines in `lp` (PLUGIN_LOG_FILE, appended by every
    provider process); Terraform's own log goes beside it."""
    return {"TF_LOG_PROVIDER": "DEBUG", "PLUGIN_LOG_FILE": lp, "TF_LOG_PATH": lp + ".terraform"}


def client_requests(path):
    reqs = []
    with open(path, errors="replace") as f:
        for line in f:
            if "bentocloud::client" not in line and '"path"' not in line:
                continue
            i = line.find("{")
            if i < 0:
                continue
            try:
                j = json.loads(line[i:])
            except ValueError:
                continue
            if "path" in j and "method" in j:
                j["path"], _, j["query"] = j["path"].partition("?")
                reqs.append(j)
    return reqs


def ts(j):
    # "@timestamp": "2026-11-23T23:30:19.004884Z" or with offset
    s = j.get("@timestamp", "")
    m = re.match(r"(\d+)-(\d+)-(\d+)T(\d+):(\d+):(\d+(?:\.\d+)?)", s)
    if not m:
        return None
    import calendar
    y, mo, d, h, mi = (int(x) for x in m.groups()[:5])
    sec = float(m.group(6))
    base = calendar.timegm((y, mo, d, h, mi, 0))
    off = 0
    mz = re.search(r"([+-])(\d\d):(\d\d)$", s)
    if mz:
        off = (int(mz.group(2)) * 3600 + int(mz.group(3)) * 60) * (1 if mz.group(1) == "+" else -1)
    return base + sec - off


def peak_rss_mb(wrap_dir, short):
    p = os.path.join(wrap_dir, short + ".rss")
    vals = []
    if os.path.exists(p):
        for line in open(p):
            line = line.strip()
            if line.isdigit():
                vals.append(int(line) / 1024.0)
    if os.path.exists(p):
        os.remove(p)
    return max(vals) if vals else float("nan"), len(vals)


# ------------------------------------------------------------------------------------------
# Figures


def bench_handshake():
    log("provider start to handshake (bentocloud vs null), 30 starts each")
    out = {}
    for short, binp in (("bentocloud", PROVIDER), ("null", NULL_BIN)):
        p = subprocess.run([DRIVER, "handshake", "--bin", binp, "--runs", "30"], stdout=subprocess.PIPE, check=True)
        j = json.loads(p.stdout)
        out[short] = med(j["ms"])
        out[short + "_line"] = j["handshake_line"]
    results["handshake"] = out


def wait_fleet_running(srv, n, timeout):
    """Until the server's cluster holds `n` deployments, all reported `running` (real replicas),
    so a refresh reads a settled fleet. The API has no change feed: this polls once a second,
    bounded by `timeout`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        lst = srv.call("GET", f"/api/v2/deployments?cluster={CLUSTER}&count={n + 1}&start=0")
        items = lst.get("items") or []
        if len(items) == n and all(i.get("status") == "running" for i in items):
            return
        time.sleep(1)
    log(f"the {n} deployments were not all running after {timeout} s; measuring anyway")


def bench_plans(srv, cli, cli_mem, wrap):
    sizes = [1, FLEET]
    dirs = {}
    for n in sizes:
        log(f"creating {n} deployments through terraform apply (bentocloud) and {n} null_resource")
        bc = TfDir(f"bc-{n}", bc_fleet_tf(n), cli, srv.env())
        nl = TfDir(f"null-{n}", null_fleet_tf(n), cli, srv.env())
        for d in (bc, nl):
            d.init()
            d.run("apply", "-input=false", "-no-color", "-auto-approve", "-parallelism=20")
        dirs[n] = (bc, nl)
    # wait until the fleet is running (real replicas), so the refresh reads a settled fleet
    wait_fleet_running(srv, sum(sizes), 120)
    for bc, nl in dirs.values():  # warm-up (page cache, first start)
        bc.plan()
        nl.plan()
    for n, (bc, nl) in dirs.items():
        log(f"terraform plan over {n}: {REPEATS} runs each, alternating")
        tb, tn = [], []
        for _ in range(REPEATS):
            tb.append(bc.plan())
            tn.append(nl.plan())
        results[f"plan_{n}"] = {"bentocloud": med(tb), "null": med(tn), "runs_bc": tb, "runs_null": tn}

    # Diagnostic: the same 200-deployment plan with the provider's client-side rate limit lifted
    # (provider attribute requests_per_second), to show what that limit costs.
    src = dirs[FLEET][0]
    fast = TfDir(f"bc-{FLEET}-nolimit", bc_fleet_tf(FLEET).replace(BC_HEAD, BC_HEAD + """
provider "bentocloud" {
  requests_per_second = 100000
}
"""), cli, srv.env())
    shutil.copy(os.path.join(src.dir, "terraform.tfstate"), os.path.join(fast.dir, "terraform.tfstate"))
    fast.init()
    fast.plan()
    tf_ = []
    for _ in range(REPEATS):
        tf_.append(fast.plan())
    results[f"plan_{FLEET}"]["bentocloud_nolimit"] = med(tf_)

    # API requests of one refresh (provider DEBUG log)
    bc, _ = dirs[FLEET]
    lp = os.path.join(WORK, "plan-debug.log")
    if os.path.exists(lp):
        os.remove(lp)
    bc.plan(extra_env=debug_env(lp))
    reqs = client_requests(lp)
    per = {}
    for r in reqs:
        per.setdefault((r["method"], r["path"]), 0)
        per[(r["method"], r["path"])] += 1
    reads = {k: v for k, v in per.items() if k[0] == "GET" and re.match(r"^/api/v2/deployments/fleet-", k[1])}
    results["requests"] = {
        "total": len(reqs),
        "deployment_reads": sum(reads.values()),
        "deployments_read": len(reads),
        "max_reads_one": max(reads.values()) if reads else 0,
        "other": sorted(f"{m} {p} x{c}" for (m, p), c in per.items() if (m, p) not in reads),
    }

    # peak memory: same plans through the /usr/bin/time wrappers
    log("peak memory of the provider processes (200-deployment plan), through /usr/bin/time")
    mem_b, mem_n = [], []
    for name, tf_fn, short, acc in (("bc", bc_fleet_tf, "bentocloud", mem_b), ("null", null_fleet_tf, "null", mem_n)):
        src = dirs[FLEET][0 if short == "bentocloud" else 1]
        d = TfDir(f"{name}-{FLEET}-mem", tf_fn(FLEET), cli_mem, srv.env())
        shutil.copy(os.path.join(src.dir, "terraform.tfstate"), os.path.join(d.dir, "terraform.tfstate"))
        d.init()
        peak_rss_mb(wrap, short)
        for _ in range(3):
            d.plan()
            acc.append(peak_rss_mb(wrap, short)[0])
    results["mem_plan"] = {"bentocloud": med(mem_b), "null": med(mem_n)}


def provider_cpu_s(wrap_dir, short):
    """User + system CPU seconds of every provider process since the last call (a plan starts the
    provider more than once: validate, then plan), summed; the file is consumed."""
    p = os.path.join(wrap_dir, short + ".cpu")
    total, n = 0.0, 0
    if os.path.exists(p):
        for line in open(p):
            parts = line.split()
            if len(parts) == 2:
                try:
                    total += float(parts[0]) + float(parts[1])
                    n += 1
                except ValueError:
                    pass
        os.remove(p)
    return (total if n else float("nan")), n


REFRESH_SIZES = [int(x) for x in os.environ.get("BENCH_REFRESH_SIZES", "1,200,1000").split(",") if x]
LATENCY_MS = 50


def set_read_latency(srv, ms):
    """bentocloud-local's fault injector: every GET under /api/v2/deployments (reads and list
    pages) waits `ms` before it is handled; 0 removes it."""
    rules = [] if ms == 0 else [{"method": "GET", "path_prefix": "/api/v2/deployments", "rate": 1.0,
                                 "phase": "before", "faults": [{"kind": "latency", "ms": ms}]}]
    srv.call("PUT", "/api/local/v1/faults", {"seed": 1, "rules": rules})


def refresh_requests(d, lp_name, extra_env):
    """The provider's deployment requests (GETs of one deployment and list pages) of one plan."""
    lp = os.path.join(WORK, lp_name)
    if os.path.exists(lp):
        os.remove(lp)
    env = dict(extra_env)
    env.update(debug_env(lp))
    d.plan(extra_env=env)
    reqs = [r for r in client_requests(lp) if r["path"].startswith("/api/v2/deployments")]
    gets = sum(1 for r in reqs if r["path"] != "/api/v2/deployments")
    lists = sum(1 for r in reqs if r["path"] == "/api/v2/deployments")
    return {"total": len(reqs), "gets": gets, "lists": lists}


PERF_HZ = 997


def perf_profile(d, name):
    """`perf record` (CPU clock, all processes the plan starts) of one `terraform plan` in `d`:
    CPU seconds per command (Terraform's Go process vs our provider) and each one's top symbols."""
    data = os.path.join(WORK, f"{name}.perf")
    env = dict(d.env)
    p = subprocess.run(["perf", "record", "-F", str(PERF_HZ), "-g", "-o", data, "--", TF, "plan", "-input=false",
                        "-no-color"], cwd=d.dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise SystemExit(f"bench: perf record failed: {p.stderr.decode()[-2000:]}")

    def report(*args):
        r = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        rows = []
        for line in r.stdout.decode(errors="replace").splitlines():
            m = re.match(r"\s*([\d.]+)%\s+(\d+)\s+(.*)$", line)
            if m:
                rows.append((float(m.group(1)), int(m.group(2)), m.group(3).strip()))
        return rows

    by_comm = {}
    for pct, samples, comm in report("--sort", "comm", "-n"):
        by_comm[comm] = samples / PERF_HZ
    # Our process: its main thread (comm cut to 15 characters) and its tokio workers (no other
    # process of the plan runs tokio).
    ours = [c for c in by_comm if c.startswith(("terraform-prov", "tokio-"))]
    top = {}
    for c in ours + ["terraform"]:
        top[c] = [f"{pct:.1f}% {sym}" for pct, _, sym in report("--comms", c, "--sort", "dso,sym", "-n")[:8]]
    return {"cpu_s_by_command": by_comm, "top": top}


def bench_refresh(cli, cpu_cli, cpu_wrap):
    """The refresh over 1, 200 and 1,000 deployments, batched (listings) against `-refresh=false`,
    the null provider and the per-resource GET path, on loopback and with 50 ms added to every
    deployment read; requests per refresh; CPU per plan (all processes, and the provider's)."""
    out = {}
    for n in REFRESH_SIZES:
        # A server per size: the cluster holds exactly the N deployments of the state, so the
        # listing's pages are ceil(N / 500).
        srv = Server(f"refresh-{n}", {"tick_ms": 1000, "probe_ms": 1000})
        log(f"refresh: creating {n} deployments (terraform apply) and {n} null_resource")
        bc = TfDir(f"refresh-bc-{n}", bc_fleet_tf(n), cli, srv.env())
        nl = TfDir(f"refresh-null-{n}", null_fleet_tf(n), cli, srv.env())
        for d in (bc, nl):
            d.init()
            d.run("apply", "-input=false", "-no-color", "-auto-approve", "-parallelism=20")
        wait_fleet_running(srv, n, 300)
        # The fleet was created without waiting (`wait_for_rollout = false`), so the state holds
        # the statuses of the create (`non-deployed`). One refresh-only apply records what the
        # server reports now, as an apply that waited would have: the plans below measure the
        # refresh of a fleet that did not change since, not Terraform rendering N drifts.
        bc.run("apply", "-refresh-only", "-input=false", "-no-color", "-auto-approve")
        never = {"BENTOCLOUD_REFRESH_BATCH": "never"}
        bc.plan()
        nl.plan()
        r = {"n": n}
        for lat in (0, LATENCY_MS):
            set_read_latency(srv, lat)
            log(f"refresh over {n}, {lat} ms added per read: {REPEATS} runs of each, alternating")
            runs = {"auto": [], "never": [], "norefresh": [], "null": []}
            cpu_all = {"auto": [], "norefresh": []}
            for _ in range(REPEATS):
                runs["auto"].append(bc.plan())
                cpu_all["auto"].append(bc.last_cpu)
                runs["never"].append(bc.plan(extra_env=never))
                el, _ = bc.run("plan", "-input=false", "-no-color", "-refresh=false")
                runs["norefresh"].append(el)
                cpu_all["norefresh"].append(bc.last_cpu)
                runs["null"].append(nl.plan())
            r[f"lat{lat}"] = {k: med(v) for k, v in runs.items()}
            r[f"lat{lat}_runs"] = runs
            r[f"lat{lat}_cpu_all"] = {k: med(v) for k, v in cpu_all.items()}
        set_read_latency(srv, 0)
        r["requests_auto"] = refresh_requests(bc, f"refresh-{n}-auto.log", {})
        r["requests_never"] = refresh_requests(bc, f"refresh-{n}-never.log", never)
        # Provider CPU (user + system, all provider processes of the plan), batched and GETs.
        cpu_dir = TfDir(f"refresh-bc-{n}-cpu", bc_fleet_tf(n), cpu_cli, srv.env())
        shutil.copy(os.path.join(bc.dir, "terraform.tfstate"), os.path.join(cpu_dir.dir, "terraform.tfstate"))
        cpu_dir.init()
        provider_cpu_s(cpu_wrap, "bentocloud")
        cpu = {"auto": [], "never": [], "norefresh": []}
        for _ in range(REPEATS):
            cpu_dir.plan()
            cpu["auto"].append(provider_cpu_s(cpu_wrap, "bentocloud")[0])
            cpu_dir.plan(extra_env=never)
            cpu["never"].append(provider_cpu_s(cpu_wrap, "bentocloud")[0])
            cpu_dir.run("plan", "-input=false", "-no-color", "-refresh=false")
            cpu["norefresh"].append(provider_cpu_s(cpu_wrap, "bentocloud")[0])
        r["cpu"] = {k: med(v) for k, v in cpu.items()}
        r["cpu_runs"] = cpu
        if n == 200:
            log(f"perf record of one plan over {n}")
            try:
                r["profile"] = perf_profile(bc, f"plan-{n}")
            except BaseException as e:  # noqa: BLE001 - reported, the figures above stand
                errors.append(f"profile: {e}")
        out[str(n)] = r
        srv.stop()
    results["refresh"] = out


def bench_wait(srv, cli):
    log(f"rollout completion seen by apply vs bentoml deployment create --wait: {REPEATS} each")
    tfd = TfDir("wait", BC_HEAD + f'''
variable "name" {{
  type = string
}}
resource "bentocloud_deployment" "w" {{
  name         = var.name
  cluster      = "{CLUSTER}"
  bento        = "waitbench:v1"
  min_replicas = 1
  max_replicas = 1
}}
''', cli, srv.env())
    tfd.init()
    bml_home = os.path.join(WORK, "bentoml-home")
    os.makedirs(bml_home, exist_ok=True)

    def watch(name, stop, out):
        # the server's own report: the first GET that shows the deployment running
        while not stop.is_set():
            try:
                d = srv.deployment(name)
                if d.get("status") == "running":
                    out["t"] = time.time()
                    return
            except urllib.error.HTTPError:
                pass
            except Exception:
                pass
            time.sleep(0.01)

    tf_delay, tf_seen, tf_rate, tf_window, bml_delay = [], [], [], [], []
    for i in range(REPEATS):
        # --- terraform apply (create + wait) ---
        name = f"tfwait-{i}"
        st = os.path.join(tfd.dir, "terraform.tfstate")
        if os.path.exists(st):
            os.remove(st)
        lp = os.path.join(WORK, f"wait-{i}.log")
        if os.path.exists(lp):
            os.remove(lp)
        stop, out = threading.Event(), {}
        th = threading.Thread(target=watch, args=(name, stop, out))
        th.start()
        el, _ = tfd.run("apply", "-input=false", "-no-color", "-auto-approve", "-var", f"name={name}",
                        extra_env=debug_env(lp))
        t_exit = time.time()
        stop.set()
        th.join()
        reqs = [r for r in client_requests(lp) if r["path"].startswith(f"/api/v2/deployments")]
        posts = [r for r in reqs if r["method"] == "POST"]
        gets = [r for r in reqs if r["method"] == "GET" and r["path"] == f"/api/v2/deployments/{name}"]
        if "t" in out:
            tf_delay.append(t_exit - out["t"])
            if gets and ts(gets[-1]):
                tf_seen.append(ts(gets[-1]) - out["t"])
        if posts and len(gets) >= 2 and ts(posts[0]) and ts(gets[-1]):
            # the poll rate: reads after the first one, per second between the first and the last
            tf_rate.append((len(gets) - 1) / (ts(gets[-1]) - ts(gets[0])))
            # and over the whole wait, counting the read right after the create
            tf_window.append(len(gets) / (ts(gets[-1]) - ts(posts[0])))
        # --- bentoml deployment create --wait ---
        name = f"bmlwait-{i}"
        env = srv.env()
        env["BENTOML_HOME"] = bml_home
        env["BENTOML_DO_NOT_TRACK"] = "True"
        stop, out = threading.Event(), {}
        th = threading.Thread(target=watch, args=(name, stop, out))
        th.start()
        p = subprocess.run([BENTOML, "deployment", "create", "waitbench:v1", "--name", name, "--cluster", CLUSTER,
                            "--scaling-min", "1", "--scaling-max", "1", "--wait"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        t_exit = time.time()
        stop.set()
        th.join()
        if p.returncode != 0:
            log("bentoml deployment create failed:\n" + p.stdout.decode()[-3000:])
        elif "t" in out:
            bml_delay.append(t_exit - out["t"])
    results["wait"] = {"bentocloud": med(tf_delay), "bentocloud_seen": med(tf_seen), "bentoml": med(bml_delay),
                       "rate": med(tf_rate), "rate_window": med(tf_window), "runs_bc": tf_delay, "runs_bml": bml_delay, "rates": tf_rate}


def bench_list(cli, cli_mem, wrap):
    log(f"data source over {LIST_N} deployments: server with cheap deployments (no reconciler ticks)")
    # tick_ms very long: deployments stay as created (no replica processes), so 10,000 fit.
    srv = Server("list", {"tick_ms": 3_600_000, "probe_ms": 1000})
    t0 = time.time()
    create_many(srv, [f"list-{i:05d}" for i in range(LIST_N)], "listbench:v1")
    log(f"created {LIST_N} deployments in {time.time() - t0:.1f}s")
    main = BC_HEAD + '''
data "bentocloud_deployments" "all" {}
output "count" {
  value = length(data.bentocloud_deployments.all.names)
}
'''
    d = TfDir("list", main, cli, srv.env())
    dm = TfDir("list-mem", main, cli_mem, srv.env())
    d.init()
    dm.init()
    _, p = d.run("plan", "-input=false", "-no-color")
    m = re.search(r"count\s*=\s*(\d+)", p.stdout.decode())
    seen = int(m.group(1)) if m else -1
    env = srv.env()
    env["BENTOML_HOME"] = os.path.join(WORK, "bentoml-home")
    env["BENTOML_DO_NOT_TRACK"] = "True"
    tb, tm, mem = [], [], []
    bml_n = -1
    for _ in range(REPEATS):
        tb.append(d.plan())
        t0 = time.perf_counter()
        p = subprocess.run([BENTOML, "deployment", "list", "-o", "json"], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        tm.append(time.perf_counter() - t0)
        if p.returncode == 0:
            try:
                bml_n = len(json.loads(p.stdout))
            except ValueError:
                pass
        else:
            log("bentoml deployment list failed: " + p.stderr.decode()[-2000:])
    peak_rss_mb(wrap, "bentocloud")
    for _ in range(3):
        dm.plan()
        mem.append(peak_rss_mb(wrap, "bentocloud")[0])
    # the data source's own read time (first to last request) from one DEBUG run
    lp = os.path.join(WORK, "list-debug.log")
    if os.path.exists(lp):
        os.remove(lp)
    d.plan(extra_env=debug_env(lp))
    reqs = [r for r in client_requests(lp) if r["path"] == "/api/v2/deployments"]
    read_s = (ts(reqs[-1]) - ts(reqs[0])) if len(reqs) >= 1 and ts(reqs[0]) else float("nan")
    results["list"] = {"bentocloud": med(tb), "bentoml": med(tm), "mem": med(mem), "seen": seen, "bml_seen": bml_n,
                       "pages": len(reqs), "read_span": read_s}
    srv.stop()


def replica_port(srv, name):
    db = sqlite3.connect(f"file:{os.path.join(srv.dir, 'state.db')}?mode=ro", uri=True, timeout=5)
    row = db.execute("SELECT r.port FROM replicas r JOIN deployments d ON d.id = r.deployment_id "
                     "WHERE d.name = ? AND d.deleted_at IS NULL AND r.state = 'ready' AND r.port IS NOT NULL "
                     "ORDER BY r.id DESC LIMIT 1", (name,)).fetchone()
    db.close()
    return row[0] if row else None


def wait_running(srv, name, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = srv.deployment(name)
        ro = d.get("rollout") or {}
        if d.get("status") == "running" and ro.get("phase") == "complete":
            return d
        time.sleep(0.1)
    raise SystemExit(f"bench: deployment {name} did not get running")


def load(url, out, duration, sample_url=None, token=None, rate=400):
    args = [DRIVER, "load", "--url", url, "--rate", str(rate), "--workers", "4", "--duration-s", str(duration),
            "--out", out]
    if sample_url:
        args += ["--sample-url", sample_url, "--token", token]
    return subprocess.Popen(args, stdout=subprocess.PIPE)


def bench_rolling(srv):
    rounds = max(3, REPEATS // 2 + 1)
    log(f"endpoint during a rolling update under load (3 replicas, 400 req/s): {rounds} rounds")
    name = "rolling"
    srv.call("POST", f"/api/v2/deployments?cluster={CLUSTER}", deployment_body(name, "rollbench:v1", 3, "RollingUpdate"))
    d = wait_running(srv, name)
    url = d["urls"][0].rstrip("/") + "/"
    sample = f"{srv.endpoint}/api/local/v1/deployments/{name}?cluster={CLUSTER}"
    direct_p99, steady_p99, roll_p99, direct_p50, roll_p50, fails, reqs = [], [], [], [], [], 0, 0
    durations, picture = [], None
    for k in range(rounds):
        port = replica_port(srv, name)
        if not port:
            raise SystemExit("bench: no ready replica port found in state.db")
        pre = os.path.join(WORK, f"direct-{k}")
        load(f"http://127.0.0.1:{port}/", pre, 6).communicate()
        j = json.load(open(pre + ".json"))
        direct_p99.append(j["p99_us"] / 1000)
        direct_p50.append(j["p50_us"] / 1000)
        pre = os.path.join(WORK, f"steady-{k}")
        load(url, pre, 6).communicate()
        steady_p99.append(json.load(open(pre + ".json"))["p99_us"] / 1000)
        pre = os.path.join(WORK, f"rolling-{k}")
        lp = load(url, pre, 12, sample, srv.token)
        time.sleep(2.0)
        t_update = time.time()
        body = deployment_body(name, f"rollbench:v{k + 2}", 3, "RollingUpdate")
        body.pop("name")
        srv.call("PUT", f"/api/v2/deployments/{name}?cluster={CLUSTER}", body)
        lp.communicate()
        j = json.load(open(pre + ".json"))
        roll_p99.append(j["p99_us"] / 1000)
        roll_p50.append(j["p50_us"] / 1000)
        fails += j["failures"]
        reqs += j["requests"]
        t_up = (t_update * 1000 - j["start_unix_ms"]) / 1000
        samples = list(csv.DictReader(open(pre + ".samples.csv")))
        done = [float(s["t_ms"]) / 1000 for s in samples if s["phase"] == "complete" and float(s["t_ms"]) / 1000 > t_up + 0.2
                and int(s["updated"]) == int(s["desired"])]
        if done:
            durations.append(done[0] - t_up)
        if picture is None:
            picture = (pre, t_up, j)
        wait_running(srv, name)
    results["rolling"] = {"direct_p99": med(direct_p99), "direct_p50": med(direct_p50), "steady_p99": med(steady_p99),
                          "rolling_p99": med(roll_p99), "rolling_p50": med(roll_p50), "failures": fails,
                          "requests": reqs, "rollout_s": med(durations), "rounds": rounds,
                          "added_p99": med([r - d for r, d in zip(roll_p99, direct_p99)])}
    draw(*picture)


# ------------------------------------------------------------------------------------------
# Rollout waits through a lagging status: the stage `podwait`

PODWAIT_LAG_MS = 10_000
PODWAIT_KINDS = (("bento", "bento change"), ("env", "env-only change"), ("secret", "secret rotation redeploy"),
                 ("scale", "scaling-only change"))
# The baseline waits out the provider's settle window (2 minutes) on every change: one round by default.
PODWAIT_BASE_ROUNDS = int(os.environ.get("BENCH_PODWAIT_BASELINE_ROUNDS", "1"))
PODWAIT_BEGIN = "<!-- rollout-wait rows (issue 16): rewritten by scripts/bench.sh, stage podwait -->"
PODWAIT_END = "<!-- end of the rollout-wait rows -->"


def podwait_tf(name, bento, mode, replicas):
    return BC_HEAD + f'''
variable "pw" {{
  type      = string
  sensitive = true
}}

resource "bentocloud_secret" "db" {{
  name  = "{name}-db"
  items = {{
    DB_PASSWORD = var.pw
  }}
}}

resource "bentocloud_deployment" "app" {{
  name                = "{name}"
  cluster             = "{CLUSTER}"
  bento               = "{bento}"
  min_replicas        = {replicas}
  max_replicas        = {replicas}
  deployment_strategy = "RollingUpdate"
  envs                = {{ MODE = "{mode}" }}
  secrets             = [bentocloud_secret.db.name]
  redeploy_triggers   = {{ db = bentocloud_secret.db.version }}
}}
'''


def latest_ready(srv, name):
    """(when the last replica of the deployment's latest revision became ready, in epoch seconds by the
    server's clock, which is this machine's; how many of them are ready), from the server's state.db."""
    db = sqlite3.connect(f"file:{os.path.join(srv.dir, 'state.db')}?mode=ro", uri=True, timeout=5)
    row = db.execute("SELECT MAX(r.ready_at), COUNT(*) FROM replicas r JOIN deployments d ON d.id = r.deployment_id "
                     "WHERE d.name = ? AND d.deleted_at IS NULL AND r.revision_uid = d.target_revision "
                     "AND r.state = 'ready'", (name,)).fetchone()
    db.close()
    return (row[0] / 1000.0 if row and row[0] else float("nan")), (row[1] if row else 0)


def after_next_sync(srv, name, timeout=3 * PODWAIT_LAG_MS / 1000):
    """Returns right after the server's next status sync of `name`, so a change submitted now (a few
    seconds of rollout) completes before the following one: the status never shows it in progress."""
    first = srv.deployment(name)["rollout"]["status_synced_at"]
    deadline = time.time() + timeout
    while time.time() < deadline:
        if srv.deployment(name)["rollout"]["status_synced_at"] != first:
            return
        time.sleep(0.02)
    log(f"no status sync of {name} within {timeout} s; measuring anyway")


def decided_by(lp):
    """What ended the provider's wait, from its INFO log: the pods, a status shown synced, or the settle window."""
    text = open(lp, errors="replace").read() if os.path.exists(lp) else ""
    if "on its pods' evidence" in text:
        return "pods"
    if "has passed since the submit" in text:
        return "settle window"
    if "now count for revision" in text:
        return "status"
    return "?"


def bench_podwait(cli):
    rounds = REPEATS
    log(f"rollout waits through a {PODWAIT_LAG_MS // 1000} s status lag: {rounds} rounds of 4 changes, and "
        f"{PODWAIT_BASE_ROUNDS} without the pods evidence (the settle window, 2 minutes per change)")
    srv = Server("podwait", {"status_sync_ms": PODWAIT_LAG_MS})
    for v in ("v1", "v2"):
        srv.call("POST", "/api/local/v1/bentos", {"tag": f"podbench:{v}", "startup_seconds": 1.0})
    out = {k: {"runs_new": [], "runs_base": [], "how_new": [], "how_base": [], "apply_new": [], "apply_base": []}
           for k, _ in PODWAIT_KINDS}
    for mode, n_rounds, extra in (("new", rounds, {}), ("base", PODWAIT_BASE_ROUNDS,
                                                       {"BENTOCLOUD_BENCH_WAIT_WITHOUT_PODS": "1"})):
        name = f"podwait-{mode}"
        cfg = {"bento": "podbench:v1", "mode": "a", "replicas": 2, "pw": 0}

        def write():
            with open(os.path.join(tfd.dir, "main.tf"), "w") as f:
                f.write(podwait_tf(name, cfg["bento"], cfg["mode"], cfg["replicas"]))
            with open(os.path.join(tfd.dir, "terraform.tfvars"), "w") as f:
                f.write(f'pw = "pw-{cfg["pw"]}"\n')

        tfd = TfDir(name, podwait_tf(name, "podbench:v1", "a", 2), cli, srv.env())
        write()
        tfd.init()
        tfd.run("apply", "-input=false", "-no-color", "-auto-approve", extra_env=extra)
        for r in range(n_rounds):
            for kind, _ in PODWAIT_KINDS:
                if kind == "bento":
                    cfg["bento"] = "podbench:v2" if cfg["bento"] == "podbench:v1" else "podbench:v1"
                elif kind == "env":
                    cfg["mode"] = "b" if cfg["mode"] == "a" else "a"
                elif kind == "secret":
                    cfg["pw"] += 1
                else:
                    cfg["replicas"] = 3 if cfg["replicas"] == 2 else 2
                write()
                lp = os.path.join(WORK, f"podwait-{mode}-{r}-{kind}.log")
                if os.path.exists(lp):
                    os.remove(lp)
                after_next_sync(srv, name)
                el, _ = tfd.run("apply", "-input=false", "-no-color", "-auto-approve",
                                extra_env=dict(extra, PLUGIN_LOG_FILE=lp))
                t_exit = time.time()
                ready_at, ready = latest_ready(srv, name)
                if ready != cfg["replicas"]:
                    log(f"{name} {kind}: {ready} replicas of the latest revision ready at exit, "
                        f"{cfg['replicas']} wanted")
                how = decided_by(lp)
                log(f"{name} {kind}: apply {el:.1f} s, returned {t_exit - ready_at:.2f} s after the last replica "
                    f"was ready ({how})")
                out[kind][f"runs_{mode}"].append(t_exit - ready_at)
                out[kind][f"how_{mode}"].append(how)
                out[kind][f"apply_{mode}"].append(el)
    for k, _ in PODWAIT_KINDS:
        out[k]["new"] = med(out[k]["runs_new"])
        out[k]["base"] = med(out[k]["runs_base"])
    results["podwait"] = out
    srv.stop()


def podwait_section():
    """The rollout-wait table, with the command that produced it."""
    P = results.get("podwait")
    if not P:
        return None
    cmd = f"BENCH_ONLY={','.join(sorted(ONLY))} {CMDLINE}" if ONLY else CMDLINE
    rows = []
    for k, label in PODWAIT_KINDS:
        f = Missing(P.get(k, {}))
        rows.append((f"apply returns after the last replica is ready: {label}, {PODWAIT_LAG_MS // 1000} s status lag",
                     fmt_s(f["new"]), f"status and settle window alone: {fmt_s(f['base'])}", ratio(f["new"], f["base"]),
                     "<= 2 s", verdict(f["new"] <= 2)))
    head = "| Figure | bentocloud | Baseline | Ratio | Target | Verdict |\n|---|---|---|---|---|---|\n"
    table = head + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    details = []
    for k, label in PODWAIT_KINDS:
        f = Missing(P.get(k, {}))
        details.append(f"- {label}: after the last replica was ready, per run (s) "
                       + ", ".join(f"{x:.2f} ({h})" for x, h in zip(f["runs_new"], f.get("how_new") or []))
                       + "; baseline " + ", ".join(f"{x:.2f} ({h})" for x, h in zip(f["runs_base"], f.get("how_base") or []))
                       + "; whole apply (s) " + ", ".join(f"{x:.1f}" for x in f["apply_new"])
                       + "; baseline " + ", ".join(f"{x:.1f}" for x in f["apply_base"]))
    return f"""{PODWAIT_BEGIN}
## Rollout waits through a lagging status (issue 16 §2)

Produced by `{cmd}` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}: {machine()}.

A 2-replica `RollingUpdate` deployment (a bento that starts in 1 s, a secret, `redeploy_triggers`) on a
`bentocloud-local` whose status sync runs every {PODWAIT_LAG_MS // 1000} s; each change is submitted right after a sync, so
its rollout (a few seconds) ends before the next one and the status never shows it in progress. The figure is the
time from the last replica of the new revision becoming ready (its `ready_at` in the server's `state.db`) to the exit
of `terraform apply`, median of {REPEATS} rounds; the baseline is the same with the pods evidence turned off
(`BENTOCLOUD_BENCH_WAIT_WITHOUT_PODS=1`: the status and the provider's default 2-minute settle window alone), over
{PODWAIT_BASE_ROUNDS} round(s). In brackets, what ended each wait (from the provider's log): `pods`, a `status` shown
synced, or the `settle window`. Where the second goes: while it reads the pods the provider polls once a second (a GET
and a pods read: at most 2 requests per second), then Terraform writes the state and exits.

{table}
{chr(10).join(details)}
{PODWAIT_END}
"""


def write_podwait_section():
    text = podwait_section()
    if text is None:
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else ""
    if PODWAIT_BEGIN in old and PODWAIT_END in old:
        before, rest = old.split(PODWAIT_BEGIN, 1)
        after = rest.split(PODWAIT_END, 1)[1]
        new = before + text.rstrip("\n") + after
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)
    print(text)


# ------------------------------------------------------------------------------------------
# Autoscaling on a qps policy under load: the stage `autoscale`

AUTOSCALE_EVAL_MS = 1_000
AUTOSCALE_RATE = 200
AUTOSCALE_TARGET_QPS = 40
AUTOSCALE_STARTUP_S = 0.5  # an auto-registered bento's start-up
AUTOSCALE_BEGIN = "<!-- autoscaling rows: rewritten by scripts/bench.sh, stage autoscale -->"
AUTOSCALE_END = "<!-- end of the autoscaling rows -->"


def autoscale_body(name, policy):
    scaling = {"min_replicas": 1, "max_replicas": 3, "policy": policy} if policy else {"min_replicas": 3, "max_replicas": 3}
    svc = {"scaling": scaling, "config_overrides": {}, "deployment_strategy": "RollingUpdate"}
    return {"name": name, "bento": "hpabench:v1", "services": {"apiserver": svc}}


def bench_autoscale():
    rounds = max(3, REPEATS // 2 + 1)
    log(f"autoscaling on qps under load ({AUTOSCALE_RATE} req/s, target {AUTOSCALE_TARGET_QPS} per replica, "
        f"evaluation every {AUTOSCALE_EVAL_MS} ms): {rounds} rounds")
    srv = Server("autoscale", {"scale_eval_ms": AUTOSCALE_EVAL_MS, "status_sync_ms": 0})
    try:
        # Baseline: the same load on 3 replicas that never scale.
        srv.call("POST", f"/api/v2/deployments?cluster={CLUSTER}", autoscale_body("hpa-base", None))
        base_url = wait_running(srv, "hpa-base")["urls"][0].rstrip("/") + "/"
        policy = {"metrics": [{"type": "qps", "value": AUTOSCALE_TARGET_QPS}], "scale_up_behavior": "fast",
                  "scale_down_behavior": "stable", "scale_up_stabilization_window": None,
                  "scale_down_stabilization_window": 300}
        base_p99, scale_p99, serve_s, fails, reqs, reached = [], [], [], 0, 0, []
        for k in range(rounds):
            pre = os.path.join(WORK, f"hpa-base-{k}")
            load(base_url, pre, 8, rate=AUTOSCALE_RATE).communicate()
            j = json.load(open(pre + ".json"))
            base_p99.append(j["p99_us"] / 1000)
            name = f"hpa-{k}"
            srv.call("POST", f"/api/v2/deployments?cluster={CLUSTER}", autoscale_body(name, policy))
            d = wait_running(srv, name)
            url = d["urls"][0].rstrip("/") + "/"
            sample = f"{srv.endpoint}/api/local/v1/deployments/{name}?cluster={CLUSTER}"
            pre = os.path.join(WORK, f"hpa-{k}")
            # The load crosses the target from its first request (200 req/s on one replica).
            load(url, pre, 8, sample, srv.token, rate=AUTOSCALE_RATE).communicate()
            j = json.load(open(pre + ".json"))
            scale_p99.append(j["p99_us"] / 1000)
            fails += j["failures"]
            reqs += j["requests"]
            samples = list(csv.DictReader(open(pre + ".samples.csv")))
            second = [float(r["t_ms"]) / 1000 for r in samples if int(r["ready"]) >= 2]
            if second:
                serve_s.append(second[0])
            reached.append(max((int(r["ready"]) for r in samples), default=0))
            srv.call("DELETE", f"/api/v2/deployments/{name}?cluster={CLUSTER}")
        results["autoscale"] = {"base_p99": med(base_p99), "scale_p99": med(scale_p99),
                                "added_p99": med([a - b for a, b in zip(scale_p99, base_p99)]),
                                "serve_s": med(serve_s), "runs_serve": serve_s, "runs_added": [a - b for a, b in zip(scale_p99, base_p99)],
                                "failures": fails, "requests": reqs, "reached": reached, "rounds": rounds}
    finally:
        srv.stop()


def autoscale_section():
    A = results.get("autoscale")
    if not A:
        return None
    f = Missing(A)
    cmd = f"BENCH_ONLY={','.join(sorted(ONLY))} {CMDLINE}" if ONLY else CMDLINE
    budget = AUTOSCALE_EVAL_MS / 1000 + AUTOSCALE_STARTUP_S
    rows = [
        ("load over the qps target to a new replica serving", fmt_s(f["serve_s"]),
         f"one evaluation + start-up: {budget:.3f} s", ratio(f["serve_s"], budget), f"<= {budget:.1f} s",
         verdict(f["serve_s"] <= budget)),
        ("endpoint p99 added while scaling 1 -> 3", f"{f['added_p99']:.2f} ms",
         f"same load on 3 fixed replicas: p99 {f['base_p99']:.2f} ms (scaling: {f['scale_p99']:.2f} ms)",
         ratio(f["scale_p99"], f["base_p99"]), "<= 2 ms", verdict(f["added_p99"] <= 2)),
    ]
    head = "| Figure | bentocloud | Baseline | Ratio | Target | Verdict |\n|---|---|---|---|---|---|\n"
    table = head + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    return f"""{AUTOSCALE_BEGIN}
## Autoscaling on a qps policy under load

Produced by `{cmd}` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}: {machine()}.

`bentocloud-local` evaluating policies every {AUTOSCALE_EVAL_MS} ms (`timing.scale_eval_ms`); a deployment created
with `scaling = {{min 1, max 3, policy: {{metrics: [{{type: qps, value: {AUTOSCALE_TARGET_QPS}}}], scale_up_behavior: fast}}}}`
gets `bentocloud-bench load` at {AUTOSCALE_RATE} req/s (4 keep-alive connections, 8 s) from 1 replica, so the load is
over the target from its first request. The first figure is the time from the load's start to a second replica
serving (the load generator's 50 ms samples of the local view, `ready >= 2`), median of {f['rounds']} rounds (per run:
{", ".join(f"{x:.2f}" for x in f["runs_serve"])} s); the bento starts in {AUTOSCALE_STARTUP_S} s. The second is the
endpoint's p99 over that run minus the p99 of the same load on a deployment with 3 fixed replicas in the same
server (per run: {", ".join(f"{x:.2f}" for x in f["runs_added"])} ms). Failed requests while scaling:
{f['failures']} of {f['requests']}; replicas ready at the end of each run: {A.get('reached')}. The 1.5 s budget leaves out the readiness probe period (50 ms) and the
reconciler tick (50 ms) that publishes the new replica's route, which the figure includes: the miss is those.

{table}{AUTOSCALE_END}
"""


def write_autoscale_section():
    text = autoscale_section()
    if text is None:
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else ""
    if AUTOSCALE_BEGIN in old and AUTOSCALE_END in old:
        before, rest = old.split(AUTOSCALE_BEGIN, 1)
        after = rest.split(AUTOSCALE_END, 1)[1]
        new = before + text.rstrip("\n") + after
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)
    print(text)


# ------------------------------------------------------------------------------------------
# Progressive delivery: the stage `progressive`

PROG_ROUNDS = 3
PROG_RATE = 100
PROG_PROBE_S = 1.0   # analysis.probe_interval of the failing canary
PROG_POLL_S = 1.0    # the engine's look at the canary's pods (src/resources/deployment/progressive.rs POLL)
PROG_STEPS = (10, 30, 60)
PROG_BAKE_S = 3
PROG_BEGIN = "<!-- progressive delivery rows: rewritten by scripts/bench.sh, stage progressive -->"
PROG_END = "<!-- end of the progressive delivery rows -->"


def progressive_tf(name, bento, block):
    return BC_HEAD + f"""
resource "bentocloud_deployment" "app" {{
  name                = "{name}"
  cluster             = "{CLUSTER}"
  bento               = "{bento}"
  min_replicas        = 1
  max_replicas        = 1
  deployment_strategy = "RollingUpdate"
{block}}}
"""


def routing_changes(srv, name):
    return srv.call("GET", f"/api/local/v1/deployments/{name}/timeline?cluster={CLUSTER}").get("routing") or []


def load_until(url, out, stop, header=None):
    args = [DRIVER, "load", "--url", url, "--rate", str(PROG_RATE), "--workers", "4", "--duration-s", "115",
            "--out", out, "--stop-file", stop]
    if header:
        args += ["--header", header]
    return subprocess.Popen(args, stdout=subprocess.PIPE)


def stop_load(lp, stop, out):
    open(stop, "w").close()
    lp.communicate(timeout=60)
    j = json.load(open(out + ".json"))
    rows = list(csv.DictReader(open(out + ".targets.csv")))
    return j, rows


def bench_progressive(cli):
    log(f"progressive delivery: {PROG_ROUNDS} aborts of a canary failing /predict (probes every {PROG_PROBE_S:g} s), "
        f"{PROG_ROUNDS} promotions through steps {list(PROG_STEPS)} ({PROG_BAKE_S} s bakes) and {PROG_ROUNDS} rolling updates")
    srv = Server("progressive", {})
    try:
        srv.call("POST", "/api/local/v1/bentos", {"tag": "progbench:good", "startup_seconds": 0.5})
        srv.call("POST", "/api/local/v1/bentos", {"tag": "progbench:bad", "startup_seconds": 0.5,
                                                  "fail_paths": ["/predict"]})
        for k in range(2 * PROG_ROUNDS + 2):
            srv.call("POST", "/api/local/v1/bentos", {"tag": f"progbench:v{k}", "startup_seconds": 0.5})
        # 1. Detection: a load routed to the canary by header sees its first failed request; the abort is the
        #    timeline's routing change that removes the canary.
        probe_block = (f'  progressive_rollout {{\n    steps = [20, 60]\n    bake_time = "30s"\n'
                       f'    route_type = "header"\n    route_by = "x-canary"\n'
                       f'    analysis {{\n      probe_path = "/predict"\n      probe_interval = "{PROG_PROBE_S:g}s"\n    }}\n  }}\n')
        name = "prog-abort"
        tfd = TfDir(name, progressive_tf(name, "progbench:good", probe_block), cli, srv.env())
        tfd.init()
        tfd.run("apply", "-input=false", "-no-color", "-auto-approve")
        url = wait_running(srv, name)["urls"][0].rstrip("/")
        detect = []
        with open(os.path.join(tfd.dir, "main.tf"), "w") as f:
            f.write(progressive_tf(name, "progbench:bad", probe_block))
        for k in range(PROG_ROUNDS):
            out, stop = os.path.join(WORK, f"prog-abort-{k}"), os.path.join(WORK, f"prog-abort-{k}.stop")
            lp = load_until(url + "/predict", out, stop, "x-canary:canary")
            t0 = time.time() * 1000
            _, p = tfd.run("apply", "-input=false", "-no-color", "-auto-approve", check=False)
            j, rows = stop_load(lp, stop, out)
            if p.returncode == 0 or b"check `probe` failed" not in p.stdout.replace(b"\n", b" "):
                raise SystemExit(f"bench: the failing canary was not aborted by the probes:\n{p.stdout.decode()[-3000:]}")
            fails = [j["start_unix_ms"] + int(r["t_ms"]) for r in rows if r["target"] == "canary" and int(r["failed"]) > 0]
            aborts = [r["at_ms"] for r in routing_changes(srv, name) if r["at_ms"] >= t0 and not r.get("weights")]
            if fails and aborts:
                # The bucket's start is up to 100 ms before the failed request itself.
                detect.append((min(aborts) - min(fails)) / 1000)
                log(f"abort {k}: first failed request to the abort {detect[-1]:.2f} s")
        # 2. Promotion against a rolling update of the same deployment.
        steps = ", ".join(str(s) for s in PROG_STEPS)
        prog_block = f'  progressive_rollout {{\n    steps = [{steps}]\n    bake_time = "{PROG_BAKE_S}s"\n  }}\n'
        name = "prog-promote"
        tfd = TfDir(name, progressive_tf(name, "progbench:v0", ""), cli, srv.env())
        tfd.init()
        tfd.run("apply", "-input=false", "-no-color", "-auto-approve")
        promote, rolling, fails, reqs, v = [], [], 0, 0, 0
        url = wait_running(srv, name)["urls"][0].rstrip("/") + "/"
        for k in range(PROG_ROUNDS):
            for kind, block in (("rolling", ""), ("progressive", prog_block)):
                v += 1
                with open(os.path.join(tfd.dir, "main.tf"), "w") as f:
                    f.write(progressive_tf(name, f"progbench:v{v}", block))
                out, stop = os.path.join(WORK, f"prog-{kind}-{k}"), os.path.join(WORK, f"prog-{kind}-{k}.stop")
                lp = load_until(url, out, stop)
                el, _ = tfd.run("apply", "-input=false", "-no-color", "-auto-approve")
                j, _ = stop_load(lp, stop, out)
                fails += j["failures"]
                reqs += j["requests"]
                (promote if kind == "progressive" else rolling).append(el)
                log(f"{kind} {k}: apply {el:.1f} s")
                wait_running(srv, name)
        bakes = PROG_BAKE_S * len(PROG_STEPS)
        extra = [p - bakes for p in promote]
        results["progressive"] = {"detect_s": med(detect), "runs_detect": detect, "promote_s": med(promote),
                                  "runs_promote": promote, "extra_s": med(extra), "runs_extra": extra,
                                  "rolling_s": med(rolling), "runs_rolling": rolling, "bakes_s": bakes,
                                  "failures": fails, "requests": reqs}
    finally:
        srv.stop()


def progressive_section():
    P = results.get("progressive")
    if not P:
        return None
    f = Missing(P)
    cmd = f"BENCH_ONLY={','.join(sorted(ONLY))} {CMDLINE}" if ONLY else CMDLINE
    budget = PROG_PROBE_S + PROG_POLL_S
    rows = [
        ("failing canary: first failed request to the abort (canary removed)", fmt_s(f["detect_s"]),
         f"one probe interval + one poll: {budget:.1f} s", ratio(f["detect_s"], budget), f"<= {budget:.1f} s",
         verdict(f["detect_s"] <= budget)),
        (f"promotion through {len(PROG_STEPS)} steps: apply time over the bakes ({f['bakes_s']} s)", fmt_s(f["extra_s"]),
         f"rolling update of the same deployment (whole apply): {fmt_s(f['rolling_s'])}", ratio(f["extra_s"], f["rolling_s"]),
         "<= 1 rolling update", verdict(f["extra_s"] <= f["rolling_s"])),
    ]
    head = "| Figure | bentocloud | Baseline | Ratio | Target | Verdict |\n|---|---|---|---|---|---|\n"
    table = head + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    return f"""{PROG_BEGIN}
## Progressive delivery (issue 19 §3)

Produced by `{cmd}` on {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}: {machine()}.

One `bentocloud-local` (default timing), Terraform 1.11.4, the provider as shipped; 1-replica `RollingUpdate`
deployments, bentos starting in 0.5 s, `bentocloud-bench load` at {PROG_RATE} req/s throughout. First figure: a canary
bento answering 500 on `/predict` (`fail_paths`) under `progressive_rollout {{ steps = [20, 60], route_type = "header",
route_by = "x-canary", analysis {{ probe_path = "/predict", probe_interval = "{PROG_PROBE_S:g}s" }} }}`, with the load sent
to `/predict` with `x-canary: canary`: from the first 100 ms bucket with a failed answer from the canary
(`PREFIX.targets.csv`) to the timeline's routing change that removed the canary, median of {PROG_ROUNDS} (per run:
{", ".join(f"{x:.2f}" for x in f["runs_detect"])} s). Second: `terraform apply` of a bento change with
`steps = [{", ".join(str(s) for s in PROG_STEPS)}]`, `bake_time = "{PROG_BAKE_S}s"`, minus the {f['bakes_s']} s of bakes (per run:
{", ".join(f"{x:.1f}" for x in f["runs_extra"])} s; whole applies {", ".join(f"{x:.1f}" for x in f["runs_promote"])} s), against
the whole `terraform apply` of a plain bento change of the same deployment (a rolling update; per run:
{", ".join(f"{x:.1f}" for x in f["runs_rolling"])} s), alternated in the same server. Failed requests over the promotions
and rolling updates: {f['failures']} of {f['requests']}. Where the extra time goes: the promotion is itself a rolling
update of the deployment (the baseline's own work), and each step first waits for its canary pods to be ready (a
weight change is a new revision with new canary replicas; 0.5 s start-up, seen at the engine's 1 s look at the
pods), then bakes until the first look at or past the bake time: the "one rolling update" target leaves no room for
those per-step waits.

{table}{PROG_END}
"""


def write_progressive_section():
    text = progressive_section()
    if text is None:
        return
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else ""
    if PROG_BEGIN in old and PROG_END in old:
        before, rest = old.split(PROG_BEGIN, 1)
        after = rest.split(PROG_END, 1)[1]
        new = before + text.rstrip("\n") + after
    else:
        new = old.rstrip("\n") + "\n\n" + text
    with open(path, "w") as f:
        f.write(new)
    print(text)


def draw(pre, t_up, summary):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    s = list(csv.DictReader(open(pre + ".samples.csv")))
    r = list(csv.DictReader(open(pre + ".requests.csv")))
    st = [float(x["t_ms"]) / 1000 for x in s]
    new = [int(x["updated"]) for x in s]
    old = [max(0, int(x["ready"]) - int(x["updated"])) for x in s]
    # before the update, every ready replica runs the revision then current ("old")
    old = [o if t >= t_up else int(x["ready"]) for o, t, x in zip(old, st, s)]
    new = [n if t >= t_up else 0 for n, t in zip(new, st)]
    rt = [float(x["t_ms"]) / 1000 for x in r]
    ok = [int(x["ok"]) * 10 for x in r]
    bad = [int(x["failed"]) * 10 for x in r]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    a1.step(st, old, where="post", label="old revision (ready)", color="#888888", linewidth=2)
    a1.step(st, new, where="post", label="new revision (ready)", color="#1f77b4", linewidth=2)
    a1.axvline(t_up, color="#d62728", linestyle="--", linewidth=1, label="update submitted")
    a1.set_ylabel("ready replicas")
    a1.set_ylim(-0.2, max(old + new + [3]) + 1.2)
    a1.legend(loc="upper right", fontsize=8)
    a1.set_title("bentocloud-local: RollingUpdate of 3 replicas under 400 req/s through the endpoint")
    a2.plot(rt, ok, label="successful req/s", color="#2ca02c")
    a2.plot(rt, bad, label=f"failed req/s (total {summary['failures']})", color="#d62728")
    a2.axvline(t_up, color="#d62728", linestyle="--", linewidth=1)
    a2.set_ylabel("requests per second")
    a2.set_xlabel(f"seconds (p50 {summary['p50_us'] / 1000:.2f} ms, p99 {summary['p99_us'] / 1000:.2f} ms over the run)")
    a2.set_ylim(bottom=0)
    a2.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = os.path.join(ROOT, IMAGE_REL)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    fig.savefig(out, dpi=100)
    log(f"wrote {IMAGE_REL}")


# ------------------------------------------------------------------------------------------
# Report


def fmt_s(x):
    return f"{x:.3f} s" if x == x else "n/a"


def ratio(a, b):
    return f"{a / b:.2f}x" if a == a and b == b and b else "n/a"


def verdict(ok):
    return "met" if ok else "**missed**"


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    tfv = subprocess.run([TF, "version"], stdout=subprocess.PIPE).stdout.decode().splitlines()[0]
    rustc = subprocess.run(["rustc", "--version"], stdout=subprocess.PIPE).stdout.decode().strip()
    load1 = open("/proc/loadavg").read().split()[0]
    return (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), {mem} memory; "
            f"{tfv}; {rustc}; bentoml {bentoml_version()}; load average at the end {load1}")


def bentoml_version():
    try:
        p = subprocess.run([BENTOML, "--version"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return p.stdout.decode().strip().split()[-1]
    except Exception:
        return "?"


class Missing(dict):
    """A figure of a stage that failed: numbers are nan, lists empty, texts empty."""

    def __missing__(self, key):
        if key.startswith(("runs", "rates", "other")):
            return []
        if key.endswith("_line"):
            return ""
        return float("nan")


def report(started, write=True):
    R = {k: Missing(v) for k, v in results.items()}
    for k in ("plan_1", f"plan_{FLEET}", "requests", "handshake", "mem_plan", "wait", "list", "rolling"):
        R.setdefault(k, Missing())
    rows = []
    details = [f"- stage failed (its figures read nan): {e}" for e in errors]

    p1, pN = R["plan_1"], R[f"plan_{FLEET}"]
    rq = R["requests"]
    rows.append(("`terraform plan` (refresh), 1 deployment", fmt_s(p1["bentocloud"]), f"null provider, 1 resource: {fmt_s(p1['null'])}",
                 ratio(p1["bentocloud"], p1["null"]), "-", "-"))
    rows.append((f"`terraform plan` (refresh), {FLEET} deployments", fmt_s(pN["bentocloud"]),
                 f"null provider, {FLEET} resources: {fmt_s(pN['null'])}", ratio(pN["bentocloud"], pN["null"]),
                 "<= 0.8x (issue 6; see the refresh rows of issue 11 below)",
                 verdict(pN["bentocloud"] <= 0.8 * pN["null"])))
    rows.append((f"... same, provider `requests_per_second = 100000` (diagnostic)", fmt_s(pN["bentocloud_nolimit"]),
                 f"null provider: {fmt_s(pN['null'])}", ratio(pN["bentocloud_nolimit"], pN["null"]), "<= 0.8x",
                 verdict(pN["bentocloud_nolimit"] <= 0.8 * pN["null"])))
    h = R["handshake"]
    rows.append(("provider start to handshake", f"{h['bentocloud']:.1f} ms", f"null provider: {h['null']:.1f} ms",
                 ratio(h["bentocloud"], h["null"]), "<= 10 ms", verdict(h["bentocloud"] <= 10)))
    m = R["mem_plan"]
    rows.append((f"provider peak memory per process ({FLEET}-deployment plan)", f"{m['bentocloud']:.1f} MB",
                 f"null provider: {m['null']:.1f} MB", ratio(m["bentocloud"], m["null"]), "<= 10 MB",
                 verdict(m["bentocloud"] <= 10)))
    w = R["wait"]
    rows.append(("rollout completion seen by `apply` after the server reports it", fmt_s(w["bentocloud"]),
                 f"`bentoml deployment create --wait`: {fmt_s(w['bentoml'])}", ratio(w["bentocloud"], w["bentoml"]),
                 "median <= 0.5 s", verdict(w["bentocloud"] <= 0.5)))
    rows.append(("requests per second per waiting deployment", f"{w['rate']:.2f} req/s", "-", "-", "<= 2 req/s",
                 verdict(w["rate"] <= 2)))
    li = R["list"]
    rows.append((f"data source over {LIST_N} deployments (`terraform plan`)", fmt_s(li["bentocloud"]),
                 f"`bentoml deployment list`: {fmt_s(li['bentoml'])}", ratio(li["bentocloud"], li["bentoml"]), "<= 2 s",
                 verdict(li["bentocloud"] <= 2 and li["seen"] == LIST_N)))
    rows.append((f"provider peak memory, data source over {LIST_N}", f"{li['mem']:.1f} MB", "-", "-", "<= 50 MB",
                 verdict(li["mem"] <= 50)))
    rows.append(("API requests per refresh", f"{rq['deployment_reads'] / FLEET:.2f} reads per deployment "
                 f"({rq['deployment_reads']} reads of {rq['deployments_read']} deployments, {rq['total']} requests in all)",
                 "-", "-", "at most 1 per deployment (issue 6; issue 11: the list rows below)",
                 verdict(rq["deployment_reads"] <= FLEET and rq["max_reads_one"] <= 1)))
    ro = R["rolling"]
    rows.append(("`bentocloud-local` endpoint during a rolling update under load: failed requests",
                 f"{ro['failures']} of {ro['requests']}", "-", "-", "0", verdict(ro["failures"] == 0)))
    rows.append(("... p99 latency (added over direct)", f"{ro['rolling_p99']:.2f} ms (+{ro['added_p99']:.2f} ms)",
                 f"direct to one replica: {ro['direct_p99']:.2f} ms", ratio(ro["rolling_p99"], ro["direct_p99"]),
                 "added <= 2 ms", verdict(ro["added_p99"] <= 2)))

    # The refresh through listings.
    import math
    refresh = results.get("refresh", {})
    for n in REFRESH_SIZES:
        f = refresh.get(str(n), {})
        l0 = Missing(f.get("lat0", {}))
        l50 = Missing(f.get(f"lat{LATENCY_MS}", {}))
        ra = Missing(f.get("requests_auto", {}))
        rn = Missing(f.get("requests_never", {}))
        cpu = Missing(f.get("cpu", {}))
        at200 = n == 200
        rows.append((f"`terraform plan` (refresh) over {n}, loopback", fmt_s(l0["auto"]),
                     f"null provider: {fmt_s(l0['null'])}; `-refresh=false`: {fmt_s(l0['norefresh'])}; "
                     f"GET per deployment: {fmt_s(l0['never'])}", ratio(l0["auto"], l0["null"]),
                     "<= 1.15x null" if at200 else "-",
                     verdict(l0["auto"] <= 1.15 * l0["null"]) if at200 else "-"))
        if n == 1:
            # One deployment: a listing cannot save anything; the read must cost no more than
            # the plain GET (one request, no waiting behind another).
            rows.append((f"... {LATENCY_MS} ms added to every deployment read", fmt_s(l50["auto"]),
                         f"GET per deployment: {fmt_s(l50['never'])}; `-refresh=false`: {fmt_s(l50['norefresh'])}",
                         ratio(l50["auto"], l50["never"]), "<= 1.05x the GET path (no extra latency)",
                         verdict(l50["auto"] <= 1.05 * l50["never"])))
        else:
            rows.append((f"... {LATENCY_MS} ms added to every deployment read", fmt_s(l50["auto"]),
                         f"`-refresh=false`: {fmt_s(l50['norefresh'])}; GET per deployment: {fmt_s(l50['never'])}",
                         ratio(l50["auto"], l50["norefresh"]), "<= 1.10x `-refresh=false`",
                         verdict(l50["auto"] <= 1.10 * l50["norefresh"])))
        ca = Missing(f.get(f"lat{LATENCY_MS}_cpu_all", {}))
        extra_all = ca["auto"] - ca["norefresh"]
        extra_ours = cpu["auto"] - cpu["norefresh"]
        rows.append((f"... CPU per plan over {n} (Terraform and provider processes)", f"{ca['auto']:.3f} s",
                     f"`-refresh=false`: {ca['norefresh']:.3f} s; the refresh adds {extra_all:.3f} s, "
                     f"of which the provider {extra_ours:.3f} s and Terraform {extra_all - extra_ours:.3f} s",
                     ratio(ca["auto"], ca["norefresh"]), "-", "-"))
        budget = math.ceil(n / 500) + 2
        rows.append((f"deployment requests per refresh over {n}", f"{ra['total']} ({ra['gets']} GETs, {ra['lists']} list pages)",
                     f"GET per deployment: {rn['total']}", "-", f"<= ceil({n}/500)+2 = {budget}",
                     verdict(ra["total"] <= budget)))
        rows.append((f"provider CPU per {n}-deployment plan", f"{cpu['auto']:.3f} s",
                     f"GET per deployment: {cpu['never']:.3f} s; `-refresh=false`: {cpu['norefresh']:.3f} s",
                     ratio(cpu["auto"], cpu["never"]),
                     "<= 0.1 s" if at200 else "-", verdict(cpu["auto"] <= 0.1) if at200 else "-"))
        details.append(f"- refresh over {n}, runs (s): " + "; ".join(
            f"{lat} ms {k}: " + ", ".join(f"{x:.2f}" for x in (f.get(f'lat{lat}_runs', {}).get(k) or []))
            for lat in (0, LATENCY_MS) for k in ("auto", "never", "norefresh", "null")))
        prof = f.get("profile")
        if prof:
            cpu_by = prof.get("cpu_s_by_command", {})
            details.append(f"- `perf record -F {PERF_HZ} -g` of one plan over {n} (CPU seconds by command): "
                           + "; ".join(f"{k} {v:.3f} s" for k, v in sorted(cpu_by.items(), key=lambda kv: -kv[1])))
            for c, syms in prof.get("top", {}).items():
                details.append(f"  - top of `{c}`: " + "; ".join(syms))
        details.append(f"- provider CPU over {n} (s, user+system of every provider process of one plan): batched "
                       + ", ".join(f"{x:.3f}" for x in (f.get("cpu_runs", {}).get("auto") or []))
                       + "; GET per deployment " + ", ".join(f"{x:.3f}" for x in (f.get("cpu_runs", {}).get("never") or []))
                       + "; `-refresh=false` " + ", ".join(f"{x:.3f}" for x in (f.get("cpu_runs", {}).get("norefresh") or [])))

    head = "| Figure | bentocloud | Baseline | Ratio | Target | Verdict |\n|---|---|---|---|---|---|\n"
    table = head + "".join("| " + " | ".join(r) + " |\n" for r in rows)
    details.append(f"- plan runs (s), bentocloud {FLEET}: {', '.join(f'{x:.2f}' for x in pN['runs_bc'])}; "
                   f"null {FLEET}: {', '.join(f'{x:.2f}' for x in pN['runs_null'])}")
    details.append(f"- plan runs (s), bentocloud 1: {', '.join(f'{x:.2f}' for x in p1['runs_bc'])}; "
                   f"null 1: {', '.join(f'{x:.2f}' for x in p1['runs_null'])}")
    details.append(f"- requests of one {FLEET}-deployment refresh other than the deployment reads: "
                   f"{'; '.join(rq['other']) or 'none'}")
    details.append(f"- handshake lines: bentocloud `{h['bentocloud_line']}`, null `{h['null_line']}`")
    details.append(f"- rollout wait: completion-to-exit of `terraform apply` per run (s): "
                   f"{', '.join(f'{x:.2f}' for x in w['runs_bc'])}; the provider's last poll came "
                   f"{w['bentocloud_seen']:.3f} s (median) after the server reported `running`; "
                   f"`bentoml` per run: {', '.join(f'{x:.2f}' for x in w['runs_bml'])}; provider polls per second "
                   f"between its first and last poll: {', '.join(f'{x:.2f}' for x in w['rates'])}; counting the read "
                   f"made right after the create, over the whole wait: {w['rate_window']:.2f} req/s (median)")
    details.append(f"- data source: {li['seen']} deployments seen by Terraform, {li['bml_seen']} by bentoml; "
                   f"{li['pages']} list requests, first to last {li['read_span']:.3f} s (the read itself; the rest of "
                   f"the plan time is Terraform and provider start-up)")
    details.append(f"- rolling update: {ro['rounds']} rounds of 12 s at 400 req/s (4 keep-alive connections), update "
                   f"submitted at 2 s; rollout took {ro['rollout_s']:.2f} s (median); p50 direct "
                   f"{ro['direct_p50']:.2f} ms, through the endpoint during the rollout {ro['rolling_p50']:.2f} ms; "
                   f"p99 through the endpoint without a rollout {ro['steady_p99']:.2f} ms")
    text = f"""# Benchmarks

Produced by `{CMDLINE}` (see the README, "Benchmarks"); {started}, {REPEATS} repeats per figure unless said
otherwise, values are medians. Absolute times are this machine's; the ratios are what should hold elsewhere.

Machine: {machine()}.

{table}
Details:

{chr(10).join(details)}

How each figure is taken:

- **plan**: `terraform plan` wall time over a state of N `bentocloud_deployment` (created by `terraform apply`, real
  replicas running on a `bentocloud-local`) against N `null_resource` of the Go null provider {NULL_VERSION}, both
  installed from one filesystem mirror, runs alternating.
- **handshake**: `bentocloud-bench handshake` starts the binary with Terraform's magic cookie and times the first
  stdout line (30 starts, median).
- **memory**: the same plans with each provider binary wrapped in `/usr/bin/time -f %M`; the largest of all provider
  processes in a plan, median of 3 plans.
- **rollout wait**: a watcher polls the server every 10 ms and notes when it first reports the new deployment
  `running`; the figure is from then to the exit of `terraform apply` (create, waiting for the rollout) or of
  `bentoml deployment create --wait`. Polls per second come from the provider's DEBUG log (`bentocloud::client`).
- **data source**: `terraform plan` of a configuration holding only `data "bentocloud_deployments"` against a server
  with {LIST_N} deployments (its reconciler paused: no replica processes), against `bentoml deployment list -o json`.
- **requests per refresh**: one `TF_LOG_PROVIDER=DEBUG` plan, requests counted per method and path.
- **refresh over 1, 200 and 1,000**: `terraform plan` of a state of N deployments (real replicas, a quiet server, the
  state refreshed once with `apply -refresh-only` after the fleet settled, as an apply that waited leaves it), runs
  alternating between the batched refresh (default), the GET-per-deployment path (`BENTOCLOUD_REFRESH_BATCH=never`),
  `plan -refresh=false` of the same state and N `null_resource`; then the same with {LATENCY_MS} ms added to every
  `GET /api/v2/deployments...` by the server's fault injector. Requests from one DEBUG plan each way. Provider CPU:
  each provider binary wrapped in `/usr/bin/time -f "%U %S"`, summed over the plan's provider processes; CPU of all
  processes: `getrusage(RUSAGE_CHILDREN)` around each `terraform plan` (Terraform and the providers it reaped), so
  Terraform's share is the difference.
- **endpoint**: `bentocloud-bench load` (paced GETs, keep-alive) directly to one replica's port, then through the
  deployment's endpoint while `PUT /api/v2/deployments/...` changes the bento (RollingUpdate, 3 replicas).

![One rolling update under load]({IMAGE_REL})
"""
    # A hand-written analysis after this marker survives regeneration.
    marker = "<!-- hand-written analysis below: kept by scripts/bench.sh -->"
    path = os.path.join(ROOT, "BENCHMARKS.md")
    if not write:
        # BENCH_ONLY without the figures of a previous run: the other rows are unknown, keep the file's.
        log("no previous run's figures (.work/bench/results.json): BENCHMARKS.md's main table is kept as is")
        print(table)
        return
    if os.path.exists(path):
        old = open(path).read()
        if marker in old:
            text = text.rstrip("\n") + "\n\n" + marker + old.split(marker, 1)[1]
    with open(path, "w") as f:
        f.write(text)
    print(table)
    print("\n".join(details))


def main():
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    only = ONLY
    prev = os.path.join(WORK, "results.json")
    had_prev = os.path.exists(prev)
    if only and had_prev:
        # BENCH_ONLY=stage,...: run those stages again, keep the other figures of the last run.
        results.update(json.load(open(prev)))
        for d in ("mirror", "mirror-mem", "mirror-cpu", "tf", "srv-live", "srv-fleet", "srv-list") + tuple(
                f"srv-refresh-{n}" for n in REFRESH_SIZES):
            shutil.rmtree(os.path.join(WORK, d), ignore_errors=True)
    else:
        shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK, exist_ok=True)
    wrap = os.path.join(WORK, "rss")
    os.makedirs(wrap, exist_ok=True)
    m1 = mirror(os.path.join(WORK, "mirror"))
    m2 = mirror(os.path.join(WORK, "mirror-mem"), wrap)
    cli = cli_config(os.path.join(WORK, "terraformrc"), m1)
    cli_mem = cli_config(os.path.join(WORK, "terraformrc-mem"), m2)
    cpu_wrap = os.path.join(WORK, "cpu")
    os.makedirs(cpu_wrap, exist_ok=True)
    m3 = mirror(os.path.join(WORK, "mirror-cpu"), cpu_wrap, fmt="%U %S", ext="cpu")
    cli_cpu = cli_config(os.path.join(WORK, "terraformrc-cpu"), m3)
    def stage(name, fn, *args):
        # A failing stage is reported and the others still run; its rows say "failed".
        if only and name not in only:
            return
        try:
            fn(*args)
        except BaseException as e:  # noqa: BLE001 - SystemExit from helpers too
            import traceback
            traceback.print_exc()
            errors.append(f"{name}: {e}")
        with open(os.path.join(WORK, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)

    try:
        stage("handshake", bench_handshake)
        live = Server("live", {})
        stage("wait", bench_wait, live, cli)
        stage("rolling", bench_rolling, live)
        live.stop()
        fleet = Server("fleet", {"tick_ms": 1000, "probe_ms": 1000})
        stage("plan", bench_plans, fleet, cli, cli_mem, wrap)
        fleet.stop()
        stage("list", bench_list, cli, cli_mem, wrap)
        stage("refresh", bench_refresh, cli, cli_cpu, cpu_wrap)
        stage("podwait", bench_podwait, cli)
        stage("autoscale", bench_autoscale)
        stage("progressive", bench_progressive, cli)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
    with open(os.path.join(WORK, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    report(started, write=not (only and not had_prev))
    if not only or "podwait" in only:
        write_podwait_section()
    if not only or "autoscale" in only:
        write_autoscale_section()
    if not only or "progressive" in only:
        write_progressive_section()


if __name__ == "__main__":
    main()
