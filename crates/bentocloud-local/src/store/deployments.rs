//! Deployment rows and their revisions (each revision's config and canary, as JSON).

use super::*;

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
            status: r.get::<_, StoredStatus>(11)?.0,
            phase: r.get(12)?,
            message: r.get(13)?,
            target_revision: r.get(14)?,
            serving_revision: r.get(15)?,
            phase_since: r.get(16)?,
            last_request_at: r.get(17)?,
            reported_status: r.get::<_, StoredStatus>(18)?.0,
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
        &[
            &Phase::Terminated,
            &StoredStatus(DeploymentStatus::Terminated),
        ],
    )
}

pub fn insert_deployment(c: &Connection, d: &DeploymentRow) -> Result<i64> {
    c.execute(
        &format!("INSERT INTO deployments ({DEP_COLS}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"),
        params![
            d.org_id, d.cluster, d.name, d.uid, d.created_at, d.updated_at, d.deleted_at,
            serde_json::to_string(&d.labels)?, d.dev as i64, d.creator, StoredStatus(d.status), d.phase,
            d.message, d.target_revision, d.serving_revision, d.phase_since, d.last_request_at,
            StoredStatus(d.reported_status), d.status_synced_at
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
            d.id, d.updated_at, d.deleted_at, serde_json::to_string(&d.labels)?, StoredStatus(d.status),
            d.phase, d.message, d.target_revision, d.serving_revision, d.phase_since,
            d.last_request_at, StoredStatus(d.reported_status), d.status_synced_at
        ],
    )?;
    Ok(())
}

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
