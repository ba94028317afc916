//! Terraform data sources: `bentocloud_deployment` (one deployment) and
//! `bentocloud_deployments` (the fleet, filtered by cluster, search, structured query and
//! labels together, every page fetched, full objects returned).
//!
//! Both reuse the resource's server-to-state translation, so a deployment reads the same
//! through a resource and through a data source.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, Schema,
};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, DataSource, Diagnostics};

use crate::api::Deployment;
use crate::client::ListQuery;
use crate::diag;
use crate::provider::Shared;
use crate::resources::deployment::convert::state_from_server;
use crate::resources::deployment::model::{deployment_attributes, DeploymentState, StringMap};

/// A deployment as data: every attribute the resource has except its Terraform-only settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentData {
    #[serde(default)]
    pub id: Value<String>,
    #[serde(default)]
    pub name: Value<String>,
    #[serde(default)]
    pub cluster: Value<String>,
    #[serde(default)]
    pub bento: Value<String>,
    #[serde(default)]
    pub deployed_bento: Value<String>,
    #[serde(default)]
    pub access_authorization: Value<bool>,
    #[serde(default)]
    pub labels: Value<StringMap>,
    #[serde(default)]
    pub envs: Value<StringMap>,
    #[serde(default)]
    pub secrets: Value<std::collections::BTreeSet<Value<String>>>,
    #[serde(default)]
    pub instance_type: Value<String>,
    #[serde(default)]
    pub min_replicas: Value<i64>,
    #[serde(default)]
    pub max_replicas: Value<i64>,
    #[serde(default)]
    pub deployment_strategy: Value<String>,
    #[serde(default)]
    pub status: Value<String>,
    #[serde(default)]
    pub url: Value<String>,
    #[serde(default)]
    pub revision: Value<String>,
    #[serde(default)]
    pub created_at: Value<String>,
    #[serde(default)]
    pub updated_at: Value<String>,
    #[serde(default)]
    pub creator: Value<String>,
}

fn or_empty_map(v: Value<StringMap>) -> Value<StringMap> {
    match v {
        Value::Value(m) => Value::Value(m),
        _ => Value::Value(StringMap::new()),
    }
}

impl DeploymentData {
    fn from_deployment(d: &Deployment) -> Self {
        let s: DeploymentState = state_from_server(d, &DeploymentState::default(), true);
        Self {
            id: s.id,
            name: s.name,
            cluster: s.cluster,
            bento: s.bento,
            deployed_bento: s.deployed_bento,
            access_authorization: s.access_authorization,
            labels: or_empty_map(s.labels),
            envs: or_empty_map(s.envs),
            secrets: match s.secrets {
                Value::Value(x) => Value::Value(x),
                _ => Value::Value(Default::default()),
            },
            instance_type: s.instance_type,
            min_replicas: s.min_replicas,
            max_replicas: s.max_replicas,
            deployment_strategy: s.deployment_strategy,
            status: s.status,
            url: s.url,
            revision: s.revision,
            created_at: s.created_at,
            updated_at: s.updated_at,
            creator: s.creator,
        }
    }
}

/// The object type of one element of `bentocloud_deployments.deployments`.
fn deployment_object_type() -> AttributeType {
    let attrs = deployment_attributes(|_| AttributeConstraint::Computed);
    AttributeType::Object(attrs.into_iter().map(|(k, a)| (k, a.attr_type)).collect())
}

fn attr(t: AttributeType, c: AttributeConstraint, d: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::markdown(d),
        constraint: c,
        sensitive: false,
        deprecated: false,
    }
}

/// Schema of `bentocloud_deployment` (data source).
pub fn deployment_schema() -> Schema {
    let attributes = deployment_attributes(|name| match name {
        "name" => AttributeConstraint::Required,
        "cluster" => AttributeConstraint::OptionalComputed,
        _ => AttributeConstraint::Computed,
    });
    Schema {
            version: 1,
            block: Block {
                version: 1,
                attributes,
                blocks: HashMap::new(),
                description: Description::markdown(
                    "Reads one BentoCloud deployment by name (and cluster): its bento, scaling, status, revision and URL. Use it to wire a deployment managed elsewhere (another workspace, CI, the console) into this configuration.",
                ),
                deprecated: false,
            },
        }
}

/// `bentocloud_deployment`.
pub struct DeploymentDataSource {
    shared: Arc<Shared>,
}

impl DeploymentDataSource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[async_trait]
impl DataSource for DeploymentDataSource {
    type State<'a> = DeploymentData;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(deployment_schema())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let configured = self.shared.configured(diags)?;
        let name = config.name.as_ref_option().cloned().unwrap_or_default();
        if let Err(why) = crate::rules::deployment_name(&name) {
            diags.error("Invalid deployment name", why, AttributePath::new("name"));
            return None;
        }
        let cluster = config
            .cluster
            .as_ref_option()
            .cloned()
            .or_else(|| configured.default_cluster.clone())
            .unwrap_or_default();
        match configured.client.get_deployment_opt(&cluster, &name).await {
            Ok(Some(d)) => Some(DeploymentData::from_deployment(&d)),
            Ok(None) => {
                let shown = if cluster.is_empty() {
                    "the default cluster".to_string()
                } else {
                    format!("cluster {cluster:?}")
                };
                diags.error(
                    "Deployment not found",
                    format!("BentoCloud has no deployment {name:?} in {shown}. Check `name` and `cluster` (`bentoml deployment list` lists them)."),
                    AttributePath::new("name"),
                );
                None
            }
            Err(e) => {
                diag::api_error(diags, &format!("Cannot read deployment {name:?}"), &e, None);
                None
            }
        }
    }
}

/// `bentocloud_deployments` inputs and outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentsData {
    #[serde(default)]
    pub cluster: Value<String>,
    #[serde(default)]
    pub search: Value<String>,
    #[serde(default)]
    pub query: Value<String>,
    #[serde(default)]
    pub labels: Value<StringMap>,
    #[serde(default)]
    pub deployments: Value<Vec<DeploymentData>>,
    #[serde(default)]
    pub names: Value<Vec<Value<String>>>,
    #[serde(default)]
    pub ids: Value<Vec<Value<String>>>,
}

/// Schema of `bentocloud_deployments`.
pub fn deployments_schema() -> Schema {
    use AttributeConstraint::{Computed, Optional};
    let attributes: HashMap<String, Attribute> = [
            ("cluster", attr(AttributeType::String, Optional, "Only deployments in this cluster. Default: the provider's `cluster`; when neither is set, every cluster.")),
            ("search", attr(AttributeType::String, Optional, "Only deployments whose name contains this text. Default: no filter.")),
            ("query", attr(AttributeType::String, Optional, "BentoCloud structured query: space-separated `key:value` tokens such as `status:running`, `bento:iris`, `is:dev`, `label:team=ml`. Default: no filter.")),
            ("labels", attr(AttributeType::Map(Box::new(AttributeType::String)), Optional, "Only deployments that carry every one of these labels (`key = value`). Combined with `cluster`, `search` and `query` (all filters apply together). Default: no filter.")),
            ("deployments", attr(AttributeType::List(Box::new(deployment_object_type())), Computed, "The matching deployments, newest first, as full objects (same attributes as the `bentocloud_deployment` data source). Every page is fetched.")),
            ("names", attr(AttributeType::List(Box::new(AttributeType::String)), Computed, "Names of the matching deployments, in the same order as `deployments`.")),
            ("ids", attr(AttributeType::List(Box::new(AttributeType::String)), Computed, "IDs (`cluster/name`) of the matching deployments, in the same order as `deployments`.")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Schema {
            version: 1,
            block: Block {
                version: 1,
                attributes,
                blocks: HashMap::new(),
                description: Description::markdown(
                    "Lists BentoCloud deployments across clusters, filtered by cluster, name search, structured query and labels together. Every page is fetched and full objects are returned.",
                ),
                deprecated: false,
            },
        }
}

/// `bentocloud_deployments`.
pub struct DeploymentsDataSource {
    shared: Arc<Shared>,
}

impl DeploymentsDataSource {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

/// The list query for the data source's inputs. Labels must all match (sent as `label:k=v`
/// tokens inside `q`, combined with `query`); unlike the bentoml CLI, they are kept when a
/// cluster is given.
pub fn list_query(config: &DeploymentsData, default_cluster: Option<&str>) -> ListQuery {
    let labels: BTreeMap<String, String> = config
        .labels
        .as_ref_option()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_ref_option().cloned().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    ListQuery {
        cluster: config
            .cluster
            .as_ref_option()
            .cloned()
            .or_else(|| default_cluster.map(str::to_string))
            .filter(|c| !c.is_empty()),
        search: config
            .search
            .as_ref_option()
            .cloned()
            .filter(|s| !s.is_empty()),
        q: config
            .query
            .as_ref_option()
            .cloned()
            .filter(|s| !s.is_empty()),
        labels,
    }
}

#[async_trait]
impl DataSource for DeploymentsDataSource {
    type State<'a> = DeploymentsData;
    type ProviderMetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(deployments_schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::State<'a>) -> Option<()> {
        if let Value::Value(labels) = &config.labels {
            for (k, v) in labels {
                if let Err(why) = crate::rules::label_key(k) {
                    diags.error(
                        "Invalid label key",
                        why,
                        AttributePath::new("labels").key(k.clone()),
                    );
                }
                if let Value::Value(v) = v {
                    if let Err(why) = crate::rules::label_value(v) {
                        diags.error(
                            "Invalid label value",
                            why,
                            AttributePath::new("labels").key(k.clone()),
                        );
                    }
                }
            }
        }
        Some(())
    }

    async fn read<'a>(
        &self,
        diags: &mut Diagnostics,
        config: Self::State<'a>,
        _provider_meta_state: Self::ProviderMetaState<'a>,
    ) -> Option<Self::State<'a>> {
        let configured = self.shared.configured(diags)?;
        let query = list_query(&config, configured.default_cluster.as_deref());
        let deployments = match configured
            .client
            .list_deployments_map(&query, |d| DeploymentData::from_deployment(&d))
            .await
        {
            Ok(list) => list,
            Err(e) => {
                diag::api_error(diags, "Cannot list deployments", &e, None);
                return None;
            }
        };
        let mut out = config;
        out.names = Value::Value(deployments.iter().map(|d| d.name.clone()).collect());
        out.ids = Value::Value(deployments.iter().map(|d| d.id.clone()).collect());
        out.deployments = Value::Value(deployments);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_type_has_every_attribute_of_a_deployment() {
        let ty = deployment_object_type();
        let AttributeType::Object(fields) = ty else {
            panic!("object expected")
        };
        let data = serde_json::to_value(DeploymentData::default()).expect("ser");
        let mut keys: Vec<&String> = data.as_object().expect("obj").keys().collect();
        keys.sort();
        let mut want: Vec<&String> = fields.keys().collect();
        want.sort();
        assert_eq!(keys, want);
    }

    #[test]
    fn labels_cluster_search_and_query_all_reach_the_list_query() {
        let mut labels = StringMap::new();
        labels.insert("team".into(), Value::Value("ml".into()));
        let config = DeploymentsData {
            cluster: Value::Value("local-west".into()),
            search: Value::Value("iris".into()),
            query: Value::Value("status:running".into()),
            labels: Value::Value(labels),
            ..Default::default()
        };
        let q = list_query(&config, Some("local-east"));
        assert_eq!(q.cluster.as_deref(), Some("local-west"));
        assert_eq!(q.search.as_deref(), Some("iris"));
        assert_eq!(q.q.as_deref(), Some("status:running"));
        assert_eq!(q.labels.get("team").map(String::as_str), Some("ml"));
        let q = list_query(&DeploymentsData::default(), None);
        assert!(q.cluster.is_none() && q.labels.is_empty());
    }
}
