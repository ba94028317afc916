//! `bentocloud_bento`: one bento of a repository, by version or the latest, and whether it
//! exists at all.
//!
//! The lookups are the official client's own (API doc §2.2): a version is
//! `GET /api/v1/bento_repositories/{repo}/bentos/{version}`; "latest" is
//! `GET /api/v1/bento_repositories/{repo}/bentos?count=1`, whose first item the client takes
//! (client.py:146-154, bento.py:576-580). The provider takes that item too and does not sort:
//! which bento is the newest is the server's call, made the same way for `bentoml deploy`.
//!
//! A missing bento or repository (404, 400 "record not found", or an empty listing) is a value,
//! `exists = false`, so a configuration can branch on it; any other failure is an error.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tf_provider::schema::{AttributeConstraint, AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::Diagnostics;

use super::source::{Data, Source};
use crate::api::Bento;
use crate::client::{Client, ClientError};
use crate::diag::{self, Problem};
use crate::schema::{attr, flat_schema, to_map};
use crate::shared::Configured;

/// `bentocloud_bento` inputs and outputs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BentoData {
    pub repository: Value<String>,
    pub version: Value<String>,
    pub exists: Value<bool>,
    pub tag: Value<String>,
    pub created_at: Value<String>,
    pub entry_service: Value<String>,
    pub services: Value<Vec<Value<String>>>,
}

/// Schema of `bentocloud_bento`.
pub fn bento_schema() -> Schema {
    use AttributeConstraint::{Computed, OptionalComputed, Required};
    let attributes = to_map(vec![
        ("repository", attr(AttributeType::String, Required, "Bento repository name (the part of a bento tag before `:`, e.g. `iris_classifier`).")),
        ("version", attr(AttributeType::String, OptionalComputed, "Version to look up. Default: the latest bento of the repository, as BentoCloud lists it first (the same lookup as `bentoml deploy repository` without a version); after the read, the version found (null when the repository has no bento).")),
        ("exists", attr(AttributeType::Bool, Computed, "Whether the bento exists. A missing bento or repository is `false`, not an error (other API failures are errors): a version nobody pushed is `exists = false`, on BentoCloud and on `bentocloud-local` (unless it serves with `--auto-register-bentos`, which registers an unknown version when it is looked up).")),
        ("tag", attr(AttributeType::String, Computed, "The bento tag, `repository:version`, ready for `bento` of `bentocloud_deployment`; null when the bento does not exist.")),
        ("created_at", attr(AttributeType::String, Computed, "When the bento was created, as BentoCloud gives it (ISO 8601); null when the bento does not exist.")),
        ("entry_service", attr(AttributeType::String, Computed, "The bento's entry service, from its manifest (the service the top-level settings of `bentocloud_deployment` configure); null when the manifest names none or the bento does not exist.")),
        ("services", attr(AttributeType::List(Box::new(AttributeType::String)), Computed, "The services the bento's manifest declares, the entry service first (the names `service` blocks of `bentocloud_deployment` accept). Empty when the bento does not exist; null when BentoCloud gives no manifest.")),
    ]);
    flat_schema(attributes, "Looks up one bento: a given version, or the latest of a repository. Says whether it exists, its tag and its services, so a configuration can deploy the newest bento or check a version before deploying it.")
}

/// Plan-time checks of the inputs that are known: a repository name without version or
/// spaces, a version that is not empty, `latest` or a tag. Unknown values are left for the read.
pub fn check_input(repository: &Value<String>, version: &Value<String>) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Value::Value(r) = repository {
        let why = if r.trim().is_empty() {
            Some(
                "`repository` is empty: give a bento repository name, e.g. \"iris_classifier\"."
                    .to_string(),
            )
        } else if let Some((repo, ver)) = r.split_once(':') {
            Some(format!("`repository` is {r:?}, a whole bento tag: set `repository = {repo:?}` and `version = {ver:?}` (or leave `version` out for the latest)."))
        } else if r.chars().any(|c| c.is_whitespace() || c == '/') {
            Some(format!("`repository` is {r:?}: a repository name has no spaces or '/'; use the part of the bento tag before ':', e.g. \"iris_classifier\"."))
        } else {
            None
        };
        if let Some(why) = why {
            out.push(Problem::at("repository", "Invalid bento repository", why));
        }
    }
    if let Value::Value(v) = version {
        let why = if v.trim().is_empty() {
            Some("`version` is empty: remove it to look up the latest bento of the repository, or give a version, e.g. \"v2\".".to_string())
        } else if v == "latest" {
            Some("`version` is \"latest\": remove `version` to look up the latest bento; the version found is then in `version`.".to_string())
        } else if v.chars().any(|c| c.is_whitespace() || c == '/' || c == ':') {
            Some(format!("`version` is {v:?}: give only the part of the bento tag after ':', without spaces or '/', e.g. \"v2\"."))
        } else {
            None
        };
        if let Some(why) = why {
            out.push(Problem::at("version", "Invalid bento version", why));
        }
    }
    out
}

/// The bento `repository:version`, or the repository's latest (`version` None); `None` when
/// the bento or its repository does not exist.
pub async fn lookup(
    client: &Client,
    repository: &str,
    version: Option<&str>,
) -> Result<Option<Bento>, ClientError> {
    // An empty repository is a not-found too (`latest_bento`).
    match client.resolve_bento(repository, version).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The data source's outputs for `config` and what the lookup found.
pub fn data_from(config: &BentoData, found: Option<&Bento>) -> BentoData {
    let repository = config
        .repository
        .as_ref_option()
        .cloned()
        .unwrap_or_default();
    let Some(b) = found else {
        return BentoData {
            repository: config.repository.clone(),
            // A version asked for stays (Terraform keeps configured values); latest: none.
            version: match &config.version {
                Value::Value(v) => Value::Value(v.clone()),
                _ => Value::Null,
            },
            exists: Value::Value(false),
            tag: Value::Null,
            created_at: Value::Null,
            entry_service: Value::Null,
            services: Value::Value(Vec::new()),
        };
    };
    // `name` equals `version` in every BentoSchema (the official client rebuilds tags from
    // either); `version` is the documented one.
    let version = if b.version.is_empty() {
        b.meta.name.clone()
    } else {
        b.version.clone()
    };
    let (entry_service, services) = match &b.manifest {
        Some(m) => (
            if m.entry_service.is_empty() {
                Value::Null
            } else {
                Value::Value(m.entry_service.clone())
            },
            Value::Value(m.service_names().into_iter().map(Value::Value).collect()),
        ),
        None => (Value::Null, Value::Null),
    };
    BentoData {
        repository: config.repository.clone(),
        tag: Value::Value(format!("{repository}:{version}")),
        version: Value::Value(version),
        exists: Value::Value(true),
        created_at: if b.meta.created_at.is_empty() {
            Value::Null
        } else {
            Value::Value(b.meta.created_at.clone())
        },
        entry_service,
        services,
    }
}

/// `bentocloud_bento`.
pub type BentoDataSource = Source<BentoData>;

#[async_trait]
impl Data for BentoData {
    fn problems(&self) -> Vec<Problem> {
        check_input(&self.repository, &self.version)
    }

    async fn read(self, configured: &Configured, diags: &mut Diagnostics) -> Option<Self> {
        let repository = self.repository.as_ref_option().cloned().unwrap_or_default();
        let version = self.version.as_ref_option().cloned();
        match lookup(&configured.client, &repository, version.as_deref()).await {
            Ok(found) => Some(data_from(&self, found.as_ref())),
            Err(e) => {
                let what = match &version {
                    Some(v) => format!("Cannot look up bento \"{repository}:{v}\""),
                    None => format!("Cannot look up the latest bento of {repository:?}"),
                };
                diag::api_error(diags, &what, &e, None);
                None
            }
        }
    }

    fn schema() -> Schema {
        bento_schema()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::api::BentoManifest;

    #[test]
    fn state_and_schema_agree() {
        let state: BTreeSet<String> = serde_json::to_value(BentoData::default())
            .expect("ser")
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        let schema: BTreeSet<String> = bento_schema().block.attributes.keys().cloned().collect();
        assert_eq!(state, schema);
    }

    fn s(v: &str) -> Value<String> {
        Value::Value(v.to_string())
    }

    #[test]
    fn bad_inputs_name_their_attribute_and_the_fix() {
        let attrs = |r: Value<String>, v: Value<String>| -> Vec<tf_provider::AttributePath> {
            check_input(&r, &v).into_iter().map(|p| p.path).collect()
        };
        let at = tf_provider::AttributePath::new;
        assert!(attrs(s("iris"), Value::Null).is_empty());
        assert!(attrs(s("iris_classifier"), s("v2.1-rc")).is_empty());
        assert!(attrs(Value::Unknown, Value::Unknown).is_empty());
        for bad in ["", "  ", "iris:v1", "my iris", "org/iris"] {
            assert_eq!(attrs(s(bad), Value::Null), [at("repository")], "{bad:?}");
        }
        for bad in ["", "latest", "v1:x", "a b", "x/y"] {
            assert_eq!(attrs(s("iris"), s(bad)), [at("version")], "{bad:?}");
        }
        assert_eq!(attrs(s(""), s("")), [at("repository"), at("version")]);
        let problems = check_input(&s("iris:v1"), &Value::Null);
        assert!(
            problems[0]
                .detail
                .contains("set `repository = \"iris\"` and `version = \"v1\"`"),
            "{problems:?}"
        );
        let problems = check_input(&s(""), &Value::Null);
        assert!(problems[0].detail.starts_with("`repository` is empty"));
    }

    fn bento(version: &str, manifest: Option<BentoManifest>) -> Bento {
        let mut b = Bento {
            version: version.into(),
            manifest,
            ..Default::default()
        };
        b.meta.name = version.into();
        b.meta.created_at = "2026-01-02T03:04:05Z".into();
        b
    }

    #[test]
    fn a_found_bento_shows_its_version_tag_and_services() {
        let config = BentoData {
            repository: s("shop"),
            ..Default::default()
        };
        let manifest = BentoManifest {
            entry_service: "Gateway".into(),
            services: vec![
                serde_json::json!({"name": "Model"}),
                serde_json::json!({"name": "Gateway"}),
            ],
            ..Default::default()
        };
        let d = data_from(&config, Some(&bento("v3", Some(manifest))));
        assert_eq!(d.version, s("v3"), "the latest's version is resolved");
        assert_eq!(d.tag, s("shop:v3"));
        assert_eq!(d.exists, Value::Value(true));
        assert_eq!(d.created_at, s("2026-01-02T03:04:05Z"));
        assert_eq!(d.entry_service, s("Gateway"));
        assert_eq!(d.services, Value::Value(vec![s("Gateway"), s("Model")]));
        // No manifest: the services are not known, not empty.
        let d = data_from(&config, Some(&bento("v3", None)));
        assert_eq!((d.services, d.entry_service), (Value::Null, Value::Null));
    }

    #[test]
    fn a_missing_bento_is_a_value_not_an_error() {
        let asked = BentoData {
            repository: s("iris"),
            version: s("v9"),
            ..Default::default()
        };
        let d = data_from(&asked, None);
        assert_eq!(d.exists, Value::Value(false));
        assert_eq!(d.version, s("v9"), "the version asked for stays");
        assert_eq!((d.tag, d.created_at), (Value::Null, Value::Null));
        assert_eq!(d.services, Value::Value(vec![]));
        let latest = BentoData {
            repository: s("iris"),
            ..Default::default()
        };
        assert_eq!(data_from(&latest, None).version, Value::Null);
    }

    /// Not-found answers (404, 400 "record not found", an empty listing) are `None`; other
    /// failures stay errors; "latest" asks `?count=1` and takes the first item.
    #[tokio::test]
    async fn lookup_maps_not_found_to_none_and_keeps_other_errors() {
        use crate::client::stub::{serve, StubRequest, StubResponse};
        use crate::client::ClientConfig;

        let stub = serve(|req: StubRequest| async move {
            let path = req.path.clone();
            let item = |v: &str| serde_json::json!({"name": v, "version": v, "created_at": "2026-01-01T00:00:00Z"});
            match path.as_str() {
                "/api/v1/bento_repositories/iris/bentos/v1" => StubResponse::json(200, item("v1")),
                "/api/v1/bento_repositories/iris/bentos" => StubResponse::json(
                    200,
                    serde_json::json!({"start": 0, "count": 1, "total": 2, "items": [item("v2"), item("v1")]}),
                ),
                "/api/v1/bento_repositories/empty/bentos" => StubResponse::json(
                    200,
                    serde_json::json!({"start": 0, "count": 0, "total": 0, "items": []}),
                ),
                "/api/v1/bento_repositories/iris/bentos/old" => StubResponse::json(
                    400,
                    serde_json::json!({"error": "record not found"}),
                ),
                "/api/v1/bento_repositories/forbidden/bentos" => {
                    StubResponse::json(403, serde_json::json!({"error": "no access"}))
                }
                _ => StubResponse::json(404, serde_json::json!({"error": "not found"})),
            }
        })
        .await;
        let mut cfg = ClientConfig::new(stub.url.clone(), "tok");
        cfg.requests_per_second = 0.0;
        let client = Client::new(cfg).expect("client");
        let version = |b: Option<Bento>| b.map(|b| b.version);
        assert_eq!(
            version(lookup(&client, "iris", Some("v1")).await.expect("ok")).as_deref(),
            Some("v1")
        );
        assert_eq!(
            version(lookup(&client, "iris", None).await.expect("ok")).as_deref(),
            Some("v2"),
            "latest is the listing's first item"
        );
        let latest_req = stub
            .requests()
            .into_iter()
            .find(|r| r.path == "/api/v1/bento_repositories/iris/bentos")
            .expect("latest asked");
        assert_eq!(latest_req.param("count").as_deref(), Some("1"));
        for (repo, v) in [
            ("iris", Some("v9")),
            ("iris", Some("old")),
            ("nope", None),
            ("nope", Some("v1")),
            ("empty", None),
        ] {
            assert!(
                lookup(&client, repo, v)
                    .await
                    .expect("not found is no error")
                    .is_none(),
                "{repo} {v:?}"
            );
        }
        let err = lookup(&client, "forbidden", None)
            .await
            .expect_err("403 is an error");
        assert!(!err.is_not_found(), "{err}");
    }
}
