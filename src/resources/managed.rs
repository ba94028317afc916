//! The one implementation of tf-provider's [`Resource`]: every resource of the provider is a
//! [`Managed`] of its [`Operations`], which take only what they use. The protocol's plumbing
//! lives here once: the arguments no resource reads, reporting validation problems, and the
//! private state that planning carries over unchanged.

use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tf_provider::schema::Schema;
use tf_provider::value::ValueEmpty;
use tf_provider::{AttributePath, Diagnostics, Resource};

use crate::diag::{self, Problem};
use crate::shared::Shared;

/// What Terraform stores for a resource: its state and its private state.
pub type Stored<R> = (<R as Operations>::State, <R as Operations>::Private);

/// What the plan of an update starts from.
pub struct Proposal<R: Operations> {
    /// The state as stored.
    pub prior: R::State,
    /// What Terraform proposes: the configuration over the prior state.
    pub proposed: R::State,
    /// The configuration alone.
    pub config: R::State,
    /// The private state as stored; the plan keeps it.
    pub private: R::Private,
}

/// What an update applies.
pub struct Change<R: Operations> {
    /// The state as stored.
    pub prior: R::State,
    /// The state the plan promised.
    pub planned: R::State,
    /// The private state the plan carried.
    pub private: R::Private,
}

/// A resource's operations on the server, with the arguments they use.
#[async_trait]
pub trait Operations: Send + Sync + Sized + 'static {
    type State: Serialize + DeserializeOwned + Send + Sync;
    /// Its default is "nothing to remember", what a planned creation carries.
    type Private: Serialize + DeserializeOwned + Send + Sync + Default;

    fn new(shared: Arc<Shared>) -> Self;

    fn schema() -> Schema;

    /// What is wrong with a configuration, reported at validation.
    fn problems(config: &Self::State) -> Vec<Problem>;

    /// The stored state refreshed from the server; `None` when the object no longer exists.
    async fn read(&self, diags: &mut Diagnostics, stored: Stored<Self>) -> Option<Stored<Self>>;

    /// The state planned for a new object.
    async fn plan_create(
        &self,
        diags: &mut Diagnostics,
        proposed: Self::State,
    ) -> Option<Self::State>;

    /// The state planned for a change, and the attributes whose change replaces the object.
    async fn plan_update(
        &self,
        diags: &mut Diagnostics,
        proposal: &Proposal<Self>,
    ) -> Option<(Self::State, Vec<AttributePath>)>;

    /// Creates the object: `planned` is what the plan promised.
    async fn create(&self, diags: &mut Diagnostics, planned: Stored<Self>) -> Option<Stored<Self>>;

    async fn update(&self, diags: &mut Diagnostics, change: Change<Self>) -> Option<Stored<Self>>;

    async fn destroy(&self, diags: &mut Diagnostics, prior: Self::State) -> Option<()>;

    async fn import(&self, diags: &mut Diagnostics, id: String) -> Option<Stored<Self>>;
}

/// A resource whose operations are `R`.
pub struct Managed<R>(R);

impl<R: Operations> Managed<R> {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self(R::new(shared))
    }
}

#[async_trait]
impl<R: Operations> Resource for Managed<R> {
    type State<'a> = R::State;
    type PrivateState<'a> = R::Private;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(R::schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        diag::report_problems(diags, R::problems(&config));
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        state: Self::State<'a>,
        private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        self.0.read(diags, (state, private_state)).await
    }

    async fn plan_create<'a>(
        &self,
        diags: &mut Diagnostics,
        proposed_state: Self::State<'a>,
        _config_state: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        let planned = self.0.plan_create(diags, proposed_state).await?;
        Some((planned, R::Private::default()))
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
        let proposal = Proposal {
            prior: prior_state,
            proposed: proposed_state,
            config: config_state,
            private: prior_private_state,
        };
        let (planned, replace) = self.0.plan_update(diags, &proposal).await?;
        Some((planned, proposal.private, replace))
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
        self.0
            .create(diags, (planned_state, planned_private_state))
            .await
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
        let change = Change {
            prior: prior_state,
            planned: planned_state,
            private: planned_private_state,
        };
        self.0.update(diags, change).await
    }

    async fn destroy<'a>(
        &self,
        diags: &mut Diagnostics,
        prior_state: Self::State<'a>,
        _planned_private_state: Self::PrivateState<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<()> {
        self.0.destroy(diags, prior_state).await
    }

    async fn import<'a>(
        &self,
        diags: &mut Diagnostics,
        id: String,
    ) -> Option<(Self::State<'a>, Self::PrivateState<'a>)> {
        self.0.import(diags, id).await
    }
}
