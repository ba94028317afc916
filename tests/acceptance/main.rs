//! Acceptance tests: the real Terraform CLI (1.11.4 and 1.0.3) drives the provider binary
//! against a real `bentocloud-local` over real sockets. The harness lives in `harness.rs`.
