//! Terraform provider for BentoCloud deployments. It is developed and tested against
//! `bentocloud-local`, a local BentoCloud control plane, which is another crate of this
//! workspace.
//!
//! # Layout
//!
//! This crate is the root package of a Cargo workspace of three. The provider and the control
//! plane share one crate and nothing else, and the crate graph enforces it:
//!
//! - `bentocloud-api` (`crates/bentocloud-api`): [`api`], the wire types of the BentoCloud REST
//!   API (serde only), and [`rules`], the naming and value rules both sides enforce. Re-exported
//!   here, so `crate::api` and `bentocloud::api` are those modules.
//! - this crate, the provider. Its modules depend one way only (a module may use the ones above
//!   it, never below):
//!   - [`client`]: the HTTP client, one method per endpoint, typed errors, retries, pagination.
//!   - [`wait`]: the rollout acceptor and the poll loop that waits for a submitted revision.
//!   - [`provider`], [`resources`], [`data_sources`], [`shared`], [`diag`]: the Terraform glue
//!     built on `tf-provider`; [`shared`] is the slot `configure` fills for the resources and
//!     data sources (so they do not import the provider that registers them), and [`diag`] is
//!     the one place errors become Terraform diagnostics.
//! - `bentocloud-local` (`crates/bentocloud-local`): the local control plane. It depends on
//!   `bentocloud-api` only; this crate has it as a dev-dependency (the integration tests run
//!   the provider against it), never a normal one, so the provider binary does not link it.

// No panicking shortcuts outside tests: errors become diagnostics instead.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod client;
pub mod data_sources;
pub mod diag;
pub mod docs;
pub mod duration;
pub mod handshake;
pub mod logging;
pub mod provider;
pub mod resources;
pub mod schema;
pub mod shared;
pub mod wait;

// The wire types and rules live in their own crate, shared with bentocloud-local; re-exported so
// that `crate::api::...`, `crate::rules::...` and `bentocloud::api` name them here too.
pub use bentocloud_api::{api, rules, settings};
