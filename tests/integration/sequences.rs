//! Seeded random sequences of operations on three deployments, end to end: the
//! real Terraform CLI (1.11.4) and a real `bentocloud-local` process over real sockets.
//!
//! Each step is one of: an apply of a random configuration (bento version, envs, labels,
//! replicas, instance type, strategy; a deployment may leave the configuration and come back);
//! an out-of-band edit through the API (a read-modify-write PUT like the official client's, or
//! a raw body that leaves fields out); a terminate or a delete through the API; an apply under
//! injected faults; `kill -9` of the control plane in the middle of an apply, then a restart
//! on the same data dir and address; Ctrl-C (SIGINT to Terraform) in the middle of an apply; a
//! never-ready bento, then a good one; a deployment recreated outside Terraform with the
//! server's own settings (`"services": {}`) and imported.
//!
//! Invariants, checked after every step that ends in a successful apply:
//! - the apply that is expected to succeed succeeds; one that may fail (faults, kill -9,
//!   Ctrl-C, a never-ready bento) is followed by an apply that converges;
//! - `terraform plan -detailed-exitcode` exits 0;
//! - the server has exactly the configured deployments (no leak, none missing), each holding
//!   the configuration (every attribute set), settled (its latest revision rolled out and
//!   `running`), and the state equals the server (`assert_state_matches_server`);
//! - each endpoint serves only the configured bento, from the latest revision, with the
//!   configured envs (the replicas' `?env=` answer).
//!
//! Seeds: `SEED` (sequence `k` of a run uses `SEED + k`), else a random one, printed first;
//! `STEPS` steps per sequence (default 8), `SEQUENCES` sequences (default 2). A sequence's
//! operations and configurations come from its seed alone (every choice is drawn before the
//! step runs), so `SEED=<seed> SEQUENCES=1 STEPS=<n>` replays a failing one; timing on the
//! server (fault draws, rollout pace) can still differ between runs. `scripts/soak.sh` runs
//! more of them. A failing sequence does not stop the others: the test fails at the end with
//! every failing seed, its step and the command that replays it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value as Json};

use crate::background::Background;
use crate::harness::*;

const CLUSTER: &str = "local-east";
const RESOURCES: [&str; 3] = ["a", "b", "c"];
/// Bentos that start at once.
const GOOD: [&str; 3] = ["sq:v1", "sq:v2", "sq:v3"];
/// Starts in [`SLOW_START_S`]: an apply on it is still waiting when Ctrl-C or kill -9 comes.
const SLOW: &str = "sq:slow";
const SLOW_START_S: f64 = 5.0;
/// Never ready: its rollouts fail (after the server's progress deadline).
const BAD: &str = "sq:bad";
/// The server's rollout progress deadline: above [`SLOW_START_S`], short enough for the
/// never-ready bento to fail quickly.
const SERVER_CONFIG: &str = r#"{"timing":{"progress_deadline_ms":10000}}"#;
/// Env keys the configurations draw from (the endpoint check asks the replicas for each).
const ENV_KEYS: [&str; 3] = ["MODE", "LOG_LEVEL", "SEQ"];
const FAULTS_PATH: &str = "/api/local/v1/faults";

fn name_of(i: usize) -> String {
    format!("seq-{}", RESOURCES[i])
}

fn addr_of(i: usize) -> String {
    format!("bentocloud_deployment.{}", RESOURCES[i])
}

// ------------------------------------------------------------------------------------------
// Configurations
// ------------------------------------------------------------------------------------------

/// One deployment's block.
#[derive(Debug, Clone, PartialEq)]
struct DepCfg {
    bento: String,
    labels: BTreeMap<String, String>,
    envs: BTreeMap<String, String>,
    /// Render an empty `labels`/`envs` as `{}` (else left out): both mean none.
    empty_maps: bool,
    instance_type: Option<String>,
    min: Option<i64>,
    max: Option<i64>,
    strategy: Option<String>,
}

/// The configuration: each deployment's block, or `None` when it is not configured.
type Config = [Option<DepCfg>; 3];

fn random_map(rng: &mut StdRng, choices: &[(&str, &[&str])]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for (k, values) in choices {
        if rng.gen_bool(0.5) {
            let v = values.choose(rng).copied().unwrap_or_default();
            m.insert(k.to_string(), v.to_string());
        }
    }
    m
}

fn random_dep(rng: &mut StdRng, bento: &str) -> DepCfg {
    let labels = random_map(
        rng,
        &[
            ("team", &["ml", "nlp"]),
            ("env", &["dev", "prod"]),
            ("tier", &["a", "b"]),
        ],
    );
    let envs = random_map(
        rng,
        &[
            (ENV_KEYS[0], &["fast", "safe"]),
            (ENV_KEYS[1], &["info", "debug"]),
            (ENV_KEYS[2], &["1", "2", "3"]),
        ],
    );
    let instance_type = match rng.gen_range(0..3) {
        0 => None,
        1 => Some("cpu.1".to_string()),
        _ => Some("cpu.2".to_string()),
    };
    let (min, max) = match rng.gen_range(0..4) {
        0 => (None, None),
        1 => (Some(rng.gen_range(1..=2)), None),
        _ => {
            let min = rng.gen_range(1..=2);
            (Some(min), Some(min + rng.gen_range(0..=1)))
        }
    };
    let strategy = match rng.gen_range(0..4) {
        0 => Some("Recreate".to_string()),
        1 => Some("RollingUpdate".to_string()),
        _ => None,
    };
    DepCfg {
        bento: bento.to_string(),
        labels,
        envs,
        empty_maps: rng.gen_bool(0.5),
        instance_type,
        min,
        max,
        strategy,
    }
}

/// A random configuration: each deployment present with probability `present` (at least one
/// present), on a random good bento.
fn random_config(rng: &mut StdRng, present: f64) -> Config {
    let mut cfg: Config = [None, None, None];
    for slot in cfg.iter_mut() {
        let on = rng.gen_bool(present);
        let bento = GOOD.choose(rng).copied().unwrap_or(GOOD[0]);
        let dep = random_dep(rng, bento);
        if on {
            *slot = Some(dep);
        }
    }
    if cfg.iter().all(Option::is_none) {
        let i = rng.gen_range(0..3);
        let bento = GOOD.choose(rng).copied().unwrap_or(GOOD[0]);
        cfg[i] = Some(random_dep(rng, bento));
    }
    cfg
}

fn hcl_string_map(m: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = m.iter().map(|(k, v)| format!("{k:?} = {v:?}")).collect();
    format!("{{ {} }}", inner.join(", "))
}

fn render(cfg: &Config) -> String {
    let mut s = String::new();
    for (i, dep) in cfg.iter().enumerate() {
        let Some(d) = dep else { continue };
        s.push_str(&format!(
            "resource \"bentocloud_deployment\" {:?} {{\n  name  = {:?}\n  bento = {:?}\n",
            RESOURCES[i],
            name_of(i),
            d.bento
        ));
        for (attr, m) in [("labels", &d.labels), ("envs", &d.envs)] {
            if !m.is_empty() || d.empty_maps {
                s.push_str(&format!("  {attr} = {}\n", hcl_string_map(m)));
            }
        }
        if let Some(t) = &d.instance_type {
            s.push_str(&format!("  instance_type = {t:?}\n"));
        }
        if let Some(m) = d.min {
            s.push_str(&format!("  min_replicas = {m}\n"));
        }
        if let Some(m) = d.max {
            s.push_str(&format!("  max_replicas = {m}\n"));
        }
        if let Some(st) = &d.strategy {
            s.push_str(&format!("  deployment_strategy = {st:?}\n"));
        }
        // Bounds a wait that would hang; the sequences' rollouts take seconds.
        s.push_str(
            "  timeouts {\n    create = \"3m\"\n    update = \"3m\"\n    delete = \"3m\"\n  }\n",
        );
        s.push_str("}\n\n");
    }
    s
}

// ------------------------------------------------------------------------------------------
// Operations
// ------------------------------------------------------------------------------------------

/// An out-of-band change through the API.
#[derive(Debug, Clone)]
enum Edit {
    /// Read-modify-write, as the official client updates (`Server::update_from`).
    Envs(BTreeMap<String, String>),
    Labels(BTreeMap<String, String>),
    Bento(String),
    Scaling(i64, i64),
    /// A raw `PUT` body with only `bento` and one service's instance type and scaling: no
    /// envs, labels or secrets keys.
    RawPartial {
        bento: String,
        instance_type: String,
        replicas: i64,
    },
    /// A raw `PUT` body `{"bento": ..., "services": {}}`: the server chooses the rest.
    RawMinimal(String),
}

#[derive(Debug, Clone)]
enum Op {
    Apply(Config),
    /// An out-of-band edit of deployment `dep`; with `settle`, its rollout is awaited before
    /// the apply that must undo it.
    Edit {
        dep: usize,
        edit: Edit,
        settle: bool,
    },
    /// `POST .../terminate` of `dep`, then an apply of the same configuration.
    Terminate {
        dep: usize,
    },
    /// Terminate and delete `dep` through the API, then an apply.
    Delete {
        dep: usize,
    },
    /// An apply through injected faults (it may fail), then one without.
    UnderFaults {
        config: Config,
        seed: u64,
        rate: f64,
    },
    /// An apply moving `slow` to the slow bento, the control plane killed (-9) once the new
    /// revision exists, restarted; then an apply that converges.
    Kill9 {
        config: Config,
        slow: usize,
    },
    /// The same, with SIGINT to Terraform once the provider waits for the rollout.
    CtrlC {
        config: Config,
        slow: usize,
    },
    /// `bad` moves to a never-ready bento: the apply fails; then `fixed` applies.
    NeverReady {
        bad: Box<Config>,
        fixed: Box<Config>,
    },
    /// `dep` taken out of the state, deleted, created again through the API with
    /// `"services": {}` (the server's settings), imported, then the configuration applied.
    Import {
        dep: usize,
    },
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let which = |cfg: &Config| -> String {
            cfg.iter()
                .enumerate()
                .map(|(i, d)| match d {
                    Some(d) => format!("{}={}", RESOURCES[i], d.bento),
                    None => format!("{}=-", RESOURCES[i]),
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        match self {
            Op::Apply(c) => write!(f, "apply [{}]", which(c)),
            Op::Edit { dep, edit, settle } => write!(
                f,
                "out-of-band edit of {} {edit:?}{}",
                name_of(*dep),
                if *settle { ", rolled out" } else { "" }
            ),
            Op::Terminate { dep } => write!(f, "terminate {} through the API", name_of(*dep)),
            Op::Delete { dep } => write!(f, "delete {} through the API", name_of(*dep)),
            Op::UnderFaults { config, seed, rate } => write!(
                f,
                "apply [{}] under {:.0}% injected faults (seed {seed})",
                which(config),
                rate * 100.0
            ),
            Op::Kill9 { config, slow } => write!(
                f,
                "kill -9 of the control plane while applying [{}] ({} slow)",
                which(config),
                name_of(*slow)
            ),
            Op::CtrlC { config, slow } => write!(
                f,
                "Ctrl-C while applying [{}] ({} slow)",
                which(config),
                name_of(*slow)
            ),
            Op::NeverReady { bad, fixed } => write!(
                f,
                "never-ready bento [{}], then [{}]",
                which(bad),
                which(fixed)
            ),
            Op::Import { dep } => write!(
                f,
                "{} recreated through the API with the server's settings, imported",
                name_of(*dep)
            ),
        }
    }
}

/// Draws the next operation from `rng`, given the configuration applied last.
fn draw(rng: &mut StdRng, current: &Config) -> Op {
    let configured: Vec<usize> = (0..3).filter(|&i| current[i].is_some()).collect();
    let pick = |rng: &mut StdRng| configured.choose(rng).copied();
    // Weights: applies are the common case; each disruption comes now and then.
    let kind = rng.gen_range(0..14);
    match kind {
        0..=3 => Op::Apply(random_config(rng, 0.85)),
        4 | 5 => match pick(rng) {
            Some(dep) => {
                let edit = match rng.gen_range(0..6) {
                    0 => Edit::Envs(random_map(
                        rng,
                        &[(ENV_KEYS[0], &["oob"]), ("OOB", &["1", "2"])],
                    )),
                    1 => Edit::Labels(random_map(rng, &[("team", &["oob"]), ("oob", &["x"])])),
                    2 => Edit::Bento(GOOD.choose(rng).copied().unwrap_or(GOOD[0]).to_string()),
                    3 => Edit::Scaling(2, 3),
                    4 => Edit::RawPartial {
                        bento: GOOD.choose(rng).copied().unwrap_or(GOOD[0]).to_string(),
                        instance_type: "cpu.2".to_string(),
                        replicas: 2,
                    },
                    _ => Edit::RawMinimal(GOOD.choose(rng).copied().unwrap_or(GOOD[0]).to_string()),
                };
                Op::Edit {
                    dep,
                    edit,
                    settle: rng.gen_bool(0.5),
                }
            }
            None => Op::Apply(random_config(rng, 0.85)),
        },
        6 => match pick(rng) {
            Some(dep) => Op::Terminate { dep },
            None => Op::Apply(random_config(rng, 0.85)),
        },
        7 => match pick(rng) {
            Some(dep) => Op::Delete { dep },
            None => Op::Apply(random_config(rng, 0.85)),
        },
        8 | 9 => Op::UnderFaults {
            config: random_config(rng, 0.85),
            seed: rng.gen(),
            rate: [0.15, 0.3][rng.gen_range(0..2)],
        },
        10 | 11 => {
            let mut config = random_config(rng, 1.0);
            let slow = rng.gen_range(0..3);
            let mark: u32 = rng.gen();
            if let Some(d) = config[slow].as_mut() {
                d.bento = SLOW.to_string();
                // A new revision even when it already runs the slow bento.
                d.envs
                    .insert(ENV_KEYS[2].to_string(), format!("slow-{mark}"));
            }
            if kind == 10 {
                Op::Kill9 { config, slow }
            } else {
                Op::CtrlC { config, slow }
            }
        }
        12 => {
            let mut bad = random_config(rng, 1.0);
            let i = rng.gen_range(0..3);
            if let Some(d) = bad[i].as_mut() {
                d.bento = BAD.to_string();
            }
            let mut fixed = bad.clone();
            if let Some(d) = fixed[i].as_mut() {
                d.bento = GOOD.choose(rng).copied().unwrap_or(GOOD[0]).to_string();
            }
            Op::NeverReady {
                bad: Box::new(bad),
                fixed: Box::new(fixed),
            }
        }
        _ => match pick(rng) {
            Some(dep) => Op::Import { dep },
            None => Op::Apply(random_config(rng, 0.85)),
        },
    }
}

// ------------------------------------------------------------------------------------------
// Running a sequence
// ------------------------------------------------------------------------------------------

/// Where a sequence is (for the report when it fails).
#[derive(Debug, Clone, Default)]
struct Progress {
    step: usize,
    op: String,
    log: Vec<String>,
}

struct Run {
    seed: u64,
    server: Server,
    tf: Tf,
    config_dir: tempfile::TempDir,
    current: Config,
    /// Per deployment, the label keys out-of-band edits set: labels set elsewhere, which
    /// Terraform keeps unless it manages the key (see `check`).
    foreign_labels: std::cell::RefCell<BTreeMap<String, BTreeSet<String>>>,
}

impl Run {
    fn config_path(&self) -> String {
        self.config_dir
            .path()
            .join("platform.json")
            .to_string_lossy()
            .into_owned()
    }

    fn write(&self, cfg: &Config) {
        self.tf.write(&format!(
            "provider \"bentocloud\" {{\n  cluster = {CLUSTER:?}\n}}\n\n{}",
            render(cfg)
        ));
    }

    fn apply(&self) -> TfOutput {
        self.tf
            .run(&["apply", "-input=false", "-no-color", "-auto-approve"])
    }

    /// Applies `cfg`, which must succeed, then checks every invariant.
    fn apply_ok(&mut self, cfg: &Config, context: &str) {
        self.write(cfg);
        let out = self.apply();
        assert_eq!(
            out.code,
            0,
            "[seed {}] {context}: the apply failed:\n{}",
            self.seed,
            out.describe()
        );
        self.current = cfg.clone();
        self.check(context);
    }

    /// After an apply that may have failed: faults off, then the configuration applied again
    /// must converge.
    fn converge(&mut self, cfg: &Config, first: &TfOutput, context: &str) {
        eprintln!(
            "[seq {}] {context}: first apply exited {}",
            self.seed, first.code
        );
        self.write(cfg);
        let out = self.apply();
        assert_eq!(
            out.code,
            0,
            "[seed {}] {context}: the apply after (exit {}) did not converge:\n{}\n---- the first apply ----\n{}",
            self.seed,
            first.code,
            out.describe(),
            first.describe()
        );
        self.current = cfg.clone();
        self.check(context);
    }

    /// The invariants (see the module docs).
    fn check(&self, context: &str) {
        let ctx = format!("[seed {}] {context}", self.seed);
        let want: BTreeSet<String> = (0..3)
            .filter(|&i| self.current[i].is_some())
            .map(|i| format!("{CLUSTER}/{}", name_of(i)))
            .collect();
        assert_eq!(
            self.server.all_deployment_ids(),
            want,
            "{ctx}: the server has exactly the configured deployments"
        );
        let (code, plan) = self.tf.plan_detailed_exitcode();
        assert_eq!(
            code,
            0,
            "{ctx}: the plan after a successful apply is not empty:\n{}",
            plan.describe()
        );
        let state = self.tf.show_json();
        let in_state: BTreeSet<String> = state["values"]["root_module"]["resources"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| r["values"]["id"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(in_state, want, "{ctx}: deployments in the state");
        for (i, dep) in self.current.iter().enumerate() {
            let Some(d) = dep else { continue };
            let name = name_of(i);
            self.settled(&name, &ctx);
            let mut sv = view(&self.server.must_get(CLUSTER, &name));
            // Labels set elsewhere stay (Terraform manages the configured keys only): every
            // label the configuration lacks must come from an out-of-band edit; the rest must
            // be exactly the configuration's, on the server and in state.
            let foreign = self
                .foreign_labels
                .borrow()
                .get(&name)
                .cloned()
                .unwrap_or_default();
            for k in sv.labels.keys().filter(|k| !d.labels.contains_key(*k)) {
                assert!(
                    foreign.contains(k),
                    "{ctx}: {name} has label {k:?}, which neither the configuration nor an out-of-band edit set: {:?}",
                    sv.labels
                );
            }
            sv.labels.retain(|k, _| d.labels.contains_key(k));
            let st = find_resource(&state, &addr_of(i))
                .unwrap_or_else(|| panic!("{ctx}: {} is not in the state", addr_of(i)));
            harness_dep(i, d).assert_server_has(&sv, &ctx);
            if let Some(s) = &d.strategy {
                assert_eq!(
                    sv.strategy.as_deref(),
                    Some(s.as_str()),
                    "{ctx}: {name} strategy"
                );
            }
            assert_state_matches_server(&st, &lagging(&st, &sv), &ctx);
            self.serves(&st, d, &sv, &ctx);
        }
    }

    /// Until the latest revision of `name` has rolled out and the API says `running` (the
    /// status lags a successful apply by up to one sync); fails with what was seen.
    fn settled(&self, name: &str, ctx: &str) {
        poll_until_seen(
            &format!("{ctx}: {CLUSTER}/{name} settled on its latest revision"),
            Duration::from_secs(60),
            || {
                let v = self.server.local(CLUSTER, name);
                let ro = &v["rollout"];
                let ok = ro["phase"] == "complete"
                    && ro["live_status"] == "running"
                    && ro["serving_revision_uid"] == v["latest_revision"]["uid"]
                    && v["status"] == "running";
                if ok {
                    Ok(())
                } else {
                    Err(format!(
                        "status {} phase {} live {} serving {} latest {}",
                        v["status"],
                        ro["phase"],
                        ro["live_status"],
                        ro["serving_revision_uid"],
                        v["latest_revision"]["uid"]
                    ))
                }
            },
        );
    }

    /// The endpoint answers only from the configured bento and the latest revision, with the
    /// configured envs.
    fn serves(&self, st: &Json, d: &DepCfg, sv: &ServerView, ctx: &str) {
        let url = st["url"]
            .as_str()
            .unwrap_or_else(|| panic!("{ctx}: no url in the state of {}: {st}", sv.name));
        let query: Vec<String> = ENV_KEYS.iter().map(|k| format!("env={k}")).collect();
        let target = format!("{}/predict?{}", url.trim_end_matches('/'), query.join("&"));
        let want_env: Json = ENV_KEYS
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    d.envs.get(*k).map_or(Json::Null, |v| json!(v)),
                )
            })
            .collect::<serde_json::Map<String, Json>>()
            .into();
        for (status, body) in get_n(&target, 6) {
            assert_eq!(status, 200, "{ctx}: GET {target}: {body}");
            let b: Json = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{ctx}: GET {target}: not JSON ({e}): {body}"));
            assert_eq!(
                b["bento"],
                d.bento.as_str(),
                "{ctx}: bento serving {target}: {b}"
            );
            assert_eq!(
                b["revision"],
                sv.revision.as_str(),
                "{ctx}: revision serving {target}: {b}"
            );
            assert_eq!(b["env"], want_env, "{ctx}: envs the replicas see: {b}");
        }
    }

    fn set_faults(&self, cfg: &Json) {
        let (status, text) = self
            .server
            .request(reqwest::Method::PUT, FAULTS_PATH, Some(cfg));
        assert_eq!(status, 200, "PUT {FAULTS_PATH} {cfg}: {status}: {text}");
    }

    fn faults_off(&self) {
        let (status, text) = self
            .server
            .request(reqwest::Method::DELETE, FAULTS_PATH, None);
        assert_eq!(status, 200, "DELETE {FAULTS_PATH}: {status}: {text}");
    }

    fn step(&mut self, op: &Op, progress: &mut Progress) {
        let context = format!("step {} ({op})", progress.step);
        match op {
            Op::Apply(cfg) => self.apply_ok(cfg, &context),
            Op::Edit { dep, edit, settle } => {
                let name = name_of(*dep);
                self.edit(&name, edit);
                if *settle {
                    self.server.wait_rolled_out(CLUSTER, &name);
                }
                let cfg = self.current.clone();
                self.apply_ok(&cfg, &context);
            }
            Op::Terminate { dep } => {
                let name = name_of(*dep);
                let path = format!("/api/v2/deployments/{name}/terminate?cluster={CLUSTER}");
                let (status, text) = self.server.request(reqwest::Method::POST, &path, None);
                assert_eq!(status, 200, "POST {path}: {status}: {text}");
                let cfg = self.current.clone();
                self.apply_ok(&cfg, &context);
            }
            Op::Delete { dep } => {
                self.server.delete_deployment(CLUSTER, &name_of(*dep));
                let cfg = self.current.clone();
                self.apply_ok(&cfg, &context);
            }
            Op::UnderFaults { config, seed, rate } => {
                self.write(config);
                self.set_faults(
                    &json!({"seed": seed, "rules": [{"rate": rate, "phase": "both", "faults": [
                        {"kind": "error", "status": 500},
                        {"kind": "error", "status": 502},
                        {"kind": "error", "status": 503},
                        {"kind": "rate_limit", "retry_after_seconds": 1},
                        {"kind": "latency", "ms": 300},
                        {"kind": "drop"}
                    ]}]}),
                );
                let first = self.apply();
                self.faults_off();
                self.converge(config, &first, &context);
            }
            Op::Kill9 { config, slow } => {
                self.write(config);
                let before = self.server.get_deployment(CLUSTER, &name_of(*slow));
                let bg = Background::apply(&self.tf, "kill9");
                let name = name_of(*slow);
                poll_until_seen(
                    &format!("{context}: a revision of {name} on {SLOW}"),
                    Duration::from_secs(120),
                    || match self.server.get_deployment(CLUSTER, &name) {
                        Some(d)
                            if d.bento_tag().as_deref() == Some(SLOW)
                                && before.as_ref().map(|b| b.revision_uid())
                                    != Some(d.revision_uid()) =>
                        {
                            Ok(())
                        }
                        other => Err(format!(
                            "{:?}",
                            other.map(|d| (d.bento_tag(), d.status.as_str().to_string()))
                        )),
                    },
                );
                self.server.kill9();
                let cfg = self.config_path();
                self.server.restart_same_address(&["--config", &cfg]);
                let first = bg.finish(Duration::from_secs(300));
                self.converge(config, &first, &context);
            }
            Op::CtrlC { config, slow: _ } => {
                self.write(config);
                let bg = Background::apply(&self.tf, "ctrl-c");
                bg.await_provider_waiting(Duration::from_secs(120));
                bg.sigint_group();
                let first = bg.finish(Duration::from_secs(300));
                self.converge(config, &first, &context);
            }
            Op::NeverReady { bad, fixed } => {
                self.write(bad);
                let out = self.apply();
                assert_ne!(
                    out.code,
                    0,
                    "[seed {}] {context}: an apply on a never-ready bento succeeded:\n{}",
                    self.seed,
                    out.describe()
                );
                let text = format!("{}{}", out.stdout, out.stderr);
                assert!(
                    text.contains("did not become ready"),
                    "[seed {}] {context}: the failure carries the platform's reason:\n{}",
                    self.seed,
                    out.describe()
                );
                self.converge(fixed, &out, &context);
            }
            Op::Import { dep } => {
                let (i, name) = (*dep, name_of(*dep));
                self.tf.run_ok(&["state", "rm", "-no-color", &addr_of(i)]);
                self.server.delete_deployment(CLUSTER, &name);
                let bento = self.current[i]
                    .as_ref()
                    .map(|d| d.bento.clone())
                    .unwrap_or_else(|| GOOD[0].to_string());
                let body = json!({"name": name, "bento": bento, "services": {}});
                let path = format!("/api/v2/deployments?cluster={CLUSTER}");
                let (status, text) = self
                    .server
                    .request(reqwest::Method::POST, &path, Some(&body));
                assert_eq!(status, 200, "POST {path} {body}: {status}: {text}");
                let out = self.tf.run(&[
                    "import",
                    "-input=false",
                    "-no-color",
                    &addr_of(i),
                    &format!("{CLUSTER}/{name}"),
                ]);
                assert_eq!(
                    out.code,
                    0,
                    "[seed {}] {context}: import failed:\n{}",
                    self.seed,
                    out.describe()
                );
                let cfg = self.current.clone();
                self.apply_ok(&cfg, &context);
            }
        }
    }

    fn edit(&self, name: &str, edit: &Edit) {
        let path = format!("/api/v2/deployments/{name}?cluster={CLUSTER}");
        let put = |body: Json| {
            let (status, text) = self
                .server
                .request(reqwest::Method::PUT, &path, Some(&body));
            assert_eq!(status, 200, "PUT {path} {body}: {status}: {text}");
        };
        match edit {
            Edit::Envs(m) => {
                self.server.update_from(CLUSTER, name, |r| {
                    r.envs = Some(
                        m.iter()
                            .map(|(k, v)| bentocloud::api::EnvItem {
                                name: k.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                    )
                });
            }
            Edit::Labels(m) => {
                self.foreign_labels
                    .borrow_mut()
                    .entry(name.to_string())
                    .or_default()
                    .extend(m.keys().cloned());
                self.server.update_from(CLUSTER, name, |r| {
                    r.labels = Some(
                        m.iter()
                            .map(|(k, v)| bentocloud::api::LabelItem {
                                key: k.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                    )
                });
            }
            Edit::Bento(b) => {
                self.server
                    .update_from(CLUSTER, name, |r| r.bento = b.clone());
            }
            Edit::Scaling(min, max) => {
                self.server.update_from(CLUSTER, name, |r| {
                    for s in r.services.values_mut() {
                        s.scaling = Some(bentocloud::api::Scaling {
                            min_replicas: Some(*min),
                            max_replicas: Some(*max),
                            policy: None,
                        });
                    }
                });
            }
            Edit::RawPartial {
                bento,
                instance_type,
                replicas,
            } => put(json!({
                "bento": bento,
                "services": {"apiserver": {
                    "instance_type": instance_type,
                    "scaling": {"min_replicas": replicas, "max_replicas": replicas}
                }}
            })),
            Edit::RawMinimal(bento) => put(json!({"bento": bento, "services": {}})),
        }
    }
}

/// `sv` with the status the state holds when that is the server's previous one: a deployment
/// the apply did not change is refreshed with the status the API reported then, and the API's
/// status lags the rollout by up to a sync (`deploying` while the pods already serve), so the
/// state may say `deploying` for a deployment that the server, a moment later, says `running`.
/// Any other difference stays one.
fn lagging(st: &Json, sv: &ServerView) -> ServerView {
    let mut sv = sv.clone();
    if sv.status == "running" && st["status"] == "deploying" {
        sv.status = "deploying".to_string();
    }
    sv
}

/// The harness's view of one configured block, for `Dep::assert_server_has`.
fn harness_dep(i: usize, d: &DepCfg) -> Dep {
    let mut dep = Dep::new(RESOURCES[i], &name_of(i), &d.bento).cluster(CLUSTER);
    dep.labels = d.labels.clone().into_iter().collect();
    dep.envs = d.envs.clone().into_iter().collect();
    dep.instance_type = d.instance_type.clone();
    dep.min = d.min;
    dep.max = d.max;
    dep
}

/// `n` GETs of `url` (new connections each, so several replicas answer): (status, body).
fn get_n(url: &str, n: usize) -> Vec<(u16, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let mut out = Vec::new();
        for _ in 0..n {
            match client.get(url).send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    out.push((status, r.text().await.unwrap_or_default()));
                }
                Err(e) => out.push((0, e.to_string())),
            }
        }
        out
    })
}

/// One sequence of `steps` operations from `seed`; `progress` says where it got to.
fn sequence(seed: u64, steps: usize, progress: &mut Progress) {
    let mut rng = StdRng::seed_from_u64(seed);
    let config_dir = temp_dir("seq-config-");
    let config_path = config_dir.path().join("platform.json");
    std::fs::write(&config_path, SERVER_CONFIG).expect("write server config");
    let server = Server::start_process(&["--config", &config_path.to_string_lossy()]);
    for tag in GOOD {
        server.bentos_add(tag, &BentoBehaviour::default());
    }
    server.bentos_add(
        SLOW,
        &BentoBehaviour {
            startup_seconds: Some(SLOW_START_S),
            ..Default::default()
        },
    );
    server.bentos_add(
        BAD,
        &BentoBehaviour {
            unready: true,
            ..Default::default()
        },
    );
    let mut tf = Tf::new(TfVersion::V1_11, &server);
    // SEQ_PROVIDER_LOG=DIR: the provider's DEBUG log of every command of the sequence in
    // DIR/seq-<seed>.log (for diagnosing a failing seed).
    if let Some(dir) = std::env::var_os("SEQ_PROVIDER_LOG").filter(|d| !d.is_empty()) {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create SEQ_PROVIDER_LOG");
        let path = dir.join(format!("seq-{seed}.log"));
        let _ = std::fs::remove_file(&path);
        eprintln!("[seq {seed}] provider log: {}", path.display());
        tf.env.push(("TF_LOG_PROVIDER".into(), "DEBUG".into()));
        tf.env
            .push(("TF_LOG_PATH".into(), path.to_string_lossy().into_owned()));
    }
    let mut run = Run {
        seed,
        server,
        tf,
        config_dir,
        current: [None, None, None],
        foreign_labels: Default::default(),
    };
    run.write(&run.current.clone());
    run.tf.init();

    // Step 0: the three deployments, so every operation has something to act on.
    progress.step = 0;
    let first = random_config(&mut rng, 1.0);
    progress.op = Op::Apply(first.clone()).to_string();
    eprintln!("[seq {seed}] step 0: {}", Op::Apply(first.clone()));
    run.apply_ok(&first, "step 0 (the first apply)");
    progress.log.push(format!("0: {}", Op::Apply(first)));

    for step in 1..=steps {
        let op = draw(&mut rng, &run.current);
        progress.step = step;
        progress.op = op.to_string();
        eprintln!("[seq {seed}] step {step}: {op}");
        let started = Instant::now();
        run.step(&op, progress);
        eprintln!(
            "[seq {seed}] step {step} ok in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        progress.log.push(format!("{step}: {op}"));
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    if v.is_empty() {
        return None;
    }
    Some(
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}")),
    )
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_string()
    }
}

/// `SEQUENCES` sequences (default `sequences`) of `STEPS` steps (default `steps`) from `SEED`
/// (else a random seed, printed first). Fails at the end with every failing seed.
pub fn run_sequences(sequences: u64, steps: usize) {
    let base = env_u64("SEED").unwrap_or_else(|| rand::thread_rng().gen());
    let sequences = env_u64("SEQUENCES").unwrap_or(sequences);
    let steps = env_u64("STEPS").map_or(steps, |s| s as usize);
    eprintln!(
        "[seq] SEED={base} SEQUENCES={sequences} STEPS={steps} (replay: SEED={base} \
         SEQUENCES={sequences} STEPS={steps} bash scripts/soak.sh)"
    );
    let mut failures = Vec::new();
    let started = Instant::now();
    for k in 0..sequences {
        let seed = base.wrapping_add(k);
        let mut progress = Progress::default();
        eprintln!("[seq {seed}] sequence {} of {sequences}", k + 1);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            sequence(seed, steps, &mut progress)
        }));
        match result {
            Ok(()) => eprintln!("[seq {seed}] passed: {} steps", steps),
            Err(p) => {
                let text = panic_text(p.as_ref());
                eprintln!(
                    "[seq {seed}] FAILED at step {} ({}): {}",
                    progress.step,
                    progress.op,
                    text.lines().next().unwrap_or_default()
                );
                failures.push(format!(
                    "seed {seed}, step {} of {steps}: {}\n  replay: SEED={seed} SEQUENCES=1 \
                     STEPS={} bash scripts/soak.sh\n  steps before: {}\n  {}",
                    progress.step,
                    progress.op,
                    progress.step,
                    if progress.log.is_empty() {
                        "none".to_string()
                    } else {
                        progress.log.join("; ")
                    },
                    text
                ));
            }
        }
    }
    eprintln!(
        "[seq] {sequences} sequences of {steps} steps in {:.0}s, {} failed",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {sequences} sequences failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// CI's bounded run: 2 sequences of 8 steps on Terraform 1.11.4 (`SEED`, `SEQUENCES`,
/// `STEPS` override; `scripts/soak.sh` runs more).
#[test]
fn random_sequences_tf1_11() {
    run_sequences(2, 8);
}
