//! A scripted HTTP/1.1 stub server for the client's tests (test-only).
//!
//! It binds 127.0.0.1:0, answers every connection with one response from a handler closure
//! (`Connection: close`), records each request and measures how many were in flight at once.
//! It is not an emulator of BentoCloud: each test scripts exactly the responses it needs.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub(crate) struct StubRequest {
    pub method: String,
    pub path: String,
    /// The raw query string (without `?`).
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StubRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn query_pairs(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(self.query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StubResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl StubResponse {
    pub fn json(status: u16, body: impl serde::Serialize) -> StubResponse {
        StubResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(&body).unwrap_or_default(),
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> StubResponse {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub(crate) struct Stub {
    pub url: url::Url,
    pub requests: Arc<Mutex<Vec<StubRequest>>>,
    max_in_flight: Arc<AtomicUsize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Stub {
    pub fn requests(&self) -> Vec<StubRequest> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }
}

/// Starts a stub whose responses come from `handler`. A handler that sleeps longer than the
/// client's timeout simulates a request that was processed but whose answer was lost.
pub(crate) async fn serve<F, Fut>(handler: F) -> Stub
where
    F: Fn(StubRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = StubResponse> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let url = url::Url::parse(&format!("http://{addr}/")).expect("url");
    let requests = Arc::new(Mutex::new(Vec::new()));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let (reqs, inf, maxf) = (requests.clone(), in_flight.clone(), max_in_flight.clone());
    let accept = tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (handler, reqs, inf, maxf) =
                (handler.clone(), reqs.clone(), inf.clone(), maxf.clone());
            tokio::spawn(async move {
                let _ = handle(sock, handler, reqs, inf, maxf).await;
            });
        }
    });
    Stub {
        url,
        requests,
        max_in_flight,
        accept,
    }
}

async fn handle<F, Fut>(
    mut sock: TcpStream,
    handler: Arc<F>,
    reqs: Arc<Mutex<Vec<StubRequest>>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
) -> std::io::Result<()>
where
    F: Fn(StubRequest) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = StubResponse> + Send + 'static,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.clone(), String::new()),
    };
    let req = StubRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    if let Ok(mut r) = reqs.lock() {
        r.push(req.clone());
    }
    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    max_in_flight.fetch_max(now, Ordering::SeqCst);
    let resp = handler(req).await;
    in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut out = format!("HTTP/1.1 {} Stub\r\n", resp.status);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        resp.body.len()
    ));
    sock.write_all(out.as_bytes()).await?;
    sock.write_all(&resp.body).await?;
    sock.shutdown().await?;
    // Give the client time to read before the socket closes.
    tokio::time::sleep(Duration::from_millis(1)).await;
    Ok(())
}
