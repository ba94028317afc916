//! Durable state: the SQLite schema (`DIR/state.db`, WAL, `synchronous=FULL`) and typed row
//! access. One connection behind a mutex; every write runs in a transaction that is committed
//! before the HTTP response is sent, so a `kill -9` loses nothing acknowledged.
//!
//! Times are milliseconds since the Unix epoch (wall clock), so the reconciler resumes from
//! the same timeline after a restart. Nothing here reads the clock: callers pass `now`, read
//! from [`super::clock`] (the wall clock, or a manual one a test steps).

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use super::config::{InstanceTypeSpec, PlatformConfig};
use super::vocab::{Phase, ReplicaState, StoredStatus};
use crate::api::{DeploymentConfig, DeploymentStatus, LabelItem, SecretContent};

mod bentos;
mod deployments;
mod replicas;
mod secrets;

pub use bentos::*;
pub use deployments::*;
pub use replicas::*;
pub use secrets::*;

/// A failure of the store. The HTTP layer turns it into its response
/// (`From<StoreError> for ApiError` in [`super::error`]).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed (I/O, a constraint, a lock held too long).
    #[error("storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored JSON column does not parse or a value does not serialise.
    #[error("stored json: {0}")]
    Json(#[from] serde_json::Error),
    /// What the caller named does not exist; the message says what.
    #[error("{0}: record not found")]
    NotFound(String),
    /// A row that must exist is gone, or the platform has no cluster: a bug or a damaged
    /// database, never the caller's input.
    #[error("{0}")]
    Inconsistent(String),
}

impl StoreError {
    fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound(what.into())
    }
    fn inconsistent(what: impl Into<String>) -> Self {
        Self::Inconsistent(what.into())
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orgs (
  id INTEGER PRIMARY KEY, uid TEXT NOT NULL, name TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
  token TEXT PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), user_name TEXT NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS clusters (
  name TEXT PRIMARY KEY, uid TEXT NOT NULL, description TEXT NOT NULL, position INTEGER NOT NULL,
  created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS instance_types (
  cluster TEXT NOT NULL, name TEXT NOT NULL, uid TEXT NOT NULL, position INTEGER NOT NULL,
  spec TEXT NOT NULL, PRIMARY KEY (cluster, name));
CREATE TABLE IF NOT EXISTS bento_repos (
  id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
  uid TEXT NOT NULL, created_at INTEGER NOT NULL, UNIQUE (org_id, name));
CREATE TABLE IF NOT EXISTS bentos (
  id INTEGER PRIMARY KEY, repo_id INTEGER NOT NULL REFERENCES bento_repos(id), version TEXT NOT NULL,
  uid TEXT NOT NULL, created_at INTEGER NOT NULL, behaviour TEXT NOT NULL, UNIQUE (repo_id, version));
CREATE TABLE IF NOT EXISTS deployments (
  id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), cluster TEXT NOT NULL,
  name TEXT NOT NULL, uid TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  deleted_at INTEGER, labels TEXT NOT NULL, dev INTEGER NOT NULL, creator TEXT NOT NULL,
  status TEXT NOT NULL, phase TEXT NOT NULL, message TEXT NOT NULL, target_revision TEXT NOT NULL,
  serving_revision TEXT NOT NULL, phase_since INTEGER NOT NULL, last_request_at INTEGER NOT NULL,
  reported_status TEXT NOT NULL DEFAULT 'unknown', status_synced_at INTEGER NOT NULL DEFAULT 0);
CREATE UNIQUE INDEX IF NOT EXISTS deployments_live ON deployments (org_id, cluster, name)
  WHERE deleted_at IS NULL;
CREATE TABLE IF NOT EXISTS revisions (
  uid TEXT PRIMARY KEY, deployment_id INTEGER NOT NULL REFERENCES deployments(id),
  seq INTEGER NOT NULL, created_at INTEGER NOT NULL, bento_id INTEGER NOT NULL REFERENCES bentos(id),
  config TEXT NOT NULL, creator TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS replicas (
  id INTEGER PRIMARY KEY, deployment_id INTEGER NOT NULL REFERENCES deployments(id),
  revision_uid TEXT NOT NULL, service TEXT NOT NULL, state TEXT NOT NULL,
  started_at INTEGER NOT NULL, ready_at INTEGER, drain_started_at INTEGER, stopped_at INTEGER,
  port INTEGER, uid TEXT NOT NULL, target TEXT NOT NULL DEFAULT 'main');
CREATE INDEX IF NOT EXISTS replicas_live ON replicas (deployment_id, state);
CREATE TABLE IF NOT EXISTS scale (
  deployment_id INTEGER NOT NULL REFERENCES deployments(id), service TEXT NOT NULL,
  replicas INTEGER NOT NULL, updated_at INTEGER NOT NULL, PRIMARY KEY (deployment_id, service));
CREATE TABLE IF NOT EXISTS scale_history (
  deployment_id INTEGER NOT NULL REFERENCES deployments(id), service TEXT NOT NULL,
  at INTEGER NOT NULL, replicas INTEGER NOT NULL, PRIMARY KEY (deployment_id, service, at));
CREATE TABLE IF NOT EXISTS scale_events (
  id INTEGER PRIMARY KEY, deployment_id INTEGER NOT NULL REFERENCES deployments(id),
  at INTEGER NOT NULL, service TEXT NOT NULL, from_replicas INTEGER NOT NULL,
  to_replicas INTEGER NOT NULL, metric TEXT NOT NULL, measured REAL NOT NULL, target REAL NOT NULL);
CREATE INDEX IF NOT EXISTS scale_events_of ON scale_events (deployment_id, at);
CREATE TABLE IF NOT EXISTS timeline (
  deployment_id INTEGER NOT NULL REFERENCES deployments(id), at INTEGER NOT NULL,
  phase TEXT NOT NULL, target_revision TEXT NOT NULL, serving_revision TEXT NOT NULL,
  counts TEXT NOT NULL, PRIMARY KEY (deployment_id, at));
CREATE TABLE IF NOT EXISTS routing_history (
  deployment_id INTEGER NOT NULL REFERENCES deployments(id), at INTEGER NOT NULL,
  revision_uid TEXT NOT NULL, route_type TEXT, route_by TEXT, weights TEXT NOT NULL,
  PRIMARY KEY (deployment_id, at));
CREATE TABLE IF NOT EXISTS secrets (
  id INTEGER PRIMARY KEY, org_id INTEGER NOT NULL REFERENCES orgs(id), name TEXT NOT NULL,
  uid TEXT NOT NULL, cluster TEXT NOT NULL, description TEXT NOT NULL, content TEXT NOT NULL,
  creator TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
  UNIQUE (org_id, name));
"#;

/// 16 random hex digits: the uid shape of BentoCloud resources.
pub fn new_uid() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A fresh API token.
pub fn new_token() -> String {
    format!("bcl_{:032x}", rand::random::<u128>())
}

/// The database, one connection behind a mutex.
pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed) `path`, sets WAL + `synchronous=FULL`, creates the schema.
    pub fn open(path: &Path) -> std::result::Result<Self, String> {
        let conn = open_conn(path)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` with the connection (callers wrap writes in a transaction).
    pub fn with<T, E>(
        &self,
        f: impl FnOnce(&mut Connection) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// Runs `f` inside one transaction, committed when `f` succeeds. `BEGIN IMMEDIATE`: the
    /// write lock is taken up front, where SQLite waits `busy_timeout` for another process
    /// (`bentocloud-local tokens add` on a live data dir); a deferred transaction that reads
    /// and then writes after the other process committed fails at once with "database is
    /// locked" instead.
    pub fn tx<T, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Connection) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(StoreError::from)?;
            let out = f(&tx)?;
            tx.commit().map_err(StoreError::from)?;
            Ok(out)
        })
    }
}

/// Opens a connection with the durability settings (also used by `tokens add`).
pub fn open_conn(path: &Path) -> std::result::Result<Connection, String> {
    let conn =
        Connection::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(|e| format!("cannot enable WAL: {e}"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(|e| e.to_string())?;
    conn.execute_batch(SCHEMA)
        .map_err(|e| format!("cannot create schema: {e}"))?;
    migrate(&conn)?;
    Ok(conn)
}

/// Columns added after a data dir may have been created: added in place, so an older
/// `state.db` keeps working (its deployments report their live status until the first sync;
/// its replicas all run the `main` target, as every replica did before canary versions ran).
fn migrate(conn: &Connection) -> std::result::Result<(), String> {
    let has = |table: &str, col: &str| -> std::result::Result<bool, String> {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
                [table, col],
                |r| r.get(0),
            )
            .map_err(|e| format!("cannot read the schema: {e}"))?;
        Ok(n > 0)
    };
    for (table, col, ddl) in [
        (
            "deployments",
            "reported_status",
            "ALTER TABLE deployments ADD COLUMN reported_status TEXT NOT NULL DEFAULT 'unknown'",
        ),
        (
            "deployments",
            "status_synced_at",
            "ALTER TABLE deployments ADD COLUMN status_synced_at INTEGER NOT NULL DEFAULT 0",
        ),
        (
            "replicas",
            "target",
            "ALTER TABLE replicas ADD COLUMN target TEXT NOT NULL DEFAULT 'main'",
        ),
    ] {
        if !has(table, col)? {
            conn.execute_batch(ddl)
                .map_err(|e| format!("cannot migrate the schema ({table}.{col}): {e}"))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- meta, orgs, tokens

pub fn meta_get(c: &Connection, key: &str) -> Result<Option<String>> {
    Ok(
        c.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?,
    )
}

pub fn meta_set(c: &Connection, key: &str, value: &str) -> Result<()> {
    c.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Org {
    pub id: i64,
    pub uid: String,
    pub name: String,
    pub created_at: i64,
}

/// The caller behind a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub org: Org,
    pub user_name: String,
    pub token_created_at: i64,
}

fn org_row(r: &Row) -> rusqlite::Result<Org> {
    Ok(Org {
        id: r.get(0)?,
        uid: r.get(1)?,
        name: r.get(2)?,
        created_at: r.get(3)?,
    })
}

/// The organisation named `name`, created (at `now`) when missing.
pub fn ensure_org(c: &Connection, name: &str, now: i64) -> Result<Org> {
    if let Some(o) = c
        .query_row(
            "SELECT id, uid, name, created_at FROM orgs WHERE name = ?1",
            [name],
            org_row,
        )
        .optional()?
    {
        return Ok(o);
    }
    c.execute(
        "INSERT INTO orgs (uid, name, created_at) VALUES (?1, ?2, ?3)",
        params![new_uid(), name, now],
    )?;
    ensure_org(c, name, now)
}

/// Adds `token` for `org` (creating the org), both created at `now`; returns the token.
pub fn add_token(c: &Connection, org: &str, token: &str, user: &str, now: i64) -> Result<String> {
    let o = ensure_org(c, org, now)?;
    c.execute(
        "INSERT OR IGNORE INTO tokens (token, org_id, user_name, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![token, o.id, user, now],
    )?;
    Ok(token.to_string())
}

pub fn principal(c: &Connection, token: &str) -> Result<Option<Principal>> {
    Ok(c.query_row(
        "SELECT o.id, o.uid, o.name, o.created_at, t.user_name, t.created_at
         FROM tokens t JOIN orgs o ON o.id = t.org_id WHERE t.token = ?1",
        [token],
        |r| {
            Ok(Principal {
                org: org_row(r)?,
                user_name: r.get(4)?,
                token_created_at: r.get(5)?,
            })
        },
    )
    .optional()?)
}

// ---------------------------------------------------------------- clusters, instance types

#[derive(Debug, Clone, PartialEq)]
pub struct ClusterRow {
    pub name: String,
    pub uid: String,
    pub description: String,
    pub is_first: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct InstanceTypeRow {
    pub cluster: String,
    pub uid: String,
    pub spec: InstanceTypeSpec,
}

/// `meta` key of [`PlatformConfig::omit_bento_manifest`] (`"true"`/`"false"`).
pub const OMIT_BENTO_MANIFEST: &str = "omit_bento_manifest";
/// `meta` key of [`PlatformConfig::secret_values_in_reads`] (`"true"`/`"false"`).
pub const SECRET_VALUES_IN_READS: &str = "secret_values_in_reads";

/// Makes the stored clusters and instance types equal to the config (uids stay stable), and
/// stores the platform switches the renderer reads. New clusters are created at `now`.
pub fn sync_platform(c: &Connection, cfg: &PlatformConfig, now: i64) -> Result<()> {
    meta_set(c, OMIT_BENTO_MANIFEST, &cfg.omit_bento_manifest.to_string())?;
    meta_set(
        c,
        SECRET_VALUES_IN_READS,
        &cfg.secret_values_in_reads.to_string(),
    )?;
    let names: Vec<String> = cfg.clusters.iter().map(|c| c.name.clone()).collect();
    let existing: Vec<String> = {
        let mut st = c.prepare("SELECT name FROM clusters")?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    for name in existing.iter().filter(|n| !names.contains(n)) {
        c.execute("DELETE FROM clusters WHERE name = ?1", [name])?;
        c.execute("DELETE FROM instance_types WHERE cluster = ?1", [name])?;
    }
    for (pos, cl) in cfg.clusters.iter().enumerate() {
        c.execute(
            "INSERT INTO clusters (name, uid, description, position, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(name) DO UPDATE SET description = ?3, position = ?4",
            params![cl.name, new_uid(), cl.description, pos as i64, now],
        )?;
        c.execute("DELETE FROM instance_types WHERE cluster = ?1 AND name NOT IN (SELECT value FROM json_each(?2))",
            params![cl.name, serde_json::to_string(&cl.instance_types.iter().map(|t| t.name.clone()).collect::<Vec<_>>())?])?;
        let any_default = cl.instance_types.iter().any(|t| t.default);
        for (i, t) in cl.instance_types.iter().enumerate() {
            let mut t = t.clone();
            if !any_default && i == 0 {
                t.default = true;
            }
            c.execute(
                "INSERT INTO instance_types (cluster, name, uid, position, spec) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(cluster, name) DO UPDATE SET position = ?4, spec = ?5",
                params![cl.name, t.name, new_uid(), i as i64, serde_json::to_string(&t)?],
            )?;
        }
    }
    Ok(())
}

fn cluster_row(r: &Row) -> rusqlite::Result<ClusterRow> {
    Ok(ClusterRow {
        name: r.get(0)?,
        uid: r.get(1)?,
        description: r.get(2)?,
        is_first: r.get::<_, i64>(3)? == 0,
        created_at: r.get(4)?,
    })
}

pub fn clusters(c: &Connection) -> Result<Vec<ClusterRow>> {
    let mut st = c.prepare(
        "SELECT name, uid, description, position, created_at FROM clusters ORDER BY position",
    )?;
    let rows = st.query_map([], cluster_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// `cluster` by name; `None`/empty means the default (first) cluster. 404 when unknown.
pub fn cluster(c: &Connection, name: Option<&str>) -> Result<ClusterRow> {
    let all = clusters(c)?;
    match name.filter(|n| !n.is_empty()) {
        None => all
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::inconsistent("no cluster configured")),
        Some(n) => all
            .into_iter()
            .find(|c| c.name == n)
            .ok_or_else(|| StoreError::not_found(format!("cluster {n:?} not found"))),
    }
}

pub fn instance_types(c: &Connection, cluster: &str) -> Result<Vec<InstanceTypeRow>> {
    let mut st = c.prepare(
        "SELECT cluster, uid, spec FROM instance_types WHERE cluster = ?1 ORDER BY position",
    )?;
    let rows = st.query_map([cluster], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (cluster, uid, spec) = row?;
        out.push(InstanceTypeRow {
            cluster,
            uid,
            spec: serde_json::from_str(&spec)?,
        });
    }
    Ok(out)
}

/// The unit tests' fixture: a store in a fresh temporary directory with the default platform
/// and one org `org` whose user `me` has token `tok`.
#[cfg(test)]
pub(crate) fn test_store() -> (tempfile::TempDir, Store, Principal) {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Store::open(&dir.path().join("state.db")).expect("open");
    let p = s
        .tx(|c| {
            sync_platform(c, &PlatformConfig::default(), 0)?;
            add_token(c, "org", "tok", "me", 0)?;
            Ok::<_, StoreError>(principal(c, "tok")?.expect("p"))
        })
        .expect("seed");
    (dir, s, p)
}

#[cfg(test)]
mod tests;
