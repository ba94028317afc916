//! The interface between the reconciler and whatever runs replicas.
//!
//! [`Runtime`] is what a replica *is* to the reconciler: it starts and stops replica
//! processes, answers their probes, samples the endpoint load and takes the routes the
//! reconciler publishes. The server runs [`super::fleet::Fleet`] (real HTTP servers on loopback
//! ports, really probed); [`Simulated`] answers from the bento's behaviour and the clock, for
//! unit tests that drive time by hand. Both `fleet` and `reconcile` depend on this module,
//! not on each other.

use std::collections::HashSet;

use super::split::Split;
use super::store::{BentoRow, DeploymentRow, ReplicaRow};

/// Load of a deployment's endpoint, sampled once per reconcile.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Load {
    /// Requests in flight through the endpoint now.
    pub in_flight: usize,
    /// Most requests in flight at once since the previous sample.
    pub peak: usize,
    /// Most requests in flight at once during `scale_down_window_ms`.
    pub window_peak: usize,
    /// Milliseconds since the last request (0 while one is in flight).
    pub idle_ms: i64,
}

/// What a replica's process sees, resolved when it starts: environment variables (the
/// config's `envs` and the `env` secrets' items) and files (the `mountfile` secrets' items,
/// by path).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Environment {
    pub vars: std::collections::BTreeMap<String, String>,
    pub files: std::collections::BTreeMap<String, String>,
}

/// Where replicas run. Implementations must be cheap: they are called under the DB lock.
pub trait Runtime: Send + Sync + 'static {
    /// Starts the replica's process; returns the port it listens on, if any.
    fn start(
        &self,
        d: &DeploymentRow,
        replica: &ReplicaRow,
        bento: &BentoRow,
        env: &Environment,
    ) -> Option<i64>;
    /// Does the replica's process exist? (`false` after a restart of the control plane.)
    fn exists(&self, _replica: &ReplicaRow) -> bool {
        true
    }
    /// Readiness probe (`/readyz`).
    fn ready(&self, replica: &ReplicaRow, bento: &BentoRow, now: i64) -> bool;
    /// Liveness: has a ready replica died?
    fn crashed(&self, replica: &ReplicaRow, bento: &BentoRow, now: i64) -> bool;
    /// Draining replica: have its in-flight requests finished?
    fn drained(&self, replica: &ReplicaRow, now: i64, drain_ms: i64) -> bool;
    /// Stops the process.
    fn stop(&self, replica: &ReplicaRow);
    /// Endpoint load of a deployment; `None` disables autoscaling.
    fn load(&self, _deployment_id: i64, _now: i64) -> Option<Load> {
        None
    }
    /// What the endpoint measured for one service of a deployment since the previous call for
    /// it (see `crate::autoscale`); `None` disables policy-driven autoscaling.
    fn service_load(
        &self,
        _deployment_id: i64,
        _service: &str,
        _now: i64,
    ) -> Option<crate::autoscale::ServiceLoad> {
        None
    }
    /// The committed state of a deployment after a reconcile (routes its endpoint).
    fn publish(&self, _update: RouteUpdate) {}
    /// Forgets every deployment and replica not listed (deleted, terminated, stopped).
    fn retain(&self, _deployments: &HashSet<i64>, _replicas: &HashSet<String>) {}
}

/// Replicas as rows and timing only: ready `startup_ms` after start (never when `unready`),
/// crash `crash_after_ms` after ready, drained `drain_ms` after draining began.
pub struct Simulated;

impl Runtime for Simulated {
    fn start(
        &self,
        _: &DeploymentRow,
        _: &ReplicaRow,
        _: &BentoRow,
        _: &Environment,
    ) -> Option<i64> {
        None
    }
    fn ready(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
        !b.behaviour.unready && now >= r.started_at + b.behaviour.startup_ms
    }
    fn crashed(&self, r: &ReplicaRow, b: &BentoRow, now: i64) -> bool {
        match (b.behaviour.crash_after_ms, r.ready_at) {
            (Some(after), Some(ready)) => now >= ready + after,
            _ => false,
        }
    }
    fn drained(&self, r: &ReplicaRow, now: i64, drain_ms: i64) -> bool {
        now >= r.drain_started_at.unwrap_or(now) + drain_ms
    }
    fn stop(&self, _: &ReplicaRow) {}
}

/// What the reconciler publishes after each reconcile of a deployment.
pub struct RouteUpdate<'a> {
    pub deployment: &'a DeploymentRow,
    pub org: &'a str,
    pub replicas: &'a [ReplicaRow],
    pub wake: bool,
    /// The canary split the endpoint applies (see `reconcile::routing`).
    pub split: Option<Split>,
    /// `config_overrides.traffic` of the entry service of the serving revision (the endpoint
    /// serves the entry service).
    pub traffic: bentocloud_api::settings::Traffic,
    /// `cold_start_timeout` of that service, in milliseconds: how long a request waits for a
    /// scaled-to-zero deployment to wake (`None`: `Timing::wake_timeout_ms`).
    pub cold_start_ms: Option<i64>,
}
