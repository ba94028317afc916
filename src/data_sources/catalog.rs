//! What the platform offers, as data: `bentocloud_clusters` (the organisation's clusters and
//! which one is the default) and `bentocloud_instance_types` (the instance types of one
//! cluster, their resources and price as BentoCloud states them).
//!
//! Read-only lookups: nothing here is managed, and every value comes from a documented field of
//! the API (`ClusterSchema`, `ResourceInstanceSchema`; API doc §3.1, §3.4), shown as the API
//! gives it (resource quantities stay strings such as `"500m"` and `"2Gi"`).

use std::collections::HashMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::{AttributePath, Diagnostics};

use super::source::{Data, Source};
use crate::api::{Cluster, InstanceType};
use crate::diag::{self, Problem};
use crate::schema::{attr, flat_schema, to_map};
use crate::shared::Configured;

fn list_of(fields: &HashMap<String, Attribute>) -> AttributeType {
    AttributeType::List(Box::new(AttributeType::Object(
        fields
            .iter()
            .map(|(k, a)| (k.clone(), a.attr_type.clone()))
            .collect(),
    )))
}

fn strings() -> AttributeType {
    AttributeType::List(Box::new(AttributeType::String))
}

/// A string the API gave, or null when it gave none (absent, null or empty).
fn given(s: &str) -> Value<String> {
    if s.is_empty() {
        Value::Null
    } else {
        Value::Value(s.to_string())
    }
}

// ------------------------------------------------------------------------------ clusters

/// One element of `bentocloud_clusters.clusters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterData {
    pub name: Value<String>,
    pub description: Value<String>,
    pub is_default: Value<bool>,
}

/// `bentocloud_clusters` (no inputs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClustersData {
    pub clusters: Value<Vec<ClusterData>>,
    pub names: Value<Vec<Value<String>>>,
    pub default_cluster: Value<String>,
}

/// The fields of one cluster (also used to document the nested schema).
pub fn cluster_fields() -> HashMap<String, Attribute> {
    use AttributeConstraint::Computed;
    to_map(vec![
        ("name", attr(AttributeType::String, Computed, "Cluster name: the value of `cluster` in resources, data sources and the provider block.")),
        ("description", attr(AttributeType::String, Computed, "Description, as BentoCloud gives it.")),
        ("is_default", attr(AttributeType::Bool, Computed, "Whether this is the organisation's default cluster, the one used when no `cluster` is set anywhere: BentoCloud marks it `is_first`; an organisation with a single cluster has it as default. At most one cluster is the default; none is when the API does not say.")),
    ])
}

/// Schema of `bentocloud_clusters`.
pub fn clusters_schema() -> Schema {
    use AttributeConstraint::Computed;
    flat_schema(
        to_map(vec![
            ("clusters", attr(list_of(&cluster_fields()), Computed, "Every cluster of the organisation, in the order BentoCloud lists them.")),
            ("names", attr(strings(), Computed, "Names of the clusters, in the same order as `clusters`.")),
            ("default_cluster", attr(AttributeType::String, Computed, "Name of the organisation's default cluster (the one with `is_default`); null when BentoCloud does not say which one it is. The provider's own `cluster` setting does not change it.")),
        ]),
        "Lists the clusters of the organisation: name, description, and which one is the default. Use it to check a cluster name or to spread deployments over every cluster.",
    )
}

/// The data source's view of the cluster list: each cluster as given, the default one marked
/// as [`crate::api::default_cluster`] decides (the provider's default-cluster rule).
pub fn clusters_from(clusters: &[Cluster]) -> ClustersData {
    let default = crate::api::default_cluster(clusters).map(|c| c.meta.name.clone());
    let items: Vec<ClusterData> = clusters
        .iter()
        .map(|c| ClusterData {
            name: Value::Value(c.meta.name.clone()),
            description: Value::Value(c.description.clone()),
            is_default: Value::Value(default.as_deref() == Some(c.meta.name.as_str())),
        })
        .collect();
    ClustersData {
        names: Value::Value(items.iter().map(|c| c.name.clone()).collect()),
        clusters: Value::Value(items),
        default_cluster: default.map(Value::Value).unwrap_or(Value::Null),
    }
}

/// `bentocloud_clusters`.
pub type ClustersDataSource = Source<ClustersData>;

#[async_trait]
impl Data for ClustersData {
    async fn read(self, configured: &Configured, diags: &mut Diagnostics) -> Option<Self> {
        match configured.client.list_clusters().await {
            Ok(clusters) => Some(clusters_from(&clusters)),
            Err(e) => {
                diag::api_error(diags, "Cannot list clusters", &e, None);
                None
            }
        }
    }

    fn schema() -> Schema {
        clusters_schema()
    }
}

// ------------------------------------------------------------------------ instance types

/// One element of `bentocloud_instance_types.instance_types`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceTypeData {
    pub name: Value<String>,
    pub display_name: Value<String>,
    pub description: Value<String>,
    pub group: Value<String>,
    pub cpu: Value<String>,
    pub memory: Value<String>,
    pub gpu: Value<String>,
    pub gpu_type: Value<String>,
    pub gpu_memory: Value<String>,
    pub price: Value<String>,
}

/// `bentocloud_instance_types` inputs and outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct InstanceTypesData {
    pub cluster: Value<String>,
    pub instance_types: Value<Vec<InstanceTypeData>>,
    pub names: Value<Vec<Value<String>>>,
}

/// The fields of one instance type (also used to document the nested schema).
pub fn instance_type_fields() -> HashMap<String, Attribute> {
    use AttributeConstraint::Computed;
    let s = AttributeType::String;
    to_map(vec![
        ("name", attr(s.clone(), Computed, "Instance type name: the value of `instance_type` in `bentocloud_deployment` (e.g. `cpu.2`).")),
        ("display_name", attr(s.clone(), Computed, "Display name, as BentoCloud gives it.")),
        ("description", attr(s.clone(), Computed, "Description, as BentoCloud gives it.")),
        ("group", attr(s.clone(), Computed, "Group, as BentoCloud gives it (e.g. `cpu`, `gpu`).")),
        ("cpu", attr(s.clone(), Computed, "CPU of one replica, a Kubernetes quantity exactly as BentoCloud gives it (e.g. `500m`, `2`). From `resources.requests`, else `resources.limits`; null when neither gives it.")),
        ("memory", attr(s.clone(), Computed, "Memory of one replica, a Kubernetes quantity exactly as BentoCloud gives it (e.g. `2Gi`). From `resources.requests`, else `resources.limits`; null when neither gives it.")),
        ("gpu", attr(s.clone(), Computed, "Number of GPUs of one replica, as the string BentoCloud gives (e.g. `1`; use `tonumber()` to compare). Null when the type has none (BentoCloud gives none, or an empty string).")),
        ("gpu_type", attr(s.clone(), Computed, "GPU model, as BentoCloud gives it (`gpu_config.type`, e.g. `nvidia-l4`); null for a type without GPU.")),
        ("gpu_memory", attr(s.clone(), Computed, "Memory of one GPU, as BentoCloud gives it (`gpu_config.memory`, e.g. `24Gi`); null for a type without GPU.")),
        ("price", attr(s, Computed, "Price, the string BentoCloud gives (e.g. `0.0484`); null when it gives none.")),
    ])
}

/// Schema of `bentocloud_instance_types`.
pub fn instance_types_schema() -> Schema {
    use AttributeConstraint::{Computed, OptionalComputed};
    flat_schema(
        to_map(vec![
            ("cluster", attr(AttributeType::String, OptionalComputed, "Cluster whose instance types to list. Default: the provider's `cluster`, else the organisation's default cluster; after the read, the cluster that was listed (null when it is the organisation's default and BentoCloud does not say which cluster that is).")),
            ("instance_types", attr(list_of(&instance_type_fields()), Computed, "The instance types the cluster offers, in the order BentoCloud lists them, with their resources and price as BentoCloud gives them.")),
            ("names", attr(strings(), Computed, "Names of the instance types, in the same order as `instance_types`.")),
        ]),
        "Lists the instance types a cluster offers (CPU, memory, GPUs, price), as BentoCloud gives them. Use it to pick an `instance_type` for `bentocloud_deployment` or to check one exists.",
    )
}

/// The quantity `key` of an instance type's `resources`, from `requests`, else `limits`
/// (`DeploymentTargetResources`, both optional; ms.py). A string is kept as given; a number
/// (not what the schema says, but harmless) is written as JSON writes it.
fn quantity(resources: &Json, key: &str) -> Value<String> {
    ["requests", "limits"]
        .iter()
        .find_map(|side| match resources.get(side).and_then(|r| r.get(key)) {
            Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Json::Number(n)) => Some(n.to_string()),
            _ => None,
        })
        .map(Value::Value)
        .unwrap_or(Value::Null)
}

/// One instance type as data.
pub fn instance_type_from(t: &InstanceType) -> InstanceTypeData {
    let res = &t.config.resources;
    let gpu_config = |key: &str| {
        t.config
            .gpu_config
            .as_ref()
            .and_then(|g| g.get(key))
            .and_then(Json::as_str)
            .map(given)
            .unwrap_or(Value::Null)
    };
    InstanceTypeData {
        name: Value::Value(t.meta.name.clone()),
        display_name: Value::Value(t.display_name.clone()),
        description: Value::Value(t.description.clone()),
        group: given(&t.config.group),
        cpu: quantity(res, "cpu"),
        memory: quantity(res, "memory"),
        gpu: quantity(res, "gpu"),
        gpu_type: gpu_config("type"),
        gpu_memory: gpu_config("memory"),
        price: given(&t.config.price),
    }
}

/// `cluster` is set but blank: the problem, naming the attribute and the fix.
pub fn check_cluster(cluster: &Value<String>) -> Vec<Problem> {
    match cluster {
        Value::Value(c) if c.trim().is_empty() => vec![Problem::at(
            "cluster",
            "Invalid cluster",
            "`cluster` is empty: remove it to list the instance types of the default cluster, or name a cluster (the `bentocloud_clusters` data source lists them).",
        )],
        _ => Vec::new(),
    }
}

/// `bentocloud_instance_types`.
pub type InstanceTypesDataSource = Source<InstanceTypesData>;

#[async_trait]
impl Data for InstanceTypesData {
    fn problems(&self) -> Vec<Problem> {
        check_cluster(&self.cluster)
    }

    async fn read(self, configured: &Configured, diags: &mut Diagnostics) -> Option<Self> {
        let client = &configured.client;
        let chosen = self
            .cluster
            .as_ref_option()
            .cloned()
            .or_else(|| configured.default_cluster.clone());
        // No cluster anywhere: ask without one, like the official client, so the server's own
        // default answers; its name comes from the cluster list, as for `bentocloud_clusters`.
        let (types, cluster) = match &chosen {
            Some(c) => (client.list_instance_types(c).await, Value::Value(c.clone())),
            None => {
                let (types, clusters) =
                    tokio::join!(client.list_instance_types(""), client.list_clusters());
                let name = match clusters {
                    Ok(cs) => crate::api::default_cluster(&cs)
                        .map(|c| Value::Value(c.meta.name.clone()))
                        .unwrap_or(Value::Null),
                    Err(e) => {
                        diag::api_error(diags, "Cannot list clusters", &e, None);
                        return None;
                    }
                };
                (types, name)
            }
        };
        let types = match types {
            Ok(t) => t,
            Err(e) => {
                match self.cluster.as_ref_option() {
                    Some(c) if e.is_not_found() => diag::unknown_cluster(diags, c, &e),
                    Some(_) => diag::api_error(
                        diags,
                        "Cannot list instance types",
                        &e,
                        Some(AttributePath::new("cluster")),
                    ),
                    // The provider's `cluster` or the server's default: not this block's.
                    None => diag::api_error(diags, "Cannot list instance types", &e, None),
                }
                return None;
            }
        };
        let items: Vec<InstanceTypeData> = types.iter().map(instance_type_from).collect();
        Some(InstanceTypesData {
            cluster,
            names: Value::Value(items.iter().map(|t| t.name.clone()).collect()),
            instance_types: Value::Value(items),
        })
    }

    fn schema() -> Schema {
        instance_types_schema()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn keys(v: impl Serialize) -> BTreeSet<String> {
        let v = serde_json::to_value(v).expect("ser");
        v.as_object().expect("object").keys().cloned().collect()
    }

    fn schema_keys(s: &Schema) -> BTreeSet<String> {
        s.block.attributes.keys().cloned().collect()
    }

    fn object_keys(t: &AttributeType) -> BTreeSet<String> {
        match t {
            AttributeType::List(inner) => object_keys(inner),
            AttributeType::Object(f) => f.keys().cloned().collect(),
            other => panic!("not an object list: {other:?}"),
        }
    }

    /// The state structs and the schemas name the same attributes (a mismatch would make
    /// Terraform reject every read).
    #[test]
    fn state_and_schema_agree() {
        let s = clusters_schema();
        assert_eq!(keys(ClustersData::default()), schema_keys(&s));
        assert_eq!(
            keys(ClusterData::default()),
            object_keys(&s.block.attributes["clusters"].attr_type)
        );
        let s = instance_types_schema();
        assert_eq!(keys(InstanceTypesData::default()), schema_keys(&s));
        assert_eq!(
            keys(InstanceTypeData::default()),
            object_keys(&s.block.attributes["instance_types"].attr_type)
        );
    }

    fn cluster(name: &str, is_first: Option<bool>) -> Cluster {
        let mut c = Cluster {
            description: format!("{name} cluster"),
            is_first,
            ..Default::default()
        };
        c.meta.name = name.into();
        c
    }

    #[test]
    fn the_cluster_marked_first_is_the_default_one() {
        let data = clusters_from(&[cluster("east", Some(false)), cluster("west", Some(true))]);
        let Value::Value(items) = &data.clusters else {
            panic!("clusters set")
        };
        let flags: Vec<(String, bool)> = items
            .iter()
            .map(|c| {
                (
                    c.name.as_ref_option().cloned().unwrap_or_default(),
                    c.is_default == Value::Value(true),
                )
            })
            .collect();
        assert_eq!(
            flags,
            [("east".to_string(), false), ("west".to_string(), true)]
        );
        assert_eq!(data.default_cluster, Value::Value("west".to_string()));
        assert_eq!(
            items[1].description,
            Value::Value("west cluster".to_string())
        );
        // The API does not say: no default, every flag false, names still listed.
        let data = clusters_from(&[cluster("a", None), cluster("b", None)]);
        assert_eq!(data.default_cluster, Value::Null);
        let Value::Value(items) = &data.clusters else {
            panic!("clusters set")
        };
        assert!(items.iter().all(|c| c.is_default == Value::Value(false)));
        assert_eq!(
            data.names,
            Value::Value(vec![Value::Value("a".into()), Value::Value("b".into())])
        );
    }

    fn instance_type(doc: Json) -> InstanceType {
        serde_json::from_value(doc).expect("instance type")
    }

    /// Resources are read as the API gives them: strings untouched, requests before limits,
    /// GPU model and memory from `gpu_config`; what the API does not give is null.
    #[test]
    fn instance_types_read_their_resources_as_given() {
        let gpu = instance_type(serde_json::json!({
            "name": "gpu.l4.1", "display_name": "L4 x1", "description": "one L4",
            "config": {
                "group": "gpu",
                "resources": {
                    "requests": {"cpu": "6000m", "memory": "24Gi", "gpu": "1"},
                    "limits": {"cpu": "8", "memory": "32Gi", "gpu": "1"}
                },
                "price": "1.0064",
                "gpu_config": {"type": "nvidia-l4", "memory": "24Gi"}
            }
        }));
        let d = instance_type_from(&gpu);
        let s = |v: &str| Value::Value(v.to_string());
        assert_eq!(
            d,
            InstanceTypeData {
                name: s("gpu.l4.1"),
                display_name: s("L4 x1"),
                description: s("one L4"),
                group: s("gpu"),
                cpu: s("6000m"),
                memory: s("24Gi"),
                gpu: s("1"),
                gpu_type: s("nvidia-l4"),
                gpu_memory: s("24Gi"),
                price: s("1.0064"),
            }
        );
        // Only limits; an empty GPU string and no gpu_config; no price.
        let cpu = instance_type(serde_json::json!({
            "name": "cpu.1", "display_name": "cpu.1", "description": "",
            "config": {
                "group": "cpu",
                "resources": {"requests": null, "limits": {"cpu": "500m", "memory": "2Gi", "gpu": ""}},
                "price": ""
            }
        }));
        let d = instance_type_from(&cpu);
        assert_eq!((d.cpu, d.memory), (s("500m"), s("2Gi")));
        for v in [d.gpu, d.gpu_type, d.gpu_memory, d.price] {
            assert_eq!(v, Value::Null);
        }
        assert_eq!(d.description, s(""), "descriptions are shown as given");
        // Nothing at all under resources.
        let bare = instance_type(serde_json::json!({"name": "x", "config": {"resources": {}}}));
        let d = instance_type_from(&bare);
        assert_eq!((d.cpu, d.memory), (Value::Null, Value::Null));
    }

    #[test]
    fn a_blank_cluster_is_refused_with_the_fix() {
        let problems = check_cluster(&Value::Value(" ".into()));
        let [p] = problems.as_slice() else {
            panic!("one problem for a blank cluster: {problems:?}");
        };
        assert_eq!(p.summary, "Invalid cluster");
        assert_eq!(p.path, tf_provider::AttributePath::new("cluster"));
        assert!(
            p.detail.contains("`cluster` is empty: remove it"),
            "{}",
            p.detail
        );
        assert!(check_cluster(&Value::Value("local-west".into())).is_empty());
        assert!(check_cluster(&Value::Null).is_empty());
        assert!(check_cluster(&Value::Unknown).is_empty());
    }
}
