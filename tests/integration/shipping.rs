//! What users get from the Registry and the README: every example applies against
//! `bentocloud-local` (and each `import {}` block example imports, on Terraform >= 1.5), the
//! release zip installs from a filesystem mirror, and a user logged in with the bentoml CLI
//! needs no provider configuration.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use bentocloud::docs::IMPORT_BLOCK_EXAMPLE;
use serde_json::Value as Json;

use crate::harness::{Server, Spec, Tf, TfOutput, TfVersion};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PROVIDER_BIN: &str = env!("CARGO_BIN_EXE_terraform-provider-bentocloud");

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir");
    for e in fs::read_dir(from).expect("read examples").flatten() {
        let p = e.path();
        let dest = to.join(e.file_name());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            fs::copy(&p, &dest).expect("copy example file");
        }
    }
}

const REQUIRED_PROVIDERS: &str = r#"terraform {
  required_providers {
    bentocloud = {
      source = "bentocloud/bentocloud"
    }
  }
}

provider "bentocloud" {}
"#;

/// The root configurations under `dir`: each folder holding `.tf` files, except the modules
/// under `modules` (applied through `examples/module-usage`).
fn find_roots(dir: &Path, modules: &Path, roots: &mut Vec<PathBuf>) {
    if dir == modules {
        return;
    }
    let entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read examples")
        .flatten()
        .map(|e| e.path())
        .collect();
    if entries
        .iter()
        .any(|p| p.extension().is_some_and(|x| x == "tf"))
    {
        roots.push(dir.to_path_buf());
    }
    for p in entries.iter().filter(|p| p.is_dir()) {
        find_roots(p, modules, roots);
    }
}

/// One example folder, copied into the Terraform working directory, ready to apply.
struct ExampleRoot {
    dir: PathBuf,
    /// The folder's `import {}` block example (Terraform >= 1.5), taken out of the folder:
    /// Terraform 1.0 cannot parse it, and it imports what the folder's apply creates.
    import_block: Option<String>,
}

/// Copies every example into the Terraform working directory of `tf` and returns every root
/// configuration, found rather than listed, so a new example is applied without touching this
/// test. A root that leaves `required_providers` to the reader's configuration gets it.
fn example_roots(tf: &Tf) -> Vec<ExampleRoot> {
    let dst = tf.dir.path().join("examples");
    copy_dir(&Path::new(REPO).join("examples"), &dst);
    let mut dirs = Vec::new();
    find_roots(&dst, &dst.join("modules"), &mut dirs);
    dirs.sort();
    for expected in [
        "provider",
        "quickstart",
        "module-usage",
        "resources/bentocloud_deployment",
        "resources/bentocloud_secret",
        "data-sources/bentocloud_deployments",
    ] {
        assert!(
            dirs.contains(&dst.join(expected)),
            "examples/{expected} is not among the example roots found: {dirs:?}"
        );
    }
    dirs.into_iter()
        .map(|dir| {
            let block_path = dir.join(IMPORT_BLOCK_EXAMPLE);
            let import_block = fs::read_to_string(&block_path).ok();
            if import_block.is_some() {
                fs::remove_file(&block_path).expect("take the import block example out");
            }
            let has_block = fs::read_dir(&dir)
                .expect("example dir")
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "tf"))
                .any(|e| {
                    fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .contains("required_providers")
                });
            if !has_block {
                fs::write(dir.join("providers_test.tf"), REQUIRED_PROVIDERS)
                    .expect("write providers");
            }
            ExampleRoot { dir, import_block }
        })
        .collect()
}

/// `terraform plan -detailed-exitcode` in `chdir`: (exit code, output).
fn plan_code(tf: &Tf, chdir: &str) -> (i32, TfOutput) {
    let out = tf.run(&[
        chdir,
        "plan",
        "-input=false",
        "-no-color",
        "-detailed-exitcode",
    ]);
    (out.code, out)
}

/// The addresses an `import {}` block example imports (its `to = ADDRESS` lines that are not
/// commented out).
fn import_targets(block: &str) -> Vec<String> {
    block
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("to"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|addr| addr.trim().to_string())
        .collect()
}

/// A resource's `import {}` block example imports what its folder created: the resources it
/// names are taken out of state, the block is added, plan shows the imports, apply adopts
/// them, and the next plan is empty.
fn import_block_imports(tf: &Tf, root: &Path, chdir: &str, block: &str) {
    let targets = import_targets(block);
    assert!(
        !targets.is_empty(),
        "{IMPORT_BLOCK_EXAMPLE} in {} imports nothing",
        root.display()
    );
    for addr in &targets {
        tf.run_ok(&[chdir, "state", "rm", "-no-color", addr]);
    }
    let path = root.join(IMPORT_BLOCK_EXAMPLE);
    fs::write(&path, block).expect("write the import block example");
    let (code, out) = plan_code(tf, chdir);
    assert!(
        code == 2 && out.stdout.contains(&format!("{} to import", targets.len())),
        "{IMPORT_BLOCK_EXAMPLE} in {} does not plan its imports:\n{}",
        root.display(),
        out.describe()
    );
    tf.run_ok(&[chdir, "apply", "-input=false", "-no-color", "-auto-approve"]);
    let (code, out) = plan_code(tf, chdir);
    assert_eq!(
        code,
        0,
        "{} plans changes after its import block was applied:\n{}",
        root.display(),
        out.describe()
    );
    fs::remove_file(&path).expect("remove the import block example");
}

/// `terraform output -json` of the root in `chdir`: every output's value.
fn outputs_of(tf: &Tf, chdir: &str) -> BTreeMap<String, Json> {
    let out = tf.run_ok(&[chdir, "output", "-json", "-no-color"]);
    let all: BTreeMap<String, Json> = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("output -json is not JSON ({e}):\n{}", out.stdout));
    all.into_iter()
        .map(|(k, o)| (k, o["value"].clone()))
        .collect()
}

/// Every example in `examples/` applies, plans empty afterwards and destroys cleanly; each
/// `import {}` block example imports on Terraform >= 1.5.
pub fn every_example_applies(version: TfVersion) {
    let server = Server::start();
    // What the examples refer to and do not create themselves: the bentos they deploy or look
    // up (pushed, as on BentoCloud), a secret, a deployment made elsewhere, and one the fleet
    // example finds (running, so its `status:running` query matches).
    server.register_bentos(&[
        "llm_gateway:v1",
        "sentiment_analysis:v3",
        "iris_classifier:v1",
        "iris_classifier:v2",
        "summarizer:v1",
        "text_embedder:v1",
        "reranker:v2",
        "search_gateway:v5",
    ]);
    server.create_secret("hf-token", "HF_TOKEN", "not-a-real-token");
    server.create_deployment(
        "local-east",
        &Spec::new("llm-gateway", "llm_gateway:v1").create_request(),
    );
    server.create_deployment(
        "local-east",
        &Spec::new("ml-api", "sentiment_analysis:v3")
            .label("team", "ml")
            .label("env", "prod")
            .create_request(),
    );
    server.wait_rolled_out("local-east", "ml-api");
    let before = server.all_deployment_ids();
    let tf = Tf::new(version, &server);
    for root in example_roots(&tf) {
        let dir = root.dir.to_string_lossy().to_string();
        let chdir = format!("-chdir={dir}");
        tf.run_ok(&[&chdir, "init", "-input=false", "-no-color"]);
        tf.run_ok(&[
            &chdir,
            "apply",
            "-input=false",
            "-no-color",
            "-auto-approve",
        ]);
        let (code, out) = plan_code(&tf, &chdir);
        assert_eq!(
            code,
            0,
            "example {dir} plans changes after apply:\n{}",
            out.describe()
        );
        if root.dir.ends_with("data-sources/bentocloud_deployments") {
            // The fleet example finds `ml-api` and reads its URL (the listing has none).
            let outputs = outputs_of(&tf, &chdir);
            assert_eq!(
                outputs["ml_prod"]["local-east/ml-api"].as_str(),
                Some("sentiment_analysis:v3 (running)"),
                "the fleet example's output: {outputs:?}"
            );
            assert!(
                outputs["ml_prod_urls"]["ml-api"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("http")),
                "the fleet example's URLs: {outputs:?}"
            );
        }
        if let Some(block) = &root.import_block {
            // `import {}` blocks are Terraform 1.5's.
            if version == TfVersion::V1_11 {
                import_block_imports(&tf, &root.dir, &chdir, block);
            }
        }
        tf.run_ok(&[
            &chdir,
            "destroy",
            "-input=false",
            "-no-color",
            "-auto-approve",
        ]);
        assert_eq!(
            server.all_deployment_ids(),
            before,
            "example {dir} left deployments behind after destroy"
        );
    }
}

fn sha256_sums(dir: &Path) -> String {
    fs::read_dir(dir)
        .expect("release dir")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with("_SHA256SUMS"))
        .map(|e| fs::read_to_string(e.path()).expect("read sums"))
        .expect("release wrote a SHA256SUMS file")
}

fn sha256_hex(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {} failed", path.display());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("sha256sum output")
        .to_string()
}

/// base64(sha256(bytes)), through coreutils (no hashing crate needed for one test).
fn base64_of_sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("sha256sum | cut -d' ' -f1 | xxd -r -p | base64 -w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn sh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The release command's zip, installed from a packed filesystem mirror, inits and applies;
/// SHA256SUMS lists the mirrored zip, and the lock file records the packaged binary.
pub fn release_zip_installs_from_a_filesystem_mirror(version: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let tf = Tf::new(version, &server);
    let out = tf.dir.path().join("release");
    let status = Command::new("bash")
        .arg(Path::new(REPO).join("scripts/release.sh"))
        .arg(&out)
        .env("RELEASE_BINARY", PROVIDER_BIN)
        .status()
        .expect("run scripts/release.sh");
    assert!(status.success(), "scripts/release.sh failed");
    let sums = sha256_sums(&out);
    let zip_line = sums
        .lines()
        .find(|l| l.ends_with("_linux_amd64.zip"))
        .unwrap_or_else(|| panic!("no linux_amd64 zip in SHA256SUMS:\n{sums}"));
    assert!(
        sums.contains("_manifest.json"),
        "manifest missing from SHA256SUMS:\n{sums}"
    );
    let zip_sha = zip_line.split_whitespace().next().expect("sha").to_string();

    let rc = tf.dir.path().join("release.tfrc");
    fs::write(
        &rc,
        format!(
            "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/bentocloud/bentocloud\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/bentocloud/bentocloud\"]\n  }}\n}}\n",
            out.join("mirror").display()
        ),
    )
    .expect("write cli config");
    let mut tf = tf;
    tf.env.push((
        "TF_CLI_CONFIG_FILE".into(),
        rc.to_string_lossy().to_string(),
    ));
    tf.write(
        r#"resource "bentocloud_deployment" "from_zip" {
  name  = "from-zip"
  bento = "iris:v1"
}
"#,
    );
    tf.init();
    // The zip listed in SHA256SUMS is the one in the mirror, and Terraform installed exactly
    // it: its lock file's h1: hash is the dirhash of the zip's single file.
    let zip = fs::read_dir(out.join("mirror/registry.terraform.io/bentocloud/bentocloud"))
        .expect("mirror dir")
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".zip"))
        .expect("zip in the mirror")
        .path();
    assert_eq!(
        sha256_hex(&zip),
        zip_sha,
        "SHA256SUMS does not match the mirrored zip"
    );
    let entry = "terraform-provider-bentocloud_v0.1.0";
    let summary = format!("{}  {entry}\n", sha256_hex(Path::new(PROVIDER_BIN)));
    let h1 = format!("h1:{}", base64_of_sha256(summary.as_bytes()));
    let lock = fs::read_to_string(tf.dir.path().join(".terraform.lock.hcl")).expect("lock file");
    assert!(
        lock.contains(&h1),
        "lock file does not record the packaged binary's hash {h1}:\n{lock}"
    );
    tf.apply();
    assert!(server.get_deployment("local-east", "from-zip").is_some());
    tf.destroy();
}

/// With no provider attributes and no BENTO_CLOUD_* variables, the context saved by
/// `bentoml cloud login` (`$BENTOML_HOME/.yatai.yaml`) is used.
pub fn bentoml_login_context_needs_no_provider_configuration(version: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let mut tf = Tf::new(version, &server);
    let home = tf.dir.path().join("bentoml-home");
    fs::create_dir_all(&home).expect("mkdir");
    fs::write(
        home.join(".yatai.yaml"),
        format!(
            "contexts:\n- name: default\n  endpoint: {}\n  api_token: wrong-token\n  email: a@example.com\n- name: local\n  endpoint: {}\n  api_token: {}\n  email: a@example.com\ncurrent_context_name: local\n",
            server.endpoint, server.endpoint, server.token
        ),
    )
    .expect("write .yatai.yaml");
    tf.env
        .push(("BENTOML_HOME".into(), home.to_string_lossy().to_string()));
    // Empty values count as unset, so only the context file can supply credentials.
    tf.env.push(("BENTO_CLOUD_API_KEY".into(), String::new()));
    tf.env
        .push(("BENTO_CLOUD_API_ENDPOINT".into(), String::new()));
    tf.write(
        r#"resource "bentocloud_deployment" "ctx" {
  name  = "from-context"
  bento = "iris:v1"
}
"#,
    );
    tf.init();
    tf.apply();
    assert!(server
        .get_deployment("local-east", "from-context")
        .is_some());

    // BENTOML_CLOUD_CONTEXT picks another context: its wrong token is rejected, by name.
    tf.env
        .push(("BENTOML_CLOUD_CONTEXT".into(), "default".into()));
    let out = tf.run_err(&["plan", "-input=false", "-no-color"]);
    // Terraform wraps diagnostics: compare with whitespace folded.
    let text = format!("{}{}", out.stdout, out.stderr)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        text.contains("rejected the API key") && text.contains("bentoml CLI context"),
        "expected a rejected-key error naming the context:\n{text}"
    );
    tf.env.pop();
    tf.destroy();
}
