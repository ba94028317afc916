//! Registry documentation generated from the provider's schema (tfplugindocs cannot be
//! installed here, so this renders the same layout): `docs/index.md`,
//! `docs/resources/<name>.md`, `docs/data-sources/<name>.md`, each with its example from
//! `examples/` in the Registry layout. Guides under `docs/guides/` are written by hand and left
//! alone. `bentocloud-docs` writes the files; a test fails when they differ from the schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tf_provider::schema::{
    Attribute, AttributeConstraint, AttributeType, Block, NestedBlock, Schema,
};

use crate::data_sources::{deployment_schema, deployments_schema};
use crate::provider::provider_schema;
use crate::resources::deployment::model::resource_schema;

/// Human name of an attribute type, as tfplugindocs writes it.
fn type_name(t: &AttributeType) -> String {
    match t {
        AttributeType::String => "String".into(),
        AttributeType::Number => "Number".into(),
        AttributeType::Bool => "Boolean".into(),
        AttributeType::List(inner) => format!("List of {}", type_name(inner)),
        AttributeType::Set(inner) => format!("Set of {}", type_name(inner)),
        AttributeType::Map(inner) => format!("Map of {}", type_name(inner)),
        AttributeType::Object(_) => "Object".into(),
        AttributeType::Tuple(_) => "Tuple".into(),
        _ => "Dynamic".into(),
    }
}

fn object_fields(t: &AttributeType) -> Option<&std::collections::HashMap<String, AttributeType>> {
    match t {
        AttributeType::Object(f) => Some(f),
        AttributeType::List(i) | AttributeType::Set(i) => object_fields(i),
        _ => None,
    }
}

fn section(
    out: &mut String,
    title: &str,
    attrs: &BTreeMap<&String, &Attribute>,
    anchor_prefix: &str,
) {
    if attrs.is_empty() {
        return;
    }
    out.push_str(&format!("### {title}\n\n"));
    for (name, a) in attrs {
        let sensitive = if a.sensitive { ", Sensitive" } else { "" };
        let link = if object_fields(&a.attr_type).is_some() {
            format!(" (see [below for nested schema](#{anchor_prefix}{name}))")
        } else {
            String::new()
        };
        out.push_str(&format!(
            "- `{name}` ({}{sensitive}) {}{link}\n",
            type_name(&a.attr_type),
            a.description.content.trim()
        ));
    }
    out.push('\n');
}

fn render_block(out: &mut String, block: &Block) {
    let attrs: BTreeMap<&String, &Attribute> = block.attributes.iter().collect();
    let pick = |c: &[AttributeConstraint]| -> BTreeMap<&String, &Attribute> {
        attrs
            .iter()
            .filter(|(_, a)| c.contains(&a.constraint))
            .map(|(k, v)| (*k, *v))
            .collect()
    };
    section(
        out,
        "Required",
        &pick(&[AttributeConstraint::Required]),
        "nestedatt--",
    );
    let mut optional = pick(&[
        AttributeConstraint::Optional,
        AttributeConstraint::OptionalComputed,
    ]);
    let blocks: BTreeMap<&String, &NestedBlock> = block.blocks.iter().collect();
    if !optional.is_empty() || !blocks.is_empty() {
        // Blocks are listed with the optional attributes, as tfplugindocs does.
        let mut lines: Vec<(String, String)> = Vec::new();
        for (name, a) in std::mem::take(&mut optional) {
            let sensitive = if a.sensitive { ", Sensitive" } else { "" };
            lines.push((
                name.clone(),
                format!(
                    "- `{name}` ({}{sensitive}) {}\n",
                    type_name(&a.attr_type),
                    a.description.content.trim()
                ),
            ));
        }
        for (name, b) in &blocks {
            let (kind, inner) = match b {
                NestedBlock::Optional(b) => ("Block List, Max: 1", b),
                NestedBlock::Single(b) => ("Block, Required", b),
                NestedBlock::List(b) | NestedBlock::Group(b) => ("Block List", b),
                NestedBlock::Set(b) => ("Block Set", b),
                NestedBlock::Map(b) => ("Block Map", b),
            };
            lines.push((
                (*name).clone(),
                format!(
                    "- `{name}` ({kind}) {} (see [below for nested schema](#nestedblock--{name}))\n",
                    inner.description.content.trim()
                ),
            ));
        }
        lines.sort();
        out.push_str("### Optional\n\n");
        for (_, l) in lines {
            out.push_str(&l);
        }
        out.push('\n');
    }
    section(
        out,
        "Read-Only",
        &pick(&[AttributeConstraint::Computed]),
        "nestedatt--",
    );
    for (name, b) in &blocks {
        let inner = match b {
            NestedBlock::Optional(b)
            | NestedBlock::Single(b)
            | NestedBlock::List(b)
            | NestedBlock::Group(b)
            | NestedBlock::Set(b)
            | NestedBlock::Map(b) => b,
        };
        out.push_str(&format!(
            "<a id=\"nestedblock--{name}\"></a>\n### Nested Schema for `{name}`\n\n"
        ));
        render_block(out, inner);
    }
    for (name, a) in &attrs {
        if let Some(fields) = object_fields(&a.attr_type) {
            render_object(out, name, name, fields);
        }
    }
}

/// The descriptions of the fields of an object attribute named `name`: a deployment's in
/// `deployments`, a service's in `service`.
fn field_descriptions(name: &str) -> std::collections::HashMap<String, Attribute> {
    match name {
        "service" => crate::resources::deployment::model::service_block_schema().attributes,
        "deployments" => deployment_schema().block.attributes,
        "clusters" => crate::data_sources::catalog::cluster_fields(),
        "instance_types" => crate::data_sources::catalog::instance_type_fields(),
        _ => resource_schema().block.attributes,
    }
}

/// The nested schema of object attribute `name` (anchor `nestedatt--{anchor}`), and of the
/// object attributes inside it.
fn render_object(
    out: &mut String,
    anchor: &str,
    name: &str,
    fields: &std::collections::HashMap<String, AttributeType>,
) {
    out.push_str(&format!(
        "<a id=\"nestedatt--{anchor}\"></a>\n### Nested Schema for `{}`\n\nRead-Only:\n\n",
        anchor.replace("--", ".")
    ));
    let descriptions = field_descriptions(name);
    let sorted: BTreeMap<&String, &AttributeType> = fields.iter().collect();
    for (f, t) in &sorted {
        let desc = descriptions
            .get(*f)
            .map(|x| x.description.content.trim().to_string())
            .unwrap_or_default();
        let link = if object_fields(t).is_some() {
            format!(" (see [below for nested schema](#nestedatt--{anchor}--{f}))")
        } else {
            String::new()
        };
        out.push_str(&format!("- `{f}` ({}) {desc}{link}\n", type_name(t)));
    }
    out.push('\n');
    for (f, t) in sorted {
        if let Some(inner) = object_fields(t) {
            render_object(out, &format!("{anchor}--{f}"), f, inner);
        }
    }
}

fn first_sentence(s: &str) -> &str {
    s.split_once(". ")
        .map(|(a, _)| a)
        .unwrap_or(s)
        .trim_end_matches('.')
}

fn example(examples: &Path, rel: &str, lang: &str, title: &str) -> String {
    match std::fs::read_to_string(examples.join(rel)) {
        Ok(text) => format!("## {title}\n\n```{lang}\n{}\n```\n\n", text.trim_end()),
        Err(_) => String::new(),
    }
}

fn page(
    kind: &str,
    type_name: &str,
    schema: &Schema,
    examples: &Path,
    example_rel: &str,
    import_rel: Option<&str>,
) -> String {
    let desc = schema.block.description.content.trim();
    let mut out = format!(
        "---\npage_title: \"{type_name} {kind} - terraform-provider-bentocloud\"\nsubcategory: \"\"\ndescription: |-\n  {}\n---\n\n# {type_name} ({kind})\n\n{desc}\n\n",
        first_sentence(desc)
    );
    out.push_str(&example(
        examples,
        example_rel,
        "terraform",
        "Example Usage",
    ));
    out.push_str("<!-- schema generated by bentocloud-docs (cargo run --bin bentocloud-docs) -->\n## Schema\n\n");
    render_block(&mut out, &schema.block);
    if let Some(rel) = import_rel {
        out.push_str(&example(examples, rel, "shell", "Import"));
    }
    format!("{}\n", out.trim_end())
}

fn index_page(examples: &Path) -> String {
    let schema = provider_schema();
    let mut out = String::from(
        "---\npage_title: \"Provider: BentoCloud\"\ndescription: |-\n  Manage BentoCloud deployments: bentos served behind endpoints, with honest rollouts.\n---\n\n# BentoCloud Provider\n\n",
    );
    out.push_str(schema.block.description.content.trim());
    out.push_str("\n\nCredentials are taken, in this order, from the provider block, from the `BENTO_CLOUD_API_KEY` and `BENTO_CLOUD_API_ENDPOINT` environment variables (the bentoml CLI's own), and from the context saved by `bentoml cloud login` (`$BENTOML_HOME/.yatai.yaml`, context chosen by `BENTOML_CLOUD_CONTEXT`): a user logged in with the bentoml CLI needs no provider configuration.\n\nFor module development and CI without a BentoCloud account, run `bentocloud-local` (see the guide *Developing modules with bentocloud-local*).\n\n");
    out.push_str(&example(
        examples,
        "provider/provider.tf",
        "terraform",
        "Example Usage",
    ));
    out.push_str("<!-- schema generated by bentocloud-docs (cargo run --bin bentocloud-docs) -->\n## Schema\n\n");
    render_block(&mut out, &schema.block);
    format!("{}\n", out.trim_end())
}

/// Every generated page: (path under `docs/`, contents).
pub fn render_all(examples: &Path) -> Vec<(PathBuf, String)> {
    let mut pages = vec![
        (PathBuf::from("index.md"), index_page(examples)),
        (
            PathBuf::from("resources/deployment.md"),
            page(
                "Resource",
                "bentocloud_deployment",
                &resource_schema(),
                examples,
                "resources/bentocloud_deployment/resource.tf",
                Some("resources/bentocloud_deployment/import.sh"),
            ),
        ),
        (
            PathBuf::from("resources/secret.md"),
            page(
                "Resource",
                "bentocloud_secret",
                &crate::resources::secret::model::schema(),
                examples,
                "resources/bentocloud_secret/resource.tf",
                Some("resources/bentocloud_secret/import.sh"),
            ),
        ),
        (
            PathBuf::from("data-sources/deployment.md"),
            page(
                "Data Source",
                "bentocloud_deployment",
                &deployment_schema(),
                examples,
                "data-sources/bentocloud_deployment/data-source.tf",
                None,
            ),
        ),
        (
            PathBuf::from("data-sources/deployments.md"),
            page(
                "Data Source",
                "bentocloud_deployments",
                &deployments_schema(),
                examples,
                "data-sources/bentocloud_deployments/data-source.tf",
                None,
            ),
        ),
    ];
    // Lookups of what the platform offers.
    for (name, schema) in [
        ("clusters", crate::data_sources::catalog::clusters_schema()),
        (
            "instance_types",
            crate::data_sources::catalog::instance_types_schema(),
        ),
        ("bento", crate::data_sources::bento::bento_schema()),
    ] {
        let type_name = format!("bentocloud_{name}");
        pages.push((
            PathBuf::from(format!("data-sources/{name}.md")),
            page(
                "Data Source",
                &type_name,
                &schema,
                examples,
                &format!("data-sources/{type_name}/data-source.tf"),
                None,
            ),
        ));
    }
    pages
}

/// Pages under `docs` that differ from what the schema renders.
pub fn stale_pages(root: &Path) -> Vec<PathBuf> {
    render_all(&root.join("examples"))
        .into_iter()
        .filter(|(rel, text)| {
            std::fs::read_to_string(root.join("docs").join(rel))
                .ok()
                .as_deref()
                != Some(text.as_str())
        })
        .map(|(rel, _)| rel)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_match_the_schema() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let stale = stale_pages(root);
        assert!(
            stale.is_empty(),
            "docs/ differ from the schema for {stale:?}: run `cargo run --bin bentocloud-docs` and commit the result"
        );
    }

    #[test]
    fn every_attribute_is_documented_with_its_type() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let pages = render_all(&root.join("examples"));
        let resource = &pages[1].1;
        for attr in resource_schema().block.attributes.keys() {
            assert!(
                resource.contains(&format!("- `{attr}` (")),
                "{attr} missing"
            );
        }
        assert!(resource.contains("### Nested Schema for `timeouts`"));
        assert!(pages[0].1.contains("`api_key` (String, Sensitive)"));
    }
}
