//! The rollouts of `bentocloud_deployment`: waiting for a submitted revision with the state's
//! timeouts, updating (a PUT of the configuration, a redeploy, or both, then the wait),
//! resuming a wait an earlier apply could not finish, and what a failed or interrupted
//! rollout leaves (a rollback, or honest state with a marker for the next apply).

use std::time::Duration;

use tf_provider::value::Value;
use tf_provider::Diagnostics;
use tokio_util::sync::CancellationToken;

use super::model::{self, DeploymentState, LastApply, Private};
use super::{convert, locate, plan, DeploymentResource};
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
    let src = wait::ClientSource::new(configured.client.clone(), cluster, name);
    wait::wait_for_revision(&src, submitted, allows_scale_to_zero(state), &opts).await
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

/// [`wait_for`] of an update with its own deadline (`None`: the update timeout) and a fresh
/// cancellation token: used once Terraform has already asked the provider to stop.
pub(super) async fn wait_for_within(
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

impl DeploymentResource {
    /// Puts `previous` back after a failed or interrupted rollout and waits for it, for
    /// `deadline` when given (after an interrupt), else for the update timeout.
    pub(super) async fn roll_back(
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

impl DeploymentResource {
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
    pub(super) async fn apply_update(
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
    pub(super) async fn after_failed_rollout(
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
}
