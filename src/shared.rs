//! The slot the provider, its resources and its data sources share.
//!
//! tf-provider constructs resources and data sources before `configure` runs, and `configure`
//! takes `&self`, so the configured API client reaches them through [`Shared`], which
//! `configure` fills. The slot also holds the cancellation token SIGINT triggers (see the
//! binary's main).
//!
//! A leaf of the Terraform glue: `provider`, `resources` and `data_sources` all use it, and it
//! uses none of them.

use std::sync::{Arc, RwLock};

use tf_provider::Diagnostics;
use tokio_util::sync::CancellationToken;

use crate::client::Client;
use crate::diag;

/// What `configure` produced: the client and the provider-level defaults.
pub struct Configured {
    pub client: Client,
    /// The provider's `cluster`, if set.
    pub default_cluster: Option<String>,
    /// `status_sync_period`: the settle window of rollout waits (see `crate::wait`).
    pub status_sync_period: std::time::Duration,
    /// Refresh reads served from listings (see `crate::client::snapshot`).
    pub snapshots: crate::client::snapshot::Snapshots,
    /// The provider's `default_labels` (null when unset; unknown until known).
    pub default_labels: tf_provider::value::Value<crate::schema::StringMap>,
}

/// State shared by the provider, its resources and data sources.
#[derive(Default)]
pub struct Shared {
    slot: RwLock<Option<Arc<Configured>>>,
    cancel: CancellationToken,
}

impl Shared {
    /// Fills the slot: what a successful `configure` produced.
    pub fn fill(&self, configured: Configured) {
        if let Ok(mut slot) = self.slot.write() {
            *slot = Some(Arc::new(configured));
        }
    }

    /// The configured client, or an error diagnostic when `configure` has not succeeded.
    pub fn configured(&self, diags: &mut Diagnostics) -> Option<Arc<Configured>> {
        let got = self.slot.read().ok().and_then(|g| g.clone());
        if got.is_none() {
            diag::not_configured(diags);
        }
        got
    }

    /// Cancelled when the provider receives SIGINT (Ctrl-C): long waits stop and save state.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }
}
