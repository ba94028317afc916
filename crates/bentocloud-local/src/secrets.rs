//! Organisation secrets as commands: validation, the list's search and paging, create, read,
//! update and delete over [`super::store`]. The HTTP layer ([`super::http`]) parses requests
//! and renders the rows these return, as it does for [`super::deployments`].

use rusqlite::Connection;

use super::error::ApiError;
use super::error::Result;
use super::store::{self, Principal, SecretRow};
use crate::api::{CreateSecretRequest, SecretContent, UpdateSecretRequest};

/// Checks a secret's content: its type, at least one item, item keys (environment variable
/// names for `env`), and the stage.
pub fn validate_content(content: &SecretContent) -> Result<()> {
    match content.kind.as_str() {
        "env" | "mountfile" => {}
        k => {
            return Err(ApiError::bad(format!(
                "secret content type {k:?} is invalid: use \"env\" or \"mountfile\""
            )))
        }
    }
    if content.items.is_empty() {
        return Err(ApiError::bad(
            "secret content has no items: give at least one key",
        ));
    }
    for item in &content.items {
        if content.kind == "env" {
            crate::rules::env_name(&item.key).map_err(ApiError::bad)?;
        } else if item.key.is_empty() {
            return Err(ApiError::bad("secret item key is empty"));
        }
    }
    if let Some(stage) = &content.stage {
        if !["build", "runtime", "all"].contains(&stage.as_str()) {
            return Err(ApiError::bad(format!(
                "secret stage {stage:?} is invalid: use build, runtime or all"
            )));
        }
    }
    Ok(())
}

/// Which secrets a list returns: names containing `search` and every word of `words`, then
/// `count` of them from `start`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub start: usize,
    pub count: usize,
    pub search: Option<String>,
    pub words: Vec<String>,
}

/// One page of `org_id`'s secrets and how many matched in all.
pub fn list(c: &Connection, org_id: i64, q: &ListQuery) -> Result<(u64, Vec<SecretRow>)> {
    let rows: Vec<SecretRow> = store::secrets(c, org_id)?
        .into_iter()
        .filter(|x| {
            q.search
                .as_ref()
                .map(|s| x.name.contains(s.as_str()))
                .unwrap_or(true)
        })
        .filter(|x| q.words.iter().all(|w| x.name.contains(w.as_str())))
        .collect();
    let total = rows.len() as u64;
    let page = rows.into_iter().skip(q.start).take(q.count).collect();
    Ok((total, page))
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("secret {name:?} not found"))
}

/// `p`'s org's secret `name`, or a 404.
pub fn get(c: &Connection, p: &Principal, name: &str) -> Result<SecretRow> {
    store::find_secret(c, p.org.id, name)?.ok_or_else(|| not_found(name))
}

/// Creates secret `req.name` in `p`'s org, bound to `cluster` (org-wide without one).
pub fn create(
    c: &Connection,
    p: &Principal,
    cluster: Option<&str>,
    req: CreateSecretRequest,
    now: i64,
) -> Result<SecretRow> {
    let cl = match cluster {
        Some(n) => store::cluster(c, Some(n))?.name,
        None => String::new(),
    };
    if store::find_secret(c, p.org.id, &req.name)?.is_some() {
        return Err(ApiError::bad(format!(
            "secret {:?} already exists",
            req.name
        )));
    }
    let row = SecretRow {
        id: 0,
        org_id: p.org.id,
        name: req.name,
        uid: store::new_uid(),
        cluster: cl,
        description: req.description.unwrap_or_default(),
        content: req.content,
        creator: p.user_name.clone(),
        created_at: now,
        updated_at: now,
    };
    store::insert_secret(c, &row)?;
    Ok(row)
}

/// Checks a create request before anything is read: the name, then the content.
pub fn check_create(req: &CreateSecretRequest) -> Result<()> {
    crate::rules::deployment_name(&req.name)
        .map_err(|e| ApiError::bad(format!("secret name: {e}")))?;
    validate_content(&req.content)
}

/// Replaces the content (and the description when given) of secret `name`.
pub fn update(
    c: &Connection,
    p: &Principal,
    name: &str,
    req: UpdateSecretRequest,
    now: i64,
) -> Result<SecretRow> {
    let mut row = get(c, p, name)?;
    row.content = req.content;
    if let Some(d) = req.description {
        row.description = d;
    }
    row.updated_at = now;
    store::update_secret(c, &row)?;
    Ok(row)
}

/// Deletes secret `name`; returns it as it was.
pub fn delete(c: &Connection, p: &Principal, name: &str) -> Result<SecretRow> {
    let row = get(c, p, name)?;
    store::delete_secret(c, row.id)?;
    Ok(row)
}
