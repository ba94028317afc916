//! `bentocloud_deployment`: create, read, update, delete and import of one BentoCloud
//! deployment, translating plan diffs into API calls and waiting for the submitted revision.
//!
//! The shape (state and schema) lives in `model`, the pure plan rules in `plan`, the
//! state/document translation in `convert`. This file holds the side effects, and keeps the
//! promises that make state honest:
//! - once the API has created a deployment, create always returns state (tainted on error), so
//!   nothing is orphaned;
//! - a failed update records what the server really serves, so the next plan shows the change
//!   again;
//! - read drops a deployment that no longer exists.

pub mod convert;
pub mod model;
pub mod plan;
#[cfg(test)]
mod properties;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, Resource};
use tokio_util::sync::CancellationToken;

use crate::api::Deployment;
use crate::client::Client;
use crate::diag;
use crate::rules::BentoTag;
use crate::shared::{Configured, Shared};
use crate::wait::{self, Submitted, WaitError, WaitOptions};
use convert::DEFAULT_ENTRY_SERVICE;
use model::{
    DeploymentState, LastApply, Private, Settings, DEFAULT_DELETE_TIMEOUT, DEFAULT_ROLLOUT_TIMEOUT,
};

/// The resource. Holds the provider's shared slot and a small plan-time cache of server facts
/// (instance types per cluster, bentos known to exist) so a plan of many deployments does not
/// ask the same question many times.
pub struct DeploymentResource {
    shared: Arc<Shared>,
    instance_types: Mutex<HashMap<String, Vec<String>>>,
    default_cluster: Mutex<Option<String>>,
}

impl DeploymentResource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            instance_types: Mutex::new(HashMap::new()),
            default_cluster: Mutex::new(None),
        }
    }
}

/// (cluster, name) of a state: from `cluster`/`name`, else parsed from `id`.
fn locate(state: &DeploymentState) -> Option<(String, String)> {
    if let (Value::Value(c), Value::Value(n)) = (&state.location.cluster, &state.location.name) {
        return Some((c.clone(), n.clone()));
    }
    let id = state.location.id.as_ref_option()?;
    let (c, n) = id.split_once('/')?;
    Some((c.to_string(), n.to_string()))
}

/// The operations with a `timeouts` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Create,
    Update,
    Delete,
}

/// The timeout of `op`: its `timeouts` entry, else its default ([`DEFAULT_ROLLOUT_TIMEOUT`]
/// for create and update, [`DEFAULT_DELETE_TIMEOUT`] for delete).
fn timeout_of(state: &DeploymentState, op: Operation) -> Duration {
    let text = state.settings.timeouts.as_ref_option().and_then(|t| {
        match op {
            Operation::Create => &t.create,
            Operation::Update => &t.update,
            Operation::Delete => &t.delete,
        }
        .as_ref_option()
        .cloned()
    });
    let default = match op {
        Operation::Create | Operation::Update => DEFAULT_ROLLOUT_TIMEOUT,
        Operation::Delete => DEFAULT_DELETE_TIMEOUT,
    };
    text.and_then(|t| crate::duration::parse_go_duration(&t).ok())
        .or_else(|| crate::duration::parse_go_duration(default).ok())
        .unwrap_or(Duration::from_secs(1800))
}

fn allows_scale_to_zero(state: &DeploymentState) -> bool {
    state.spec.entry.min_replicas == Value::Value(0)
}

/// Waits for the `submitted` revision of the deployment (judged as `crate::wait` describes),
/// with the state's timeout, the provider's settle window and a cancellation token.
async fn wait_for(
    configured: &Configured,
    cluster: &str,
    name: &str,
    submitted: &Submitted,
    state: &DeploymentState,
    op: Operation,
    cancel: CancellationToken,
) -> Result<Deployment, WaitError> {
    let timeout = timeout_of(state, op);
    wait_with(configured, cluster, name, submitted, state, timeout, cancel).await
}

async fn wait_with(
    configured: &Configured,
    cluster: &str,
    name: &str,
    submitted: &Submitted,
    state: &DeploymentState,
    timeout: Duration,
    cancel: CancellationToken,
) -> Result<Deployment, WaitError> {
    let opts = WaitOptions {
        timeout,
        cancel,
        status_sync_period: configured.status_sync_period,
        pod_evidence: std::env::var_os(WAIT_WITHOUT_PODS_ENV).is_none(),
        ..WaitOptions::default()
    };
    let src = wait::ClientSource::new(configured.client.clone(), cluster, name);
    wait::wait_for_revision(&src, submitted, allows_scale_to_zero(state), &opts).await
}

/// Set (to anything) by the benchmark only (`scripts/bench/bench.py`, the baseline of its
/// rollout-wait rows): rollout waits do not judge the pods, so the status and the settle
/// window alone decide, as before they did. Not a user setting; undocumented on purpose.
const WAIT_WITHOUT_PODS_ENV: &str = "BENTOCLOUD_BENCH_WAIT_WITHOUT_PODS";

/// What applying `planned` over `prior` asks of the replicas, for the rollout wait: a
/// scaling-only change adds or removes replicas ([`wait::Change::Scale`]); anything else, a
/// redeploy, or starting a stopped deployment again replaces them ([`wait::Change::Restart`]).
fn change_of(prior: &DeploymentState, planned: &DeploymentState) -> wait::Change {
    let external = planned.settings.bento_managed_externally == Value::Value(true);
    let stopped = matches!(
        prior.reported.status.as_ref_option().map(String::as_str),
        Some("terminated" | "terminating")
    );
    if prior.settings.redeploy_requested(&planned.settings)
        || stopped
        || prior.spec.restarts_replicas(&planned.spec, external)
    {
        wait::Change::Restart
    } else {
        wait::Change::Scale
    }
}

/// How long the provider waits for a rollback after Terraform asked it to stop (Ctrl-C) with
/// `rollback_on_interrupt`: long enough for a fast rollout, short enough that a user waiting
/// for Terraform to exit is not kept waiting (a second Ctrl-C kills the provider anyway).
const INTERRUPT_ROLLBACK_WAIT: Duration = Duration::from_secs(60);

/// What a rollback achieved.
enum RollBack {
    /// Waited for to the end (serving, or failed with its diagnostic): the server as last seen.
    Done(Deployment),
    /// Submitted, not confirmed within the deadline: the server as last seen.
    Unconfirmed(Deployment),
    /// Not submitted (diagnostics say why).
    NotSubmitted,
}

/// [`wait_for`] of an update with its own deadline (`None`: the update timeout) and a fresh
/// cancellation token: used once Terraform has already asked the provider to stop.
async fn wait_for_within(
    configured: &Configured,
    cluster: &str,
    name: &str,
    submitted: &Submitted,
    state: &DeploymentState,
    deadline: Option<Duration>,
) -> Result<Deployment, WaitError> {
    let timeout = deadline.unwrap_or_else(|| timeout_of(state, Operation::Update));
    let cancel = CancellationToken::new();
    wait_with(configured, cluster, name, submitted, state, timeout, cancel).await
}

/// The private state after a wait ended with `err`: an interrupted or timed-out wait leaves
/// its revision unconfirmed, so the next apply resumes waiting for it; a failed rollout
/// leaves its revision marked failed, so the next apply re-submits the configuration.
fn private_after(err: &WaitError, revision: &str) -> Private {
    match err {
        WaitError::Cancelled { .. } | WaitError::TimedOut { .. } => model::unconfirmed(revision),
        WaitError::Failed { .. } => model::failed(revision),
        WaitError::Api(_) => Private::Null,
    }
}

/// Honest state after a failed rollout: the managed attributes (the whole [`model::Spec`]) keep
/// what `serving` had (the previous revision keeps serving), the computed ones show the
/// server's status and revision, so the next plan shows the change again.
fn state_after_failure(server: &Deployment, serving: &DeploymentState) -> DeploymentState {
    let mut s = convert::state_from_server(server, serving, false);
    s.spec = serving.spec.clone();
    s
}

impl DeploymentResource {
    /// The organisation's default cluster (`is_first`), asked once per provider process, so a
    /// new deployment's plan shows its real cluster and id, and its instance type is checked
    /// against that cluster at plan time. `None` when the server does not say.
    async fn server_default_cluster(&self, client: &Client) -> Option<String> {
        if let Some(c) = self.default_cluster.lock().ok().and_then(|g| g.clone()) {
            return Some(c);
        }
        let clusters = match client.list_clusters().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("cannot list clusters to find the default one: {e}");
                return None;
            }
        };
        let found = crate::api::default_cluster(&clusters).map(|c| c.meta.name.clone())?;
        if let Ok(mut g) = self.default_cluster.lock() {
            *g = Some(found.clone());
        }
        Some(found)
    }

    /// Plan-time checks that need the server: the cluster exists and the instance types are
    /// offered there. Asked only for values that changed, and cached per cluster.
    async fn check_against_server(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        planned: &DeploymentState,
        prior: Option<&DeploymentState>,
    ) {
        let Value::Value(cluster) = &planned.location.cluster else {
            return;
        };
        let mut wanted: Vec<(AttributePath, String)> = Vec::new();
        if let Value::Value(it) = &planned.spec.entry.instance_type {
            if prior.map(|p| &p.spec.entry.instance_type) != Some(&planned.spec.entry.instance_type)
            {
                wanted.push((AttributePath::new("instance_type"), it.clone()));
            }
        }
        for (i, svc) in planned
            .spec
            .service
            .as_ref_option()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let unchanged = prior
                .and_then(|p| p.spec.service.as_ref_option())
                .is_some_and(|blocks| {
                    blocks.iter().any(|b| {
                        b.name == svc.name && b.settings.instance_type == svc.settings.instance_type
                    })
                });
            if let (Value::Value(it), false) = (&svc.settings.instance_type, unchanged) {
                wanted.push((
                    AttributePath::new("service")
                        .index(i as i64)
                        .attribute("instance_type"),
                    it.clone(),
                ));
            }
        }
        let cluster_changed = prior.map(|p| &p.location.cluster) != Some(&planned.location.cluster);
        if wanted.is_empty() && !cluster_changed {
            return;
        }
        let cached = self
            .instance_types
            .lock()
            .ok()
            .and_then(|m| m.get(cluster).cloned());
        let offered = match cached {
            Some(v) => v,
            None => match client.list_instance_types(cluster).await {
                Ok(list) => {
                    let names: Vec<String> = list.into_iter().map(|t| t.meta.name).collect();
                    if let Ok(mut m) = self.instance_types.lock() {
                        m.insert(cluster.clone(), names.clone());
                    }
                    names
                }
                Err(e) if e.is_not_found() => {
                    diag::unknown_cluster(diags, cluster, &e);
                    return;
                }
                Err(e) => {
                    tracing::debug!("plan-time instance type check skipped: {e}");
                    return;
                }
            },
        };
        for (path, it) in wanted {
            if !offered.iter().any(|o| o == &it) {
                diag::unknown_instance_type(diags, cluster, &it, &offered, path);
            }
        }
    }

    /// The bento `planned` names, as `(entry service, repo:version)`: the entry service from
    /// the bento's manifest (`GET /api/v1/bento_repositories/{repo}/bentos/{version}`, or the
    /// newest of the repository when no version is given, as the official client resolves it,
    /// API doc §2.2), and the version that resolved to. Also checks `service` blocks name
    /// services the bento has, other than its entry service. `None` (with diagnostics) when the
    /// tag is invalid, the bento cannot be found or read, or a `service` block is wrong.
    async fn resolve_bento(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        planned: &DeploymentState,
    ) -> Option<(String, String)> {
        let tag = planned
            .spec
            .bento
            .as_ref_option()
            .cloned()
            .unwrap_or_default();
        let BentoTag { repo, version } = match BentoTag::parse(&tag) {
            Ok(x) => x,
            Err(why) => {
                diag::invalid_bento(diags, why);
                return None;
            }
        };
        let bento = match client.resolve_bento(&repo, version.as_deref()).await {
            Ok(b) => b,
            Err(e) => {
                diag::bento_lookup_failed(diags, &tag, &e);
                return None;
            }
        };
        let resolved = format!("{}:{}", bento.repository.meta.name, bento.version);
        let manifest = bento.manifest.unwrap_or_default();
        let entry = if manifest.entry_service.is_empty() {
            DEFAULT_ENTRY_SERVICE.to_string()
        } else {
            manifest.entry_service.clone()
        };
        let known = manifest.service_names();
        for (i, svc) in planned
            .spec
            .service
            .as_ref_option()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Value::Value(name) = &svc.name else {
                continue;
            };
            let path = AttributePath::new("service")
                .index(i as i64)
                .attribute("name");
            if name == &entry {
                diag::entry_service_in_service_block(diags, name, path);
            } else if !known.is_empty() && !known.contains(name) {
                diag::unknown_service(diags, &tag, name, &known, path);
            }
        }
        if diags.errors.is_empty() {
            Some((entry, resolved))
        } else {
            None
        }
    }

    /// The entry service of the deployment `d`, for the top-level settings of a PUT: from its
    /// configuration ([`convert::entry_service`]); when that names no service (a deployment
    /// created with `services: {}`), from its bento's manifest, read with `GET
    /// /api/v1/bento_repositories/{repo}/bentos/{version}` as the official client does when
    /// the entry service is unknown (API doc §5.2 step 4), else `apiserver` (its fallback).
    async fn entry_service_of(&self, client: &Client, d: &Deployment) -> String {
        if let Some(e) = convert::entry_service(d) {
            return e;
        }
        let tag = d.bento_tag().map(|t| BentoTag::of(&t));
        let from_bento = match &tag {
            Some(t) => match client.resolve_bento(&t.repo, t.version.as_deref()).await {
                Ok(b) => b.manifest.map(|m| m.entry_service),
                Err(e) => {
                    tracing::debug!("cannot read bento {t} for its entry service: {e}");
                    None
                }
            },
            None => None,
        };
        from_bento
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENTRY_SERVICE.to_string())
    }

    /// Plan-time warnings about the refreshed status: a deployment stopped outside Terraform
    /// (the plan brings it back), or one failing with no failed rollout of this state behind
    /// it (the plan changes nothing for it; the reason is read from its pods, best effort).
    async fn warn_about_status(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        prior: &DeploymentState,
        last: LastApply,
    ) {
        let Some((cluster, name)) = locate(prior) else {
            return;
        };
        let id = format!("{cluster}/{name}");
        let status = prior.reported.status.as_ref_option().cloned();
        let status = status.as_deref().unwrap_or_default();
        if plan::stopped(prior) {
            diag::stopped_outside_terraform(diags, &id, status);
        } else if plan::failing(prior) && last != LastApply::Failed {
            let version = prior
                .reported
                .deployed_bento
                .as_ref_option()
                .and_then(|t| BentoTag::of(t).version);
            let reason = match client.deployment_pods(&cluster, &name).await {
                Ok(pods) => wait::pods_reason(&pods, version.as_deref()),
                Err(e) => {
                    tracing::debug!("cannot read the pods of {id} for its status: {e}");
                    None
                }
            };
            diag::deployment_failing(diags, &id, status, reason.as_deref());
        }
    }

    /// Puts `previous` back after a failed or interrupted rollout and waits for it, for
    /// `deadline` when given (after an interrupt), else for the update timeout.
    async fn roll_back(
        &self,
        diags: &mut Diagnostics,
        configured: &Configured,
        cluster: &str,
        name: &str,
        previous: &DeploymentState,
        deadline: Option<Duration>,
    ) -> RollBack {
        let client = &configured.client;
        let current = match client.get_deployment(cluster, name).await {
            Ok(d) => d,
            Err(e) => {
                diag::api_error(
                    diags,
                    "Rollback failed: cannot read the deployment",
                    &e,
                    None,
                );
                return RollBack::NotSubmitted;
            }
        };
        // The version that served before (`deployed_bento`), not `bento`: a `repo` without a
        // version would resolve to the newest push, which may be the one that just failed.
        let entry = self.entry_service_of(client, &current).await;
        let served = previous
            .reported
            .deployed_bento
            .as_ref_option()
            .map(String::as_str);
        let req = convert::update_request(previous, &current, &entry, served);
        let submitted = match client.update_deployment(cluster, name, &req).await {
            Ok(d) => d,
            Err(e) => {
                diag::api_error(
                    diags,
                    "Rollback failed: the previous configuration was not accepted",
                    &e,
                    None,
                );
                return RollBack::NotSubmitted;
            }
        };
        tracing::warn!(
            "rolling back deployment {cluster}/{name} to its previous configuration (revision {})",
            submitted.revision_uid().unwrap_or("?")
        );
        let revision = submitted.revision_uid().unwrap_or_default().to_string();
        // The user's token may already be cancelled (Ctrl-C): the rollback wait has its own,
        // bounded by `deadline` or the update timeout.
        let id = format!("{cluster}/{name}");
        let waited = wait_for_within(
            configured,
            cluster,
            name,
            &Submitted::updated(&submitted),
            previous,
            deadline,
        )
        .await;
        match (waited, deadline) {
            (Ok(d), _) => {
                let bento = previous
                    .spec
                    .bento
                    .as_ref_option()
                    .cloned()
                    .unwrap_or_default();
                diag::rolled_back(diags, &id, &bento, &revision);
                RollBack::Done(d)
            }
            (Err(e @ WaitError::TimedOut { .. }), Some(limit)) => {
                diag::rollback_unconfirmed(diags, &id, &revision, limit, &e);
                RollBack::Unconfirmed(e.last().cloned().unwrap_or(submitted))
            }
            (Err(e), _) => {
                diag::wait_error(diags, "the rollback", &id, &e);
                match e.last() {
                    Some(d) => RollBack::Done(d.clone()),
                    None => RollBack::Unconfirmed(submitted),
                }
            }
        }
    }
}

#[async_trait]
impl Resource for DeploymentResource {
    type State<'a> = DeploymentState;
    type PrivateState<'a> = Private;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(model::resource_schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        diag::report_problems(diags, plan::validate(&config));
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let configured = self.shared.configured(diags)?;
        let Some((cluster, name)) = locate(&state) else {
            diag::state_without_location(diags, true);
            return None;
        };
        // A listing answers only a state that already knows its URL: list items carry none.
        let knows_url = matches!(&state.reported.url, Value::Value(u) if !u.is_empty());
        let listed = if knows_url {
            configured
                .snapshots
                .lookup(&configured.client, &cluster, &name)
                .await
        } else {
            None
        };
        let read = match listed {
            Some(d) => Ok(Some(d)),
            None => configured.client.get_deployment_opt(&cluster, &name).await,
        };
        match read {
            Ok(Some(d)) => {
                // A marker stays while its revision is the latest one; a newer revision (made
                // elsewhere) is not ours to wait for or to re-submit.
                let private = model::private_after_refresh(private_state, d.revision_uid());
                let next = if model::last_apply(&private) == LastApply::Failed {
                    // This state's last rollout failed and is still the latest revision: the
                    // previous configuration still serves what state says.
                    state_after_failure(&d, &state)
                } else {
                    convert::state_from_server(&d, &state, false)
                };
                Some((next, private))
            }
            Ok(None) => {
                tracing::info!(
                    "deployment {cluster}/{name} no longer exists; removing it from state"
                );
                None
            }
            Err(e) => {
                diag::api_error(
                    diags,
                    &format!("Cannot read deployment {cluster}/{name}"),
                    &e,
                    None,
                );
                Some((state, private_state))
            }
        }
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let configured = self.shared.configured(diags)?;
        let mut planned = plan::plan_create(&proposed_state, configured.default_cluster.as_deref());
        if planned.location.cluster.is_unknown() && proposed_state.location.cluster.is_null() {
            if let Some(c) = self.server_default_cluster(&configured.client).await {
                planned.location.cluster = Value::Value(c.clone());
                if let Value::Value(n) = &planned.location.name {
                    planned.location.id = Value::Value(format!("{c}/{n}"));
                }
            }
        }
        self.check_against_server(diags, &configured.client, &planned, None)
            .await;
        Some((planned, Private::Null))
    }

    async fn plan_update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        proposed_state: Self::State<'a>,
        config_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let last = model::last_apply(&prior_private_state);
        let (planned, replace) =
            plan::plan_update(&prior_state, &proposed_state, &config_state, last);
        if let Some(configured) = self.shared.configured(diags) {
            self.check_against_server(diags, &configured.client, &planned, Some(&prior_state))
                .await;
            self.warn_about_status(diags, &configured.client, &prior_state, last)
                .await;
        }
        if planned.settings.bento_managed_externally == Value::Value(true)
            && prior_state.spec.bento != planned.spec.bento
        {
            diag::bento_managed_externally(diags);
        }
        Some((planned, prior_private_state, replace))
    }

    async fn plan_destroy<'a>(
        &self,
        _diags: &mut Diagnostics,
        _prior_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::PrivateState<'a>> {
        Some(prior_private_state)
    }

    async fn create<'a>(
        &self,
        diags: &mut Diagnostics,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let configured = self.shared.configured(diags)?;
        let client = &configured.client;
        let name = planned_state
            .location
            .name
            .as_ref_option()
            .cloned()
            .unwrap_or_default();
        let cluster_param = planned_state
            .location
            .cluster
            .as_ref_option()
            .cloned()
            .unwrap_or_default();
        let (entry, _) = self.resolve_bento(diags, client, &planned_state).await?;
        let req = convert::create_request(&planned_state, &entry);
        let created = match client.create_deployment(&cluster_param, &req).await {
            Ok(d) => d,
            Err(e) => {
                diag::create_failed(diags, &name, &cluster_param, &e);
                return None;
            }
        };
        let cluster = created.cluster.meta.name.clone();
        let revision = created.revision_uid().unwrap_or_default().to_string();
        tracing::info!("created deployment {cluster}/{name} (revision {revision})");
        // From here on the deployment exists: every path returns state.
        let mut state = convert::state_from_server(&created, &planned_state, false);
        let mut private = planned_private_state;
        if planned_state.settings.wait_for_rollout != Value::Value(false) {
            match wait_for(
                &configured,
                &cluster,
                &name,
                &Submitted::created(&revision),
                &planned_state,
                Operation::Create,
                self.shared.cancellation(),
            )
            .await
            {
                Ok(d) => state = convert::state_from_server(&d, &planned_state, false),
                Err(e) => {
                    if let Some(d) = e.last() {
                        state = convert::state_from_server(d, &planned_state, false);
                    }
                    private = private_after(&e, &revision);
                    diag::wait_error(diags, "the first rollout", &format!("{cluster}/{name}"), &e);
                }
            }
        }
        Some((state, private))
    }

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let redeploy = prior_state
            .settings
            .redeploy_requested(&planned_state.settings);
        let last = model::last_apply(&planned_private_state);
        if !plan::put_needed(&prior_state, &planned_state, last) && !redeploy {
            if last != LastApply::Unconfirmed {
                return Some((planned_state, planned_private_state));
            }
            let configured = self.shared.configured(diags)?;
            return Some(self.resume_rollout(diags, &configured, planned_state).await);
        }
        let configured = self.shared.configured(diags)?;
        self.apply_update(
            diags,
            &configured,
            prior_state,
            planned_state,
            planned_private_state,
        )
        .await
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        _planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let configured = self.shared.configured(diags)?;
        let client = &configured.client;
        let (cluster, name) = locate(&prior_state)?;
        let id = format!("{cluster}/{name}");
        match client.terminate_deployment(&cluster, &name).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => return Some(()),
            Err(e) => {
                diag::api_error(
                    diags,
                    &format!("Cannot terminate deployment {id}"),
                    &e,
                    None,
                );
                return None;
            }
        }
        let opts = WaitOptions {
            timeout: timeout_of(&prior_state, Operation::Delete),
            cancel: self.shared.cancellation(),
            ..WaitOptions::default()
        };
        let src = wait::ClientSource::new(client.clone(), &cluster, &name);
        if let Err(e) = wait::wait_for_terminated(&src, &opts).await {
            diag::wait_error(diags, "termination", &id, &e);
            return None;
        }
        match client.delete_deployment(&cluster, &name).await {
            Ok(_) => Some(()),
            Err(e) if e.is_not_found() => Some(()),
            Err(e) => {
                diag::api_error(diags, &format!("Cannot delete deployment {id}"), &e, None);
                None
            }
        }
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let configured = self.shared.configured(diags)?;
        let (cluster, name) = match parse_import_id(&id, configured.default_cluster.as_deref()) {
            Ok(x) => x,
            Err(why) => {
                diag::invalid_import_id(diags, why);
                return None;
            }
        };
        let shown = if cluster.is_empty() {
            format!("{name} (default cluster)")
        } else {
            format!("{cluster}/{name}")
        };
        match configured.client.get_deployment_opt(&cluster, &name).await {
            Ok(Some(d)) => {
                let prior = DeploymentState {
                    settings: Settings {
                        wait_for_rollout: Value::Value(true),
                        rollback_on_failure: Value::Value(false),
                        bento_managed_externally: Value::Value(false),
                        rollback_on_interrupt: Value::Value(false),
                        redeploy_triggers: Value::Null,
                        timeouts: Value::Null,
                    },
                    ..Default::default()
                };
                Some((convert::state_from_server(&d, &prior, true), Private::Null))
            }
            Ok(None) => {
                diag::import_not_found(diags, &shown);
                None
            }
            Err(e) => {
                diag::api_error(
                    diags,
                    &format!("Cannot import deployment {shown}"),
                    &e,
                    None,
                );
                None
            }
        }
    }
}

impl DeploymentResource {
    /// A previous apply was interrupted or timed out while the server rolled out: wait for the
    /// server's latest revision (no new revision is submitted). The status read now may still
    /// be stale, so it is judged like a fresh submit's (settle window from now).
    async fn resume_rollout(
        &self,
        diags: &mut Diagnostics,
        configured: &Configured,
        planned: DeploymentState,
    ) -> (DeploymentState, Private) {
        let client = &configured.client;
        let Some((cluster, name)) = locate(&planned) else {
            diag::state_without_location(diags, false);
            return (planned, Private::Null);
        };
        let id = format!("{cluster}/{name}");
        let current = match client.get_deployment(&cluster, &name).await {
            Ok(d) => d,
            Err(e) => {
                diag::api_error(diags, &format!("Cannot read deployment {id}"), &e, None);
                return (planned, Private::Null);
            }
        };
        if planned.settings.wait_for_rollout == Value::Value(false) {
            return (
                convert::state_from_server(&current, &planned, false),
                Private::Null,
            );
        }
        let submitted = Submitted::updated(&current);
        tracing::info!(
            "resuming the wait for deployment {id} revision {}",
            submitted.revision
        );
        match wait_for(
            configured,
            &cluster,
            &name,
            &submitted,
            &planned,
            Operation::Update,
            self.shared.cancellation(),
        )
        .await
        {
            Ok(d) => (
                convert::state_from_server(&d, &planned, false),
                Private::Null,
            ),
            Err(e) => {
                diag::wait_error(diags, "the rollout", &id, &e);
                let private = private_after(&e, &submitted.revision);
                let seen = e.last().unwrap_or(&current);
                (convert::state_from_server(seen, &planned, false), private)
            }
        }
    }

    /// Applies a change that sends the configuration or redeploys. `private` is the prior
    /// private state: kept when nothing was submitted, so a failed rollout's marker survives a
    /// refused PUT.
    async fn apply_update(
        &self,
        diags: &mut Diagnostics,
        configured: &Configured,
        prior: DeploymentState,
        planned: DeploymentState,
        private: Private,
    ) -> Option<(DeploymentState, Private)> {
        let last = model::last_apply(&private);
        let client = &configured.client;
        let Some((cluster, name)) = locate(&prior) else {
            diag::state_without_location(diags, false);
            return Some((prior, Private::Null));
        };
        let id = format!("{cluster}/{name}");
        let server = match client.get_deployment_opt(&cluster, &name).await {
            Ok(Some(d)) => d,
            Ok(None) => {
                diag::deleted_outside_terraform(diags, &id);
                return Some((prior, Private::Null));
            }
            Err(e) => {
                diag::api_error(
                    diags,
                    &format!("Cannot read deployment {id} before updating it"),
                    &e,
                    None,
                );
                return Some((prior, Private::Null));
            }
        };
        // Nomad's `modify_index` idea: a change made on the server since the plan is refused,
        // not overwritten. The revision the plan refreshed is `prior.reported.revision`.
        let on_server = convert::state_from_server(&server, &prior, false);
        let changed = plan::changed_since_plan(&prior, &on_server);
        if !changed.is_empty() {
            let planned_against = prior.reported.revision.as_ref_option().cloned();
            diag::changed_since_plan(
                diags,
                &id,
                planned_against.as_deref().unwrap_or("?"),
                &server,
                &changed,
            );
            return Some((on_server, Private::Null));
        }
        let redeploy = prior.settings.redeploy_requested(&planned.settings);
        let put = plan::put_needed(&prior, &planned, last);
        if plan::stopped(&prior) {
            tracing::info!("deployment {id} was stopped outside Terraform; starting it again");
        }
        let mut response = if put {
            match self
                .put_spec(diags, client, &prior, &planned, &server)
                .await
            {
                Some(d) => d,
                None => {
                    let state = if last == LastApply::Failed {
                        state_after_failure(&server, &prior)
                    } else {
                        convert::state_from_server(&server, &prior, false)
                    };
                    return Some((state, private));
                }
            }
        } else {
            server
        };
        if redeploy {
            // After a PUT too: a change of scaling alone need not restart replicas, and a
            // rotated secret reaches only replicas started after it.
            match client.redeploy_deployment(&cluster, &name).await {
                Ok(d) => response = d,
                Err(e) => {
                    diag::api_error(diags, &format!("Cannot redeploy deployment {id}"), &e, None);
                    let mut state = convert::state_from_server(&response, &planned, false);
                    // Not redeployed: the triggers stay as they were, so the next plan asks again.
                    state.settings.redeploy_triggers = prior.settings.redeploy_triggers.clone();
                    return Some((state, Private::Null));
                }
            }
        }
        let submitted = Submitted::updated(&response);
        let revision = submitted.revision.clone();
        tracing::info!("updated deployment {id}: rolling out revision {revision}");
        if planned.settings.wait_for_rollout == Value::Value(false) {
            return Some((
                convert::state_from_server(&response, &planned, false),
                Private::Null,
            ));
        }
        match wait_for(
            configured,
            &cluster,
            &name,
            &submitted.with_change(change_of(&prior, &planned)),
            &planned,
            Operation::Update,
            self.shared.cancellation(),
        )
        .await
        {
            Ok(d) => Some((
                convert::state_from_server(&d, &planned, false),
                Private::Null,
            )),
            Err(e) => {
                diag::wait_error(diags, "the rollout", &id, &e);
                Some(
                    self.after_failed_rollout(
                        diags, configured, &prior, &planned, &response, &revision, e,
                    )
                    .await,
                )
            }
        }
    }

    /// The PUT of `planned`'s spec over `server`; `None` (with diagnostics) when the bento
    /// cannot be resolved or the API refuses it.
    async fn put_spec(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        prior: &DeploymentState,
        planned: &DeploymentState,
        server: &Deployment,
    ) -> Option<Deployment> {
        let (cluster, name) = locate(prior)?;
        let id = format!("{cluster}/{name}");
        // A changed bento is resolved now (`repo` alone: its newest version, which the PUT then
        // names), and its entry service takes the top-level settings; an unchanged one keeps
        // the running version and entry service (see `convert::update_bento`).
        let mut entry = self.entry_service_of(client, server).await;
        let mut resolved = None;
        if prior.spec.bento != planned.spec.bento
            && planned.settings.bento_managed_externally != Value::Value(true)
        {
            match self.resolve_bento(diags, client, planned).await {
                Some((e, tag)) if diags.errors.is_empty() => {
                    entry = e;
                    resolved = Some(tag);
                }
                _ => return None,
            }
        }
        let req = convert::update_request(planned, server, &entry, resolved.as_deref());
        match client.update_deployment(&cluster, &name, &req).await {
            Ok(d) => Some(d),
            Err(e) => {
                diag::api_error(diags, &format!("Cannot update deployment {id}"), &e, None);
                None
            }
        }
    }

    /// The state an update leaves when waiting for its rollout ended in `e`: the previous
    /// configuration put back and waited for with `rollback_on_failure`; otherwise, after a
    /// failure, what still serves, and after an interruption or a timeout, the submitted
    /// configuration with the status seen last and its revision left for the next apply.
    #[allow(clippy::too_many_arguments)]
    async fn after_failed_rollout(
        &self,
        diags: &mut Diagnostics,
        configured: &Configured,
        prior: &DeploymentState,
        planned: &DeploymentState,
        response: &Deployment,
        revision: &str,
        e: WaitError,
    ) -> (DeploymentState, Private) {
        let on = |v: &Value<bool>| *v == Value::Value(true);
        let rollback = match e {
            WaitError::Failed { .. } | WaitError::TimedOut { .. } => {
                on(&planned.settings.rollback_on_failure).then_some(None)
            }
            // Terraform asked the provider to stop: a short, fixed wait for the rollback.
            WaitError::Cancelled { .. } => {
                on(&planned.settings.rollback_on_interrupt).then_some(Some(INTERRUPT_ROLLBACK_WAIT))
            }
            WaitError::Api(_) => None,
        };
        if let (Some(deadline), Some((cluster, name))) = (rollback, locate(prior)) {
            match self
                .roll_back(diags, configured, &cluster, &name, prior, deadline)
                .await
            {
                RollBack::Done(d) => {
                    return (convert::state_from_server(&d, prior, false), Private::Null)
                }
                // The previous configuration is on its way back: state says so, and the next
                // apply waits for that revision.
                RollBack::Unconfirmed(d) => {
                    let revision = d.revision_uid().unwrap_or_default().to_string();
                    return (
                        convert::state_from_server(&d, prior, false),
                        model::unconfirmed(&revision),
                    );
                }
                RollBack::NotSubmitted => {}
            }
        }
        let private = private_after(&e, revision);
        match (&e, e.last()) {
            // The new revision failed: the previous configuration still serves.
            (WaitError::Failed { .. }, Some(d)) => (state_after_failure(d, prior), private),
            // Interrupted or timed out: the rollout goes on server-side; state shows the
            // submitted configuration with the status seen last, and the private state keeps
            // the revision for the next apply to wait for.
            (_, Some(d)) => (convert::state_from_server(d, planned, false), private),
            (_, None) => (
                convert::state_from_server(response, planned, false),
                private,
            ),
        }
    }
}

/// `cluster/name`, or `name` in the provider's default cluster (or the organisation's default
/// cluster, `""`, when the provider sets none).
pub fn parse_import_id(
    id: &str,
    default_cluster: Option<&str>,
) -> Result<(String, String), String> {
    let expected = "Expected `cluster/name` (e.g. `local-east/iris`) or `name` (in the provider's default cluster).";
    let (cluster, name) = match id.split('/').collect::<Vec<_>>().as_slice() {
        [name] => (default_cluster.unwrap_or("").to_string(), name.to_string()),
        [cluster, name] if !cluster.is_empty() => (cluster.to_string(), name.to_string()),
        _ => return Err(format!("{id:?} is not a deployment ID. {expected}")),
    };
    crate::rules::deployment_name(&name)
        .map_err(|why| format!("{id:?} is not a deployment ID: {why}. {expected}"))?;
    Ok((cluster, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ids_accept_cluster_slash_name_and_bare_name() {
        assert_eq!(
            parse_import_id("local-west/iris", None),
            Ok(("local-west".into(), "iris".into()))
        );
        assert_eq!(
            parse_import_id("iris", Some("c1")),
            Ok(("c1".into(), "iris".into()))
        );
        assert_eq!(
            parse_import_id("iris", None),
            Ok(("".into(), "iris".into()))
        );
        for bad in ["", "a/b/c", "/iris", "c/Bad_Name", "c/"] {
            let e = parse_import_id(bad, None).expect_err(bad);
            assert!(e.contains("cluster/name"), "{e}");
        }
    }

    #[test]
    fn timeouts_default_and_parse() {
        let mut s = DeploymentState::default();
        assert_eq!(timeout_of(&s, Operation::Create), Duration::from_secs(1800));
        assert_eq!(timeout_of(&s, Operation::Delete), Duration::from_secs(600));
        s.settings.timeouts = Value::Value(model::Timeouts {
            update: Value::Value("90s".into()),
            ..Default::default()
        });
        assert_eq!(timeout_of(&s, Operation::Update), Duration::from_secs(90));
    }
}
