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
    if name.is_empty() {
        return Err("the name is empty: give a name such as \"sentiment-api\"".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "the name is {} characters long: use at most {MAX_NAME_LEN}",
            name.len()
        ));
    }
    dns_label(name).map_err(|why| format!("{why}; use lowercase letters, digits and '-', starting and ending with a letter or digit (e.g. \"sentiment-api\")"))
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

/// Bento tags: `repo:version` or `repo` (latest). Both parts non-empty, no spaces.
pub fn bento_tag(tag: &str) -> Result<(String, Option<String>), String> {
    let fix = "use \"repository:version\", e.g. \"iris_classifier:v2\"";
    if tag.trim().is_empty() {
        return Err(format!("the bento is empty: {fix}"));
    }
    if tag.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("bento {tag:?} contains a space or '/': {fix}"));
    }
    match tag.split_once(':') {
        None => Ok((tag.to_string(), None)),
        Some((repo, ver)) if !repo.is_empty() && !ver.is_empty() && !ver.contains(':') => {
            if ver == "latest" {
                Ok((repo.to_string(), None))
            } else {
                Ok((repo.to_string(), Some(ver.to_string())))
            }
        }
        Some(_) => Err(format!("bento {tag:?} is malformed: {fix}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
