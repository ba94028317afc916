//! The traffic-splitting parts of `bentocloud_deployment`: the `canary` block (a canary the
//! configuration keeps, sent as the body's `canary`) and the `progressive_rollout` block (how
//! an apply delivers a new bento: canary steps, bake time, analysis; Terraform-only).
//!
//! Names, by Terraform convention and the platform's words: `canary`'s `route_type`,
//! `route_by` and `version` are the API's own (`canary: {route_type, route_by, versions}`,
//! API doc §3.2); `progressive_rollout` says what it changes (the rollout of a bento), `steps`
//! are traffic percentages like Google Cloud Deploy's canary `percentages`, and `bake_time`
//! is AWS ECS's canary term. Blocks (not nested attributes, which crash Terraform 1.0.3 with
//! tf-provider 0.2.2).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, AttributeType, Block, Description, NestedBlock};
use tf_provider::value::Value;

use crate::schema::{attr as a, str_map, to_map, StringMap};

/// The part of the state that holds the configured canary (not in the data sources, which
/// show a deployment's canary nowhere yet).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryPart {
    #[serde(with = "tf_provider::value::serde_as_vec")]
    pub canary: Value<CanaryBlock>,
}

/// The `canary` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryBlock {
    pub route_type: Value<String>,
    pub route_by: Value<String>,
    pub version: Value<Vec<CanaryVersionBlock>>,
}

/// One `version` of the `canary` block.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryVersionBlock {
    pub name: Value<String>,
    pub bento: Value<String>,
    pub weight: Value<i64>,
    pub envs: Value<StringMap>,
}

impl CanaryBlock {
    pub fn versions(&self) -> &[CanaryVersionBlock] {
        self.version.as_ref_option().map_or(&[], Vec::as_slice)
    }
}

/// The `progressive_rollout` block (Terraform-only: how an apply delivers a bento change).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressiveRollout {
    pub steps: Value<Vec<Value<i64>>>,
    pub bake_time: Value<String>,
    pub route_type: Value<String>,
    pub route_by: Value<String>,
    #[serde(with = "tf_provider::value::serde_as_vec")]
    pub analysis: Value<Analysis>,
}

/// The `analysis` block of `progressive_rollout`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Analysis {
    pub unready_grace: Value<String>,
    pub max_restarts: Value<i64>,
    pub probe_path: Value<String>,
    pub probe_interval: Value<String>,
    pub max_failure_rate: Value<f64>,
    pub max_latency: Value<String>,
}

/// Defaults of `progressive_rollout`.
pub const DEFAULT_BAKE_TIME: &str = "5m";
pub const DEFAULT_UNREADY_GRACE: &str = "60s";
pub const DEFAULT_PROBE_INTERVAL: &str = "5s";
pub const DEFAULT_MAX_LATENCY: &str = "2s";
/// The name of the canary version a progressive rollout runs (also the header or query value
/// that routes a request to it).
pub const PROGRESSIVE_VERSION: &str = "canary";

/// Route types of a canary.
pub const ROUTE_TYPES: [&str; 3] = ["random", "header", "query"];

pub fn canary_block_schema() -> Block {
    use AttributeConstraint::{Optional, OptionalComputed, Required};
    use AttributeType::{Number, String as Str};
    let version = Block {
        version: 1,
        attributes: to_map(vec![
            ("name", a(Str, Required, "Name of the canary version: lowercase letters, digits and `-` (not `main`, the deployment's own target). With `header` or `query` routing, the value that sends a request to it.")),
            ("bento", a(Str, Required, "Bento this version serves, as `repository:version`.")),
            ("weight", a(Number, OptionalComputed, "Percent of the requests this version gets with `random` routing (0 to 100; all versions together at most 100; `main` gets the rest). Default `0`.")),
            ("envs", a(str_map(), Optional, "Environment variables of this version (`NAME = value`). Default: none.")),
        ]),
        blocks: HashMap::new(),
        description: Description::markdown("One canary version (repeat the block per version)."),
        deprecated: false,
    };
    let mut blocks = HashMap::new();
    blocks.insert("version".to_string(), NestedBlock::List(version));
    Block {
        version: 1,
        attributes: to_map(vec![
            ("route_type", a(Str, OptionalComputed, "How a request picks its version: `random` (by `weight`, the default), `header` (the request header named `route_by` names the version) or `query` (the query parameter named `route_by` does). Requests that name no version go to `main`.")),
            ("route_by", a(Str, Optional, "The header or query parameter that names the version (`header` and `query` routing; required for them).")),
        ]),
        blocks,
        description: Description::markdown("A canary the configuration keeps: other bentos (versions) served beside the deployment's own, each taking a share of the traffic (`manifest.routing` on the server). Removing the block removes the canary. A canary set elsewhere is kept while this block has never been configured. For delivering a new `bento` through canary steps, see `progressive_rollout`."),
        deprecated: false,
    }
}

pub fn progressive_block_schema() -> Block {
    use AttributeConstraint::{Optional, Required};
    use AttributeType::{List, Number, String as Str};
    let analysis = Block {
        version: 1,
        attributes: to_map(vec![
            ("unready_grace", a(Str, Optional, &format!("How long a canary pod may stay not ready (starting or after a restart) before the step fails. Go duration; default `{DEFAULT_UNREADY_GRACE}`."))),
            ("max_restarts", a(Number, Optional, "Restarts of canary pods tolerated during the steps (a crash loop is never tolerated). Default `0`.")),
            ("probe_path", a(Str, Optional, "When set, the provider sends `GET` requests to this path of the deployment's endpoint, routed to the canary with `route_by` (so `route_type` must be `header` or `query`), with the API token when `access_authorization` is on. A 5xx answer, an error, or an answer slower than `max_latency` is a failure.")),
            ("probe_interval", a(Str, Optional, &format!("Time between probe requests. Go duration; default `{DEFAULT_PROBE_INTERVAL}`."))),
            ("max_failure_rate", a(Number, Optional, "Largest share of failed probes (0 to 1) a step tolerates. Default `0`: any failed probe aborts.")),
            ("max_latency", a(Str, Optional, &format!("Slowest probe answer that still counts as a success. Go duration; default `{DEFAULT_MAX_LATENCY}`."))),
        ]),
        blocks: HashMap::new(),
        description: Description::markdown("How each step judges the canary, only from what the platform gives: the canary's pods (not ready past `unready_grace`, restarts, crash loops, warnings) and, with `probe_path`, the provider's own probe requests. Any failing check aborts."),
        deprecated: false,
    };
    let mut blocks = HashMap::new();
    blocks.insert("analysis".to_string(), NestedBlock::Optional(analysis));
    Block {
        version: 1,
        attributes: to_map(vec![
            ("steps", a(List(Box::new(Number)), Required, "Canary weights in percent, increasing, each 1 to 99 (e.g. `[5, 25, 50]`). The new bento first serves the first share; each further step raises it; after the last, the deployment itself takes the bento (a rolling update) and the canary goes away.")),
            ("bake_time", a(Str, Optional, &format!("How long each step runs, judged by `analysis`, before the next. Go duration; default `{DEFAULT_BAKE_TIME}`."))),
            ("route_type", a(Str, Optional, "How users reach the canary during the steps: `random` (the step's share of requests, the default), `header` or `query` (only requests naming the canary version `canary` in `route_by` reach it; the steps' weights then only pace the rollout).")),
            ("route_by", a(Str, Optional, "The header or query parameter that routes to the canary (`header`/`query` routing, and the probes).")),
        ]),
        blocks,
        description: Description::markdown("Deliver a change of `bento` progressively instead of with one rolling update: the new bento starts as a canary beside the serving one (which is not touched), goes through `steps`, each baked for `bake_time` and judged by `analysis`, then is promoted. A failing check, a timeout or Ctrl-C removes the canary and fails the apply; state keeps the bento that serves, so the next plan shows the change again. Changes that do not touch `bento` roll out as usual. Terraform-only (never sent to BentoCloud); see the guide \"Progressive delivery\"."),
        deprecated: false,
    }
}
