//! Wire types of the BentoCloud REST API (serde only).
//!
//! These structs are the JSON documents exchanged with BentoCloud, as described in
//! `shared/docs/bentocloud-api.md` (read from the official `bentoml` client and observed on the
//! wire). They are shared by the provider's HTTP client (`bentocloud::client`) and the local
//! control plane (`bentocloud-local`); this module never talks HTTP and knows nothing about
//! Terraform.
//!
//! Rules that shape them:
//! - Deserialisation is lenient (`#[serde(default)]` almost everywhere): the real API may add or
//!   omit keys and the provider must keep working.
//! - Serialisation is complete: the official client (cattrs) requires every key of a
//!   `ResourceSchema`, and turns a `null` string into the literal `"None"`, so strings are never
//!   serialised as null.
//! - Fields the provider does not model (`extras`, `config_overrides`, scaling `policy`) are kept
//!   as raw JSON so a read-modify-write PUT sends them back untouched. `canary` is typed: a
//!   response never carries it as such (it is rebuilt from the targets and `manifest.routing`,
//!   see [`Deployment::canary`]), so it has to be rebuilt field by field anyway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The base keys every BentoCloud resource carries (`ResourceSchema`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ResourceMeta {
    pub uid: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub name: String,
    pub resource_type: String,
    pub labels: Vec<LabelItem>,
}

impl ResourceMeta {
    /// The keys of [`ResourceMeta`] on the wire, flattened into each resource document: a
    /// document that lacks one is not the real API's shape.
    pub const KEYS: [&'static str; 7] = [
        "uid",
        "created_at",
        "updated_at",
        "deleted_at",
        "name",
        "resource_type",
        "labels",
    ];
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct LabelItem {
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct EnvItem {
    pub name: String,
    pub value: String,
}

/// `UserSchema` (plus the Yatai extras the client ignores).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub avatar_url: String,
    pub is_super_admin: bool,
}

/// `OrganizationSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Organization {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub description: String,
}

/// `ClusterSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Cluster {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub description: String,
    pub organization_name: String,
    pub creator: User,
    pub is_first: Option<bool>,
}

/// The organisation's default cluster among `clusters` (the whole `GET /api/v1/clusters`
/// listing): the one with `is_first == true`, else the only cluster; `None` when the API does
/// not say.
///
/// Why `is_first`: `ClusterSchema` has no field named "default"; its only marker is `is_first`
/// (bool|null, optional; API doc §3.1, v1.py:62-67). The official client treats the cluster
/// with `is_first == false` as a non-default one: its admin-console URL for such a deployment
/// needs `?cluster=..&namespace=..`, the first cluster's does not (cdep.py:1328-1330, §3.3).
/// And a request without `cluster` goes to one cluster chosen by the server (§2, §2.3): with a
/// single cluster that can only be it. With several clusters and no `is_first == true`, which
/// one the server picks is not documented, so none is called the default.
pub fn default_cluster(clusters: &[Cluster]) -> Option<&Cluster> {
    clusters
        .iter()
        .find(|c| c.is_first == Some(true))
        .or(match clusters {
            [only] => Some(only),
            _ => None,
        })
}

/// `{start, count, total, items}`: every list endpoint's envelope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListResponse<T> {
    pub start: u64,
    pub count: u64,
    pub total: u64,
    pub items: Vec<T>,
}

/// Deployment status values (`DeploymentStatus`, ms.py:350-362).
/// Serialised as its kebab-case wire string; a string we do not know reads as `Unknown`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum DeploymentStatus {
    #[default]
    Unknown,
    NonDeployed,
    Running,
    Unhealthy,
    Failed,
    Deploying,
    Terminating,
    Terminated,
    ImageBuilding,
    ImageBuildFailed,
    ImageBuildSucceeded,
    ScaledToZero,
}

impl DeploymentStatus {
    pub const ALL: [DeploymentStatus; 12] = [
        Self::Unknown,
        Self::NonDeployed,
        Self::Running,
        Self::Unhealthy,
        Self::Failed,
        Self::Deploying,
        Self::Terminating,
        Self::Terminated,
        Self::ImageBuilding,
        Self::ImageBuildFailed,
        Self::ImageBuildSucceeded,
        Self::ScaledToZero,
    ];

    /// The wire spelling, e.g. `image-build-failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::NonDeployed => "non-deployed",
            Self::Running => "running",
            Self::Unhealthy => "unhealthy",
            Self::Failed => "failed",
            Self::Deploying => "deploying",
            Self::Terminating => "terminating",
            Self::Terminated => "terminated",
            Self::ImageBuilding => "image-building",
            Self::ImageBuildFailed => "image-build-failed",
            Self::ImageBuildSucceeded => "image-build-succeeded",
            Self::ScaledToZero => "scaled-to-zero",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Statuses of a rollout that has not reached a verdict yet (the official client keeps
    /// waiting on them, API doc §4).
    pub fn is_in_progress(self) -> bool {
        matches!(
            self,
            Self::Unknown
                | Self::NonDeployed
                | Self::Deploying
                | Self::ImageBuilding
                | Self::ImageBuildSucceeded
        )
    }

    /// Statuses that say the latest rollout failed (`unhealthy` may still recover).
    pub fn is_rollout_failure(self) -> bool {
        matches!(
            self,
            Self::Failed | Self::ImageBuildFailed | Self::Unhealthy
        )
    }
}

impl Serialize for DeploymentStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for DeploymentStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(Self::parse(&s).unwrap_or(Self::Unknown))
    }
}

impl std::fmt::Display for DeploymentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Rollout strategies accepted in `services.<name>.deployment_strategy` (the wire keeps the
/// string, so a value this provider does not know still reads and is sent back untouched).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Strategy {
    RollingUpdate,
    Recreate,
    RampedSlowRollout,
    BestEffortControlledRollout,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Self::RollingUpdate,
        Self::Recreate,
        Self::RampedSlowRollout,
        Self::BestEffortControlledRollout,
    ];

    /// The wire spelling, e.g. `RollingUpdate`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::RollingUpdate => "RollingUpdate",
            Self::Recreate => "Recreate",
            Self::RampedSlowRollout => "RampedSlowRollout",
            Self::BestEffortControlledRollout => "BestEffortControlledRollout",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `DeploymentFullSchema` (get/create/update/terminate/delete) and `DeploymentSchema` (list
/// items, which have no `urls`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Deployment {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub status: DeploymentStatus,
    pub kube_namespace: String,
    pub creator: User,
    pub cluster: Cluster,
    pub latest_revision: Option<Revision>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<DeploymentManifest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
}

impl Deployment {
    /// The main target of the latest revision: the one named `main`, else the first.
    pub fn main_target(&self) -> Option<&Target> {
        let rev = self.latest_revision.as_ref()?;
        let targets: Vec<&Target> = rev.targets.iter().flatten().collect();
        targets
            .iter()
            .find(|t| t.meta.name == "main")
            .or_else(|| targets.first())
            .copied()
    }

    /// The uid of the latest revision, if any.
    pub fn revision_uid(&self) -> Option<&str> {
        self.latest_revision.as_ref().map(|r| r.meta.uid.as_str())
    }

    /// `repo:version` of the main target's bento.
    pub fn bento_tag(&self) -> Option<String> {
        let bento = self.main_target()?.bento.as_ref()?;
        Some(format!("{}:{}", bento.repository.meta.name, bento.version))
    }

    /// The canary as an update body must carry it back, rebuilt the way the official client
    /// does (`cdep.py:1258-1290`, `_convert_schema_to_update_schema`; API doc §3.2, §3.3, §10):
    /// `route_type`/`route_by` from `manifest.routing`, and one version per target other than
    /// the main one, named after the target, with that target's bento, config (envs, secrets,
    /// services) and its weight from `manifest.routing.weights`. The real API never returns
    /// `canary` inside `targets[].config`, so this is the only place a canary can be read from.
    /// With a single target there are no versions (the client does not look at it as a canary
    /// version either). `None` when there is neither routing nor a second target.
    pub fn canary(&self) -> Option<Canary> {
        let routing = self.manifest.as_ref().and_then(|m| m.routing.as_ref());
        let mut canary = routing.map(|r| Canary {
            route_type: r.route_type.clone(),
            route_by: r.route_by.clone(),
            versions: None,
        });
        let targets: Vec<&Target> = self
            .latest_revision
            .iter()
            .flat_map(|r| r.targets.iter().flatten())
            .collect();
        if targets.len() < 2 {
            return canary;
        }
        let main = self.main_target();
        for t in targets {
            if main.is_some_and(|m| std::ptr::eq(m, t)) {
                continue;
            }
            let cfg = t.config.clone().unwrap_or_default();
            let weight = routing
                .and_then(|r| r.weights.as_ref())
                .and_then(|w| w.get(&t.meta.name))
                .copied();
            canary
                .get_or_insert_with(Canary::default)
                .versions
                .get_or_insert_with(BTreeMap::new)
                .insert(
                    t.meta.name.clone(),
                    CanaryVersion {
                        bento: t
                            .bento
                            .as_ref()
                            .map(|b| format!("{}:{}", b.repository.meta.name, b.version)),
                        weight,
                        envs: cfg.envs,
                        secrets: cfg.secrets,
                        services: cfg.services,
                    },
                );
        }
        canary
    }
}

/// `manifest` of a deployment: `{dev, routing}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentManifest {
    pub dev: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<Routing>,
}

/// `manifest.routing` (`DeploymentRoutingManifestSchema`, v2.py:114-118): how traffic is split
/// between the main target and the canary versions. The official client raises when `weights`
/// lacks a version that has a target (cdep.py:1282-1289).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Routing {
    /// `random`, `header` or `query`.
    pub route_type: Option<String>,
    /// The header or query parameter that picks a version (`header`/`query` routing).
    pub route_by: Option<String>,
    /// Percent of the traffic per canary version (`random` routing); the main target gets the
    /// rest.
    pub weights: Option<BTreeMap<String, i64>>,
}

/// `canary` of a create/update body (`DeploymentCanarySchema`, v2.py:62-95; API doc §3.2).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Canary {
    /// `random`, `header` or `query` (the client's type is that `Literal`, or null).
    pub route_type: Option<String>,
    pub route_by: Option<String>,
    /// Canary versions by name; each becomes a target named after its key.
    pub versions: Option<BTreeMap<String, CanaryVersion>>,
}

/// One canary version (`DeploymentVersionSchema`): its own bento, weight and configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryVersion {
    pub bento: Option<String>,
    pub weight: Option<i64>,
    pub envs: Option<Vec<EnvItem>>,
    pub secrets: Option<Vec<String>>,
    pub services: BTreeMap<String, ServiceConfig>,
}

/// `DeploymentRevisionSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Revision {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub creator: Option<User>,
    /// `active` or `inactive`.
    pub status: String,
    pub targets: Vec<Option<Target>>,
}

/// `DeploymentTargetSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Target {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub creator: Option<User>,
    pub config: Option<DeploymentConfig>,
    pub bento: Option<Bento>,
    pub kube_resource_uid: String,
    pub kube_resource_version: String,
}

/// The effective configuration of a target (same shape as the request body, minus
/// `name`/`bento`/`dev`/`canary`).
///
/// There is deliberately no `canary` field: the official client never reads `canary` from
/// `targets[].config` (API doc §3.3, corrected; cdep.py:505-554 and 1258-1290 rebuild it from
/// the extra targets and `manifest.routing`), so the real API need not send it there, and
/// neither the provider nor the emulator may depend on it. Use [`Deployment::canary`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentConfig {
    pub access_authorization: bool,
    pub envs: Option<Vec<EnvItem>>,
    pub labels: Option<Vec<LabelItem>>,
    pub secrets: Option<Vec<String>>,
    pub services: BTreeMap<String, ServiceConfig>,
}

/// `DeploymentServiceConfig`: per-service settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServiceConfig {
    pub instance_type: Option<String>,
    pub scaling: Option<Scaling>,
    pub envs: Option<Vec<EnvItem>>,
    pub deployment_strategy: Option<String>,
    pub extras: Option<Json>,
    pub cold_start_timeout: Option<i64>,
    pub config_overrides: Json,
}

/// `{min_replicas, max_replicas, policy}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Scaling {
    pub min_replicas: Option<i64>,
    pub max_replicas: Option<i64>,
    pub policy: Option<Json>,
}

/// Request body of `POST /api/v2/deployments` (`CreateDeploymentSchema`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateDeploymentRequest {
    pub name: Option<String>,
    pub dev: bool,
    #[serde(flatten)]
    pub spec: UpdateDeploymentRequest,
}

/// Request body of `PUT /api/v2/deployments/{name}` (`UpdateDeploymentSchema`): the whole
/// desired configuration. `labels: null` means "keep the existing labels" (the official client
/// never sends them back on update).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateDeploymentRequest {
    pub bento: String,
    pub access_authorization: bool,
    pub envs: Option<Vec<EnvItem>>,
    pub labels: Option<Vec<LabelItem>>,
    pub secrets: Option<Vec<String>>,
    pub services: BTreeMap<String, ServiceConfig>,
    /// `null` removes the canary (the whole configuration is replaced, §5.1).
    pub canary: Option<Canary>,
}

/// `BentoWithRepositorySchema` / `BentoSchema`. `name` equals `version` (the official client's
/// update path rebuilds the tag from `name`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Bento {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub description: String,
    pub version: String,
    pub image_build_status: String,
    pub upload_status: String,
    pub upload_finished_reason: String,
    pub presigned_upload_url: String,
    pub presigned_download_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<BentoManifest>,
    pub build_at: String,
    pub repository: BentoRepository,
}

/// `BentoManifestSchema` (the keys the client requires, plus the ones it reads).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BentoManifest {
    pub service: String,
    pub bentoml_version: String,
    pub size_bytes: i64,
    pub entry_service: String,
    pub name: String,
    pub apis: Json,
    pub models: Vec<Json>,
    /// `[{name, service, ...}]`: one entry per service of a multi-service bento.
    pub services: Vec<Json>,
    pub envs: Vec<Json>,
    pub schema: Json,
    pub spec: i64,
}

impl BentoManifest {
    /// Names of the services the bento declares (the entry service first).
    pub fn service_names(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        if !self.entry_service.is_empty() {
            names.push(self.entry_service.clone());
        }
        for s in &self.services {
            if let Some(n) = s.get("name").and_then(Json::as_str) {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_string());
                }
            }
        }
        names
    }
}

/// `BentoRepositorySchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BentoRepository {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub description: String,
    pub latest_bento: Option<Json>,
}

/// `SecretSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Secret {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub description: String,
    pub creator: User,
    pub content: SecretContent,
    pub cluster: Option<Cluster>,
}

/// `{type, items, path, stage}`; `type` is `env` or `mountfile`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretContent {
    #[serde(rename = "type")]
    pub kind: String,
    pub items: Vec<SecretItem>,
    pub path: Option<String>,
    pub stage: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretItem {
    pub key: String,
    pub sub_path: Option<String>,
    pub value: Option<String>,
}

/// `CreateSecretSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateSecretRequest {
    pub name: String,
    pub content: SecretContent,
    pub description: Option<String>,
}

/// `UpdateSecretSchema`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateSecretRequest {
    pub content: SecretContent,
    pub description: Option<String>,
}

/// `ResourceInstanceSchema`: an instance type (`GET /api/v1/instance_types` returns a bare
/// array of these).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceType {
    #[serde(flatten)]
    pub meta: ResourceMeta,
    pub display_name: String,
    pub description: String,
    pub config: InstanceTypeConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceTypeConfig {
    pub group: String,
    /// `{requests: {cpu, memory, gpu, custom}, limits: {...}}`
    pub resources: Json,
    pub price: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selectors: Option<Json>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu_config: Option<Json>,
}

/// One pod of a deployment (`KubePodSchema` of the platform's ancestor, API doc §10), as the
/// pods stream `/ws/v2/deployments/{name}/pods` sends it. Lenient: only what the provider
/// reads is typed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KubePod {
    pub name: String,
    /// The operator's labels, e.g. `yatai.ai/bento-version`.
    pub labels: BTreeMap<String, String>,
    pub status: KubePodStatus,
    /// kubectl's view: `status` is e.g. `Running`, `Terminating`, `CrashLoopBackOff`.
    pub pod_status: Option<KubePodRuntime>,
    /// Kubernetes events about the pod (`{reason, message, ...}`).
    pub warnings: Option<Vec<KubeEvent>>,
}

impl KubePod {
    /// Being deleted (no longer receives traffic).
    pub fn is_terminating(&self) -> bool {
        self.pod_status
            .as_ref()
            .is_some_and(|p| p.status == "Terminating")
    }
}

/// `pod_status` of a [`KubePod`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KubePodRuntime {
    pub status: String,
    pub phase: String,
}

/// `status` of a [`KubePod`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KubePodStatus {
    pub phase: String,
    pub ready: bool,
    /// When the pod started (server clock: Kubernetes' `metav1.Time`, to the second).
    pub start_time: Option<String>,
    /// A pod the platform itself marks as left over from an earlier rollout. Yatai's schema
    /// has it (API doc §10) but its transformer always sends `false`: only `true` is evidence.
    pub is_old: bool,
    /// A pod of a canary version (it runs another bento by design).
    pub is_canary: bool,
}

/// A Kubernetes event attached to a pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct KubeEvent {
    pub reason: String,
    pub message: String,
}

/// The pod label naming the bento version a pod runs (the operator's; API doc §10).
pub const POD_BENTO_VERSION_LABEL: &str = "yatai.ai/bento-version";

/// A frame of the pods stream: `{type, message, payload}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PodsFrame {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
    pub payload: Option<Vec<KubePod>>,
}

/// `{"error": "..."}`: the error body BentoCloud (Yatai heritage) returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorBody {
    pub error: String,
}

#[cfg(test)]
mod tests;
