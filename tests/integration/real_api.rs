//! Correct against the real BentoCloud, not only against our emulator: what a
//! Terraform update keeps that was set outside Terraform (a canary set with the official
//! client), the entry service of a multi-service bento when deployment documents embed no bento
//! manifest, and a `bento` without a version that must not move on an unrelated change.

use serde_json::Value as Json;

use crate::harness::*;

/// `bentoml deployment get NAME -o json`, parsed.
fn client_get(server: &Server, cluster: &str, name: &str) -> Json {
    let out = server.bentoml(&[
        "deployment",
        "get",
        name,
        "--cluster",
        cluster,
        "-o",
        "json",
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("get -o json is not JSON ({e}): {out}"))
}

/// A canary set with the official client (`bentoml deployment update --config-dict`) is still
/// there, as the official client shows it, after Terraform changes `envs`: the provider reads it
/// from the extra targets and `manifest.routing` and sends it back in its PUT (the PUT replaces
/// the whole configuration, API doc §5.1; the real API never returns `canary` inside
/// `targets[].config`, §3.3).
pub fn canary_set_with_the_official_client_survives_an_envs_update(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1", "iris:v2"]);
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    let name = dep_name("canary", v);
    let dep = Dep::new("app", &name, "iris:v1").envs(&[("A", "1")]);
    tf.write(&dep.hcl());
    tf.init();
    tf.apply();

    let canary = format!(
        r#"{{"name": "{name}", "canary": {{"route_type": "random", "versions": {{"v2": {{"bento": "iris:v2", "weight": 25, "envs": [{{"name": "CANARY", "value": "1"}}]}}}}}}}}"#
    );
    server.bentoml(&[
        "deployment",
        "update",
        &name,
        "--cluster",
        "local-east",
        "--config-dict",
        &canary,
    ]);
    server.wait_rolled_out("local-east", &name);
    let shown = client_get(&server, "local-east", &name);
    assert_eq!(
        shown["config"]["canary"]["versions"]["v2"]["weight"], 25,
        "the official client set the canary: {shown}"
    );
    tf.assert_no_changes("a canary set outside Terraform is not drift of a managed attribute");

    let dep = dep.envs(&[("A", "2")]);
    tf.write(&dep.hcl());
    tf.apply();

    let shown = client_get(&server, "local-east", &name);
    let c = &shown["config"]["canary"];
    assert_eq!(
        c["route_type"], "random",
        "canary lost by the update: {shown}"
    );
    assert_eq!(c["versions"]["v2"]["bento"], "iris:v2");
    assert_eq!(c["versions"]["v2"]["weight"], 25);
    assert_eq!(c["versions"]["v2"]["envs"][0]["name"], "CANARY");
    assert_eq!(shown["bento"], "iris:v1");
    assert_eq!(
        shown["config"]["envs"],
        serde_json::json!([{"name": "A", "value": "2"}]),
        "the update itself went through"
    );
    let d = server.must_get("local-east", &name);
    let targets: Vec<String> = d
        .latest_revision
        .iter()
        .flat_map(|r| r.targets.iter().flatten())
        .map(|t| t.meta.name.clone())
        .collect();
    assert_eq!(targets, ["main", "v2"]);
    tf.assert_no_changes("after the envs update");
}

/// With `omit_bento_manifest` the deployment documents carry no `bento.manifest`: the entry
/// service of a multi-service bento (`Web`, which is not the first service by name) comes from
/// the bento itself, so the top-level settings land on it, on create and on update, and read
/// back from it (an empty plan).
pub fn entry_service_from_the_bento_when_documents_omit_its_manifest(v: TfVersion) {
    let server = Server::start_with_config(r#"{"omit_bento_manifest": true}"#);
    server.register_bento("shop:v1", &["Web", "Model"]);
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    let name = dep_name("entry", v);
    let config = |max: i64, instance_type: &str| {
        format!(
            r#"resource "bentocloud_deployment" "app" {{
  name                = "{name}"
  bento               = "shop:v1"
  instance_type       = "{instance_type}"
  min_replicas        = 1
  max_replicas        = {max}
  deployment_strategy = "Recreate"

  service {{
    name          = "Model"
    instance_type = "cpu.1"
    min_replicas  = 1
    max_replicas  = 1
  }}
}}
"#
        )
    };
    tf.write(&config(3, "cpu.2"));
    tf.init();
    tf.apply();

    let (_, raw) = server.request(
        reqwest::Method::GET,
        &format!("/api/v2/deployments/{name}?cluster=local-east"),
        None,
    );
    let raw: Json = serde_json::from_str(&raw).expect("deployment JSON");
    assert!(
        raw["latest_revision"]["targets"][0]["bento"]
            .get("manifest")
            .is_none(),
        "the server must omit the manifest for this test to mean anything: {raw}"
    );
    let check = |max: i64, instance_type: &str, context: &str| {
        let d = server.must_get("local-east", &name);
        let sv = view(&d);
        let web = &sv.services["Web"];
        assert_eq!(
            web.instance_type.as_deref(),
            Some(instance_type),
            "{context}: top-level instance_type on the entry service"
        );
        let sc = web.scaling.clone().unwrap_or_default();
        assert_eq!(
            (sc.min_replicas, sc.max_replicas),
            (Some(1), Some(max)),
            "{context}: top-level scaling on the entry service"
        );
        assert_eq!(
            web.deployment_strategy.as_deref(),
            Some("Recreate"),
            "{context}: strategy"
        );
        let model = &sv.services["Model"];
        assert_eq!(model.instance_type.as_deref(), Some("cpu.1"), "{context}");
        let sc = model.scaling.clone().unwrap_or_default();
        assert_eq!((sc.min_replicas, sc.max_replicas), (Some(1), Some(1)));
        let st = tf.resource("bentocloud_deployment.app");
        assert_eq!(st["instance_type"], instance_type, "{context}: state");
        assert_eq!(st["max_replicas"], max, "{context}: state");
    };
    check(3, "cpu.2", "after create");
    tf.assert_no_changes("after create");

    tf.write(&config(4, "cpu.4"));
    tf.apply();
    check(4, "cpu.4", "after update");
    tf.assert_no_changes("after update");

    // Both data sources show every service: the entry one named and at the top level, the
    // other in `service`.
    tf.write(&format!(
        r#"{}
data "bentocloud_deployment" "shown" {{
  name       = bentocloud_deployment.app.name
}}
data "bentocloud_deployments" "fleet" {{
  search     = bentocloud_deployment.app.name
  depends_on = [bentocloud_deployment.app]
}}
output "one" {{ value = data.bentocloud_deployment.shown }}
output "fleet" {{ value = data.bentocloud_deployments.fleet.deployments }}
"#,
        config(4, "cpu.4")
    ));
    tf.apply();
    let outputs = tf.outputs();
    let fleet = outputs["fleet"].as_array().cloned().unwrap_or_default();
    assert_eq!(fleet.len(), 1, "{fleet:?}");
    for (what, d) in [
        ("bentocloud_deployment", &outputs["one"]),
        ("bentocloud_deployments", &fleet[0]),
    ] {
        assert_eq!(d["entry_service"], "Web", "{what}: {d}");
        assert_eq!(
            d["instance_type"], "cpu.4",
            "{what}: the entry service's settings"
        );
        assert_eq!(d["max_replicas"], 4, "{what}");
        let others = d["service"].as_array().cloned().unwrap_or_default();
        assert_eq!(others.len(), 1, "{what}: every other service: {d}");
        assert_eq!(others[0]["name"], "Model", "{what}");
        assert_eq!(others[0]["instance_type"], "cpu.1", "{what}");
        assert_eq!(others[0]["max_replicas"], 1, "{what}");
    }
}

/// `bento = "iris"` (no version): a newer version registered between applies is not picked up
/// by an `envs` change (the PUT names the running `iris:v1`); changing `bento` resolves the
/// newest at apply and `deployed_bento` shows it.
pub fn bento_without_version_keeps_the_running_version(v: TfVersion) {
    let server = Server::start();
    server.register_bento("iris:v1", &[]);
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    let name = dep_name("latest", v);
    let dep = Dep::new("app", &name, "iris").envs(&[("A", "1")]);
    tf.write(&dep.hcl());
    tf.init();
    tf.apply();
    let st = tf.resource(&dep.addr());
    assert_eq!(st["bento"], "iris");
    assert_eq!(st["deployed_bento"], "iris:v1");

    server.register_bento("iris:v2", &[]);
    let dep = dep.envs(&[("A", "2")]);
    tf.write(&dep.hcl());
    tf.apply();
    let sv = view(&server.must_get("local-east", &name));
    assert_eq!(
        sv.bento, "iris:v1",
        "an envs change moved the deployment to a newer push"
    );
    assert_eq!(sv.envs, map_of(&[("A", "2")]));
    let st = tf.resource(&dep.addr());
    assert_eq!(st["deployed_bento"], "iris:v1");
    assert_eq!(st["bento"], "iris");
    tf.assert_no_changes("after the envs change");

    let mut dep = dep;
    dep.bento = "iris:latest".into();
    tf.write(&dep.hcl());
    tf.apply();
    let sv = view(&server.must_get("local-east", &name));
    assert_eq!(sv.bento, "iris:v2", "a changed bento resolves the newest");
    let st = tf.resource(&dep.addr());
    assert_eq!(st["deployed_bento"], "iris:v2");
    assert_eq!(st["bento"], "iris:latest");
    tf.assert_no_changes("after the bento change");
}
