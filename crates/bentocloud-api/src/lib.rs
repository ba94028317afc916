//! What the Terraform provider (`bentocloud`) and the local control plane
//! (`bentocloud-local`) share, and all they share: the wire types of the BentoCloud REST API
//! ([`api`], serde only), the naming and value rules both sides enforce ([`rules`]), and typed
//! views of the free-form autoscaling and traffic settings with their vocabulary ([`settings`]). It
//! knows nothing about HTTP, Terraform or the control plane.

// No panicking shortcuts outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod rules;
pub mod settings;
