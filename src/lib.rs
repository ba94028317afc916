//! Terraform provider for BentoCloud deployments, and `bentocloud-local`, a local BentoCloud
//! control plane that the provider is developed and tested against.
//!
//! # Layout
//!
//! Layers depend one way only (a module may use the ones above it, never below):
//!
//! - [`api`]: wire types of the BentoCloud REST API (serde only) and [`rules`], the naming and
//!   value rules both sides enforce.
//! - [`client`]: the HTTP client, one method per endpoint, typed errors, retries, pagination.
//! - [`wait`]: the rollout acceptor and the poll loop that waits for a submitted revision.
//! - [`provider`], [`resources`], [`data_sources`], [`shared`], [`diag`]: the Terraform glue
//!   built on `tf-provider`; [`shared`] is the slot `configure` fills for the resources and data
//!   sources (so they do not import the provider that registers them), and [`diag`] is the one
//!   place errors become Terraform diagnostics.
//! - `emulator` (feature `local`): the local control plane. It depends on [`api`] and [`rules`]
//!   only; the provider binary builds with `--no-default-features`, which proves it does not link
//!   the control plane.

// No panicking shortcuts outside tests: errors become diagnostics or HTTP errors instead.
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
// `crate::api::...`, `crate::rules::...` and `bentocloud::api` read as before.
pub use bentocloud_api::{api, rules};

#[cfg(feature = "local")]
pub mod emulator;
