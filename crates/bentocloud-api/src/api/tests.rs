use super::*;

const MINIMAL: &str = include_str!("../../../../tests/fixtures/deployment-minimal.json");

/// `GET /api/v1/current_org` as the official client accepts it (the credentials check of
/// `configure` reads it).
#[test]
fn the_current_org_sample_decodes() {
    let org: Organization =
        serde_json::from_str(include_str!("../../../../tests/fixtures/current-org.json"))
            .expect("org");
    assert_eq!(org.meta.name, "stub-org");
    assert_eq!(org.meta.resource_type, "organization");
    assert_eq!(org.description, "");
}
const FULL: &str = include_str!("../../../../tests/fixtures/deployment-full.json");

#[test]
fn official_samples_parse_and_expose_revision_and_bento() {
    for sample in [MINIMAL, FULL] {
        let d: Deployment = serde_json::from_str(sample).expect("sample parses");
        assert_eq!(d.meta.name, "demo");
        assert_eq!(d.cluster.meta.name, "default-cluster");
        assert_eq!(d.revision_uid(), Some("ae47940179e85336"));
        assert_eq!(d.bento_tag().as_deref(), Some("my_bento:abc123"));
        let cfg = d
            .main_target()
            .and_then(|t| t.config.as_ref())
            .expect("config");
        assert_eq!(
            cfg.services["MyService"].deployment_strategy.as_deref(),
            Some("RollingUpdate")
        );
    }
}

#[test]
fn default_cluster_is_the_first_one_else_the_only_one() {
    let cluster = |name: &str, is_first: Option<bool>| Cluster {
        meta: ResourceMeta {
            name: name.into(),
            ..Default::default()
        },
        is_first,
        ..Default::default()
    };
    let name = |cs: &[Cluster]| default_cluster(cs).map(|c| c.meta.name.clone());
    let two = [cluster("east", Some(false)), cluster("west", Some(true))];
    assert_eq!(
        name(&two).as_deref(),
        Some("west"),
        "is_first wins, wherever it is"
    );
    assert_eq!(name(&[cluster("solo", None)]).as_deref(), Some("solo"));
    assert_eq!(
        name(&[cluster("solo", Some(false))]).as_deref(),
        Some("solo")
    );
    // Several clusters and no marker: the API does not say which one is the default.
    assert_eq!(name(&[cluster("a", None), cluster("b", Some(false))]), None);
    assert_eq!(name(&[]), None);
}

#[test]
fn status_round_trips_every_wire_value_and_unknown_strings_become_unknown() {
    for s in DeploymentStatus::ALL {
        let json = serde_json::to_string(&s).expect("ser");
        assert_eq!(json, format!("\"{}\"", s.as_str()));
        let back: DeploymentStatus = serde_json::from_str(&json).expect("de");
        assert_eq!(back, s);
    }
    let odd: DeploymentStatus = serde_json::from_str("\"warming-up\"").expect("de");
    assert_eq!(odd, DeploymentStatus::Unknown);
}

#[test]
fn strategies_parse_their_wire_spelling_only() {
    for s in Strategy::ALL {
        assert_eq!(Strategy::parse(s.as_str()), Some(s));
        assert_eq!(s.to_string(), s.as_str());
    }
    assert_eq!(
        Strategy::ALL.map(Strategy::as_str),
        [
            "RollingUpdate",
            "Recreate",
            "RampedSlowRollout",
            "BestEffortControlledRollout"
        ]
    );
    assert_eq!(Strategy::parse("Rolling"), None);
    assert_eq!(Strategy::parse("rollingupdate"), None);
}

#[test]
fn serialised_deployment_never_has_null_strings_and_keeps_base_keys() {
    let d: Deployment = serde_json::from_str(MINIMAL).expect("parse");
    let v = serde_json::to_value(&d).expect("ser");
    let own = [
        "status",
        "kube_namespace",
        "creator",
        "cluster",
        "latest_revision",
    ];
    for key in META_KEYS.iter().chain(own.iter()) {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert!(v["creator"]["email"].is_string());
}

#[test]
fn multiservice_request_sample_parses_with_its_canary() {
    let body = include_str!("../../../../tests/fixtures/create-multiservice-canary.json");
    let req: CreateDeploymentRequest = serde_json::from_str(body).expect("parse");
    assert_eq!(req.name.as_deref(), Some("multi"));
    assert_eq!(req.spec.services.len(), 2);
    let canary = req.spec.canary.as_ref().expect("canary");
    assert_eq!(canary.route_type.as_deref(), Some("header"));
    let v2 = &canary.versions.as_ref().expect("versions")["v2"];
    assert_eq!(v2.bento.as_deref(), Some("my_bento:def456"));
    assert_eq!(
        v2.services["Model"].instance_type.as_deref(),
        Some("gpu.a100.1")
    );
    let back = serde_json::to_value(&req).expect("ser");
    assert_eq!(back["canary"]["versions"]["v2"]["weight"], 20);
}

fn target(name: &str, repo: &str, version: &str, max: i64) -> Target {
    let mut t = Target::default();
    t.meta.name = name.into();
    let mut b = Bento {
        version: version.into(),
        ..Default::default()
    };
    b.meta.name = version.into();
    b.repository.meta.name = repo.into();
    t.bento = Some(b);
    let mut services = BTreeMap::new();
    services.insert(
        "apiserver".to_string(),
        ServiceConfig {
            scaling: Some(Scaling {
                min_replicas: Some(1),
                max_replicas: Some(max),
                policy: None,
            }),
            ..Default::default()
        },
    );
    t.config = Some(DeploymentConfig {
        envs: Some(vec![EnvItem {
            name: "T".into(),
            value: name.into(),
        }]),
        services,
        ..Default::default()
    });
    t
}

#[test]
fn canary_is_rebuilt_from_the_extra_targets_and_the_routing_like_the_official_client() {
    let mut d: Deployment = serde_json::from_str(FULL).expect("parse");
    assert_eq!(d.canary(), None, "one target and no routing: no canary");
    let rev = d.latest_revision.as_mut().expect("rev");
    rev.targets = vec![
        Some(target("main", "iris", "v1", 2)),
        Some(target("v2", "iris", "v2", 3)),
    ];
    d.manifest = Some(DeploymentManifest {
        dev: false,
        routing: Some(Routing {
            route_type: Some("random".into()),
            route_by: None,
            weights: Some([("v2".to_string(), 20)].into_iter().collect()),
        }),
    });
    assert_eq!(d.bento_tag().as_deref(), Some("iris:v1"));
    let c = d.canary().expect("canary");
    assert_eq!(c.route_type.as_deref(), Some("random"));
    let versions = c.versions.expect("versions");
    assert_eq!(versions.keys().collect::<Vec<_>>(), ["v2"]);
    let v2 = &versions["v2"];
    assert_eq!(v2.bento.as_deref(), Some("iris:v2"));
    assert_eq!(v2.weight, Some(20));
    assert_eq!(v2.envs.as_ref().map(|e| e[0].value.as_str()), Some("v2"));
    assert_eq!(
        v2.services["apiserver"]
            .scaling
            .as_ref()
            .and_then(|s| s.max_replicas),
        Some(3)
    );
    // Routing without a second target: route settings only (as the client builds it).
    let rev = d.latest_revision.as_mut().expect("rev");
    rev.targets.truncate(1);
    let c = d.canary().expect("routing alone");
    assert_eq!(
        (c.route_type.as_deref(), c.versions),
        (Some("random"), None)
    );
}

/// The fields of the document types the provider reads, as written in this file. Pure text
/// scan: `pub NAME:` lines between `pub struct TYPE` and its closing brace.
fn fields_of(src: &str, ty: &str) -> Vec<String> {
    let start = src
        .find(&format!("pub struct {ty} {{"))
        .or_else(|| src.find(&format!("pub struct {ty}<")))
        .unwrap_or_else(|| panic!("no struct {ty}"));
    let body = &src[start..];
    let end = body.find("\n}\n").expect("closing brace");
    body[..end]
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().strip_prefix("pub "))
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .collect()
}

/// The flattened `ResourceSchema` every resource document carries.
const META_KEYS: &[&str] = &ResourceMeta::KEYS;

/// The real API's fields per document. Each list is the real API's schema for that document (API doc §3.1-§3.4, the
/// official samples in shared/docs/api-samples, and §10 for pods); `meta` is the
/// flattened ResourceSchema. A field that is not here (a bentocloud-local extension,
/// say) fails this test: the provider must read nothing the real API lacks.
const REAL_API_FIELDS: &[(&str, &[&str])] = &[
    ("ResourceMeta", META_KEYS),
    (
        "User",
        &[
            "meta",
            "email",
            "first_name",
            "last_name",
            "avatar_url",
            "is_super_admin",
        ],
    ),
    (
        "Cluster",
        &[
            "meta",
            "description",
            "organization_name",
            "creator",
            "is_first",
        ],
    ),
    (
        "Deployment",
        &[
            "meta",
            "status",
            "kube_namespace",
            "creator",
            "cluster",
            "latest_revision",
            "manifest",
            "urls",
        ],
    ),
    ("DeploymentManifest", &["dev", "routing"]),
    ("Routing", &["route_type", "route_by", "weights"]),
    ("Revision", &["meta", "creator", "status", "targets"]),
    (
        "Target",
        &[
            "meta",
            "creator",
            "config",
            "bento",
            "kube_resource_uid",
            "kube_resource_version",
        ],
    ),
    (
        "DeploymentConfig",
        &[
            "access_authorization",
            "envs",
            "labels",
            "secrets",
            "services",
        ],
    ),
    (
        "ServiceConfig",
        &[
            "instance_type",
            "scaling",
            "envs",
            "deployment_strategy",
            "extras",
            "cold_start_timeout",
            "config_overrides",
        ],
    ),
    ("Scaling", &["min_replicas", "max_replicas", "policy"]),
    (
        "Bento",
        &[
            "meta",
            "description",
            "version",
            "image_build_status",
            "upload_status",
            "upload_finished_reason",
            "presigned_upload_url",
            "presigned_download_url",
            "manifest",
            "build_at",
            "repository",
        ],
    ),
    ("BentoRepository", &["meta", "description", "latest_bento"]),
    (
        "InstanceType",
        &["meta", "display_name", "description", "config"],
    ),
    (
        "InstanceTypeConfig",
        &[
            "group",
            "resources",
            "price",
            "node_selectors",
            "gpu_config",
        ],
    ),
    ("ListResponse", &["start", "count", "total", "items"]),
    (
        "KubePod",
        &["name", "labels", "status", "pod_status", "warnings"],
    ),
    (
        "KubePodStatus",
        &["phase", "ready", "start_time", "is_old", "is_canary"],
    ),
    ("KubePodRuntime", &["status", "phase"]),
    ("KubeEvent", &["reason", "message"]),
    ("PodsFrame", &["kind", "message", "payload"]),
];

/// Fields of the wire types that the real API's documents do not have, and local-only
/// types among them.
fn foreign_fields(src: &str) -> Vec<String> {
    let allowed = REAL_API_FIELDS;
    let mut out = Vec::new();
    for (ty, fields) in allowed {
        for f in fields_of(src, ty) {
            if !fields.contains(&f.as_str()) {
                out.push(format!("api::{ty}.{f}"));
            }
        }
    }
    for l in src.lines().filter(|l| l.starts_with("pub struct")) {
        if l.contains("Rollout") || l.contains("Local") {
            out.push(l.to_string());
        }
    }
    out
}

#[test]
fn wire_types_hold_only_fields_the_real_api_has() {
    let src = include_str!("../api.rs");
    assert_eq!(
        foreign_fields(src),
        Vec::<String>::new(),
        "fields the real API's documents do not have: keep local-only data out of the \
         wire types (bentocloud-local serves it on /api/local)"
    );
    // The check can fail: an extension field or a local type is caught.
    let doctored = src.replacen(
        "    pub kube_namespace: String,\n",
        "    pub kube_namespace: String,\n    pub rollout: Option<Json>,\n",
        1,
    );
    assert_eq!(
        foreign_fields(&doctored),
        vec!["api::Deployment.rollout".to_string()]
    );
    let doctored = format!("{src}\npub struct RolloutProgress {{\n}}\n");
    assert_eq!(
        foreign_fields(&doctored),
        vec!["pub struct RolloutProgress {".to_string()]
    );
    // The scan itself works: a field that is there is found.
    assert!(fields_of(src, "Deployment").contains(&"kube_namespace".to_string()));
}

#[test]
fn resource_meta_keys_are_what_it_serialises_to() {
    let v = serde_json::to_value(ResourceMeta::default()).expect("ser");
    let mut keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want = ResourceMeta::KEYS.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want);
}
