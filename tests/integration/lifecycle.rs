//! Create, read, update in place, replace, destroy: `bentocloud_deployment` through the whole
//! Terraform lifecycle, checked against the server's own documents.

use crate::harness::*;

/// apply creates what the config says (server and state agree, status running, computed
/// defaults filled in); the next plan is empty.
pub fn create_then_empty_plan(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1", "summarizer:v1"]);
    server.create_secret("db-creds", "DB_PASSWORD", "s3cret");
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");

    let full = Dep::new("full", &dep_name("full", v), "iris:v1")
        .labels(&[("team", "ml"), ("tier", "gold")])
        .envs(&[("A", "1"), ("B", "two words")])
        .secrets(&["db-creds"])
        .instance_type("cpu.2")
        .scaling(1, 3);
    let full = Dep {
        access_authorization: Some(true),
        ..full
    };
    // Only the required attributes: cluster from the provider, the rest server/provider defaults.
    let minimal = Dep::new("minimal", &dep_name("minimal", v), "summarizer:v1");
    // An explicit cluster that differs from the provider's default.
    let west = Dep::new("west", &dep_name("west", v), "iris:v1").cluster("local-west");

    tf.write(&format!(
        "{}\n{}\n{}",
        full.hcl(),
        minimal.hcl(),
        west.hcl()
    ));
    tf.init();
    tf.apply();

    // full: every attribute reached the server, and the state mirrors the server.
    let d = server.must_get("local-east", &full.name);
    let sv = view(&d);
    full.assert_server_has(&sv, "after create");
    assert_eq!(sv.status, "running", "create waits for running: {d:?}");
    assert!(
        sv.access_authorization,
        "access_authorization reached the server"
    );
    assert!(!sv.revision.is_empty(), "server has a revision uid");
    let st = tf.resource(&full.addr());
    assert_state_matches_server(&st, &sv, "full after create");
    for computed in ["created_at", "updated_at", "creator"] {
        assert!(
            st[computed].as_str().is_some_and(|s| !s.is_empty()),
            "computed {computed} is empty in state: {st}"
        );
    }
    assert!(st["url"].is_string(), "url is a string in state: {st}");
    assert_eq!(
        st["wait_for_rollout"], true,
        "wait_for_rollout defaults to true"
    );

    // minimal: defaults (min 1, max 1, RollingUpdate, the server's default instance type),
    // cluster from the provider's `cluster`.
    let d = server.must_get("local-east", &minimal.name);
    let sv = view(&d);
    minimal.assert_server_has(&sv, "minimal after create");
    assert_eq!(sv.min_replicas, Some(1), "default min_replicas");
    assert_eq!(sv.max_replicas, Some(1), "default max_replicas");
    assert_eq!(
        sv.strategy.as_deref(),
        Some("RollingUpdate"),
        "default strategy"
    );
    assert_eq!(
        sv.instance_type.as_deref(),
        Some("cpu.1"),
        "server's default instance type"
    );
    let st = tf.resource(&minimal.addr());
    assert_state_matches_server(&st, &sv, "minimal after create");
    assert_eq!(st["access_authorization"], false);

    // west: on the cluster it names, not on the provider's default one.
    assert!(
        server.get_deployment("local-east", &west.name).is_none(),
        "west deployment must not be on local-east"
    );
    let sv = view(&server.must_get("local-west", &west.name));
    west.assert_server_has(&sv, "west after create");
    assert_state_matches_server(&tf.resource(&west.addr()), &sv, "west after create");

    assert_eq!(
        server.all_deployment_ids(),
        set_of(&[
            &format!("local-east/{}", full.name),
            &format!("local-east/{}", minimal.name),
            &format!("local-west/{}", west.name),
        ]),
        "exactly the configured deployments exist on the server"
    );

    tf.assert_no_changes("plan right after create");
    // And again after a refresh-only round trip through the server.
    tf.apply();
    tf.assert_no_changes("plan after a second apply");
}

/// One in-place change at a time: bento, scaling and instance type, envs, labels, secrets.
/// Each one is planned as an update (never a replacement), keeps the id, makes a new revision
/// on the server, and the server then holds the new values; the next plan is empty.
pub fn update_in_place_keeps_id(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1", "iris:v2"]);
    server.create_secret("s-one", "ONE", "1");
    server.create_secret("s-two", "TWO", "2");
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");

    let name = dep_name("upd", v);
    let mut dep = Dep::new("app", &name, "iris:v1")
        .labels(&[("team", "ml"), ("stage", "dev")])
        .envs(&[("KEEP", "same"), ("CHANGE", "old"), ("DROP", "x")])
        .secrets(&["s-one"])
        .instance_type("cpu.1")
        .scaling(1, 2);
    tf.write(&dep.hcl());
    tf.init();
    tf.apply();
    let id = format!("local-east/{name}");
    let first = view(&server.must_get("local-east", &name));
    dep.assert_server_has(&first, "initial");
    assert_eq!(tf.resource(&dep.addr())["id"], id);

    let mut last_revision = first.revision.clone();
    let mut step = |label: &str, dep: &Dep| {
        tf.write(&dep.hcl());
        let plan = tf.plan_json();
        assert_eq!(
            planned_actions(&plan, &dep.addr()),
            vec!["update".to_string()],
            "{label}: must be an in-place update"
        );
        tf.apply();
        // The update waited until its revision serves (the reported status may lag it).
        server.assert_latest_serves("local-east", &dep.name, label);
        let sv = server.settled_view("local-east", &dep.name);
        dep.assert_server_has(&sv, label);
        assert_ne!(
            sv.revision, last_revision,
            "{label}: the server must have a new revision after the update"
        );
        let st = tf.resource(&dep.addr());
        assert_eq!(st["id"], id, "{label}: id must not change");
        assert_state_matches_server(&st, &sv, label);
        tf.assert_no_changes(&format!("plan after {label}"));
        last_revision = sv.revision;
    };

    dep.bento = "iris:v2".into();
    step("bento v1 -> v2", &dep);

    dep = dep.scaling(2, 4).instance_type("cpu.2");
    step("scaling 1..2 -> 2..4 and cpu.1 -> cpu.2", &dep);

    dep = dep.envs(&[("KEEP", "same"), ("CHANGE", "new"), ("ADDED", "yes")]);
    step("envs changed, added, removed", &dep);

    dep = dep.labels(&[("team", "platform"), ("owner", "alice")]);
    step("labels changed, added, removed", &dep);

    dep = dep.secrets(&["s-two"]);
    step("secrets s-one -> s-two", &dep);

    dep = dep.secrets(&[]).envs(&[]).labels(&[]);
    step("secrets, envs and labels removed entirely", &dep);

    assert_eq!(
        server.all_deployment_ids(),
        set_of(&[&id]),
        "in-place updates never create or delete deployments"
    );
}

/// Changing `name` or `cluster` replaces: the plan says delete+create, the old deployment is
/// gone from the server afterwards and the new one is there.
pub fn name_or_cluster_change_replaces(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");

    let old_name = dep_name("first", v);
    let mut dep = Dep::new("app", &old_name, "iris:v1").labels(&[("team", "ml")]);
    tf.write(&dep.hcl());
    tf.init();
    tf.apply();
    assert!(server.get_deployment("local-east", &old_name).is_some());

    // Rename.
    let new_name = dep_name("second", v);
    dep.name = new_name.clone();
    tf.write(&dep.hcl());
    let plan = tf.plan_json();
    let mut actions = planned_actions(&plan, &dep.addr());
    actions.sort();
    assert_eq!(actions, vec!["create", "delete"], "a rename must replace");
    tf.apply();
    assert!(
        server.get_deployment("local-east", &old_name).is_none(),
        "the old deployment {old_name} must be gone after the rename"
    );
    let sv = view(&server.must_get("local-east", &new_name));
    dep.assert_server_has(&sv, "after rename");
    let st = tf.resource(&dep.addr());
    assert_eq!(st["id"], format!("local-east/{new_name}"));
    assert_state_matches_server(&st, &sv, "after rename");
    tf.assert_no_changes("after rename");

    // Move to the other cluster (explicit `cluster` overriding the provider's default).
    dep = dep.cluster("local-west");
    tf.write(&dep.hcl());
    let plan = tf.plan_json();
    let mut actions = planned_actions(&plan, &dep.addr());
    actions.sort();
    assert_eq!(
        actions,
        vec!["create", "delete"],
        "a cluster change must replace"
    );
    tf.apply();
    assert!(
        server.get_deployment("local-east", &new_name).is_none(),
        "the deployment must be gone from local-east after moving to local-west"
    );
    let sv = view(&server.must_get("local-west", &new_name));
    dep.assert_server_has(&sv, "after cluster change");
    let st = tf.resource(&dep.addr());
    assert_eq!(st["id"], format!("local-west/{new_name}"));
    assert_state_matches_server(&st, &sv, "after cluster change");
    tf.assert_no_changes("after cluster change");

    assert_eq!(
        server.all_deployment_ids(),
        set_of(&[&format!("local-west/{new_name}")]),
        "only the replacement exists"
    );
}

/// destroy removes every deployment it created, on both clusters; the server is empty.
pub fn destroy_leaves_server_empty(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1", "summarizer:v3"]);
    let tf = Tf::new(v, &server);
    let a = Dep::new("a", &dep_name("gone-a", v), "iris:v1").cluster("local-east");
    let b = Dep::new("b", &dep_name("gone-b", v), "iris:v1")
        .cluster("local-west")
        .scaling(2, 3);
    let c = Dep::new("c", &dep_name("gone-c", v), "summarizer:v3"); // server's default cluster
    tf.write(&format!("{}\n{}\n{}", a.hcl(), b.hcl(), c.hcl()));
    tf.init();
    tf.apply();
    assert_eq!(
        server.all_deployment_ids(),
        set_of(&[
            &format!("local-east/{}", a.name),
            &format!("local-west/{}", b.name),
            &format!("local-east/{}", c.name),
        ]),
        "after apply (c lands on the server's default cluster local-east)"
    );
    assert_eq!(tf.resource(&c.addr())["cluster"], "local-east");

    tf.destroy();
    assert_eq!(
        server.all_deployment_ids(),
        set_of(&[]),
        "destroy must leave the server without deployments"
    );
    assert!(
        tf.state_addresses().is_empty(),
        "destroy must leave the state empty: {:?}",
        tf.state_addresses()
    );
    // With the resources removed from the config there is nothing left to do.
    tf.write("");
    tf.assert_no_changes("plan after destroy with the config removed");
}

/// A bento whose image build fails: apply fails (create waits for `running` and does not
/// report success for a deployment that can never run), and the error says why.
pub fn failed_rollout_fails_apply(v: TfVersion) {
    let server = Server::start();
    server.bentos_add(
        "broken:v1",
        &BentoBehaviour {
            image_build_seconds: Some(0.5),
            image_build_fails: true,
            ..Default::default()
        },
    );
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    let name = dep_name("broken", v);
    let dep = Dep::new("app", &name, "broken:v1");
    tf.write(&dep.hcl());
    tf.init();
    let out = tf.apply_err();
    let text = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        text.contains("image-build-failed") || text.contains("image build"),
        "the error must say the image build failed:\n{}",
        out.describe()
    );
    let d = server.must_get("local-east", &name);
    assert_eq!(
        d.status,
        bentocloud::api::DeploymentStatus::ImageBuildFailed,
        "server status"
    );
}

/// A multi-service bento: the top-level attributes configure the entry service, `service`
/// blocks the others; both reach the server, an in-place change of one service keeps the id
/// and makes a new revision, and plans are empty afterwards.
pub fn multi_service_blocks(v: TfVersion) {
    let server = Server::start();
    server.bentos_add(
        "pipeline:v1",
        &BentoBehaviour {
            services: vec!["api".into(), "worker".into()],
            ..Default::default()
        },
    );
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    let name = dep_name("multi", v);
    let config = |worker_max: i64, worker_type: &str| {
        format!(
            r#"resource "bentocloud_deployment" "app" {{
  name          = "{name}"
  bento         = "pipeline:v1"
  instance_type = "cpu.2"
  min_replicas  = 1
  max_replicas  = 2

  service {{
    name                = "worker"
    instance_type       = "{worker_type}"
    min_replicas        = 1
    max_replicas        = {worker_max}
    deployment_strategy = "Recreate"
    envs                = {{ QUEUE = "jobs" }}
  }}
}}
"#
        )
    };
    tf.write(&config(3, "gpu.t4.1"));
    tf.init();
    tf.apply();

    let check = |worker_max: i64, worker_type: &str, context: &str| {
        // What the apply's wait must leave: the latest revision serving. The API's status
        // catches up at its next sync (the wait may end on the pods' evidence before it).
        server.assert_latest_serves("local-east", &name, context);
        let sv = server.settled_view("local-east", &name);
        let d = server.must_get("local-east", &name);
        let api = sv
            .services
            .get("api")
            .unwrap_or_else(|| panic!("{context}: no `api` service on the server: {d:?}"));
        let worker = sv
            .services
            .get("worker")
            .unwrap_or_else(|| panic!("{context}: no `worker` service on the server: {d:?}"));
        assert_eq!(
            api.instance_type.as_deref(),
            Some("cpu.2"),
            "{context}: api type"
        );
        let s = api.scaling.clone().unwrap_or_default();
        assert_eq!(
            (s.min_replicas, s.max_replicas),
            (Some(1), Some(2)),
            "{context}: api scaling"
        );
        assert_eq!(
            worker.instance_type.as_deref(),
            Some(worker_type),
            "{context}: worker type"
        );
        let s = worker.scaling.clone().unwrap_or_default();
        assert_eq!(
            (s.min_replicas, s.max_replicas),
            (Some(1), Some(worker_max)),
            "{context}: worker scaling"
        );
        assert_eq!(
            worker.deployment_strategy.as_deref(),
            Some("Recreate"),
            "{context}: worker strategy"
        );
        let envs: std::collections::BTreeMap<String, String> = worker
            .envs
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        assert_eq!(envs, map_of(&[("QUEUE", "jobs")]), "{context}: worker envs");
        assert_eq!(sv.status, "running", "{context}: status");
        sv
    };
    let first = check(3, "gpu.t4.1", "after create");
    tf.assert_no_changes("after creating a multi-service deployment");

    tf.write(&config(5, "gpu.l4.1"));
    let plan = tf.plan_json();
    assert_eq!(
        planned_actions(&plan, "bentocloud_deployment.app"),
        vec!["update"]
    );
    tf.apply();
    let second = check(5, "gpu.l4.1", "after changing the worker service");
    assert_ne!(second.revision, first.revision, "a new revision");
    let st = tf.resource("bentocloud_deployment.app");
    assert_eq!(st["id"], format!("local-east/{name}"));
    assert_eq!(st["revision"], second.revision);
    tf.assert_no_changes("after changing the worker service");
}
