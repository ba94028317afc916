//! The one implementation of tf-provider's [`DataSource`]: every data source of the provider is
//! a [`Source`] of its state type, and the state type says, through [`Data`], its schema, what
//! is wrong with a configuration and how a read fills it in.

use std::marker::PhantomData;
use std::sync::Arc;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tf_provider::schema::Schema;
use tf_provider::value::ValueEmpty;
use tf_provider::{DataSource, Diagnostics};

use crate::diag::{self, Problem};
use crate::shared::{Configured, Shared};

/// The state of a data source: its configuration before a read, its outputs after.
#[async_trait]
pub trait Data: Serialize + DeserializeOwned + Send + 'static {
    /// The data source's schema.
    fn schema() -> Schema;

    /// What is wrong with the configuration, as far as it is known. Reported at validation;
    /// a read of a configuration with problems stops before asking the server.
    fn problems(&self) -> Vec<Problem> {
        Vec::new()
    }

    /// Validation: reports [`Data::problems`].
    fn validate(&self, diags: &mut Diagnostics) {
        diag::report_problems(diags, self.problems());
    }

    /// The outputs for this configuration, read with the configured client; `None` (with an
    /// error in `diags`) when there are none.
    async fn read(self, configured: &Configured, diags: &mut Diagnostics) -> Option<Self>;
}

/// A data source whose state is `D`, holding the provider's shared slot.
pub struct Source<D> {
    shared: Arc<Shared>,
    data: PhantomData<fn() -> D>,
}

impl<D> Source<D> {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            data: PhantomData,
        }
    }
}

#[async_trait]
impl<D: Data> DataSource for Source<D> {
    type State<'a> = D;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(D::schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        config.validate(diags);
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        if diag::report_problems(diags, config.problems()) {
            return None;
        }
        let configured = self.shared.configured(diags)?;
        config.read(&configured, diags).await
    }
}
