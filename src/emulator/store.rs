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
use super::vocab::{Phase, ReplicaState};
use crate::api::{DeploymentConfig, DeploymentStatus, LabelItem, SecretContent};

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
CREATE TABLE IF NOT EXISTS timeline (
  deployment_id INTEGER NOT NULL REFERENCES deployments(id), at INTEGER NOT NULL,
  phase TEXT NOT NULL, target_revision TEXT NOT NULL, serving_revision TEXT NOT NULL,
  counts TEXT NOT NULL, PRIMARY KEY (deployment_id, at));
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

// ---------------------------------------------------------------- bentos

/// How a bento behaves when run (set by `bentocloud-local bentos add`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    pub startup_ms: i64,
    /// Never passes its readiness probe.
    pub unready: bool,
    /// A ready replica crashes this long after becoming ready.
    pub crash_after_ms: Option<i64>,
    pub image_build_ms: i64,
    pub image_build_fails: bool,
    /// Service names; the first is the entry service.
    pub services: Vec<String>,
    /// Registered implicitly (first use of an unknown tag): accepts any service names.
    pub auto: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            startup_ms: 500,
            unready: false,
            crash_after_ms: None,
            image_build_ms: 0,
            image_build_fails: false,
            services: vec![DEFAULT_SERVICE.into()],
            auto: false,
        }
    }
}

/// Service name of a bento registered without `--services`.
pub const DEFAULT_SERVICE: &str = "apiserver";

#[derive(Debug, Clone, PartialEq)]
pub struct BentoRow {
    pub id: i64,
    pub repo: String,
    pub repo_uid: String,
    pub repo_created_at: i64,
    pub version: String,
    pub uid: String,
    pub created_at: i64,
    pub behaviour: Behaviour,
}

impl BentoRow {
    pub fn tag(&self) -> String {
        format!("{}:{}", self.repo, self.version)
    }
}

const BENTO_SELECT: &str =
    "SELECT b.id, r.name, r.uid, r.created_at, b.version, b.uid, b.created_at, b.behaviour
     FROM bentos b JOIN bento_repos r ON r.id = b.repo_id";

fn bento_row(r: &Row) -> rusqlite::Result<(BentoRow, String)> {
    Ok((
        BentoRow {
            id: r.get(0)?,
            repo: r.get(1)?,
            repo_uid: r.get(2)?,
            repo_created_at: r.get(3)?,
            version: r.get(4)?,
            uid: r.get(5)?,
            created_at: r.get(6)?,
            behaviour: Behaviour::default(),
        },
        r.get(7)?,
    ))
}

fn finish_bento(x: Option<(BentoRow, String)>) -> Result<Option<BentoRow>> {
    match x {
        None => Ok(None),
        Some((mut b, beh)) => {
            b.behaviour = serde_json::from_str(&beh)?;
            Ok(Some(b))
        }
    }
}

pub fn bento_by_id(c: &Connection, id: i64) -> Result<BentoRow> {
    let x = c
        .query_row(&format!("{BENTO_SELECT} WHERE b.id = ?1"), [id], bento_row)
        .optional()?;
    finish_bento(x)?.ok_or_else(|| StoreError::inconsistent(format!("bento #{id} vanished")))
}

/// The bento `repo:version`, or with `version == None` the newest of the repo.
pub fn find_bento(
    c: &Connection,
    org_id: i64,
    repo: &str,
    version: Option<&str>,
) -> Result<Option<BentoRow>> {
    let x = match version {
        Some(v) => c
            .query_row(
                &format!("{BENTO_SELECT} WHERE r.org_id = ?1 AND r.name = ?2 AND b.version = ?3"),
                params![org_id, repo, v],
                bento_row,
            )
            .optional()?,
        None => c
            .query_row(
                &format!("{BENTO_SELECT} WHERE r.org_id = ?1 AND r.name = ?2 ORDER BY b.created_at DESC, b.id DESC LIMIT 1"),
                params![org_id, repo],
                bento_row,
            )
            .optional()?,
    };
    finish_bento(x)
}

/// All bentos of a repo, newest first.
pub fn repo_bentos(c: &Connection, org_id: i64, repo: &str) -> Result<Vec<BentoRow>> {
    let mut st = c.prepare(&format!(
        "{BENTO_SELECT} WHERE r.org_id = ?1 AND r.name = ?2 ORDER BY b.created_at DESC, b.id DESC"
    ))?;
    let rows = st.query_map(params![org_id, repo], bento_row)?;
    let mut out = Vec::new();
    for r in rows {
        if let Some(b) = finish_bento(Some(r?))? {
            out.push(b);
        }
    }
    Ok(out)
}

/// `(uid, created_at)` of a bento repository.
pub fn find_repo(c: &Connection, org_id: i64, repo: &str) -> Result<Option<(String, i64)>> {
    Ok(c.query_row(
        "SELECT uid, created_at FROM bento_repos WHERE org_id = ?1 AND name = ?2",
        params![org_id, repo],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

/// Registers (or re-registers, replacing the behaviour of) `repo:version`; a new repository
/// or bento is created at `now`.
pub fn put_bento(
    c: &Connection,
    org_id: i64,
    repo: &str,
    version: &str,
    behaviour: &Behaviour,
    now: i64,
) -> Result<BentoRow> {
    c.execute(
        "INSERT OR IGNORE INTO bento_repos (org_id, name, uid, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![org_id, repo, new_uid(), now],
    )?;
    let repo_id: i64 = c.query_row(
        "SELECT id FROM bento_repos WHERE org_id = ?1 AND name = ?2",
        params![org_id, repo],
        |r| r.get(0),
    )?;
    let beh = serde_json::to_string(behaviour)?;
    c.execute(
        "INSERT INTO bentos (repo_id, version, uid, created_at, behaviour) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(repo_id, version) DO UPDATE SET behaviour = ?5",
        params![repo_id, version, new_uid(), now, beh],
    )?;
    find_bento(c, org_id, repo, Some(version))?
        .ok_or_else(|| StoreError::inconsistent("bento vanished after insert"))
}

// ---------------------------------------------------------------- deployments

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRow {
    pub id: i64,
    pub org_id: i64,
    pub cluster: String,
    pub name: String,
    pub uid: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub deleted_at: Option<i64>,
    pub labels: Vec<LabelItem>,
    pub dev: bool,
    pub creator: String,
    /// The live status, recomputed by the reconciler on every tick (what the controller
    /// knows). The API does not show it: see `reported_status`.
    pub status: DeploymentStatus,
    pub phase: Phase,
    pub message: String,
    pub target_revision: String,
    pub serving_revision: String,
    pub phase_since: i64,
    pub last_request_at: i64,
    /// The status the API reports: computed from the replicas at the last status sync (every
    /// `Timing::status_sync_ms`), so it lags the revision like the platform's (API doc §10).
    pub reported_status: DeploymentStatus,
    /// When `reported_status` was last computed.
    pub status_synced_at: i64,
}

const DEP_COLS: &str = "id, org_id, cluster, name, uid, created_at, updated_at, deleted_at, labels, dev, creator, status, phase, message, target_revision, serving_revision, phase_since, last_request_at, reported_status, status_synced_at";

fn dep_row(r: &Row) -> rusqlite::Result<(DeploymentRow, String)> {
    Ok((
        DeploymentRow {
            id: r.get(0)?,
            org_id: r.get(1)?,
            cluster: r.get(2)?,
            name: r.get(3)?,
            uid: r.get(4)?,
            created_at: r.get(5)?,
            updated_at: r.get(6)?,
            deleted_at: r.get(7)?,
            labels: Vec::new(),
            dev: r.get::<_, i64>(9)? != 0,
            creator: r.get(10)?,
            status: r.get(11)?,
            phase: r.get(12)?,
            message: r.get(13)?,
            target_revision: r.get(14)?,
            serving_revision: r.get(15)?,
            phase_since: r.get(16)?,
            last_request_at: r.get(17)?,
            reported_status: r.get(18)?,
            status_synced_at: r.get(19)?,
        },
        r.get(8)?,
    ))
}

fn finish_deps(rows: Vec<(DeploymentRow, String)>) -> Result<Vec<DeploymentRow>> {
    rows.into_iter()
        .map(|(mut d, labels)| {
            d.labels = serde_json::from_str(&labels)?;
            Ok(d)
        })
        .collect()
}

fn query_deps(
    c: &Connection,
    where_: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<DeploymentRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {DEP_COLS} FROM deployments WHERE {where_}"
    ))?;
    let rows = st.query_map(p, dep_row)?;
    finish_deps(rows.collect::<rusqlite::Result<_>>()?)
}

/// A live (not deleted) deployment.
pub fn find_deployment(
    c: &Connection,
    org_id: i64,
    cluster: &str,
    name: &str,
) -> Result<Option<DeploymentRow>> {
    Ok(query_deps(
        c,
        "org_id = ?1 AND cluster = ?2 AND name = ?3 AND deleted_at IS NULL",
        &[&org_id, &cluster, &name],
    )?
    .into_iter()
    .next())
}

pub fn deployment_by_id(c: &Connection, id: i64) -> Result<DeploymentRow> {
    query_deps(c, "id = ?1", &[&id])?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::inconsistent(format!("deployment #{id} vanished")))
}

/// Live deployments of an org (all clusters).
pub fn org_deployments(c: &Connection, org_id: i64) -> Result<Vec<DeploymentRow>> {
    query_deps(c, "org_id = ?1 AND deleted_at IS NULL", &[&org_id])
}

/// Live deployments the reconciler has to look at: everything not deleted nor terminated, and
/// terminated ones whose reported status has not caught up yet.
pub fn active_deployments(c: &Connection) -> Result<Vec<DeploymentRow>> {
    query_deps(
        c,
        "deleted_at IS NULL AND (phase != ?1 OR reported_status != ?2)",
        &[&Phase::Terminated, &DeploymentStatus::Terminated],
    )
}

pub fn insert_deployment(c: &Connection, d: &DeploymentRow) -> Result<i64> {
    c.execute(
        &format!("INSERT INTO deployments ({DEP_COLS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"),
        params![
            d.org_id, d.cluster, d.name, d.uid, d.created_at, d.updated_at, d.deleted_at,
            serde_json::to_string(&d.labels)?, d.dev as i64, d.creator, d.status, d.phase,
            d.message, d.target_revision, d.serving_revision, d.phase_since, d.last_request_at,
            d.reported_status, d.status_synced_at
        ],
    )?;
    Ok(c.last_insert_rowid())
}

/// Writes every mutable column of `d` back.
pub fn save_deployment(c: &Connection, d: &DeploymentRow) -> Result<()> {
    c.execute(
        "UPDATE deployments SET updated_at = ?2, deleted_at = ?3, labels = ?4, status = ?5, phase = ?6,
         message = ?7, target_revision = ?8, serving_revision = ?9, phase_since = ?10,
         last_request_at = ?11, reported_status = ?12, status_synced_at = ?13 WHERE id = ?1",
        params![
            d.id, d.updated_at, d.deleted_at, serde_json::to_string(&d.labels)?, d.status,
            d.phase, d.message, d.target_revision, d.serving_revision, d.phase_since,
            d.last_request_at, d.reported_status, d.status_synced_at
        ],
    )?;
    Ok(())
}

// ---------------------------------------------------------------- revisions

#[derive(Debug, Clone, PartialEq)]
pub struct RevisionRow {
    pub uid: String,
    pub deployment_id: i64,
    pub seq: i64,
    pub created_at: i64,
    pub bento_id: i64,
    pub config: DeploymentConfig,
    /// The canary of this revision, if any: served as one target per version plus
    /// `manifest.routing` (API doc §3.2, §10), never inside `config`.
    pub canary: Option<CanaryRow>,
    pub creator: String,
}

/// A revision's canary as stored: route settings and the versions by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryRow {
    pub route_type: Option<String>,
    pub route_by: Option<String>,
    pub versions: std::collections::BTreeMap<String, CanaryVersionRow>,
}

/// One canary version: its bento resolved to a row when the revision was written (so a
/// version given as `repo` keeps the bento it resolved to), its weight and its own config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CanaryVersionRow {
    pub bento_id: i64,
    pub weight: i64,
    pub config: DeploymentConfig,
}

/// The `config` column: the revision's config with its canary under the key `canary` (the
/// column predates canary rows; an older row's raw request canary is not a [`CanaryRow`] and
/// reads as none).
fn revision_config_text(config: &DeploymentConfig, canary: &Option<CanaryRow>) -> Result<String> {
    let mut v = serde_json::to_value(config)?;
    if let (Some(obj), Some(canary)) = (v.as_object_mut(), canary) {
        obj.insert("canary".into(), serde_json::to_value(canary)?);
    }
    Ok(serde_json::to_string(&v)?)
}

fn revision_config_parse(text: &str) -> Result<(DeploymentConfig, Option<CanaryRow>)> {
    let mut v: serde_json::Value = serde_json::from_str(text)?;
    let canary = v
        .as_object_mut()
        .and_then(|o| o.remove("canary"))
        .and_then(|c| serde_json::from_value::<CanaryRow>(c).ok());
    Ok((serde_json::from_value(v)?, canary))
}

pub fn insert_revision(c: &Connection, r: &RevisionRow) -> Result<()> {
    c.execute(
        "INSERT INTO revisions (uid, deployment_id, seq, created_at, bento_id, config, creator)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            r.uid,
            r.deployment_id,
            r.seq,
            r.created_at,
            r.bento_id,
            revision_config_text(&r.config, &r.canary)?,
            r.creator
        ],
    )?;
    Ok(())
}

pub fn next_revision_seq(c: &Connection, deployment_id: i64) -> Result<i64> {
    Ok(c.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM revisions WHERE deployment_id = ?1",
        [deployment_id],
        |r| r.get(0),
    )?)
}

pub fn revision(c: &Connection, uid: &str) -> Result<RevisionRow> {
    let x = c
        .query_row(
            "SELECT uid, deployment_id, seq, created_at, bento_id, config, creator FROM revisions WHERE uid = ?1",
            [uid],
            |r| {
                Ok((
                    RevisionRow {
                        uid: r.get(0)?,
                        deployment_id: r.get(1)?,
                        seq: r.get(2)?,
                        created_at: r.get(3)?,
                        bento_id: r.get(4)?,
                        config: DeploymentConfig::default(),
                        canary: None,
                        creator: r.get(6)?,
                    },
                    r.get::<_, String>(5)?,
                ))
            },
        )
        .optional()?;
    let (mut rev, cfg) =
        x.ok_or_else(|| StoreError::inconsistent(format!("revision {uid} vanished")))?;
    (rev.config, rev.canary) = revision_config_parse(&cfg)?;
    Ok(rev)
}

/// Every revision of a deployment, newest first.
pub fn deployment_revisions(c: &Connection, deployment_id: i64) -> Result<Vec<RevisionRow>> {
    let uids: Vec<String> = c
        .prepare("SELECT uid FROM revisions WHERE deployment_id = ?1 ORDER BY seq DESC")?
        .query_map([deployment_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    uids.iter().map(|u| revision(c, u)).collect()
}

pub fn revision_count(c: &Connection, deployment_id: i64) -> Result<i64> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM revisions WHERE deployment_id = ?1",
        [deployment_id],
        |r| r.get(0),
    )?)
}

// ---------------------------------------------------------------- replicas

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
    let rows = st.query_map(params![deployment_id, starting, ready, draining], |r| {
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
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
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

// ---------------------------------------------------------------- secrets

#[derive(Debug, Clone, PartialEq)]
pub struct SecretRow {
    pub id: i64,
    pub org_id: i64,
    pub name: String,
    pub uid: String,
    pub cluster: String,
    pub description: String,
    pub content: SecretContent,
    pub creator: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const SECRET_COLS: &str =
    "id, org_id, name, uid, cluster, description, content, creator, created_at, updated_at";

fn secret_row(r: &Row) -> rusqlite::Result<(SecretRow, String)> {
    Ok((
        SecretRow {
            id: r.get(0)?,
            org_id: r.get(1)?,
            name: r.get(2)?,
            uid: r.get(3)?,
            cluster: r.get(4)?,
            description: r.get(5)?,
            content: SecretContent::default(),
            creator: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
        },
        r.get(6)?,
    ))
}

/// Secrets of an org, newest first (ties by name).
pub fn secrets(c: &Connection, org_id: i64) -> Result<Vec<SecretRow>> {
    let mut st = c.prepare(&format!(
        "SELECT {SECRET_COLS} FROM secrets WHERE org_id = ?1 ORDER BY created_at DESC, name"
    ))?;
    let rows = st.query_map([org_id], secret_row)?;
    let mut out = Vec::new();
    for r in rows {
        let (mut s, content) = r?;
        s.content = serde_json::from_str(&content)?;
        out.push(s);
    }
    Ok(out)
}

pub fn find_secret(c: &Connection, org_id: i64, name: &str) -> Result<Option<SecretRow>> {
    Ok(secrets(c, org_id)?.into_iter().find(|s| s.name == name))
}

pub fn insert_secret(c: &Connection, s: &SecretRow) -> Result<()> {
    c.execute(
        &format!(
            "INSERT INTO secrets ({SECRET_COLS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ),
        params![
            s.org_id,
            s.name,
            s.uid,
            s.cluster,
            s.description,
            serde_json::to_string(&s.content)?,
            s.creator,
            s.created_at,
            s.updated_at
        ],
    )?;
    Ok(())
}

pub fn update_secret(c: &Connection, s: &SecretRow) -> Result<()> {
    c.execute(
        "UPDATE secrets SET description = ?2, content = ?3, updated_at = ?4 WHERE id = ?1",
        params![
            s.id,
            s.description,
            serde_json::to_string(&s.content)?,
            s.updated_at
        ],
    )?;
    Ok(())
}

pub fn delete_secret(c: &Connection, id: i64) -> Result<()> {
    c.execute("DELETE FROM secrets WHERE id = ?1", [id])?;
    Ok(())
}

#[cfg(test)]
mod tests;
