//! Replica rows, the autoscaler's per-service scale, and org names for routing.

use super::*;

/// Name of a revision's main target (API doc §3.2: the target named `main`; canary versions
/// cannot take this name, see `deployments`).
pub const MAIN_TARGET: &str = "main";

/// One replica: a process running one service of one target of one revision. `target` is
/// [`MAIN_TARGET`] or the name of one of the revision's canary versions; a canary replica runs
/// its version's bento with its version's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaRow {
    pub id: i64,
    pub uid: String,
    pub deployment_id: i64,
    pub revision_uid: String,
    /// `main` or a canary version's name.
    pub target: String,
    pub service: String,
    pub state: ReplicaState,
    pub started_at: i64,
    pub ready_at: Option<i64>,
    pub drain_started_at: Option<i64>,
    pub stopped_at: Option<i64>,
    pub port: Option<i64>,
}

impl ReplicaRow {
    /// Starting, ready or draining: the replica process exists.
    pub fn is_live(&self) -> bool {
        self.state.is_live()
    }

    /// Runs the main target (not a canary version).
    pub fn is_main(&self) -> bool {
        self.target == MAIN_TARGET
    }
}

/// Replicas of a deployment that are not stopped/crashed, oldest first.
pub fn live_replicas(c: &Connection, deployment_id: i64) -> Result<Vec<ReplicaRow>> {
    let mut st = c.prepare(
        "SELECT id, uid, deployment_id, revision_uid, service, state, started_at, ready_at,
                drain_started_at, stopped_at, port, target
         FROM replicas WHERE deployment_id = ?1 AND state IN (?2, ?3, ?4)
         ORDER BY id",
    )?;
    let [starting, ready, draining] = ReplicaState::LIVE;
    let rows = st.query_map(
        params![deployment_id, starting, ready, draining],
        replica_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Crashes of one service of a revision's target at or after `since`: how many, and when the
/// last of them was (the reconciler's crash back-off).
pub fn crashes_since(c: &Connection, r: &ReplicaKey<'_>, since: i64) -> Result<(i64, Option<i64>)> {
    Ok(c.query_row(
        "SELECT COUNT(*), MAX(stopped_at) FROM replicas
         WHERE deployment_id = ?1 AND revision_uid = ?2 AND target = ?3 AND service = ?4
           AND state = ?5 AND stopped_at >= ?6",
        params![
            r.deployment_id,
            r.revision,
            r.target,
            r.service,
            ReplicaState::Crashed,
            since
        ],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}

/// Replicas of a deployment that crashed at or after `since`, oldest first.
pub fn crashed_replicas(c: &Connection, deployment_id: i64, since: i64) -> Result<Vec<ReplicaRow>> {
    let mut st = c.prepare(
        "SELECT id, uid, deployment_id, revision_uid, service, state, started_at, ready_at,
                drain_started_at, stopped_at, port, target
         FROM replicas WHERE deployment_id = ?1 AND state = ?2 AND stopped_at >= ?3
         ORDER BY id",
    )?;
    let rows = st.query_map(
        params![deployment_id, ReplicaState::Crashed, since],
        replica_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Which replicas: one service of one target of one revision of a deployment.
pub struct ReplicaKey<'a> {
    pub deployment_id: i64,
    pub revision: &'a str,
    pub target: &'a str,
    pub service: &'a str,
}

fn replica_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReplicaRow> {
    Ok(ReplicaRow {
        id: r.get(0)?,
        uid: r.get(1)?,
        deployment_id: r.get(2)?,
        revision_uid: r.get(3)?,
        target: r.get(11)?,
        service: r.get(4)?,
        state: r.get(5)?,
        started_at: r.get(6)?,
        ready_at: r.get(7)?,
        drain_started_at: r.get(8)?,
        stopped_at: r.get(9)?,
        port: r.get(10)?,
    })
}

pub fn insert_replica(c: &Connection, r: &ReplicaRow) -> Result<i64> {
    c.execute(
        "INSERT INTO replicas (uid, deployment_id, revision_uid, service, state, started_at, ready_at,
            drain_started_at, stopped_at, port, target)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            r.uid, r.deployment_id, r.revision_uid, r.service, r.state, r.started_at, r.ready_at,
            r.drain_started_at, r.stopped_at, r.port, r.target
        ],
    )?;
    Ok(c.last_insert_rowid())
}

pub fn save_replica(c: &Connection, r: &ReplicaRow) -> Result<()> {
    c.execute(
        "UPDATE replicas SET state = ?2, ready_at = ?3, drain_started_at = ?4, stopped_at = ?5, port = ?6
         WHERE id = ?1",
        params![r.id, r.state, r.ready_at, r.drain_started_at, r.stopped_at, r.port],
    )?;
    Ok(())
}

/// Stops every live replica of a deployment at once (delete).
pub fn stop_all_replicas(c: &Connection, deployment_id: i64, now: i64) -> Result<()> {
    let [starting, ready, draining] = ReplicaState::LIVE;
    c.execute(
        "UPDATE replicas SET state = ?3, stopped_at = ?2
         WHERE deployment_id = ?1 AND state IN (?4, ?5, ?6)",
        params![
            deployment_id,
            now,
            ReplicaState::Stopped,
            starting,
            ready,
            draining
        ],
    )?;
    Ok(())
}

/// The autoscaler's replica count of a service (absent until it first decides).
pub fn scale_get(c: &Connection, deployment_id: i64, service: &str) -> Result<Option<i64>> {
    Ok(c.query_row(
        "SELECT replicas FROM scale WHERE deployment_id = ?1 AND service = ?2",
        params![deployment_id, service],
        |r| r.get(0),
    )
    .optional()?)
}

pub fn scale_set(
    c: &Connection,
    deployment_id: i64,
    service: &str,
    replicas: i64,
    now: i64,
) -> Result<()> {
    c.execute(
        "INSERT INTO scale (deployment_id, service, replicas, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(deployment_id, service) DO UPDATE SET replicas = ?3, updated_at = ?4",
        params![deployment_id, service, replicas, now],
    )?;
    Ok(())
}

/// The name of an organisation by id.
pub fn org_name(c: &Connection, org_id: i64) -> Result<String> {
    Ok(
        c.query_row("SELECT name FROM orgs WHERE id = ?1", [org_id], |r| {
            r.get(0)
        })?,
    )
}
