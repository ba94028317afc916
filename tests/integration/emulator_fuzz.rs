//! Property-based fuzzing of `bentocloud-local`'s HTTP surface: generated
//! requests (any method; every route of the table with random segments; random query strings;
//! valid, wrong-typed, random, malformed and oversized JSON bodies; missing, wrong and other
//! organisations' tokens) against one in-process server. For every request:
//!
//! - the status is never 5xx (except 502/503/504 from a deployment's own `/endpoints/...` URL,
//!   which proxies to replicas that may be starting: that is the real platform's answer too);
//! - a 4xx body is a JSON object with an `error` (or `message`) string;
//! - the server still answers `/healthz` afterwards (no panic took it down).
//!
//! Bounded: 300 cases, a 10 s timeout per request, no shrinking beyond 64 steps.

use std::sync::OnceLock;
use std::time::Duration;

use bentocloud_local::{self as emulator, Config, PlatformConfig};
use proptest::prelude::*;
use serde_json::{json, Value};

struct Fixture {
    rt: tokio::runtime::Runtime,
    /// Keep-alive client: a request answered without its body being read must not break the
    /// next request on the same connection.
    http: reqwest::Client,
    /// One connection per request, for deployment URLs (`/endpoints/...`): they stream bodies
    /// to replicas, and a 404/503 from there drops an unread body with the connection (known,
    /// reported; the API routes read every body).
    http_once: reqwest::Client,
    endpoint: String,
    token: String,
    other_token: String,
    org: String,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tmp");
        let data_dir = dir.path().to_path_buf();
        let mut platform = PlatformConfig::default();
        platform.timing.progress_deadline_ms = 1_500;
        platform.timing.drain_ms = 100;
        let cfg = Config {
            data_dir: data_dir.clone(),
            api_token: Some("fuzz-main-token".into()),
            auto_register_bentos: false,
            platform,
            tls: None,
            clock: bentocloud_local::Clock::Real,
        };
        let (started, serving) = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            emulator::serve(listener, &cfg, std::future::pending::<()>())
                .expect("start bentocloud-local")
        });
        rt.spawn(async move {
            // Runs until the process exits.
            let r = serving.await;
            panic!("bentocloud-local stopped: {r:?}");
        });
        let endpoint = started.endpoint;
        let other_token = emulator::add_org_token(&data_dir, "other").expect("org token");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let http_once = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        let f = Fixture {
            rt,
            http,
            http_once,
            endpoint,
            token: "fuzz-main-token".into(),
            other_token,
            org: String::new(),
            _dir: dir,
        };
        // Objects for the paths to hit: a deployment, a secret, a multi-service bento.
        let (st, org) = f.send("GET", "/api/v1/current_org", Some("fuzz-main-token"), None);
        assert_eq!(st, 200, "{org}");
        let org: Value = serde_json::from_str(&org).expect("org json");
        let org = org["name"].as_str().unwrap_or("").to_string();
        for (path, body) in [
            (
                "/api/local/v1/bentos",
                json!({"tag": "multi:v1", "services": ["Gateway", "Model"]}),
            ),
            (
                "/api/v1/org_secrets",
                json!({"name": "exists", "content": {"type": "env", "items": [{"key": "K", "value": "v"}]}}),
            ),
            ("/api/v2/deployments?cluster=local-east", create_body()),
        ] {
            let (st, text) = f.send(
                "POST",
                path,
                Some("fuzz-main-token"),
                Some(serde_json::to_vec(&body).expect("json")),
            );
            assert_eq!(st, 200, "setup POST {path}: {text}");
        }
        Fixture { org, ..f }
    })
}

impl Fixture {
    fn send(
        &self,
        method: &str,
        path_and_query: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (u16, String) {
        let url = format!("{}{}", self.endpoint, path_and_query);
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        self.rt.block_on(async {
            let client = if path_and_query.starts_with("/endpoints/") {
                &self.http_once
            } else {
                &self.http
            };
            let mut req = client.request(m, &url);
            if let Some(t) = token {
                req = req.header("X-YATAI-API-TOKEN", t);
            }
            if let Some(b) = body {
                req = req.header("content-type", "application/json").body(b);
            }
            match req.send().await {
                Ok(resp) => {
                    let st = resp.status().as_u16();
                    (st, resp.text().await.unwrap_or_default())
                }
                Err(e) => (0, format!("no answer: {e:?}")),
            }
        })
    }
}

fn create_body() -> Value {
    json!({
        "name": "exists",
        "bento": "multi:v1",
        "access_authorization": false,
        "envs": [{"name": "A", "value": "1"}],
        "labels": [{"key": "team", "value": "ml"}],
        "secrets": ["exists"],
        "services": {
            "Gateway": {
                "instance_type": "cpu.1",
                "scaling": {"min_replicas": 1, "max_replicas": 2},
                "deployment_strategy": "RollingUpdate",
                "envs": [{"name": "B", "value": "2"}],
                "config_overrides": {}
            },
            "Model": {"config_overrides": {}}
        },
        "canary": {
            "route_type": "header",
            "route_by": "X-Canary",
            "versions": {
                "v2": {
                    "bento": "multi:v1",
                    "weight": 10,
                    "envs": [{"name": "C", "value": "1"}],
                    "secrets": null,
                    "services": {"Model": {"instance_type": "cpu.2", "config_overrides": {}}}
                }
            }
        }
    })
}

/// Every field of the create/update body (and of the other bodies), as JSON pointers.
const FIELDS: &[&str] = &[
    "",
    "/name",
    "/bento",
    "/access_authorization",
    "/envs",
    "/envs/0",
    "/envs/0/name",
    "/envs/0/value",
    "/labels",
    "/labels/0",
    "/labels/0/key",
    "/labels/0/value",
    "/secrets",
    "/secrets/0",
    "/services",
    "/services/Gateway",
    "/services/Gateway/instance_type",
    "/services/Gateway/scaling",
    "/services/Gateway/scaling/min_replicas",
    "/services/Gateway/scaling/max_replicas",
    "/services/Gateway/deployment_strategy",
    "/services/Gateway/envs",
    "/services/Gateway/envs/0/name",
    "/services/Gateway/config_overrides",
    "/services/Model",
    "/dev",
    "/canary",
    "/canary/route_type",
    "/canary/route_by",
    "/canary/versions",
    "/canary/versions/v2",
    "/canary/versions/v2/bento",
    "/canary/versions/v2/weight",
    "/canary/versions/v2/envs",
    "/canary/versions/v2/services",
    "/canary/versions/v2/services/Model/scaling",
    "/content",
    "/content/type",
    "/content/items",
    "/content/items/0/key",
    "/content/items/0/value",
    "/description",
    "/tag",
    "/services/0",
    "/startup_seconds",
    "/unready",
];

fn wrong_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(json!(true)),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1.5)),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        Just(json!("")),
        Just(json!("a b/c:d")),
        Just(json!("x".repeat(5000))),
        Just(json!([])),
        Just(json!([1, "a", null])),
        Just(json!({})),
        Just(json!({"a": {"b": [1]}})),
        "\\PC{0,40}".prop_map(Value::String),
    ]
}

fn random_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::String),
    ];
    let keys = prop_oneof![
        Just("name".to_string()),
        Just("bento".to_string()),
        Just("services".to_string()),
        Just("content".to_string()),
        Just("tag".to_string()),
        Just("envs".to_string()),
        Just("labels".to_string()),
        "[a-z_]{1,8}",
    ];
    leaf.prop_recursive(4, 32, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Valid,
    WrongType(usize, Value),
    Drop(usize),
    Random(Value),
    Truncated(usize),
    Bytes(Vec<u8>),
    Deep(usize),
    Huge,
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        3 => Just(Body::None),
        2 => Just(Body::Valid),
        6 => (0..FIELDS.len(), wrong_value()).prop_map(|(i, v)| Body::WrongType(i, v)),
        2 => (0..FIELDS.len()).prop_map(Body::Drop),
        3 => random_json().prop_map(Body::Random),
        2 => (0usize..400).prop_map(Body::Truncated),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Body::Bytes),
        1 => (1usize..200_000).prop_map(Body::Deep),
        1 => Just(Body::Huge),
    ]
}

fn render_body(b: &Body) -> Option<Vec<u8>> {
    let valid = || {
        let mut v = create_body();
        // Some of the other routes' fields, so their wrong types are exercised too.
        v["content"] = json!({"type": "env", "items": [{"key": "K", "value": "v"}]});
        v["tag"] = json!("fuzz:v1");
        v
    };
    Some(match b {
        Body::None => return None,
        Body::Valid => serde_json::to_vec(&valid()).ok()?,
        Body::WrongType(i, bad) => {
            let mut v = valid();
            if FIELDS[*i].is_empty() {
                v = bad.clone();
            } else if let Some(slot) = v.pointer_mut(FIELDS[*i]) {
                *slot = bad.clone();
            }
            serde_json::to_vec(&v).ok()?
        }
        Body::Drop(i) => {
            let mut v = valid();
            let p = FIELDS[*i];
            if let Some((parent, key)) = p.rsplit_once('/') {
                if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                    m.remove(key);
                }
            }
            serde_json::to_vec(&v).ok()?
        }
        Body::Random(v) => serde_json::to_vec(v).ok()?,
        Body::Truncated(n) => {
            let full = serde_json::to_vec(&valid()).ok()?;
            full[..(*n).min(full.len())].to_vec()
        }
        Body::Bytes(b) => b.clone(),
        Body::Deep(n) => "[".repeat(*n).into_bytes(),
        Body::Huge => format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 + 100)).into_bytes(),
    })
}

/// The route table, `{}` marking a segment to generate.
const ROUTES: &[&str] = &[
    "/api/v2/deployments",
    "/api/v2/deployments/{}",
    "/api/v2/deployments/{}/void_update",
    "/api/v2/deployments/{}/terminate",
    "/api/v1/auth/current",
    "/api/v1/current_org",
    "/api/v1/clusters",
    "/api/v1/clusters/{}",
    "/api/v1/instance_types",
    "/api/v1/bento_repositories/{}",
    "/api/v1/bento_repositories/{}/bentos",
    "/api/v1/bento_repositories/{}/bentos/{}",
    "/api/v1/org_secrets",
    "/api/v1/org_secrets/{}",
    "/api/local/v1/bentos",
    "/api/local/v1/faults",
    "/ws/v2/deployments/{}/pods",
    "/ws/v1/clusters/{}/pods",
    "/endpoints/{}/{}/{}",
    "/endpoints/{}/{}/{}/{}",
    "/healthz",
    "/",
    "/api/{}",
    "/api/v2/{}/{}",
    "/{}",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("exists".to_string()),
        Just("ghost".to_string()),
        Just("multi".to_string()),
        Just("v1".to_string()),
        Just("local-east".to_string()),
        Just("ORG".to_string()),
        Just("..".to_string()),
        Just("%00".to_string()),
        Just("%2F".to_string()),
        Just("%ZZ".to_string()),
        Just("x".repeat(3000)),
        "[a-zA-Z0-9._-]{0,20}",
        "\\PC{1,12}".prop_map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect()),
    ]
}

fn query() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("cluster"),
        Just("start"),
        Just("count"),
        Just("all"),
        Just("q"),
        Just("search"),
        Just("labels"),
        Just("ghost"),
    ];
    let value = prop_oneof![
        Just("local-east".to_string()),
        Just("mars".to_string()),
        Just("".to_string()),
        Just("-1".to_string()),
        Just("99999999999999999999999".to_string()),
        Just("true".to_string()),
        Just("label:team=ml creator:me status:running".to_string()),
        "\\PC{0,16}",
    ];
    prop::collection::vec((key, value), 0..5).prop_map(|pairs| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            s.append_pair(k, &v);
        }
        s.finish()
    })
}

#[derive(Debug, Clone, Copy)]
enum Token {
    Main,
    Other,
    Missing,
    Wrong,
}

fn method() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => Just("GET"),
        3 => Just("POST"),
        3 => Just("PUT"),
        2 => Just("PATCH"),
        2 => Just("DELETE"),
        1 => Just("HEAD"),
        1 => Just("OPTIONS"),
        1 => Just("PROPFIND"),
    ]
}

fn token() -> impl Strategy<Value = Token> {
    prop_oneof![
        6 => Just(Token::Main),
        2 => Just(Token::Other),
        1 => Just(Token::Missing),
        1 => Just(Token::Wrong),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 300,
        max_shrink_iters: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_requests_never_get_5xx_and_4xx_is_json(
        method in method(),
        route in 0..ROUTES.len(),
        segs in prop::collection::vec(segment(), 4),
        query in query(),
        body in body(),
        token in token(),
    ) {
        let f = fixture();
        let mut segs = segs.into_iter();
        let mut path = String::new();
        for (i, part) in ROUTES[route].split("{}").enumerate() {
            if i > 0 {
                let s = segs.next().unwrap_or_default();
                path.push_str(&if s == "ORG" { f.org.clone() } else { s });
            }
            path.push_str(part);
        }
        if !query.is_empty() {
            path.push('?');
            path.push_str(&query);
        }
        let tok = match token {
            Token::Main => Some(f.token.as_str()),
            Token::Other => Some(f.other_token.as_str()),
            Token::Missing => None,
            Token::Wrong => Some("wrong-token"),
        };
        let bytes = render_body(&body);
        let (st, text) = f.send(method, &path, tok, bytes);
        let ctx = format!("{method} {path} (token {token:?}, body {body:?}) -> {st}: {}",
            &text[..text.len().min(500)]);
        prop_assert!(st != 0, "the server did not answer: {ctx}");
        let proxied = path.starts_with("/endpoints/") && matches!(st, 502..=504);
        prop_assert!(st < 500 || proxied, "5xx: {ctx}");
        if (400..500).contains(&st) && method != "HEAD" {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let msg = v.get("error").or_else(|| v.get("message")).and_then(Value::as_str);
            prop_assert!(msg.is_some_and(|m| !m.is_empty()), "4xx without a JSON error: {ctx}");
        }
        let (hst, htext) = f.send("GET", "/healthz", None, None);
        prop_assert_eq!(hst, 200, "the server is down after {}: {}", ctx, htext);
    }
}
