//! Terraform resources of the provider (one module per resource).

pub mod deployment;
pub mod managed;
pub mod secret;

pub use deployment::DeploymentResource;
pub use secret::SecretResource;
