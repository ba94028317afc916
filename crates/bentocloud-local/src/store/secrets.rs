//! Organisation secret rows.

use super::*;

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
