//! The lookup data sources (`bentocloud_clusters`, `bentocloud_instance_types`,
//! `bentocloud_bento`) against a control plane whose clusters and instance types the test
//! defines, and the module tests of `examples/modules/inference-stack` (`terraform test`).
//!
//! Every expected value is derived from what the test configured or registered, never written
//! out as a literal answer, so a data source that reads the wrong field or a stale value fails.

use std::fs;
use std::path::Path;

use bentocloud_local::config::{ClusterSpec, InstanceTypeSpec, PlatformConfig};
use serde_json::{json, Value as Json};

use crate::bad_input::squash;
use crate::harness::*;

/// Two clusters unlike the built-in ones; the first is the default (`is_first`). Each has a
/// GPU type, one with two GPUs; quantities in several spellings.
fn platform() -> PlatformConfig {
    let mut small = InstanceTypeSpec::new(
        "cpu.small",
        "Small CPU",
        "500m",
        "2Gi",
        (0, "", ""),
        "0.0500",
    );
    small.default = true;
    let mut large =
        InstanceTypeSpec::new("cpu.large", "Large CPU", "8", "32Gi", (0, "", ""), "0.3900");
    large.default = true;
    PlatformConfig {
        clusters: vec![
            ClusterSpec {
                name: "eu-central".into(),
                description: "Frankfurt, the default".into(),
                instance_types: vec![
                    small,
                    InstanceTypeSpec::new(
                        "gpu.a10g.1",
                        "A10G x1",
                        "4000m",
                        "16Gi",
                        (1, "nvidia-a10g", "24Gi"),
                        "1.2100",
                    ),
                ],
            },
            ClusterSpec {
                name: "us-west".into(),
                description: "Oregon".into(),
                instance_types: vec![
                    large,
                    InstanceTypeSpec::new(
                        "gpu.h100.2",
                        "H100 x2",
                        "24",
                        "192Gi",
                        (2, "nvidia-h100", "80Gi"),
                        "8.4000",
                    ),
                ],
            },
        ],
        ..PlatformConfig::default()
    }
}

/// Starts the control plane with [`platform`] (plus `extra` options, e.g. `--strict-bentos`).
fn start(extra: &[&str]) -> Server {
    let dir = temp_dir("lookups-config-");
    let path = dir.path().join("platform.json");
    fs::write(
        &path,
        serde_json::to_string(&platform()).expect("config JSON"),
    )
    .expect("write config");
    let path = path.to_string_lossy().to_string();
    let mut args = vec!["--config", path.as_str()];
    args.extend_from_slice(extra);
    Server::start_with(&args)
}

/// What `bentocloud_instance_types` must show for a configured type: the API's strings, and
/// null for what a type without GPU does not have.
fn expected_type(t: &InstanceTypeSpec) -> Json {
    let gpu = |v: String| if t.gpu > 0 { json!(v) } else { Json::Null };
    json!({
        "name": t.name,
        "display_name": t.display_name,
        "description": t.description,
        "group": t.group,
        "cpu": t.cpu,
        "memory": t.memory,
        "gpu": gpu(t.gpu.to_string()),
        "gpu_type": gpu(t.gpu_type.clone()),
        "gpu_memory": gpu(t.gpu_memory.clone()),
        "price": t.price,
    })
}

fn expected_types(cluster: &ClusterSpec) -> Json {
    Json::Array(cluster.instance_types.iter().map(expected_type).collect())
}

/// `bentocloud_clusters` lists the configured clusters with their descriptions and marks the
/// first as the default; `bentocloud_instance_types` shows each cluster's configured types
/// exactly (GPU ones included), for a named cluster, for the organisation's default, and for
/// the provider's `cluster`.
pub fn clusters_and_instance_types_match_the_configuration(v: TfVersion) {
    let server = start(&[]);
    let cfg = platform();
    let (eu, us) = (&cfg.clusters[0], &cfg.clusters[1]);
    let tf = Tf::new(v, &server);
    tf.write(&format!(
        r#"
data "bentocloud_clusters" "all" {{}}

data "bentocloud_instance_types" "default" {{}}

data "bentocloud_instance_types" "named" {{
  cluster = "{us}"
}}

output "clusters" {{
  value = data.bentocloud_clusters.all.clusters
}}

output "cluster_names" {{
  value = data.bentocloud_clusters.all.names
}}

output "default_cluster" {{
  value = data.bentocloud_clusters.all.default_cluster
}}

output "default_types" {{
  value = data.bentocloud_instance_types.default.instance_types
}}

output "default_types_cluster" {{
  value = data.bentocloud_instance_types.default.cluster
}}

output "named_types" {{
  value = data.bentocloud_instance_types.named.instance_types
}}

output "named_type_names" {{
  value = data.bentocloud_instance_types.named.names
}}

output "gpu_types" {{
  value = [for t in data.bentocloud_instance_types.named.instance_types : t.name if tonumber(coalesce(t.gpu, "0")) > 1]
}}
"#,
        us = us.name
    ));
    tf.init();
    tf.apply();
    let out = tf.outputs();
    let want_clusters: Vec<Json> = cfg
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"name": c.name, "description": c.description, "is_default": i == 0}))
        .collect();
    assert_eq!(out["clusters"], Json::Array(want_clusters));
    assert_eq!(out["cluster_names"], json!([eu.name, us.name]));
    assert_eq!(out["default_cluster"], json!(eu.name));
    // The server's own answer agrees on which cluster is first.
    let (status, body) = server.request(reqwest::Method::GET, "/api/v1/clusters", None);
    assert_eq!(status, 200, "{body}");
    let listed: Json = serde_json::from_str(&body).expect("cluster list");
    assert_eq!(listed["items"][0]["is_first"], json!(true));
    assert_eq!(listed["items"][0]["name"], json!(eu.name));

    assert_eq!(out["default_types"], expected_types(eu));
    assert_eq!(out["default_types_cluster"], json!(eu.name));
    assert_eq!(out["named_types"], expected_types(us));
    assert_eq!(
        out["named_type_names"],
        json!(us
            .instance_types
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>())
    );
    assert_eq!(
        out["gpu_types"],
        json!(["gpu.h100.2"]),
        "GPU counts compare as numbers"
    );

    // The provider's `cluster` is the default of the data source.
    let tf = Tf::new(v, &server).with_provider_cluster(&us.name);
    tf.write(
        r#"
data "bentocloud_instance_types" "default" {}

output "types" {
  value = data.bentocloud_instance_types.default.instance_types
}

output "cluster" {
  value = data.bentocloud_instance_types.default.cluster
}
"#,
    );
    tf.init();
    tf.apply();
    let out = tf.outputs();
    assert_eq!(out["types"], expected_types(us));
    assert_eq!(out["cluster"], json!(us.name));
}

/// The API's view of one bento: (version, created_at).
fn server_bento(server: &Server, repo: &str, version: &str) -> (String, String) {
    let (status, body) = server.request(
        reqwest::Method::GET,
        &format!("/api/v1/bento_repositories/{repo}/bentos/{version}"),
        None,
    );
    assert_eq!(status, 200, "{repo}:{version}: {body}");
    let b: Json = serde_json::from_str(&body).expect("bento JSON");
    (
        b["version"].as_str().expect("version").to_string(),
        b["created_at"].as_str().expect("created_at").to_string(),
    )
}

const BENTO_LOOKUPS: &str = r#"
data "bentocloud_bento" "pinned" {
  repository = "shop"
  version    = "v1"
}

data "bentocloud_bento" "latest" {
  repository = "shop"
}

data "bentocloud_bento" "missing_version" {
  repository = "shop"
  version    = "v9"
}

data "bentocloud_bento" "missing_repository" {
  repository = "no_such_repo"
}

data "bentocloud_bento" "missing_repository_version" {
  repository = "no_such_repo"
  version    = "v1"
}

output "pinned" {
  value = data.bentocloud_bento.pinned
}

output "latest" {
  value = data.bentocloud_bento.latest
}

output "missing_version" {
  value = data.bentocloud_bento.missing_version
}

output "missing_repository" {
  value = data.bentocloud_bento.missing_repository
}

output "missing_repository_version" {
  value = data.bentocloud_bento.missing_repository_version
}
"#;

fn found(repo: &str, version: &str, created_at: &str, services: &[&str]) -> Json {
    json!({
        "repository": repo,
        "version": version,
        "exists": true,
        "tag": format!("{repo}:{version}"),
        "created_at": created_at,
        "entry_service": services[0],
        "services": services,
    })
}

fn missing(repo: &str, version: Option<&str>) -> Json {
    json!({
        "repository": repo,
        "version": version,
        "exists": false,
        "tag": null,
        "created_at": null,
        "entry_service": null,
        "services": [],
    })
}

/// `bentocloud_bento` finds a given version, resolves the latest (and follows a new push on
/// the next read), and reports a missing version or repository as `exists = false`. Strict
/// bentos: unknown tags are not-found, as on BentoCloud.
pub fn bento_lookup_by_version_latest_and_missing(v: TfVersion) {
    let server = start(&["--strict-bentos"]);
    let services = |names: &[&str]| BentoBehaviour {
        services: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    server.bentos_add("shop:v1", &services(&["Gateway", "Model"]));
    server.bentos_add("shop:v2", &services(&["Web"]));
    // A newer bento of another repository is not shop's latest.
    server.bentos_add("other:v7", &services(&["Other"]));
    let tf = Tf::new(v, &server);
    tf.write(BENTO_LOOKUPS);
    tf.init();
    tf.apply();
    let out = tf.outputs();
    let (_, v1_created) = server_bento(&server, "shop", "v1");
    let (_, v2_created) = server_bento(&server, "shop", "v2");
    assert_eq!(
        out["pinned"],
        found("shop", "v1", &v1_created, &["Gateway", "Model"])
    );
    assert_eq!(out["latest"], found("shop", "v2", &v2_created, &["Web"]));
    assert_eq!(out["missing_version"], missing("shop", Some("v9")));
    assert_eq!(out["missing_repository"], missing("no_such_repo", None));
    assert_eq!(
        out["missing_repository_version"],
        missing("no_such_repo", Some("v1"))
    );
    // Lookups register nothing (strict server): v9 is still unknown.
    let (status, _) = server.request(
        reqwest::Method::GET,
        "/api/v1/bento_repositories/shop/bentos/v9",
        None,
    );
    assert_eq!(status, 404);

    // A new push is the next read's latest; the pinned version does not move.
    server.bentos_add("shop:v3", &services(&["Web", "Worker"]));
    tf.apply();
    let out = tf.outputs();
    let (_, v3_created) = server_bento(&server, "shop", "v3");
    assert_eq!(
        out["latest"],
        found("shop", "v3", &v3_created, &["Web", "Worker"])
    );
    assert_eq!(out["pinned"]["version"], json!("v1"));
}

/// Bad inputs of the lookups fail `terraform validate` (no server involved) and `terraform
/// plan`, each on its attribute and line with the fix; an unknown cluster fails the plan on
/// `cluster`.
pub fn bad_lookup_inputs_fail_at_plan_naming_the_attribute(v: TfVersion) {
    let server = start(&["--strict-bentos"]);
    let tf = Tf::new(v, &server);
    tf.write(
        r#"
data "bentocloud_bento" "empty" {
  repository = ""
}

data "bentocloud_bento" "tag" {
  repository = "shop:v1"
}

data "bentocloud_bento" "latest_word" {
  repository = "shop"
  version    = "latest"
}

data "bentocloud_instance_types" "blank" {
  cluster = " "
}
"#,
    );
    tf.init();
    // (address, summary, source line, fix)
    let cases = [
        (
            "data.bentocloud_bento.empty",
            "Invalid bento repository",
            r#"repository = """#,
            "`repository` is empty: give a bento repository name",
        ),
        (
            "data.bentocloud_bento.tag",
            "Invalid bento repository",
            r#"repository = "shop:v1""#,
            r#"set `repository = "shop"` and `version = "v1"`"#,
        ),
        (
            "data.bentocloud_bento.latest_word",
            "Invalid bento version",
            r#"version    = "latest""#,
            "remove `version` to look up the latest bento",
        ),
        (
            "data.bentocloud_instance_types.blank",
            "Invalid cluster",
            r#"cluster = " ""#,
            "`cluster` is empty: remove it to list the instance types of the default cluster",
        ),
    ];
    let main = fs::read_to_string(tf.dir.path().join("main.tf")).expect("main.tf");
    for cmd in ["validate", "plan"] {
        let out = tf.run_err(&[cmd, "-no-color"]);
        let text = format!("{}\n{}", out.stdout, out.stderr);
        let flat = squash(&text);
        for (addr, summary, line, fix) in cases {
            let n = main
                .lines()
                .position(|l| l.contains(line))
                .expect("test bug: line in main.tf")
                + 1;
            let ctx = format!("{cmd}, {addr}:\n{}", out.describe());
            assert!(flat.contains(&format!("Error: {summary}")), "{ctx}");
            assert!(flat.contains(&format!("with {addr},")), "{ctx}");
            assert!(flat.contains(&format!("on main.tf line {n}")), "{ctx}");
            assert!(flat.contains(&squash(fix)), "fix {fix:?} missing: {ctx}");
        }
    }

    let tf = Tf::new(v, &server);
    tf.write(
        r#"
data "bentocloud_instance_types" "mars" {
  cluster = "mars"
}
"#,
    );
    tf.init();
    let out = tf.run_err(&["plan", "-no-color"]);
    let flat = squash(&format!("{}\n{}", out.stdout, out.stderr));
    assert!(
        flat.contains("Error: Unknown cluster"),
        "{}",
        out.describe()
    );
    assert!(
        flat.contains("with data.bentocloud_instance_types.mars,"),
        "{}",
        out.describe()
    );
    assert!(
        flat.contains(r#"BentoCloud has no cluster "mars""#),
        "{}",
        out.describe()
    );
}

// ------------------------------------------------------------------------------------------
// Module tests: `terraform test` in examples/modules/inference-stack
// ------------------------------------------------------------------------------------------

const MODULE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/modules/inference-stack"
);

/// The bentos the module's test files deploy (`stack.tftest.hcl`'s `components`).
const MODULE_TEST_BENTOS: [&str; 2] = ["tftest_api:v1", "tftest_worker:v1"];

/// The number of `run` blocks in the module's test files.
fn run_blocks_in_module_tests() -> usize {
    let dir = Path::new(MODULE).join("tests");
    let mut n = 0;
    for e in fs::read_dir(&dir).expect("module tests dir").flatten() {
        let p = e.path();
        if p.to_string_lossy().ends_with(".tftest.hcl") {
            let text = fs::read_to_string(&p).expect("read test file");
            n += text
                .lines()
                .filter(|l| l.trim_start().starts_with("run \""))
                .count();
        }
    }
    n
}

/// Copies the module (with its tests) into the working directory of `tf` and runs
/// `terraform init` there; returns the `-chdir=` argument.
fn module_copy(tf: &Tf) -> String {
    let dst = tf.dir.path().join("inference-stack");
    copy_tree(Path::new(MODULE), &dst);
    let chdir = format!("-chdir={}", dst.display());
    tf.run_ok(&[&chdir, "init", "-input=false", "-no-color"]);
    chdir
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read dir").flatten() {
        let (p, dest) = (e.path(), to.join(e.file_name()));
        // A developer's own `terraform init` leftovers stay behind.
        if e.file_name().to_string_lossy().starts_with(".terraform") {
            continue;
        }
        if p.is_dir() {
            copy_tree(&p, &dest);
        } else {
            fs::copy(&p, &dest).expect("copy");
        }
    }
}

/// `terraform test -json` messages of one command.
fn test_messages(out: &TfOutput) -> Vec<Json> {
    out.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Json>(l).ok())
        .collect()
}

/// (run name, status) of every completed run.
fn run_results(messages: &[Json]) -> Vec<(String, String)> {
    messages
        .iter()
        .filter(|m| m["type"] == "test_run" && m["test_run"]["progress"] == "complete")
        .map(|m| {
            (
                m["test_run"]["run"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                m["test_run"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect()
}

fn summary(messages: &[Json]) -> Json {
    messages
        .iter()
        .rev()
        .find(|m| m["type"] == "test_summary")
        .map(|m| m["test_summary"].clone())
        .unwrap_or(Json::Null)
}

/// Terraform 1.11's `terraform test` runs the module's test files against bentocloud-local:
/// every `run` block passes (a plan with assertions, an apply whose stack serves, an
/// `expect_failures` on the module's validation), and nothing is left on the server.
pub fn inference_stack_module_tests_pass(v: TfVersion) {
    assert_eq!(
        v,
        TfVersion::V1_11,
        "`terraform test` needs Terraform >= 1.6"
    );
    let server = Server::start();
    server.register_bentos(&MODULE_TEST_BENTOS);
    let tf = Tf::new(v, &server);
    let chdir = module_copy(&tf);
    let out = tf.run(&[&chdir, "test", "-json", "-no-color"]);
    let messages = test_messages(&out);
    let runs = run_results(&messages);
    let want = run_blocks_in_module_tests();
    assert!(want >= 3, "the module tests have {want} run blocks");
    assert_eq!(out.code, 0, "terraform test failed:\n{}", out.describe());
    assert_eq!(
        summary(&messages),
        json!({"status": "pass", "passed": want, "failed": 0, "errored": 0, "skipped": 0}),
        "{}",
        out.describe()
    );
    assert_eq!(runs.len(), want, "{runs:?}");
    assert!(runs.iter().all(|(_, s)| s == "pass"), "{runs:?}");
    assert!(
        server.all_deployment_ids().is_empty(),
        "terraform test left deployments behind: {:?}",
        server.all_deployment_ids()
    );
}

/// The module tests can fail: a `-var` that moves the stack to another cluster breaks the plan
/// run's default-cluster assertion, and `terraform test` exits non-zero naming it.
pub fn inference_stack_module_tests_fail_on_a_broken_assertion(v: TfVersion) {
    assert_eq!(
        v,
        TfVersion::V1_11,
        "`terraform test` needs Terraform >= 1.6"
    );
    let server = Server::start();
    server.register_bentos(&MODULE_TEST_BENTOS);
    let tf = Tf::new(v, &server);
    let chdir = module_copy(&tf);
    let out = tf.run(&[
        &chdir,
        "test",
        "-json",
        "-no-color",
        "-var",
        "cluster=local-west",
    ]);
    assert_ne!(out.code, 0, "terraform test passed:\n{}", out.describe());
    let messages = test_messages(&out);
    let runs = run_results(&messages);
    assert!(
        runs.contains(&(
            "plan_names_labels_and_settings".to_string(),
            "fail".to_string()
        )),
        "{runs:?}\n{}",
        out.describe()
    );
    assert_eq!(summary(&messages)["status"], json!("fail"));
    assert_eq!(summary(&messages)["failed"], json!(1));
    let failed_assertion = messages.iter().any(|m| {
        m["type"] == "diagnostic"
            && m["diagnostic"]["summary"] == "Test assertion failed"
            && m["diagnostic"]["detail"]
                .as_str()
                .is_some_and(|d| d.contains("not local-west"))
    });
    assert!(failed_assertion, "{}", out.describe());
    assert!(server.all_deployment_ids().is_empty());
}

/// What docs/guides/local-development.md says about Terraform 1.0.3: its `terraform test` is
/// the old experiment, which does not read `*.tftest.hcl` and reports no tests (exit 0), so
/// the module tests need Terraform 1.6 or later.
pub fn inference_stack_module_tests_are_not_run_by_terraform_1_0(v: TfVersion) {
    assert_eq!(v, TfVersion::V1_0);
    let server = Server::start();
    let tf = Tf::new(v, &server);
    let chdir = module_copy(&tf);
    let out = tf.run(&[&chdir, "test", "-no-color"]);
    let text = format!("{}\n{}", out.stdout, out.stderr);
    assert!(
        text.contains("No tests defined"),
        "Terraform 1.0.3 ran something:\n{}",
        out.describe()
    );
    assert!(server.all_deployment_ids().is_empty());
}
