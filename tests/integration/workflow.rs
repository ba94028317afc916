//! The workflow around deployments, end to end with the real Terraform CLI and a real
//! `bentocloud-local`:
//! - `bentocloud_secret`: created, mounted by a deployment (its replicas see the values through
//!   the endpoint), rotated (the change reaches running replicas only through
//!   `redeploy_triggers`), drifted on the server, imported and destroyed; its values never in
//!   plan output, `TF_LOG=TRACE` or the provider's log;
//! - a change made on the server between `plan` and `apply` is refused with who made it, and a
//!   CI bento change is not refused with `bento_managed_externally`.

use std::time::Duration;

use serde_json::Value as Json;

use crate::harness;
use crate::harness::*;

const CLUSTER: &str = "local-east";

/// What a replica of `url`'s deployment sees: `?env=`/`?file=` on any API route (several
/// requests, so every replica behind the endpoint is asked). Returns the distinct answers.
pub fn seen_by_replicas(url: &str, query: &str, n: usize) -> std::collections::BTreeSet<String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let target = format!("{}/whoami?{query}", url.trim_end_matches('/'));
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        let mut out = std::collections::BTreeSet::new();
        for _ in 0..n {
            let resp = client
                .get(&target)
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {target}: {e}"));
            assert_eq!(resp.status().as_u16(), 200, "GET {target}");
            let body: Json = resp.json().await.expect("JSON answer");
            out.insert(serde_json::json!({"env": body["env"], "files": body["files"]}).to_string());
        }
        out
    })
}

fn answer(password: &str, ca: &str) -> String {
    serde_json::json!({
        "env": {"DB_PASSWORD": password, "DB_USER": "app"},
        "files": {"/etc/tls/ca.pem": ca},
    })
    .to_string()
}

const QUERY: &str = "env=DB_PASSWORD&env=DB_USER&file=/etc/tls/ca.pem";

fn secrets_config(secret: &str, name: &str, triggers: bool) -> String {
    let triggers = if triggers {
        "  redeploy_triggers = {\n    db  = bentocloud_secret.db.version\n    tls = bentocloud_secret.tls.version\n  }\n"
    } else {
        ""
    };
    format!(
        r#"variable "db_password" {{
  type      = string
  sensitive = true
}}

resource "bentocloud_secret" "db" {{
  name        = "{secret}"
  description = "database credentials"
  items = {{
    DB_USER     = "app"
    DB_PASSWORD = var.db_password
  }}
}}

resource "bentocloud_secret" "tls" {{
  name = "{secret}-tls"
  type = "mountfile"
  path = "/etc/tls"
  items = {{
    "ca.pem" = "ca-one"
  }}
}}

resource "bentocloud_deployment" "app" {{
  name    = "{name}"
  bento   = "sec:v1"
  secrets = [bentocloud_secret.db.name, bentocloud_secret.tls.name]
{triggers}}}

output "url" {{
  value = bentocloud_deployment.app.url
}}
"#
    )
}

/// The secret's keys and values as the API returns them.
fn server_items(server: &Server, name: &str) -> Vec<(String, Json)> {
    let (status, text) = server.request(
        reqwest::Method::GET,
        &format!("/api/v1/org_secrets/{name}"),
        None,
    );
    assert_eq!(status, 200, "GET secret {name}: {text}");
    let v: Json = serde_json::from_str(&text).expect("secret JSON");
    let mut items: Vec<(String, Json)> = v["content"]["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["key"].as_str().unwrap_or_default().to_string(),
                i["value"].clone(),
            )
        })
        .collect();
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items
}

pub fn secret_created_mounted_rotated_imported_destroyed(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("sec:v1", &BentoBehaviour::default());
    let secret = dep_name("db", v);
    let name = dep_name("uses-secret", v);
    let pw1 = format!("pw-one-{}-Kq83xZ", v.version());
    let pw2 = format!("pw-two-{}-Lr27yW", v.version());
    let logs = temp_dir("secret-logs-");
    let tf_log = logs.path().join("terraform-trace.log");
    let plugin_log = logs.path().join("provider.log");
    let mut tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    tf.env.push(("TF_LOG".into(), "TRACE".into()));
    tf.env
        .push(("TF_LOG_PATH".into(), tf_log.display().to_string()));
    tf.env
        .push(("PLUGIN_LOG_FILE".into(), plugin_log.display().to_string()));
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, out: &TfOutput| {
        outputs.push((what.to_string(), format!("{}\n{}", out.stdout, out.stderr)));
    };
    let tfvars = |pw: &str| {
        std::fs::write(
            tf.dir.path().join("terraform.tfvars"),
            format!("db_password = \"{pw}\"\n"),
        )
        .expect("write tfvars");
    };

    // Created and mounted: the replicas see the values.
    tf.write(&secrets_config(&secret, &name, true));
    tfvars(&pw1);
    keep("init", &tf.init());
    keep("apply", &tf.apply());
    let url = tf.outputs()["url"]
        .as_str()
        .expect("url output")
        .to_string();
    assert_eq!(
        seen_by_replicas(&url, QUERY, 4),
        [answer(&pw1, "ca-one")].into(),
        "the replicas see the secrets"
    );
    let st = tf.resource("bentocloud_secret.db");
    assert_eq!(st["version"], 1, "{st}");
    assert_eq!(st["id"], secret.as_str());
    assert_eq!(
        server_items(&server, &secret),
        vec![
            ("DB_PASSWORD".to_string(), Json::Null),
            ("DB_USER".to_string(), Json::Null)
        ],
        "the API gives keys, not values"
    );
    let (code, out) = tf.plan_detailed_exitcode();
    keep("plan after create", &out);
    assert_eq!(code, 0, "nothing to do after create:\n{}", out.describe());

    // Rotated, the secret alone: running replicas keep the old value (the platform's rule).
    tfvars(&pw2);
    keep(
        "apply -target",
        &tf.run_ok(&[
            "apply",
            "-input=false",
            "-no-color",
            "-auto-approve",
            "-target=bentocloud_secret.db",
        ]),
    );
    assert_eq!(tf.resource("bentocloud_secret.db")["version"], 2);
    assert_eq!(
        seen_by_replicas(&url, QUERY, 4),
        [answer(&pw1, "ca-one")].into(),
        "a changed secret does not reach running replicas"
    );
    // The redeploy the trigger asks for shows in the plan, without the value.
    let before = view(&server.must_get(CLUSTER, &name)).revision;
    let out = tf.run_ok(&["plan", "-input=false", "-no-color"]);
    keep("plan of the redeploy", &out);
    assert!(
        out.stdout.contains("redeploy_triggers") && out.stdout.contains("update in-place"),
        "the plan shows the redeploy:\n{}",
        out.stdout
    );
    keep("apply of the redeploy", &tf.apply());
    let after = view(&server.must_get(CLUSTER, &name));
    assert_ne!(after.revision, before, "a new revision rolled out");
    assert_eq!(after.bento, "sec:v1", "same spec");
    assert_eq!(
        seen_by_replicas(&url, QUERY, 6),
        [answer(&pw2, "ca-one")].into(),
        "every replica serves the rotated value after the redeploy"
    );
    let (code, out) = tf.plan_detailed_exitcode();
    keep("plan after rotation", &out);
    assert_eq!(code, 0, "converged:\n{}", out.describe());

    // Drift on the server: a key added elsewhere is seen and the configured content restored.
    let patch = serde_json::json!({"content": {"type": "env", "items": [
        {"key": "DB_USER", "value": "app"},
        {"key": "DB_PASSWORD", "value": "x"},
        {"key": "EXTRA", "value": "y"}
    ]}, "description": "edited elsewhere"});
    let (status, text) = server.request(
        reqwest::Method::PATCH,
        &format!("/api/v1/org_secrets/{secret}"),
        Some(&patch),
    );
    assert_eq!(status, 200, "{text}");
    let (code, out) = tf.plan_detailed_exitcode();
    keep("plan after drift", &out);
    assert_eq!(code, 2, "the drift shows:\n{}", out.describe());
    assert!(out.stdout.contains("edited elsewhere"), "{}", out.stdout);
    keep("apply after drift", &tf.apply());
    assert_eq!(
        server_items(&server, &secret)
            .into_iter()
            .map(|(k, _)| k)
            .collect::<Vec<_>>(),
        vec!["DB_PASSWORD", "DB_USER"],
        "the configured keys are back"
    );
    assert_eq!(
        seen_by_replicas(&url, QUERY, 6),
        [answer(&pw2, "ca-one")].into(),
        "the configured value was written back and redeployed"
    );

    // Imported by name: the values are not returned, so the first apply writes them.
    keep(
        "state rm",
        &tf.run_ok(&["state", "rm", "-no-color", "bentocloud_secret.db"]),
    );
    keep("import", &tf.import("bentocloud_secret.db", &secret));
    let st = tf.resource("bentocloud_secret.db");
    assert_eq!(st["name"], secret.as_str(), "{st}");
    assert_eq!(st["description"], "database credentials", "{st}");
    keep("apply after import", &tf.apply());
    let (code, out) = tf.plan_detailed_exitcode();
    keep("plan after import", &out);
    assert_eq!(code, 0, "converged after import:\n{}", out.describe());

    // Destroyed: both secrets and the deployment are gone.
    keep("destroy", &tf.destroy());
    for s in [secret.clone(), format!("{secret}-tls")] {
        let (status, _) = server.request(
            reqwest::Method::GET,
            &format!("/api/v1/org_secrets/{s}"),
            None,
        );
        assert_eq!(status, 404, "secret {s} deleted");
    }
    assert!(server.get_deployment(CLUSTER, &name).is_none());

    // The values never left the state: not in any output, nor in the logs.
    let trace = std::fs::read_to_string(&tf_log).expect("TF_LOG_PATH written");
    let plugin = std::fs::read_to_string(&plugin_log).expect("PLUGIN_LOG_FILE written");
    assert!(
        trace.contains("bentocloud_secret"),
        "the trace log covers the secret (the scan is not vacuous)"
    );
    assert!(plugin.contains("secret"), "the provider log covers secrets");
    outputs.push(("TF_LOG=TRACE".into(), trace));
    outputs.push(("PLUGIN_LOG_FILE".into(), plugin));
    for (what, text) in &outputs {
        for pw in [&pw1, &pw2] {
            assert!(!text.contains(pw.as_str()), "{what} shows a secret value");
        }
    }
}

// ------------------------------------------------------------------------------------------
// A change made between plan and apply
// ------------------------------------------------------------------------------------------

fn app(name: &str, bento: &str, extra: &str) -> String {
    format!(
        "resource \"bentocloud_deployment\" \"app\" {{\n  name  = {name:?}\n  bento = {bento:?}\n{extra}}}\n"
    )
}

pub fn concurrent_change_between_plan_and_apply_is_refused(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("cf:v1", &BentoBehaviour::default());
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("conflict", v);
    tf.write(&app(&name, "cf:v1", "  min_replicas = 1\n"));
    tf.init();
    tf.apply();

    tf.write(&app(&name, "cf:v1", "  min_replicas = 2\n"));
    tf.run_ok(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    // Someone else changes the deployment after the plan.
    let changed = server.update_from(CLUSTER, &name, |r| {
        r.envs = Some(vec![bentocloud::api::EnvItem {
            name: "HOTFIX".into(),
            value: "1".into(),
        }]);
    });
    server.wait_rolled_out(CLUSTER, &name);
    let rev = changed.latest_revision.clone().expect("a revision");
    let creator = rev.creator.clone().expect("a creator").meta.name;
    assert!(!creator.is_empty());

    let out = tf.run_err(&["apply", "-input=false", "-no-color", "tfplan"]);
    let text = format!("{}\n{}", out.stdout, out.stderr).replace('\n', " ");
    let text = flat(&text);
    for want in [
        "changed on BentoCloud after this plan was made",
        rev.meta.uid.as_str(),
        creator.as_str(),
        rev.meta.created_at.as_str(),
        "envs",
        "terraform plan",
    ] {
        assert!(
            text.contains(want),
            "the error says {want:?}:\n{}",
            out.describe()
        );
    }
    let d = view(&server.must_get(CLUSTER, &name));
    assert_eq!(d.revision, rev.meta.uid, "nothing was applied");
    assert_eq!(
        d.envs,
        map_of(&[("HOTFIX", "1")]),
        "the change made elsewhere stays"
    );
    assert_eq!(d.min_replicas, Some(1));
    let st = tf.resource("bentocloud_deployment.app");
    assert_eq!(
        st["envs"]["HOTFIX"], "1",
        "state shows what the server has: {st}"
    );

    // Planned again, the change is visible and applying it is the user's decision.
    let plan = tf.run_ok(&["plan", "-input=false", "-no-color"]);
    assert!(plan.stdout.contains("HOTFIX"), "{}", plan.stdout);
    tf.apply();
    let d = view(&server.must_get(CLUSTER, &name));
    assert_eq!((d.min_replicas, d.envs.len()), (Some(2), 0), "{d:?}");
    tf.assert_no_changes("after planning again");
}

pub fn ci_bento_change_between_plan_and_apply_is_not_a_conflict(v: TfVersion) {
    let server = Server::start();
    server.bentos_add("ci:v1", &BentoBehaviour::default());
    server.bentos_add("ci:v2", &BentoBehaviour::default());
    let tf = Tf::new(v, &server).with_provider_cluster(CLUSTER);
    let name = dep_name("ci-bento", v);
    let external = "  bento_managed_externally = true\n";
    tf.write(&app(
        &name,
        "ci:v1",
        &format!("{external}  min_replicas = 1\n"),
    ));
    tf.init();
    tf.apply();

    tf.write(&app(
        &name,
        "ci:v1",
        &format!("{external}  min_replicas = 2\n"),
    ));
    tf.run_ok(&["plan", "-input=false", "-no-color", "-out=tfplan"]);
    // CI deploys a new bento after the plan.
    server.update_from(CLUSTER, &name, |r| r.bento = "ci:v2".into());
    server.wait_rolled_out(CLUSTER, &name);

    let out = tf.run_ok(&["apply", "-input=false", "-no-color", "tfplan"]);
    let d = view(&server.must_get(CLUSTER, &name));
    assert_eq!(
        (d.bento.as_str(), d.min_replicas),
        ("ci:v2", Some(2)),
        "CI's bento stays and the plan applied: {d:?}\n{}",
        out.describe()
    );
}

tf_test!(
    secret_created_mounted_rotated_imported_destroyed,
    secret_created_mounted_rotated_imported_destroyed_tf1_11,
    secret_created_mounted_rotated_imported_destroyed_tf1_0
);
tf_test!(
    concurrent_change_between_plan_and_apply_is_refused,
    concurrent_change_between_plan_and_apply_is_refused_tf1_11,
    concurrent_change_between_plan_and_apply_is_refused_tf1_0
);
tf_test!(
    ci_bento_change_between_plan_and_apply_is_not_a_conflict,
    ci_bento_change_between_plan_and_apply_is_not_a_conflict_tf1_11,
    ci_bento_change_between_plan_and_apply_is_not_a_conflict_tf1_0
);
