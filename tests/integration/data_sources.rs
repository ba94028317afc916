//! The data sources: `bentocloud_deployments` (the fleet, with filters) and
//! `bentocloud_deployment` (one).

use crate::harness::*;
use std::collections::{BTreeMap, BTreeSet};

/// How many deployments the fleet test creates: more than one page of the provider's client
/// (`bentocloud::client::PAGE_SIZE`), so a data source that reads only the first page cannot
/// pass. (`bentocloud-local` does not cap `count`, so a smaller fleet would fit in one page.)
fn fleet_size() -> usize {
    bentocloud::client::PAGE_SIZE as usize + 25
}

/// Rollout simulation for hundreds of deployments is cheap with a slow reconciler tick; this
/// test only reads, so it does not wait on rollouts.
const FLEET_SERVER_CONFIG: &str = r#"{"timing":{"tick_ms":1000}}"#;

/// One deployment of the fleet, as created through the API.
#[derive(Debug, Clone)]
struct Member {
    cluster: &'static str,
    name: String,
    repo: &'static str,
    team: &'static str,
    env: &'static str,
    /// Label `fleet=yes` on nearly all members, so a label filter spans several pages.
    fleet: bool,
}

impl Member {
    fn id(&self) -> String {
        format!("{}/{}", self.cluster, self.name)
    }

    fn labels(&self) -> Vec<(&'static str, &'static str)> {
        let mut l = vec![("team", self.team), ("env", self.env)];
        if self.fleet {
            l.push(("fleet", "yes"));
        }
        l
    }
}

fn fleet() -> Vec<Member> {
    (0..fleet_size())
        .map(|i| Member {
            // Two clusters, unevenly: a third west, two thirds east.
            cluster: if i % 3 == 0 {
                "local-west"
            } else {
                "local-east"
            },
            // Names unique across clusters; "web" and "batch" for `search`.
            name: format!("{}-{i:03}", if i % 2 == 0 { "web" } else { "batch" }),
            repo: if i % 4 < 2 { "iris" } else { "summarizer" },
            team: ["ml", "infra", "data"][i % 3 / 2 + (i % 5 == 0) as usize],
            env: if i % 7 < 3 { "prod" } else { "dev" },
            fleet: i % 50 != 7,
        })
        .collect()
}

/// The names of the members that satisfy `pred`.
fn expect(members: &[Member], pred: impl Fn(&Member) -> bool) -> BTreeSet<String> {
    members
        .iter()
        .filter(|m| pred(m))
        .map(|m| m.name.clone())
        .collect()
}

/// Each filter of `bentocloud_deployments` alone and combined, across two clusters and more
/// than one page, returns exactly the expected set (compared as `names` and as `deployments`
/// ids); the objects carry the server's values.
pub fn fleet_filters_alone_and_combined(v: TfVersion) {
    let server = Server::start_with_config(FLEET_SERVER_CONFIG);
    server.register_bentos(&["iris:v1", "summarizer:v1"]);
    let members = fleet();
    let t0 = std::time::Instant::now();
    for m in &members {
        // min_replicas 0: an idle deployment scales to zero, so hundreds of them run no
        // replica processes in bentocloud-local (each replica is a real HTTP server).
        let mut spec = Spec::new(&m.name, &format!("{}:v1", m.repo));
        spec.min = 0;
        for (k, v) in m.labels() {
            spec = spec.label(k, v);
        }
        server.create_deployment(m.cluster, &spec.create_request());
    }
    assert_eq!(
        server.all_deployment_ids(),
        members.iter().map(Member::id).collect::<BTreeSet<_>>(),
        "the fleet exists on the server"
    );
    eprintln!(
        "[fleet] {} deployments created and listed in {:.1}s",
        members.len(),
        t0.elapsed().as_secs_f64()
    );
    // Sanity of the fixture itself: every filter below selects a proper, non-empty subset.
    let west = |m: &Member| m.cluster == "local-west";

    struct Case {
        label: &'static str,
        hcl: String,
        want: BTreeSet<String>,
    }
    let cases = vec![
        Case {
            label: "all",
            hcl: String::new(),
            want: expect(&members, |_| true),
        },
        Case {
            label: "cluster",
            hcl: r#"cluster = "local-west""#.into(),
            want: expect(&members, west),
        },
        Case {
            label: "search",
            hcl: r#"search = "web""#.into(),
            want: expect(&members, |m| m.name.contains("web")),
        },
        Case {
            label: "query",
            hcl: r#"query = "bento:summarizer""#.into(),
            want: expect(&members, |m| m.repo == "summarizer"),
        },
        Case {
            label: "labels_one",
            hcl: format!("labels = {}", hcl_map(&[("team", "ml")])),
            want: expect(&members, |m| m.team == "ml"),
        },
        Case {
            label: "labels_wide",
            hcl: format!("labels = {}", hcl_map(&[("fleet", "yes")])),
            want: expect(&members, |m| m.fleet),
        },
        Case {
            label: "labels_two",
            hcl: format!("labels = {}", hcl_map(&[("team", "ml"), ("env", "prod")])),
            want: expect(&members, |m| m.team == "ml" && m.env == "prod"),
        },
        Case {
            label: "cluster_labels",
            hcl: format!(
                "cluster = \"local-east\"\n  labels = {}",
                hcl_map(&[("env", "dev")])
            ),
            want: expect(&members, |m| m.cluster == "local-east" && m.env == "dev"),
        },
        Case {
            label: "query_labels",
            hcl: format!(
                "query = \"bento:iris\"\n  labels = {}",
                hcl_map(&[("team", "infra")])
            ),
            want: expect(&members, |m| m.repo == "iris" && m.team == "infra"),
        },
        Case {
            label: "all_four",
            hcl: format!(
                "cluster = \"local-east\"\n  search = \"batch\"\n  query = \"bento:iris\"\n  labels = {}",
                hcl_map(&[("env", "prod")])
            ),
            want: expect(&members, |m| {
                m.cluster == "local-east"
                    && m.name.contains("batch")
                    && m.repo == "iris"
                    && m.env == "prod"
            }),
        },
        Case {
            label: "nothing",
            hcl: r#"search = "no-such-deployment""#.into(),
            want: BTreeSet::new(),
        },
    ];
    for c in &cases {
        if c.label != "all" && c.label != "nothing" {
            assert!(
                !c.want.is_empty() && c.want.len() < members.len(),
                "fixture: case {} must select a proper non-empty subset, selects {}",
                c.label,
                c.want.len()
            );
        }
    }
    let page = bentocloud::client::PAGE_SIZE as usize;
    assert!(
        cases.iter().filter(|c| c.want.len() > page).count() >= 2,
        "fixture: the unfiltered case and a filtered one must span more than one page of {page}"
    );

    let tf = Tf::new(v, &server);
    let body: String = cases
        .iter()
        .map(|c| {
            format!(
                "data \"bentocloud_deployments\" \"{}\" {{\n  {}\n}}\n",
                c.label, c.hcl
            )
        })
        .collect();
    tf.write(&body);
    tf.init();
    tf.apply();
    let state = tf.show_json();

    let by_name: BTreeMap<&str, &Member> = members.iter().map(|m| (m.name.as_str(), m)).collect();
    for c in &cases {
        let addr = format!("data.bentocloud_deployments.{}", c.label);
        let ds =
            find_resource(&state, &addr).unwrap_or_else(|| panic!("{addr} missing from the state"));
        let names: Vec<String> = ds["names"]
            .as_array()
            .unwrap_or_else(|| panic!("{addr}.names is not a list: {ds}"))
            .iter()
            .map(|n| n.as_str().expect("name is a string").to_string())
            .collect();
        let name_set: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(
            names.len(),
            name_set.len(),
            "{addr}: names has duplicates: {names:?}"
        );
        assert_eq!(
            name_set,
            c.want,
            "{addr} ({}) returned the wrong set: missing {:?}, unexpected {:?}",
            c.hcl,
            c.want.difference(&name_set).collect::<Vec<_>>(),
            name_set.difference(&c.want).collect::<Vec<_>>()
        );
        let objects = ds["deployments"]
            .as_array()
            .unwrap_or_else(|| panic!("{addr}.deployments is not a list: {ds}"));
        assert_eq!(objects.len(), c.want.len(), "{addr}: deployments vs names");
        for o in objects {
            let name = o["name"].as_str().expect("object has a name");
            let m = by_name
                .get(name)
                .unwrap_or_else(|| panic!("{addr}: unknown deployment {name}"));
            assert_eq!(o["id"], m.id(), "{addr}: id of {name}");
            assert_eq!(o["cluster"], m.cluster, "{addr}: cluster of {name}");
            assert_eq!(
                o["bento"],
                format!("{}:v1", m.repo),
                "{addr}: bento of {name}"
            );
            assert_eq!(
                str_map(&o["labels"]),
                map_of(&m.labels()),
                "{addr}: labels of {name}"
            );
            assert_eq!(o["min_replicas"], 0, "{addr}: min_replicas of {name}");
            assert_eq!(o["max_replicas"], 1, "{addr}: max_replicas of {name}");
            assert_eq!(
                o["instance_type"], "cpu.1",
                "{addr}: instance_type of {name}"
            );
            assert!(
                o["status"].as_str().is_some_and(|s| !s.is_empty()),
                "{addr}: status of {name}: {o}"
            );
            assert!(
                o["revision"].as_str().is_some_and(|s| !s.is_empty()),
                "{addr}: revision of {name}: {o}"
            );
        }
    }

    // The data sources follow the server: delete one member and re-read.
    let victim = members.iter().find(|m| m.cluster == "local-west").unwrap();
    let t0 = std::time::Instant::now();
    server.delete_deployment(victim.cluster, &victim.name);
    eprintln!("[fleet] one deleted in {:.1}s", t0.elapsed().as_secs_f64());
    tf.apply();
    let ds = tf.resource("data.bentocloud_deployments.cluster");
    let mut want = expect(&members, west);
    want.remove(&victim.name);
    assert_eq!(
        str_set(&ds["names"]),
        want,
        "after deleting {}",
        victim.id()
    );
}

/// `data.bentocloud_deployment` reads one deployment by name and cluster, with the same values
/// as the resource and the server; a missing deployment is an error.
pub fn single_deployment_data_source(v: TfVersion) {
    let server = Server::start();
    server.register_bentos(&["iris:v3"]);
    server.create_secret("ds-secret", "K", "v");
    let tf = Tf::new(v, &server).with_provider_cluster("local-east");
    let name = dep_name("single", v);
    let dep = Dep::new("app", &name, "iris:v3")
        .cluster("local-west")
        .labels(&[("team", "ml")])
        .envs(&[("A", "1")])
        .secrets(&["ds-secret"])
        .instance_type("cpu.4")
        .scaling(2, 3);
    let ds = r#"
data "bentocloud_deployment" "by_name" {
  name    = bentocloud_deployment.app.name
  cluster = bentocloud_deployment.app.cluster
}
"#;
    tf.write(&format!("{}{}", dep.hcl(), ds));
    tf.init();
    tf.apply();
    let sv = view(&server.must_get("local-west", &name));
    dep.assert_server_has(&sv, "created");
    let d = tf.resource("data.bentocloud_deployment.by_name");
    assert_state_matches_server(&d, &sv, "data.bentocloud_deployment");
    let r = tf.resource(&dep.addr());
    for k in ["url", "created_at", "creator"] {
        assert_eq!(d[k], r[k], "data source and resource agree on {k}");
    }

    // The same deployment found through the provider's default cluster is absent there.
    tf.write(&format!(
        "{}\ndata \"bentocloud_deployment\" \"wrong_cluster\" {{\n  name = {name:?}\n}}\n",
        dep.hcl()
    ));
    let out = tf.apply_err();
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(
        text.contains(&name),
        "the error for a missing deployment names it:\n{}",
        out.describe()
    );
    assert_eq!(
        view(&server.must_get("local-west", &name)).revision,
        sv.revision,
        "a failed read changes nothing on the server"
    );
}
