//! Terraform's contract for deployments made anywhere: by this provider, by the official client
//! (`bentoml deploy` with no flags and with every flag) and by raw API bodies that omit optional
//! fields (`services: {}`, a service without scaling or instance type, no envs, no labels). Each
//! is imported, updated one attribute at a time, and destroyed; every apply must succeed (a
//! "Provider produced inconsistent result" or "inconsistent final plan" fails it) and be
//! followed by an empty plan and a state equal to the server.
//!
//! Also: a deployment stopped outside Terraform is drift that apply brings back, and one that
//! turns unhealthy on its own changes no plan (a warning says so).

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

const CLUSTER: &str = "local-east";
const SECRET: &str = "anywhere-secret";

/// One deployment's configured attributes; `None`/empty means left out of the configuration.
#[derive(Debug, Clone)]
struct Cfg {
    resource: &'static str,
    name: String,
    bento: String,
    envs: Vec<(String, String)>,
    labels: Vec<(String, String)>,
    secrets: Vec<String>,
    access_authorization: Option<bool>,
    instance_type: Option<String>,
    min: Option<i64>,
    max: Option<i64>,
    strategy: Option<String>,
}

impl Cfg {
    fn new(resource: &'static str, name: &str) -> Cfg {
        Cfg {
            resource,
            name: name.to_string(),
            bento: "iris:v1".into(),
            envs: vec![],
            labels: vec![],
            secrets: vec![],
            access_authorization: None,
            instance_type: None,
            min: None,
            max: None,
            strategy: None,
        }
    }

    fn addr(&self) -> String {
        format!("bentocloud_deployment.{}", self.resource)
    }

    fn hcl(&self) -> String {
        let pairs = |v: &[(String, String)]| {
            let p: Vec<(&str, &str)> = v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            hcl_map(&p)
        };
        let mut s = format!(
            "resource \"bentocloud_deployment\" \"{}\" {{\n  name    = {:?}\n  cluster = {CLUSTER:?}\n  bento   = {:?}\n",
            self.resource, self.name, self.bento
        );
        if !self.envs.is_empty() {
            s.push_str(&format!("  envs = {}\n", pairs(&self.envs)));
        }
        if !self.labels.is_empty() {
            s.push_str(&format!("  labels = {}\n", pairs(&self.labels)));
        }
        if !self.secrets.is_empty() {
            let p: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
            s.push_str(&format!("  secrets = {}\n", hcl_list(&p)));
        }
        if let Some(a) = self.access_authorization {
            s.push_str(&format!("  access_authorization = {a}\n"));
        }
        if let Some(t) = &self.instance_type {
            s.push_str(&format!("  instance_type = {t:?}\n"));
        }
        if let Some(m) = self.min {
            s.push_str(&format!("  min_replicas = {m}\n"));
        }
        if let Some(m) = self.max {
            s.push_str(&format!("  max_replicas = {m}\n"));
        }
        if let Some(st) = &self.strategy {
            s.push_str(&format!("  deployment_strategy = {st:?}\n"));
        }
        s.push_str("}\n");
        s
    }
}

fn kv(k: &str, v: &str) -> (String, String) {
    (k.to_string(), v.to_string())
}

/// A raw `POST /api/v2/deployments` body, as a script would send it.
fn create_raw(server: &Server, body: serde_json::Value) {
    let (status, text) = server.request(
        reqwest::Method::POST,
        &format!("/api/v2/deployments?cluster={CLUSTER}"),
        Some(&body),
    );
    assert_eq!(status, 200, "raw create {body}: {text}");
}

fn write_all(tf: &Tf, cfgs: &[Cfg]) {
    let body: Vec<String> = cfgs.iter().map(Cfg::hcl).collect();
    tf.write(&body.join("\n"));
}

/// An apply that must succeed, with no sign of a broken contract in its output.
fn apply_clean(tf: &Tf, context: &str) {
    let out = tf.run(&["apply", "-auto-approve", "-input=false", "-no-color"]);
    assert_clean_apply(&out, context);
}

/// After a successful apply: an empty plan, and each state equal to the server.
fn converged(tf: &Tf, server: &Server, cfgs: &[Cfg], context: &str) {
    tf.assert_no_changes(context);
    for c in cfgs {
        server.assert_latest_serves(CLUSTER, &c.name, context);
        let sv = server.settled_view(CLUSTER, &c.name);
        assert_state_matches_server(&tf.resource(&c.addr()), &sv, context);
        assert_eq!(
            sv.envs,
            c.envs.iter().cloned().collect(),
            "{context}: envs of {}",
            c.name
        );
        assert_eq!(
            sv.labels,
            c.labels.iter().cloned().collect(),
            "{context}: labels of {}",
            c.name
        );
        if let Some(t) = &c.instance_type {
            assert_eq!(sv.instance_type.as_ref(), Some(t), "{context}: {}", c.name);
        }
        if let Some(m) = c.min {
            assert_eq!(sv.min_replicas, Some(m), "{context}: min of {}", c.name);
        }
        if let Some(m) = c.max {
            assert_eq!(sv.max_replicas, Some(m), "{context}: max of {}", c.name);
        }
        if let Some(st) = &c.strategy {
            assert_eq!(sv.strategy.as_ref(), Some(st), "{context}: {}", c.name);
        }
    }
}

fn running(server: &Server, name: &str) {
    poll_until_seen(
        &format!("{CLUSTER}/{name} running"),
        Duration::from_secs(120),
        || {
            let d = server.must_get(CLUSTER, name);
            let status = d.status.as_str().to_string();
            (status == "running").then_some(()).ok_or(status)
        },
    );
}

/// Made by a raw body with `services: {}` (of a bento whose entry service is `apiserver`, and
/// of one whose entry service is named otherwise), by one whose service has no settings, by `bentoml
/// deploy` with no flags and with every flag, and by Terraform: each imported (but the last),
/// then each attribute changed in turn on all of them, removed again, and destroyed.
pub fn made_anywhere_imported_updated_destroyed(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1", "iris:v2"]);
    // A bento whose entry service is not the official client's fallback `apiserver`.
    server.register_bento("summarizer:v1", &["Summarizer"]);
    server.register_bento("summarizer:v2", &["Summarizer"]);
    server.create_secret(SECRET, "TOKEN", "t");
    let n = |p: &str| dep_name(p, v);
    let raw_named = n("raw-named");
    let raw_empty = n("raw-empty");
    let raw_bare = n("raw-bare");
    let cli_plain = n("cli-plain");
    let cli_flags = n("cli-flags");
    let tf_made = n("tf-made");

    create_raw(
        &server,
        json!({ "name": raw_empty, "bento": "iris:v1", "services": {} }),
    );
    create_raw(
        &server,
        json!({ "name": raw_named, "bento": "summarizer:v1", "services": {} }),
    );
    create_raw(
        &server,
        json!({ "name": raw_bare, "bento": "iris:v1", "services": { "apiserver": {} } }),
    );
    server.bentoml(&[
        "deploy",
        "iris:v1",
        "-n",
        &cli_plain,
        "--cluster",
        CLUSTER,
        "--no-wait",
    ]);
    server.bentoml(&[
        "deploy",
        "iris:v1",
        "-n",
        &cli_flags,
        "--cluster",
        CLUSTER,
        "--scaling-min",
        "2",
        "--scaling-max",
        "3",
        "--instance-type",
        "cpu.2",
        "--strategy",
        "Recreate",
        "--env",
        "A=1",
        "--label",
        "team=ml",
        "--secret",
        SECRET,
        "--access-authorization",
        "true",
        "--no-wait",
    ]);
    for name in [&raw_empty, &raw_named, &raw_bare, &cli_plain, &cli_flags] {
        running(&server, name);
    }

    // Configurations that describe them as they are: only what the server cannot choose.
    let mut cfgs = vec![
        Cfg::new("raw_empty", &raw_empty),
        Cfg {
            bento: "summarizer:v1".into(),
            ..Cfg::new("raw_named", &raw_named)
        },
        Cfg::new("raw_bare", &raw_bare),
        Cfg::new("cli_plain", &cli_plain),
        Cfg {
            envs: vec![kv("A", "1")],
            labels: vec![kv("team", "ml")],
            secrets: vec![SECRET.into()],
            access_authorization: Some(true),
            ..Cfg::new("cli_flags", &cli_flags)
        },
        Cfg::new("tf_made", &tf_made),
    ];
    let tf = Tf::new(v, &server);
    write_all(&tf, &cfgs);
    tf.init();
    for c in &cfgs[..5] {
        tf.import(&c.addr(), &format!("{CLUSTER}/{}", c.name));
    }
    apply_clean(&tf, "create tf_made next to the imported ones");
    converged(&tf, &server, &cfgs, "after import");

    // Each attribute changed alone, on every deployment at once.
    type Step = (&'static str, fn(&mut Cfg, &ServerView));
    let steps: Vec<Step> = vec![
        ("envs", |c, _| c.envs.push(kv("STEP", "envs"))),
        ("labels", |c, _| c.labels.push(kv("step", "labels"))),
        ("secrets", |c, _| c.secrets = vec![SECRET.into()]),
        ("access_authorization", |c, sv| {
            c.access_authorization = Some(!sv.access_authorization)
        }),
        ("instance_type", |c, sv| {
            let other = if sv.instance_type.as_deref() == Some("cpu.2") {
                "cpu.1"
            } else {
                "cpu.2"
            };
            c.instance_type = Some(other.into());
        }),
        // min alone: max follows when min passes it.
        ("min_replicas", |c, sv| {
            c.min = Some(sv.min_replicas.unwrap_or(1) + 1)
        }),
        ("max_replicas", |c, sv| {
            c.max = Some(sv.max_replicas.unwrap_or(1) + 1)
        }),
        ("deployment_strategy", |c, sv| {
            let other = if sv.strategy.as_deref() == Some("Recreate") {
                "RollingUpdate"
            } else {
                "Recreate"
            };
            c.strategy = Some(other.into());
        }),
        ("bento", |c, _| c.bento = c.bento.replace(":v1", ":v2")),
        // Left out again: maps and sets are removed, server-side settings are kept.
        ("removed", |c, _| {
            c.envs.clear();
            c.labels.clear();
            c.secrets.clear();
            c.access_authorization = None;
            c.instance_type = None;
            c.min = None;
            c.max = None;
            c.strategy = None;
        }),
    ];
    for (what, change) in steps {
        for c in cfgs.iter_mut() {
            let sv = view(&server.must_get(CLUSTER, &c.name));
            change(c, &sv);
        }
        write_all(&tf, &cfgs);
        apply_clean(&tf, &format!("change of {what}"));
        converged(&tf, &server, &cfgs, &format!("after the change of {what}"));
    }
    // Left-out settings kept what the server had.
    let sv = view(&server.must_get(CLUSTER, &cli_flags));
    assert_eq!(
        (sv.min_replicas, sv.max_replicas),
        (Some(3), Some(4)),
        "scaling kept"
    );

    tf.destroy();
    assert!(
        server.all_deployment_ids().is_empty(),
        "destroy leaves nothing: {:?}",
        server.all_deployment_ids()
    );
}

/// `POST .../terminate` outside Terraform: the plan shows the deployment will be started
/// again and says why; apply does, and waits until it serves. The plan right after it is
/// empty although the API may still report the stop (its status lags: the lagged variants
/// make sure it does).
pub fn stopped_elsewhere_is_brought_back(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let name = dep_name("stopped", v);
    let cfg = Cfg {
        envs: vec![kv("MODE", "on")],
        ..Cfg::new("app", &name)
    };
    let tf = Tf::new(v, &server);
    write_all(&tf, std::slice::from_ref(&cfg));
    tf.init();
    apply_clean(&tf, "create");
    let (status, text) = server.request(
        reqwest::Method::POST,
        &format!("/api/v2/deployments/{name}/terminate?cluster={CLUSTER}"),
        None,
    );
    assert_eq!(status, 200, "terminate: {text}");
    poll_until_seen("terminated", Duration::from_secs(60), || {
        let s = server.must_get(CLUSTER, &name).status.as_str().to_string();
        (s == "terminated").then_some(()).ok_or(s)
    });

    let (code, plan) = tf.plan_detailed_exitcode();
    let text = format!("{}{}", plan.stdout, plan.stderr);
    assert_eq!(
        code,
        2,
        "a stopped deployment is drift:\n{}",
        plan.describe()
    );
    assert!(
        text.contains("stopped outside Terraform") && text.contains("starts it again"),
        "the plan says why it changes:\n{}",
        plan.describe()
    );
    apply_clean(&tf, "bring it back");
    let state = tf.resource(&cfg.addr());
    assert_eq!(state["status"], "running", "state: {state}");
    let url = state["url"].as_str().expect("url").to_string();
    for seen in crate::workflow::seen_by_replicas(&url, "env=MODE", 4) {
        let seen: serde_json::Value = serde_json::from_str(&seen).expect("JSON");
        assert_eq!(
            seen["env"],
            json!({"MODE": "on"}),
            "every replica serves again"
        );
    }
    converged(
        &tf,
        &server,
        std::slice::from_ref(&cfg),
        "after bringing it back",
    );
    tf.destroy();
}

/// A bento that crashes a few seconds after it became ready: the deployment turns unhealthy
/// on its own after a successful apply, and stays so for the crash back-off before each
/// replacement (10 s, then 20 s, like the kubelet's `CrashLoopBackOff`). Plans then change
/// nothing (exit code 0) and warn with the status; the next apply of a real change still works.
pub fn failing_on_its_own_changes_no_plan(v: TfVersion) {
    let server = Server::start();
    server.bentos_add(
        "flaky:v1",
        &BentoBehaviour {
            crash_after_seconds: Some(2.0),
            ..Default::default()
        },
    );
    let name = dep_name("flaky", v);
    let cfg = Cfg {
        bento: "flaky:v1".into(),
        ..Cfg::new("app", &name)
    };
    let tf = Tf::new(v, &server);
    write_all(&tf, std::slice::from_ref(&cfg));
    tf.init();
    apply_clean(&tf, "create");
    // The second crash: its back-off (20 s) leaves the plan below ample time to see it.
    let mut seen: Vec<String> = Vec::new();
    let status = poll_until_seen("a second crash", Duration::from_secs(120), || {
        let s = server.must_get(CLUSTER, &name).status.as_str().to_string();
        if seen.last() != Some(&s) {
            seen.push(s.clone());
        }
        let crashes = seen.iter().filter(|s| *s == "unhealthy").count();
        (crashes == 2 && s == "unhealthy")
            .then(|| s.clone())
            .ok_or_else(|| seen.join(" -> "))
    });
    let (code, plan) = tf.plan_detailed_exitcode();
    let text = format!("{}{}", plan.stdout, plan.stderr);
    assert_eq!(
        code,
        0,
        "a deployment {status} on its own changes no plan:\n{}",
        plan.describe()
    );
    assert!(
        text.contains(&format!("is {status}")) && text.contains("crash"),
        "the plan warns with the status and the pods' reason:\n{}",
        plan.describe()
    );
    tf.destroy();
}
