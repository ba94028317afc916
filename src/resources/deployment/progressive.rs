//! Progressive delivery of a bento change (`progressive_rollout`): the new bento runs as a
//! canary version (`canary`) beside the serving one, whose target is sent back unchanged; each
//! step sets the canary's weight, waits for its pods, and bakes while judging it; then the
//! caller promotes (the update itself, which removes the canary and rolls the deployment onto
//! the bento like any rolling update).
//!
//! What a step judges is only what the real platform gives (API doc §10): the canary's pods
//! from the pods stream (flagged `is_canary`, labelled with their bento version) and, with
//! `analysis.probe_path`, answers to probe requests the provider sends through the
//! deployment's endpoint, routed to the canary by header or query. A failing check, a
//! timeout, or Ctrl-C removes the canary (an unsupervised canary must not keep taking
//! traffic) and fails the apply; state keeps the bento that serves.
//!
//! The pure rules (settings, pod and probe judges) are in [`judge`].

mod judge;

use std::collections::BTreeMap;
use std::time::Duration;

use tf_provider::value::Value;
use tf_provider::Diagnostics;
use tokio::time::Instant;

use super::model::{DeploymentState, Private, PROGRESSIVE_VERSION};
use super::rollout::{timeout_of, Operation, Update};
use super::{convert, Deployments};
use crate::api::{Canary, CanaryVersion, Deployment, EnvItem};
use crate::client::ProbeRoute;
use crate::rules::BentoTag;
use judge::{Failure, PodWatch, PodsSay, ProbeResult, ProbeTally, Settings};

/// How often a step looks at the canary's pods while it bakes (an abort on the pods' evidence
/// comes at most this long after the platform shows it).
const POLL: Duration = Duration::from_secs(1);
/// How often a step looks while the canary's pods are not all ready yet: the bake starts this
/// close to their readiness.
const READY_POLL: Duration = Duration::from_millis(250);
/// Consecutive unreadable pod lists a step tolerates (the pods stream is its evidence).
const MAX_POD_READ_ERRORS: u32 = 5;

/// Why the steps stopped before promotion.
enum Stop {
    Failed(Failure),
    Interrupted,
    TimedOut,
    /// The API refused or failed a call of the steps themselves.
    Api(String),
}

/// The canary one step runs.
struct Step<'a> {
    index: usize,
    of: usize,
    weight: i64,
    bento: &'a str,
    version: &'a str,
}

impl Deployments {
    /// Runs the canary steps of `up`'s bento change over `server` (the deployment as read
    /// before the update). `Ok`: the deployment after the last step (the canary still at its
    /// last weight), for the caller to promote. `Err`: the state to leave, with the
    /// diagnostic: the canary removed, the serving bento in state.
    pub(super) async fn deliver_progressively(
        &self,
        diags: &mut Diagnostics,
        up: &Update<'_>,
        server: Deployment,
    ) -> Result<Deployment, (DeploymentState, Private)> {
        let (prior, planned) = (up.prior, up.planned);
        let left = |d: &Deployment| (convert::state_from_server(d, prior, false), Private::Null);
        let Some(cfg) = planned
            .settings
            .progressive_rollout
            .as_ref_option()
            .and_then(Settings::of)
        else {
            return Ok(server);
        };
        let client = &up.configured.client;
        let Some((_, tag)) = self.resolve_bento(diags, client, planned).await else {
            return Err(left(&server));
        };
        let version = BentoTag::of(&tag).version.unwrap_or_default();
        // The body of every step: the deployment as it serves (its own target unchanged, as
        // the refreshed prior state describes it) plus the canary.
        let entry = self.entry_service_of(client, &server).await;
        let mut body =
            convert::update_request(prior, &server, &entry, None, convert::managed_keys(prior));
        let original_canary = server.canary();
        let deadline = Instant::now() + timeout_of(planned, Operation::Update);
        let mut last = server;
        let n = cfg.steps.len();
        for (index, weight) in cfg.steps.iter().copied().enumerate() {
            let step = Step {
                index,
                of: n,
                weight,
                bento: &tag,
                version: &version,
            };
            body.canary = Some(canary_of(&cfg, &step, planned));
            tracing::info!(
                "progressive rollout of {}: step {}/{}: canary {} at {}% ({} routing)",
                up.id,
                index + 1,
                n,
                tag,
                weight,
                cfg.route_type
            );
            let outcome = match client.update_deployment(&up.cluster, &up.name, &body).await {
                Ok(d) => {
                    last = d;
                    self.run_step(up, &cfg, &step, &last, deadline).await
                }
                Err(e) => Err(Stop::Api(e.to_string())),
            };
            if let Err(stop) = outcome {
                body.canary = original_canary;
                let removed = client.update_deployment(&up.cluster, &up.name, &body).await;
                let removed_ok = removed.is_ok();
                if let Ok(d) = removed {
                    last = client.with_bento_manifest(d).await;
                }
                report_abort(diags, up, &step, &stop, removed_ok);
                return Err(left(&last));
            }
        }
        tracing::info!(
            "progressive rollout of {}: every step passed; promoting {}",
            up.id,
            tag
        );
        Ok(client.with_bento_manifest(last).await)
    }

    /// One step: waits for the canary's pods to be ready, then bakes for `bake_time`, judging
    /// the pods at every look and the probes as they come.
    async fn run_step(
        &self,
        up: &Update<'_>,
        cfg: &Settings,
        step: &Step<'_>,
        deployment: &Deployment,
        deadline: Instant,
    ) -> Result<(), Stop> {
        let client = &up.configured.client;
        let cancel = self.shared.cancellation();
        let started = Instant::now();
        let mut watch = PodWatch::default();
        let mut tally = ProbeTally::default();
        let mut ready_at: Option<Instant> = None;
        let mut next_probe = Instant::now();
        let mut read_errors = 0;
        let url = deployment
            .urls
            .as_ref()
            .and_then(|u| u.first())
            .cloned()
            .or_else(|| up.prior.reported.url.as_ref_option().cloned())
            .unwrap_or_default();
        let bearer = up.planned.spec.access_authorization == Value::Value(true);
        loop {
            if cancel.is_cancelled() {
                return Err(Stop::Interrupted);
            }
            if Instant::now() >= deadline {
                return Err(Stop::TimedOut);
            }
            match client.deployment_pods(&up.cluster, &up.name).await {
                Ok(pods) => {
                    read_errors = 0;
                    let now = started.elapsed();
                    match watch.observe(
                        &pods,
                        step.version,
                        now,
                        cfg.unready_grace,
                        cfg.max_restarts,
                    ) {
                        PodsSay::Failed(f) => return Err(Stop::Failed(f)),
                        PodsSay::Ready { ready } if ready_at.is_none() => {
                            ready_at = Some(Instant::now());
                            tracing::info!(
                                "progressive rollout of {}: step {}/{}: {} canary pods ready; baking {}s",
                                up.id,
                                step.index + 1,
                                step.of,
                                ready,
                                cfg.bake_time.as_secs()
                            );
                        }
                        _ => {}
                    }
                }
                Err(e) => {
                    read_errors += 1;
                    if read_errors >= MAX_POD_READ_ERRORS {
                        return Err(Stop::Failed(Failure {
                            check: "pods",
                            evidence: format!("the canary's pods cannot be read: {e}"),
                        }));
                    }
                }
            }
            if let (Some(probe), Some(_)) = (&cfg.probe, ready_at) {
                if Instant::now() >= next_probe && !url.is_empty() {
                    let target = format!("{}{}", url.trim_end_matches('/'), probe.path);
                    let by = cfg.route_by.as_deref().unwrap_or_default();
                    let route = if cfg.route_type == "query" {
                        ProbeRoute::Query {
                            name: by,
                            value: PROGRESSIVE_VERSION,
                        }
                    } else {
                        ProbeRoute::Header {
                            name: by,
                            value: PROGRESSIVE_VERSION,
                        }
                    };
                    let sent = Instant::now();
                    // Past max_latency the answer is a failure anyway; wait a little longer
                    // so the failure says how slow it was.
                    let outcome = client
                        .probe(&target, &route, bearer, probe.max_latency * 2)
                        .await;
                    tally.record(
                        &ProbeResult {
                            outcome,
                            took: sent.elapsed(),
                        },
                        probe.max_latency,
                    );
                    tally
                        .verdict(probe.max_failure_rate)
                        .map_err(Stop::Failed)?;
                    next_probe = sent + probe.interval;
                }
            }
            if let Some(at) = ready_at {
                if at.elapsed() >= cfg.bake_time {
                    tracing::info!(
                        "progressive rollout of {}: step {}/{} ({}%) passed: {} probes, {} failed",
                        up.id,
                        step.index + 1,
                        step.of,
                        step.weight,
                        tally.sent,
                        tally.failed
                    );
                    return Ok(());
                }
            }
            let mut pause = if ready_at.is_some() { POLL } else { READY_POLL };
            if let Some(at) = ready_at {
                // Wake at the end of the bake, not at the next look past it.
                pause = pause.min((at + cfg.bake_time).saturating_duration_since(Instant::now()));
                if cfg.probe.is_some() {
                    pause = pause.min(next_probe.saturating_duration_since(Instant::now()));
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = cancel.cancelled() => return Err(Stop::Interrupted),
            }
        }
    }
}

/// The body's canary for a step: one version, [`PROGRESSIVE_VERSION`], with the new bento,
/// the step's weight and the planned environment.
fn canary_of(cfg: &Settings, step: &Step<'_>, planned: &DeploymentState) -> Canary {
    let envs: Vec<EnvItem> = planned
        .spec
        .envs
        .as_ref_option()
        .into_iter()
        .flatten()
        .map(|(k, v)| EnvItem {
            name: k.clone(),
            value: v.as_ref_option().cloned().unwrap_or_default(),
        })
        .collect();
    let secrets: Vec<String> = planned
        .spec
        .secrets
        .as_ref_option()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_ref_option().cloned())
        .collect();
    Canary {
        route_type: Some(cfg.route_type.clone()),
        route_by: cfg.route_by.clone(),
        versions: Some(BTreeMap::from([(
            PROGRESSIVE_VERSION.to_string(),
            CanaryVersion {
                bento: Some(step.bento.to_string()),
                weight: Some(step.weight),
                envs: Some(envs),
                secrets: Some(secrets),
                services: BTreeMap::new(),
            },
        )])),
    }
}

/// The error of an aborted progressive rollout: the step, the check and its evidence, and
/// whether the canary was removed.
fn report_abort(
    diags: &mut Diagnostics,
    up: &Update<'_>,
    step: &Step<'_>,
    stop: &Stop,
    removed: bool,
) {
    let serving = up
        .prior
        .reported
        .deployed_bento
        .as_ref_option()
        .cloned()
        .unwrap_or_default();
    let why = match stop {
        Stop::Failed(f) => format!("check `{}` failed: {}", f.check, f.evidence),
        Stop::Interrupted => "interrupted: Terraform asked the provider to stop".to_string(),
        Stop::TimedOut => "timed out: `timeouts.update` passed".to_string(),
        Stop::Api(e) => format!("the step could not be submitted: {e}"),
    };
    let canary = if removed {
        "The canary was removed (an unsupervised canary must not keep taking traffic)"
    } else {
        "The canary could NOT be removed: remove it with `bentoml deployment update` or the console"
    };
    tracing::warn!(
        "progressive rollout of {} aborted at step {}/{}: {why}",
        up.id,
        step.index + 1,
        step.of
    );
    diags.root_error(
        format!(
            "Progressive rollout of {} aborted at step {} of {} ({}%)",
            up.id,
            step.index + 1,
            step.of,
            step.weight
        ),
        format!(
            "{} ran as a canary at {}% (step {} of {}): {why}. {canary}; the deployment itself never changed and still serves {serving}, and state keeps it, so the next plan shows the change again.",
            step.bento,
            step.weight,
            step.index + 1,
            step.of
        ),
    );
}
