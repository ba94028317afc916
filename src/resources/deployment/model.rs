//! The `bentocloud_deployment` resource's Terraform shape: its state struct and its schema.
//!
//! Every attribute's description says its default, its environment variable (if any) and its
//! effect; the docs under `docs/` are generated from these. Nested *blocks* are used (never
//! nested attributes), because nested attributes crash Terraform 1.0.3 with tf-provider 0.2.2.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, Description, NestedBlock, Schema,
};
use tf_provider::value::Value;

/// A `map(string)` value whose entries may be unknown during plan.
pub type StringMap = BTreeMap<String, Value<String>>;

/// State of one `bentocloud_deployment`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DeploymentState {
    #[serde(default)]
    pub id: Value<String>,
    #[serde(default)]
    pub name: Value<String>,
    #[serde(default)]
    pub cluster: Value<String>,
    #[serde(default)]
    pub bento: Value<String>,
    #[serde(default)]
    pub access_authorization: Value<bool>,
    #[serde(default)]
    pub labels: Value<StringMap>,
    #[serde(default)]
    pub envs: Value<StringMap>,
    #[serde(default)]
    pub secrets: Value<BTreeSet<Value<String>>>,
    #[serde(default)]
    pub instance_type: Value<String>,
    #[serde(default)]
    pub min_replicas: Value<i64>,
    #[serde(default)]
    pub max_replicas: Value<i64>,
    #[serde(default)]
    pub deployment_strategy: Value<String>,
    #[serde(default)]
    pub service: Value<Vec<ServiceBlock>>,
    #[serde(default)]
    pub wait_for_rollout: Value<bool>,
    #[serde(default)]
    pub rollback_on_failure: Value<bool>,
    #[serde(default)]
    pub bento_managed_externally: Value<bool>,
    #[serde(default, with = "tf_provider::value::serde_as_vec")]
    pub timeouts: Value<Timeouts>,
    #[serde(default)]
    pub status: Value<String>,
    #[serde(default)]
    pub url: Value<String>,
    #[serde(default)]
    pub revision: Value<String>,
    #[serde(default)]
    pub deployed_bento: Value<String>,
    #[serde(default)]
    pub created_at: Value<String>,
    #[serde(default)]
    pub updated_at: Value<String>,
    #[serde(default)]
    pub creator: Value<String>,
}

/// One `service` block: settings of a named service of a multi-service bento.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceBlock {
    #[serde(default)]
    pub name: Value<String>,
    #[serde(default)]
    pub instance_type: Value<String>,
    #[serde(default)]
    pub min_replicas: Value<i64>,
    #[serde(default)]
    pub max_replicas: Value<i64>,
    #[serde(default)]
    pub deployment_strategy: Value<String>,
    #[serde(default)]
    pub envs: Value<StringMap>,
}

/// The `timeouts` block (Go durations).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeouts {
    #[serde(default)]
    pub create: Value<String>,
    #[serde(default)]
    pub update: Value<String>,
    #[serde(default)]
    pub delete: Value<String>,
}

/// The resource's private state: a revision that an apply submitted but could not confirm
/// (the wait was interrupted or timed out). Kept by refresh while it is still the server's
/// latest revision, so the next apply resumes waiting for it even when the refreshed status is
/// a stale `running` (BentoCloud refreshes status after the fact, see `crate::wait`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unconfirmed {
    #[serde(default)]
    pub revision: Value<String>,
}

/// `Null` (the empty private state of every resource before this one existed) or a marker.
pub type Private = Value<Unconfirmed>;

/// The unconfirmed revision a private state names, if any.
pub fn unconfirmed_revision(p: &Private) -> Option<&str> {
    p.as_ref_option()
        .and_then(|u| u.revision.as_ref_option())
        .map(String::as_str)
        .filter(|r| !r.is_empty())
}

/// A private state naming `revision` as unconfirmed.
pub fn unconfirmed(revision: &str) -> Private {
    Value::Value(Unconfirmed {
        revision: Value::Value(revision.to_string()),
    })
}

/// Default `timeouts.create` / `timeouts.update`.
pub const DEFAULT_ROLLOUT_TIMEOUT: &str = "30m";
/// Default `timeouts.delete`.
pub const DEFAULT_DELETE_TIMEOUT: &str = "10m";
/// Default rollout strategy of a new deployment.
pub const DEFAULT_STRATEGY: &str = crate::api::Strategy::RollingUpdate.as_str();

fn a(t: AttributeType, c: AttributeConstraint, d: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::markdown(d),
        constraint: c,
        sensitive: false,
        deprecated: false,
    }
}

fn str_map() -> AttributeType {
    AttributeType::Map(Box::new(AttributeType::String))
}

fn to_map(items: Vec<(&str, Attribute)>) -> HashMap<String, Attribute> {
    items.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Attributes shared by the resource and the data sources, as computed outputs or inputs.
/// `c` picks the constraint for the configurable ones.
pub fn deployment_attributes(
    c: impl Fn(&str) -> AttributeConstraint,
) -> HashMap<String, Attribute> {
    use AttributeType::{Bool, Number, String as Str};
    to_map(vec![
        ("id", a(Str, AttributeConstraint::Computed, "`cluster/name` of the deployment; also the import ID.")),
        ("name", a(Str, c("name"), "Deployment name: lowercase letters, digits and `-`, at most 63 characters, unique in its cluster. Changing it replaces the deployment (a new one is created, then the old one is destroyed).")),
        ("cluster", a(Str, c("cluster"), "Cluster to deploy to. Default: the provider's `cluster`, else the organisation's default cluster. Changing it replaces the deployment.")),
        ("bento", a(Str, c("bento"), "Bento to serve, as `repository:version` (e.g. `iris_classifier:v2`); `repository` alone (or `repository:latest`) means its newest version, resolved when the deployment is created or `bento` changes; other changes keep the running version, so a newer push is not picked up until `bento` changes (see `deployed_bento`). Changing it triggers a rollout using `deployment_strategy` (a rolling update by default, with zero downtime).")),
        ("access_authorization", a(Bool, c("access_authorization"), "Whether the endpoint requires an API token. Default `false` (public endpoint).")),
        ("labels", a(str_map(), c("labels"), "Labels of the deployment (`key = value`). Keys use letters, digits, `-`, `_`, `.` and an optional DNS prefix (`example.com/team`). Default: none. Usable as a filter in `bentocloud_deployments`.")),
        ("envs", a(str_map(), c("envs"), "Environment variables for every service (`NAME = value`). Values are shown in plans: put secret values in BentoCloud secrets and reference them with `secrets`. Default: none. Changing them triggers a rollout.")),
        ("secrets", a(AttributeType::Set(Box::new(Str)), c("secrets"), "Names of BentoCloud secrets (organisation secrets) mounted into every service. Only names are stored; secret values never enter Terraform state. Default: none.")),
        ("instance_type", a(Str, c("instance_type"), "Instance type of the entry service (e.g. `cpu.2`, `gpu.l4.1`; list them with `bentoml deployment list-instance-types`). Default: the cluster's default instance type, chosen by BentoCloud. Changing it triggers a rollout.")),
        ("min_replicas", a(Number, c("min_replicas"), "Fewest replicas of the entry service. Default `1`. `0` scales to zero when idle (the deployment reports `scaled-to-zero` and wakes on the next request). Must be at most `max_replicas`.")),
        ("max_replicas", a(Number, c("max_replicas"), "Most replicas of the entry service when scaling on load. Default: `min_replicas`, and at least `1`.")),
        ("deployment_strategy", a(Str, c("deployment_strategy"), "How changes roll out to the entry service: `RollingUpdate` (default: new replicas start and become ready before old ones drain; zero downtime), `Recreate` (stop all, then start all: downtime), `RampedSlowRollout` (one replica at a time, with a pause), `BestEffortControlledRollout` (rolling without extra replicas, allowing up to 20% of them, at least one, below the desired count).")),
        ("status", a(Str, AttributeConstraint::Computed, "Status reported by BentoCloud: `running`, `deploying`, `image-building`, `scaled-to-zero`, `unhealthy`, `failed`, `image-build-failed`, `terminating`, `terminated`, ...")),
        ("url", a(Str, AttributeConstraint::Computed, "Endpoint URL of the deployment.")),
        ("revision", a(Str, AttributeConstraint::Computed, "UID of the deployment's latest revision. Every configuration change creates a new revision; apply waits for this revision, never for an older one that still reports `running`.")),
        ("deployed_bento", a(Str, AttributeConstraint::Computed, "The bento the latest revision actually runs (`repository:version`), as BentoCloud resolved it. Differs from `bento` when `bento` names only a repository, or when `bento_managed_externally` is set and CI deployed another version.")),
        ("created_at", a(Str, AttributeConstraint::Computed, "Creation time (RFC 3339).")),
        ("updated_at", a(Str, AttributeConstraint::Computed, "Last update time (RFC 3339).")),
        ("creator", a(Str, AttributeConstraint::Computed, "Name of the user who created the deployment.")),
    ])
}

fn service_block_schema() -> Block {
    use AttributeConstraint::{Optional, OptionalComputed, Required};
    use AttributeType::{Number, String as Str};
    Block {
        version: 1,
        attributes: to_map(vec![
            ("name", a(Str, Required, "Service name, as declared in the bento (`@bentoml.service` class name). Must not be the entry service, which the top-level attributes configure.")),
            ("instance_type", a(Str, OptionalComputed, "Instance type of this service. Default: the cluster's default instance type.")),
            ("min_replicas", a(Number, OptionalComputed, "Fewest replicas of this service. Default `1`; `0` scales to zero when idle.")),
            ("max_replicas", a(Number, OptionalComputed, "Most replicas of this service. Default: `min_replicas`, and at least `1`.")),
            ("deployment_strategy", a(Str, OptionalComputed, "Rollout strategy of this service. Default `RollingUpdate`.")),
            ("envs", a(str_map(), Optional, "Environment variables of this service only; they override the deployment's `envs`. Default: none.")),
        ]),
        blocks: HashMap::new(),
        description: Description::markdown("Settings of one more service of a multi-service bento (repeat the block per service)."),
        deprecated: false,
    }
}

fn timeouts_block_schema() -> Block {
    use AttributeConstraint::Optional;
    use AttributeType::String as Str;
    Block {
        version: 1,
        attributes: to_map(vec![
            ("create", a(Str, Optional, "How long create waits for the first rollout (Go duration such as `30m`, `1h30m`). Default `30m`. On timeout the rollout goes on server-side; the deployment is saved in state, so a later apply resumes.")),
            ("update", a(Str, Optional, "How long update waits for the rollout. Default `30m`. On timeout the rollout goes on server-side and the next plan shows what is still to converge.")),
            ("delete", a(Str, Optional, "How long destroy waits for the deployment to terminate before deleting it. Default `10m`.")),
        ]),
        blocks: HashMap::new(),
        description: Description::markdown("Time limits of create, update and destroy."),
        deprecated: false,
    }
}

/// The resource schema.
pub fn resource_schema() -> Schema {
    use AttributeConstraint::{Optional, OptionalComputed, Required};
    let mut attributes = deployment_attributes(|name| match name {
        "name" | "bento" => Required,
        "labels" | "envs" | "secrets" => Optional,
        _ => OptionalComputed,
    });
    for (k, d) in [
        ("wait_for_rollout", "Whether create and update wait until BentoCloud reports the submitted revision `running` (or `scaled-to-zero` when `min_replicas` is 0). Default `true`. A failed rollout (`image-build-failed`, `failed`, or `unhealthy` past a grace period) fails the apply with BentoCloud's reason."),
        ("rollback_on_failure", "When a rollout fails (or the apply is interrupted with Ctrl-C), put the previous configuration back, wait for it, and still report the failure. Default `false`: a failed rollout is left as is (the previous revision keeps serving with `RollingUpdate`) and the next plan shows the change again."),
        ("bento_managed_externally", "Set when CI deploys new bento versions (e.g. `bentoml deployment update --bento`): Terraform then uses `bento` only to create the deployment and never reverts the running bento; everything else stays managed. Default `false`. See `deployed_bento` for what runs."),
    ] {
        attributes.insert(k.to_string(), a(AttributeType::Bool, OptionalComputed, d));
    }
    let mut blocks = HashMap::new();
    blocks.insert(
        "service".to_string(),
        NestedBlock::List(service_block_schema()),
    );
    blocks.insert(
        "timeouts".to_string(),
        NestedBlock::Optional(timeouts_block_schema()),
    );
    Schema {
        version: 1,
        block: Block {
            version: 1,
            attributes,
            blocks,
            description: Description::markdown(
                "A BentoCloud deployment: a bento served behind an endpoint, with its scaling, instance type, environment and secrets. Create and update wait for the rollout of the revision they submitted (not a stale `running`), fail fast with BentoCloud's reason, and leave honest state when a rollout fails or is interrupted.",
            ),
            deprecated: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_field_is_in_the_schema_and_back() {
        let schema = resource_schema();
        let state = serde_json::to_value(DeploymentState::default()).expect("ser");
        let fields: BTreeSet<String> = state.as_object().expect("object").keys().cloned().collect();
        let mut in_schema: BTreeSet<String> = schema.block.attributes.keys().cloned().collect();
        in_schema.extend(schema.block.blocks.keys().cloned());
        assert_eq!(fields, in_schema);
    }

    #[test]
    fn name_and_bento_are_required_and_outputs_computed() {
        let s = resource_schema();
        assert_eq!(
            s.block.attributes["name"].constraint,
            AttributeConstraint::Required
        );
        assert_eq!(
            s.block.attributes["bento"].constraint,
            AttributeConstraint::Required
        );
        for c in [
            "id",
            "status",
            "url",
            "revision",
            "created_at",
            "updated_at",
            "creator",
        ] {
            assert_eq!(
                s.block.attributes[c].constraint,
                AttributeConstraint::Computed,
                "{c}"
            );
        }
        for d in s.block.attributes.values() {
            assert!(d.description.content.len() > 20);
        }
    }
}
