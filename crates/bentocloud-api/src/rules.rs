//! Naming and value rules of the BentoCloud API, written once and applied on both sides: the
//! provider checks them at plan time (so a bad name fails `terraform plan`, not `apply`), and
//! `bentocloud-local` enforces the same rules server-side with a 400.
//!
//! The real API does not publish these rules. BentoCloud runs deployments on Kubernetes, so we
//! take the Kubernetes ones (DNS-1123 label for names, label key/value syntax, POSIX env var
//! names): a name that would break a Kubernetes object is the likeliest to be rejected there.
//! Each function returns `Err(fix)` with a sentence that says what is wrong and how to fix it.

/// Longest deployment name accepted (a DNS-1123 label).
pub const MAX_NAME_LEN: usize = 63;

/// Deployment names: DNS-1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters).
pub fn deployment_name(name: &str) -> Result<(), String> {
    k8s_name(name, "sentiment-api")
}

/// Secret names: the same DNS-1123 label as deployments (a secret becomes a Kubernetes
/// object too; the official CLI's examples all fit it).
pub fn secret_name(name: &str) -> Result<(), String> {
    k8s_name(name, "db-credentials")
}

/// A DNS-1123 label; `example` is shown in the fix.
fn k8s_name(name: &str, example: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!(
            "the name is empty: give a name such as {example:?}"
        ));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name is {} characters long: use at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    dns_label(name).map_err(|why| format!("{why}; use lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. {example:?})"))
}

fn dns_label(s: &str) -> Result<(), String> {
    let bytes = s.as_bytes();
    if let Some(bad) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!("{s:?} contains {bad:?}"));
    }
    if bytes.first() == Some(&b'-') || bytes.last() == Some(&b'-') {
        return Err(format!("{s:?} starts or ends with '-'"));
    }
    Ok(())
}

fn k8s_name_part(s: &str, what: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!("{what} {s:?} must be 1 to 63 characters long"));
    }
    let ok_inner = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.';
    let first = s.chars().next().unwrap_or('-');
    let last = s.chars().last().unwrap_or('-');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() || !s.chars().all(ok_inner) {
        return Err(format!(
            "{what} {s:?} must use letters, digits, '-', '_' and '.', and start and end with a letter or digit"
        ));
    }
    Ok(())
}

/// Label keys: an optional DNS prefix and '/', then a name of 1-63 characters.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if p.is_empty()
            || p.len() > 253
            || p.split('.')
                .any(|part| part.is_empty() || dns_label(part).is_err())
        {
            return Err(format!(
                "label key {key:?} has an invalid prefix {p:?}: use a lowercase DNS name such as \"example.com/team\""
            ));
        }
    }
    k8s_name_part(name, "label key")
}

/// Label values: empty, or 1-63 characters of the label-name alphabet.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    k8s_name_part(value, "label value")
}

/// Environment variable names: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn env_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .map(|c| c.is_ascii_alphabetic() || c == '_')
        .unwrap_or(false);
    if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!(
            "environment variable name {name:?} is invalid: use letters, digits and '_', not starting with a digit (e.g. \"LOG_LEVEL\")"
        ));
    }
    Ok(())
}

/// Scaling bounds: `0 <= min <= max`, `max >= 1` (the official client's `_fix_scaling`).
pub fn scaling(min: Option<i64>, max: Option<i64>) -> Result<(), String> {
    if let Some(min) = min {
        if min < 0 {
            return Err(format!(
                "min_replicas is {min}: replicas cannot be negative; use 0 to scale to zero when idle"
            ));
        }
    }
    if let Some(max) = max {
        if max < 1 {
            return Err(format!("max_replicas is {max}: it must be at least 1"));
        }
    }
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return Err(format!(
                "min_replicas ({min}) is greater than max_replicas ({max}): raise max_replicas or lower min_replicas"
            ));
        }
    }
    Ok(())
}

/// Rollout strategy names.
pub fn deployment_strategy(s: &str) -> Result<(), String> {
    use crate::api::Strategy;
    match Strategy::parse(s) {
        Some(_) => Ok(()),
        None => Err(format!(
            "unknown deployment strategy {s:?}: use one of {}",
            Strategy::ALL.map(Strategy::as_str).join(", ")
        )),
    }
}

/// A bento tag: `repository:version`, or `repository` (or `repository:latest`), which names
/// no version: the repository's newest. The one place tags are parsed, by the provider and
/// by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BentoTag {
    pub repo: String,
    /// `None`: the newest version of the repository.
    pub version: Option<String>,
}

impl BentoTag {
    /// Parses and checks a tag a user or a request gave: both parts non-empty, no spaces or
    /// `/`; `latest` as the version means none.
    pub fn parse(tag: &str) -> Result<BentoTag, String> {
        let fix = "use \"repository:version\", e.g. \"iris_classifier:v2\"";
        if tag.trim().is_empty() {
            return Err(format!("the bento is empty: {fix}"));
        }
        if tag.chars().any(|c| c.is_whitespace() || c == '/') {
            return Err(format!("bento {tag:?} contains a space or '/': {fix}"));
        }
        match tag.split_once(':') {
            None => Ok(BentoTag::of(tag)),
            Some((repo, ver)) if !repo.is_empty() && !ver.is_empty() && !ver.contains(':') => {
                Ok(BentoTag::of(tag))
            }
            Some(_) => Err(format!("bento {tag:?} is malformed: {fix}")),
        }
    }

    /// Reads a tag without checking it (one a server reported, or state holds): the part
    /// before the first `:` is the repository; an empty version or `latest` means none.
    pub fn of(tag: &str) -> BentoTag {
        let (repo, version) = tag.split_once(':').unwrap_or((tag, ""));
        BentoTag {
            repo: repo.to_string(),
            version: (!version.is_empty() && version != "latest").then(|| version.to_string()),
        }
    }

    /// Whether it names a version (not the repository's newest).
    pub fn names_version(&self) -> bool {
        self.version.is_some()
    }

    /// Whether `actual`, a deployed `repository:version`, is what this tag asks for: that
    /// version, or any version of the repository when it names none.
    pub fn accepts(&self, actual: &BentoTag) -> bool {
        self.repo == actual.repo && (self.version.is_none() || self.version == actual.version)
    }
}

impl std::fmt::Display for BentoTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.version {
            Some(v) => write!(f, "{}:{v}", self.repo),
            None => write!(f, "{}", self.repo),
        }
    }
}

/// Bento tags: `repo:version` or `repo` (latest), as `(repo, version)`; see
/// [`BentoTag::parse`].
pub fn bento_tag(tag: &str) -> Result<(String, Option<String>), String> {
    BentoTag::parse(tag).map(|t| (t.repo, t.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bento_tags_parse_strictly_and_read_leniently() {
        let t = BentoTag::parse("iris:v2").expect("valid");
        assert_eq!(
            (t.repo.as_str(), t.version.as_deref()),
            ("iris", Some("v2"))
        );
        assert_eq!(t.to_string(), "iris:v2");
        assert!(t.names_version());
        for newest in ["iris", "iris:latest"] {
            let t = BentoTag::parse(newest).expect("valid");
            assert_eq!(
                (t.repo.as_str(), t.version.clone()),
                ("iris", None),
                "{newest}"
            );
            assert_eq!(t.to_string(), "iris");
            assert!(!t.names_version());
        }
        for bad in ["", " ", "a b", "org/iris", ":v1", "iris:", "iris:v1:x"] {
            assert!(BentoTag::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(BentoTag::of("iris:"), BentoTag::of("iris"));
        assert_eq!(BentoTag::of("iris:v1").version.as_deref(), Some("v1"));
        let v1 = BentoTag::of("iris:v1");
        assert!(BentoTag::of("iris").accepts(&v1));
        assert!(BentoTag::of("iris:latest").accepts(&v1));
        assert!(BentoTag::of("iris:v1").accepts(&v1));
        assert!(!BentoTag::of("iris:v2").accepts(&v1));
        assert!(!BentoTag::of("other").accepts(&v1));
    }

    #[test]
    fn deployment_names_follow_dns_labels() {
        assert!(deployment_name("iris-1").is_ok());
        assert!(deployment_name("a").is_ok());
        for bad in ["", "Iris", "-a", "a-", "a_b", "a.b", &"x".repeat(64)] {
            let err = deployment_name(bad).expect_err(bad);
            assert!(err.contains("use") || err.contains("give"), "{err}");
        }
        assert!(deployment_name(&"x".repeat(63)).is_ok());
    }

    #[test]
    fn secret_names_follow_the_same_labels_with_their_own_example() {
        assert!(secret_name("db-credentials").is_ok());
        for bad in ["", "Db", "a_b", &"x".repeat(64)] {
            assert_eq!(
                secret_name(bad).is_err(),
                deployment_name(bad).is_err(),
                "{bad:?}"
            );
        }
        let err = secret_name("").expect_err("empty");
        assert!(err.contains("db-credentials"), "{err}");
        assert!(secret_name("A")
            .expect_err("upper")
            .contains("db-credentials"));
    }

    #[test]
    fn label_keys_accept_prefixes_and_reject_garbage() {
        assert!(label_key("team").is_ok());
        assert!(label_key("example.com/team").is_ok());
        assert!(label_key("a_b.c-d").is_ok());
        for bad in ["", "-x", "x-", "a b", "/x", "Ex ample/x", "a/b/c!"] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
        assert!(label_value("").is_ok());
        assert!(label_value("prod").is_ok());
        assert!(label_value("has space").is_err());
    }

    #[test]
    fn label_names_and_values_are_1_to_63_characters() {
        let longest = "a".repeat(63);
        let too_long = "a".repeat(64);
        assert!(label_key(&longest).is_ok());
        assert!(label_value(&longest).is_ok());
        assert!(label_key(&format!("example.com/{longest}")).is_ok());
        for bad in [
            label_key(&too_long),
            label_value(&too_long),
            label_key(&format!("example.com/{too_long}")),
        ] {
            let err = bad.expect_err("64 characters");
            assert!(err.contains("must be 1 to 63 characters long"), "{err}");
        }
    }

    #[test]
    fn label_key_prefixes_are_dns_names_of_at_most_253_characters() {
        // Four labels (63 + 63 + 63 + 61) and three dots: exactly 253 characters.
        let prefix = |last: usize| {
            [
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(63),
                "d".repeat(last),
            ]
            .join(".")
        };
        assert_eq!(prefix(61).len(), 253);
        assert!(label_key(&format!("{}/team", prefix(61))).is_ok());
        let err = label_key(&format!("{}/team", prefix(62))).expect_err("254 characters");
        assert!(err.contains("invalid prefix"), "{err}");
        // Every dot-separated part is a non-empty DNS label.
        for bad in [
            "example..com/team",
            ".example.com/team",
            "example.com./team",
            "Example.com/team",
            "-example.com/team",
        ] {
            let err = label_key(bad).expect_err(bad);
            assert!(err.contains("invalid prefix"), "{bad}: {err}");
        }
        assert!(label_key("a.b-c.d1/team").is_ok());
    }

    #[test]
    fn env_names_are_posix() {
        assert!(env_name("LOG_LEVEL").is_ok());
        assert!(env_name("_x1").is_ok());
        for bad in ["", "1A", "A-B", "A B"] {
            assert!(env_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scaling_rules_match_the_official_client() {
        assert!(scaling(Some(0), Some(1)).is_ok());
        assert!(scaling(Some(2), Some(2)).is_ok());
        assert!(scaling(Some(3), Some(2)).unwrap_err().contains("greater"));
        assert!(scaling(Some(-1), None).unwrap_err().contains("negative"));
        assert!(scaling(None, Some(0)).is_err());
    }

    #[test]
    fn strategies_and_bento_tags() {
        assert!(deployment_strategy("RollingUpdate").is_ok());
        assert_eq!(
            deployment_strategy("rolling").unwrap_err(),
            "unknown deployment strategy \"rolling\": use one of RollingUpdate, Recreate, RampedSlowRollout, BestEffortControlledRollout"
        );
        assert_eq!(
            bento_tag("iris:v1").expect("ok"),
            ("iris".into(), Some("v1".into()))
        );
        assert_eq!(bento_tag("iris").expect("ok"), ("iris".into(), None));
        assert_eq!(bento_tag("iris:latest").expect("ok"), ("iris".into(), None));
        for bad in ["", " ", "a:", ":b", "a:b:c", "a b:c"] {
            assert!(bento_tag(bad).is_err(), "{bad:?}");
        }
    }
}
