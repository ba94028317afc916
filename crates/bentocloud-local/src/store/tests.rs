use super::*;

#[test]
fn schema_tokens_platform_and_bentos_round_trip() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&dir.path().join("state.db")).expect("open");
    store
        .tx(|c| {
            sync_platform(c, &PlatformConfig::default(), 1)?;
            add_token(c, "acme", "t1", "alice", 1)?;
            Ok::<_, StoreError>(())
        })
        .expect("seed");
    store
        .with(|c| {
            let p = principal(c, "t1")?.expect("token");
            assert_eq!(p.org.name, "acme");
            assert!(principal(c, "nope")?.is_none());
            let first = cluster(c, Some(""))?;
            assert_eq!(first.name, "local-east");
            assert!(first.is_first);
            assert!(!cluster(c, Some("local-west"))?.is_first);
            assert!(matches!(
                cluster(c, Some("x")),
                Err(StoreError::NotFound(_))
            ));
            assert_eq!(instance_types(c, "local-west")?.len(), 5);
            put_bento(c, p.org.id, "iris", "v1", &Behaviour::default(), 10)?;
            put_bento(c, p.org.id, "iris", "v2", &Behaviour::default(), 13)?;
            let latest = find_bento(c, p.org.id, "iris", None)?.expect("latest");
            assert_eq!(latest.version, "v2");
            assert_eq!(repo_bentos(c, p.org.id, "iris")?.len(), 2);
            Ok::<_, StoreError>(())
        })
        .expect("checks");
    // Re-syncing keeps uids stable.
    let before = store.with(|c| clusters(c)).expect("c");
    store
        .tx(|c| sync_platform(c, &PlatformConfig::default(), 2))
        .expect("resync");
    assert_eq!(store.with(|c| clusters(c)).expect("c"), before);
}

/// A phase or status the store does not know (a typo, or a newer data dir) is an error
/// naming the value, not a deployment silently reported `unknown`.
#[test]
fn an_unknown_stored_phase_or_status_is_an_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let store = Store::open(&dir.path().join("state.db")).expect("open");
    let id = store
        .tx(|c| {
            let org = ensure_org(c, "acme", 1)?;
            insert_deployment(
                c,
                &DeploymentRow {
                    id: 0,
                    org_id: org.id,
                    cluster: "local-east".into(),
                    name: "a".into(),
                    uid: "u".into(),
                    created_at: 1,
                    updated_at: 1,
                    deleted_at: None,
                    labels: Vec::new(),
                    dev: false,
                    creator: "me".into(),
                    status: DeploymentStatus::Deploying,
                    phase: Phase::Rolling,
                    message: String::new(),
                    target_revision: String::new(),
                    serving_revision: String::new(),
                    phase_since: 1,
                    last_request_at: 1,
                    reported_status: DeploymentStatus::NonDeployed,
                    status_synced_at: 1,
                },
            )
        })
        .expect("insert");
    let d = store.with(|c| deployment_by_id(c, id)).expect("read");
    assert_eq!(
        (d.phase, d.status, d.reported_status),
        (
            Phase::Rolling,
            DeploymentStatus::Deploying,
            DeploymentStatus::NonDeployed
        )
    );
    for (col, bad, what) in [
        ("phase", "rollin", "deployment phase"),
        ("reported_status", "warming-up", "deployment status"),
    ] {
        let e = store
            .with(|c| {
                c.execute(&format!("UPDATE deployments SET {col} = ?1"), [bad])?;
                deployment_by_id(c, id)
            })
            .expect_err(col);
        let msg = e.to_string();
        assert!(msg.contains(&format!("unknown {what} {bad:?}")), "{msg}");
        store
            .with(|c| {
                c.execute(
                    "UPDATE deployments SET phase = 'rolling', reported_status = 'unknown'",
                    [],
                )?;
                Ok::<_, StoreError>(())
            })
            .expect("restore");
    }
}

/// A `state.db` from before canary replicas: its replicas table has no `target` column;
/// opening it adds one, and its replicas run `main`.
#[test]
fn replicas_of_an_older_data_dir_run_main() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("state.db");
    {
        let c = Connection::open(&path).expect("raw");
        c.execute_batch(
            "CREATE TABLE replicas (
               id INTEGER PRIMARY KEY, deployment_id INTEGER NOT NULL, revision_uid TEXT NOT NULL,
               service TEXT NOT NULL, state TEXT NOT NULL, started_at INTEGER NOT NULL,
               ready_at INTEGER, drain_started_at INTEGER, stopped_at INTEGER, port INTEGER,
               uid TEXT NOT NULL);
             INSERT INTO replicas (deployment_id, revision_uid, service, state, started_at, uid)
               VALUES (7, 'rev', 'apiserver', 'ready', 1, 'r1');",
        )
        .expect("old schema");
    }
    let store = Store::open(&path).expect("open migrates");
    let reps = store.with(|c| live_replicas(c, 7)).expect("read");
    assert_eq!(reps.len(), 1);
    assert_eq!(reps[0].target, MAIN_TARGET);
    assert!(reps[0].is_main());
    // Opening again is a no-op.
    drop(store);
    Store::open(&path).expect("reopen");
}
