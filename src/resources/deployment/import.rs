//! Import IDs of `bentocloud_deployment`: `cluster/name`, or `name` in the default cluster.

/// `cluster/name`, or `name` in the provider's default cluster (or the organisation's default
/// cluster, `""`, when the provider sets none).
pub fn parse_import_id(
    id: &str,
    default_cluster: Option<&str>,
) -> Result<(String, String), String> {
    let expected = "Expected `cluster/name` (e.g. `local-east/iris`) or `name` (in the provider's default cluster).";
    let (cluster, name) = match id.split('/').collect::<Vec<_>>().as_slice() {
        [name] => (default_cluster.unwrap_or("").to_string(), name.to_string()),
        [cluster, name] if !cluster.is_empty() => (cluster.to_string(), name.to_string()),
        _ => return Err(format!("{id:?} is not a deployment ID. {expected}")),
    };
    crate::rules::deployment_name(&name)
        .map_err(|why| format!("{id:?} is not a deployment ID: {why}. {expected}"))?;
    Ok((cluster, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_ids_accept_cluster_slash_name_and_bare_name() {
        assert_eq!(
            parse_import_id("local-west/iris", None),
            Ok(("local-west".into(), "iris".into()))
        );
        assert_eq!(
            parse_import_id("iris", Some("c1")),
            Ok(("c1".into(), "iris".into()))
        );
        assert_eq!(
            parse_import_id("iris", None),
            Ok(("".into(), "iris".into()))
        );
        for bad in ["", "a/b/c", "/iris", "c/Bad_Name", "c/"] {
            let e = parse_import_id(bad, None).expect_err(bad);
            assert!(e.contains("cluster/name"), "{e}");
        }
    }
}
