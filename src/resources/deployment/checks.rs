//! What `bentocloud_deployment` asks the server while planning and before a PUT: the
//! organisation's default cluster, whether a cluster and its instance types exist, the bento a
//! configuration names (and its entry service), and warnings about the refreshed status.
//! Asked only for values that changed, and cached per provider process.

use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use super::convert::{self, DEFAULT_ENTRY_SERVICE};
use super::model::{DeploymentState, LastApply};
use super::{locate, plan, Deployments};
use crate::api::Deployment;
use crate::client::Client;
use crate::diag;
use crate::rules::BentoTag;
use crate::wait;

impl Deployments {
    /// The organisation's default cluster (`is_first`), asked once per provider process, so a
    /// new deployment's plan shows its real cluster and id, and its instance type is checked
    /// against that cluster at plan time. `None` when the server does not say.
    pub(super) async fn server_default_cluster(&self, client: &Client) -> Option<String> {
        if let Some(c) = self.default_cluster.lock().ok().and_then(|g| g.clone()) {
            return Some(c);
        }
        let clusters = match client.list_clusters().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("cannot list clusters to find the default one: {e}");
                return None;
            }
        };
        let found = crate::api::default_cluster(&clusters).map(|c| c.meta.name.clone())?;
        if let Ok(mut g) = self.default_cluster.lock() {
            *g = Some(found.clone());
        }
        Some(found)
    }

    /// Plan-time checks that need the server: the cluster exists, and the instance types
    /// `planned` sets anew are offered there. Asked only when something to check changed
    /// ([`changed_instance_types`]), with the cluster's instance types cached per process.
    pub(super) async fn check_against_server(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        planned: &DeploymentState,
        prior: Option<&DeploymentState>,
    ) {
        let Value::Value(cluster) = &planned.location.cluster else {
            return;
        };
        let wanted = changed_instance_types(planned, prior);
        let cluster_changed = prior.map(|p| &p.location.cluster) != Some(&planned.location.cluster);
        if wanted.is_empty() && !cluster_changed {
            return;
        }
        let Some(offered) = self.instance_types_of(diags, client, cluster).await else {
            return;
        };
        for (path, it) in wanted {
            if !offered.iter().any(|o| o == &it) {
                diag::unknown_instance_type(diags, cluster, &it, &offered, path);
            }
        }
    }

    /// The names of the instance types `cluster` offers, cached per process. `None` when they
    /// cannot be read: after an error on a cluster that does not exist (a diagnostic), or
    /// after any other error (the check is skipped; apply reports what the API says).
    async fn instance_types_of(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        cluster: &str,
    ) -> Option<Vec<String>> {
        let cached = self
            .instance_types
            .lock()
            .ok()
            .and_then(|m| m.get(cluster).cloned());
        if cached.is_some() {
            return cached;
        }
        match client.list_instance_types(cluster).await {
            Ok(list) => {
                let names: Vec<String> = list.into_iter().map(|t| t.meta.name).collect();
                if let Ok(mut m) = self.instance_types.lock() {
                    m.insert(cluster.to_string(), names.clone());
                }
                Some(names)
            }
            Err(e) if e.is_not_found() => {
                diag::unknown_cluster(diags, cluster, &e);
                None
            }
            Err(e) => {
                tracing::debug!("plan-time instance type check skipped: {e}");
                None
            }
        }
    }

    /// The bento `planned` names, as `(entry service, repo:version)`: the entry service from
    /// the bento's manifest (`GET /api/v1/bento_repositories/{repo}/bentos/{version}`, or the
    /// newest of the repository when no version is given, as the official client resolves it,
    /// API doc §2.2), and the version that resolved to. Also checks `service` blocks name
    /// services the bento has, other than its entry service. `None` (with diagnostics) when the
    /// tag is invalid, the bento cannot be found or read, or a `service` block is wrong.
    pub(super) async fn resolve_bento(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        planned: &DeploymentState,
    ) -> Option<(String, String)> {
        let tag = planned
            .spec
            .bento
            .as_ref_option()
            .cloned()
            .unwrap_or_default();
        let BentoTag { repo, version } = match BentoTag::parse(&tag) {
            Ok(x) => x,
            Err(why) => {
                diag::invalid_bento(diags, why);
                return None;
            }
        };
        let bento = match client.resolve_bento(&repo, version.as_deref()).await {
            Ok(b) => b,
            Err(e) => {
                diag::bento_lookup_failed(diags, &tag, &e);
                return None;
            }
        };
        let resolved = format!("{}:{}", bento.repository.meta.name, bento.version);
        let manifest = bento.manifest.unwrap_or_default();
        let entry = if manifest.entry_service.is_empty() {
            DEFAULT_ENTRY_SERVICE.to_string()
        } else {
            manifest.entry_service.clone()
        };
        let known = manifest.service_names();
        for (i, svc) in planned
            .spec
            .service
            .as_ref_option()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Value::Value(name) = &svc.name else {
                continue;
            };
            let path = AttributePath::new("service")
                .index(i as i64)
                .attribute("name");
            if name == &entry {
                diag::entry_service_in_service_block(diags, name, path);
            } else if !known.is_empty() && !known.contains(name) {
                diag::unknown_service(diags, &tag, name, &known, path);
            }
        }
        if diags.errors.is_empty() {
            Some((entry, resolved))
        } else {
            None
        }
    }

    /// The entry service of the deployment `d`, for the top-level settings of a PUT: from its
    /// configuration ([`convert::entry_service`]); when that names no service (a deployment
    /// created with `services: {}`), from its bento's manifest, read with `GET
    /// /api/v1/bento_repositories/{repo}/bentos/{version}` as the official client does when
    /// the entry service is unknown (API doc §5.2 step 4), else `apiserver` (its fallback).
    pub(super) async fn entry_service_of(&self, client: &Client, d: &Deployment) -> String {
        if let Some(e) = convert::entry_service(d) {
            return e;
        }
        let tag = d.bento_tag().map(|t| BentoTag::of(&t));
        let from_bento = match &tag {
            Some(t) => match client.resolve_bento(&t.repo, t.version.as_deref()).await {
                Ok(b) => b.manifest.map(|m| m.entry_service),
                Err(e) => {
                    tracing::debug!("cannot read bento {t} for its entry service: {e}");
                    None
                }
            },
            None => None,
        };
        from_bento
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| DEFAULT_ENTRY_SERVICE.to_string())
    }

    /// A `terminated`/`terminating` status that pods contradict is stale: BentoCloud refreshes
    /// status after the fact (API doc §10: up to a minute or two), so right after an apply
    /// started a stopped deployment again (a PUT), the status still says it is stopped while
    /// the new revision's pods serve. Read as such it would plan the deployment's restart
    /// again. When the pods stream shows a serving pod (ready, not terminating, not a
    /// canary's) of the latest revision's bento, the status is taken as `running`, as a
    /// rollout wait takes it once the pods show it done; a real stop leaves no serving pod
    /// (terminate drains them). Pods that cannot be read leave the status as reported. Costs
    /// one pods read per refresh of a stopped deployment only.
    pub(super) async fn unless_stale_stop(&self, client: &Client, d: &mut Deployment) {
        use crate::api::{DeploymentStatus, POD_BENTO_VERSION_LABEL};
        if !matches!(
            d.status,
            DeploymentStatus::Terminated | DeploymentStatus::Terminating
        ) {
            return;
        }
        let Some(version) = d.bento_tag().and_then(|t| BentoTag::of(&t).version) else {
            return;
        };
        let (cluster, name) = (d.cluster.meta.name.clone(), d.meta.name.clone());
        let pods = match client.deployment_pods(&cluster, &name).await {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!("cannot read the pods of {cluster}/{name}: {e}");
                return;
            }
        };
        let serving = pods.iter().any(|p| {
            p.status.ready
                && !p.is_terminating()
                && !p.status.is_canary
                && p.labels.get(POD_BENTO_VERSION_LABEL) == Some(&version)
        });
        if serving {
            tracing::info!(
                "deployment {cluster}/{name} reports {}, but pods of its latest revision serve: \
                 the status is stale, taken as running",
                d.status
            );
            d.status = DeploymentStatus::Running;
        }
    }

    /// Plan-time warnings about the refreshed status: a deployment stopped outside Terraform
    /// (the plan brings it back), or one failing with no failed rollout of this state behind
    /// it (the plan changes nothing for it; the reason is read from its pods, best effort).
    pub(super) async fn warn_about_status(
        &self,
        diags: &mut Diagnostics,
        client: &Client,
        prior: &DeploymentState,
        last: LastApply,
    ) {
        let Some((cluster, name)) = locate(prior) else {
            return;
        };
        let id = format!("{cluster}/{name}");
        let status = prior.reported.status.as_ref_option().cloned();
        let status = status.as_deref().unwrap_or_default();
        if plan::stopped(prior) {
            diag::stopped_outside_terraform(diags, &id, status);
        } else if plan::failing(prior) && last != LastApply::Failed {
            let version = prior
                .reported
                .deployed_bento
                .as_ref_option()
                .and_then(|t| BentoTag::of(t).version);
            let reason = match client.deployment_pods(&cluster, &name).await {
                Ok(pods) => wait::pods_reason(&pods, version.as_deref()),
                Err(e) => {
                    tracing::debug!("cannot read the pods of {id} for its status: {e}");
                    None
                }
            };
            diag::deployment_failing(diags, &id, status, reason.as_deref());
        }
    }
}

/// The instance types `planned` sets that `prior` did not have (all of them for a new
/// deployment), with the attribute each is set by: the entry service's `instance_type` and
/// each `service` block's (a block is matched by name). Pure.
pub(super) fn changed_instance_types(
    planned: &DeploymentState,
    prior: Option<&DeploymentState>,
) -> Vec<(AttributePath, String)> {
    let mut wanted = Vec::new();
    let entry = &planned.spec.entry.instance_type;
    if let Value::Value(it) = entry {
        if prior.map(|p| &p.spec.entry.instance_type) != Some(entry) {
            wanted.push((AttributePath::new("instance_type"), it.clone()));
        }
    }
    let blocks = |s: &DeploymentState| s.spec.service.as_ref_option().cloned().unwrap_or_default();
    let before = prior.map(blocks).unwrap_or_default();
    for (i, svc) in blocks(planned).into_iter().enumerate() {
        let Value::Value(it) = &svc.settings.instance_type else {
            continue;
        };
        let unchanged = before
            .iter()
            .any(|b| b.name == svc.name && b.settings.instance_type == svc.settings.instance_type);
        if !unchanged {
            let path = AttributePath::new("service")
                .index(i as i64)
                .attribute("instance_type");
            wanted.push((path, it.clone()));
        }
    }
    wanted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::deployment::model::{ServiceBlock, ServiceSettings};

    fn with_types(entry: Option<&str>, blocks: &[(&str, Option<&str>)]) -> DeploymentState {
        let mut s = DeploymentState::default();
        s.spec.entry.instance_type = entry
            .map(|t| Value::Value(t.to_string()))
            .unwrap_or_default();
        s.spec.service = Value::Value(
            blocks
                .iter()
                .map(|(n, t)| ServiceBlock {
                    name: Value::Value(n.to_string()),
                    settings: ServiceSettings {
                        instance_type: t.map(|t| Value::Value(t.to_string())).unwrap_or_default(),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .collect(),
        );
        s
    }

    #[test]
    fn only_instance_types_set_anew_are_checked() {
        let planned = with_types(Some("cpu.2"), &[("a", Some("gpu.1")), ("b", None)]);
        let all = changed_instance_types(&planned, None);
        assert_eq!(
            all,
            vec![
                (AttributePath::new("instance_type"), "cpu.2".to_string()),
                (
                    AttributePath::new("service")
                        .index(0)
                        .attribute("instance_type"),
                    "gpu.1".to_string()
                ),
            ]
        );
        assert!(changed_instance_types(&planned, Some(&planned)).is_empty());
        // A block moved in the list keeps its type: matched by name, not position.
        let moved = with_types(Some("cpu.2"), &[("b", None), ("a", Some("gpu.1"))]);
        assert!(changed_instance_types(&moved, Some(&planned)).is_empty());
        let changed = with_types(Some("cpu.1"), &[("a", Some("gpu.2"))]);
        let paths: Vec<_> = changed_instance_types(&changed, Some(&planned))
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(paths, ["cpu.1", "gpu.2"]);
    }
}
