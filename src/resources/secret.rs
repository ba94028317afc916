//! `bentocloud_secret`: an organisation secret (`/api/v1/org_secrets`, API doc §2.2, §3.4,
//! §10), created, read, replaced with `PATCH` of its whole content, deleted and imported by
//! name.
//!
//! What the API does not give back shapes the resource:
//! - **values**: whether reads return them is unknown (the official CLI only ever shows keys),
//!   so values come from the configuration alone. Read detects drift on the keys, the
//!   description, the type and the path; a key that appeared on the server gets an empty value
//!   in state (so the next plan shows `items` changing and writes the configured content back),
//!   a key that disappeared leaves state. A value changed elsewhere cannot be seen.
//! - **version**: the API has no content version (its `updated_at` moves with the description
//!   too), so `version` is the provider's: `1` at create, one more with every apply that
//!   changes the content (`type`, `path`, `items`). It is known at plan time, so a deployment's
//!   `redeploy_triggers = { db = bentocloud_secret.db.version }` shows the redeploy in the plan.
//!   It is a counter, not a hash of the values: a hash would put a brute-forceable digest of the
//!   secret into plan output.
//! - **secrecy**: `items` is sensitive (Terraform masks it in plans). tf-provider 0.2.2 speaks
//!   protocol 6.5, which has no write-only attributes, so values are stored in state: treat the
//!   state as secret. The client never logs the bodies of the secrets endpoints.

pub mod model;

use std::sync::Arc;

use async_trait::async_trait;
use tf_provider::schema::Schema;
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics};

use super::managed::{Change, Managed, Operations, Proposal, Stored};
use crate::api;
use crate::diag::{self, Problem};
use crate::shared::Shared;
use model::{content_of, description_of, plan_create, plan_update, state_from_server, SecretState};

// ------------------------------------------------------------------------------- resource

/// The resource.
pub type SecretResource = Managed<Secrets>;

/// Its operations.
pub struct Secrets {
    shared: Arc<Shared>,
}

#[async_trait]
impl Operations for Secrets {
    type State = SecretState;
    type Private = ValueEmpty;

    fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn schema() -> Schema {
        model::schema()
    }

    fn problems(config: &SecretState) -> Vec<Problem> {
        model::validate(config)
    }

    async fn read(&self, diags: &mut Diagnostics, stored: Stored<Self>) -> Option<Stored<Self>> {
        let (state, private_state) = stored;
        let configured = self.shared.configured(diags)?;
        let name = state.name_str();
        match configured
            .client
            .get_secret_opt(&state.cluster_param(), &name)
            .await
        {
            Ok(Some(s)) => Some((state_from_server(&s, &state), private_state)),
            Ok(None) => {
                tracing::info!("secret {name} no longer exists; removing it from state");
                None
            }
            Err(e) => {
                diag::api_error(diags, &format!("Cannot read secret {name}"), &e, None);
                Some((state, private_state))
            }
        }
    }

    async fn plan_create(
        &self,
        _diags: &mut Diagnostics,
        proposed: SecretState,
    ) -> Option<SecretState> {
        Some(plan_create(&proposed))
    }

    async fn plan_update(
        &self,
        _diags: &mut Diagnostics,
        proposal: &Proposal<Self>,
    ) -> Option<(SecretState, Vec<AttributePath>)> {
        Some(plan_update(&proposal.prior, &proposal.proposed))
    }

    async fn create(&self, diags: &mut Diagnostics, planned: Stored<Self>) -> Option<Stored<Self>> {
        let (planned_state, planned_private_state) = planned;
        let configured = self.shared.configured(diags)?;
        let name = planned_state.name_str();
        let req = api::CreateSecretRequest {
            name: name.clone(),
            content: content_of(&planned_state),
            description: planned_state.description.as_ref_option().cloned(),
        };
        match configured
            .client
            .create_secret(&planned_state.cluster_param(), &req)
            .await
        {
            Ok(s) => Some((state_from_server(&s, &planned_state), planned_private_state)),
            Err(e) => {
                diag::api_error(diags, &format!("Cannot create secret {name}"), &e, None);
                None
            }
        }
    }

    async fn update(&self, diags: &mut Diagnostics, change: Change<Self>) -> Option<Stored<Self>> {
        let Change {
            prior,
            planned,
            private,
        } = change;
        let configured = self.shared.configured(diags)?;
        let name = planned.name_str();
        // The whole content and the description: PATCH replaces, it does not merge.
        let req = api::UpdateSecretRequest {
            content: content_of(&planned),
            description: description_of(&planned),
        };
        match configured
            .client
            .update_secret(&planned.cluster_param(), &name, &req)
            .await
        {
            Ok(s) => Some((state_from_server(&s, &planned), private)),
            Err(e) => {
                diag::api_error(diags, &format!("Cannot update secret {name}"), &e, None);
                Some((prior, private))
            }
        }
    }

    async fn destroy(&self, diags: &mut Diagnostics, prior: SecretState) -> Option<()> {
        let configured = self.shared.configured(diags)?;
        let name = prior.name_str();
        match configured
            .client
            .delete_secret(&prior.cluster_param(), &name)
            .await
        {
            Ok(()) => Some(()),
            Err(e) if e.is_not_found() => Some(()),
            Err(e) => {
                diag::api_error(diags, &format!("Cannot delete secret {name}"), &e, None);
                None
            }
        }
    }

    async fn import(&self, diags: &mut Diagnostics, id: String) -> Option<Stored<Self>> {
        let configured = self.shared.configured(diags)?;
        // `name`, or `cluster/name` for a secret of a cluster.
        let (cluster, name) = match id.split_once('/') {
            Some((c, n)) => (c.to_string(), n.to_string()),
            None => (String::new(), id.clone()),
        };
        if let Err(why) = crate::rules::secret_name(&name) {
            diag::invalid_import_id(
                diags,
                format!("{id:?} is not a secret name (or `cluster/name`): {why}"),
            );
            return None;
        }
        match configured.client.get_secret_opt(&cluster, &name).await {
            Ok(Some(s)) => {
                let prior = SecretState {
                    cluster: if cluster.is_empty() {
                        Value::Null
                    } else {
                        Value::Value(cluster)
                    },
                    ..Default::default()
                };
                Some((state_from_server(&s, &prior), Value::Null))
            }
            Ok(None) => {
                diag::secret_import_not_found(diags, &id);
                None
            }
            Err(e) => {
                diag::api_error(diags, &format!("Cannot import secret {id}"), &e, None);
                None
            }
        }
    }
}
