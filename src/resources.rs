//! Terraform resources of the provider (one module per resource).

pub mod deployment;

pub use deployment::DeploymentResource;
