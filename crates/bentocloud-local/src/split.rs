//! The traffic split of a canary at a deployment's endpoint: which target (`main` or a canary
//! version) one request goes to. Pure: the endpoint ([`super::fleet`]) draws the random number
//! and says which targets have a ready replica.
//!
//! Rules (API doc §3.2, `canary: {route_type, route_by, versions: {name: {weight, ...}}}`):
//! - `route_type` `random` or null: a request goes to version `v` with probability
//!   `weight(v) / 100` and to `main` with the rest. Weights are integers 0..=100 adding up to at
//!   most 100 (checked when the canary is written, `deployments::canary_row`); a draw `roll`
//!   uniform in `0..100` picks the first version, in name order, whose cumulative weight exceeds
//!   it, so each version gets exactly its share.
//! - `header`: the request header named `route_by` (case-insensitive, like every header name)
//!   selects the version whose name equals its value; a missing header or any other value goes
//!   to `main`. Weights play no part.
//! - `query`: the same with the query parameter named `route_by` (its first occurrence,
//!   percent-decoded).
//! - Fallback: a chosen version with no ready replica sends the request to `main` instead, so a
//!   canary that is still starting (or crashed) never fails a request that `main` can answer.

use axum::http::HeaderMap;

use super::store::CanaryRow;

/// How a canary picks the version of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteBy {
    Random,
    /// The name of the header.
    Header(String),
    /// The name of the query parameter.
    Query(String),
}

/// A canary's routing, as the endpoint applies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub by: RouteBy,
    /// Every version with its weight (percent), in name order.
    pub weights: Vec<(String, u32)>,
}

impl Split {
    /// The split of a stored canary; `None` when it has no version (all traffic to `main`).
    pub fn from_canary(c: &CanaryRow) -> Option<Self> {
        if c.versions.is_empty() {
            return None;
        }
        let by_name = || c.route_by.clone().unwrap_or_default();
        let by = match c.route_type.as_deref() {
            Some("header") => RouteBy::Header(by_name()),
            Some("query") => RouteBy::Query(by_name()),
            _ => RouteBy::Random,
        };
        let weights = c
            .versions
            .iter()
            .map(|(name, v)| {
                (
                    name.clone(),
                    u32::try_from(v.weight.clamp(0, 100)).unwrap_or(0),
                )
            })
            .collect();
        Some(Self { by, weights })
    }

    /// The version a request asks for before the fallback: `None` means `main`. `roll` is
    /// uniform in `0..100` (used by random routing only).
    pub fn choose(&self, headers: &HeaderMap, query: Option<&str>, roll: u32) -> Option<&str> {
        let named = |value: &str| {
            self.weights
                .iter()
                .find(|(name, _)| name == value)
                .map(|(name, _)| name.as_str())
        };
        match &self.by {
            RouteBy::Random => {
                let mut upto = 0u32;
                for (name, w) in &self.weights {
                    upto = upto.saturating_add(*w);
                    if roll < upto {
                        return Some(name);
                    }
                }
                None
            }
            RouteBy::Header(h) => {
                let v = headers.get(h.as_str())?.to_str().ok()?;
                named(v.trim())
            }
            RouteBy::Query(q) => {
                let (_, v) =
                    url::form_urlencoded::parse(query?.as_bytes()).find(|(k, _)| k == q)?;
                named(&v)
            }
        }
    }
}

/// The target of one request: the version [`Split::choose`] picks if `has_ready(version)`,
/// else `None` (`main`). No split: always `main`.
pub fn pick<'a>(
    split: Option<&'a Split>,
    headers: &HeaderMap,
    query: Option<&str>,
    roll: u32,
    has_ready: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    split?
        .choose(headers, query, roll)
        .filter(|version| has_ready(version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::CanaryVersionRow;
    use axum::http::HeaderValue;

    fn canary(route_type: Option<&str>, route_by: Option<&str>, w: &[(&str, i64)]) -> CanaryRow {
        CanaryRow {
            route_type: route_type.map(str::to_string),
            route_by: route_by.map(str::to_string),
            versions: w
                .iter()
                .map(|(n, weight)| {
                    (
                        n.to_string(),
                        CanaryVersionRow {
                            weight: *weight,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
        }
    }

    fn split(c: CanaryRow) -> Split {
        Split::from_canary(&c).expect("split")
    }

    fn headers(kv: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in kv {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    /// How many of the 100 equally likely draws go to each target.
    fn shares(s: &Split) -> std::collections::BTreeMap<String, u32> {
        let mut out = std::collections::BTreeMap::new();
        for roll in 0..100 {
            let t = s.choose(&HeaderMap::new(), None, roll).unwrap_or("main");
            *out.entry(t.to_string()).or_insert(0) += 1;
        }
        out
    }

    #[test]
    fn random_gives_each_version_exactly_its_weight() {
        let s = split(canary(None, None, &[("v2", 30)]));
        assert_eq!(s.by, RouteBy::Random);
        assert_eq!(
            shares(&s),
            [("main".to_string(), 70), ("v2".to_string(), 30)].into()
        );
        let s = split(canary(
            Some("random"),
            None,
            &[("b", 25), ("a", 15), ("z", 0)],
        ));
        assert_eq!(
            shares(&s),
            [
                ("a".to_string(), 15),
                ("b".to_string(), 25),
                ("main".to_string(), 60)
            ]
            .into()
        );
        // Weights adding up to 100 leave nothing to main; 0 sends nothing to the version.
        let s = split(canary(None, None, &[("v2", 100)]));
        assert_eq!(shares(&s), [("v2".to_string(), 100)].into());
        let s = split(canary(None, None, &[("v2", 0)]));
        assert_eq!(shares(&s), [("main".to_string(), 100)].into());
        // Random routing ignores headers and query parameters.
        let h = headers(&[("x-canary", "v2")]);
        assert_eq!(s.choose(&h, Some("x-canary=v2"), 5), None);
    }

    #[test]
    fn header_selects_the_version_by_name() {
        let s = split(canary(
            Some("header"),
            Some("X-Canary"),
            &[("v2", 0), ("v3", 50)],
        ));
        // Case-insensitive header name; the weight does not matter.
        assert_eq!(
            s.choose(&headers(&[("x-canary", "v2")]), None, 99),
            Some("v2")
        );
        assert_eq!(
            s.choose(&headers(&[("x-canary", "v3")]), None, 0),
            Some("v3")
        );
        for other in [
            headers(&[]),
            headers(&[("x-canary", "V2")]),
            headers(&[("x-canary", "main")]),
            headers(&[("x-other", "v2")]),
        ] {
            for roll in [0, 99] {
                assert_eq!(s.choose(&other, None, roll), None, "{other:?}");
            }
        }
        // The query string plays no part.
        assert_eq!(s.choose(&headers(&[]), Some("X-Canary=v2"), 0), None);
    }

    #[test]
    fn query_selects_the_version_by_name() {
        let s = split(canary(Some("query"), Some("ver"), &[("v2", 10)]));
        assert_eq!(s.choose(&HeaderMap::new(), Some("ver=v2"), 99), Some("v2"));
        assert_eq!(
            s.choose(&HeaderMap::new(), Some("a=1&ver=v2&ver=x"), 99),
            Some("v2"),
            "first occurrence"
        );
        assert_eq!(
            s.choose(&HeaderMap::new(), Some("ver=%76%32"), 99),
            Some("v2"),
            "percent-decoded"
        );
        for q in [None, Some(""), Some("ver=v3"), Some("Ver=v2"), Some("x=v2")] {
            assert_eq!(s.choose(&HeaderMap::new(), q, 0), None, "{q:?}");
        }
        assert_eq!(s.choose(&headers(&[("ver", "v2")]), None, 0), None);
    }

    #[test]
    fn no_ready_replica_falls_back_to_main() {
        let s = split(canary(None, None, &[("v2", 100)]));
        let h = HeaderMap::new();
        assert_eq!(pick(Some(&s), &h, None, 0, |_| true), Some("v2"));
        assert_eq!(pick(Some(&s), &h, None, 0, |_| false), None);
        let s = split(canary(
            Some("header"),
            Some("x-canary"),
            &[("v2", 0), ("v3", 0)],
        ));
        let h = headers(&[("x-canary", "v3")]);
        assert_eq!(pick(Some(&s), &h, None, 0, |v| v == "v3"), Some("v3"));
        assert_eq!(pick(Some(&s), &h, None, 0, |v| v == "v2"), None);
        // No canary, or one without versions: main.
        assert_eq!(pick(None, &h, None, 0, |_| true), None);
        assert_eq!(Split::from_canary(&canary(None, None, &[])), None);
    }
}
