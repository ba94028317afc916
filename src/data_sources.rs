//! Terraform data sources: `bentocloud_deployment` (one deployment) and
//! `bentocloud_deployments` (the fleet, filtered by cluster, search, structured query and
//! labels together, every page fetched, full objects returned).
//!
//! Both reuse the resource's server-to-state translation, so a deployment reads the same
//! through a resource and through a data source. Only the single-deployment one also shows
//! the deployment's [`health`] (one read of its pods stream per data source read): a listing
//! of hundreds would cost one websocket each, and the resource's refresh stays one GET.
//!
//! Lookups of what the platform offers live in their own modules: [`catalog`]
//! (`bentocloud_clusters`, `bentocloud_instance_types`) and [`bento`] (`bentocloud_bento`).

pub mod bento;
pub mod catalog;
pub mod health;
pub mod source;

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::Diagnostics;

use crate::api::Deployment;
use crate::client::{Client, ClientError, ListQuery};
use crate::diag;
use crate::resources::deployment::convert::{entry_service, state_from_server};
use crate::resources::deployment::model::{
    deployment_attributes, service_block_schema, DeploymentState, Location, Reported, Spec,
};
use crate::schema::{attr, flat_schema, to_map, StringMap};
use crate::shared::Configured;
use health::HealthData;
use source::{Data, Source};

/// A deployment as data: the resource's model without its Terraform-only
/// [`Settings`](crate::resources::deployment::model::Settings), every service shown (the
/// entry service's settings at the top level as in the resource, each other service in
/// `service`), and which service is the entry one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentData {
    #[serde(flatten)]
    pub location: Location,
    #[serde(flatten)]
    pub spec: Spec,
    #[serde(flatten)]
    pub reported: Reported,
    #[serde(default)]
    pub entry_service: Value<String>,
}

fn or_empty<T: Default>(v: Value<T>) -> Value<T> {
    match v {
        Value::Value(m) => Value::Value(m),
        _ => Value::Value(T::default()),
    }
}

impl DeploymentData {
    /// The resource's server-to-state translation, as an import reads it (every non-entry
    /// service becomes a `service` entry); collections read as empty rather than null.
    fn from_deployment(d: &Deployment) -> Self {
        let DeploymentState {
            location,
            mut spec,
            settings: _,
            reported,
            ..
        } = state_from_server(d, &DeploymentState::default(), true);
        spec.labels = or_empty(spec.labels);
        spec.envs = or_empty(spec.envs);
        spec.secrets = or_empty(spec.secrets);
        if let Value::Value(services) = &mut spec.service {
            for s in services {
                s.envs = or_empty(std::mem::take(&mut s.envs));
            }
        }
        Self {
            location,
            spec,
            reported,
            entry_service: entry_service(d).map(Value::Value).unwrap_or(Value::Null),
        }
    }
}

/// The data sources' attributes: the resource's shared ones, `service` as a computed list of
/// objects (a data source has no computed blocks), and `entry_service`. `c` picks the
/// constraint of the shared ones.
fn data_attributes(c: impl Fn(&str) -> AttributeConstraint) -> HashMap<String, Attribute> {
    let mut attrs = deployment_attributes(c);
    let service = service_block_schema();
    let object = service
        .attributes
        .into_iter()
        .map(|(k, a)| (k, a.attr_type))
        .collect();
    attrs.insert(
        "service".into(),
        attr(
            AttributeType::List(Box::new(AttributeType::Object(object))),
            AttributeConstraint::Computed,
            "Every service other than the entry one, by name, with its instance type, scaling, strategy and own environment variables (the entry service's are the top-level attributes).",
        ),
    );
    attrs.insert(
        "entry_service".into(),
        attr(
            AttributeType::String,
            AttributeConstraint::Computed,
            "The entry service: the one the top-level `instance_type`, scaling and `deployment_strategy` describe, and the one behind `url`.",
        ),
    );
    attrs
}

/// The object type of one element of `bentocloud_deployments.deployments`.
fn deployment_object_type() -> AttributeType {
    let attrs = data_attributes(|_| AttributeConstraint::Computed);
    AttributeType::Object(attrs.into_iter().map(|(k, a)| (k, a.attr_type)).collect())
}

/// Schema of `bentocloud_deployment` (data source): the deployment's attributes and its
/// `health`.
pub fn deployment_schema() -> Schema {
    let mut attributes = data_attributes(|name| match name {
        "name" => AttributeConstraint::Required,
        "cluster" => AttributeConstraint::OptionalComputed,
        _ => AttributeConstraint::Computed,
    });
    attributes.insert("health".into(), health::health_attribute());
    flat_schema(attributes, "Reads one BentoCloud deployment by name (and cluster): its bento, scaling, status, revision and URL, and the live health of each service (ready replicas, replicas per bento version, restarts, warnings). Use it to wire a deployment managed elsewhere (another workspace, CI, the console) into this configuration, or to watch a deployment's health from a `check` block.")
}

/// `bentocloud_deployment` (data source): a deployment as data, and its health.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentHealthData {
    #[serde(flatten)]
    pub deployment: DeploymentData,
    #[serde(default)]
    pub health: Value<Vec<HealthData>>,
}

/// `bentocloud_deployment`.
pub type DeploymentDataSource = Source<DeploymentHealthData>;

#[async_trait]
impl Data for DeploymentHealthData {
    async fn read(self, configured: &Configured, diags: &mut Diagnostics) -> Option<Self> {
        let name = self
            .deployment
            .location
            .name
            .as_ref_option()
            .cloned()
            .unwrap_or_default();
        if let Err(why) = crate::rules::deployment_name(&name) {
            diag::invalid_deployment_name(diags, why);
            return None;
        }
        let cluster = self
            .deployment
            .location
            .cluster
            .as_ref_option()
            .cloned()
            .or_else(|| configured.default_cluster.clone())
            .unwrap_or_default();
        let client = &configured.client;
        match client.get_deployment_opt(&cluster, &name).await {
            Ok(Some(d)) => {
                // The data's entry service (and its top-level settings) come from the bento's
                // manifest: one GET per bento not yet cached.
                let d = client.with_bento_manifest(d).await;
                let deployment = DeploymentData::from_deployment(&d);
                let entry = deployment.entry_service.as_ref_option().cloned();
                let health = health::read_health(client, &d, entry.as_deref(), diags).await;
                Some(DeploymentHealthData { deployment, health })
            }
            Ok(None) => {
                diag::deployment_not_found(diags, &name, &cluster);
                None
            }
            Err(e) => {
                diag::api_error(diags, &format!("Cannot read deployment {name:?}"), &e, None);
                None
            }
        }
    }

    fn schema() -> Schema {
        deployment_schema()
    }
}

/// `bentocloud_deployments` inputs and outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeploymentsData {
    pub cluster: Value<String>,
    pub search: Value<String>,
    pub query: Value<String>,
    pub labels: Value<StringMap>,
    pub deployments: Value<Vec<DeploymentData>>,
    pub names: Value<Vec<Value<String>>>,
    pub ids: Value<Vec<Value<String>>>,
}

/// Schema of `bentocloud_deployments`.
pub fn deployments_schema() -> Schema {
    use AttributeConstraint::{Computed, Optional};
    let attributes = to_map(vec![
            ("cluster", attr(AttributeType::String, Optional, "Only deployments in this cluster. Default: the provider's `cluster`; when neither is set, every cluster.")),
            ("search", attr(AttributeType::String, Optional, "Only deployments whose name contains this text. Default: no filter.")),
            ("query", attr(AttributeType::String, Optional, "BentoCloud structured query: space-separated `key:value` tokens such as `status:running`, `bento:iris`, `is:dev`, `label:team=ml`. Default: no filter.")),
            ("labels", attr(AttributeType::Map(Box::new(AttributeType::String)), Optional, "Only deployments that carry every one of these labels (`key = value`). Combined with `cluster`, `search` and `query` (all filters apply together). Default: no filter.")),
            ("deployments", attr(AttributeType::List(Box::new(deployment_object_type())), Computed, "The matching deployments, newest first, as full objects (same attributes as the `bentocloud_deployment` data source), except `url`, which is null: BentoCloud's list does not return URLs (read one deployment with the `bentocloud_deployment` data source for it). Every page is fetched.")),
            ("names", attr(AttributeType::List(Box::new(AttributeType::String)), Computed, "Names of the matching deployments, in the same order as `deployments`.")),
            ("ids", attr(AttributeType::List(Box::new(AttributeType::String)), Computed, "IDs (`cluster/name`) of the matching deployments, in the same order as `deployments`.")),
    ]);
    flat_schema(attributes, "Lists BentoCloud deployments across clusters, filtered by cluster, name search, structured query and labels together. Every page is fetched and full objects are returned.")
}

/// `bentocloud_deployments`.
pub type DeploymentsDataSource = Source<DeploymentsData>;

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

/// Whether `d` meets every filter of `query` that can be checked from the document itself: the
/// cluster, the labels, and the `label:`, `status:`, `cluster:`, `is:dev`/`not:dev` tokens of
/// `q` (labels must all match, the other keys any of their values, as in Yatai's grammar).
/// Other tokens (bare words, `creator:`, `bento:`, `sort:`, ...) and `search` are left to the
/// server: their exact server-side meaning is not documented, and a guess could drop
/// deployments the server rightly returned.
///
/// Why check at all: the official client never sends `q` together with `cluster`
/// (cdep.py:1368-1374, API doc §2.3 and §9.2), so whether BentoCloud applies `q` (which also
/// carries the labels, as `label:k=v` tokens) when `cluster` is set is unknown (§10, "What a
/// client must not assume"). A server that ignores it would return the whole cluster, and
/// `bentocloud_deployments` would hand every deployment to a configuration that asked for one
/// team's. Filtering what comes back makes the result exact either way.
pub fn matches_client_side(query: &ListQuery, d: &Deployment) -> bool {
    if let Some(c) = query.cluster.as_deref().filter(|c| !c.is_empty()) {
        if d.cluster.meta.name != c {
            return false;
        }
    }
    let has_label = |k: &str, v: &str| d.meta.labels.iter().any(|l| l.key == k && l.value == v);
    if !query.labels.iter().all(|(k, v)| has_label(k, v)) {
        return false;
    }
    let (mut statuses, mut clusters) = (Vec::new(), Vec::new());
    for token in query.q.as_deref().unwrap_or("").split_whitespace() {
        let Some((key, value)) = token.split_once(':') else {
            continue;
        };
        match key {
            "label" => {
                let (k, v) = value.split_once('=').unwrap_or((value, ""));
                if !has_label(k, v) {
                    return false;
                }
            }
            "is" | "not" if value == "dev" => {
                let dev = d.manifest.as_ref().is_some_and(|m| m.dev);
                if dev != (key == "is") {
                    return false;
                }
            }
            "status" => statuses.push(value),
            "cluster" => clusters.push(value),
            _ => {}
        }
    }
    (statuses.is_empty() || statuses.contains(&d.status.as_str()))
        && (clusters.is_empty() || clusters.contains(&d.cluster.meta.name.as_str()))
}

/// Every deployment matching `query`, as data: the server's answer, page by page, with
/// [`matches_client_side`] applied to each item as its page arrives. Each matching item is
/// given its bento's manifest first, for its entry service (one GET per bento not yet cached);
/// the items the filter drops cost none.
pub async fn list_matching(
    client: &Client,
    query: &ListQuery,
) -> Result<Vec<DeploymentData>, ClientError> {
    client
        .list_deployments_with_manifest_map(
            query,
            |d| matches_client_side(query, d),
            |d| DeploymentData::from_deployment(&d),
        )
        .await
}

#[async_trait]
impl Data for DeploymentsData {
    fn validate(&self, diags: &mut Diagnostics) {
        let Value::Value(labels) = &self.labels else {
            return;
        };
        for (k, v) in labels {
            if let Err(why) = crate::rules::label_key(k) {
                diag::invalid_label_key(diags, k, why);
            }
            if let Value::Value(v) = v {
                if let Err(why) = crate::rules::label_value(v) {
                    diag::invalid_label_value(diags, k, why);
                }
            }
        }
    }

    async fn read(self, configured: &Configured, diags: &mut Diagnostics) -> Option<Self> {
        let query = list_query(&self, configured.default_cluster.as_deref());
        let deployments = match list_matching(&configured.client, &query).await {
            Ok(list) => list,
            Err(e) => {
                diag::api_error(diags, "Cannot list deployments", &e, None);
                return None;
            }
        };
        let mut out = self;
        out.names = Value::Value(
            deployments
                .iter()
                .map(|d| d.location.name.clone())
                .collect(),
        );
        out.ids = Value::Value(deployments.iter().map(|d| d.location.id.clone()).collect());
        out.deployments = Value::Value(deployments);
        Some(out)
    }

    fn schema() -> Schema {
        deployments_schema()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

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

    fn keys(v: impl Serialize) -> BTreeSet<String> {
        let v = serde_json::to_value(v).expect("ser");
        v.as_object().expect("object").keys().cloned().collect()
    }

    /// The data view is derived from the resource's model: every attribute of the resource
    /// but its Terraform-only settings, plus `entry_service`; and the schema says the same.
    #[test]
    fn the_data_view_is_the_model_without_terraform_only_settings() {
        use crate::resources::deployment::model::Settings;
        let mut want = keys(DeploymentState::default());
        for k in keys(Settings::default()) {
            want.remove(&k);
        }
        // The label sets are the resource's (what Terraform manages, what else is there):
        // `labels` shows every label here.
        for k in keys(crate::resources::deployment::model::LabelSets::default()) {
            want.remove(&k);
        }
        for k in keys(crate::resources::deployment::model::CanaryPart::default()) {
            want.remove(&k);
        }
        want.insert("entry_service".into());
        assert_eq!(keys(DeploymentData::default()), want);
        // The single-deployment data source adds its health.
        want.insert("health".into());
        assert_eq!(keys(DeploymentHealthData::default()), want);
        let schema: BTreeSet<String> = deployment_schema()
            .block
            .attributes
            .keys()
            .cloned()
            .collect();
        assert_eq!(schema, want);
    }

    /// Every service shows, the entry one at the top level and the others in `service`.
    #[test]
    fn every_service_shows_and_the_entry_one_is_named() {
        let mut doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/fixtures/deployment-full.json"))
                .expect("fixture");
        let services = &mut doc["latest_revision"]["targets"][0]["config"]["services"];
        services["Model"] = serde_json::json!({
            "instance_type": "gpu.l4.1",
            "scaling": {"min_replicas": 0, "max_replicas": 4},
            "envs": [{"name": "BATCH", "value": "8"}],
            "config_overrides": {}
        });
        let d: Deployment = serde_json::from_value(doc).expect("deployment");
        let data = DeploymentData::from_deployment(&d);
        assert_eq!(data.entry_service, Value::Value("MyService".to_string()));
        let Value::Value(others) = &data.spec.service else {
            panic!("service is set: {data:?}")
        };
        assert_eq!(others.len(), 1, "{others:?}");
        let model = &others[0];
        assert_eq!(model.name, Value::Value("Model".to_string()));
        assert_eq!(
            model.settings.instance_type,
            Value::Value("gpu.l4.1".to_string())
        );
        assert_eq!(
            (model.settings.min_replicas, model.settings.max_replicas),
            (Value::Value(0), Value::Value(4))
        );
        assert_eq!(
            model.envs,
            Value::Value(StringMap::from([(
                "BATCH".to_string(),
                Value::Value("8".to_string())
            )]))
        );
        // A single-service deployment: an empty list, and empty collections, never null.
        let single: Deployment =
            serde_json::from_str(include_str!("../tests/fixtures/deployment-minimal.json"))
                .expect("fixture");
        let data = DeploymentData::from_deployment(&single);
        assert_eq!(data.spec.service, Value::Value(vec![]));
        for m in [&data.spec.labels, &data.spec.envs] {
            assert!(m.is_value(), "{data:?}");
        }
        assert!(data.spec.secrets.is_value());
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

    /// Five deployments of `local-east`, of two teams, one of them a dev deployment.
    fn east_fleet() -> Vec<Deployment> {
        [
            ("a", "team=ml", "running", false),
            ("b", "team=ml", "deploying", false),
            ("c", "team=ops", "running", false),
            ("d", "", "running", false),
            ("e", "team=ml", "running", true),
        ]
        .into_iter()
        .map(|(name, label, status, dev)| {
            let mut d = Deployment::default();
            d.meta.name = name.into();
            d.cluster.meta.name = "local-east".into();
            if let Some((k, v)) = label.split_once('=') {
                d.meta.labels.push(crate::api::LabelItem {
                    key: k.into(),
                    value: v.into(),
                });
            }
            d.status = crate::api::DeploymentStatus::parse(status).unwrap_or_default();
            d.manifest = Some(crate::api::DeploymentManifest { dev, routing: None });
            d
        })
        .collect()
    }

    /// A server that ignores `q` (and `search`): every deployment of [`east_fleet`], one page;
    /// and a client of it.
    async fn server_ignoring_q() -> (crate::client::stub::Stub, Client) {
        use crate::client::stub::{serve, StubRequest, StubResponse};
        use crate::client::ClientConfig;

        let stub = serve(|req: StubRequest| async move {
            let fleet = east_fleet();
            let start: usize = req.param("start").and_then(|s| s.parse().ok()).unwrap_or(0);
            let page: Vec<&Deployment> = fleet.iter().skip(start).collect();
            StubResponse::json(
                200,
                serde_json::json!({"start": start, "count": page.len(), "total": fleet.len(), "items": page}),
            )
        })
        .await;
        let mut cfg = ClientConfig::new(stub.url.clone(), "tok");
        cfg.requests_per_second = 0.0;
        let client = Client::new(cfg).expect("client");
        (stub, client)
    }

    /// The names of the deployments [`list_matching`] returns for `query`.
    async fn names_listed(client: &Client, query: &ListQuery) -> Vec<String> {
        list_matching(client, query)
            .await
            .expect("list")
            .into_iter()
            .filter_map(|d| d.location.name.as_ref_option().cloned())
            .collect()
    }

    /// A query of `local-east` with the structured query `q`.
    fn east_with(q: &str) -> ListQuery {
        ListQuery {
            cluster: Some("local-east".into()),
            q: Some(q.into()),
            ..Default::default()
        }
    }

    /// A server that ignores `q` when `cluster` is given (the official client never sends them
    /// together, API doc §2.3) returns the whole cluster: the data source still returns exactly
    /// the deployments with the labels and query terms it asked for.
    #[tokio::test]
    async fn fleet_is_exact_even_when_the_server_ignores_q_with_cluster() {
        let (stub, client) = server_ignoring_q().await;
        let by_label = ListQuery {
            cluster: Some("local-east".into()),
            labels: BTreeMap::from([("team".to_string(), "ml".to_string())]),
            ..Default::default()
        };
        assert_eq!(names_listed(&client, &by_label).await, ["a", "b", "e"]);
        let reqs = stub.requests();
        let sent = reqs.last().expect("a request");
        assert_eq!(
            sent.param("q").as_deref(),
            Some("label:team=ml"),
            "still asked"
        );
        assert_eq!(sent.param("cluster").as_deref(), Some("local-east"));

        let by_query = east_with("status:running not:dev label:team=ml");
        assert_eq!(names_listed(&client, &by_query).await, ["a"]);
        assert_eq!(names_listed(&client, &east_with("is:dev")).await, ["e"]);
        // Terms it cannot check are the server's: nothing is dropped for them.
        let unknown = east_with("iris creator:someone");
        assert_eq!(names_listed(&client, &unknown).await.len(), 5);
        // Another cluster's deployments never pass a cluster filter.
        let west = ListQuery {
            cluster: Some("local-west".into()),
            ..Default::default()
        };
        assert!(names_listed(&client, &west).await.is_empty());
    }
}
