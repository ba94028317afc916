//! Tests of the client against scripted stub servers (`client::stub`): wire rules, error
//! classification, retries, unknown-outcome creates, pagination and the request limit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::deployments::bento_matches;

use super::stub::{serve, Stub, StubRequest, StubResponse};
use super::*;

const TOKEN: &str = "tok-s3cr3t-abcdef";

fn config(stub: &Stub) -> ClientConfig {
    let mut cfg = ClientConfig::new(stub.url.clone(), TOKEN);
    cfg.max_retry_delay = Duration::from_millis(20);
    cfg.request_timeout = Duration::from_secs(5);
    cfg.requests_per_second = 0.0;
    cfg
}

fn client(stub: &Stub) -> Client {
    Client::new(config(stub)).expect("client")
}

fn deployment(name: &str, cluster: &str, bento: &str) -> api::Deployment {
    let (repo, version) = bento.split_once(':').unwrap_or((bento, "v1"));
    let mut d = api::Deployment::default();
    d.meta.name = name.into();
    d.meta.uid = format!("uid-{name}");
    d.cluster.meta.name = cluster.into();
    d.status = api::DeploymentStatus::Deploying;
    let mut b = api::Bento {
        version: version.into(),
        ..Default::default()
    };
    b.meta.name = version.into();
    b.repository.meta.name = repo.into();
    let mut t = api::Target {
        bento: Some(b),
        ..Default::default()
    };
    t.meta.name = "main".into();
    let mut r = api::Revision {
        targets: vec![Some(t)],
        ..Default::default()
    };
    r.meta.uid = "rev-1".into();
    d.latest_revision = Some(r);
    d
}

fn create_request(name: &str, bento: &str) -> api::CreateDeploymentRequest {
    api::CreateDeploymentRequest {
        name: Some(name.into()),
        dev: false,
        spec: api::UpdateDeploymentRequest {
            bento: bento.into(),
            ..Default::default()
        },
    }
}

/// Creates deployment `iris` of bento `iris:v1` in cluster `east` through `stub`.
async fn create_iris(stub: &Stub) -> Result<api::Deployment, ClientError> {
    client(stub)
        .create_deployment("east", &create_request("iris", "iris:v1"))
        .await
}

/// The number `req` gives for `name` in its query, else `default`.
fn number(req: &StubRequest, name: &str, default: usize) -> usize {
    req.param(name)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A list page of `items` starting at `start`, of `total` in all.
fn list_page(start: usize, total: usize, items: Vec<api::Deployment>) -> StubResponse {
    ok_json(json!({"start": start, "count": items.len(), "total": total, "items": items}))
}

fn ok_json(v: impl serde::Serialize) -> StubResponse {
    StubResponse::json(200, v)
}

/// A stub answering `first` to its first `times` requests and `then` to the rest, and how
/// many requests it got.
async fn serve_answering(
    times: usize,
    first: StubResponse,
    then: StubResponse,
) -> (Stub, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let stub = serve(move |_req: StubRequest| {
        let n = h.fetch_add(1, Ordering::SeqCst);
        let answer = if n < times {
            first.clone()
        } else {
            then.clone()
        };
        async move { answer }
    })
    .await;
    (stub, hits)
}

fn count(reqs: &[StubRequest], method: &str) -> usize {
    reqs.iter().filter(|r| r.method == method).count()
}

#[tokio::test]
async fn not_found_is_404_or_400_record_not_found() {
    let stub = serve(|req: StubRequest| async move {
        match req.path.as_str() {
            "/api/v2/deployments/gone" => {
                StubResponse::json(404, json!({"error": "no such thing"}))
            }
            "/api/v2/deployments/old" => {
                StubResponse::json(400, json!({"error": "record not found"}))
            }
            _ => StubResponse::json(400, json!({"error": "name is invalid"})),
        }
    })
    .await;
    let c = client(&stub);
    let e = c.get_deployment("east", "gone").await.expect_err("404");
    assert!(e.is_not_found() && e.status() == Some(404), "{e}");
    let e = c.get_deployment("east", "old").await.expect_err("400");
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert_eq!(
        c.get_deployment_opt("east", "gone").await.expect("opt"),
        None
    );
    assert_eq!(
        c.get_deployment_opt("east", "old").await.expect("opt"),
        None
    );
    let e = c
        .get_deployment_opt("east", "other")
        .await
        .expect_err("plain 400 is not not-found");
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert_eq!(e.message, "name is invalid");
    // A 400 is final: not retried.
    assert_eq!(
        stub.requests()
            .iter()
            .filter(|r| r.path.ends_with("/other"))
            .count(),
        1
    );
}

#[tokio::test]
async fn unauthorized_carries_the_server_message_and_never_the_token() {
    let stub = serve(|req: StubRequest| async move {
        if req.path == "/api/v1/current_org" {
            StubResponse::json(403, json!({"message": "token lacks permission"}))
        } else {
            StubResponse::json(401, json!({"error": "invalid api token"}))
        }
    })
    .await;
    let c = client(&stub);
    let e = c.current_user().await.expect_err("401");
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert_eq!(e.message, "invalid api token");
    let shown = e.to_string();
    assert_eq!(shown, "get the current user: HTTP 401: invalid api token");
    assert!(!shown.contains(TOKEN) && !format!("{e:?}").contains(TOKEN));
    let e = c.current_org().await.expect_err("403");
    assert_eq!(e.kind, ErrorKind::Unauthorized);
    assert_eq!(e.message, "token lacks permission");
    assert!(!format!("{c:?}").contains(TOKEN));
    assert!(!format!("{:?}", config(&stub)).contains(TOKEN));
}

#[tokio::test]
async fn error_display_names_operation_status_message_and_scrubs_an_echoed_token() {
    let stub = serve(|req: StubRequest| async move {
        let token = req.header(TOKEN_HEADER).unwrap_or_default().to_string();
        StubResponse::json(409, json!({"error": format!("conflict for token {token}")}))
            .with_header("x-trace-id", "abc123")
    })
    .await;
    let c = client(&stub);
    let req = api::UpdateDeploymentRequest {
        bento: "iris:v2".into(),
        ..Default::default()
    };
    let e = c
        .update_deployment("local-east", "iris", &req)
        .await
        .expect_err("409");
    let shown = e.to_string();
    assert!(
        shown.starts_with(
            "update deployment \"iris\" in cluster \"local-east\": HTTP 409: conflict for token"
        ),
        "{shown}"
    );
    assert!(!shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    assert!(!shown.contains("abc123"), "trace ids only on 5xx: {shown}");
    assert_eq!(e.kind, ErrorKind::Conflict);
}

#[tokio::test]
async fn rate_limited_request_waits_retry_after_then_succeeds() {
    let (stub, hits) = serve_answering(
        1,
        StubResponse::json(429, json!({"error": "slow down"})).with_header("Retry-After", "1"),
        ok_json(deployment("iris", "east", "iris:v1")),
    )
    .await;
    let mut cfg = config(&stub);
    cfg.max_retry_delay = Duration::from_secs(5);
    let c = Client::new(cfg).expect("client");
    let t0 = Instant::now();
    let d = c.get_deployment("east", "iris").await.expect("retried");
    let waited = t0.elapsed();
    assert_eq!(d.meta.name, "iris");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert!(
        waited >= Duration::from_millis(990) && waited < Duration::from_millis(1900),
        "waited {waited:?}"
    );
}

#[tokio::test]
async fn retry_after_is_capped_by_max_retry_delay() {
    let (stub, _) = serve_answering(
        1,
        StubResponse::json(503, json!({})).with_header("Retry-After", "3600"),
        ok_json(json!({"name": "east"})),
    )
    .await;
    let t0 = Instant::now();
    let cl = client(&stub).get_cluster("east").await.expect("ok");
    assert_eq!(cl.meta.name, "east");
    assert!(t0.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unavailable_three_times_then_ok_succeeds() {
    let (stub, hits) = serve_answering(
        3,
        StubResponse::json(503, json!({"error": "maintenance"})),
        ok_json(json!([{"name": "cpu.1", "display_name": "CPU"}])),
    )
    .await;
    let types = client(&stub)
        .list_instance_types("east")
        .await
        .expect("retried");
    assert_eq!(types.len(), 1);
    assert_eq!(types[0].meta.name, "cpu.1");
    assert_eq!(hits.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn retries_stop_after_max_retries_and_501_is_not_retried() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let stub = serve(move |req: StubRequest| {
        h.fetch_add(1, Ordering::SeqCst);
        async move {
            if req.path.ends_with("/boom") {
                StubResponse::json(501, json!({"error": "internal"}))
                    .with_header("x-trace-id", "t-42")
            } else {
                StubResponse::json(502, json!({"error": "bad gateway"}))
            }
        }
    })
    .await;
    let mut cfg = config(&stub);
    cfg.max_retries = 2;
    let c = Client::new(cfg).expect("client");
    let e = c.get_cluster("flaky").await.expect_err("gives up");
    assert_eq!(e.status(), Some(502));
    assert!(e.is_retryable());
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    hits.store(0, Ordering::SeqCst);
    let e = c.get_cluster("boom").await.expect_err("501");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(e.kind, ErrorKind::Server);
    assert_eq!(e.message, "internal (trace ID t-42)");
}

/// The first POST is applied but its answer never arrives: the client must look the
/// deployment up instead of creating a second one.
#[tokio::test]
async fn create_whose_answer_is_lost_uses_the_get_and_creates_once() {
    let created: Arc<Mutex<Option<api::Deployment>>> = Arc::new(Mutex::new(None));
    let store = created.clone();
    let stub = serve(move |req: StubRequest| {
        let store = store.clone();
        async move {
            match req.method.as_str() {
                "POST" => {
                    let body: api::CreateDeploymentRequest =
                        serde_json::from_slice(&req.body).expect("body");
                    let d = deployment(
                        body.name.as_deref().unwrap_or_default(),
                        &req.param("cluster").unwrap_or_default(),
                        &body.spec.bento,
                    );
                    *store.lock().expect("lock") = Some(d.clone());
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    ok_json(d)
                }
                _ => match store.lock().expect("lock").clone() {
                    Some(d) => ok_json(d),
                    None => StubResponse::json(404, json!({"error": "record not found"})),
                },
            }
        }
    })
    .await;
    let mut cfg = config(&stub);
    cfg.request_timeout = Duration::from_millis(300);
    let c = Client::new(cfg).expect("client");
    let d = c
        .create_deployment("local-east", &create_request("iris", "iris:v1"))
        .await
        .expect("reconciled");
    assert_eq!(d.meta.name, "iris");
    let reqs = stub.requests();
    assert_eq!(count(&reqs, "POST"), 1, "exactly one create");
    assert_eq!(count(&reqs, "GET"), 1);
    assert_eq!(reqs[1].path, "/api/v2/deployments/iris");
    assert_eq!(reqs[1].param("cluster").as_deref(), Some("local-east"));
}

#[tokio::test]
async fn create_after_a_gateway_error_that_created_nothing_posts_again() {
    let posts = Arc::new(AtomicUsize::new(0));
    let p = posts.clone();
    let stub = serve(move |req: StubRequest| {
        let p = p.clone();
        async move {
            match req.method.as_str() {
                "POST" if p.fetch_add(1, Ordering::SeqCst) == 0 => {
                    StubResponse::json(502, json!({"error": "upstream"}))
                }
                "POST" => ok_json(deployment("iris", "east", "iris:v1")),
                _ => StubResponse::json(404, json!({"error": "record not found"})),
            }
        }
    })
    .await;
    let d = create_iris(&stub).await.expect("second post");
    assert_eq!(d.meta.name, "iris");
    let reqs = stub.requests();
    assert_eq!(count(&reqs, "POST"), 2);
    assert_eq!(count(&reqs, "GET"), 1);
}

#[tokio::test]
async fn repeated_create_answered_already_exists_returns_the_existing_deployment() {
    // POST #1: 504 (the server commits later); GET: 404 and then the commit lands;
    // POST #2: 400 already exists; GET: found.
    let state = Arc::new(Mutex::new((0usize, false)));
    let s = state.clone();
    let stub = serve(move |req: StubRequest| {
        let s = s.clone();
        async move {
            let mut st = s.lock().expect("lock");
            match req.method.as_str() {
                "POST" => {
                    st.0 += 1;
                    if st.0 == 1 {
                        StubResponse::json(504, json!({"error": "gateway timeout"}))
                    } else {
                        StubResponse::json(400, json!({"error": "deployment iris already exists"}))
                    }
                }
                _ if st.1 => ok_json(deployment("iris", "east", "iris:v1")),
                _ => {
                    st.1 = true;
                    StubResponse::json(404, json!({"error": "record not found"}))
                }
            }
        }
    })
    .await;
    let d = create_iris(&stub).await.expect("found");
    assert_eq!(d.meta.name, "iris");
    assert_eq!(count(&stub.requests(), "POST"), 2);
}

#[tokio::test]
async fn first_create_answered_already_exists_is_an_error() {
    let stub = serve(|_req: StubRequest| async move {
        StubResponse::json(400, json!({"error": "deployment iris already exists"}))
    })
    .await;
    let e = create_iris(&stub)
        .await
        .expect_err("conflict is the caller's");
    assert!(e.is_already_exists());
    assert_eq!(count(&stub.requests(), "GET"), 0);
}

#[tokio::test]
async fn reconciled_create_refuses_a_deployment_running_another_bento() {
    let stub = serve(|req: StubRequest| async move {
        match req.method.as_str() {
            "POST" => StubResponse::json(504, json!({})),
            _ => ok_json(deployment("iris", "east", "other:v9")),
        }
    })
    .await;
    let e = create_iris(&stub).await.expect_err("mismatch");
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("other:v9"), "{e}");
    assert!(bento_matches("iris", Some("iris:v3")));
    assert!(bento_matches("iris:latest", Some("iris:v3")));
    assert!(!bento_matches("iris:v1", Some("iris:v3")));
}

#[tokio::test]
async fn rate_limited_create_is_repeated_directly() {
    let (stub, _) = serve_answering(
        1,
        StubResponse::json(429, json!({})).with_header("Retry-After", "0"),
        ok_json(deployment("iris", "east", "iris:v1")),
    )
    .await;
    create_iris(&stub).await.expect("ok");
    let reqs = stub.requests();
    assert_eq!(count(&reqs, "POST"), 2);
    assert_eq!(count(&reqs, "GET"), 0, "429 means not processed: no lookup");
}

#[tokio::test]
async fn list_deployments_fetches_every_page_and_sends_labels_in_q_with_cluster() {
    const TOTAL: usize = 1234;
    let stub = serve(|req: StubRequest| async move {
        let (start, count) = (number(&req, "start", 0), number(&req, "count", 10));
        let items: Vec<api::Deployment> = (start..TOTAL.min(start + count))
            .map(|i| deployment(&format!("d{i}"), "local-east", "iris:v1"))
            .collect();
        list_page(start, TOTAL, items)
    })
    .await;
    let c = client(&stub);
    let q = ListQuery {
        cluster: Some("local-east".into()),
        search: Some("ir is".into()),
        q: Some("is:dev".into()),
        labels: [("team", "ml"), ("env", "prod")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let all = c.list_deployments(&q).await.expect("list");
    assert_eq!(all.len(), TOTAL);
    let names: std::collections::BTreeSet<_> = all.iter().map(|d| d.meta.name.clone()).collect();
    assert_eq!(names.len(), TOTAL);
    let reqs = stub.requests();
    assert_eq!(reqs.len(), 3);
    for (i, r) in reqs.iter().enumerate() {
        assert_eq!(r.path, "/api/v2/deployments");
        assert_eq!(r.param("cluster").as_deref(), Some("local-east"));
        assert_eq!(r.param("all").as_deref(), Some(""));
        assert_eq!(
            r.param("q").as_deref(),
            Some("is:dev label:env=prod label:team=ml")
        );
        assert_eq!(r.param("search").as_deref(), Some("ir is"));
        assert_eq!(r.param("count").as_deref(), Some("500"));
        if i == 0 {
            assert_eq!(
                r.param("start").as_deref(),
                Some("0"),
                "page 1 gives the total"
            );
        }
    }
    // Pages 2.. may be fetched concurrently: each start exactly once.
    let mut starts: Vec<String> = reqs.iter().filter_map(|r| r.param("start")).collect();
    starts.sort();
    assert_eq!(starts, ["0", "1000", "500"]);
    // Items keep the server's order whatever order the pages arrived in.
    let order: Vec<String> = all.iter().map(|d| d.meta.name.clone()).collect();
    let want: Vec<String> = (0..TOTAL).map(|i| format!("d{i}")).collect();
    assert_eq!(order, want);
    // All clusters: all=true and an empty cluster.
    let all = c
        .list_deployments(&ListQuery::default())
        .await
        .expect("list all");
    assert_eq!(all.len(), TOTAL);
    let last = stub.requests().pop().expect("request");
    assert_eq!(last.param("cluster").as_deref(), Some(""));
    assert_eq!(last.param("all").as_deref(), Some("true"));
    assert_eq!(last.param("q").as_deref(), Some(""));
}

#[tokio::test]
async fn pages_after_the_first_are_fetched_concurrently_and_kept_in_order() {
    const TOTAL: usize = 2600;
    let stub = serve(|req: StubRequest| async move {
        let (start, count) = (number(&req, "start", 0), number(&req, "count", 10));
        // Later pages answer faster, so arrival order differs from page order.
        tokio::time::sleep(Duration::from_millis(
            150u64.saturating_sub(start as u64 / 20),
        ))
        .await;
        let items: Vec<api::Deployment> = (start..TOTAL.min(start + count))
            .map(|i| deployment(&format!("d{i:05}"), "c", "x:1"))
            .collect();
        list_page(start, TOTAL, items)
    })
    .await;
    let all = client(&stub)
        .list_deployments(&ListQuery::default())
        .await
        .expect("list");
    let names: Vec<String> = all.iter().map(|d| d.meta.name.clone()).collect();
    let want: Vec<String> = (0..TOTAL).map(|i| format!("d{i:05}")).collect();
    assert_eq!(names, want);
    assert_eq!(stub.requests().len(), 6);
    assert!(stub.max_in_flight() >= 2, "{}", stub.max_in_flight());
}

/// A listed page keeps each item's JSON as sent, indexed by name and cluster, and decodes it
/// into the same document a parsed page gives; an item whose name is not a string fails the
/// page as it would fail a parsed page.
#[tokio::test]
async fn a_listed_page_keeps_each_item_as_sent() {
    let stub = serve(|req: StubRequest| async move {
        if req.param("search").as_deref() == Some("bad") {
            return ok_json(json!({"total": 1, "items": [{"name": 7}]}));
        }
        let items = vec![
            deployment("a", "east", "x:1"),
            deployment("b \"q\" \u{e9}", "west", "y:2"),
        ];
        ok_json(json!({"start": 0, "count": 2, "total": 2, "items": items}))
    })
    .await;
    let c = client(&stub);
    let q = ListQuery::default();
    let parsed = c.list_deployments_page(&q, 0, 10).await.expect("parsed");
    let listed = c
        .list_deployments_page_listed(&q, 0, 10)
        .await
        .expect("listed");
    assert_eq!((listed.total, listed.items.len()), (2, 2));
    for (p, l) in parsed.items.iter().zip(&listed.items) {
        assert_eq!(l.name, p.meta.name);
        assert_eq!(l.cluster, p.cluster.meta.name);
        let sent: serde_json::Value = serde_json::from_slice(l.json()).expect("json");
        assert_eq!(sent, serde_json::to_value(p).expect("value"));
        assert_eq!(&l.deployment().expect("decodes"), p);
    }
    let bad = ListQuery {
        search: Some("bad".into()),
        ..ListQuery::default()
    };
    let e = c
        .list_deployments_page(&bad, 0, 10)
        .await
        .expect_err("parsed");
    assert_eq!(e.kind, ErrorKind::Decode);
    let e = c
        .list_deployments_page_listed(&bad, 0, 10)
        .await
        .expect_err("listed");
    assert_eq!(e.kind, ErrorKind::Decode);
}

#[tokio::test]
async fn list_follows_a_server_that_caps_the_page_size() {
    // The server returns at most 2 items whatever `count` asks for; total is 5.
    let stub = serve(|req: StubRequest| async move {
        let start = number(&req, "start", 0);
        let names = ["a", "b", "c", "d", "e"];
        let items: Vec<_> = names
            .iter()
            .skip(start)
            .take(2)
            .map(|n| deployment(n, "c", "x:1"))
            .collect();
        list_page(start, 5, items)
    })
    .await;
    let all = client(&stub)
        .list_deployments(&ListQuery::default())
        .await
        .expect("list");
    let names: Vec<&str> = all.iter().map(|d| d.meta.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert_eq!(stub.requests().len(), 3);
}

#[tokio::test]
async fn list_stops_on_an_empty_page_even_if_total_is_wrong() {
    let stub = serve(|req: StubRequest| async move {
        let start = number(&req, "start", 0);
        let items = if start == 0 {
            vec![deployment("a", "c", "x:1"), deployment("b", "c", "x:1")]
        } else {
            vec![]
        };
        list_page(start, 99999, items)
    })
    .await;
    let all = client(&stub)
        .list_deployments(&ListQuery::default())
        .await
        .expect("list");
    assert_eq!(all.len(), 2);
    assert_eq!(stub.requests().len(), 2);
}

#[tokio::test]
async fn concurrency_limit_caps_in_flight_requests_across_clones() {
    let stub = serve(|_req: StubRequest| async move {
        tokio::time::sleep(Duration::from_millis(80)).await;
        ok_json(json!({"name": "east"}))
    })
    .await;
    let mut cfg = config(&stub);
    cfg.max_concurrent_requests = 3;
    let c = Client::new(cfg).expect("client");
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.get_cluster("east").await })
        })
        .collect();
    for t in tasks {
        t.await.expect("join").expect("ok");
    }
    assert_eq!(stub.requests().len(), 12);
    assert!(stub.max_in_flight() <= 3, "{}", stub.max_in_flight());
    assert!(stub.max_in_flight() >= 2, "{}", stub.max_in_flight());
}

#[tokio::test]
async fn requests_per_second_spaces_requests() {
    let stub = serve(|_req: StubRequest| async move { ok_json(json!({})) }).await;
    let mut cfg = config(&stub);
    cfg.requests_per_second = 20.0; // burst 2, then 50 ms apart
    let c = Client::new(cfg).expect("client");
    let t0 = Instant::now();
    for _ in 0..6 {
        c.get_cluster("east").await.expect("ok");
    }
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(190), "{took:?}");
}

#[tokio::test]
async fn wire_rules_headers_bodies_paths_and_status() {
    let stub = serve(|req: StubRequest| async move {
        if req.path.ends_with("/created") {
            return StubResponse::json(201, json!({}));
        }
        ok_json(deployment("x", "c", "r:v"))
    })
    .await;
    // An endpoint with a path prefix and a trailing slash keeps the prefix.
    let mut cfg = config(&stub);
    cfg.endpoint = stub.url.join("prefix/").expect("join");
    let c = Client::new(cfg).expect("client");
    let req = api::UpdateDeploymentRequest {
        bento: "r:v".into(),
        ..Default::default()
    };
    c.update_deployment("", "a b/c", &req).await.expect("put");
    c.terminate_deployment("c1", "x").await.expect("terminate");
    c.delete_deployment("c1", "x").await.expect("delete");
    let e = c.get_deployment("c1", "created").await.expect_err("201");
    assert_eq!(e.kind, ErrorKind::Unexpected);
    let reqs = stub.requests();
    let put = &reqs[0];
    assert_eq!(put.method, "PUT");
    assert_eq!(put.path, "/prefix/api/v2/deployments/a%20b%2Fc");
    assert_eq!(put.query, "cluster=");
    assert_eq!(put.header("x-yatai-api-token"), Some(TOKEN));
    assert_eq!(put.header("content-type"), Some("application/json"));
    assert!(put
        .header("user-agent")
        .unwrap_or_default()
        .starts_with("terraform-provider-bentocloud/"));
    let sent: api::UpdateDeploymentRequest = serde_json::from_slice(&put.body).expect("json");
    assert_eq!(sent.bento, "r:v");
    let term = &reqs[1];
    assert_eq!(
        (
            term.method.as_str(),
            term.path.as_str(),
            term.query.as_str()
        ),
        (
            "POST",
            "/prefix/api/v2/deployments/x/terminate",
            "cluster=c1"
        )
    );
    assert!(term.body.is_empty());
    assert_eq!(term.header("content-length"), Some("0"));
    assert_eq!(reqs[2].method, "DELETE");
    assert!(reqs[2].body.is_empty());
    assert_eq!(reqs[3].path, "/prefix/api/v2/deployments/created");
    assert_eq!(reqs.len(), 4);
}

#[tokio::test]
async fn bentos_secrets_and_clusters_use_their_paths() {
    let stub = serve(|req: StubRequest| async move {
        match (req.method.as_str(), req.path.as_str()) {
            (_, "/api/v1/bento_repositories/iris/bentos") => {
                ok_json(json!({"start":0,"count":1,"total":3,"items":[{"name":"v3","version":"v3"}]}))
            }
            (_, "/api/v1/bento_repositories/empty/bentos") => {
                ok_json(json!({"start":0,"count":0,"total":0,"items":[]}))
            }
            (_, "/api/v1/bento_repositories/iris/bentos/v1") => {
                ok_json(json!({"name":"v1","version":"v1"}))
            }
            (_, "/api/v1/clusters") => {
                ok_json(json!({"start":0,"count":1,"total":1,"items":[{"name":"east"}]}))
            }
            ("GET", "/api/v1/org_secrets") => ok_json(
                json!({"start":0,"count":1,"total":1,"items":[{"name":"s1","content":{"type":"env","items":[{"key":"K","value":"hunter2"}]}}]}),
            ),
            ("POST", "/api/v1/org_secrets") => ok_json(json!({"name":"s2"})),
            ("DELETE", "/api/v1/org_secrets/s2") => ok_json(json!({})),
            ("GET", "/api/v1/org_secrets/bad") => {
                StubResponse { status: 200, headers: vec![], body: b"{\"name\": \"hunter2\" ".to_vec() }
            }
            _ => StubResponse::json(404, json!({"error":"record not found"})),
        }
    })
    .await;
    let c = client(&stub);
    assert_eq!(c.latest_bento("iris").await.expect("latest").version, "v3");
    assert!(c
        .latest_bento("empty")
        .await
        .expect_err("none")
        .is_not_found());
    assert_eq!(
        c.get_bento("iris", "v1").await.expect("bento").version,
        "v1"
    );
    assert!(c
        .get_bento("iris", "v0")
        .await
        .expect_err("gone")
        .is_not_found());
    assert_eq!(
        c.list_clusters().await.expect("clusters")[0].meta.name,
        "east"
    );
    let secrets = c.list_secrets().await.expect("secrets");
    assert_eq!(secrets[0].content.items[0].key, "K");
    let created = c
        .create_secret(
            "",
            &api::CreateSecretRequest {
                name: "s2".into(),
                ..Default::default()
            },
        )
        .await
        .expect("create");
    assert_eq!(created.meta.name, "s2");
    c.delete_secret("", "s2").await.expect("delete");
    let e = c.get_secret("", "bad").await.expect_err("decode");
    assert_eq!(e.kind, ErrorKind::Decode);
    assert!(!e.to_string().contains("hunter2"), "{e}");
    let list = stub
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/org_secrets" && r.method == "GET")
        .expect("list");
    assert_eq!(list.param("all").as_deref(), Some("true"));
    assert_eq!(list.param("count").as_deref(), Some("500"));
    let latest = &stub.requests()[0];
    assert_eq!(latest.query, "count=1");
}

/// A loopback address where nothing listens.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr
}

#[tokio::test]
async fn connection_refused_before_any_answer_fails_at_once() {
    let addr = closed_port();
    let mut cfg = ClientConfig::new(Url::parse(&format!("http://{addr}")).expect("url"), TOKEN);
    cfg.max_retries = 8;
    cfg.max_retry_delay = Duration::from_millis(1);
    let c = Client::new(cfg).expect("client");
    let e = c.get_deployment("east", "iris").await.expect_err("refused");
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert!(!e.is_retryable());
    assert_eq!(c.attempts(), 1, "not retried: {e}");
    assert_eq!(e.status(), None);
    let shown = e.to_string();
    assert!(
        shown.starts_with("get deployment \"iris\" in cluster \"east\": cannot connect to"),
        "{shown}"
    );
    assert!(shown.contains(&format!("{addr} was refused")), "{shown}");
    assert!(shown.contains("BENTO_CLOUD_API_ENDPOINT"), "{shown}");
    assert!(!shown.contains("again"), "{shown}");
    assert!(!shown.contains(TOKEN));
}

#[tokio::test]
async fn connection_refused_after_an_answer_is_retried() {
    let stub = serve(|_req: StubRequest| async move { ok_json(json!({"name": "u"})) }).await;
    let mut cfg = config(&stub);
    cfg.max_retries = 2;
    let c = Client::new(cfg).expect("client");
    c.current_user().await.expect("the endpoint answers");
    let addr = format!(
        "{}:{}",
        stub.url.host_str().unwrap_or_default(),
        stub.url.port().unwrap_or_default()
    );
    drop(stub);
    // The stub's listener closes when its accept task is dropped.
    let end = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(&addr).is_ok() {
        assert!(Instant::now() < end, "the stub still listens");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let e = c.current_user().await.expect_err("the server is gone");
    assert_eq!(e.kind, ErrorKind::Transport, "{e}");
    assert!(e.is_retryable());
    assert_eq!(
        c.attempts(),
        1 + 3,
        "a restart of a known endpoint is retried: {e}"
    );
    assert!(e.to_string().contains("cannot connect to"), "{e}");
}

#[tokio::test]
async fn unresolvable_host_fails_at_once() {
    let mut cfg = ClientConfig::new(
        Url::parse("https://bentocloud-test.invalid").expect("url"),
        TOKEN,
    );
    cfg.max_retries = 8;
    cfg.max_retry_delay = Duration::from_millis(1);
    cfg.request_timeout = Duration::from_secs(20);
    let c = Client::new(cfg).expect("client");
    let e = c.current_user().await.expect_err("no such host");
    assert_eq!(e.kind, ErrorKind::Unreachable, "{e}");
    assert_eq!(c.attempts(), 1, "not retried: {e}");
    let shown = e.to_string();
    assert!(
        shown.contains("\"bentocloud-test.invalid\" does not resolve"),
        "{shown}"
    );
    assert!(shown.contains("BENTO_CLOUD_API_ENDPOINT"), "{shown}");
}

/// A TLS server whose certificate is signed by a CA the client does not trust: the handshake
/// fails with `UnknownIssuer`, once, and the message names the CA problem and SSL_CERT_FILE.
#[tokio::test]
async fn untrusted_certificate_fails_at_once_and_names_ssl_cert_file() {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = rcgen::KeyPair::generate().expect("ca key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("ca cert");
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    let cert = params.signed_by(&key, &ca, &ca_key).expect("cert");
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from(cert.der().to_vec())],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let handshake_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let (conns, errs) = (connections.clone(), handshake_errors.clone());
    let server = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            conns.fetch_add(1, Ordering::SeqCst);
            if let Err(e) = acceptor.accept(tcp).await {
                if let Ok(mut v) = errs.lock() {
                    v.push(e.to_string());
                }
            }
        }
    });

    let mut cfg = ClientConfig::new(Url::parse(&format!("https://{addr}")).expect("url"), TOKEN);
    cfg.max_retries = 8;
    cfg.max_retry_delay = Duration::from_millis(1);
    let c = Client::new(cfg).expect("client");
    let e = c.current_user().await.expect_err("untrusted");
    // The server sees the client's alert.
    let end = Instant::now() + Duration::from_secs(5);
    while handshake_errors
        .lock()
        .map(|v| v.is_empty())
        .unwrap_or(true)
        && Instant::now() < end
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    server.abort();
    assert_eq!(e.kind, ErrorKind::Certificate, "{e}");
    assert!(!e.is_retryable());
    assert_eq!(c.attempts(), 1, "not retried: {e}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        1,
        "one TLS handshake: {e}"
    );
    let shown = e.to_string();
    assert!(shown.contains("UnknownIssuer"), "{shown}");
    assert!(shown.contains("certificate authority (CA)"), "{shown}");
    assert!(shown.contains("SSL_CERT_FILE"), "{shown}");
    assert!(!shown.contains("again"), "{shown}");
    let errs = handshake_errors
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("UnknownCA"),
        "the client refused the CA: {errs:?}"
    );
}

#[test]
fn invalid_configuration_is_a_config_error() {
    let url = |s: &str| Url::parse(s).expect("url");
    for (endpoint, token) in [
        ("ftp://x.example", "t"),
        ("https://x.example/?a=b", "t"),
        ("https://x.example", ""),
        ("https://x.example", "bad\ntoken"),
    ] {
        let e = Client::new(ClientConfig::new(url(endpoint), token)).expect_err(endpoint);
        assert_eq!(e.kind, ErrorKind::Config, "{endpoint}");
        assert!(!e.to_string().contains("bad\ntoken"));
    }
    let mut cfg = ClientConfig::new(url("https://x.example"), "t");
    cfg.max_concurrent_requests = 0;
    assert!(Client::new(cfg).is_err());
    let ok = Client::new(ClientConfig::new(url("https://x.example/"), "t")).expect("ok");
    assert_eq!(ok.endpoint().as_str(), "https://x.example/");
}

#[test]
fn q_param_joins_tokens_and_labels() {
    let mut q = ListQuery::default();
    assert_eq!(q.q_param(), "");
    q.labels.insert("team".into(), "ml".into());
    assert_eq!(q.q_param(), "label:team=ml");
    q.q = Some(" is:dev ".into());
    assert_eq!(q.q_param(), "is:dev label:team=ml");
}

/// The deployment document may carry no `bento.manifest` (optional in the official client's
/// schema, API doc §3.3): for a multi-service main target `with_bento_manifest` reads the
/// bento's own manifest from the bento endpoint (where the official client reads the entry
/// service, §5.2), once per bento version; a single service needs no lookup. A GET alone is one
/// request, the document as sent: the lookup is the caller's explicit step.
#[tokio::test]
async fn multi_service_deployments_get_the_entry_service_from_the_bento_endpoint_once() {
    let stub = serve(|req: StubRequest| async move {
        let services = |names: &[&str]| -> serde_json::Map<String, serde_json::Value> {
            names.iter().map(|n| (n.to_string(), json!({}))).collect()
        };
        let with_services = |name: &str, names: &[&str]| {
            let mut d = deployment(name, "c1", "shop:v1");
            if let Some(t) = d
                .latest_revision
                .as_mut()
                .and_then(|r| r.targets[0].as_mut())
            {
                t.config = serde_json::from_value(json!({ "services": services(names) })).ok();
            }
            d
        };
        match req.path.as_str() {
            "/api/v2/deployments/multi" => ok_json(with_services("multi", &["Web", "Model"])),
            "/api/v2/deployments/single" => ok_json(with_services("single", &["Web"])),
            "/api/v1/bento_repositories/shop/bentos/v1" => ok_json(shop_v1("Web")),
            _ => StubResponse::json(404, json!({"error": "record not found"})),
        }
    })
    .await;
    let c = client(&stub);
    let entry = entry_of;
    let bento_gets = || bento_lookups(&stub);
    let raw = c.get_deployment("c1", "multi").await.expect("get");
    assert_eq!(entry(&raw), None, "as the server sent it");
    assert_eq!(
        (stub.requests().len(), bento_gets()),
        (1, 0),
        "one GET, no lookup"
    );
    for _ in 0..2 {
        let d = c.get_deployment("c1", "multi").await.expect("get");
        let d = c.with_bento_manifest(d).await;
        assert_eq!(entry(&d).as_deref(), Some("Web"));
    }
    let d = c.get_deployment("c1", "single").await.expect("get");
    let d = c.with_bento_manifest(d).await;
    assert_eq!(entry(&d), None, "one service: nothing to choose, no lookup");
    assert_eq!(bento_gets(), 1, "one lookup per bento version");
}

/// Bento `shop:v1`, whose manifest names `entry` its entry service.
fn shop_v1(entry: &str) -> api::Bento {
    let mut b = api::Bento {
        version: "v1".into(),
        manifest: Some(api::BentoManifest {
            entry_service: entry.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    b.meta.name = "v1".into();
    b.repository.meta.name = "shop".into();
    b
}

/// Requests for a bento (the manifest lookups) the stub answered.
fn bento_lookups(stub: &crate::client::stub::Stub) -> usize {
    stub.requests()
        .iter()
        .filter(|r| r.path.starts_with("/api/v1/bento_repositories/"))
        .count()
}

/// The entry service the document's bento manifest names, if it carries one.
fn entry_of(d: &api::Deployment) -> Option<String> {
    d.main_target()
        .and_then(|t| t.bento.as_ref())
        .and_then(|b| b.manifest.as_ref())
        .map(|m| m.entry_service.clone())
}

/// A listing is its pages alone; the walk that gives items their bento's manifest looks up only
/// the bentos of the items its filter keeps (once each), and keeps the page walk's counts.
#[tokio::test]
async fn a_listing_with_manifests_looks_up_only_the_kept_items_bentos() {
    let stub = serve(|req: StubRequest| async move {
        let multi = |name: &str, bento: &str| {
            let mut d = deployment(name, "c1", bento);
            if let Some(t) = d
                .latest_revision
                .as_mut()
                .and_then(|r| r.targets[0].as_mut())
            {
                t.config =
                    serde_json::from_value(json!({ "services": {"Web": {}, "Model": {}} })).ok();
            }
            d
        };
        match req.path.as_str() {
            "/api/v2/deployments" => {
                let items = vec![
                    multi("a", "shop:v1"),
                    multi("b", "other:v1"),
                    multi("c", "shop:v1"),
                ];
                ok_json(json!({"start": 0, "count": 3, "total": 3, "items": items}))
            }
            "/api/v1/bento_repositories/shop/bentos/v1" => ok_json(shop_v1("Model")),
            _ => StubResponse::json(404, json!({"error": "record not found"})),
        }
    })
    .await;
    let c = client(&stub);
    let q = ListQuery::default();
    let bento_gets = || bento_lookups(&stub);
    let plain = c.list_deployments(&q).await.expect("list");
    assert_eq!(plain.len(), 3);
    assert_eq!(
        (stub.requests().len(), bento_gets()),
        (1, 0),
        "the page alone"
    );
    let entry = |d: api::Deployment| {
        let e = entry_of(&d);
        (d.meta.name, e)
    };
    let kept = c
        .list_deployments_with_manifest_map(&q, |d| d.meta.name != "b", entry)
        .await
        .expect("list");
    assert_eq!(
        kept,
        [
            ("a".to_string(), Some("Model".to_string())),
            ("c".to_string(), Some("Model".to_string())),
        ]
    );
    let paths: Vec<String> = stub.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/api/v2/deployments",
            "/api/v2/deployments",
            "/api/v1/bento_repositories/shop/bentos/v1",
        ],
        "one page, then one lookup for the kept items' bento (none for `other`)"
    );
}
