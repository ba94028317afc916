//! Every setting of a deployment from Terraform: the autoscaling policy, `cold_start_timeout`,
//! the traffic settings and `config_overrides`, at the top level (the entry service) and in a
//! `service` block; the provider's `default_labels`. Each is created, read back by the
//! official client, changed, imported, removed from the configuration (kept, as documented),
//! and destroyed; each bad value fails at plan time on its attribute.

use serde_json::Value as Json;

use crate::harness::*;

const CLUSTER: &str = "local-east";

/// The provider block: the test server's cluster and `default_labels`.
fn provider(default_labels: &[(&str, &str)]) -> String {
    let mut s = format!("provider \"bentocloud\" {{\n  cluster = \"{CLUSTER}\"\n");
    if !default_labels.is_empty() {
        s.push_str(&format!("  default_labels = {}\n", hcl_map(default_labels)));
    }
    s.push_str("}\n\n");
    s
}

/// The settings written into a resource: the entry service's, and the `Model` service's.
struct Knobs {
    scale_down_behavior: &'static str,
    traffic_timeout: u32,
    /// The HCL object inside `jsonencode(...)` for the entry service.
    overrides: &'static str,
    /// Whether the policy and traffic settings are in the configuration at all.
    configured: bool,
    envs: &'static str,
}

fn resource(name: &str, k: &Knobs) -> String {
    let mut s = format!(
        "resource \"bentocloud_deployment\" \"app\" {{\n  name  = \"{name}\"\n  bento = \"stack:v1\"\n  labels = {{ team = \"ml\" }}\n  envs = {{ MODE = \"{}\" }}\n  min_replicas = 1\n  max_replicas = 3\n",
        k.envs
    );
    if k.configured {
        s.push_str(&format!(
            r#"  autoscaling_metrics = {{ qps = "10", cpu = "80" }}
  scale_up_behavior               = "fast"
  scale_down_behavior             = "{}"
  scale_down_stabilization_window = 120
  cold_start_timeout              = 300
  traffic_timeout                 = {}
  traffic_max_concurrency         = 4
  traffic_external_queue          = true
  config_overrides                = jsonencode({})
  service {{
    name                = "Model"
    autoscaling_metrics = {{ queue = "5" }}
    scale_up_behavior   = "stable"
    traffic_timeout     = 90
  }}
"#,
            k.scale_down_behavior, k.traffic_timeout, k.overrides
        ));
    } else {
        s.push_str("  service {\n    name = \"Model\"\n  }\n");
    }
    s.push_str("}\n");
    s
}

/// Every object under `v` (depth first) that has `key`.
fn objects_with<'a>(v: &'a Json, key: &str, out: &mut Vec<&'a serde_json::Map<String, Json>>) {
    match v {
        Json::Object(m) => {
            if m.contains_key(key) {
                out.push(m);
            }
            m.values().for_each(|x| objects_with(x, key, out));
        }
        Json::Array(a) => a.iter().for_each(|x| objects_with(x, key, out)),
        _ => {}
    }
}

/// The service configs of `bentoml deployment get -o json`, by service name.
fn services_seen_by_bentoml(server: &Server, name: &str) -> serde_json::Map<String, Json> {
    let out = server.bentoml(&[
        "deployment",
        "get",
        name,
        "--cluster",
        CLUSTER,
        "-o",
        "json",
    ]);
    let v: Json = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("bentoml deployment get -o json is not JSON ({e}):\n{out}"));
    let mut found = Vec::new();
    objects_with(&v, "services", &mut found);
    found
        .into_iter()
        .filter_map(|m| m["services"].as_object())
        .find(|s| s.contains_key("Gateway"))
        .cloned()
        .unwrap_or_else(|| panic!("no services with Gateway in `bentoml deployment get`:\n{out}"))
}

/// Create with every setting, read back by the official client; a change of one; a
/// reformatted `config_overrides` that is no change; an import that keeps them all; settings
/// left out of the configuration are kept; a policy set elsewhere on a setting Terraform does
/// not configure survives a Terraform update; destroy.
pub fn every_setting_round_trips(v: TfVersion) {
    let server = Server::start();
    server.register_bento("stack:v1", &["Gateway", "Model"]);
    let name = dep_name("knobs", v);
    let tf = Tf::new(v, &server);
    let mut knobs = Knobs {
        scale_down_behavior: "stable",
        traffic_timeout: 30,
        overrides: "{ logging = { access = { enabled = false } }, workers = 2 }",
        configured: true,
        envs: "a",
    };
    let defaults = [("managed-by", "terraform")];
    tf.write(&format!(
        "{}{}",
        provider(&defaults),
        resource(&name, &knobs)
    ));
    tf.init();
    assert_clean_apply(&tf.apply(), "create with every setting");

    // The official client sees every setting where the API puts it.
    let services = services_seen_by_bentoml(&server, &name);
    let gw = &services["Gateway"];
    let policy = &gw["scaling"]["policy"];
    let metrics: std::collections::BTreeMap<String, String> = policy["metrics"]
        .as_array()
        .unwrap_or_else(|| panic!("no metrics in {gw}"))
        .iter()
        .map(|m| {
            let v = match &m["value"] {
                Json::String(s) => s.clone(),
                other => other.to_string(),
            };
            (m["type"].as_str().unwrap_or_default().to_string(), v)
        })
        .collect();
    assert_eq!(metrics, map_of(&[("cpu", "80"), ("qps", "10")]), "{gw}");
    assert_eq!(policy["scale_up_behavior"], "fast", "{gw}");
    assert_eq!(policy["scale_down_behavior"], "stable", "{gw}");
    assert_eq!(policy["scale_down_stabilization_window"], 120, "{gw}");
    assert_eq!(gw["cold_start_timeout"], 300, "{gw}");
    let co = &gw["config_overrides"];
    assert_eq!(co["traffic"]["timeout"].as_f64(), Some(30.0), "{gw}");
    assert_eq!(co["traffic"]["max_concurrency"], 4, "{gw}");
    assert_eq!(co["traffic"]["external_queue"], true, "{gw}");
    assert_eq!(co["logging"]["access"]["enabled"], false, "{gw}");
    assert_eq!(co["workers"], 2, "{gw}");
    let model = &services["Model"];
    assert_eq!(
        model["scaling"]["policy"]["metrics"][0]["type"], "queue",
        "{model}"
    );
    assert_eq!(model["scaling"]["policy"]["scale_up_behavior"], "stable");
    assert_eq!(
        model["config_overrides"]["traffic"]["timeout"].as_f64(),
        Some(90.0)
    );
    // (`bentoml deployment get` does not print labels: the server's own view.)
    assert_eq!(
        view(&server.must_get(CLUSTER, &name)).labels,
        map_of(&[("managed-by", "terraform"), ("team", "ml")]),
        "default_labels merged under the resource's labels"
    );
    let st = tf.resource("bentocloud_deployment.app");
    assert_eq!(str_map(&st["labels"]), map_of(&[("team", "ml")]));
    assert_eq!(
        str_map(&st["terraform_labels"]),
        map_of(&[("managed-by", "terraform"), ("team", "ml")])
    );
    tf.assert_no_changes("after create");

    // The same object written in another key order is the same JSON: no change.
    knobs.overrides = "{ workers = 2, logging = { access = { enabled = false } } }";
    tf.write(&format!(
        "{}{}",
        provider(&defaults),
        resource(&name, &knobs)
    ));
    tf.assert_no_changes("config_overrides in another key order");

    // A change of two settings: sent, read back, and nothing else moves.
    let before = view(&server.must_get(CLUSTER, &name));
    knobs.scale_down_behavior = "disabled";
    knobs.traffic_timeout = 45;
    tf.write(&format!(
        "{}{}",
        provider(&defaults),
        resource(&name, &knobs)
    ));
    assert_clean_apply(
        &tf.apply(),
        "change scale_down_behavior and traffic_timeout",
    );
    let services = services_seen_by_bentoml(&server, &name);
    let gw = &services["Gateway"];
    assert_eq!(gw["scaling"]["policy"]["scale_down_behavior"], "disabled");
    assert_eq!(
        gw["config_overrides"]["traffic"]["timeout"].as_f64(),
        Some(45.0)
    );
    assert_eq!(
        gw["config_overrides"]["workers"], 2,
        "the escape hatch's keys stay"
    );
    assert_eq!(gw["cold_start_timeout"], 300);
    assert_ne!(
        view(&server.must_get(CLUSTER, &name)).revision,
        before.revision
    );
    tf.assert_no_changes("after the change");

    // Import: every setting read back, the plan right after is empty.
    tf.run_ok(&["state", "rm", "bentocloud_deployment.app"]);
    tf.import("bentocloud_deployment.app", &format!("{CLUSTER}/{name}"));
    let st = tf.resource("bentocloud_deployment.app");
    assert_eq!(st["scale_down_behavior"], "disabled", "{st}");
    assert_eq!(st["traffic_timeout"].as_f64(), Some(45.0), "{st}");
    assert_eq!(st["cold_start_timeout"], 300, "{st}");
    assert_eq!(str_map(&st["labels"]), map_of(&[("team", "ml")]), "{st}");
    tf.assert_no_changes("right after import");

    // Set elsewhere, on a setting Terraform configures for the entry service but not for
    // `Model`: a window on Model is kept by a Terraform update of something else; a changed
    // entry-service behaviour is drift that the next apply puts back.
    server.update_from(CLUSTER, &name, |req| {
        let m = req.services.get_mut("Model").expect("Model");
        let scaling = m.scaling.get_or_insert_with(Default::default);
        let mut p = scaling.policy.clone().unwrap_or_default();
        p["scale_down_stabilization_window"] = serde_json::json!(600);
        scaling.policy = Some(p);
        let g = req.services.get_mut("Gateway").expect("Gateway");
        let gp = g
            .scaling
            .as_mut()
            .and_then(|s| s.policy.as_mut())
            .expect("policy");
        gp["scale_up_behavior"] = serde_json::json!("stable");
    });
    let (code, out) = tf.plan_detailed_exitcode();
    assert_eq!(code, 2, "a changed behaviour is drift:\n{}", out.describe());
    let (b, a) = planned_change(&tf.plan_json(), "bentocloud_deployment.app");
    assert_eq!(b["scale_up_behavior"], "stable");
    assert_eq!(a["scale_up_behavior"], "fast");
    knobs.envs = "b";
    tf.write(&format!(
        "{}{}",
        provider(&defaults),
        resource(&name, &knobs)
    ));
    assert_clean_apply(&tf.apply(), "update envs with a window set elsewhere");
    let services = services_seen_by_bentoml(&server, &name);
    assert_eq!(
        services["Model"]["scaling"]["policy"]["scale_down_stabilization_window"], 600,
        "a setting set elsewhere and not configured is kept"
    );
    assert_eq!(
        services["Gateway"]["scaling"]["policy"]["scale_up_behavior"],
        "fast"
    );
    tf.assert_no_changes("after the update");

    // Removed from the configuration: kept on the server (server-side settings are never
    // reset by leaving them out), and the plan stays empty.
    knobs.configured = false;
    tf.write(&format!(
        "{}{}",
        provider(&defaults),
        resource(&name, &knobs)
    ));
    tf.assert_no_changes("settings left out keep what the server has");
    assert_clean_apply(&tf.apply(), "apply with the settings left out");
    let gw = services_seen_by_bentoml(&server, &name)["Gateway"].clone();
    assert_eq!(gw["scaling"]["policy"]["scale_down_behavior"], "disabled");
    assert_eq!(
        gw["config_overrides"]["traffic"]["timeout"].as_f64(),
        Some(45.0)
    );

    let out = tf.destroy();
    assert_eq!(out.code, 0, "destroy:\n{}", out.describe());
    assert!(server.get_deployment(CLUSTER, &name).is_none(), "destroyed");
}

/// `default_labels` reach every deployment and the fleet data source's label filter; a label
/// set elsewhere is shown in `effective_labels` and never removed; changing the defaults
/// updates the deployment.
pub fn default_labels_and_labels_set_elsewhere(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let name = dep_name("deflab", v);
    let tf = Tf::new(v, &server);
    let body = |defaults: &[(&str, &str)]| {
        format!(
            "{}resource \"bentocloud_deployment\" \"app\" {{\n  name = \"{name}\"\n  bento = \"iris:v1\"\n  labels = {{ team = \"ml\" }}\n}}\n\ndata \"bentocloud_deployments\" \"managed\" {{\n  labels = {{ managed-by = \"terraform\" }}\n  depends_on = [bentocloud_deployment.app]\n}}\n\noutput \"managed\" {{\n  value = [for d in data.bentocloud_deployments.managed.deployments : d.name]\n}}\n",
            provider(defaults)
        )
    };
    tf.write(&body(&[("managed-by", "terraform"), ("team", "platform")]));
    tf.init();
    assert_clean_apply(&tf.apply(), "create with default labels");
    let sv = view(&server.must_get(CLUSTER, &name));
    assert_eq!(
        sv.labels,
        map_of(&[("managed-by", "terraform"), ("team", "ml")]),
        "the resource's own value wins over a default of the same key"
    );
    assert_eq!(
        tf.outputs()["managed"],
        serde_json::json!([name.clone()]),
        "the fleet data source filters on a default label"
    );
    tf.assert_no_changes("after create");

    // A label set elsewhere: visible, not drift, never removed.
    server.update_from(CLUSTER, &name, |req| {
        let mut labels = req.labels.clone().unwrap_or_default();
        labels.push(bentocloud::api::LabelItem {
            key: "owner".into(),
            value: "console".into(),
        });
        req.labels = Some(labels);
    });
    tf.assert_no_changes("a label set elsewhere is not drift");
    tf.run_ok(&[
        "apply",
        "-refresh-only",
        "-auto-approve",
        "-input=false",
        "-no-color",
    ]);
    let st = tf.resource("bentocloud_deployment.app");
    assert_eq!(
        str_map(&st["effective_labels"]),
        map_of(&[
            ("managed-by", "terraform"),
            ("owner", "console"),
            ("team", "ml")
        ])
    );
    assert_eq!(str_map(&st["labels"]), map_of(&[("team", "ml")]));

    // Changing the defaults updates the deployment, and keeps the label set elsewhere.
    tf.write(&body(&[("managed-by", "tf"), ("cost-center", "42")]));
    let (code, out) = tf.plan_detailed_exitcode();
    assert_eq!(
        code,
        2,
        "changed defaults are a change:\n{}",
        out.describe()
    );
    assert_clean_apply(&tf.apply(), "apply changed defaults");
    let sv = view(&server.must_get(CLUSTER, &name));
    assert_eq!(
        sv.labels,
        map_of(&[
            ("cost-center", "42"),
            ("managed-by", "tf"),
            ("owner", "console"),
            ("team", "ml")
        ])
    );
    tf.assert_no_changes("after the defaults changed");

    // A managed label changed elsewhere is drift, put back by the next apply.
    server.update_from(CLUSTER, &name, |req| {
        for l in req.labels.iter_mut().flatten() {
            if l.key == "team" {
                l.value = "hijacked".into();
            }
        }
    });
    let (code, out) = tf.plan_detailed_exitcode();
    assert_eq!(
        code,
        2,
        "a managed label changed elsewhere is drift:\n{}",
        out.describe()
    );
    assert_clean_apply(&tf.apply(), "put the managed label back");
    assert_eq!(
        view(&server.must_get(CLUSTER, &name))
            .labels
            .get("team")
            .map(String::as_str),
        Some("ml")
    );
    let out = tf.destroy();
    assert_eq!(out.code, 0, "destroy:\n{}", out.describe());
}

/// Each bad value fails `terraform plan` on its attribute, naming the accepted words or the
/// fix, before anything is sent.
pub fn bad_values_fail_at_plan_time(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let tf = Tf::new(v, &server);
    tf.write(&provider(&[]));
    tf.init();
    let cases: [(&str, &[&str]); 7] = [
        (
            "autoscaling_metrics = { latency = \"10\" }",
            &[
                "autoscaling_metrics",
                "latency",
                "cpu, memory, gpu, qps, queue",
            ],
        ),
        (
            "autoscaling_metrics = { qps = \"lots\" }",
            &["autoscaling_metrics", "positive whole number"],
        ),
        (
            "scale_up_behavior = \"quick\"",
            &["scale_up_behavior", "disabled, stable, fast"],
        ),
        (
            "scale_down_stabilization_window = -5",
            &["scale_down_stabilization_window", "0 to 3600"],
        ),
        // Not a number: Terraform's own type check names the attribute.
        ("traffic_timeout = \"soon\"", &["traffic_timeout", "number"]),
        (
            "config_overrides = jsonencode({ traffic = { timeout = 5 } })",
            &["config_overrides", "traffic_timeout"],
        ),
        (
            "config_overrides = \"not json\"",
            &["config_overrides", "jsonencode"],
        ),
    ];
    for (line, needles) in cases {
        tf.write(&format!(
            "{}resource \"bentocloud_deployment\" \"bad\" {{\n  name = \"bad\"\n  bento = \"iris:v1\"\n  {line}\n}}\n",
            provider(&[])
        ));
        let out = tf.run_err(&["plan", "-input=false", "-no-color"]);
        let text = flat(&format!("{}{}", out.stdout, out.stderr));
        for n in needles {
            assert!(
                text.contains(n),
                "`{line}`: the error must name {n:?}:\n{text}"
            );
        }
        // The same in a `service` block, for the rules the provider checks.
        if !line.starts_with("traffic_timeout") {
            tf.write(&format!(
                "{}resource \"bentocloud_deployment\" \"bad\" {{\n  name = \"bad\"\n  bento = \"iris:v1\"\n  service {{\n    name = \"Other\"\n    {line}\n  }}\n}}\n",
                provider(&[])
            ));
            let out = tf.run_err(&["plan", "-input=false", "-no-color"]);
            let text = flat(&format!("{}{}", out.stdout, out.stderr));
            assert!(
                text.contains(needles[1]),
                "`{line}` in a service block:\n{text}"
            );
        }
    }
    assert!(
        server.all_deployment_ids().is_empty(),
        "nothing was created"
    );
}

/// A canary configured with the `canary` block: created, visible to the official client,
/// changed, removed; the plan stays empty in between.
pub fn canary_block_round_trips(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1", "iris:v2", "iris:v3"]);
    let name = dep_name("canary", v);
    let tf = Tf::new(v, &server);
    let body = |canary: &str| {
        format!(
            "{}resource \"bentocloud_deployment\" \"app\" {{\n  name  = \"{name}\"\n  bento = \"iris:v1\"\n{canary}}}\n",
            provider(&[])
        )
    };
    tf.write(&body(
        "  canary {\n    version {\n      name   = \"v2\"\n      bento  = \"iris:v2\"\n      weight = 20\n      envs   = { FLAVOUR = \"new\" }\n    }\n  }\n",
    ));
    tf.init();
    assert_clean_apply(&tf.apply(), "create with a canary");
    let out = server.bentoml(&[
        "deployment",
        "get",
        &name,
        "--cluster",
        CLUSTER,
        "-o",
        "json",
    ]);
    let seen: Json = serde_json::from_str(&out).expect("json");
    let mut canaries = Vec::new();
    objects_with(&seen, "canary", &mut canaries);
    let canary = canaries
        .iter()
        .map(|m| &m["canary"])
        .find(|c| !c.is_null())
        .unwrap_or_else(|| panic!("no canary in `bentoml deployment get`:\n{out}"));
    assert_eq!(canary["route_type"], "random", "{canary}");
    assert_eq!(canary["versions"]["v2"]["weight"], 20, "{canary}");
    assert!(
        canary["versions"]["v2"]["bento"]
            .as_str()
            .is_some_and(|b| b.contains("v2")),
        "{canary}"
    );
    let st = tf.resource("bentocloud_deployment.app");
    assert_eq!(st["canary"][0]["version"][0]["weight"], 20, "{st}");
    assert_eq!(st["canary"][0]["route_type"], "random", "{st}");
    tf.assert_no_changes("after create");

    // Changed: another weight and header routing.
    tf.write(&body(
        "  canary {\n    route_type = \"header\"\n    route_by   = \"x-canary\"\n    version {\n      name   = \"v2\"\n      bento  = \"iris:v3\"\n      weight = 40\n      envs   = { FLAVOUR = \"new\" }\n    }\n  }\n",
    ));
    assert_clean_apply(&tf.apply(), "change the canary");
    let d = server.must_get(CLUSTER, &name);
    let c = d.canary().expect("a canary");
    assert_eq!(c.route_type.as_deref(), Some("header"));
    assert_eq!(c.route_by.as_deref(), Some("x-canary"));
    let v2 = &c.versions.as_ref().expect("versions")["v2"];
    assert_eq!(v2.weight, Some(40));
    assert_eq!(v2.bento.as_deref(), Some("iris:v3"));
    assert_eq!(
        view(&d).bento,
        "iris:v1",
        "the deployment's own bento is untouched"
    );
    tf.assert_no_changes("after the change");

    // Removed: the canary goes away.
    tf.write(&body(""));
    assert_clean_apply(&tf.apply(), "remove the canary");
    let d = server.must_get(CLUSTER, &name);
    assert!(
        d.canary()
            .and_then(|c| c.versions)
            .is_none_or(|v| v.is_empty()),
        "removing the block removes the canary: {:?}",
        d.canary()
    );
    tf.assert_no_changes("after removing the canary");
    let out = tf.destroy();
    assert_eq!(out.code, 0, "destroy:\n{}", out.describe());
}
