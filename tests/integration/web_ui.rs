//! The web page of `bentocloud-local` (`GET /`) in a real headless Chromium (Debian's
//! `chromium` package at /usr/bin/chromium; `scripts/setup.sh` installs it). Never skipped:
//! without Chromium the test fails and says how to install it.
//!
//! The server is the real binary (`bentocloud-local serve --listen 127.0.0.1:0`). The page is
//! looked at two ways:
//! - `--dump-dom` snapshots (a fresh page each, `--virtual-time-budget` lets it poll a few
//!   times): the fleet table before, during and after a rollout;
//! - one long-lived page driven over the DevTools protocol (`--remote-debugging-pipe`, file
//!   descriptors 3 and 4, NUL-separated JSON): it is read every 250 ms of real time while the
//!   rollouts run, so the test sees the same page move one deployment from rolling to
//!   complete (progress bar advancing), another from rolling to failed (with the reason), and
//!   its event log record the changes.
//!
//! Working from the page (the same two ways): the filters (cluster, status, label, name) narrow
//! the table and are written to the URL, a link with filters opens filtered, names sort
//! naturally (`perf-2` before `perf-10`), the counts by status per cluster are right, and a
//! click on a deployment after a rollout shows its revisions and a timeline with the old and
//! new revisions' ready replicas. The timeline and revisions endpoints are also checked without
//! a browser.
//!
//! Screenshots (`during-rollout.png` from `--screenshot`, `after-rollout.png` and
//! `timeline.png` from live pages) are left in `$CARGO_TARGET_TMPDIR/web_ui/` for a human to
//! look at.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use reqwest::Client;
use serde_json::{json, Value};

use crate::harness::{poll_until_seen, server_bin, ControlPlane};

const CHROMIUM: &str = "/usr/bin/chromium";

fn chromium() -> &'static str {
    if !Path::new(CHROMIUM).exists() {
        panic!(
            "{CHROMIUM} is missing: the web UI test needs Debian's chromium package \
             (run `bash scripts/setup.sh` as root, or `apt-get install -y chromium`)"
        );
    }
    CHROMIUM
}

/// Flags for a quiet, isolated headless run (fresh profile per run).
fn chromium_base(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--mute-audio",
        "--hide-scrollbars",
        "--window-size=1400,900",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

// ---------------------------------------------------------------------------------- server

/// The `bentocloud-local` binary (see `harness::ControlPlane`): its banner, which prints the
/// page's address, is part of what these tests check.
struct Server {
    cp: ControlPlane,
    endpoint: String,
    token: String,
    http: Client,
}

impl Server {
    fn start() -> Server {
        let cp = ControlPlane::start(&[], true);
        let srv = Server {
            endpoint: cp.endpoint.clone(),
            token: cp.token.clone(),
            cp,
            http: Client::new(),
        };
        let ui = format!("web UI:       {}/#token={}", srv.endpoint, srv.token);
        // The banner follows the endpoint and token files; its last section is the client's.
        let banner =
            crate::harness::poll_until("the server's banner", Duration::from_secs(20), || {
                let log = srv.cp.log();
                log.contains("bentoml CLI:").then_some(log)
            });
        assert!(
            banner.contains(&ui),
            "the banner should print the UI URL with the token fragment ({ui}):\n{banner}"
        );
        srv
    }

    fn ui_url(&self) -> String {
        format!("{}/#token={}", self.endpoint, self.token)
    }

    async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.endpoint))
            .header("X-YATAI-API-TOKEN", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "{method} {path}: {status}: {text}");
        serde_json::from_str(&text).expect("json")
    }

    async fn deployment(&self, cluster: &str, name: &str) -> Value {
        self.api(
            reqwest::Method::GET,
            &format!("/api/local/v1/deployments/{name}?cluster={cluster}"),
            None,
        )
        .await
    }

    async fn wait_running(&self, cluster: &str, name: &str, bento: &str) {
        self.wait_for(cluster, name, &format!("running {bento}"), |d| {
            d["status"] == "running" && d["rollout"]["phase"] == "complete" && bento_of(d) == bento
        })
        .await
    }

    /// Waits (60 s at most) until the control plane's view of `cluster/name` satisfies `ok`.
    async fn wait_for(&self, cluster: &str, name: &str, what: &str, ok: impl Fn(&Value) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d = self.deployment(cluster, name).await;
            if ok(&d) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{cluster}/{name} never {what}: {d}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn bento_of(d: &Value) -> String {
    let b = &d["latest_revision"]["targets"][0]["bento"];
    format!(
        "{}:{}",
        b["repository"]["name"].as_str().unwrap_or(""),
        b["version"].as_str().unwrap_or("")
    )
}

fn spec(bento: &str) -> Value {
    json!({
        "bento": bento,
        "services": {"apiserver": {
            "scaling": {"min_replicas": 3, "max_replicas": 3},
            "deployment_strategy": "RollingUpdate",
            "config_overrides": {}
        }}
    })
}

// ---------------------------------------------------------------------------------- --dump-dom

fn temp_profile() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("chromium-profile-")
        .tempdir()
        .expect("profile dir")
}

/// Runs Chromium to completion with `extra` args (+ the URL); returns stdout.
async fn run_chromium(extra: &[&str], url: &str) -> String {
    let profile = temp_profile();
    let mut cmd = tokio::process::Command::new(chromium());
    cmd.args(chromium_base(profile.path()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("chromium did not finish within 90 s")
        .expect("run chromium");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "chromium failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The DOM after the page had 3 s of (virtual) time to poll.
async fn dump_dom(url: &str) -> String {
    let dom = run_chromium(&["--virtual-time-budget=3000", "--dump-dom"], url).await;
    assert!(
        dom.contains("<table id=\"fleet\""),
        "not the UI page:\n{dom}"
    );
    dom
}

/// The `data-*` attributes of every `<tr class="deployment">` in a dumped DOM, by
/// `data-deployment`.
fn dom_rows(dom: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for (i, _) in dom.match_indices("<tr class=\"deployment\"") {
        let tag = &dom[i..];
        let tag = &tag[..tag.find('>').expect("end of tag")];
        let attrs = attributes(tag);
        let key = attrs.get("deployment").cloned().unwrap_or_default();
        out.insert(key, attrs);
    }
    out
}

/// `data-KEY="VALUE"` pairs of one start tag (values as Chromium serialises them).
fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = tag;
    while let Some(i) = rest.find(" data-") {
        rest = &rest[i + 6..];
        let Some(eq) = rest.find("=\"") else { break };
        let key = rest[..eq].to_string();
        rest = &rest[eq + 2..];
        let Some(end) = rest.find('"') else { break };
        out.insert(key, rest[..end].replace("&amp;", "&"));
        rest = &rest[end + 1..];
    }
    out
}

/// The HTML of the `<tr>` of `key` (to check what is shown, not only the attributes).
fn row_html<'a>(dom: &'a str, key: &str) -> &'a str {
    let start = dom
        .find(&format!("data-deployment=\"{key}\""))
        .unwrap_or_else(|| panic!("no row {key} in:\n{dom}"));
    let end = dom[start..].find("</tr>").expect("end of row") + start;
    &dom[start..end]
}

fn num(attrs: &BTreeMap<String, String>, k: &str) -> u32 {
    attrs
        .get(k)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric data-{k} in {attrs:?}"))
}

// ---------------------------------------------------------------------------------- DevTools

/// One headless Chromium driven over `--remote-debugging-pipe` (it reads commands from fd 3
/// and writes replies and events to fd 4, each a JSON text ended by NUL).
struct Browser {
    child: Child,
    to: File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid two-element array for pipe(2) to fill.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}

impl Browser {
    fn launch(url: &str) -> Browser {
        let profile = temp_profile();
        let (cmd_r, cmd_w) = pipe(); // we write commands, Chromium reads fd 3
        let (ev_r, ev_w) = pipe(); // Chromium writes fd 4, we read
        let mut cmd = Command::new(chromium());
        cmd.args(chromium_base(profile.path()))
            .arg("--remote-debugging-pipe")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close) between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // Move both ends above 4 first, so dup2 onto 3 cannot clobber the other one.
                let r = libc::fcntl(cmd_r, libc::F_DUPFD, 10);
                let w = libc::fcntl(ev_w, libc::F_DUPFD, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(r);
                libc::close(w);
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start chromium");
        // SAFETY: the four descriptors come from pipe() above and are owned here; the child's
        // ends are closed in this process once it has its copies.
        let (to, from_file) = unsafe {
            libc::close(cmd_r);
            libc::close(ev_w);
            (
                <File as std::os::fd::FromRawFd>::from_raw_fd(cmd_w),
                <File as std::os::fd::FromRawFd>::from_raw_fd(ev_r),
            )
        };
        let (tx, from) = mpsc::channel();
        std::thread::spawn(move || {
            let mut r = BufReader::new(from_file);
            loop {
                let mut buf = Vec::new();
                match r.read_until(0, &mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        buf.pop();
                        if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        // Attach to the page target the URL opened in.
        let deadline = Instant::now() + Duration::from_secs(30);
        let target = loop {
            let t = b.call("Target.getTargets", json!({}), false);
            let page = t["targetInfos"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["targetId"].as_str())
                .map(str::to_string);
            if let Some(p) = page {
                break p;
            }
            assert!(Instant::now() < deadline, "no page target: {t}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let s = b.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
            false,
        );
        b.session = s["sessionId"].as_str().expect("sessionId").to_string();
        b
    }

    /// Sends one command and waits for its reply (events in between are dropped).
    fn call(&mut self, method: &str, params: Value, in_page: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if in_page {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to chromium");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .from
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no reply to {method} from chromium: {e}"));
            if v["id"] == json!(id) {
                assert!(v.get("error").is_none(), "{method} failed: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluates `expr` in the page; returns its (JSON) value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
            true,
        );
        assert!(
            r.get("exceptionDetails").is_none(),
            "evaluating {expr} threw: {r}"
        );
        r["result"]["value"].clone()
    }

    /// What the page shows: its rows (data attributes + visible text), event log, poll count.
    fn state(&mut self) -> Value {
        let s = self.eval(
            r##"(function () {
            if (!document.body || !document.getElementById("conn")) {
                return JSON.stringify({polls: 0, conn: "", rows: [], clusters: [], events: []});
            }
            return JSON.stringify({
                polls: Number(document.body.getAttribute("data-polls") || 0),
                conn: document.getElementById("conn").getAttribute("data-state"),
                rows: Array.from(document.querySelectorAll("tr.deployment")).map(function (tr) {
                    var o = Object.assign({}, tr.dataset);
                    o.text = tr.innerText;
                    o.rolloutState = tr.querySelector("td.rollout").getAttribute("data-state");
                    var bar = tr.querySelector("td.rollout .bar > span");
                    o.bar = bar ? bar.style.width : "";
                    return o;
                }),
                clusters: Array.from(document.querySelectorAll("tr.cluster-row"))
                    .map(function (g) { return g.getAttribute("data-cluster"); }),
                events: Array.from(document.querySelectorAll("#events li.event")).map(function (li) {
                    var o = Object.assign({}, li.dataset);
                    o.text = li.innerText;
                    return o;
                })
            });
            })()"##,
        );
        serde_json::from_str(s.as_str().expect("string")).expect("state json")
    }

    fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}), true);
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).expect("write screenshot");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c) << (18 - 6 * i);
        }
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    out
}

fn row<'a>(state: &'a Value, key: &str) -> &'a Value {
    state["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["deployment"] == key)
        .unwrap_or_else(|| panic!("no row {key} on the page: {state:#}"))
}

fn n(v: &Value) -> u32 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

// ---------------------------------------------------------------------------------- the test

fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web_ui");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_renders_the_fleet_and_a_rollout_live() {
    chromium();
    let srv = Server::start();
    srv.bentos_add("iris:v1", &[]);
    let out = artifacts();

    // The page needs no token; the API still does.
    let page = srv
        .http
        .get(format!("{}/", srv.endpoint))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    let ctype = page.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let unauth = srv
        .http
        .get(format!("{}/api/v2/deployments", srv.endpoint))
        .send()
        .await
        .expect("GET deployments");
    assert_eq!(unauth.status(), 401);

    // A fleet over both clusters (the same name in two clusters is two rows).
    let fleet = [
        ("local-east", "a"),
        ("local-east", "billing"),
        ("local-west", "a"),
        ("local-west", "search"),
    ];
    for (cluster, name) in fleet {
        let mut body = spec("iris:v1");
        body["name"] = json!(name);
        srv.api(
            reqwest::Method::POST,
            &format!("/api/v2/deployments?cluster={cluster}"),
            Some(body),
        )
        .await;
    }
    for (cluster, name) in fleet {
        srv.wait_running(cluster, name, "iris:v1").await;
    }

    // 1. The fleet, in a fresh page.
    let dom = dump_dom(&srv.ui_url()).await;
    let rows = dom_rows(&dom);
    assert_eq!(rows.len(), fleet.len(), "rows: {rows:#?}");
    for (cluster, name) in fleet {
        let key = format!("{cluster}/{name}");
        let r = rows
            .get(&key)
            .unwrap_or_else(|| panic!("no row {key}: {rows:#?}"));
        assert_eq!(r["cluster"], cluster);
        assert_eq!(r["name"], name);
        assert_eq!(r["status"], "running", "{r:?}");
        assert_eq!(r["bento"], "iris:v1", "{r:?}");
        assert_eq!(r["rolling"], "false", "{r:?}");
        assert_eq!((num(r, "ready"), num(r, "desired")), (3, 3), "{r:?}");
        let html = row_html(&dom, &key);
        let url = format!("{}/endpoints/local/{cluster}/{name}/", srv.endpoint);
        assert!(html.contains(&format!("href=\"{url}\"")), "{html}");
        assert!(
            html.contains(">running<") && html.contains(">iris:v1<"),
            "{html}"
        );
        assert!(html.contains(">3/3<"), "{html}");
    }
    for cluster in ["local-east", "local-west"] {
        assert!(
            dom.contains(&format!("class=\"cluster-row\" data-cluster=\"{cluster}\"")),
            "no group row for {cluster}"
        );
    }

    // 2. A live page, watching from before the update.
    let url = srv.ui_url();
    let mut browser = tokio::task::spawn_blocking(move || Browser::launch(&url))
        .await
        .expect("launch");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut before;
    loop {
        before = browser.state();
        if before["polls"].as_u64().unwrap_or(0) >= 2
            && before["rows"].as_array().map_or(0, Vec::len) == 4
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the live page never loaded: {before:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(before["conn"], "ok");
    assert_eq!(before["clusters"], json!(["local-east", "local-west"]));

    // A slow bento: each new replica needs 6 s, so the rolling update of 3 takes ~18 s.
    let add = Command::new(server_bin())
        .args(["bentos", "add", "iris:v2", "--startup-seconds", "6"])
        .args(["--endpoint", &srv.endpoint, "--api-token", &srv.token])
        .output()
        .expect("bentos add");
    assert!(add.status.success(), "bentos add: {add:?}");
    // And a broken one: never ready, so its rollout fails after the progress deadline (10 s).
    let add = Command::new(server_bin())
        .args(["bentos", "add", "iris:broken", "--unready"])
        .args(["--endpoint", &srv.endpoint, "--api-token", &srv.token])
        .output()
        .expect("bentos add");
    assert!(add.status.success(), "bentos add: {add:?}");
    srv.api(
        reqwest::Method::PUT,
        "/api/v2/deployments/a?cluster=local-west",
        Some(spec("iris:v2")),
    )
    .await;
    srv.api(
        reqwest::Method::PUT,
        "/api/v2/deployments/billing?cluster=local-east",
        Some(spec("iris:broken")),
    )
    .await;

    // 3. The live page follows both rollouts to the end (sampled from now on, while fresh
    //    pages are looked at below).
    let watch = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut samples: Vec<(String, String, u32, u32)> = Vec::new();
        loop {
            let st = browser.state();
            let r = row(&st, "local-west/a");
            let sample = (
                r["status"].as_str().unwrap_or("").to_string(),
                r["phase"].as_str().unwrap_or("").to_string(),
                n(&r["updated"]),
                n(&r["desired"]),
            );
            if samples.last() != Some(&sample) {
                samples.push(sample.clone());
            }
            let failed = row(&st, "local-east/billing")["phase"] == "failed";
            if sample.0 == "running" && sample.1 == "complete" && r["bento"] == "iris:v2" && failed
            {
                browser.screenshot(&artifacts().join("after-rollout.png"));
                return (st, samples);
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed the rollout complete and the other failed; seen {samples:?}; now {st:#}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    });

    // 4. A fresh page during the rollout shows it in progress.
    let during = dump_dom(&srv.ui_url()).await;
    let rows = dom_rows(&during);
    let r = &rows["local-west/a"];
    assert_eq!(r["rolling"], "true", "{r:?}");
    assert!(
        r["phase"] == "rolling" || r["phase"] == "image-building",
        "{r:?}"
    );
    assert!(num(r, "updated") < num(r, "desired"), "{r:?}");
    assert_eq!(r["bento"], "iris:v2", "{r:?}");
    let html = row_html(&during, "local-west/a");
    assert!(html.contains("class=\"bar\""), "no progress bar: {html}");
    assert!(
        html.contains(&format!("{}/3 updated", num(r, "updated"))),
        "{html}"
    );
    // The broken one is rolling too, or already failed when the machine is slow.
    let b = &rows["local-east/billing"];
    assert!(b["rolling"] == "true" || b["phase"] == "failed", "{b:?}");
    assert_eq!(b["bento"], "iris:broken", "{b:?}");
    for other in ["local-east/a", "local-west/search"] {
        assert_eq!(
            rows[other]["rolling"], "false",
            "{other}: {:?}",
            rows[other]
        );
        assert_eq!(rows[other]["bento"], "iris:v1");
    }
    let shot = out.join("during-rollout.png");
    run_chromium(
        &[
            "--virtual-time-budget=3000",
            &format!("--screenshot={}", shot.display()),
        ],
        &srv.ui_url(),
    )
    .await;
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "bad screenshot"
    );

    // (3, continued) what the live page showed.
    let (end, samples) = watch.await.expect("watch");
    let rolling: Vec<_> = samples
        .iter()
        .filter(|s| s.1 == "rolling" && s.2 < s.3)
        .collect();
    assert!(
        !rolling.is_empty(),
        "the live page never showed updated < desired while rolling: {samples:?}"
    );
    assert!(
        rolling
            .iter()
            .map(|s| s.2)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 2,
        "progress should be seen moving (several updated counts while rolling): {samples:?}"
    );
    assert!(
        rolling.windows(2).all(|w| w[0].2 <= w[1].2),
        "updated replicas never go back during a rolling update: {samples:?}"
    );
    let r = row(&end, "local-west/a");
    assert_eq!(r["rolling"], "false", "{r:#}");
    assert_eq!(r["rolloutState"], "idle", "{r:#}");
    assert!(
        r["text"].as_str().unwrap_or("").contains("iris:v2"),
        "{r:#}"
    );
    assert!(r["text"].as_str().unwrap_or("").contains("3/3"), "{r:#}");

    // The event log recorded the changes of that deployment, oldest last.
    let events: Vec<(String, String, String)> = end["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["deployment"] == "local-west/a")
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                e["from"].as_str().unwrap_or("").to_string(),
                e["to"].as_str().unwrap_or("").to_string(),
            )
        })
        .rev()
        .collect();
    let has = |kind: &str, to: &str| events.iter().any(|e| e.0 == kind && e.2 == to);
    assert!(
        has("bento", "iris:v2") && has("phase", "rolling") && has("phase", "complete"),
        "event log: {events:?}"
    );
    assert!(has("status", "running"), "event log: {events:?}");
    assert!(
        end["events"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|e| e["deployment"] == "local-west/a" || e["deployment"] == "local-east/billing"),
        "only the updated deployments changed: {:#}",
        end["events"]
    );

    // The failed rollout: red state, and the reason the API gives is on the page.
    let api = srv.deployment("local-east", "billing").await;
    let message = api["rollout"]["message"].as_str().unwrap_or("").to_string();
    assert!(!message.is_empty(), "{api}");
    let b = row(&end, "local-east/billing");
    assert_eq!(b["phase"], "failed", "{b:#}");
    assert_eq!(b["rolloutState"], "failed", "{b:#}");
    assert_eq!(b["status"], api["status"], "{b:#}");
    assert!(
        b["text"].as_str().unwrap_or("").contains(&message),
        "the failure message {message:?} is not shown: {b:#}"
    );
    assert!(
        end["events"].as_array().into_iter().flatten().any(|e| {
            e["deployment"] == "local-east/billing" && e["kind"] == "phase" && e["to"] == "failed"
        }),
        "no failed event: {:#}",
        end["events"]
    );

    // 5. A fresh page after the rollout shows the new bento, running.
    let after = dump_dom(&srv.ui_url()).await;
    let rows = dom_rows(&after);
    let r = &rows["local-west/a"];
    assert_eq!(r["status"], "running", "{r:?}");
    assert_eq!(r["phase"], "complete", "{r:?}");
    assert_eq!(r["bento"], "iris:v2", "{r:?}");
    assert_eq!(r["rolling"], "false", "{r:?}");
    assert_eq!((num(r, "updated"), num(r, "desired")), (3, 3), "{r:?}");
    assert_eq!(r["revision"], r["serving-revision"], "{r:?}");
    eprintln!("screenshots in {}", out.display());
}

// ---------------------------------------------------------------------------------- filters,
// natural sort, counts, the selected deployment

/// Labels as `(key, value)` pairs.
type Labels<'a> = &'a [(&'a str, &'a str)];

fn spec_n(bento: &str, replicas: u32, labels: Labels) -> Value {
    let mut s = spec(bento);
    s["services"]["apiserver"]["scaling"] =
        json!({"min_replicas": replicas, "max_replicas": replicas});
    s["labels"] = labels
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    s
}

impl Server {
    async fn create(&self, cluster: &str, name: &str, body: Value) -> Value {
        let mut body = body;
        body["name"] = json!(name);
        self.api(
            reqwest::Method::POST,
            &format!("/api/v2/deployments?cluster={cluster}"),
            Some(body),
        )
        .await
    }

    /// Waits until the API reports `status` for `cluster/name`.
    async fn wait_status(&self, cluster: &str, name: &str, status: &str) {
        self.wait_for(cluster, name, &format!("reported {status}"), |d| {
            d["status"] == status
        })
        .await
    }

    fn bentos_add(&self, tag: &str, flags: &[&str]) {
        let add = Command::new(server_bin())
            .args(["bentos", "add", tag])
            .args(flags)
            .args(["--endpoint", &self.endpoint, "--api-token", &self.token])
            .output()
            .expect("bentos add");
        assert!(add.status.success(), "bentos add {tag}: {add:?}");
    }

    /// `cluster/name` rolled from `iris:v1` to `iris:v2` with the rolling update (3 replicas):
    /// returns the uids of the old and new revisions.
    async fn rolled_out(&self, cluster: &str, name: &str) -> (String, String) {
        self.create(cluster, name, spec("iris:v1")).await;
        self.wait_running(cluster, name, "iris:v1").await;
        let old = self.deployment(cluster, name).await["latest_revision"]["uid"]
            .as_str()
            .expect("uid")
            .to_string();
        self.bentos_add("iris:v2", &["--startup-seconds", "0.6"]);
        self.api(
            reqwest::Method::PUT,
            &format!("/api/v2/deployments/{name}?cluster={cluster}"),
            Some(spec("iris:v2")),
        )
        .await;
        self.wait_running(cluster, name, "iris:v2").await;
        let new = self.deployment(cluster, name).await["latest_revision"]["uid"]
            .as_str()
            .expect("uid")
            .to_string();
        assert_ne!(old, new);
        (old, new)
    }
}

impl Browser {
    /// Launches a page on `url` and waits until it has polled and shows `rows` deployments.
    fn ready(url: String, rows: usize) -> Browser {
        let mut b = Browser::launch(&url);
        poll_until_seen(
            &format!("the page to show {rows} rows"),
            Duration::from_secs(30),
            || {
                let st = b.state();
                let shown = st["polls"].as_u64().unwrap_or(0) >= 1
                    && st["rows"].as_array().map_or(0, Vec::len) == rows;
                if shown {
                    Ok(())
                } else {
                    Err(format!("{st:#}"))
                }
            },
        );
        b
    }

    /// Sets a filter control as a user would (value, then its `change`/`input` event);
    /// returns the page's query string afterwards.
    fn set_filter(&mut self, id: &str, value: &str) -> String {
        let js = format!(
            r#"(function () {{
                var e = document.getElementById({id});
                e.value = {value};
                e.dispatchEvent(new Event(e.tagName === "SELECT" ? "change" : "input", {{bubbles: true}}));
                return decodeURIComponent(location.search);
            }})()"#,
            id = json!(id),
            value = json!(value)
        );
        self.eval(&js).as_str().expect("search").to_string()
    }

    fn click(&mut self, selector: &str) -> String {
        let js = format!(
            r#"(function () {{
                var e = document.querySelector({sel});
                if (!e) throw new Error("nothing matches " + {sel});
                e.click();
                return decodeURIComponent(location.search);
            }})()"#,
            sel = json!(selector)
        );
        self.eval(&js).as_str().expect("search").to_string()
    }

    /// The per-cluster counts table: cluster ("" for all) -> status ("" for the total) -> n.
    fn counts(&mut self) -> BTreeMap<String, BTreeMap<String, u32>> {
        let v = self.eval(
            r##"JSON.stringify(Array.from(document.querySelectorAll("#counts tbody tr")).map(function (tr) {
                return [tr.getAttribute("data-cluster"),
                  Array.from(tr.querySelectorAll("td[data-count]")).map(function (td) {
                    return [td.getAttribute("data-status"), Number(td.getAttribute("data-count"))];
                  })];
            }))"##,
        );
        let rows: Vec<(String, Vec<(String, u32)>)> =
            serde_json::from_str(v.as_str().expect("string")).expect("counts json");
        rows.into_iter()
            .map(|(c, cells)| (c, cells.into_iter().filter(|(_, n)| *n > 0).collect()))
            .collect()
    }

    /// What the detail panel shows: its deployment, revision rows and timeline series.
    fn detail(&mut self) -> Value {
        let s = self.eval(
            r##"JSON.stringify({
                hidden: document.getElementById("detail-panel").hidden,
                deployment: document.getElementById("detail-panel").getAttribute("data-deployment"),
                loaded: document.getElementById("detail-panel").getAttribute("data-loaded"),
                selectedRows: Array.from(document.querySelectorAll('tr.deployment[data-selected="true"]'))
                    .map(function (tr) { return tr.getAttribute("data-deployment"); }),
                revisions: Array.from(document.querySelectorAll("#revisions tr.revision")).map(function (tr) {
                    var o = Object.assign({}, tr.dataset);
                    o.text = tr.innerText;
                    return o;
                }),
                phase: document.getElementById("timeline").getAttribute("data-phase"),
                series: Array.from(document.querySelectorAll("#timeline polyline.series")).map(function (p) {
                    return {revision: p.getAttribute("data-revision"), role: p.getAttribute("data-role"),
                        bento: p.getAttribute("data-bento"), values: p.getAttribute("data-values"),
                        points: p.getAttribute("points").split(" ").length};
                }),
                legend: document.getElementById("timeline-legend").innerText,
                search: decodeURIComponent(location.search)
            })"##,
        );
        serde_json::from_str(s.as_str().expect("string")).expect("detail json")
    }
}

fn keys(state: &Value) -> Vec<String> {
    state["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| r["deployment"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The row keys of a dumped DOM, in page order.
fn dom_keys(dom: &str) -> Vec<String> {
    dom.match_indices("<tr class=\"deployment\"")
        .map(|(i, _)| {
            let tag = &dom[i..];
            attributes(&tag[..tag.find('>').expect("end of tag")])
                .get("deployment")
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A series' ready counts, sample by sample (`data-values`).
fn values(series: &Value) -> Vec<u32> {
    series["values"]
        .as_str()
        .unwrap_or("")
        .split(',')
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("bad data-values: {series}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_natural_sort_and_counts_per_cluster() {
    chromium();
    let srv = Server::start();
    srv.bentos_add("iris:v1", &[]);
    // A bento whose image build fails: a second status to count and filter on.
    srv.bentos_add("iris:nobuild", &["--image-build-fails"]);
    let perf = [("team", "perf")];
    let search = [("team", "search")];
    // Created out of order: the page sorts, not the server.
    let fleet: [(&str, &str, &str, Labels); 7] = [
        ("local-east", "perf-100", "iris:v1", &perf),
        ("local-east", "perf-10", "iris:v1", &perf),
        ("local-east", "search", "iris:v1", &search),
        ("local-east", "perf-2", "iris:v1", &perf),
        ("local-east", "perf-1", "iris:v1", &perf),
        ("local-west", "perf-3", "iris:v1", &perf),
        ("local-west", "broken", "iris:nobuild", &search),
    ];
    for (cluster, name, bento, labels) in fleet {
        srv.create(cluster, name, spec_n(bento, 1, labels)).await;
    }
    for (cluster, name, bento, _) in fleet {
        if bento == "iris:v1" {
            srv.wait_running(cluster, name, bento).await;
        }
    }
    srv.wait_status("local-west", "broken", "image-build-failed")
        .await;

    let url = srv.ui_url();
    let mut b = tokio::task::spawn_blocking(move || Browser::ready(url, 7))
        .await
        .expect("launch");
    let all = strs(&[
        "local-east/perf-1",
        "local-east/perf-2",
        "local-east/perf-10",
        "local-east/perf-100",
        "local-east/search",
        "local-west/broken",
        "local-west/perf-3",
    ]);
    // Natural order within each cluster, clusters in order.
    assert_eq!(keys(&b.state()), all);

    // Counts by status per cluster, and over all clusters ("").
    let counts = b.counts();
    let want: BTreeMap<String, BTreeMap<String, u32>> = [
        ("local-east", vec![("running", 5), ("", 5)]),
        (
            "local-west",
            vec![("running", 1), ("image-build-failed", 1), ("", 2)],
        ),
        ("", vec![("running", 6), ("image-build-failed", 1), ("", 7)]),
    ]
    .into_iter()
    .map(|(c, v)| {
        (
            c.to_string(),
            v.into_iter().map(|(s, n)| (s.to_string(), n)).collect(),
        )
    })
    .collect();
    assert_eq!(counts, want);

    // Each filter narrows the table and is written to the URL.
    let cases: [(&str, &str, &str, &[&str]); 5] = [
        (
            "f-status",
            "image-build-failed",
            "?status=image-build-failed",
            &["local-west/broken"],
        ),
        (
            "f-cluster",
            "local-west",
            "?cluster=local-west",
            &["local-west/broken", "local-west/perf-3"],
        ),
        (
            "f-label",
            "team=search",
            "?label=team=search",
            &["local-east/search", "local-west/broken"],
        ),
        (
            "f-name",
            "perf-1",
            "?name=perf-1",
            &[
                "local-east/perf-1",
                "local-east/perf-10",
                "local-east/perf-100",
            ],
        ),
        ("f-label", "team", "?label=team", &[]),
    ];
    for (id, value, search, want) in cases {
        b.click("#f-clear");
        let got = b.set_filter(id, value);
        assert_eq!(got, search, "{id}={value}");
        let st = b.state();
        let want = if want.is_empty() {
            all.clone()
        } else {
            strs(want)
        };
        assert_eq!(keys(&st), want, "{id}={value}");
    }
    // Filters combine.
    b.click("#f-clear");
    b.set_filter("f-name", "perf");
    let search = b.set_filter("f-cluster", "local-west");
    assert_eq!(search, "?cluster=local-west&name=perf");
    assert_eq!(keys(&b.state()), strs(&["local-west/perf-3"]));
    b.set_filter("f-label", "team=search");
    assert!(keys(&b.state()).is_empty());
    let shown = b.eval(r#"document.getElementById("shown").textContent"#);
    assert_eq!(shown, "showing 0 of 7");
    // A count filters by its cluster and status.
    b.click("#f-clear");
    assert_eq!(keys(&b.state()), all);
    let search =
        b.click(r#"#counts tr[data-cluster="local-west"] td[data-status="image-build-failed"]"#);
    assert_eq!(search, "?cluster=local-west&status=image-build-failed");
    assert_eq!(keys(&b.state()), strs(&["local-west/broken"]));
    drop(b);

    // A link keeps its filters: a fresh page opened on one shows only what matches.
    let dom = dump_dom(&format!(
        "{}/?label=team%3Dperf&name=perf-1#token={}",
        srv.endpoint, srv.token
    ))
    .await;
    assert_eq!(
        dom_keys(&dom),
        strs(&[
            "local-east/perf-1",
            "local-east/perf-10",
            "local-east/perf-100"
        ])
    );
    assert!(
        dom.contains("showing 3 of 7"),
        "no 'showing 3 of 7' in the page"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selecting_a_deployment_shows_its_revisions_and_last_rollout() {
    chromium();
    let srv = Server::start();
    srv.bentos_add("iris:v1", &[]);
    srv.create("local-west", "other", spec_n("iris:v1", 1, &[]))
        .await;
    let (old, new) = srv.rolled_out("local-east", "roll").await;
    srv.wait_running("local-west", "other", "iris:v1").await;
    let me = srv
        .api(reqwest::Method::GET, "/api/v1/auth/current", None)
        .await["name"]
        .as_str()
        .expect("user name")
        .to_string();

    let url = srv.ui_url();
    let mut b = tokio::task::spawn_blocking(move || Browser::ready(url, 2))
        .await
        .expect("launch");
    assert_eq!(b.detail()["hidden"], true);
    let search = b.click(r#"tr[data-deployment="local-east/roll"] td.name"#);
    assert_eq!(search, "?selected=local-east/roll");
    let d = poll_until_seen("the detail to load", Duration::from_secs(30), || {
        let d = b.detail();
        if d["loaded"] == "true" && d["series"].as_array().map_or(0, Vec::len) >= 2 {
            Ok(d)
        } else {
            Err(format!("{d:#}"))
        }
    });
    assert_eq!(d["hidden"], false, "{d:#}");
    assert_eq!(d["deployment"], "local-east/roll", "{d:#}");
    assert_eq!(d["selectedRows"], json!(["local-east/roll"]), "{d:#}");

    // Its revisions, newest first: the new one active and serving, the old one inactive.
    let revs = d["revisions"].as_array().expect("revisions");
    let got: Vec<(&str, &str, &str, &str, &str)> = revs
        .iter()
        .map(|r| {
            (
                r["uid"].as_str().unwrap_or(""),
                r["bento"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or(""),
                r["serving"].as_str().unwrap_or(""),
                r["creator"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (new.as_str(), "iris:v2", "active", "true", me.as_str()),
            (old.as_str(), "iris:v1", "inactive", "false", me.as_str()),
        ],
        "{d:#}"
    );
    for r in revs {
        let text = r["text"].as_str().unwrap_or("");
        assert!(text.contains(r["bento"].as_str().unwrap_or("")), "{text}");
        assert!(text.contains(r["status"].as_str().unwrap_or("")), "{text}");
        assert!(!r["createdAt"].as_str().unwrap_or("").is_empty(), "{r}");
    }

    // The timeline of the rollout: the old revision's ready replicas go from 3 to 0 while the
    // new one's go from 0 to 3, both drawn.
    assert_eq!(d["phase"], "complete", "{d:#}");
    let series = d["series"].as_array().expect("series");
    assert_eq!(series.len(), 2, "{d:#}");
    let (o, n) = (&series[0], &series[1]);
    assert_eq!(
        (o["role"].as_str(), o["revision"].as_str()),
        (Some("old"), Some(old.as_str()))
    );
    assert_eq!(
        (n["role"].as_str(), n["revision"].as_str()),
        (Some("new"), Some(new.as_str()))
    );
    assert_eq!(
        (o["bento"].as_str(), n["bento"].as_str()),
        (Some("iris:v1"), Some("iris:v2"))
    );
    let (ov, nv) = (values(o), values(n));
    assert_eq!(ov.len(), nv.len());
    assert_eq!((ov[0], nv[0]), (3, 0), "old {ov:?} new {nv:?}");
    assert_eq!(
        (ov[ov.len() - 1], nv[nv.len() - 1]),
        (0, 3),
        "old {ov:?} new {nv:?}"
    );
    assert!(
        ov.windows(2).all(|w| w[1] <= w[0]),
        "old never goes up: {ov:?}"
    );
    assert!(
        nv.windows(2).all(|w| w[1] >= w[0]),
        "new never goes down: {nv:?}"
    );
    assert!(
        ov.iter().zip(&nv).any(|(o, n)| *o > 0 && *n > 0),
        "a rolling update has old and new ready together: old {ov:?} new {nv:?}"
    );
    for s in series {
        // Drawn as steps: at least a start, one change (two points) and an end.
        assert!(s["points"].as_u64().unwrap_or(0) >= 4, "{s}");
    }
    let legend = d["legend"].as_str().unwrap_or("");
    assert!(
        legend.contains("old") && legend.contains("iris:v1"),
        "{legend}"
    );
    assert!(
        legend.contains("new") && legend.contains("iris:v2"),
        "{legend}"
    );
    b.screenshot(&artifacts().join("timeline.png"));

    // Another row replaces the selection; closing it hides the panel and leaves the URL.
    b.click(r#"tr[data-deployment="local-west/other"] td.name"#);
    let d = poll_until_seen(
        "the other deployment to load",
        Duration::from_secs(30),
        || {
            let d = b.detail();
            if d["deployment"] == "local-west/other" && d["loaded"] == "true" {
                Ok(d)
            } else {
                Err(format!("{d:#}"))
            }
        },
    );
    assert_eq!(d["revisions"].as_array().map(Vec::len), Some(1), "{d:#}");
    assert_eq!(d["series"].as_array().map(Vec::len), Some(1), "{d:#}");
    assert_eq!(d["series"][0]["role"], "new", "{d:#}");
    let search = b.click("#detail-close");
    assert_eq!(search, "");
    assert_eq!(b.detail()["hidden"], true);
    drop(b);

    // A link to the selection opens the same view in a fresh page.
    let dom = dump_dom(&format!(
        "{}/?selected=local-east%2Froll#token={}",
        srv.endpoint, srv.token
    ))
    .await;
    assert!(
        dom.contains(&format!(
            "class=\"revision\" data-uid=\"{new}\" data-status=\"active\""
        )),
        "no active revision {new} in the page"
    );
    assert!(dom.contains(&format!("data-uid=\"{old}\" data-status=\"inactive\"")));
    for rev in [&old, &new] {
        assert!(
            dom.contains(&format!("data-revision=\"{rev}\"")),
            "no series for {rev}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_endpoint_records_a_rolling_update() {
    let srv = Server::start();
    srv.bentos_add("iris:v1", &[]);
    let (old, new) = srv.rolled_out("local-east", "roll").await;
    let tl = srv
        .api(
            reqwest::Method::GET,
            "/api/local/v1/deployments/roll/timeline?cluster=local-east",
            None,
        )
        .await;
    assert_eq!(tl["name"], "roll");
    assert_eq!(tl["cluster"], "local-east");
    assert_eq!(tl["revision_uid"], new.as_str());
    assert_eq!(tl["serving_revision_uid"], new.as_str());
    assert_eq!(tl["phase"], "complete");
    assert_eq!(
        tl["revisions"],
        json!([
            {"uid": old, "seq": 1, "bento": "iris:v1", "role": "old"},
            {"uid": new, "seq": 2, "bento": "iris:v2", "role": "new"},
        ])
    );
    let samples = tl["samples"].as_array().expect("samples");
    let ready = |s: &Value, rev: &str| -> u32 {
        s["revisions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["uid"] == rev)
            .map_or(0, |r| r["ready"].as_u64().unwrap_or(0) as u32)
    };
    let steps: Vec<(i64, u32, u32)> = samples
        .iter()
        .map(|s| {
            (
                s["at_ms"].as_i64().expect("at_ms"),
                ready(s, &old),
                ready(s, &new),
            )
        })
        .collect();
    let started = tl["started_at_ms"].as_i64().expect("started_at_ms");
    // It begins with the state the update found (3 old ready), then each step in time order.
    assert!(steps[0].0 <= started, "{steps:?} (started {started})");
    assert_eq!((steps[0].1, steps[0].2), (3, 0), "{steps:?}");
    assert!(steps[1..].iter().all(|s| s.0 > started), "{steps:?}");
    assert!(steps.windows(2).all(|w| w[0].0 < w[1].0), "{steps:?}");
    let last = steps[steps.len() - 1];
    assert_eq!((last.1, last.2), (0, 3), "{steps:?}");
    // Old replicas go down as new ones go up, never below the desired 3 ready in all.
    assert!(
        steps
            .windows(2)
            .all(|w| w[1].1 <= w[0].1 && w[1].2 >= w[0].2),
        "{steps:?}"
    );
    assert!(steps.iter().all(|s| s.1 + s.2 >= 3), "{steps:?}");
    for k in 1..3 {
        assert!(
            steps.iter().any(|s| s.2 == k && s.1 > 0),
            "no step with {k} new ready while old still served: {steps:?}"
        );
    }
    // Starting replicas of the new revision show up before they are ready.
    assert!(
        samples.iter().any(|s| s["revisions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["uid"] == new.as_str() && r["starting"].as_u64() > Some(0))),
        "{tl:#}"
    );

    let revs = srv
        .api(
            reqwest::Method::GET,
            "/api/local/v1/deployments/roll/revisions?cluster=local-east",
            None,
        )
        .await;
    let items: Vec<(String, String, String, bool)> = revs["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|r| {
            (
                r["uid"].as_str().unwrap_or("").to_string(),
                r["bento"].as_str().unwrap_or("").to_string(),
                r["status"].as_str().unwrap_or("").to_string(),
                r["serving"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    assert_eq!(
        items,
        [
            (new.clone(), "iris:v2".into(), "active".into(), true),
            (old.clone(), "iris:v1".into(), "inactive".into(), false),
        ]
    );
    assert_eq!(revs["items"][0]["name"], "roll-rev-2");

    // Like every local route: the token is required, and an unknown deployment is a 404.
    for path in ["timeline", "revisions"] {
        let url = format!("{}/api/local/v1/deployments/roll/{path}", srv.endpoint);
        let resp = srv.http.get(&url).send().await.expect("get");
        assert_eq!(resp.status(), 401, "{path}");
        let url = format!("{}/api/local/v1/deployments/nope/{path}", srv.endpoint);
        let resp = srv
            .http
            .get(&url)
            .header("X-YATAI-API-TOKEN", &srv.token)
            .send()
            .await
            .expect("get");
        assert_eq!(resp.status(), 404, "{path}");
    }
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode("YWJj"), b"abc");
}
