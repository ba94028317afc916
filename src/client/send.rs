//! Sending one request: the URL, the auth header and body, the retry loop (capped exponential
//! back-off with full jitter, `Retry-After`, transient errors only), the provider-wide request
//! budget, creates whose outcome is unknown, and the walk over a list's pages. Every API area
//! of the client sends through here.

use super::*;

/// What sending a [`Call`] again does: decides whether the retry loop may repeat an attempt
/// the server may have applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Repeat {
    /// Repeating it cannot create a second object (GET, PUT, PATCH, DELETE, terminate): an
    /// attempt whose outcome is unknown is retried.
    Idempotent,
    /// Each send may create an object (a POST create): an attempt the server may have applied
    /// is never repeated blindly (see [`Client::create_reconciled`]).
    CreatesEachTime,
}

/// Whether the bodies of a [`Call`] (sent or received) may hold secret values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bodies {
    Plain,
    /// Secret values (the secrets endpoints): never echoed in decode errors.
    MayHoldSecrets,
}

/// One request as the retry loop sees it.
pub(super) struct Call {
    pub(super) op: String,
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) body: Option<Vec<u8>>,
    pub(super) repeat: Repeat,
    pub(super) bodies: Bodies,
}

impl Call {
    /// Repeating it cannot create a second object.
    fn idempotent(&self) -> bool {
        self.repeat == Repeat::Idempotent
    }
}

/// A failed [`Call`] after the retry loop.
pub(super) struct Failure {
    pub(super) err: ClientError,
    /// The last attempt may have been applied by the server (sent, then timeout, reset,
    /// 500/502/504).
    pub(super) maybe_applied: bool,
    /// Some earlier attempt may have been applied (so a 404 on a retried delete means done).
    pub(super) earlier_maybe_applied: bool,
}

/// What one attempt produced.
pub(super) enum Attempt {
    Ok(Vec<u8>),
    Status {
        err: ClientError,
        retry: StatusRetry,
        retry_after: Option<Duration>,
    },
    Transport {
        err: ClientError,
        sent: bool,
    },
}

/// The body of `resp`, read chunk by chunk into one buffer sized from `Content-Length`, so a
/// large body (a list page) is held once: `Response::bytes` gathers the chunks and then copies
/// them into one buffer, which was copied once more into a `Vec`.
pub(super) async fn read_body(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    /// A `Content-Length` is trusted this far for the first allocation.
    const PREALLOCATE_AT_MOST: u64 = 16 << 20;
    let hint = resp.content_length().unwrap_or(0).min(PREALLOCATE_AT_MOST);
    let mut body = Vec::with_capacity(usize::try_from(hint).unwrap_or(0));
    while let Some(chunk) = resp.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl Client {
    // ----- plumbing -----

    /// `endpoint` + percent-encoded `segments` + `query` pairs (form-encoded, in order).
    pub(super) fn url(
        &self,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<Url, ClientError> {
        let mut url = self.inner.endpoint.clone();
        url.path_segments_mut()
            .map_err(|_| config_error("the endpoint cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    pub(super) fn get(&self, op: impl Into<String>, url: Url) -> Call {
        Call {
            op: op.into(),
            method: Method::GET,
            url,
            body: None,
            repeat: Repeat::Idempotent,
            bodies: Bodies::Plain,
        }
    }

    /// A bodiless POST/DELETE (terminate, delete): idempotent.
    pub(super) fn empty(&self, method: Method, op: String, url: Url) -> Call {
        Call {
            op,
            method,
            url,
            body: None,
            repeat: Repeat::Idempotent,
            bodies: Bodies::Plain,
        }
    }

    pub(super) fn with_body(
        &self,
        method: Method,
        op: String,
        url: Url,
        body: &impl serde::Serialize,
        repeat: Repeat,
        bodies: Bodies,
    ) -> Result<Call, ClientError> {
        let body = serde_json::to_vec(body).map_err(|e| {
            ClientError::new(
                op.clone(),
                ErrorKind::Decode,
                None,
                format!("cannot encode the request body: {e}"),
            )
        })?;
        Ok(Call {
            op,
            method,
            url,
            body: Some(body),
            repeat,
            bodies,
        })
    }

    pub(super) async fn run<T: DeserializeOwned>(&self, call: Call) -> Result<T, ClientError> {
        let bytes = self.send(&call).await.map_err(|f| f.err)?;
        self.decode(&call, &bytes)
    }

    pub(super) fn decode<'de, T: Deserialize<'de>>(
        &self,
        call: &Call,
        bytes: &'de [u8],
    ) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let message = if call.bodies == Bodies::MayHoldSecrets {
                format!(
                    "the response is not the expected JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )
            } else {
                format!("the response is not the expected JSON: {e}")
            };
            ClientError::new(call.op.clone(), ErrorKind::Decode, Some(200), message)
        })
    }

    /// Fetches pages of [`PAGE_SIZE`] until `total` items were fetched or a page comes back
    /// empty.
    pub(super) async fn collect_pages<T, F, Fut>(&self, fetch: F) -> Result<Vec<T>, ClientError>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<api::ListResponse<T>, ClientError>>,
    {
        self.collect_pages_map(fetch, |t| t).await
    }

    /// [`Self::collect_pages`], turning each item into `U` as its page arrives, so only one
    /// page of full documents is held at a time.
    pub(super) async fn collect_pages_map<T, U, F, Fut>(
        &self,
        fetch: F,
        map: impl FnMut(T) -> U,
    ) -> Result<Vec<U>, ClientError>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<api::ListResponse<T>, ClientError>>,
    {
        Ok(self
            .walk_pages(fetch, map, |_| true)
            .await?
            .unwrap_or_default())
    }

    /// [`Self::collect_pages_map`], asking `proceed(total)` after the first page.
    pub(super) async fn walk_pages<T, U, F, Fut>(
        &self,
        mut fetch: F,
        mut map: impl FnMut(T) -> U,
        proceed: impl FnOnce(u64) -> bool,
    ) -> Result<Option<Vec<U>>, ClientError>
    where
        F: FnMut(u64, u64) -> Fut,
        Fut: Future<Output = Result<api::ListResponse<T>, ClientError>>,
    {
        let first = fetch(0, PAGE_SIZE).await?;
        if !proceed(first.total) {
            return Ok(None);
        }
        let got = first.items.len() as u64;
        let mut total = first.total;
        let mut all: Vec<U> = Vec::with_capacity(total.min(100_000) as usize);
        all.extend(first.items.into_iter().map(&mut map));
        let mut start = got;
        if got == 0 || start >= total {
            return Ok(Some(all));
        }
        if got == PAGE_SIZE {
            // The server honours our page size and told us the total: the remaining pages are
            // known, so a few are fetched at once (the shared limiter still bounds the
            // provider's requests). Results are consumed in order; an empty page ends the walk.
            use futures::StreamExt;
            let starts: Vec<u64> = (got..total).step_by(PAGE_SIZE as usize).collect();
            let mut pages = futures::stream::iter(starts.into_iter().map(|s| fetch(s, PAGE_SIZE)))
                .buffered(PARALLEL_PAGES);
            while let Some(page) = pages.next().await {
                let page = page?;
                let n = page.items.len() as u64;
                total = total.max(page.total);
                all.extend(page.items.into_iter().map(&mut map));
                start += n;
                if n == 0 {
                    return Ok(Some(all));
                }
            }
            if start >= total {
                return Ok(Some(all));
            }
        }
        // A server that caps the page below what we asked for, or a fleet that grew while we
        // read it: one page after another, until an empty page or `total`.
        loop {
            let page = fetch(start, PAGE_SIZE).await?;
            let n = page.items.len() as u64;
            let total = page.total;
            all.extend(page.items.into_iter().map(&mut map));
            start += n;
            if n == 0 || start >= total {
                return Ok(Some(all));
            }
        }
    }

    /// Runs a non-idempotent create, resolving unknown outcomes with `lookup` (by name) instead
    /// of repeating the POST blindly.
    pub(super) async fn create_reconciled<T, F, Fut>(
        &self,
        call: Call,
        lookup: F,
    ) -> Result<T, ClientError>
    where
        T: DeserializeOwned,
        F: Fn() -> Fut,
        Fut: Future<Output = Result<Option<T>, ClientError>>,
    {
        let policy = self.inner.policy;
        let mut uncertain = false;
        let mut round = 0u32;
        loop {
            let failure = match self.send(&call).await {
                Ok(bytes) => return self.decode(&call, &bytes),
                Err(f) => f,
            };
            uncertain |= failure.earlier_maybe_applied;
            if failure.maybe_applied && round < policy.max_retries {
                tracing::warn!(target: LOG, operation = %call.op, error = %failure.err,
                    "the create may or may not have been applied; looking it up before trying again");
                match lookup().await {
                    Ok(Some(found)) => {
                        tracing::info!(target: LOG, operation = %call.op,
                            "the create had been applied; using the existing object");
                        return Ok(found);
                    }
                    Ok(None) => uncertain = true,
                    // The lookup found something that is not ours: that is the answer.
                    Err(e) if e.kind == ErrorKind::Conflict => return Err(e),
                    Err(e) => {
                        let mut err = failure.err;
                        err.message = format!(
                            "{}; the request may have been applied, and looking it up failed: {e}",
                            err.message
                        );
                        return Err(err);
                    }
                }
                tokio::time::sleep(policy.backoff(round)).await;
                round += 1;
                continue;
            }
            if uncertain && failure.err.is_already_exists() {
                if let Ok(Some(found)) = lookup().await {
                    tracing::info!(target: LOG, operation = %call.op,
                        "a repeated create found the object an earlier attempt created");
                    return Ok(found);
                }
            }
            let mut err = failure.err;
            if failure.maybe_applied {
                err.message = format!(
                    "{}; the request may have been applied: refresh before trying again",
                    err.message
                );
            }
            return Err(err);
        }
    }

    /// The retry loop: attempts `call` until success, a final answer, or `max_retries`.
    pub(super) async fn send(&self, call: &Call) -> Result<Vec<u8>, Failure> {
        let policy = self.inner.policy;
        let mut earlier_maybe_applied = false;
        let mut attempt = 0u32;
        loop {
            let (err, repeatable, maybe_applied, retry_after) =
                match self.attempt(call, attempt).await {
                    Attempt::Ok(bytes) => return Ok(bytes),
                    Attempt::Status {
                        err,
                        retry,
                        retry_after,
                    } => match retry {
                        // "Not processed" is what 429/503 promise; a proxy or an overloaded
                        // server can still have applied the request, so a later "already
                        // exists" is resolved by a lookup (see `create_reconciled`).
                        StatusRetry::NotProcessed => {
                            earlier_maybe_applied |= !call.idempotent();
                            (err, true, false, retry_after)
                        }
                        StatusRetry::OutcomeUnknown => (err, call.idempotent(), true, retry_after),
                        StatusRetry::Final => (err, false, false, None),
                    },
                    Attempt::Transport { err, sent } => {
                        // A rejected certificate or an endpoint that never answered: final.
                        let repeatable = err.is_retryable() && (call.idempotent() || !sent);
                        (err, repeatable, sent, None)
                    }
                };
            if !repeatable || attempt >= policy.max_retries {
                return Err(Failure {
                    err,
                    maybe_applied,
                    earlier_maybe_applied,
                });
            }
            earlier_maybe_applied |= maybe_applied;
            let delay = policy.delay(attempt, retry_after);
            tracing::debug!(target: LOG, operation = %call.op, attempt, error = %err,
                delay_ms = delay.as_millis() as u64, "retrying");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    /// One attempt, within the shared request limit.
    pub(super) async fn attempt(&self, call: &Call, attempt: u32) -> Attempt {
        let Some(permit) = self.inner.limiter.acquire().await else {
            let err = ClientError::new(
                call.op.clone(),
                ErrorKind::Transport,
                None,
                "the client is shut down",
            );
            return Attempt::Transport { err, sent: false };
        };
        self.inner.attempts.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = match self.request(call).send().await {
            Ok(resp) => Answer::read(resp).await,
            Err(e) => Err(e),
        };
        drop(permit);
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let path = path_and_query(&call.url);
        match result {
            Ok(answer) => {
                self.inner.answered.store(true, Ordering::Relaxed);
                tracing::debug!(target: LOG, method = %call.method, path = %path,
                    status = answer.status, elapsed_ms, attempt, "request");
                self.answered_attempt(call, answer)
            }
            Err(e) => {
                tracing::debug!(target: LOG, method = %call.method, path = %path,
                    status = "none", elapsed_ms, attempt, error = %describe(&e, self.inner.request_timeout), "request failed");
                let sent = !e.is_connect();
                let (kind, message) = self.transport_failure(&e);
                let err = self.scrub(ClientError::new(call.op.clone(), kind, None, message));
                Attempt::Transport { err, sent }
            }
        }
    }

    /// The HTTP request of `call`: its method, URL, token and body.
    fn request(&self, call: &Call) -> reqwest::RequestBuilder {
        let rb = self
            .inner
            .http
            .request(call.method.clone(), call.url.clone())
            .header(TOKEN_HEADER, self.inner.token.clone());
        match &call.body {
            Some(body) => rb
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone()),
            // A bodiless POST/DELETE says so (`Content-Length: 0`), as the official client does;
            // some proxies answer 411 otherwise.
            None if call.method != Method::GET => {
                rb.header(CONTENT_LENGTH, "0").body(Vec::<u8>::new())
            }
            None => rb,
        }
    }

    /// The attempt a response made: a success only with 200; otherwise an error saying what the
    /// server said (with its trace ID on a 5xx), and whether the status allows a retry.
    fn answered_attempt(&self, call: &Call, answer: Answer) -> Attempt {
        let Answer {
            status,
            retry_after,
            trace_id,
            body,
        } = answer;
        if status == 200 {
            return Attempt::Ok(body);
        }
        let mut err = ClientError::from_response(call.op.clone(), status, &body);
        if let Some(id) = trace_id.filter(|_| status >= 500) {
            err.message = format!("{} (trace ID {id})", err.message);
        }
        Attempt::Status {
            err: self.scrub(err),
            retry: retry::classify_status(status),
            retry_after,
        }
    }

    /// The kind and message of a failed attempt without a response. A rejected certificate,
    /// and a DNS failure or refused connection before the endpoint ever answered, are final
    /// ([`ErrorKind::Certificate`], [`ErrorKind::Unreachable`]) with the fix in the message;
    /// the rest is a retryable [`ErrorKind::Transport`].
    pub(super) fn transport_failure(&self, e: &reqwest::Error) -> (ErrorKind, String) {
        let endpoint = &self.inner.endpoint;
        let cause_text = describe(e, self.inner.request_timeout);
        let env = |k: &str| std::env::var(k).ok();
        let cause = transport::cause_of(e);
        match cause {
            transport::Cause::Certificate(c) => (
                ErrorKind::Certificate,
                transport::certificate_message(&c, endpoint, &cause_text, &env),
            ),
            transport::Cause::Dns | transport::Cause::Refused
                if !self.inner.answered.load(Ordering::Relaxed) =>
            {
                (
                    ErrorKind::Unreachable,
                    transport::unreachable_message(&cause, endpoint, &cause_text, &env),
                )
            }
            _ if e.is_connect() => (
                ErrorKind::Transport,
                format!("cannot connect to {endpoint}: {cause_text}"),
            ),
            _ => (ErrorKind::Transport, cause_text),
        }
    }

    /// Defence in depth: a server echoing the token must not put it in an error.
    pub(super) fn scrub(&self, mut err: ClientError) -> ClientError {
        let token = &self.inner.token_text;
        if token.len() >= 4 && err.message.contains(token.as_str()) {
            err.message = err.message.replace(token.as_str(), "<redacted>");
        }
        err
    }
}

/// What the server answered to one attempt.
pub(super) struct Answer {
    status: u16,
    /// `Retry-After`, when the server sent a readable one.
    retry_after: Option<Duration>,
    /// `x-trace-id`, which names the request in the server's logs.
    trace_id: Option<String>,
    body: Vec<u8>,
}

impl Answer {
    /// The status, the headers the retry loop and errors use, and the whole body of `resp`.
    async fn read(resp: reqwest::Response) -> Result<Answer, reqwest::Error> {
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok());
        let retry_after = header(RETRY_AFTER.as_str())
            .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
        let trace_id = header("x-trace-id").map(str::to_string);
        let body = read_body(resp).await?;
        Ok(Answer {
            status,
            retry_after,
            trace_id,
            body,
        })
    }
}

/// The path and query of `url`, as the request log shows them.
fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// A transport error as one line: what happened and its causes, without the URL (the operation
/// already names the object).
pub(super) fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    let mut parts: Vec<String> = Vec::new();
    if e.is_timeout() {
        parts.push(format!(
            "no response within {} (request timeout)",
            crate::duration::format_go_duration(timeout)
        ));
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    parts.join(": ")
}
