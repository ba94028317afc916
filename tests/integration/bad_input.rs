//! The bad-input matrix: every bad value a user can write is an error that names
//! the attribute (Terraform's `with <address>, on main.tf line N` plus the source line) and says
//! how to fix it; locally knowable ones fail `terraform plan`, the rest fail `apply`; and nothing
//! is ever created on the server.
//!
//! One server per test function, a fresh Terraform working directory per case.

use std::fs;

// `tf_test!` names `harness::TfVersion`.
use crate::harness;
use crate::harness::*;

tf_test!(
    plan_time_errors_name_the_attribute,
    bad_input_plan_time_tf1_11,
    bad_input_plan_time_tf1_0
);
tf_test!(
    server_checked_errors_name_the_attribute,
    bad_input_server_checked_tf1_11,
    bad_input_server_checked_tf1_0
);
// With no cluster set anywhere, the plan resolves the organisation's default cluster and
// checks the instance type there, so the error is still at `instance_type`, at plan time.
#[test]
fn bad_input_default_cluster_instance_type_tf1_11() {
    unknown_instance_type_in_the_default_cluster(harness::TfVersion::V1_11)
}
#[test]
fn bad_input_default_cluster_instance_type_tf1_0() {
    unknown_instance_type_in_the_default_cluster(harness::TfVersion::V1_0)
}
tf_test!(
    bad_import_ids_are_rejected,
    bad_input_import_ids_tf1_11,
    bad_input_import_ids_tf1_0
);
tf_test!(
    bad_provider_settings_fail_plan,
    bad_input_provider_settings_tf1_11,
    bad_input_provider_settings_tf1_0
);

/// When Terraform is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// `terraform plan` must fail.
    Plan,
    /// `terraform plan` succeeds (the value can only be checked against the server while
    /// applying); `terraform apply` must fail.
    Apply,
    /// `terraform apply` must fail, in its plan or its apply phase.
    PlanOrApply,
}

/// One bad configuration and the diagnostic it must produce.
struct Case {
    what: &'static str,
    /// HCL after the `terraform` header (a provider block is added unless present).
    body: String,
    stage: Stage,
    /// The diagnostic's summary (`Error: <summary>`).
    summary: &'static str,
    /// The resource the diagnostic is about (`with <address>,`), if any.
    with: Option<String>,
    /// A text unique in `main.tf` on the line the diagnostic must point at: Terraform prints
    /// `on main.tf line N` and `N: <that line>`. `None` for diagnostics without a source line.
    line_of: Option<&'static str>,
    /// Text of the fix (whitespace-insensitive: Terraform wraps long details).
    fix: &'static str,
}

/// Collapses whitespace and the diagnostic box characters, so wrapped text still matches.
pub fn squash(s: &str) -> String {
    s.replace(['│', '╷', '╵', '─', '├'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The 1-based line of the only line of `main.tf` containing `needle`.
fn line_of(tf: &Tf, needle: &str) -> usize {
    let text = fs::read_to_string(tf.dir.path().join("main.tf")).expect("read main.tf");
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "test bug: {needle:?} must be on exactly one line of main.tf:\n{text}"
    );
    hits[0]
}

/// Asserts that `out` carries the diagnostic of `case`.
fn assert_diag(tf: &Tf, case: &Case, out: &TfOutput) {
    let text = format!("{}\n{}", out.stdout, out.stderr);
    let flat = squash(&text);
    let ctx = format!(
        "case {:?} (Terraform {}):\n{}",
        case.what,
        tf.version.version(),
        out.describe()
    );
    assert!(
        flat.contains(&format!("Error: {}", case.summary)),
        "no `Error: {}` in {ctx}",
        case.summary
    );
    if let Some(with) = &case.with {
        assert!(
            flat.contains(&format!("with {with},")),
            "the diagnostic does not name {with} in {ctx}"
        );
    }
    if let Some(needle) = case.line_of {
        let n = line_of(tf, needle);
        assert!(
            flat.contains(&format!("on main.tf line {n}")),
            "the diagnostic does not point at main.tf line {n} ({needle}) in {ctx}"
        );
        let shown = text.lines().any(|l| {
            let l = l.trim_start_matches(['│', ' ']);
            l.strip_prefix(&format!("{n}:"))
                .is_some_and(|rest| rest.contains(needle))
        });
        assert!(shown, "the source line {n}: {needle} is not shown in {ctx}");
    }
    assert!(
        flat.contains(&squash(case.fix)),
        "the fix {:?} is not in {ctx}",
        case.fix
    );
}

/// Runs every case in a fresh working directory; after each, the server holds no deployment
/// and the state holds no resource.
fn run_cases(v: TfVersion, server: &Server, cases: &[Case], env: &[(&str, &str)]) {
    for case in cases {
        eprintln!("[bad input] {} (Terraform {})", case.what, v.version());
        let mut tf = Tf::new(v, server);
        tf.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        tf.write(&case.body);
        tf.init();
        let out = match case.stage {
            Stage::Plan => tf.run(&["plan", "-input=false", "-no-color"]),
            Stage::Apply => {
                tf.run_ok(&["plan", "-input=false", "-no-color"]);
                tf.run(&["apply", "-input=false", "-no-color", "-auto-approve"])
            }
            Stage::PlanOrApply => tf.run(&["apply", "-input=false", "-no-color", "-auto-approve"]),
        };
        assert_ne!(
            out.code,
            0,
            "case {:?}: {} was expected to fail (Terraform {}):\n{}",
            case.what,
            out.args.join(" "),
            v.version(),
            out.describe()
        );
        assert_diag(&tf, case, &out);
        assert_nothing_created(server, &tf, case.what);
    }
}

fn assert_nothing_created(server: &Server, tf: &Tf, what: &str) {
    let ids = server.all_deployment_ids();
    assert!(
        ids.is_empty(),
        "case {what:?}: the server has deployments after a failed command: {ids:?}"
    );
    let state = tf.dir.path().join("terraform.tfstate");
    if state.exists() {
        let text = fs::read_to_string(&state).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let n = v["resources"].as_array().map(Vec::len).unwrap_or(0);
        assert_eq!(n, 0, "case {what:?}: the state holds resources:\n{text}");
    }
}

fn resource(name_line: &str, rest: &str) -> String {
    format!("resource \"bentocloud_deployment\" \"bad\" {{\n  {name_line}\n{rest}}}\n")
}

const ADDR: &str = "bentocloud_deployment.bad";

fn case(
    what: &'static str,
    body: String,
    summary: &'static str,
    line_of: &'static str,
    fix: &'static str,
) -> Case {
    Case {
        what,
        body,
        stage: Stage::Plan,
        summary,
        with: Some(ADDR.to_string()),
        line_of: Some(line_of),
        fix,
    }
}

/// Everything `terraform plan` can reject without the server.
pub fn plan_time_errors_name_the_attribute(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("iris:v1", &BentoBehaviour::default());
    server.bentos_add(
        "multi:v1",
        &BentoBehaviour {
            services: vec!["Gateway".into(), "Model".into()],
            ..Default::default()
        },
    );
    let ok = "  bento = \"iris:v1\"\n";
    let long = "a".repeat(64);
    let long_line: &'static str = Box::leak(format!("name = \"{long}\"").into_boxed_str());
    let cases = vec![
        case(
            "name with uppercase and '_'",
            resource("name = \"Bad_Name\"", ok),
            "Invalid deployment name",
            "name = \"Bad_Name\"",
            "use lowercase letters, digits and '-', starting and ending with a letter or digit",
        ),
        case(
            "name starting with '-'",
            resource("name = \"-lead\"", ok),
            "Invalid deployment name",
            "name = \"-lead\"",
            "use lowercase letters, digits and '-'",
        ),
        case(
            "name of 64 characters",
            resource(long_line, ok),
            "Invalid deployment name",
            long_line,
            "the name is 64 characters long: use at most 63",
        ),
        case(
            "empty name",
            resource("name = \"\"", ok),
            "Invalid deployment name",
            "name = \"\"",
            "the name is empty: give a name such as \"sentiment-api\"",
        ),
        case(
            "min_replicas > max_replicas",
            resource(
                "name = \"scale\"",
                &format!("{ok}  min_replicas = 3\n  max_replicas = 1\n"),
            ),
            "Invalid scaling",
            "min_replicas = 3",
            "min_replicas (3) is greater than max_replicas (1): raise max_replicas or lower min_replicas",
        ),
        case(
            "negative min_replicas",
            resource("name = \"neg\"", &format!("{ok}  min_replicas = -1\n")),
            "Invalid scaling",
            "min_replicas = -1",
            "replicas cannot be negative; use 0 to scale to zero when idle",
        ),
        case(
            "max_replicas of 0",
            resource("name = \"zero\"", &format!("{ok}  max_replicas = 0\n")),
            "Invalid scaling",
            "max_replicas = 0",
            "max_replicas is 0: it must be at least 1",
        ),
        case(
            "unknown deployment strategy",
            resource(
                "name = \"strat\"",
                &format!("{ok}  deployment_strategy = \"Yolo\"\n"),
            ),
            "Invalid deployment_strategy",
            "deployment_strategy = \"Yolo\"",
            "unknown deployment strategy \"Yolo\": use one of RollingUpdate",
        ),
        case(
            "malformed label key",
            resource(
                "name = \"lbl\"",
                &format!("{ok}  labels = {{\n    \"bad key\" = \"x\"\n  }}\n"),
            ),
            "Invalid label key",
            "\"bad key\" = \"x\"",
            "must use letters, digits, '-', '_' and '.', and start and end with a letter or digit",
        ),
        case(
            "malformed label key prefix",
            resource(
                "name = \"lblp\"",
                &format!("{ok}  labels = {{\n    \"Ex ample/team\" = \"x\"\n  }}\n"),
            ),
            "Invalid label key",
            "\"Ex ample/team\" = \"x\"",
            "use a lowercase DNS name such as \"example.com/team\"",
        ),
        case(
            "malformed label value",
            resource(
                "name = \"lblv\"",
                &format!("{ok}  labels = {{\n    team = \"has space\"\n  }}\n"),
            ),
            "Invalid label value",
            "team = \"has space\"",
            "must use letters, digits, '-', '_' and '.'",
        ),
        case(
            "malformed env key",
            resource(
                "name = \"env\"",
                &format!("{ok}  envs = {{\n    \"1BAD\" = \"x\"\n  }}\n"),
            ),
            "Invalid environment variable key",
            "\"1BAD\" = \"x\"",
            "use letters, digits and '_', not starting with a digit (e.g. \"LOG_LEVEL\")",
        ),
        case(
            "malformed env key in a service block",
            resource(
                "name = \"svcenv\"",
                "  bento = \"multi:v1\"\n  service {\n    name = \"Model\"\n    envs = {\n      \"A-B\" = \"x\"\n    }\n  }\n",
            ),
            "Invalid environment variable key",
            "\"A-B\" = \"x\"",
            "use letters, digits and '_'",
        ),
        case(
            "duplicate service names",
            resource(
                "name = \"dup\"",
                "  bento = \"multi:v1\"\n  service {\n    name = \"Model\"\n  }\n  service {\n    name = \"Model\" # again\n  }\n",
            ),
            "Duplicate service",
            "\"Model\" # again",
            "service \"Model\" is configured twice: merge the two `service` blocks.",
        ),
        case(
            "min > max in a service block",
            resource(
                "name = \"svcscale\"",
                "  bento = \"multi:v1\"\n  service {\n    name = \"Model\"\n    min_replicas = 4\n    max_replicas = 2\n  }\n",
            ),
            "Invalid scaling",
            "min_replicas = 4",
            "raise max_replicas or lower min_replicas",
        ),
        case(
            "unknown strategy in a service block",
            resource(
                "name = \"svcstrat\"",
                "  bento = \"multi:v1\"\n  service {\n    name = \"Model\"\n    deployment_strategy = \"rolling\"\n  }\n",
            ),
            "Invalid deployment_strategy",
            "deployment_strategy = \"rolling\"",
            "use one of RollingUpdate",
        ),
        case(
            "empty bento",
            resource("name = \"empty\"", "  bento = \"\"\n"),
            "Invalid bento",
            "bento = \"\"",
            "the bento is empty: use \"repository:version\", e.g. \"iris_classifier:v2\"",
        ),
        case(
            "bento with a space",
            resource("name = \"space\"", "  bento = \"iris v1\"\n"),
            "Invalid bento",
            "bento = \"iris v1\"",
            "use \"repository:version\"",
        ),
        case(
            "bento with an empty version",
            resource("name = \"colon\"", "  bento = \"iris:\"\n"),
            "Invalid bento",
            "bento = \"iris:\"",
            "bento \"iris:\" is malformed",
        ),
        case(
            "empty cluster",
            resource("name = \"nocl\"", &format!("{ok}  cluster = \"\"\n")),
            "Empty cluster",
            "cluster = \"\"",
            "remove it to use the provider's default cluster, or name a cluster.",
        ),
        case(
            "empty secret name",
            resource("name = \"nosec\"", &format!("{ok}  secrets = [\"\"]\n")),
            "Empty secret name",
            "secrets = [\"\"]",
            "list the names of existing BentoCloud secrets",
        ),
        case(
            "create timeout without a unit",
            resource(
                "name = \"tmo\"",
                &format!("{ok}  timeouts {{\n    create = \"10 minutes\"\n  }}\n"),
            ),
            "Invalid timeout",
            "create = \"10 minutes\"",
            "\"10 minutes\" is not a duration",
        ),
        case(
            "negative delete timeout",
            resource(
                "name = \"tmo2\"",
                &format!("{ok}  timeouts {{\n    delete = \"-5m\"\n  }}\n"),
            ),
            "Invalid timeout",
            "delete = \"-5m\"",
            "use a number with a unit such as \"30s\", \"10m\" or \"1h30m\"",
        ),
        case(
            "update timeout with an unknown unit",
            resource(
                "name = \"tmo3\"",
                &format!("{ok}  timeouts {{\n    update = \"3d\"\n  }}\n"),
            ),
            "Invalid timeout",
            "update = \"3d\"",
            "unknown unit \"d\"",
        ),
        secret_case(
            "secret name with capitals",
            "  name  = \"Bad_Secret\"\n  items = { K = \"v\" }\n",
            "Invalid secret name",
            "name  = \"Bad_Secret\"",
            "lowercase",
        ),
        secret_case(
            "unknown secret type",
            "  name  = \"s1\"\n  type  = \"file\"\n  items = { K = \"v\" }\n",
            "Invalid secret type",
            "type  = \"file\"",
            "use \"env\" or \"mountfile\"",
        ),
        secret_case(
            "mountfile without path",
            "  name  = \"s2\"\n  type  = \"mountfile\"\n  items = { K = \"v\" }\n",
            "Missing mount path",
            "type  = \"mountfile\"",
            "needs `path`",
        ),
        secret_case(
            "path on an env secret",
            "  name  = \"s3\"\n  path  = \"/etc/x\"\n  items = { K = \"v\" }\n",
            "Path on an env secret",
            "path  = \"/etc/x\"",
            "only for `type = \"mountfile\"`",
        ),
        secret_case(
            "env key that is not a variable name",
            "  name  = \"s4\"\n  items = { \"1BAD\" = \"hidden-value-7\" }\n",
            "Invalid secret item key",
            "items = { \"1BAD\"",
            "`items` key \"1BAD\"",
        ),
        secret_case(
            "no items",
            "  name  = \"s5\"\n  items = {}\n",
            "Secret without items",
            "items = {}",
            "give at least one",
        ),
    ];
    run_cases(v, &server, &cases, &[]);
}

fn secret_case(
    what: &'static str,
    attrs: &str,
    summary: &'static str,
    line_of: &'static str,
    fix: &'static str,
) -> Case {
    Case {
        what,
        body: format!("resource \"bentocloud_secret\" \"bad\" {{\n{attrs}}}\n"),
        stage: Stage::Plan,
        summary,
        with: Some("bentocloud_secret.bad".to_string()),
        line_of: Some(line_of),
        fix,
    }
}

/// Values only the server can judge: the cluster and instance types (checked at plan time),
/// the bento and its services (checked at apply time, before anything is created).
pub fn server_checked_errors_name_the_attribute(v: TfVersion) {
    let server = Server::start_with(&["--strict-bentos"]);
    server.bentos_add("iris:v1", &BentoBehaviour::default());
    server.bentos_add(
        "multi:v1",
        &BentoBehaviour {
            services: vec!["Gateway".into(), "Model".into()],
            ..Default::default()
        },
    );
    let ok = "  bento = \"iris:v1\"\n";
    // The provider's default cluster: plan can ask that cluster for its instance types.
    let east = |body: String| {
        format!("provider \"bentocloud\" {{\n  cluster = \"local-east\"\n}}\n\n{body}")
    };
    let cases = vec![
        case(
            "unknown instance type",
            east(resource("name = \"it\"", &format!("{ok}  instance_type = \"cpu.64\"\n"))),
            "Unknown instance type",
            "instance_type = \"cpu.64\"",
            "offers no instance type \"cpu.64\". Use one of: cpu.1",
        ),
        case(
            "unknown instance type in a service block",
            east(resource(
                "name = \"svcit\"",
                "  bento = \"multi:v1\"\n  service {\n    name = \"Model\"\n    instance_type = \"gpu.h100.8\"\n  }\n",
            )),
            "Unknown instance type",
            "instance_type = \"gpu.h100.8\"",
            "offers no instance type \"gpu.h100.8\"",
        ),
        case(
            "unknown cluster",
            resource("name = \"cl\"", &format!("{ok}  cluster = \"mars\"\n")),
            "Unknown cluster",
            "cluster = \"mars\"",
            "BentoCloud has no cluster \"mars\"",
        ),
        Case {
            stage: Stage::Apply,
            ..case(
                "missing bento (strict server)",
                resource("name = \"ghost\"", "  bento = \"ghost:v1\"\n"),
                "Bento not found",
                "bento = \"ghost:v1\"",
                "BentoCloud has no bento \"ghost:v1\"",
            )
        },
        Case {
            stage: Stage::Apply,
            ..case(
                "missing bento repository, latest version (strict server)",
                resource("name = \"ghost2\"", "  bento = \"ghost\"\n"),
                "Bento not found",
                "bento = \"ghost\"",
                "Push it first",
            )
        },
        Case {
            stage: Stage::Apply,
            ..case(
                "unknown service name",
                resource(
                    "name = \"svc\"",
                    "  bento = \"multi:v1\"\n  service {\n    name = \"Nope\"\n  }\n",
                ),
                "Unknown service",
                "name = \"Nope\"",
                "Bento \"multi:v1\" has no service \"Nope\". Its services are: Gateway, Model.",
            )
        },
        Case {
            stage: Stage::Apply,
            ..case(
                "entry service in a service block",
                resource(
                    "name = \"entry\"",
                    "  bento = \"multi:v1\"\n  service {\n    name = \"Gateway\"\n  }\n",
                ),
                "Entry service configured in a service block",
                "name = \"Gateway\"",
                "set its settings with the top-level `instance_type`",
            )
        },
    ];
    run_cases(v, &server, &cases, &[]);
}

/// An unknown instance type with no cluster set anywhere (the organisation's default
/// cluster): plan cannot ask a cluster it does not know, but plan or apply must still reject
/// it at `instance_type` with the valid types, and create nothing.
pub fn unknown_instance_type_in_the_default_cluster(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let ok = "  bento = \"iris:v1\"\n";
    let cases = vec![
        // No cluster anywhere (the organisation's default): plan does not know the cluster;
        // plan or apply must still reject the instance type at `instance_type`, with the fix,
        // before creating anything.
        Case {
            stage: Stage::PlanOrApply,
            ..case(
                "unknown instance type, default cluster",
                resource(
                    "name = \"it2\"",
                    &format!("{ok}  instance_type = \"cpu.64\"\n"),
                ),
                "Unknown instance type",
                "instance_type = \"cpu.64\"",
                "offers no instance type \"cpu.64\"",
            )
        },
    ];
    run_cases(v, &server, &cases, &[]);
}

/// `terraform import` with IDs that cannot name a deployment, or name none.
pub fn bad_import_ids_are_rejected(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    tf.write("resource \"bentocloud_deployment\" \"imp\" {\n  name  = \"iris\"\n  bento = \"iris:v1\"\n}\n");
    tf.init();
    let cases: &[(&str, &str, &str)] = &[
        (
            "a/b/c",
            "Invalid import ID",
            "\"a/b/c\" is not a deployment ID. Expected `cluster/name`",
        ),
        (
            "/iris",
            "Invalid import ID",
            "\"/iris\" is not a deployment ID. Expected `cluster/name`",
        ),
        (
            "local-east/Bad_Name",
            "Invalid import ID",
            "use lowercase letters, digits and '-'",
        ),
        ("local-east/", "Invalid import ID", "the name is empty"),
        (
            "local-east/ghost",
            "Cannot import a deployment that does not exist",
            "BentoCloud has no deployment local-east/ghost. Check the name and cluster",
        ),
        ("mars/iris", "Cannot import", "mars"),
    ];
    for (id, summary, fix) in cases {
        let out = tf.run(&[
            "import",
            "-input=false",
            "-no-color",
            "bentocloud_deployment.imp",
            id,
        ]);
        let ctx = format!(
            "import {id:?} (Terraform {}):\n{}",
            v.version(),
            out.describe()
        );
        assert_ne!(out.code, 0, "{ctx}");
        let flat = squash(&format!("{}\n{}", out.stdout, out.stderr));
        assert!(
            flat.contains(&format!("Error: {summary}")),
            "no `Error: {summary}` in {ctx}"
        );
        assert!(
            flat.contains(&squash(fix)),
            "the fix {fix:?} is not in {ctx}"
        );
        assert_nothing_created(&server, &tf, id);
        let list = tf.run(&["state", "list"]);
        assert!(
            list.stdout.trim().is_empty(),
            "import {id:?} left resources in the state:\n{}",
            list.describe()
        );
    }
}

/// The provider block: an endpoint that is not a URL (in the block or in the environment),
/// and a token the server rejects.
pub fn bad_provider_settings_fail_plan(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let ok = resource("name = \"prov\"", "  bento = \"iris:v1\"\n");
    let pcase = |what: &'static str, block: &str, line: &'static str, summary, fix| Case {
        what,
        body: format!("provider \"bentocloud\" {{\n{block}}}\n\n{ok}"),
        stage: Stage::Plan,
        summary,
        with: None,
        line_of: Some(line),
        fix,
    };
    let cases = vec![
        pcase(
            "endpoint that is not a URL",
            "  endpoint = \"not a url\"\n",
            "endpoint = \"not a url\"",
            "Invalid BentoCloud endpoint",
            "`endpoint` = \"not a url\" is not a usable URL: relative URL without a base. Use the full origin, e.g. \"https://my-org.cloud.bentoml.com\"",
        ),
        pcase(
            "endpoint with another scheme",
            "  endpoint = \"ftp://example.com\"\n",
            "endpoint = \"ftp://example.com\"",
            "Invalid BentoCloud endpoint",
            "the scheme is \"ftp\", not http or https",
        ),
        pcase(
            "max_concurrent_requests of 0",
            "  max_concurrent_requests = 0\n",
            "max_concurrent_requests = 0",
            "Invalid max_concurrent_requests",
            "it must be at least 1",
        ),
        pcase(
            "requests_per_second of 0",
            "  requests_per_second = 0\n",
            "requests_per_second = 0",
            "Invalid requests_per_second",
            "it must be greater than 0",
        ),
    ];
    run_cases(v, &server, &cases, &[]);

    // The endpoint from the environment: no source line to show, but the variable is named.
    let env_case = Case {
        what: "BENTO_CLOUD_API_ENDPOINT that is not a URL",
        body: ok.clone(),
        stage: Stage::Plan,
        summary: "Invalid BentoCloud endpoint",
        with: None,
        line_of: None,
        fix: "Set `endpoint` (or BENTO_CLOUD_API_ENDPOINT) to the full origin",
    };
    run_cases(
        v,
        &server,
        std::slice::from_ref(&env_case),
        &[("BENTO_CLOUD_API_ENDPOINT", "localhost-4780")],
    );

    // A token the server rejects: one clear error, and the rejected token is not echoed.
    let wrong = "wrong-token-5d0c9e71aa";
    let wrong_case = Case {
        what: "wrong API token",
        body: ok.clone(),
        stage: Stage::Plan,
        summary: "BentoCloud rejected the API key",
        with: None,
        line_of: None,
        fix: "Check `api_key` or the BENTO_CLOUD_API_KEY environment variable, or run `bentoml cloud login` again.",
    };
    let mut tf = Tf::new(v, &server);
    tf.env = vec![("BENTO_CLOUD_API_KEY".into(), wrong.into())];
    tf.write(&wrong_case.body);
    tf.init();
    let out = tf.run_err(&["plan", "-input=false", "-no-color"]);
    assert_diag(&tf, &wrong_case, &out);
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        !text.contains(wrong),
        "the rejected token is echoed in the error:\n{}",
        out.describe()
    );
    assert_eq!(
        text.matches("Error:").count(),
        1,
        "a wrong token is one error, not one per resource:\n{}",
        out.describe()
    );
    assert_nothing_created(&server, &tf, wrong_case.what);
}
