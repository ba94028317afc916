//! A probe request to a deployment's endpoint (progressive delivery's analysis): one `GET`,
//! no retries, its status code or why it failed. Through the same HTTP client as the API
//! calls (same TLS trust and proxy); the API token goes as `Authorization: Bearer` only when
//! asked (a deployment with `access_authorization`, as BentoML's docs call a protected
//! endpoint).

use super::*;

/// Where a probe is routed: a header or a query parameter naming the canary version.
pub enum ProbeRoute<'a> {
    Header { name: &'a str, value: &'a str },
    Query { name: &'a str, value: &'a str },
}

impl Client {
    /// `GET url` routed by `route`; the status code, or the transport error (the token is
    /// never in it).
    pub async fn probe(
        &self,
        url: &str,
        route: &ProbeRoute<'_>,
        bearer: bool,
        timeout: Duration,
    ) -> Result<u16, String> {
        let mut url = Url::parse(url).map_err(|e| format!("invalid probe URL {url:?}: {e}"))?;
        let mut req = match route {
            ProbeRoute::Query { name, value } => {
                url.query_pairs_mut().append_pair(name, value);
                self.inner.http.get(url)
            }
            ProbeRoute::Header { name, value } => self.inner.http.get(url).header(*name, *value),
        };
        if bearer {
            req = req.bearer_auth(&self.inner.token_text);
        }
        match req.timeout(timeout).send().await {
            Ok(resp) => Ok(resp.status().as_u16()),
            Err(e) => {
                let text = e.to_string();
                let token = &self.inner.token_text;
                Err(if token.is_empty() {
                    text
                } else {
                    text.replace(token.as_str(), "<redacted>")
                })
            }
        }
    }
}
