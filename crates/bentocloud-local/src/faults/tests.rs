use super::*;

fn rule(text: &str) -> FaultRule {
    FaultRule::parse(text).expect("valid rule")
}

#[test]
fn parses_the_compact_form() {
    let r = rule("on=POST:/api/v2/deployments rate=0.3 kinds=500,429,latency,drop,abort phase=after latency_ms=50 retry_after=2 skip=3 limit=4");
    assert_eq!(r.method.as_deref(), Some("POST"));
    assert_eq!(r.path_prefix, "/api/v2/deployments");
    assert_eq!(r.rate, 0.3);
    assert_eq!(r.phase, PhaseSpec::After);
    assert_eq!((r.skip, r.limit), (3, Some(4)));
    assert_eq!(
        r.faults,
        vec![
            FaultKind::Error { status: 500 },
            FaultKind::RateLimit {
                retry_after_seconds: 2
            },
            FaultKind::Latency { ms: 50 },
            FaultKind::Drop,
            FaultKind::Abort,
        ]
    );
    let all = rule("kinds=503");
    assert_eq!((all.method.clone(), all.path_prefix.as_str()), (None, ""));
    assert_eq!(all.rate, 1.0);
    assert_eq!(all.phase, PhaseSpec::Both);
    assert_eq!(rule("on=get kinds=502").method.as_deref(), Some("GET"));
    assert_eq!(rule("on=/api/v1 kinds=502").path_prefix, "/api/v1");
    for bad in [
        "kinds=404",
        "kinds=teapot",
        "rate=1.5 kinds=500",
        "rate=x kinds=500",
        "kinds=500 phase=during",
        "kinds=500 colour=red",
        "rate=0.5",
        "kinds=latency latency_ms=9999999",
        "nonsense",
    ] {
        assert!(FaultRule::parse(bad).is_err(), "{bad} should be rejected");
    }
}

#[test]
fn matching_by_method_and_prefix_first_firing_rule_wins() {
    let f = Faults::new(FaultConfig {
        seed: Some(1),
        rules: vec![
            rule("on=POST:/api/v2/deployments kinds=503"),
            rule("on=all kinds=500 phase=before"),
        ],
    })
    .expect("config");
    let d = f.decide("POST", "/api/v2/deployments").expect("fault");
    assert_eq!((d.rule, d.fault), (0, FaultKind::Error { status: 503 }));
    let d = f.decide("GET", "/api/v2/deployments").expect("fault");
    assert_eq!(
        (d.rule, d.fault, d.phase),
        (1, FaultKind::Error { status: 500 }, Phase::Before)
    );
    // The admin endpoint is never faulted.
    assert!(f.decide("PUT", ADMIN_PATH).is_none());
    // Every matching rule counts the request; only the first that fires injects.
    let s = f.status();
    assert_eq!((s.matched, s.injected), (vec![1, 2], vec![1, 1]));
}

#[test]
fn off_by_default_and_rate_zero_never_fires() {
    let f = Faults::default();
    assert!((0..100).all(|_| f.decide("GET", "/api/v1/clusters").is_none()));
    f.set(FaultConfig {
        seed: None,
        rules: vec![rule("rate=0 kinds=500")],
    })
    .expect("set");
    assert!((0..1000).all(|_| f.decide("GET", "/api/v1/clusters").is_none()));
    assert_eq!(f.status().matched, vec![1000]);
}

#[test]
fn the_same_seed_gives_the_same_decisions_and_the_rate_holds() {
    let cfg = FaultConfig {
        seed: Some(42),
        rules: vec![rule("rate=0.3 kinds=500,502,503,429,latency,drop")],
    };
    let run = || {
        let f = Faults::new(cfg.clone()).expect("config");
        (0..2000)
            .map(|_| f.decide("GET", "/api/v2/deployments"))
            .collect::<Vec<_>>()
    };
    let a = run();
    assert_eq!(a, run(), "deterministic with a seed");
    let fired = a.iter().flatten().count();
    assert!((500..700).contains(&fired), "about 30% of 2000: {fired}");
    // Every kind and both phases occur.
    for k in &cfg.rules[0].faults {
        assert!(
            a.iter().flatten().any(|d| &d.fault == k),
            "{k:?} never chosen"
        );
    }
    assert!(a.iter().flatten().any(|d| d.phase == Phase::Before));
    assert!(a.iter().flatten().any(|d| d.phase == Phase::After));
    let other = Faults::new(FaultConfig {
        seed: Some(43),
        ..cfg.clone()
    })
    .expect("config");
    let b: Vec<_> = (0..2000)
        .map(|_| other.decide("GET", "/api/v2/deployments"))
        .collect();
    assert_ne!(a, b, "another seed, another sequence");
}

#[test]
fn skip_and_limit() {
    let f = Faults::new(FaultConfig {
        seed: Some(7),
        rules: vec![rule("on=POST kinds=abort phase=after skip=3 limit=2")],
    })
    .expect("config");
    let got: Vec<bool> = (0..8)
        .map(|_| f.decide("POST", "/api/v2/deployments").is_some())
        .collect();
    assert_eq!(
        got,
        [false, false, false, true, true, false, false, false],
        "fires on requests 4 and 5 only"
    );
    // A new config resets the counters.
    f.set(FaultConfig {
        seed: Some(7),
        rules: vec![rule("on=POST kinds=drop limit=1")],
    })
    .expect("set");
    assert!(f.decide("POST", "/x").is_some());
    assert!(f.decide("POST", "/x").is_none());
}

#[test]
fn config_json_round_trip_and_validation() {
    let json = r#"{"seed": 5, "rules": [{"method": "POST", "path_prefix": "/api/v2",
        "rate": 0.5, "phase": "before",
        "faults": [{"kind": "error", "status": 502},
                   {"kind": "rate_limit", "retry_after_seconds": 1},
                   {"kind": "latency", "ms": 10}, {"kind": "drop"}, {"kind": "abort"}]}]}"#;
    let cfg: FaultConfig = serde_json::from_str(json).expect("parse");
    assert!(cfg.validate().is_ok());
    assert_eq!(cfg.rules[0].faults.len(), 5);
    let back: FaultConfig =
        serde_json::from_str(&serde_json::to_string(&cfg).expect("ser")).expect("de");
    assert_eq!(back, cfg);
    let bad: FaultConfig = serde_json::from_str(
        r#"{"rules": [{"rate": 0.5, "faults": [{"kind": "error", "status": 200}]}]}"#,
    )
    .expect("parse");
    assert!(Faults::new(bad).is_err());
    assert!(serde_json::from_str::<FaultConfig>(r#"{"rulez": []}"#).is_err());
}

/// Serves a tiny router through the fault layer over a real socket.
async fn serve_with(cfg: FaultConfig) -> (std::net::SocketAddr, std::sync::Arc<Faults>) {
    use axum::routing::get;
    let faults = std::sync::Arc::new(Faults::new(cfg).expect("config"));
    let f2 = faults.clone();
    let app = axum::Router::new()
        .route("/api/v1/x", get(|| async { "hello" }))
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let f = f2.clone();
                async move {
                    match f.decide(req.method().as_str(), req.uri().path()) {
                        None => next.run(req).await,
                        Some(d) => match d.fault {
                            FaultKind::Latency { ms } => {
                                tokio::time::sleep(Duration::from_millis(ms)).await;
                                next.run(req).await
                            }
                            _ => injected(&d.fault, d.phase),
                        },
                    }
                }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, faults)
}

async fn raw_get(addr: std::net::SocketAddr) -> std::io::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /api/v1/x HTTP/1.1\r\nhost: x\r\n\r\n")
        .await?;
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(5).any(|w| w == b"hello") || out.windows(5).any(|w| w == b"error") {
            return Ok(out);
        }
    }
}

#[tokio::test]
async fn drop_closes_the_connection_without_a_response_byte() {
    let (addr, _) = serve_with(FaultConfig {
        seed: Some(1),
        rules: vec![rule("kinds=drop")],
    })
    .await;
    match raw_get(addr).await {
        Ok(bytes) => assert!(
            bytes.is_empty(),
            "expected no response byte, got {:?}",
            String::from_utf8_lossy(&bytes)
        ),
        Err(e) => assert_ne!(e.to_string(), "timeout", "the connection stayed open"),
    }
}

#[tokio::test]
async fn errors_rate_limits_and_latency_over_http() {
    let (addr, faults) = serve_with(FaultConfig {
        seed: Some(1),
        rules: vec![rule("kinds=503")],
    })
    .await;
    let url = format!("http://{addr}/api/v1/x");
    let r = reqwest::get(&url).await.expect("request");
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()[FAULT_HEADER], "error");
    assert!(r.text().await.expect("body").contains("injected fault"));

    faults
        .set(FaultConfig {
            seed: Some(1),
            rules: vec![rule("kinds=429 retry_after=7")],
        })
        .expect("set");
    let r = reqwest::get(&url).await.expect("request");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "7");

    faults
        .set(FaultConfig {
            seed: Some(1),
            rules: vec![rule("kinds=latency latency_ms=300")],
        })
        .expect("set");
    let t = std::time::Instant::now();
    let r = reqwest::get(&url).await.expect("request");
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(r.text().await.expect("body"), "hello");

    faults.set(FaultConfig::default()).expect("off");
    assert_eq!(reqwest::get(&url).await.expect("request").status(), 200);
}
