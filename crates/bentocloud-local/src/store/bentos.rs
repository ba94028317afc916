//! Bento repositories and bentos, with how each behaves when deployed.

use super::*;

/// How a bento behaves when run (set by `bentocloud-local bentos add`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    pub startup_ms: i64,
    /// Never passes its readiness probe.
    pub unready: bool,
    /// A ready replica crashes this long after becoming ready.
    pub crash_after_ms: Option<i64>,
    /// Request paths its replicas answer with 500 (see `crate::RegisterBento::fail_paths`);
    /// absent in rows written before it existed (`serde(default)`: none).
    pub fail_paths: Vec<String>,
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
            fail_paths: Vec::new(),
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
