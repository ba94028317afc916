//! The `bentocloud` provider: its configuration schema, `configure`, and the registry of
//! resources and data sources.
//!
//! tf-provider constructs resources before `configure` runs and `configure` takes `&self`, so
//! the configured API client reaches resources and data sources through [`Shared`], a slot
//! `configure` fills (see `crate::shared`).

pub mod credentials;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Description, Schema};
use tf_provider::value::{Value, ValueEmpty};
use tf_provider::{AttributePath, Diagnostics, DynamicDataSource, DynamicResource, Provider};
use tokio_util::sync::CancellationToken;

use crate::client::{Client, ClientConfig, ErrorKind};
use crate::data_sources::bento::BentoDataSource;
use crate::data_sources::catalog::{ClustersDataSource, InstanceTypesDataSource};
use crate::data_sources::{DeploymentDataSource, DeploymentsDataSource};
use crate::diag;
use crate::resources::{DeploymentResource, SecretResource};
use crate::schema::{flat_schema, to_map};
use crate::shared::{Configured, Shared};

/// The provider.
pub struct BentoCloudProvider {
    shared: Arc<Shared>,
}

impl Default for BentoCloudProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl BentoCloudProvider {
    pub fn new() -> Self {
        Self {
            shared: Arc::new(Shared::default()),
        }
    }

    /// The token SIGINT cancels.
    pub fn cancellation(&self) -> CancellationToken {
        self.shared.cancellation()
    }
}

/// The provider block.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProviderConfig {
    #[serde(default)]
    pub endpoint: Value<String>,
    #[serde(default)]
    pub api_key: Value<String>,
    #[serde(default)]
    pub cluster: Value<String>,
    #[serde(default)]
    pub max_concurrent_requests: Value<i64>,
    #[serde(default)]
    pub requests_per_second: Value<f64>,
    #[serde(default)]
    pub status_sync_period: Value<String>,
    #[serde(default)]
    pub default_labels: Value<crate::schema::StringMap>,
}

/// Environment fallback of `status_sync_period`.
pub const STATUS_SYNC_PERIOD_ENV: &str = "BENTOCLOUD_STATUS_SYNC_PERIOD";

/// Default for `max_concurrent_requests`.
pub const DEFAULT_MAX_CONCURRENT: i64 = 16;
/// Default for `requests_per_second`: high enough that a refresh is bound by Terraform's own
/// parallelism and `max_concurrent_requests`, not by the bucket (at 50/s a 200-deployment plan
/// spent 4 s waiting on it); lower it for an API that throttles.
pub const DEFAULT_REQUESTS_PER_SECOND: f64 = 500.0;

fn attr(t: AttributeType, c: AttributeConstraint, sensitive: bool, description: &str) -> Attribute {
    Attribute {
        attr_type: t,
        description: Description::markdown(description),
        constraint: c,
        sensitive,
        deprecated: false,
    }
}

/// The provider block's schema.
pub fn provider_schema() -> Schema {
    use AttributeConstraint::Optional;
    let attributes = to_map(vec![
        (
            "endpoint",
            attr(AttributeType::String, Optional, false,
                "BentoCloud API endpoint: the full origin of your organisation, e.g. `https://my-org.cloud.bentoml.com`, or `http://127.0.0.1:4780` for `bentocloud-local`. Falls back to the `BENTO_CLOUD_API_ENDPOINT` environment variable, then to the endpoint of the context saved by `bentoml cloud login`, then to `https://cloud.bentoml.com`."),
        ),
        (
            "api_key",
            attr(AttributeType::String, Optional, true,
                "BentoCloud API token (sensitive: never shown in plans or logs). Falls back to the `BENTO_CLOUD_API_KEY` environment variable, then to the token of the context saved by `bentoml cloud login` (`$BENTOML_HOME/.yatai.yaml`, context chosen by `BENTOML_CLOUD_CONTEXT`). Required from one of these sources."),
        ),
        (
            "cluster",
            attr(AttributeType::String, Optional, false,
                "Default cluster for resources and data sources that do not set `cluster`. No environment variable. When unset, the organisation's default cluster (chosen by BentoCloud) is used."),
        ),
        (
            "max_concurrent_requests",
            attr(AttributeType::Number, Optional, false,
                "Most API requests in flight at once, shared by every resource and data source of this provider. Default `16`. Lower it if BentoCloud answers 429 (Too Many Requests); large refreshes then get slower, never fail."),
        ),
        (
            "requests_per_second",
            attr(AttributeType::Number, Optional, false,
                "Most API requests per second, shared by every resource and data source of this provider (a smooth token bucket). Default `500`. 429 answers are also retried with back-off, honouring `Retry-After`."),
        ),
        (
            "status_sync_period",
            attr(AttributeType::String, Optional, false,
                "How long after a create or update BentoCloud may still report the previous revision's status (Go duration, e.g. `2m`, `90s`). BentoCloud reports one status per deployment and refreshes it after an update; a rollout wait trusts a `running` or `failed` only once the status has visibly moved to an in-progress one after the submit, or once this long has passed since the submit. Before that, an update's wait ends on the pods' evidence (every serving pod of the new revision, enough of them ready): this window decides only when the pods cannot be read. Default `2m` (the platform's periodic status sync runs every minute). Falls back to the `BENTOCLOUD_STATUS_SYNC_PERIOD` environment variable. For `bentocloud-local`, use its `timing.status_sync_ms` plus a second (`3s` by default)."),
        ),
        (
            "default_labels",
            attr(crate::schema::str_map(), Optional, false,
                "Labels every `bentocloud_deployment` of this provider gets, merged under its own `labels` (a key in both takes the resource's value), as the Google provider's `default_labels` and the AWS provider's `default_tags`. Each deployment shows the merged set as `terraform_labels`, and every label it has (these, its own, and any set elsewhere) as `effective_labels`; the `bentocloud_deployments` data source filters on them like any label. Changing them updates every deployment on the next apply; a label set elsewhere is never removed. Default: none."),
        ),
    ]);
    flat_schema(attributes, "The BentoCloud provider manages ML-serving deployments on BentoCloud (BentoML's managed platform), or on `bentocloud-local`, the local control plane shipped with it.")
}

/// Plan-time checks of the provider block's literal values.
pub fn validate_config(config: &ProviderConfig, diags: &mut Diagnostics) {
    if let Value::Value(ep) = &config.endpoint {
        if let Err(why) = credentials::parse_endpoint(ep) {
            diag::invalid_endpoint(diags, ep, &why);
        }
    }
    if let Value::Value(n) = config.max_concurrent_requests {
        if n < 1 {
            diag::invalid_max_concurrent_requests(diags, n, DEFAULT_MAX_CONCURRENT);
        }
    }
    if let Value::Value(r) = config.requests_per_second {
        if r.is_nan() || r <= 0.0 {
            diag::invalid_requests_per_second(diags, r, DEFAULT_REQUESTS_PER_SECOND);
        }
    }
    if let Value::Value(p) = &config.status_sync_period {
        if let Err(why) = crate::duration::parse_go_duration(p) {
            diag::invalid_status_sync_period(
                diags,
                diag::not_a_duration("`status_sync_period`", p, &why),
            );
        }
    }
    if let Value::Value(c) = &config.cluster {
        if c.trim().is_empty() {
            diag::empty_provider_cluster(diags);
        }
    }
    for (k, v) in config.default_labels.as_ref_option().into_iter().flatten() {
        let value_rule = v.as_ref_option().map(|v| crate::rules::label_value(v));
        for why in [
            crate::rules::label_key(k).err(),
            value_rule.and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        {
            diags.error(
                "Invalid default label",
                why,
                AttributePath::new("default_labels").key(k.clone()),
            );
        }
    }
}

/// The endpoint and API key, from the provider block, the environment or the `bentoml` CLI's
/// context (an error diagnostic names the attribute when neither has them).
fn resolve_credentials(
    config: &ProviderConfig,
    diags: &mut Diagnostics,
) -> Option<credentials::Resolved> {
    let env = |k: &str| std::env::var(k).ok();
    let read_file = |p: &std::path::Path| std::fs::read_to_string(p).ok();
    match credentials::resolve(
        config.endpoint.as_ref_option().cloned(),
        config.api_key.as_ref_option().cloned(),
        &env,
        &read_file,
    ) {
        Ok(r) => {
            tracing::info!(
                "configuring bentocloud provider: endpoint {} (from {}), API key from {}",
                r.endpoint,
                r.endpoint_source,
                r.api_key_source
            );
            Some(r)
        }
        Err(e) => {
            diags.error(e.summary, e.detail, AttributePath::new(e.attribute));
            None
        }
    }
}

/// The client's settings from the provider block (limits default to the documented values).
fn client_config(
    config: &ProviderConfig,
    resolved: &credentials::Resolved,
    terraform_version: &str,
) -> ClientConfig {
    ClientConfig {
        api_token: resolved.api_key.clone(),
        user_agent: format!(
            "terraform-provider-bentocloud/{} terraform/{}",
            env!("CARGO_PKG_VERSION"),
            terraform_version
        ),
        max_concurrent_requests: config
            .max_concurrent_requests
            .as_ref_option()
            .copied()
            .unwrap_or(DEFAULT_MAX_CONCURRENT)
            .max(1) as usize,
        requests_per_second: config
            .requests_per_second
            .as_ref_option()
            .copied()
            .unwrap_or(DEFAULT_REQUESTS_PER_SECOND),
        ..ClientConfig::new(resolved.endpoint.clone(), String::new())
    }
}

/// The provider block's settings other than the client's, checked.
struct Settings {
    default_cluster: Option<String>,
    status_sync_period: std::time::Duration,
    refresh_mode: crate::client::snapshot::Mode,
}

impl Settings {
    fn of(config: &ProviderConfig, diags: &mut Diagnostics) -> Option<Settings> {
        let default_cluster = config
            .cluster
            .as_ref_option()
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        let status_sync_period = match status_sync_period(config.status_sync_period.as_ref_option())
        {
            Ok(d) => d,
            Err(detail) => {
                diag::invalid_status_sync_period(diags, detail);
                return None;
            }
        };
        let refresh = std::env::var("BENTOCLOUD_REFRESH_BATCH").unwrap_or_default();
        let refresh_mode = match crate::client::snapshot::Mode::parse(&refresh) {
            Ok(m) => m,
            Err(detail) => {
                diag::invalid_refresh_batch(diags, detail);
                return None;
            }
        };
        Some(Settings {
            default_cluster,
            status_sync_period,
            refresh_mode,
        })
    }
}

/// Checks the key once, so a wrong token is one clear error instead of one per resource. Only
/// a rejection, a rejected certificate or an unreachable endpoint fail here (every call would
/// fail the same way, so it is said once, with where the endpoint came from); other errors
/// surface on the first real call.
async fn check_api_key(
    client: &Client,
    resolved: &credentials::Resolved,
    diags: &mut Diagnostics,
) -> Option<()> {
    let Err(e) = client.current_user().await else {
        return Some(());
    };
    if e.is_unauthorized() {
        diag::api_key_rejected(diags, &e, resolved.api_key_source, &resolved.endpoint);
        return None;
    }
    if matches!(e.kind(), ErrorKind::Certificate | ErrorKind::Unreachable) {
        diag::endpoint_unusable(
            diags,
            &e,
            &resolved.endpoint,
            &endpoint_setting(resolved.endpoint_source),
        );
        return None;
    }
    tracing::warn!("could not check the API key: {e}");
    Some(())
}

/// The setting an endpoint from `source` was read from, for "check the endpoint" errors.
fn endpoint_setting(source: credentials::Source) -> String {
    match source {
        credentials::Source::Attribute => "`endpoint` in the provider block".into(),
        credentials::Source::Env => format!(
            "the {} environment variable",
            credentials::ENV_ENDPOINT
        ),
        credentials::Source::Context => {
            "the context saved by `bentoml cloud login` (no `endpoint` or BENTO_CLOUD_API_ENDPOINT is set)".into()
        }
        credentials::Source::Default => {
            "the default (neither `endpoint` nor BENTO_CLOUD_API_ENDPOINT is set)".into()
        }
    }
}

#[async_trait]
impl Provider for BentoCloudProvider {
    type Config<'a> = ProviderConfig;
    type MetaState<'a> = ValueEmpty;

    fn schema(&self, _diags: &mut Diagnostics) -> Option<Schema> {
        Some(provider_schema())
    }

    async fn validate<'a>(&self, diags: &mut Diagnostics, config: Self::Config<'a>) -> Option<()> {
        validate_config(&config, diags);
        Some(())
    }

    async fn configure<'a>(
        &self,
        diags: &mut Diagnostics,
        terraform_version: String,
        config: Self::Config<'a>,
    ) -> Option<()> {
        validate_config(&config, diags);
        if !diags.errors.is_empty() {
            return None;
        }
        if config.endpoint.is_unknown() || config.api_key.is_unknown() {
            diag::configuration_unknown(diags);
            return None;
        }
        let resolved = resolve_credentials(&config, diags)?;
        let client = match Client::new(client_config(&config, &resolved, &terraform_version)) {
            Ok(c) => c,
            Err(e) => {
                diag::client_not_created(diags, &e);
                return None;
            }
        };
        check_api_key(&client, &resolved, diags).await?;
        let settings = Settings::of(&config, diags)?;
        // The refresh's first listing page, in the background (`client::snapshot`). After the
        // key check, not beside it: on the check's connection (HTTP/1.1: a concurrent request
        // would open a second connection, one more TLS handshake), and never to an endpoint
        // configure is about to reject.
        let snapshots = crate::client::snapshot::Snapshots::new(settings.refresh_mode);
        snapshots.warm_up(&client, settings.default_cluster.as_deref());
        self.shared.fill(Configured {
            client,
            default_cluster: settings.default_cluster,
            status_sync_period: settings.status_sync_period,
            snapshots,
            default_labels: config.default_labels.clone(),
        });
        Some(())
    }

    fn get_resources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicResource>>> {
        let mut map: HashMap<String, Box<dyn DynamicResource>> = HashMap::new();
        map.insert(
            "deployment".into(),
            Box::new(DeploymentResource::new(self.shared.clone())),
        );
        map.insert(
            "secret".into(),
            Box::new(SecretResource::new(self.shared.clone())),
        );
        Some(map)
    }

    fn get_data_sources(
        &self,
        _diags: &mut Diagnostics,
    ) -> Option<HashMap<String, Box<dyn DynamicDataSource>>> {
        let mut map: HashMap<String, Box<dyn DynamicDataSource>> = HashMap::new();
        map.insert(
            "deployment".into(),
            Box::new(DeploymentDataSource::new(self.shared.clone())),
        );
        map.insert(
            "deployments".into(),
            Box::new(DeploymentsDataSource::new(self.shared.clone())),
        );
        // Lookups of what the platform offers (`data_sources::catalog`, `data_sources::bento`).
        let lookups: [(&str, Box<dyn DynamicDataSource>); 3] = [
            (
                "clusters",
                Box::new(ClustersDataSource::new(self.shared.clone())),
            ),
            (
                "instance_types",
                Box::new(InstanceTypesDataSource::new(self.shared.clone())),
            ),
            ("bento", Box::new(BentoDataSource::new(self.shared.clone()))),
        ];
        map.extend(lookups.map(|(k, v)| (k.to_string(), v)));
        Some(map)
    }
}

/// `status_sync_period` from the provider block, else from `BENTOCLOUD_STATUS_SYNC_PERIOD`,
/// else the default ([`crate::wait::DEFAULT_STATUS_SYNC_PERIOD`]).
pub fn status_sync_period(configured: Option<&String>) -> Result<std::time::Duration, String> {
    let (text, from) = match configured {
        Some(t) => (t.clone(), "`status_sync_period`".to_string()),
        None => match std::env::var(STATUS_SYNC_PERIOD_ENV) {
            Ok(t) if !t.trim().is_empty() => (t, STATUS_SYNC_PERIOD_ENV.to_string()),
            _ => return Ok(crate::wait::DEFAULT_STATUS_SYNC_PERIOD),
        },
    };
    crate::duration::parse_go_duration(text.trim())
        .map_err(|why| diag::not_a_duration(&from, &text, &why))
}
