//! `bentocloud_deployment`: create, read, update, delete and import of one BentoCloud
//! deployment, translating plan diffs into API calls and waiting for the submitted revision.
//!
//! The shape (state and schema) lives in `model`, the pure plan rules in `plan`, the
//! state/document translation in `convert`, import IDs in `import`; the rollouts (waits,
//! updates, rollbacks) in `rollout` and the plan-time questions to the server in `checks`.
//! This file holds the resource's operations, and keeps the promises that make state honest:
//! - once the API has created a deployment, create always returns state (tainted on error), so
//!   nothing is orphaned;
//! - a failed update records what the server really serves, so the next plan shows the change
//!   again;
//! - read drops a deployment that no longer exists.

mod checks;
pub mod convert;
pub mod import;
pub mod model;
pub mod plan;
mod progressive;
#[cfg(test)]
mod properties;
mod rollout;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tf_provider::schema::Schema;
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use super::managed::{Change, Managed, Operations, Proposal, Stored};
use crate::diag::{self, Problem};
use crate::shared::Shared;
use crate::wait::{self, Submitted, WaitOptions};
use import::parse_import_id;
use model::{DeploymentState, LastApply, Private, Settings};
use rollout::{private_after, state_after_failure, timeout_of, wait_for, Operation};

/// The resource.
pub type DeploymentResource = Managed<Deployments>;

/// Its operations. Holds the provider's shared slot and a small plan-time cache of server facts
/// (instance types per cluster, bentos known to exist) so a plan of many deployments does not
/// ask the same question many times.
pub struct Deployments {
    shared: Arc<Shared>,
    instance_types: Mutex<HashMap<String, Vec<String>>>,
    default_cluster: Mutex<Option<String>>,
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

#[async_trait]
impl Operations for Deployments {
    type State = DeploymentState;
    type Private = Private;

    fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            instance_types: Mutex::new(HashMap::new()),
            default_cluster: Mutex::new(None),
        }
    }

    fn schema() -> Schema {
        model::resource_schema()
    }

    fn problems(config: &DeploymentState) -> Vec<Problem> {
        plan::validate(config)
    }

    async fn read(&self, diags: &mut Diagnostics, stored: Stored<Self>) -> Option<Stored<Self>> {
        let (state, private_state) = stored;
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
            Ok(Some(mut d)) => {
                self.unless_stale_stop(&configured.client, &mut d).await;
                // State's entry service comes from the bento's manifest, which a listed or
                // read document may lack: one GET per bento not yet cached (a refresh of N
                // deployments of a few bentos spends a few).
                let d = configured.client.with_bento_manifest(d).await;
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

    async fn plan_create(
        &self,
        diags: &mut Diagnostics,
        proposed: DeploymentState,
    ) -> Option<DeploymentState> {
        let configured = self.shared.configured(diags)?;
        let proposed = plan::with_default_labels(proposed, &configured.default_labels);
        let mut planned = plan::plan_create(&proposed, configured.default_cluster.as_deref());
        if planned.location.cluster.is_unknown() && proposed.location.cluster.is_null() {
            if let Some(c) = self.server_default_cluster(&configured.client).await {
                planned.location.cluster = Value::Value(c.clone());
                if let Value::Value(n) = &planned.location.name {
                    planned.location.id = Value::Value(format!("{c}/{n}"));
                }
            }
        }
        self.check_against_server(diags, &configured.client, &planned, None)
            .await;
        Some(planned)
    }

    async fn plan_update(
        &self,
        diags: &mut Diagnostics,
        proposal: &Proposal<Self>,
    ) -> Option<(DeploymentState, Vec<AttributePath>)> {
        let prior = &proposal.prior;
        let last = model::last_apply(&proposal.private);
        let configured = self.shared.configured(diags);
        let defaults = configured
            .as_ref()
            .map_or(Value::Unknown, |c| c.default_labels.clone());
        let proposed = plan::with_default_labels(proposal.proposed.clone(), &defaults);
        let (planned, replace) = plan::plan_update(prior, &proposed, &proposal.config, last);
        if let Some(configured) = configured {
            self.check_against_server(diags, &configured.client, &planned, Some(prior))
                .await;
            self.warn_about_status(diags, &configured.client, prior, last)
                .await;
        }
        if planned.settings.bento_managed_externally == Value::Value(true)
            && prior.spec.bento != planned.spec.bento
        {
            diag::bento_managed_externally(diags);
        }
        // Which path the apply takes: said in the plan.
        if replace.is_empty() && plan::delivers_progressively(prior, &planned) {
            diag::progressive_path(diags, &planned);
        }
        Some((planned, replace))
    }

    async fn create(&self, diags: &mut Diagnostics, planned: Stored<Self>) -> Option<Stored<Self>> {
        let (planned_state, planned_private_state) = planned;
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
            // Its state's entry service comes from the bento's manifest: one GET per bento not
            // yet cached (the wait's documents then find it cached).
            Ok(d) => client.with_bento_manifest(d).await,
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

    async fn update(&self, diags: &mut Diagnostics, change: Change<Self>) -> Option<Stored<Self>> {
        let Change {
            prior: prior_state,
            planned: planned_state,
            private: planned_private_state,
        } = change;
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

    async fn destroy(&self, diags: &mut Diagnostics, prior_state: DeploymentState) -> Option<()> {
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

    async fn import(&self, diags: &mut Diagnostics, id: String) -> Option<Stored<Self>> {
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
        let client = &configured.client;
        match client.get_deployment_opt(&cluster, &name).await {
            Ok(Some(d)) => {
                // The entry service (which service the top-level attributes and the `service`
                // blocks describe) comes from the bento's manifest: one GET per bento not yet
                // cached.
                let d = client.with_bento_manifest(d).await;
                let prior = DeploymentState {
                    settings: Settings {
                        wait_for_rollout: Value::Value(true),
                        rollback_on_failure: Value::Value(false),
                        bento_managed_externally: Value::Value(false),
                        rollback_on_interrupt: Value::Value(false),
                        redeploy_triggers: Value::Null,
                        timeouts: Value::Null,
                        progressive_rollout: Value::Null,
                    },
                    ..Default::default()
                };
                let mut state = convert::state_from_server(&d, &prior, true);
                plan::adopt_labels(&mut state, &configured.default_labels);
                Some((state, Private::Null))
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
