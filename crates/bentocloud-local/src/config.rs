//! Server configuration: the clusters and instance types the control plane offers, and the
//! timings of the platform (probes, drain, progress deadline, autoscaling, reconciler tick).
//!
//! Clusters and instance types are platform-wide (like the regions of a BentoCloud account):
//! every organisation sees the same ones. Everything a user creates is scoped by organisation.
//! A `--config FILE` (JSON or YAML) replaces the defaults; omitted keys keep their defaults.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// One instance type offered in a cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceTypeSpec {
    pub name: String,
    pub display_name: String,
    pub description: String,
    /// `cpu` or `gpu`.
    pub group: String,
    pub cpu: String,
    pub memory: String,
    pub gpu: u32,
    pub gpu_type: String,
    pub gpu_memory: String,
    /// Hourly price, as a string (the API's type).
    pub price: String,
    /// The one used when a service gives no `instance_type`.
    pub default: bool,
}

impl Default for InstanceTypeSpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            display_name: String::new(),
            description: String::new(),
            group: "cpu".into(),
            cpu: "1".into(),
            memory: "2Gi".into(),
            gpu: 0,
            gpu_type: String::new(),
            gpu_memory: String::new(),
            price: "0.0".into(),
            default: false,
        }
    }
}

/// One cluster and its instance types.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterSpec {
    pub name: String,
    pub description: String,
    pub instance_types: Vec<InstanceTypeSpec>,
}

/// Timings of the platform, in milliseconds (the `timing:` key of `--config`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timing {
    /// Reconciler period.
    pub tick_ms: u64,
    /// Simulated runtime only (unit tests): how long a draining replica takes to stop. Real
    /// replicas stop as soon as their in-flight requests finished (see `drain_timeout_ms`).
    pub drain_ms: i64,
    /// A new replica not ready after this long fails the rollout.
    pub progress_deadline_ms: i64,
    /// Pause between two steps of a `RampedSlowRollout`.
    pub ramp_pause_ms: i64,
    /// Period of the readiness (`/readyz`) probe of a starting replica.
    pub probe_ms: u64,
    /// Period of the liveness (`/livez`) probe of a ready replica; two failures in a row mark
    /// it crashed.
    pub liveness_probe_ms: u64,
    /// A draining replica still busy after this long is stopped anyway (requests cut).
    pub drain_timeout_ms: i64,
    /// Autoscaling target: in-flight requests per replica through the endpoint.
    pub scale_target_in_flight: u32,
    /// Scale-down stabilisation: replicas are removed only when the load of this whole
    /// window fits in fewer replicas (scale-up is immediate).
    pub scale_down_window_ms: i64,
    /// Period of the evaluation of a service's autoscaling policy (`scaling.policy`, see
    /// `crate::autoscale`): the Kubernetes HPA controller's sync period, 15 s by default.
    /// Services without a policy are scaled on every tick from `scale_target_in_flight`.
    pub scale_eval_ms: i64,
    /// With `min_replicas = 0`, no request for this long scales the deployment to zero.
    pub scale_to_zero_idle_ms: i64,
    /// How long the endpoint holds a request to a scaled-to-zero deployment while it wakes.
    pub wake_timeout_ms: i64,
    /// Period of the status sync: the `status` the API reports is recomputed from the
    /// replicas at most this often, so it lags a create/update/rollout by up to this long (the
    /// platform's ancestor syncs from a goroutine, pod events and a one-minute cron; API doc
    /// §10). Create, update and void_update responses carry the previous status.
    pub status_sync_ms: i64,
    /// A crashed replica is replaced only after this back-off, doubled for each further crash
    /// of the same service within [`CRASH_MEMORY_MS`] and capped at 30 times itself: the
    /// kubelet's `CrashLoopBackOff` (10 s, doubling, 5 min cap; reset after 10 min without a
    /// crash), which keeps a crash-looping deployment `unhealthy` for the back-off rather than
    /// healing it within a probe period.
    pub crash_backoff_ms: i64,
}

/// Crashes older than this no longer lengthen the back-off (the kubelet resets its
/// `CrashLoopBackOff` after a container ran 10 minutes).
pub const CRASH_MEMORY_MS: i64 = 600_000;

impl Default for Timing {
    fn default() -> Self {
        Self {
            tick_ms: 50,
            drain_ms: 300,
            progress_deadline_ms: 10_000,
            ramp_pause_ms: 1_000,
            probe_ms: 50,
            liveness_probe_ms: 500,
            drain_timeout_ms: 30_000,
            scale_target_in_flight: 4,
            scale_down_window_ms: 1_500,
            scale_eval_ms: 15_000,
            scale_to_zero_idle_ms: 2_000,
            wake_timeout_ms: 30_000,
            status_sync_ms: 2_000,
            crash_backoff_ms: 10_000,
        }
    }
}

impl Timing {
    /// How long after the last of `crashes` recent crashes of a service its replacement
    /// starts: [`Timing::crash_backoff_ms`], doubled for each further crash, capped at 30 times
    /// itself (the kubelet's `CrashLoopBackOff`: 10 s, 20 s, 40 s, ... 5 min). No crash, no
    /// wait.
    pub fn crash_backoff(&self, crashes: i64) -> i64 {
        let base = self.crash_backoff_ms;
        if crashes <= 0 || base <= 0 {
            return 0;
        }
        let doublings = u32::try_from(crashes - 1).unwrap_or(u32::MAX).min(16);
        base.saturating_mul(1 << doublings)
            .min(base.saturating_mul(30))
    }
}

/// The `--config FILE` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PlatformConfig {
    /// The first cluster is the default one (`is_first`).
    pub clusters: Vec<ClusterSpec>,
    pub timing: Timing,
    /// Name of the organisation owning the server's main token.
    pub organization: String,
    /// Leave `bento.manifest` out of the targets of deployment documents (get, list, create,
    /// update, ...). The official client types it as optional (`BentoManifestSchema | null`,
    /// API doc §3.3), so the real API may well not embed it; a client must then read the entry
    /// service of a multi-service bento from `GET /api/v1/bento_repositories/{repo}/bentos/
    /// {version}`, as the official client does (§5.2 step 4). The bento endpoints keep their
    /// manifest. Default `false` (embedded, like the samples of §3.3).
    pub omit_bento_manifest: bool,
    /// Return secret item values in secret documents (get, list, create, update). Whether the
    /// real API does is unknown: the official CLI only ever shows keys, and its schema types
    /// `value` as optional (API doc §3.4, §10). Default `false` (values are `null`): a client
    /// must not depend on reading a value back.
    pub secret_values_in_reads: bool,
}

impl Default for PlatformConfig {
    fn default() -> Self {
        let types = default_instance_types();
        Self {
            clusters: vec![
                ClusterSpec {
                    name: "local-east".into(),
                    description: "Local cluster (default)".into(),
                    instance_types: types.clone(),
                },
                ClusterSpec {
                    name: "local-west".into(),
                    description: "Local cluster".into(),
                    instance_types: types,
                },
            ],
            timing: Timing::default(),
            organization: "local".into(),
            omit_bento_manifest: false,
            secret_values_in_reads: false,
        }
    }
}

impl InstanceTypeSpec {
    /// An instance type (`gpu`: count, type, memory; no GPU when the count is 0), not the
    /// default one.
    pub fn new(
        name: &str,
        display: &str,
        cpu: &str,
        memory: &str,
        gpu: (u32, &str, &str),
        price: &str,
    ) -> InstanceTypeSpec {
        InstanceTypeSpec {
            name: name.into(),
            display_name: display.into(),
            description: format!("{display}: {cpu} vCPU, {memory} memory"),
            group: if gpu.0 > 0 { "gpu" } else { "cpu" }.into(),
            cpu: cpu.into(),
            memory: memory.into(),
            gpu: gpu.0,
            gpu_type: gpu.1.into(),
            gpu_memory: gpu.2.into(),
            price: price.into(),
            default: false,
        }
    }
}

/// A built-in instance type; `cpu.1` is the default.
fn it(
    name: &str,
    display: &str,
    cpu: &str,
    memory: &str,
    gpu: (u32, &str, &str),
    price: &str,
) -> InstanceTypeSpec {
    InstanceTypeSpec {
        default: name == "cpu.1",
        ..InstanceTypeSpec::new(name, display, cpu, memory, gpu, price)
    }
}

/// `cpu.1` (default), `cpu.2`, `cpu.4`, `gpu.t4.1`, `gpu.l4.1`.
pub fn default_instance_types() -> Vec<InstanceTypeSpec> {
    vec![
        it("cpu.1", "cpu.1", "500m", "2Gi", (0, "", ""), "0.0484"),
        it("cpu.2", "cpu.2", "1000m", "4Gi", (0, "", ""), "0.0968"),
        it("cpu.4", "cpu.4", "3000m", "16Gi", (0, "", ""), "0.3872"),
        it(
            "gpu.t4.1",
            "gpu.t4.1",
            "4000m",
            "16Gi",
            (1, "nvidia-tesla-t4", "16Gi"),
            "0.6989",
        ),
        it(
            "gpu.l4.1",
            "gpu.l4.1",
            "6000m",
            "24Gi",
            (1, "nvidia-l4", "24Gi"),
            "1.0064",
        ),
    ]
}

impl PlatformConfig {
    /// Reads a JSON or YAML file (YAML is a superset of JSON, so one parser reads both).
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        let cfg: PlatformConfig = serde_yaml::from_str(&text)
            .map_err(|e| format!("config {} is invalid: {e}", path.display()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Every cluster has a unique name and at least one instance type; one default each.
    pub fn validate(&self) -> Result<(), String> {
        if self.clusters.is_empty() {
            return Err("the config defines no cluster".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.clusters {
            if c.name.is_empty() || !seen.insert(c.name.clone()) {
                return Err(format!("cluster name {:?} is empty or repeated", c.name));
            }
            if c.instance_types.is_empty() {
                return Err(format!("cluster {:?} has no instance type", c.name));
            }
        }
        if self.organization.is_empty() {
            return Err("organization is empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_two_clusters_and_a_default_instance_type() {
        let c = PlatformConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.clusters[0].name, "local-east");
        assert_eq!(c.clusters[1].name, "local-west");
        let names: Vec<&str> = c.clusters[0]
            .instance_types
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, ["cpu.1", "cpu.2", "cpu.4", "gpu.t4.1", "gpu.l4.1"]);
        assert_eq!(
            c.clusters[0]
                .instance_types
                .iter()
                .filter(|t| t.default)
                .count(),
            1
        );
    }

    #[test]
    fn yaml_config_overrides_clusters_and_keeps_default_timing() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("c.yaml");
        std::fs::write(
            &p,
            "clusters:\n  - name: eu\n    instance_types:\n      - name: small\n        default: true\n",
        )
        .expect("write");
        let c = PlatformConfig::from_file(&p).expect("parse");
        assert_eq!(c.clusters.len(), 1);
        assert_eq!(c.clusters[0].instance_types[0].name, "small");
        assert_eq!(c.timing, Timing::default());
        std::fs::write(&p, "{\"clusters\": []}").expect("write");
        assert!(PlatformConfig::from_file(&p).is_err());
    }
}
