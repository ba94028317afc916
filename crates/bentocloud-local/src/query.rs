//! The deployment list query: the `q` grammar (`label:k=v`, `is:dev`, `not:dev`, `status:X`,
//! `bento:repo[:version]`, `cluster:X`, bare words), `search`, and paging with a stable order.
//! Pure functions over a small view of each deployment, so they are tested without HTTP.

use crate::api::LabelItem;

/// What a filter needs to know about one deployment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Candidate {
    pub name: String,
    pub cluster: String,
    pub labels: Vec<LabelItem>,
    pub status: String,
    pub dev: bool,
    pub bento_repo: String,
    pub bento_version: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// A parsed `q` plus `search` and `cluster`; every condition must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub labels: Vec<(String, String)>,
    pub dev: Option<bool>,
    pub statuses: Vec<String>,
    pub bentos: Vec<(String, Option<String>)>,
    pub clusters: Vec<String>,
    pub keywords: Vec<String>,
    pub search: Option<String>,
}

impl Filter {
    /// Parses `q`. Repeated keys accumulate: labels must all match, the other keys match any
    /// of their values. `sort:` and `creator:` are accepted and ignored (one user per token).
    pub fn parse(q: &str) -> Result<Self, String> {
        let mut f = Filter::default();
        for tok in q.split_whitespace() {
            let Some((key, value)) = tok.split_once(':') else {
                f.keywords.push(tok.to_string());
                continue;
            };
            match key {
                "label" => {
                    let (k, v) = value.split_once('=').unwrap_or((value, ""));
                    if k.is_empty() {
                        return Err(format!("query token {tok:?}: use label:key=value"));
                    }
                    f.labels.push((k.to_string(), v.to_string()));
                }
                "is" | "not" => {
                    if value != "dev" {
                        return Err(format!(
                            "query token {tok:?}: only is:dev and not:dev are supported"
                        ));
                    }
                    f.dev = Some(key == "is");
                }
                "status" => f.statuses.push(value.to_string()),
                "bento" | "bento_repository" => {
                    let (repo, ver) = match value.split_once(':') {
                        Some((r, v)) if key == "bento" => (r, Some(v.to_string())),
                        _ => (value, None),
                    };
                    f.bentos.push((repo.to_string(), ver));
                }
                "cluster" => f.clusters.push(value.to_string()),
                "sort" | "creator" => {}
                _ => {
                    return Err(format!(
                        "query token {tok:?}: unknown key {key:?}; use label:, is:, not:, status:, bento:, cluster: or a bare word"
                    ))
                }
            }
        }
        Ok(f)
    }

    pub fn matches(&self, c: &Candidate) -> bool {
        let labels_ok = self
            .labels
            .iter()
            .all(|(k, v)| c.labels.iter().any(|l| &l.key == k && &l.value == v));
        let dev_ok = self.dev.map(|d| d == c.dev).unwrap_or(true);
        let status_ok = self.statuses.is_empty() || self.statuses.iter().any(|s| s == &c.status);
        let bento_ok = self.bentos.is_empty()
            || self.bentos.iter().any(|(r, v)| {
                r == &c.bento_repo && v.as_ref().map(|v| v == &c.bento_version).unwrap_or(true)
            });
        let cluster_ok = self.clusters.is_empty() || self.clusters.iter().any(|x| x == &c.cluster);
        let kw_ok = self.keywords.iter().all(|k| c.name.contains(k.as_str()));
        let search_ok = self
            .search
            .as_ref()
            .map(|s| c.name.contains(s.as_str()))
            .unwrap_or(true);
        labels_ok && dev_ok && status_ok && bento_ok && cluster_ok && kw_ok && search_ok
    }
}

/// Newest first; ties by name. Returns `(total, page)` where `page` are indices into `items`.
pub fn select(
    items: &[Candidate],
    filter: &Filter,
    start: usize,
    count: usize,
) -> (usize, Vec<usize>) {
    let mut idx: Vec<usize> = (0..items.len())
        .filter(|&i| filter.matches(&items[i]))
        .collect();
    idx.sort_by(|&a, &b| {
        items[b]
            .created_at
            .cmp(&items[a].created_at)
            .then_with(|| items[a].name.cmp(&items[b].name))
            .then_with(|| items[a].cluster.cmp(&items[b].cluster))
    });
    let total = idx.len();
    let page = idx.into_iter().skip(start).take(count).collect();
    (total, page)
}

/// Parses an optional non-negative integer query parameter (`""` means absent).
pub fn uint_param(name: &str, value: Option<&str>, default: usize) -> Result<usize, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("query parameter {name}={v:?} is not a non-negative integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(name: &str, cluster: &str, labels: &[(&str, &str)], t: i64) -> Candidate {
        Candidate {
            name: name.into(),
            cluster: cluster.into(),
            labels: labels
                .iter()
                .map(|(k, v)| LabelItem {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            status: "running".into(),
            dev: false,
            bento_repo: "iris".into(),
            bento_version: "v1".into(),
            created_at: t,
        }
    }

    #[test]
    fn grammar_and_matching() {
        let items = vec![
            cand("alpha", "e", &[("team", "ml"), ("env", "prod")], 1),
            cand("beta", "w", &[("team", "ml")], 2),
            cand("gamma", "e", &[], 2),
        ];
        let f = Filter::parse("label:team=ml label:env=prod").expect("parse");
        assert_eq!(select(&items, &f, 0, 20), (1, vec![0]));
        let f = Filter::parse("label:team=ml").expect("parse");
        assert_eq!(select(&items, &f, 0, 20), (2, vec![1, 0]));
        let f = Filter::parse("cluster:e a").expect("parse");
        assert_eq!(select(&items, &f, 0, 20), (2, vec![2, 0]));
        let f = Filter::parse("is:dev").expect("parse");
        assert_eq!(select(&items, &f, 0, 20).0, 0);
        let f = Filter::parse("not:dev bento:iris:v1 status:running").expect("parse");
        assert_eq!(select(&items, &f, 0, 20).0, 3);
        let f = Filter::parse("bento:iris:v2").expect("parse");
        assert_eq!(select(&items, &f, 0, 20).0, 0);
        assert!(Filter::parse("colour:red").is_err());
        assert!(Filter::parse("is:prod").is_err());
    }

    #[test]
    fn paging_is_stable_newest_first_ties_by_name() {
        let items: Vec<Candidate> = (0..5)
            .map(|i| cand(&format!("d{i}"), "e", &[], i64::from(i / 2)))
            .collect();
        let all = Filter::default();
        let (total, page) = select(&items, &all, 0, 100);
        assert_eq!(total, 5);
        assert_eq!(page, vec![4, 2, 3, 0, 1]);
        assert_eq!(select(&items, &all, 1, 2), (5, vec![2, 3]));
        assert_eq!(select(&items, &all, 9, 2), (5, vec![]));
        let f = Filter {
            search: Some("3".into()),
            ..Default::default()
        };
        assert_eq!(select(&items, &f, 0, 20), (1, vec![3]));
    }

    #[test]
    fn uint_params() {
        assert_eq!(uint_param("count", None, 20), Ok(20));
        assert_eq!(uint_param("count", Some(""), 20), Ok(20));
        assert_eq!(uint_param("count", Some("10000"), 20), Ok(10000));
        assert!(uint_param("count", Some("-1"), 20).is_err());
    }
}
