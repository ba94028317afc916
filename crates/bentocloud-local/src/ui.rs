//! The web page at `/`: one self-contained HTML document (inline CSS and vanilla JS, no
//! external assets, no build step) showing the fleet across clusters and each rollout live.
//!
//! The page itself is public (it holds no data); it reads the API token from the URL fragment
//! (`/#token=...`, which browsers never send to the server) or from an input box, keeps it in
//! `localStorage`, and polls `GET /api/v2/deployments` with `X-YATAI-API-TOKEN` every 500 ms
//! like any other API client.
//!
//! Working from it: the table filters by cluster, status, labels (`key=value` or `key` terms,
//! all must hold) and name substring, all applied in the page and kept in the query string
//! (`?cluster=&status=&label=&name=&selected=`) so a link reopens the same view; names sort
//! naturally (`perf-2` before `perf-10`); `#counts` counts the whole fleet's deployments by
//! status per cluster (a click on a count filters by it). A click on a row selects the
//! deployment: its revisions (`GET .../deployments/{name}/revisions`) and the timeline of its
//! last rollout (`GET .../deployments/{name}/timeline`, recorded by the reconciler, see
//! [`super::timeline`]) are fetched with every poll and drawn as an inline SVG of ready
//! replicas per revision over time, and, for a deployment that had a canary, the weight of each
//! canary version at every change of its routing (the timeline's `routing`).
//!
//! Stable hooks for tests: `tr[data-deployment="cluster/name"]` with `data-status`,
//! `data-phase`, `data-bento`, `data-ready`, `data-desired`, `data-updated`, `data-rolling`,
//! `data-labels`, `data-selected`; the event log is `#events li.event[data-kind]`; the counts
//! are `#counts tbody tr[data-cluster] td[data-status][data-count]` (cluster and status `""`:
//! all); the filters are `#f-cluster`, `#f-status`, `#f-label`, `#f-name`, `#f-clear` and
//! `#shown[data-shown][data-total]`; the selection is `#detail-panel[data-deployment]
//! [data-loaded]` with `#revisions tr.revision[data-uid][data-status][data-serving]` and
//! `#timeline polyline.series[data-revision][data-role][data-values]` (ready replicas at each
//! recorded sample); the canary routing is `#routing-section` (hidden without routing changes)
//! with `#routing[data-changes]`, `#routing polyline.weight[data-version][data-weights]
//! [data-times][data-route-types]` (the version's weight in percent at each change, times in ms
//! from the first) and `#routing line.routing-mark[data-at][data-route-type][data-weights]`.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The page, embedded at compile time.
pub const PAGE: &str = include_str!("ui.html");

/// Allows only inline script and style and same-origin fetches: the page loads nothing else.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

/// `GET /`: the page (no token needed).
pub async fn index() -> Response {
    let mut resp = axum::response::Html(PAGE).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// The URL that opens the page already logged in: `ENDPOINT/#token=TOKEN` (the token in the
/// fragment stays in the browser).
pub fn url(endpoint: &str, token: &str) -> String {
    let t: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    format!("{}/#token={t}", endpoint.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_puts_the_token_in_the_fragment() {
        assert_eq!(
            url("http://127.0.0.1:4780", "abc"),
            "http://127.0.0.1:4780/#token=abc"
        );
        assert_eq!(url("http://h:1/", "a b&c"), "http://h:1/#token=a+b%26c");
    }

    #[test]
    fn page_is_self_contained() {
        assert!(PAGE.starts_with("<!doctype html>"));
        for external in [
            "<script src",
            "<link",
            "@import",
            "url(http",
            "//cdn",
            "https://",
        ] {
            assert!(
                !PAGE.contains(external),
                "the page must not load {external}"
            );
        }
        assert!(PAGE.contains("/api/local/v1/deployments?all=true&count=1000"));
        assert!(PAGE.contains("\"/revisions\"") && PAGE.contains("\"/timeline\""));
        assert!(PAGE.contains("X-YATAI-API-TOKEN"));
        // The canary routing chart reads the timeline's `routing`.
        assert!(PAGE.contains("tl.routing") && PAGE.contains("id=\"routing\""));
    }
}
