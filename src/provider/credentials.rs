//! Where the endpoint and API key come from, in the order users expect:
//! provider attributes, then `BENTO_CLOUD_API_KEY` / `BENTO_CLOUD_API_ENDPOINT` (the bentoml
//! CLI's own variables), then the context saved by `bentoml cloud login`
//! (`$BENTOML_HOME/.yatai.yaml`, default `~/bentoml/.yatai.yaml`, context chosen by
//! `BENTOML_CLOUD_CONTEXT` or the file's `current_context_name`), then the public endpoint.
//!
//! Pure: the environment and the file system are passed in, so every rule is unit tested. This
//! module never talks HTTP.

use std::path::PathBuf;

use serde::Deserialize;

/// The BentoCloud endpoint the official client uses when none is given (defined with the
/// client).
pub use crate::client::DEFAULT_ENDPOINT;
pub const ENV_API_KEY: &str = "BENTO_CLOUD_API_KEY";
pub const ENV_ENDPOINT: &str = "BENTO_CLOUD_API_ENDPOINT";
pub const ENV_CONTEXT: &str = "BENTOML_CLOUD_CONTEXT";
pub const ENV_HOME: &str = "BENTOML_HOME";

/// Where a resolved value came from (for logs and error messages; never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Attribute,
    Env,
    Context,
    Default,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Attribute => "the provider block",
            Source::Env => "the environment",
            Source::Context => "the bentoml CLI context",
            Source::Default => "the default",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub endpoint: url::Url,
    pub endpoint_source: Source,
    pub api_key: String,
    pub api_key_source: Source,
}

/// A configuration error that names the attribute, the variable and the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    pub attribute: &'static str,
    pub summary: String,
    pub detail: String,
}

#[derive(Debug, Default, Deserialize)]
struct ContextFile {
    #[serde(default)]
    contexts: Vec<Context>,
    #[serde(default)]
    current_context_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct Context {
    #[serde(default)]
    name: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    api_token: String,
}

/// The bentoml context file for this environment.
pub fn context_file_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(home) = env(ENV_HOME).filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(home).join(".yatai.yaml"));
    }
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join("bentoml").join(".yatai.yaml"))
}

/// Endpoint and token of the selected context in `yaml`, if any.
fn context_from(yaml: &str, wanted: Option<&str>) -> Option<(String, String)> {
    let file: ContextFile = serde_yaml::from_str(yaml).ok()?;
    let name = wanted
        .map(str::to_string)
        .or(file.current_context_name)
        .unwrap_or_else(|| "default".to_string());
    file.contexts
        .into_iter()
        .find(|c| c.name == name)
        .map(|c| (c.endpoint, c.api_token))
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// Resolves endpoint and key. `read_file` reads the context file (absent → `None`).
pub fn resolve(
    attr_endpoint: Option<String>,
    attr_api_key: Option<String>,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&std::path::Path) -> Option<String>,
) -> Result<Resolved, CredentialError> {
    let attr_endpoint = non_empty(attr_endpoint);
    let env_endpoint = non_empty(env(ENV_ENDPOINT));
    let explicit_endpoint = attr_endpoint
        .clone()
        .map(|e| (e, Source::Attribute))
        .or_else(|| env_endpoint.map(|e| (e, Source::Env)));

    let key = non_empty(attr_api_key)
        .map(|k| (k, Source::Attribute))
        .or_else(|| non_empty(env(ENV_API_KEY)).map(|k| (k, Source::Env)));

    let (api_key, api_key_source, endpoint) = match key {
        Some((k, src)) => {
            let ep = explicit_endpoint.unwrap_or((DEFAULT_ENDPOINT.to_string(), Source::Default));
            (k, src, ep)
        }
        None => {
            let path = context_file_path(env);
            let wanted = non_empty(env(ENV_CONTEXT));
            let ctx = path
                .as_deref()
                .and_then(read_file)
                .and_then(|yaml| context_from(&yaml, wanted.as_deref()))
                .filter(|(_, token)| !token.is_empty());
            match ctx {
                Some((ctx_endpoint, token)) => {
                    let ep = explicit_endpoint.unwrap_or((ctx_endpoint, Source::Context));
                    (token, Source::Context, ep)
                }
                None => {
                    let where_ = path
                        .map(|p| {
                            format!(" (looked for a bentoml login context in {})", p.display())
                        })
                        .unwrap_or_default();
                    return Err(CredentialError {
                        attribute: "api_key",
                        summary: "Missing BentoCloud API key".into(),
                        detail: format!(
                            "Set `api_key` in the provider \"bentocloud\" block, or the {ENV_API_KEY} environment \
                             variable, or log in once with `bentoml cloud login --endpoint URL --api-token TOKEN`{where_}."
                        ),
                    });
                }
            }
        }
    };

    let (endpoint_text, endpoint_source) = endpoint;
    let endpoint = parse_endpoint(&endpoint_text).map_err(|why| CredentialError {
        attribute: "endpoint",
        summary: "Invalid BentoCloud endpoint".into(),
        detail: format!(
            "The endpoint {endpoint_text:?} from {endpoint_source} is not a usable URL: {why}. Set `endpoint` (or \
             {ENV_ENDPOINT}) to the full origin, e.g. \"https://my-org.cloud.bentoml.com\" or \"http://127.0.0.1:4780\"."
        ),
    })?;
    Ok(Resolved {
        endpoint,
        endpoint_source,
        api_key,
        api_key_source,
    })
}

/// An http(s) URL with a host; a trailing slash is fine.
pub fn parse_endpoint(text: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(text.trim()).map_err(|e| e.to_string())?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "the scheme is {:?}, not http or https",
            url.scheme()
        ));
    }
    if url.host_str().unwrap_or("").is_empty() {
        return Err("it has no host".into());
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const YAML: &str = "contexts:\n- name: default\n  endpoint: http://ctx.local:1\n  api_token: ctx-token\n  email: a@b\n- name: other\n  endpoint: http://other.local:2\n  api_token: other-token\ncurrent_context_name: default\n";

    fn files(path_yaml: Option<&'static str>) -> impl Fn(&std::path::Path) -> Option<String> {
        move |p| {
            assert!(p.ends_with(".yatai.yaml"));
            path_yaml.map(str::to_string)
        }
    }

    #[test]
    fn attributes_win_over_env_and_context() {
        let env = env_of(&[
            (ENV_API_KEY, "env-key"),
            (ENV_ENDPOINT, "http://env:1"),
            ("HOME", "/h"),
        ]);
        let r = resolve(
            Some("http://attr:1".into()),
            Some("attr-key".into()),
            &env,
            &files(Some(YAML)),
        )
        .expect("ok");
        assert_eq!(r.api_key, "attr-key");
        assert_eq!(r.endpoint.as_str(), "http://attr:1/");
        assert_eq!(
            (r.api_key_source, r.endpoint_source),
            (Source::Attribute, Source::Attribute)
        );
    }

    #[test]
    fn env_wins_over_context_and_defaults_to_public_endpoint() {
        let env = env_of(&[(ENV_API_KEY, "env-key"), ("HOME", "/h")]);
        let r = resolve(None, None, &env, &files(Some(YAML))).expect("ok");
        assert_eq!(r.api_key, "env-key");
        assert_eq!(r.endpoint.as_str(), "https://cloud.bentoml.com/");
    }

    #[test]
    fn bentoml_login_context_needs_no_provider_configuration() {
        let env = env_of(&[(ENV_HOME, "/bh")]);
        let r = resolve(None, None, &env, &files(Some(YAML))).expect("ok");
        assert_eq!(r.api_key, "ctx-token");
        assert_eq!(r.endpoint.as_str(), "http://ctx.local:1/");
        assert_eq!(r.api_key_source, Source::Context);
        let env = env_of(&[(ENV_HOME, "/bh"), (ENV_CONTEXT, "other")]);
        let r = resolve(None, None, &env, &files(Some(YAML))).expect("ok");
        assert_eq!(r.api_key, "other-token");
    }

    #[test]
    fn missing_key_names_attribute_variable_and_login() {
        let env = env_of(&[("HOME", "/h")]);
        let e = resolve(None, None, &env, &files(None)).expect_err("no key");
        assert_eq!(e.attribute, "api_key");
        assert!(e.detail.contains("BENTO_CLOUD_API_KEY"), "{}", e.detail);
        assert!(e.detail.contains("bentoml cloud login"), "{}", e.detail);
        assert!(e.detail.contains("/h/bentoml/.yatai.yaml"), "{}", e.detail);
    }

    #[test]
    fn endpoint_that_is_not_a_url_is_rejected_with_the_fix() {
        let env = env_of(&[]);
        for bad in ["localhost:4780", "ftp://x", "not a url"] {
            let e = resolve(Some(bad.into()), Some("k".into()), &env, &files(None)).expect_err(bad);
            assert_eq!(e.attribute, "endpoint");
            assert!(e.detail.contains("https://"), "{}", e.detail);
        }
    }
}
