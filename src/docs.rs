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
    let optional = pick(&[
        AttributeConstraint::Optional,
        AttributeConstraint::OptionalComputed,
    ]);
    let blocks: BTreeMap<&String, &NestedBlock> = block.blocks.iter().collect();
    optional_section(out, &optional, &blocks);
    section(
        out,
        "Read-Only",
        &pick(&[AttributeConstraint::Computed]),
        "nestedatt--",
    );
    for (name, b) in &blocks {
        out.push_str(&format!(
            "<a id=\"nestedblock--{name}\"></a>\n### Nested Schema for `{name}`\n\n"
        ));
        render_block(out, block_kind(b).1);
    }
    for (name, a) in &attrs {
        if let Some(fields) = object_fields(&a.attr_type) {
            render_object(out, name, name, fields);
        }
    }
}

/// The "Optional" section: optional attributes and blocks together, sorted by name, as
/// tfplugindocs lists them.
fn optional_section(
    out: &mut String,
    optional: &BTreeMap<&String, &Attribute>,
    blocks: &BTreeMap<&String, &NestedBlock>,
) {
    if optional.is_empty() && blocks.is_empty() {
        return;
    }
    let mut lines: Vec<(String, String)> = Vec::new();
    for (name, a) in optional {
        let sensitive = if a.sensitive { ", Sensitive" } else { "" };
        lines.push((
            (*name).clone(),
            format!(
                "- `{name}` ({}{sensitive}) {}\n",
                type_name(&a.attr_type),
                a.description.content.trim()
            ),
        ));
    }
    for (name, b) in blocks {
        let (kind, inner) = block_kind(b);
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

/// How tfplugindocs names a nested block's kind, and the block inside.
fn block_kind(b: &NestedBlock) -> (&'static str, &Block) {
    match b {
        NestedBlock::Optional(b) => ("Block List, Max: 1", b),
        NestedBlock::Single(b) => ("Block, Required", b),
        NestedBlock::List(b) | NestedBlock::Group(b) => ("Block List", b),
        NestedBlock::Set(b) => ("Block Set", b),
        NestedBlock::Map(b) => ("Block Map", b),
    }
}

/// The descriptions of the fields of an object attribute named `name`: a deployment's in
/// `deployments`, a service's in `service`, a service's health in `health` (and its
/// `versions`).
fn field_descriptions(name: &str) -> std::collections::HashMap<String, Attribute> {
    match name {
        "service" => crate::resources::deployment::model::service_block_schema().attributes,
        "deployments" => deployment_schema().block.attributes,
        "clusters" => crate::data_sources::catalog::cluster_fields(),
        "instance_types" => crate::data_sources::catalog::instance_type_fields(),
        "health" => crate::data_sources::health::health_fields(),
        "versions" => crate::data_sources::health::version_fields(),
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
    import_dir: Option<&str>,
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
    if let Some(dir) = import_dir {
        out.push_str(&import_section(examples, dir));
    }
    format!("{}\n", out.trim_end())
}

/// The Import section of a resource page, as tfplugindocs renders it from the resource's
/// example folder: the `import {}` block (`import-by-string-id.tf`, Terraform >= 1.5), then
/// the `terraform import` command (`import.sh`).
fn import_section(examples: &Path, dir: &str) -> String {
    let read = |file: &str| std::fs::read_to_string(examples.join(dir).join(file)).ok();
    let (block, command) = (read(IMPORT_BLOCK_EXAMPLE), read("import.sh"));
    if block.is_none() && command.is_none() {
        return String::new();
    }
    let mut out = String::from("## Import\n\nImport is supported using the following syntax:\n\n");
    if let Some(block) = block {
        out.push_str(&format!(
            "In Terraform v1.5.0 and later, the [`import` block](https://developer.hashicorp.com/terraform/language/import) can be used with the `id` attribute, for example:\n\n```terraform\n{}\n```\n\n",
            block.trim_end()
        ));
    }
    if let Some(command) = command {
        out.push_str(&format!(
            "The [`terraform import` command](https://developer.hashicorp.com/terraform/cli/commands/import) can be used, for example:\n\n```shell\n{}\n```\n\n",
            command.trim_end()
        ));
    }
    out
}

/// The `import {}` block example in a resource's example folder (tfplugindocs' name for it).
/// Not part of the folder's configuration when the examples are applied: Terraform 1.0 cannot
/// parse it.
pub const IMPORT_BLOCK_EXAMPLE: &str = "import-by-string-id.tf";

/// What the index page says between the provider's description and its example.
const INDEX_BEFORE_EXAMPLE: &str = r#"Credentials are taken, in this order, from the provider block, from the `BENTO_CLOUD_API_KEY` and `BENTO_CLOUD_API_ENDPOINT` environment variables (the bentoml CLI's own), and from the context saved by `bentoml cloud login` (`$BENTOML_HOME/.yatai.yaml`, context chosen by `BENTOML_CLOUD_CONTEXT`): a user logged in with the bentoml CLI needs no provider configuration.

For module development and CI without a BentoCloud account, run `bentocloud-local` (see the guide *Developing modules with bentocloud-local*).

## Requirements

- Terraform 1.0 or newer (the provider speaks plugin protocol 6). Each change is tested with Terraform 1.11.4 and 1.0.3.
- `import {}` blocks (below each resource's *Import*) need Terraform 1.5 or newer; `terraform test` files, 1.6 or newer.
- A BentoCloud organisation and an API token, or a `bentocloud-local` control plane.

## Installing the provider

The provider is not on the Terraform Registry: install a build of it before any `terraform init`, in one of two ways. Both go in Terraform's CLI configuration (`~/.terraformrc`, or the file `TF_CLI_CONFIG_FILE` names).

**A release build, from a filesystem mirror.** In the provider's repository, `bash scripts/release.sh OUT` builds the provider for this machine (`linux_amd64`, `darwin_arm64`, ...) and writes the Registry zip, `SHA256SUMS`, and `OUT/mirror`, a packed filesystem-mirror layout. Point Terraform at it:

```terraform
provider_installation {
  filesystem_mirror {
    path    = "/absolute/path/to/OUT/mirror"
    include = ["registry.terraform.io/bentocloud/bentocloud"]
  }
  direct {
    exclude = ["registry.terraform.io/bentocloud/bentocloud"]
  }
}
```

`terraform init` then installs it like any provider and records its checksum in `.terraform.lock.hcl`. Copy `OUT/mirror` to share the build with other machines and CI; a zip built on another platform goes next to this one.

**A local binary, with `dev_overrides`** (while working on the provider itself). Build it (`cargo build --release -p terraform-provider-bentocloud` writes `target/release/terraform-provider-bentocloud`) and point Terraform at its folder:

```terraform
provider_installation {
  dev_overrides {
    "bentocloud/bentocloud" = "/absolute/path/to/target/release"
  }
  direct {}
}
```

With `dev_overrides`, skip `terraform init` (it would look the provider up on the Registry, and fail): `plan` and `apply` run the binary as it is, with a warning that overrides are in effect, and no lock file entry. A configuration that also needs other providers or modules installed needs `terraform init`: use the filesystem mirror there.

"#;

/// What the index page says between its example and the schema.
const INDEX_AFTER_EXAMPLE: &str = r#"## Environment variables

Every variable the provider reads (Terraform passes its environment on to the provider):

| Variable | What it does |
| --- | --- |
| `BENTO_CLOUD_API_KEY` | The API token when the provider block sets no `api_key` (the bentoml CLI's variable). An empty value counts as unset. |
| `BENTO_CLOUD_API_ENDPOINT` | The endpoint when the provider block sets no `endpoint`. Without either, the endpoint of the login context whose token is used, else `https://cloud.bentoml.com`. |
| `BENTOML_HOME` | Where `bentoml cloud login` keeps its contexts: `$BENTOML_HOME/.yatai.yaml` (default `$HOME/bentoml/.yatai.yaml`). Read only when neither `api_key` nor `BENTO_CLOUD_API_KEY` is set. |
| `BENTOML_CLOUD_CONTEXT` | Which context of that file to use. Default: the file's `current_context_name`, else `default`. |
| `BENTOCLOUD_STATUS_SYNC_PERIOD` | `status_sync_period` when the provider block does not set it (a Go duration such as `90s`; not a duration: a configuration error). For `bentocloud-local`, its status sync period plus a second (`3s` by default). |
| `BENTOCLOUD_REFRESH_BATCH` | How refresh reads deployments: `auto` (the default: a refresh of many deployments reads them from one listing of their cluster, 500 deployments a request, started in the background when the provider is configured; a plan of one or two deployments never waits for it; what a listing cannot answer is read with a GET), `always` (every read waits for a listing), `never` (one GET per deployment, no listing). Any other value is a configuration error. |
| `SSL_CERT_FILE`, `SSL_CERT_DIR` | Certificates to trust instead of the operating system's store: a PEM bundle, and `:`-separated folders of PEM files. The public roots stay trusted. Put a private CA, or a TLS-inspecting proxy's, here; an untrusted certificate fails at once with an error that names these variables. |
| `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` (or lowercase) | The proxy for `https://` endpoints, for `http://` ones, and for both; `NO_PROXY` lists the hosts (names, domains, IP addresses or ranges) reached directly. |
| `TF_LOG_PROVIDER`, `TF_LOG` | The provider's log level (`TF_LOG_PROVIDER` first): `TRACE` (or `JSON`), `DEBUG`, `INFO` (when unset), `WARN`, `ERROR`. Logs are hclog JSON lines on stderr, which Terraform filters and shows under its own `TF_LOG` settings; the API key and secret values never appear in them. |
| `PLUGIN_LOG_FILE` | A file the provider also appends its log lines to (JSON, one event a line). |

## Request budget

One budget is shared by every resource and data source of a provider configuration: at most `max_concurrent_requests` requests in flight (default `16`) and `requests_per_second` requests a second (default `500`, a smooth token bucket). The example's `50` is ten times below the default: a budget for an organisation whose API quota is shared with CI and the bentoml CLI. Lower values never fail a run, they slow large refreshes and applies; `429 Too Many Requests` answers are retried with back-off, honouring `Retry-After`. A rollout wait polls at most twice a second, and a refresh of many deployments costs one request per 500 of them.

## Versioning

The provider is at 0.x: a new minor version (0.1 to 0.2) may change behaviour or require configuration changes; patch versions do not. Pin the minor version (`version = "~> 0.1.0"`) and read the BREAKING CHANGES of `CHANGELOG.md`, in the provider's repository, before moving to the next one.

"#;

fn index_page(examples: &Path) -> String {
    let schema = provider_schema();
    let mut out = String::from(
        "---\npage_title: \"Provider: BentoCloud\"\ndescription: |-\n  Manage BentoCloud deployments: bentos served behind endpoints, with honest rollouts.\n---\n\n# BentoCloud Provider\n\n",
    );
    out.push_str(schema.block.description.content.trim());
    out.push_str("\n\n");
    out.push_str(INDEX_BEFORE_EXAMPLE);
    out.push_str(&example(
        examples,
        "provider/provider.tf",
        "terraform",
        "Example Usage",
    ));
    out.push_str(INDEX_AFTER_EXAMPLE);
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
                Some("resources/bentocloud_deployment"),
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
                Some("resources/bentocloud_secret"),
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
