//! Rows to wire documents: builds the `crate::api` types the official client accepts (every
//! nested resource with its 7 base keys, labels never null, strings never null,
//! `bento.name == bento.version`, exactly one URL).

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde_json::json;

use super::store::{
    self, BentoRow, ClusterRow, DeploymentRow, InstanceTypeRow, Org, ReplicaRow, Result,
    RevisionRow, SecretRow,
};
use super::vocab::{Phase, ReplicaState};
use serde::{Deserialize, Serialize};

use crate::api::{
    Bento, BentoManifest, BentoRepository, Cluster, Deployment, DeploymentConfig,
    DeploymentManifest, InstanceType, InstanceTypeConfig, Organization, ResourceMeta, Revision,
    Routing, Secret, Target, User,
};

/// Rollout progress of one deployment, as `bentocloud-local` knows it. The real API has no
/// such document, so it is served only under `/api/local/v1/...` (the web page, the demo,
/// benchmarks and tests' own assertions), never on `/api/v1` or `/api/v2`, and it is not a
/// type of `crate::api`: the provider cannot read it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RolloutProgress {
    /// The revision being rolled out (or last rolled out).
    pub revision_uid: String,
    /// The revision whose replicas currently serve traffic.
    pub serving_revision_uid: String,
    /// Phase name: `image-building`, `image-build-failed`, `rolling`, `complete`, `failed`,
    /// `terminating`, `terminated`.
    pub phase: String,
    /// Every target's replicas count (`main` and each canary version of `revision_uid`):
    /// `desired_replicas` is what `revision_uid` wants in all, `ready_replicas` the ready
    /// replicas of any revision and target, `updated_replicas` those of `revision_uid`.
    /// [`Self::canary`] breaks the canary versions down.
    pub desired_replicas: u32,
    pub ready_replicas: u32,
    /// Ready replicas that run `revision_uid`.
    pub updated_replicas: u32,
    /// The canary versions of `revision_uid`, by name (empty without a canary).
    pub canary: BTreeMap<String, CanaryProgress>,
    /// Why the rollout failed or is stuck; empty otherwise.
    pub message: String,
    /// The status the controller computes now; the API's `status` is this as of the last
    /// status sync (`status_synced_at`), see `Timing::status_sync_ms`.
    pub live_status: String,
    pub status_synced_at: String,
}

/// Replicas of one canary version (local view only, like [`RolloutProgress`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryProgress {
    /// The version's bento, `repo:version`.
    pub bento: String,
    /// Its percentage of the traffic (random routing).
    pub weight: i64,
    pub desired_replicas: u32,
    /// Ready replicas of this version, any revision: the ones its traffic goes to.
    pub ready_replicas: u32,
    /// Ready replicas of this version that run `revision_uid`.
    pub updated_replicas: u32,
}

/// A deployment document of the API plus its rollout progress: what
/// `/api/local/v1/deployments[/{name}]` serve.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LocalDeployment {
    #[serde(flatten)]
    pub deployment: Deployment,
    pub rollout: RolloutProgress,
}

/// RFC 3339 with milliseconds, UTC.
pub fn ts(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn meta(uid: &str, name: &str, kind: &str, created: i64, updated: i64) -> ResourceMeta {
    ResourceMeta {
        uid: uid.to_string(),
        created_at: ts(created),
        updated_at: ts(updated),
        deleted_at: None,
        name: name.to_string(),
        resource_type: kind.to_string(),
        labels: Vec::new(),
    }
}

/// A stable uid derived from a name (users have no table of their own).
fn name_uid(name: &str) -> String {
    // FNV-1a, 64 bits: stable across runs and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn user(name: &str, org: &Org) -> User {
    User {
        meta: meta(
            &name_uid(&format!("{}/{name}", org.name)),
            name,
            "user",
            org.created_at,
            org.created_at,
        ),
        email: format!("{name}@{}.local", org.name),
        first_name: name.to_string(),
        last_name: String::new(),
        avatar_url: String::new(),
        is_super_admin: false,
    }
}

pub fn organization(org: &Org) -> Organization {
    Organization {
        meta: meta(
            &org.uid,
            &org.name,
            "organization",
            org.created_at,
            org.created_at,
        ),
        description: format!("bentocloud-local organization {}", org.name),
    }
}

pub fn cluster(c: &ClusterRow, org: &Org, creator: &str) -> Cluster {
    Cluster {
        meta: meta(&c.uid, &c.name, "cluster", c.created_at, c.created_at),
        description: c.description.clone(),
        organization_name: org.name.clone(),
        creator: user(creator, org),
        is_first: Some(c.is_first),
    }
}

pub fn instance_type(t: &InstanceTypeRow, created: i64) -> InstanceType {
    let s = &t.spec;
    let res = json!({
        "cpu": s.cpu, "memory": s.memory,
        "gpu": if s.gpu > 0 { s.gpu.to_string() } else { String::new() },
        "custom": {},
    });
    InstanceType {
        meta: meta(&t.uid, &s.name, "resource_instance", created, created),
        display_name: if s.display_name.is_empty() {
            s.name.clone()
        } else {
            s.display_name.clone()
        },
        description: s.description.clone(),
        config: InstanceTypeConfig {
            group: s.group.clone(),
            resources: json!({ "requests": res, "limits": res }),
            price: s.price.clone(),
            node_selectors: Some(json!({})),
            gpu_config: if s.gpu > 0 {
                Some(json!({ "type": s.gpu_type, "memory": s.gpu_memory }))
            } else {
                None
            },
        },
    }
}

pub fn bento(b: &BentoRow) -> Bento {
    let services = &b.behaviour.services;
    let entry = services
        .first()
        .cloned()
        .unwrap_or_else(|| store::DEFAULT_SERVICE.into());
    Bento {
        meta: meta(&b.uid, &b.version, "bento", b.created_at, b.created_at),
        description: String::new(),
        version: b.version.clone(),
        image_build_status: "success".into(),
        upload_status: "success".into(),
        upload_finished_reason: String::new(),
        presigned_upload_url: String::new(),
        presigned_download_url: String::new(),
        manifest: Some(BentoManifest {
            service: format!("service:{entry}"),
            bentoml_version: "1.4.39".into(),
            size_bytes: 1024,
            entry_service: entry,
            name: b.repo.clone(),
            apis: json!({}),
            models: Vec::new(),
            // `BentoServiceInfo` requires `name` and `service` (the import string; a real
            // build writes "" there), else the official client cannot structure the bento.
            services: services
                .iter()
                .map(|s| json!({ "name": s, "service": "", "models": [], "dependencies": [], "config": {} }))
                .collect(),
            envs: Vec::new(),
            schema: json!({}),
            spec: 2,
        }),
        build_at: ts(b.created_at),
        repository: BentoRepository {
            meta: meta(
                &b.repo_uid,
                &b.repo,
                "bento_repository",
                b.repo_created_at,
                b.repo_created_at,
            ),
            description: String::new(),
            latest_bento: None,
        },
    }
}

pub fn repository(
    c: &Connection,
    org_id: i64,
    repo: &str,
    uid: &str,
    created: i64,
) -> Result<BentoRepository> {
    let latest = store::find_bento(c, org_id, repo, None)?;
    Ok(BentoRepository {
        meta: meta(uid, repo, "bento_repository", created, created),
        description: String::new(),
        latest_bento: match latest {
            Some(b) => Some(serde_json::to_value(bento(&b))?),
            None => None,
        },
    })
}

/// A secret document; item values only with `values` (`PlatformConfig::secret_values_in_reads`).
pub fn secret(s: &SecretRow, org: &Org, cluster: Option<&ClusterRow>, values: bool) -> Secret {
    let mut content = s.content.clone();
    if !values {
        for item in &mut content.items {
            item.value = None;
        }
    }
    Secret {
        meta: meta(&s.uid, &s.name, "secret", s.created_at, s.updated_at),
        description: s.description.clone(),
        creator: user(&s.creator, org),
        content,
        cluster: cluster.map(|c| self::cluster(c, org, &s.creator)),
    }
}

/// The public URL of a deployment's endpoint.
pub fn endpoint_url(base: &str, org: &Org, d: &DeploymentRow) -> String {
    format!(
        "{}/endpoints/{}/{}/{}/",
        base.trim_end_matches('/'),
        org.name,
        d.cluster,
        d.name
    )
}

/// Everything needed to render one deployment.
pub struct DeploymentView {
    pub doc: Deployment,
    pub bento_repo: String,
    pub bento_version: String,
}

/// Builds the full document of `d` (`with_urls` for get/create/update/...; lists too).
pub fn deployment(
    c: &Connection,
    org: &Org,
    d: &DeploymentRow,
    base: &str,
) -> Result<DeploymentView> {
    let cl = store::clusters(c)?
        .into_iter()
        .find(|x| x.name == d.cluster)
        .unwrap_or_else(|| ClusterRow {
            name: d.cluster.clone(),
            uid: String::new(),
            description: "cluster removed from the config".into(),
            is_first: false,
            created_at: d.created_at,
        });
    let rev = store::revision(c, &d.target_revision)?;
    let b = store::bento_by_id(c, rev.bento_id)?;
    let mut dep_meta = meta(&d.uid, &d.name, "deployment", d.created_at, d.updated_at);
    dep_meta.labels = d.labels.clone();
    dep_meta.deleted_at = d.deleted_at.map(ts);
    let mut rev_meta = meta(
        &rev.uid,
        &format!("{}-rev-{}", d.name, rev.seq),
        "deployment_revision",
        rev.created_at,
        rev.created_at,
    );
    rev_meta.labels = Vec::new();
    let (targets, routing) = targets(c, org, &rev, &b)?;
    let doc = Deployment {
        meta: dep_meta,
        status: d.reported_status,
        kube_namespace: format!("bcl-{}", org.name),
        creator: user(&d.creator, org),
        cluster: cluster(&cl, org, &d.creator),
        latest_revision: Some(Revision {
            meta: rev_meta,
            creator: Some(user(&rev.creator, org)),
            status: "active".into(),
            targets,
        }),
        manifest: Some(DeploymentManifest {
            dev: d.dev,
            routing,
        }),
        urls: Some(vec![endpoint_url(base, org, d)]),
    };
    Ok(DeploymentView {
        doc,
        bento_repo: b.repo,
        bento_version: b.version,
    })
}

/// [`deployment`] plus its rollout progress (the local-only view).
pub fn local_deployment(
    c: &Connection,
    org: &Org,
    d: &DeploymentRow,
    base: &str,
) -> Result<LocalDeployment> {
    let view = deployment(c, org, d, base)?;
    let rev = store::revision(c, &d.target_revision)?;
    let b = store::bento_by_id(c, rev.bento_id)?;
    let replicas = store::live_replicas(c, d.id)?;
    Ok(LocalDeployment {
        deployment: view.doc,
        rollout: rollout(c, d, &rev, &b, &replicas)?,
    })
}

fn target(
    rev: &RevisionRow,
    name: &str,
    config: &DeploymentConfig,
    b: &BentoRow,
    org: &Org,
    omit_manifest: bool,
) -> Target {
    let mut bento = bento(b);
    if omit_manifest {
        bento.manifest = None;
    }
    Target {
        meta: meta(
            &name_uid(&format!("{}/{name}", rev.uid)),
            name,
            "deployment_target",
            rev.created_at,
            rev.created_at,
        ),
        creator: Some(user(&rev.creator, org)),
        config: Some(config.clone()),
        bento: Some(bento),
        kube_resource_uid: String::new(),
        kube_resource_version: String::new(),
    }
}

/// The targets of a revision and its routing, in the real API's shape (API doc §3.2, §3.3,
/// §10): the main target first, named `main` (the official client's `get_bento` reads
/// `targets[0]`, cdep.py:591-597), then one target per canary version, named after the version,
/// with its own bento and config; `manifest.routing` carries the route settings and the weight
/// of every version (the client raises when one is missing, cdep.py:1282-1289). The canary is
/// never put inside a target's `config`.
fn targets(
    c: &Connection,
    org: &Org,
    rev: &RevisionRow,
    main_bento: &BentoRow,
) -> Result<(Vec<Option<Target>>, Option<Routing>)> {
    let omit = store::meta_get(c, store::OMIT_BENTO_MANIFEST)?.as_deref() == Some("true");
    let mut out = vec![Some(target(
        rev,
        store::MAIN_TARGET,
        &rev.config,
        main_bento,
        org,
        omit,
    ))];
    let Some(canary) = &rev.canary else {
        return Ok((out, None));
    };
    let mut weights = BTreeMap::new();
    for (name, v) in &canary.versions {
        let b = store::bento_by_id(c, v.bento_id)?;
        out.push(Some(target(rev, name, &v.config, &b, org, omit)));
        weights.insert(name.clone(), v.weight);
    }
    let routing = Routing {
        route_type: canary.route_type.clone(),
        route_by: canary.route_by.clone(),
        weights: Some(weights),
    };
    Ok((out, Some(routing)))
}

/// `(min, max)` replicas of one service: min defaults to 1, max to `max(min, 1)` (the
/// official client's rules; the server stores them filled in, see `deployments`).
pub fn scaling_bounds(cfg: &crate::api::DeploymentConfig, service: &str) -> (u32, u32) {
    let sc = cfg.services.get(service).and_then(|s| s.scaling.as_ref());
    let min = sc.and_then(|s| s.min_replicas).unwrap_or(1).max(0);
    let max = sc
        .and_then(|s| s.max_replicas)
        .unwrap_or(min.max(1))
        .max(min)
        .max(1);
    let cv = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
    (cv(min), cv(max))
}

/// Replicas of one service without load information: `max(min_replicas, 1)`.
pub fn desired_for(cfg: &crate::api::DeploymentConfig, service: &str) -> u32 {
    scaling_bounds(cfg, service).0.max(1)
}

/// Desired replicas of one service of deployment `deployment_id`: the autoscaler's count
/// (stored in `scale`) clamped to `[min, max]`, or `max(min, 1)` before it decided. A rollout
/// (`rolling`) never targets zero replicas: it must prove the new revision gets ready.
pub fn desired(
    c: &Connection,
    deployment_id: i64,
    cfg: &crate::api::DeploymentConfig,
    service: &str,
    rolling: bool,
) -> Result<u32> {
    let (min, max) = scaling_bounds(cfg, service);
    let n = match store::scale_get(c, deployment_id, service)? {
        Some(v) => u32::try_from(v.max(0)).unwrap_or(u32::MAX).clamp(min, max),
        None => min.max(1),
    };
    Ok(if rolling { n.max(1) } else { n })
}

/// The services a revision runs: the bento's (or, for an implicitly registered bento, the
/// ones the config names); always at least one.
pub fn run_services(cfg: &crate::api::DeploymentConfig, b: &BentoRow) -> Vec<String> {
    let mut out: Vec<String> = if b.behaviour.auto {
        cfg.services.keys().cloned().collect()
    } else {
        b.behaviour.services.clone()
    };
    if out.is_empty() {
        out = b.behaviour.services.clone();
    }
    if out.is_empty() {
        out.push(store::DEFAULT_SERVICE.into());
    }
    out
}

fn rollout(
    c: &Connection,
    d: &DeploymentRow,
    rev: &RevisionRow,
    b: &BentoRow,
    reps: &[ReplicaRow],
) -> Result<RolloutProgress> {
    let cfg = &rev.config;
    let rolling = d.phase == Phase::Rolling || d.phase == Phase::ImageBuilding;
    let stopping = d.phase == Phase::Terminating || d.phase == Phase::Terminated;
    let count = |f: &dyn Fn(&ReplicaRow) -> bool| {
        u32::try_from(
            reps.iter()
                .filter(|r| r.state == ReplicaState::Ready && f(r))
                .count(),
        )
        .unwrap_or(u32::MAX)
    };
    let mut desired: u32 = 0;
    for s in run_services(cfg, b) {
        desired = desired.saturating_add(self::desired(c, d.id, cfg, &s, rolling)?);
    }
    let mut canary = BTreeMap::new();
    for (name, v) in rev.canary.iter().flat_map(|c| c.versions.iter()) {
        let vb = store::bento_by_id(c, v.bento_id)?;
        let want = run_services(&v.config, &vb)
            .iter()
            .map(|s| desired_for(&v.config, s))
            .fold(0u32, u32::saturating_add);
        desired = desired.saturating_add(want);
        canary.insert(
            name.clone(),
            CanaryProgress {
                bento: vb.tag(),
                weight: v.weight,
                desired_replicas: if stopping { 0 } else { want },
                ready_replicas: count(&|r| r.target == *name),
                updated_replicas: count(&|r| r.target == *name && r.revision_uid == rev.uid),
            },
        );
    }
    Ok(RolloutProgress {
        revision_uid: d.target_revision.clone(),
        serving_revision_uid: d.serving_revision.clone(),
        phase: d.phase.as_str().to_string(),
        desired_replicas: if stopping { 0 } else { desired },
        ready_replicas: count(&|_| true),
        updated_replicas: count(&|r| r.revision_uid == d.target_revision),
        canary,
        message: d.message.clone(),
        live_status: d.status.as_str().to_string(),
        status_synced_at: ts(d.status_synced_at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_bento_shape() {
        assert_eq!(ts(0), "1970-01-01T00:00:00.000Z");
        let b = BentoRow {
            id: 1,
            repo: "iris".into(),
            repo_uid: "r".into(),
            repo_created_at: 0,
            version: "v1".into(),
            uid: "u".into(),
            created_at: 0,
            behaviour: store::Behaviour {
                services: vec!["A".into(), "B".into()],
                ..Default::default()
            },
        };
        let doc = bento(&b);
        assert_eq!(doc.meta.name, doc.version);
        let m = doc.manifest.expect("manifest");
        assert_eq!(m.service_names(), vec!["A".to_string(), "B".to_string()]);
        let v = serde_json::to_value(bento(&b)).expect("ser");
        for k in crate::api::ResourceMeta::KEYS {
            assert!(v.get(k).is_some(), "{k}");
            assert!(v["repository"].get(k).is_some(), "repo {k}");
        }
    }
}
