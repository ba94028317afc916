//! The `bentocloud_secret` resource's shape and pure rules: its state, schema, plan-time
//! validation, planned values (the content `version`) and the translation to and from the API's
//! secret documents. The side effects live in `super` (the resource); see its module docs for
//! what the API does not give back and how that shapes the resource.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tf_provider::schema::{Attribute, AttributeConstraint, AttributeType, Schema};
use tf_provider::value::Value;
use tf_provider::AttributePath;

use crate::api;
use crate::diag::Problem;
use crate::schema::{attr as a, flat_schema, to_map, StringMap};

/// Secret types the API takes (`content.type`).
pub const TYPES: [&str; 2] = ["env", "mountfile"];

/// State of one `bentocloud_secret`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SecretState {
    pub id: Value<String>,
    pub name: Value<String>,
    pub cluster: Value<String>,
    pub description: Value<String>,
    #[serde(rename = "type")]
    pub kind: Value<String>,
    pub path: Value<String>,
    pub items: Value<StringMap>,
    pub version: Value<i64>,
    pub created_at: Value<String>,
    pub creator: Value<String>,
}

impl SecretState {
    /// What `PATCH` replaces as a whole, and what `version` counts changes of.
    pub fn content_differs(&self, other: &SecretState) -> bool {
        (&self.kind, &self.path, &self.items) != (&other.kind, &other.path, &other.items)
    }

    /// The `?cluster=` of the secret's endpoints (empty: none).
    pub fn cluster_param(&self) -> String {
        self.cluster.as_ref_option().cloned().unwrap_or_default()
    }

    pub fn name_str(&self) -> String {
        self.name.as_ref_option().cloned().unwrap_or_default()
    }
}

/// The resource schema.
pub fn schema() -> Schema {
    use AttributeConstraint::{Computed, Optional, OptionalComputed, Required};
    use AttributeType::{Number, String as Str};
    let items = Attribute {
        sensitive: true,
        ..a(
            AttributeType::Map(Box::new(Str)),
            Required,
            "The secret's items, `KEY = value` (at least one). An `env` secret becomes one environment variable per key; a `mountfile` secret one file per key under `path`. Sensitive: masked in plan output, never logged, but stored in Terraform state (tf-provider speaks protocol 6.5, which has no write-only attributes), so keep the state secret. BentoCloud does not return values: a value changed outside Terraform is not detected (keys are). Changing them updates the secret in place (`PATCH` of the whole content) and increases `version`; running deployments see new values only after a redeploy (see `bentocloud_deployment.redeploy_triggers`).",
        )
    };
    let attributes = to_map(vec![
        ("id", a(Str, Computed, "The secret's name; also the import ID.")),
        ("name", a(Str, Required, "Secret name: lowercase letters, digits and `-`, at most 63 characters, unique in the organisation. Changing it replaces the secret. Deployments refer to it by this name (`bentocloud_deployment.secrets`).")),
        ("cluster", a(Str, Optional, "Cluster the secret belongs to, where the API takes one (sent as `?cluster=`). Default: none (an organisation secret; BentoCloud shows it with the default cluster). Changing it replaces the secret.")),
        ("description", a(Str, Optional, "Free text shown in BentoCloud. Default: none.")),
        ("type", a(Str, OptionalComputed, "`env` (default: each item is an environment variable of the deployments that use the secret) or `mountfile` (each item is a file under `path`).")),
        ("path", a(Str, Optional, "Directory the items are mounted in, for `type = \"mountfile\"` (required then, an absolute path such as `/etc/creds`); not allowed for `env`.")),
        ("items", items),
        ("version", a(Number, Computed, "Content version kept by the provider: `1` when created, one more with every apply that changes `type`, `path` or `items` (not `description`). Known at plan time; use it in `bentocloud_deployment.redeploy_triggers` so a rotation reaches running replicas.")),
        ("created_at", a(Str, Computed, "Creation time (RFC 3339).")),
        ("creator", a(Str, Computed, "Name of the user who created the secret.")),
    ]);
    flat_schema(attributes, "A BentoCloud secret (organisation secret): environment variables or files that deployments mount by name (`bentocloud_deployment.secrets`). Values are sensitive and never appear in plans or logs. A changed value reaches running deployments only when they are redeployed: use `version` in `redeploy_triggers`.")
}

// ------------------------------------------------------------------------------- plan rules

fn problem(attr: &'static str, summary: &str, detail: String) -> Problem {
    Problem::at(attr, summary, detail)
}

/// Checks a configuration (unknown values are not judged).
pub fn validate(config: &SecretState) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Value::Value(n) = &config.name {
        if let Err(why) = crate::rules::secret_name(n) {
            out.push(problem(
                "name",
                "Invalid secret name",
                format!("`name` = {n:?}: {why}"),
            ));
        }
    }
    if let Value::Value(c) = &config.cluster {
        if c.trim().is_empty() {
            out.push(problem(
                "cluster",
                "Empty cluster",
                "`cluster` is empty: leave it out for an organisation secret, or name a cluster."
                    .into(),
            ));
        }
    }
    let kind = config.kind.as_ref_option().map(String::as_str);
    if let Some(k) = kind {
        if !TYPES.contains(&k) {
            out.push(problem(
                "type",
                "Invalid secret type",
                format!("`type` = {k:?} is not a secret type: use \"env\" or \"mountfile\"."),
            ));
        }
    }
    let mountfile = kind == Some("mountfile");
    match (&config.path, mountfile) {
        // Blamed on `type`: an absent `path` has no line in the configuration to point at.
        (Value::Null, true) => out.push(problem("type", "Missing mount path", "`type = \"mountfile\"` needs `path`: the directory the items are mounted in, e.g. \"/etc/creds\".".into())),
        (Value::Value(p), true) if !p.starts_with('/') => out.push(problem("path", "Invalid mount path", format!("`path` = {p:?} must be an absolute directory, e.g. \"/etc/creds\"."))),
        (Value::Value(_), false) if !config.kind.is_unknown() => out.push(problem("path", "Path on an env secret", "`path` is only for `type = \"mountfile\"`: remove it, or set `type = \"mountfile\"`.".into())),
        _ => {}
    }
    if let Value::Value(items) = &config.items {
        if items.is_empty() {
            out.push(problem(
                "items",
                "Secret without items",
                "`items` is empty: give at least one `KEY = value`.".into(),
            ));
        }
        for key in items.keys() {
            let why = if mountfile {
                file_name(key).err()
            } else if !config.kind.is_unknown() {
                crate::rules::env_name(key).err()
            } else {
                None
            };
            if let Some(why) = why {
                // Only the key is named: values are sensitive.
                out.push(problem(
                    "items",
                    "Invalid secret item key",
                    format!("`items` key {key:?}: {why}"),
                ));
            }
        }
    }
    out
}

/// A `mountfile` item key becomes a file name.
fn file_name(key: &str) -> Result<(), String> {
    if key.is_empty() || key == "." || key == ".." || key.contains('/') || key.contains('\0') {
        Err("a mountfile key is a file name: not empty, no `/`, not `.` or `..`".into())
    } else {
        Ok(())
    }
}

/// The planned state of a new secret: `version` 1, `id` the name, `type` `env` by default.
pub fn plan_create(proposed: &SecretState) -> SecretState {
    let mut p = proposed.clone();
    if p.kind.is_null() {
        p.kind = Value::Value("env".into());
    }
    p.id = p.name.clone();
    p.version = Value::Value(1);
    p.created_at = Value::Unknown;
    p.creator = Value::Unknown;
    p
}

/// The planned state of a change, and the attributes that force replacement.
pub fn plan_update(
    prior: &SecretState,
    proposed: &SecretState,
) -> (SecretState, Vec<AttributePath>) {
    let mut p = proposed.clone();
    if p.kind.is_null() {
        p.kind = prior.kind.clone();
    }
    let mut replace = Vec::new();
    if prior.name != p.name {
        replace.push(AttributePath::new("name"));
    }
    if prior.cluster != p.cluster {
        replace.push(AttributePath::new("cluster"));
    }
    if !replace.is_empty() {
        return (plan_create(&p), replace);
    }
    p.id = prior.id.clone();
    p.created_at = prior.created_at.clone();
    p.creator = prior.creator.clone();
    p.version = if prior.content_differs(&p) {
        match &prior.version {
            Value::Value(v) => Value::Value(v + 1),
            _ => Value::Unknown,
        }
    } else {
        prior.version
    };
    (p, replace)
}

// ------------------------------------------------------------------------------- conversion

/// The content a create or `PATCH` sends: every item with its value (keys sorted).
pub fn content_of(s: &SecretState) -> api::SecretContent {
    let items = s
        .items
        .as_ref_option()
        .into_iter()
        .flatten()
        .map(|(k, v)| api::SecretItem {
            key: k.clone(),
            sub_path: None,
            value: Some(v.as_ref_option().cloned().unwrap_or_default()),
        })
        .collect();
    api::SecretContent {
        kind: s
            .kind
            .as_ref_option()
            .cloned()
            .unwrap_or_else(|| "env".into()),
        items,
        path: s.path.as_ref_option().cloned(),
        stage: None,
    }
}

/// State after reading `server`, given what state held (`prior`): values, the cluster and the
/// version come from `prior` (the API has none of them); keys, type, path and description
/// from the server.
pub fn state_from_server(server: &api::Secret, prior: &SecretState) -> SecretState {
    let known = prior.items.as_ref_option().cloned().unwrap_or_default();
    let items: StringMap = server
        .content
        .items
        .iter()
        .map(|i| {
            // A key Terraform did not write has no value Terraform knows.
            let v = known
                .get(&i.key)
                .cloned()
                .unwrap_or(Value::Value(String::new()));
            (i.key.clone(), v)
        })
        .collect::<BTreeMap<_, _>>();
    let text = |s: &str, was: &Value<String>| {
        if s.is_empty() && was.is_null() {
            Value::Null
        } else {
            Value::Value(s.to_string())
        }
    };
    let path = server.content.path.clone().unwrap_or_default();
    SecretState {
        id: Value::Value(server.meta.name.clone()),
        name: Value::Value(server.meta.name.clone()),
        cluster: prior.cluster.clone(),
        description: text(&server.description, &prior.description),
        kind: Value::Value(if server.content.kind.is_empty() {
            "env".to_string()
        } else {
            server.content.kind.clone()
        }),
        path: text(&path, &prior.path),
        items: Value::Value(items),
        version: match &prior.version {
            Value::Value(v) => Value::Value(*v),
            _ => Value::Value(1),
        },
        created_at: Value::Value(server.meta.created_at.clone()),
        creator: Value::Value(server.creator.meta.name.clone()),
    }
}

/// The description a `PATCH` sends: the configured one, or empty to clear it (the API keeps
/// the stored description when the field is null, so leaving it out would not remove it).
pub fn description_of(s: &SecretState) -> Option<String> {
    Some(s.description.as_ref_option().cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value<String> {
        Value::Value(s.to_string())
    }

    fn items(kv: &[(&str, &str)]) -> Value<StringMap> {
        Value::Value(kv.iter().map(|(k, x)| (k.to_string(), v(x))).collect())
    }

    fn config() -> SecretState {
        SecretState {
            name: v("db"),
            items: items(&[("PASSWORD", "p1")]),
            ..Default::default()
        }
    }

    fn created() -> SecretState {
        let mut s = plan_create(&config());
        s.created_at = v("2026-01-01T00:00:00Z");
        s.creator = v("admin");
        s
    }

    #[test]
    fn every_state_field_is_in_the_schema() {
        let state = serde_json::to_value(SecretState::default()).expect("ser");
        let fields: Vec<String> = state.as_object().expect("obj").keys().cloned().collect();
        let mut in_schema: Vec<String> = schema().block.attributes.keys().cloned().collect();
        let mut fields = fields;
        fields.sort();
        in_schema.sort();
        assert_eq!(fields, in_schema);
        assert!(schema().block.attributes["items"].sensitive);
        assert!(!schema().block.attributes["version"].sensitive);
    }

    #[test]
    fn create_plans_version_one_env_type_and_the_name_as_id() {
        let p = plan_create(&config());
        assert_eq!(p.version, Value::Value(1));
        assert_eq!(p.kind, v("env"));
        assert_eq!(p.id, v("db"));
        assert!(p.created_at.is_unknown() && p.creator.is_unknown());
        let mut m = config();
        m.kind = v("mountfile");
        assert_eq!(plan_create(&m).kind, v("mountfile"));
    }

    #[test]
    fn version_counts_content_changes_only() {
        let prior = created();
        let same = plan_update(&prior, &config()).0;
        assert_eq!(same.version, Value::Value(1));
        assert_eq!(same.created_at, prior.created_at);
        let mut desc = config();
        desc.description = v("new text");
        assert_eq!(plan_update(&prior, &desc).0.version, Value::Value(1));
        for change in [
            SecretState {
                items: items(&[("PASSWORD", "p2")]),
                ..config()
            },
            SecretState {
                items: items(&[("PASSWORD", "p1"), ("USER", "u")]),
                ..config()
            },
            SecretState {
                kind: v("mountfile"),
                path: v("/etc/x"),
                ..config()
            },
        ] {
            let (p, replace) = plan_update(&prior, &change);
            assert!(replace.is_empty());
            assert_eq!(p.version, Value::Value(2), "{change:?}");
        }
        let mut two = prior.clone();
        two.version = Value::Value(2);
        let p = plan_update(
            &two,
            &SecretState {
                items: items(&[("PASSWORD", "p3")]),
                ..config()
            },
        )
        .0;
        assert_eq!(p.version, Value::Value(3));
        let mut unknown = config();
        unknown.items = Value::Value(BTreeMap::from([("PASSWORD".to_string(), Value::Unknown)]));
        assert_eq!(plan_update(&prior, &unknown).0.version, Value::Value(2));
    }

    #[test]
    fn name_or_cluster_changes_replace_with_a_fresh_version() {
        let prior = SecretState {
            version: Value::Value(4),
            ..created()
        };
        let (p, replace) = plan_update(
            &prior,
            &SecretState {
                name: v("db2"),
                ..config()
            },
        );
        assert_eq!(replace, vec![AttributePath::new("name")]);
        assert_eq!(p.version, Value::Value(1));
        assert_eq!(p.id, v("db2"));
        let (_, replace) = plan_update(
            &prior,
            &SecretState {
                cluster: v("west"),
                ..config()
            },
        );
        assert_eq!(replace, vec![AttributePath::new("cluster")]);
    }

    #[test]
    fn content_carries_every_value_and_the_path() {
        let s = SecretState {
            kind: v("mountfile"),
            path: v("/etc/creds"),
            items: items(&[("b", "2"), ("a", "1")]),
            ..config()
        };
        let c = content_of(&s);
        assert_eq!(c.kind, "mountfile");
        assert_eq!(c.path.as_deref(), Some("/etc/creds"));
        let kv: Vec<(String, Option<String>)> = c
            .items
            .iter()
            .map(|i| (i.key.clone(), i.value.clone()))
            .collect();
        assert_eq!(
            kv,
            vec![
                ("a".into(), Some("1".into())),
                ("b".into(), Some("2".into()))
            ]
        );
        assert_eq!(content_of(&config()).kind, "env");
        assert_eq!(content_of(&config()).path, None);
    }

    fn server(keys: &[&str], desc: &str) -> api::Secret {
        let mut s = api::Secret::default();
        s.meta.name = "db".into();
        s.meta.created_at = "2026-01-01T00:00:00Z".into();
        s.creator.meta.name = "admin".into();
        s.description = desc.into();
        s.content.kind = "env".into();
        s.content.items = keys
            .iter()
            .map(|k| api::SecretItem {
                key: k.to_string(),
                sub_path: None,
                value: None,
            })
            .collect();
        s
    }

    #[test]
    fn read_keeps_values_and_version_and_shows_key_drift() {
        let prior = SecretState {
            version: Value::Value(3),
            ..created()
        };
        let same = state_from_server(&server(&["PASSWORD"], ""), &prior);
        assert_eq!(same, prior, "nothing changed, nothing drifts");
        let added = state_from_server(&server(&["PASSWORD", "EXTRA"], ""), &prior);
        assert_eq!(added.items, items(&[("EXTRA", ""), ("PASSWORD", "p1")]));
        let removed = state_from_server(&server(&[], ""), &prior);
        assert_eq!(removed.items, Value::Value(StringMap::new()));
        assert_eq!(removed.version, Value::Value(3));
        let desc = state_from_server(&server(&["PASSWORD"], "edited"), &prior);
        assert_eq!(desc.description, v("edited"));
        let mut m = server(&["PASSWORD"], "");
        m.content.kind = "mountfile".into();
        m.content.path = Some("/x".into());
        let moved = state_from_server(&m, &prior);
        assert_eq!((moved.kind, moved.path), (v("mountfile"), v("/x")));
        let imported = state_from_server(&server(&["K"], ""), &SecretState::default());
        assert_eq!(imported.version, Value::Value(1));
        assert_eq!(imported.items, items(&[("K", "")]));
    }

    #[test]
    fn request_parts_come_from_state() {
        let s = SecretState {
            cluster: v("west"),
            description: v("d"),
            ..config()
        };
        assert_eq!(s.cluster_param(), "west");
        assert_eq!(config().cluster_param(), "", "no cluster: no parameter");
        assert_eq!(s.name_str(), "db");
        assert_eq!(description_of(&s), Some("d".to_string()));
        assert_eq!(
            description_of(&config()),
            Some(String::new()),
            "a removed description is cleared, not kept"
        );
    }

    #[test]
    fn mountfile_keys_are_file_names() {
        for bad in ["", ".", "..", "a/b", "/x", "a\0b"] {
            assert!(file_name(bad).is_err(), "{bad:?}");
        }
        for good in ["ca.pem", "..hidden", "a.b.c", "KEY"] {
            assert!(file_name(good).is_ok(), "{good:?}");
        }
    }

    /// [`config`] changed by `change`.
    fn config_with(change: impl FnOnce(&mut SecretState)) -> SecretState {
        let mut s = config();
        change(&mut s);
        s
    }

    /// Makes `s` a `mountfile` secret mounted at `path`.
    fn mountfile_at(path: &str, s: &mut SecretState) {
        s.kind = v("mountfile");
        s.path = v(path);
    }

    /// Configurations with one problem each, and the attribute it names.
    fn one_problem_each() -> Vec<(SecretState, &'static str)> {
        vec![
            (config_with(|s| s.name = v("Bad_Name")), "name"),
            (config_with(|s| s.cluster = v(" ")), "cluster"),
            (config_with(|s| s.kind = v("file")), "type"),
            (config_with(|s| s.kind = v("mountfile")), "type"),
            (config_with(|s| mountfile_at("etc", s)), "path"),
            (
                config_with(|s| {
                    s.kind = v("env");
                    s.path = v("/etc");
                }),
                "path",
            ),
            (config_with(|s| s.items = items(&[])), "items"),
            (
                config_with(|s| {
                    s.kind = v("env");
                    s.items = items(&[("1BAD", "x")]);
                }),
                "items",
            ),
            (
                config_with(|s| {
                    mountfile_at("/e", s);
                    s.items = items(&[("a/b", "x")]);
                }),
                "items",
            ),
        ]
    }

    /// Configurations without a problem, as far as plan can tell.
    fn no_problem() -> Vec<SecretState> {
        vec![
            config(),
            config_with(|s| {
                mountfile_at("/etc/c", s);
                s.items = items(&[("cert.pem", "x")]);
            }),
            // A path with an unknown type may be right: judged once the type is known.
            config_with(|s| {
                s.kind = Value::Unknown;
                s.path = v("/etc");
            }),
            // Unknown values are judged at apply, not plan.
            config_with(|s| {
                s.kind = Value::Unknown;
                s.path = Value::Unknown;
            }),
        ]
    }

    #[test]
    fn validation_names_the_attribute() {
        for s in no_problem() {
            assert!(validate(&s).is_empty(), "{s:?}");
        }
        for (s, attr) in one_problem_each() {
            let paths: Vec<AttributePath> = validate(&s).into_iter().map(|p| p.path).collect();
            assert_eq!(paths, vec![AttributePath::new(attr)], "{s:?}");
        }
        let p = validate(&SecretState {
            kind: v("env"),
            items: items(&[("1BAD", "hunter2")]),
            ..config()
        });
        assert!(
            !p[0].detail.contains("hunter2"),
            "values are never shown: {p:?}"
        );
    }
}
