//! The rollouts of `bentocloud_deployment`: waiting for a submitted revision with the state's
//! timeouts, updating (a PUT of the configuration, a redeploy, or both, then the wait),
//! resuming a wait an earlier apply could not finish, and what a failed or interrupted
//! rollout leaves (a rollback, or honest state with a marker for the next apply).

use std::time::Duration;

use tf_provider::value::Value;
use tf_provider::Diagnostics;
use tokio_util::sync::CancellationToken;

use super::model::{self, DeploymentState, LastApply, Private, Settings};
use super::{convert, locate, plan, Deployments};
use crate::api::Deployment;
use crate::client::Client;
use crate::diag;
use crate::shared::Configured;
use crate::wait::{self, Submitted, WaitError, WaitOptions};
use model::{DEFAULT_DELETE_TIMEOUT, DEFAULT_ROLLOUT_TIMEOUT};

/// The operations with a `timeouts` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Operation {
    Create,
    Update,
    Delete,
}

/// The timeout of `op`: its `timeouts` entry, else its default ([`DEFAULT_ROLLOUT_TIMEOUT`]
/// for create and update, [`DEFAULT_DELETE_TIMEOUT`] for delete).
pub(super) fn timeout_of(state: &DeploymentState, op: Operation) -> Duration {
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

pub(super) fn allows_scale_to_zero(state: &DeploymentState) -> bool {
    state.spec.entry.min_replicas == Value::Value(0)
}

/// Waits for the `submitted` revision of the deployment (judged as `crate::wait` describes),
/// with the state's timeout, the provider's settle window and a cancellation token.
pub(super) async fn wait_for(
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

/// [`wait_for`] with a given timeout. The wait itself reads only statuses, revisions and pods;
/// the document it ends with (a success's, or the last an error saw) becomes state, so it is
/// given its bento's manifest ([`Client::with_bento_manifest`]: one GET per bento not yet
/// cached; usually none, as the document submitted before the wait was given it already).
pub(super) async fn wait_with(
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
    let client = &configured.client;
    let src = wait::ClientSource::new(client.clone(), cluster, name);
    match wait::wait_for_revision(&src, submitted, allows_scale_to_zero(state), &opts).await {
        Ok(d) => Ok(client.with_bento_manifest(d).await),
        Err(mut e) => {
            if let Some(last) = e.last_mut() {
                *last = client.with_bento_manifest(std::mem::take(last)).await;
            }
            Err(e)
        }
    }
}

/// Set (to anything) by the benchmark only (`scripts/bench/bench.py`, the baseline of its
/// rollout-wait rows): rollout waits do not judge the pods, so the status and the settle
/// window alone decide, as before they did. Not a user setting; undocumented on purpose.
pub(super) const WAIT_WITHOUT_PODS_ENV: &str = "BENTOCLOUD_BENCH_WAIT_WITHOUT_PODS";

/// What applying `planned` over `prior` asks of the replicas, for the rollout wait: a
/// scaling-only change adds or removes replicas ([`wait::Change::Scale`]); anything else, a
/// redeploy, or starting a stopped deployment again replaces them ([`wait::Change::Restart`]).
pub(super) fn change_of(prior: &DeploymentState, planned: &DeploymentState) -> wait::Change {
    let external = planned.settings.bento_managed_externally == Value::Value(true);
    let stopped = matches!(
        prior.reported.status.as_ref_option().map(String::as_str),
        Some("terminated" | "terminating")
    );
    // A change of the canary alone starts or drains canary pods beside the deployment's own,
    // which need not be replaced: judged as a scaling change (no pod pending or terminating),
    // which also holds on a platform that does replace them.
    if prior.canary != planned.canary
        && !prior.spec.differs(&planned.spec, external)
        && !prior.settings.redeploy_requested(&planned.settings)
        && !stopped
    {
        return wait::Change::Scale;
    }
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
pub(super) const INTERRUPT_ROLLBACK_WAIT: Duration = Duration::from_secs(60);

/// What a rollback achieved.
pub(super) enum RollBack {
    /// Waited for to the end (serving, or failed with its diagnostic): the server as last seen.
    Done(Deployment),
    /// Submitted, not confirmed within the deadline: the server as last seen.
    Unconfirmed(Deployment),
    /// Not submitted (diagnostics say why).
    NotSubmitted,
}

/// [`wait_for`] of a rollback, bounded as `wait` says, with a fresh cancellation token: the
/// user's may already be cancelled (Ctrl-C).
async fn wait_for_rollback(
    configured: &Configured,
    cluster: &str,
    name: &str,
    submitted: &Submitted,
    state: &DeploymentState,
    wait: RollbackWait,
) -> Result<Deployment, WaitError> {
    let timeout = match wait {
        RollbackWait::UpdateTimeout => timeout_of(state, Operation::Update),
        RollbackWait::Within(limit) => limit,
    };
    let cancel = CancellationToken::new();
    wait_with(configured, cluster, name, submitted, state, timeout, cancel).await
}

/// The private state after a wait ended with `err`: an interrupted or timed-out wait leaves
/// its revision unconfirmed, so the next apply resumes waiting for it; a failed rollout
/// leaves its revision marked failed, so the next apply re-submits the configuration.
pub(super) fn private_after(err: &WaitError, revision: &str) -> Private {
    match err {
        WaitError::Cancelled { .. } | WaitError::TimedOut { .. } => model::unconfirmed(revision),
        WaitError::Failed { .. } => model::failed(revision),
        WaitError::Api(_) => Private::Null,
    }
}

/// Honest state after a failed rollout: the managed attributes (the whole [`model::Spec`]) keep
/// what `serving` had (the previous revision keeps serving), the computed ones show the
/// server's status and revision, so the next plan shows the change again.
pub(super) fn state_after_failure(
    server: &Deployment,
    serving: &DeploymentState,
) -> DeploymentState {
    let mut s = convert::state_from_server(server, serving, false);
    s.spec = serving.spec.clone();
    s
}

impl Deployments {
    /// Puts `previous` back after a failed or interrupted rollout and waits for it as long as
    /// `wait` says.
    pub(super) async fn roll_back(
        &self,
        diags: &mut Diagnostics,
        configured: &Configured,
        cluster: &str,
        name: &str,
        previous: &DeploymentState,
        wait: RollbackWait,
    ) -> RollBack {
        let client = &configured.client;
        let Some(submitted) = self
            .resubmit_previous(diags, client, cluster, name, previous)
            .await
        else {
            return RollBack::NotSubmitted;
        };
        tracing::warn!(
            "rolling back deployment {cluster}/{name} to its previous configuration (revision {})",
            submitted.revision_uid().unwrap_or("?")
        );
        let waited = wait_for_rollback(
            configured,
            cluster,
            name,
            &Submitted::updated(&submitted),
            previous,
            wait,
        )
        .await;
        let id = format!("{cluster}/{name}");
        rollback_outcome(diags, &id, previous, submitted, waited, wait)
    }

    /// Sends `previous` again: the submit's response, or `None` (with the error in `diags`)
    /// when the rollback could not be submitted.
    async fn resubmit_previous(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        cluster: &str,
        name: &str,
        previous: &DeploymentState,
    ) -> Option<Deployment> {
        // Its entry service takes the top-level settings of the PUT: from the bento's manifest,
        // one GET per bento not yet cached.
        let current = match client.get_deployment(cluster, name).await {
            Ok(d) => client.with_bento_manifest(d).await,
            Err(e) => {
                diag::api_error(
                    diags,
                    "Rollback failed: cannot read the deployment",
                    &e,
                    None,
                );
                return None;
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
        // Labels: `previous`'s managed ones put back; a label only the failed configuration
        // added stays (like one set elsewhere) until the next apply decides on it.
        let managed = convert::managed_keys(previous);
        let req = convert::update_request(previous, &current, &entry, served, managed);
        match client.update_deployment(cluster, name, &req).await {
            // May become state (a rollback whose wait saw nothing): given its bento's manifest
            // (one GET per bento not yet cached).
            Ok(d) => Some(client.with_bento_manifest(d).await),
            Err(e) => {
                diag::api_error(
                    diags,
                    "Rollback failed: the previous configuration was not accepted",
                    &e,
                    None,
                );
                None
            }
        }
    }
}

/// What a rollback came to once its wait (as `wait` bounds it) ended in `waited`, told in
/// `diags`.
fn rollback_outcome(
    diags: &mut Diagnostics,
    id: &str,
    previous: &DeploymentState,
    submitted: Deployment,
    waited: Result<Deployment, WaitError>,
    wait: RollbackWait,
) -> RollBack {
    let revision = submitted.revision_uid().unwrap_or_default().to_string();
    match (waited, wait) {
        (Ok(d), _) => {
            let bento = previous
                .spec
                .bento
                .as_ref_option()
                .cloned()
                .unwrap_or_default();
            diag::rolled_back(diags, id, &bento, &revision);
            RollBack::Done(d)
        }
        (Err(e @ WaitError::TimedOut { .. }), RollbackWait::Within(limit)) => {
            diag::rollback_unconfirmed(diags, id, &revision, limit, &e);
            RollBack::Unconfirmed(e.last().cloned().unwrap_or(submitted))
        }
        (Err(e), _) => {
            diag::wait_error(diags, "the rollback", id, &e);
            match e.last() {
                Some(d) => RollBack::Done(d.clone()),
                None => RollBack::Unconfirmed(submitted),
            }
        }
    }
}

impl Deployments {
    /// A previous apply was interrupted or timed out while the server rolled out: wait for the
    /// server's latest revision (no new revision is submitted). The status read now may still
    /// be stale, so it is judged like a fresh submit's (settle window from now).
    pub(super) async fn resume_rollout(
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
        // Becomes state (not waiting, or a wait that saw nothing): given its bento's manifest,
        // one GET per bento not yet cached.
        let current = match client.get_deployment(&cluster, &name).await {
            Ok(d) => client.with_bento_manifest(d).await,
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

    /// Applies a change that sends the configuration or redeploys, and waits for it. `private`
    /// is the prior private state: kept when nothing was submitted, so a failed rollout's
    /// marker survives a refused PUT.
    pub(super) async fn apply_update(
        &self,
        diags: &mut Diagnostics,
        configured: &Configured,
        prior: DeploymentState,
        planned: DeploymentState,
        private: Private,
    ) -> Option<(DeploymentState, Private)> {
        let Some((cluster, name)) = locate(&prior) else {
            diag::state_without_location(diags, false);
            return Some((prior, Private::Null));
        };
        let up = Update {
            configured,
            id: format!("{cluster}/{name}"),
            cluster,
            name,
            prior: &prior,
            planned: &planned,
        };
        let mut server = match unchanged_since_plan(diags, &up).await {
            Ok(d) => d,
            Err(left) => return Some(left),
        };
        // A bento change with `progressive_rollout`: the canary steps first; the update below
        // is then the promotion (it removes the canary, see `put_spec`).
        if plan::delivers_progressively(&prior, &planned) {
            server = match self.deliver_progressively(diags, &up, server).await {
                Ok(d) => d,
                Err(left) => return Some(left),
            };
        }
        let response = match self.submit(diags, &up, server, private).await {
            Ok(d) => d,
            Err(left) => return Some(left),
        };
        Some(self.wait_for_update(diags, &up, response).await)
    }

    /// Sends the update: the PUT of the configuration when [`plan::put_needed`], then the
    /// redeploy `redeploy_triggers` ask for (after a PUT too: a change of scaling alone need
    /// not restart replicas, and a rotated secret reaches only replicas started after it).
    /// The submit's response, or the state to leave when nothing (or not all) was submitted.
    async fn submit(
        &self,
        diags: &mut Diagnostics,
        up: &Update<'_>,
        server: Deployment,
        private: Private,
    ) -> Result<Deployment, (DeploymentState, Private)> {
        let (prior, planned) = (up.prior, up.planned);
        let last = model::last_apply(&private);
        if plan::stopped(prior) {
            tracing::info!(
                "deployment {} was stopped outside Terraform; starting it again",
                up.id
            );
        }
        let mut response = server;
        if plan::put_needed(prior, planned, last) {
            let client = &up.configured.client;
            match self
                .put_spec(diags, client, prior, planned, &response)
                .await
            {
                Some(d) => response = d,
                None if last == LastApply::Failed => {
                    return Err((state_after_failure(&response, prior), private))
                }
                None => return Err((convert::state_from_server(&response, prior, false), private)),
            }
        }
        if prior.settings.redeploy_requested(&planned.settings) {
            let client = &up.configured.client;
            match client.redeploy_deployment(&up.cluster, &up.name).await {
                // Becomes state unless a wait follows: given its bento's manifest (one GET per
                // bento not yet cached: none, the document read before the update was given it).
                Ok(d) => response = client.with_bento_manifest(d).await,
                Err(e) => {
                    diag::api_error(
                        diags,
                        &format!("Cannot redeploy deployment {}", up.id),
                        &e,
                        None,
                    );
                    let mut state = convert::state_from_server(&response, planned, false);
                    // Not redeployed: the triggers stay as they were, so the next plan asks again.
                    state.settings.redeploy_triggers = prior.settings.redeploy_triggers.clone();
                    return Err((state, Private::Null));
                }
            }
        }
        Ok(response)
    }

    /// Waits for the revision the update's submit (`response`) created, and the state it
    /// leaves: the server's on success; on failure, see [`Self::after_failed_rollout`].
    async fn wait_for_update(
        &self,
        diags: &mut Diagnostics,
        up: &Update<'_>,
        response: Deployment,
    ) -> (DeploymentState, Private) {
        let planned = up.planned;
        let submitted = Submitted::updated(&response).with_change(change_of(up.prior, planned));
        tracing::info!(
            "updated deployment {}: rolling out revision {}",
            up.id,
            submitted.revision
        );
        if planned.settings.wait_for_rollout == Value::Value(false) {
            return (
                convert::state_from_server(&response, planned, false),
                Private::Null,
            );
        }
        let cancel = self.shared.cancellation();
        let timeout = timeout_of(planned, Operation::Update);
        let (cluster, name) = (&up.cluster, &up.name);
        let waited = wait_with(
            up.configured,
            cluster,
            name,
            &submitted,
            planned,
            timeout,
            cancel,
        )
        .await;
        match waited {
            Ok(d) => (
                convert::state_from_server(&d, planned, false),
                Private::Null,
            ),
            Err(e) => {
                diag::wait_error(diags, "the rollout", &up.id, &e);
                self.after_failed_rollout(diags, up, &response, e).await
            }
        }
    }

    /// The PUT of `planned`'s spec over `server`; `None` (with diagnostics) when the bento
    /// cannot be resolved or the API refuses it.
    pub(super) async fn put_spec(
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
        let managed = convert::managed_keys(prior);
        let mut req =
            convert::update_request(planned, server, &entry, resolved.as_deref(), managed);
        // No `canary` block now: a canary the configuration managed before, or the one a
        // progressive rollout ran, goes away (one set elsewhere and never managed stays).
        if planned.canary.canary.is_null()
            && (prior.canary.canary.is_value() || plan::delivers_progressively(prior, planned))
        {
            req.canary = None;
        }
        match client.update_deployment(&cluster, &name, &req).await {
            // Becomes state unless a wait follows: given its bento's manifest (one GET per
            // bento not yet cached: none unless the bento changed).
            Ok(d) => Some(client.with_bento_manifest(d).await),
            Err(e) => {
                diag::api_error(diags, &format!("Cannot update deployment {id}"), &e, None);
                None
            }
        }
    }

    /// The state an update leaves when waiting for its rollout (submitted as `response`) ended
    /// in `e`: the previous configuration put back and waited for when the settings ask for a
    /// rollback ([`rollback_after`]); otherwise, after a failure, what still serves, and after
    /// an interruption or a timeout, the submitted configuration with the status seen last and
    /// its revision left for the next apply.
    async fn after_failed_rollout(
        &self,
        diags: &mut Diagnostics,
        up: &Update<'_>,
        response: &Deployment,
        e: WaitError,
    ) -> (DeploymentState, Private) {
        let (prior, planned) = (up.prior, up.planned);
        if let Some(wait) = rollback_after(&e, &planned.settings) {
            let configured = up.configured;
            match self
                .roll_back(diags, configured, &up.cluster, &up.name, prior, wait)
                .await
            {
                RollBack::Done(d) => {
                    return (convert::state_from_server(&d, prior, false), Private::Null)
                }
                // The previous configuration is on its way back: state says so, and the next
                // apply waits for that revision.
                RollBack::Unconfirmed(d) => {
                    let revision = d.revision_uid().unwrap_or_default().to_string();
                    let state = convert::state_from_server(&d, prior, false);
                    return (state, model::unconfirmed(&revision));
                }
                RollBack::NotSubmitted => {}
            }
        }
        let private = private_after(&e, response.revision_uid().unwrap_or_default());
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

/// One update in progress: where, and from which state to which.
pub(super) struct Update<'a> {
    pub(super) configured: &'a Configured,
    pub(super) cluster: String,
    pub(super) name: String,
    /// `cluster/name`.
    pub(super) id: String,
    pub(super) prior: &'a DeploymentState,
    pub(super) planned: &'a DeploymentState,
}

/// The server's deployment before an update, unless the update must not go on: the
/// deployment is gone, cannot be read, or was changed on the server since the plan (Nomad's
/// `modify_index` idea: refused, not overwritten; the plan refreshed `prior.reported.revision`).
/// Then the state to leave.
async fn unchanged_since_plan(
    diags: &mut Diagnostics,
    up: &Update<'_>,
) -> Result<Deployment, (DeploymentState, Private)> {
    let prior = up.prior;
    let client = &up.configured.client;
    // Compared as state, and the base of the PUT (whose entry service takes the top-level
    // settings): given its bento's manifest, one GET per bento not yet cached.
    let server = match client.get_deployment_opt(&up.cluster, &up.name).await {
        Ok(Some(d)) => client.with_bento_manifest(d).await,
        Ok(None) => {
            diag::deleted_outside_terraform(diags, &up.id);
            return Err((prior.clone(), Private::Null));
        }
        Err(e) => {
            let what = format!("Cannot read deployment {} before updating it", up.id);
            diag::api_error(diags, &what, &e, None);
            return Err((prior.clone(), Private::Null));
        }
    };
    let on_server = convert::state_from_server(&server, prior, false);
    let changed = plan::changed_since_plan(prior, &on_server);
    if changed.is_empty() {
        return Ok(server);
    }
    let planned_against = prior.reported.revision.as_ref_option().cloned();
    let planned_against = planned_against.as_deref().unwrap_or("?");
    diag::changed_since_plan(diags, &up.id, planned_against, &server, &changed);
    Err((on_server, Private::Null))
}

/// How long a rollback may take to be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RollbackWait {
    /// The update's timeout: after a failed or timed-out rollout.
    UpdateTimeout,
    /// At most this long: after Terraform asked the provider to stop, whose user is waiting.
    Within(Duration),
}

/// The rollback a wait that ended in `e` asks for, if any: after a failure or a timeout with
/// `rollback_on_failure`, after an interrupt with `rollback_on_interrupt`; never after an API
/// error (the outcome is unknown). Pure.
pub(super) fn rollback_after(e: &WaitError, settings: &Settings) -> Option<RollbackWait> {
    let on = |v: &Value<bool>| *v == Value::Value(true);
    match e {
        WaitError::Failed { .. } | WaitError::TimedOut { .. } => {
            on(&settings.rollback_on_failure).then_some(RollbackWait::UpdateTimeout)
        }
        WaitError::Cancelled { .. } => on(&settings.rollback_on_interrupt)
            .then_some(RollbackWait::Within(INTERRUPT_ROLLBACK_WAIT)),
        WaitError::Api(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    #[test]
    fn a_rollback_follows_the_setting_for_how_the_wait_ended() {
        use crate::api::DeploymentStatus;
        let settings = |failure: bool, interrupt: bool| Settings {
            rollback_on_failure: Value::Value(failure),
            rollback_on_interrupt: Value::Value(interrupt),
            ..Default::default()
        };
        let failed = WaitError::Failed {
            status: DeploymentStatus::Failed,
            reason: "r".into(),
            last: Box::default(),
        };
        let timed_out = WaitError::TimedOut {
            last: None,
            waited: Duration::from_secs(1),
            pending: String::new(),
        };
        let cancelled = WaitError::Cancelled { last: None };
        let api = WaitError::Api(crate::client::ClientError::from_response("get", 403, b"no"));
        for e in [&failed, &timed_out] {
            assert_eq!(
                rollback_after(e, &settings(true, false)),
                Some(RollbackWait::UpdateTimeout)
            );
            assert_eq!(rollback_after(e, &settings(false, true)), None);
        }
        assert_eq!(
            rollback_after(&cancelled, &settings(false, true)),
            Some(RollbackWait::Within(INTERRUPT_ROLLBACK_WAIT))
        );
        assert_eq!(rollback_after(&cancelled, &settings(true, false)), None);
        assert_eq!(rollback_after(&api, &settings(true, true)), None);
    }
}
