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
use tf_provider::{AttributePath, Diagnostics, Resource};

use crate::api;
use crate::diag;
use crate::shared::Shared;
use model::{
    content_of, description_of, plan_create, plan_update, schema, state_from_server, validate,
    SecretState,
};

// ------------------------------------------------------------------------------- resource

/// The resource.
pub struct SecretResource {
    shared: Arc<Shared>,
}

impl SecretResource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl Resource for SecretResource {
    type State<'a> = SecretState;
    type PrivateState<'a> = ValueEmpty;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        diag::report_problems(diags, validate(&config));
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

    async fn plan_create<'a>(
        &self,
        _diags: &mut Diagnostics,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        Some((plan_create(&proposed_state), Value::Null))
    }

    async fn plan_update<'a>(
        &self,
        _diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        prior_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>, Vec<AttributePath>)> {
        let (planned, replace) = plan_update(&prior_state, &proposed_state);
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

    async fn update<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        planned_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let configured = self.shared.configured(diags)?;
        let name = planned_state.name_str();
        // The whole content and the description: PATCH replaces, it does not merge.
        let req = api::UpdateSecretRequest {
            content: content_of(&planned_state),
            description: description_of(&planned_state),
        };
        match configured
            .client
            .update_secret(&planned_state.cluster_param(), &name, &req)
            .await
        {
            Ok(s) => Some((state_from_server(&s, &planned_state), planned_private_state)),
            Err(e) => {
                diag::api_error(diags, &format!("Cannot update secret {name}"), &e, None);
                Some((prior_state, planned_private_state))
            }
        }
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        _planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        let configured = self.shared.configured(diags)?;
        let name = prior_state.name_str();
        match configured
            .client
            .delete_secret(&prior_state.cluster_param(), &name)
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

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
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
