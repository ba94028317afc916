//! Import, drift from out-of-band changes through the API, and out-of-band deletes.

use crate::harness::*;

/// Deployments created through the API (as the bentoml CLI would) are imported by
/// `cluster/name` and by `name` (the provider's default cluster); the plan afterwards is
/// empty, and the state matches the server. A malformed ID fails and names the format.
pub fn import_both_id_forms_then_empty_plan(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1", "summarizer:v2"]);
    server.create_secret("imp-secret", "TOKEN", "t");

    // Created out of Terraform, through the API.
    let west_name = dep_name("imp-west", v);
    let east_name = dep_name("imp-east", v);
    let mut west_spec = Spec::new(&west_name, "iris:v1")
        .label("team", "ml")
        .label("env", "prod");
    west_spec.envs = vec![("MODE".into(), "fast".into())];
    west_spec.min = 2;
    west_spec.max = 3;
    west_spec.instance_type = "cpu.2".into();
    let mut west_req = west_spec.create_request();
    west_req.spec.secrets = Some(vec!["imp-secret".into()]);
    server.create_deployment("local-west", &west_req);
    let east_spec = Spec::new(&east_name, "summarizer:v2").label("team", "nlp");
    server.create_deployment("local-east", &east_spec.create_request());
    for (c, n) in [("local-west", &west_name), ("local-east", &east_name)] {
        poll_until(
            &format!("{c}/{n} to be running before import"),
            std::time::Duration::from_secs(120),
            || (view(&server.must_get(c, n)).status == "running").then_some(()),
        );
    }

    // The config that describes them.
    let west = Dep::new("west", &west_name, "iris:v1")
        .cluster("local-west")
        .labels(&[("team", "ml"), ("env", "prod")])
        .envs(&[("MODE", "fast")])
        .secrets(&["imp-secret"])
        .instance_type("cpu.2")
        .scaling(2, 3);
    let east = Dep::new("east", &east_name, "summarizer:v2")
        .labels(&[("team", "nlp")])
        .instance_type("cpu.1")
        .scaling(1, 1);
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    tf.write(&format!("{}\n{}", west.hcl(), east.hcl()));
    tf.init();

    // A malformed ID is refused, and the error says which forms are accepted.
    let bad = tf.run_err(&["import", "-input=false", "-no-color", &west.addr(), "a/b/c"]);
    assert!(
        bad.stderr.contains("cluster/name") || bad.stdout.contains("cluster/name"),
        "the import error must name the expected ID format `cluster/name`:\n{}",
        bad.describe()
    );
    // A well-formed ID of a deployment that does not exist is refused too.
    let missing = tf.run_err(&[
        "import",
        "-input=false",
        "-no-color",
        &west.addr(),
        "local-west/does-not-exist",
    ]);
    assert!(
        tf.state_addresses().is_empty(),
        "failed imports must not write state:\n{}",
        missing.describe()
    );

    tf.import(&west.addr(), &format!("local-west/{west_name}"));
    tf.import(&east.addr(), &east_name);

    let sv_west = view(&server.must_get("local-west", &west_name));
    let sv_east = view(&server.must_get("local-east", &east_name));
    let st_west = tf.resource(&west.addr());
    let st_east = tf.resource(&east.addr());
    assert_eq!(st_west["id"], format!("local-west/{west_name}"));
    assert_eq!(
        st_east["id"],
        format!("local-east/{east_name}"),
        "import by bare name uses the provider's default cluster"
    );
    assert_state_matches_server(&st_west, &sv_west, "imported by cluster/name");
    assert_state_matches_server(&st_east, &sv_east, "imported by name");

    tf.assert_no_changes("plan right after import");
    // Applying the imported config changes nothing on the server.
    tf.apply();
    assert_eq!(
        view(&server.must_get("local-west", &west_name)).revision,
        sv_west.revision,
        "apply after import with a matching config must not PUT a new revision"
    );
    assert_eq!(
        server.all_deployment_ids(),
        set_of(&[
            &format!("local-west/{west_name}"),
            &format!("local-east/{east_name}"),
        ])
    );
}

/// Someone changes the bento and the scaling through the API (a CI `bentoml deployment
/// update`): the plan shows the drift as an in-place update from the server's values back to
/// the config's, and apply restores the config on the server.
pub fn out_of_band_change_shows_as_drift(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1", "iris:v9"]);
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    let name = dep_name("drift", v);
    let dep = Dep::new("app", &name, "iris:v1")
        .labels(&[("team", "ml")])
        .envs(&[("A", "1")])
        .scaling(1, 2);
    tf.write(&dep.hcl());
    tf.init();
    tf.apply();
    tf.assert_no_changes("before the out-of-band change");
    let before = view(&server.must_get("local-east", &name));

    // Out of band: PUT with another bento, other scaling, another env.
    let changed = server.update_from("local-east", &name, |req| {
        req.bento = "iris:v9".into();
        let svc = req.services.values_mut().next().expect("entry service");
        let scaling = svc.scaling.get_or_insert_with(Default::default);
        scaling.min_replicas = Some(3);
        scaling.max_replicas = Some(5);
        req.envs = Some(vec![bentocloud::api::EnvItem {
            name: "A".into(),
            value: "changed".into(),
        }]);
    });
    let drifted = view(&changed);
    assert_eq!(drifted.bento, "iris:v9", "the out-of-band PUT took effect");
    assert_ne!(drifted.revision, before.revision);

    let (code, out) = tf.plan_detailed_exitcode();
    assert_eq!(
        code,
        2,
        "the drift must show as changes:\n{}",
        out.describe()
    );
    let plan = tf.plan_json();
    assert_eq!(
        planned_actions(&plan, &dep.addr()),
        vec!["update"],
        "drift is corrected in place"
    );
    let (b, a) = planned_change(&plan, &dep.addr());
    assert_eq!(b["bento"], "iris:v9", "plan's before = the server's bento");
    assert_eq!(a["bento"], "iris:v1", "plan's after = the config's bento");
    assert_eq!(
        b["min_replicas"], 3,
        "plan's before = the server's min_replicas"
    );
    assert_eq!(a["min_replicas"], 1);
    assert_eq!(b["max_replicas"], 5);
    assert_eq!(a["max_replicas"], 2);
    assert_eq!(str_map(&b["envs"]), map_of(&[("A", "changed")]));
    assert_eq!(str_map(&a["envs"]), map_of(&[("A", "1")]));

    tf.apply();
    server.assert_latest_serves("local-east", &name, "after correcting the drift");
    let restored = server.settled_view("local-east", &name);
    dep.assert_server_has(&restored, "after correcting the drift");
    assert_ne!(
        restored.revision, drifted.revision,
        "the correction is a new revision"
    );
    assert_state_matches_server(&tf.resource(&dep.addr()), &restored, "after correcting");
    tf.assert_no_changes("after correcting the drift");
}

/// The deployment is deleted through the API: the plan wants to create it again, and apply
/// does, with the same id.
pub fn out_of_band_delete_is_recreated(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v1"]);
    let tf = Tf::new(v, &server);
    let name = dep_name("phoenix", v);
    let dep = Dep::new("app", &name, "iris:v1")
        .cluster("local-west")
        .labels(&[("team", "ml")])
        .scaling(1, 2);
    tf.write(&dep.hcl());
    tf.init();
    tf.apply();
    let first = view(&server.must_get("local-west", &name));

    server.delete_deployment("local-west", &name);
    assert!(server.all_deployment_ids().is_empty());

    let plan = tf.plan_json();
    assert_eq!(
        planned_actions(&plan, &dep.addr()),
        vec!["create"],
        "a deployment deleted out of band must be planned for creation"
    );
    tf.apply();
    let again = view(&server.must_get("local-west", &name));
    dep.assert_server_has(&again, "after re-creation");
    assert_eq!(again.status, "running");
    assert_ne!(
        again.revision, first.revision,
        "a new deployment has a new revision"
    );
    let st = tf.resource(&dep.addr());
    assert_eq!(st["id"], format!("local-west/{name}"));
    assert_state_matches_server(&st, &again, "after re-creation");
    tf.assert_no_changes("after re-creation");
}
