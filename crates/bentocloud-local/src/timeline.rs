//! A deployment's history for the web page: its revisions and the timeline of its last rollout
//! (how many replicas of each revision were ready, starting and draining over time). A local
//! view like `render::RolloutProgress`: served only under
//! `/api/local/v1/deployments/{name}/revisions` and `.../timeline`, never on the real API's
//! routes, and not a type of `crate::api`.
//!
//! **What is recorded.** A *sample* is a deployment's replica counts at one instant, per
//! revision (every target: `main` and canary versions), with its phase and its target and
//! serving revisions. The reconciler records one at the end of a pass that changed something
//! the chart shows: a replica started, became ready, crashed, began or finished draining, was
//! restarted, or the phase or target revision changed ([`record`]). Between two samples none
//! of that changed, so the samples are exactly the steps of the replica counts: there is no
//! sampling period to choose, no step is missed between ticks, and an idle fleet writes
//! nothing.
//!
//! **Where.** In SQLite (table `timeline`), in the same transaction as the replica and
//! deployment rows the sample describes, so it never disagrees with them, and it survives a
//! restart like the rollout it describes (a rollout resumed after a `kill -9` keeps its
//! beginning on the chart). It needs nothing beside the store, which the reconciler already
//! holds. An in-memory ring per deployment would have been as short to write, but it would need
//! shared state threaded into the reconciler and would be empty after every restart.
//!
//! **Bounded.** At most [`MAX_SAMPLES`] per deployment: recording one drops the oldest beyond
//! it (an indexed delete). A rolling update writes about four samples per replica (started,
//! ready, draining, stopped), so the bound holds a rollout of about a hundred replicas, or many
//! small ones; a deployment that crash-loops only ever keeps its latest history.
//!
//! **What is read.** [`read`] returns the window of the last rollout: from the last sample
//! taken at or before its revision was created (the state the rollout started from) to the
//! latest one, with the revisions seen in it (`new`: the rollout's revision; `old`: any other),
//! and the autoscaler's decisions in that window (`crate::autoscale`: table `scale_events`,
//! written in the same transaction as the scale they set; each decision also records a sample,
//! as it changes the replicas the chart shows).
//!
//! **Canary routing.** Each change of the traffic split the endpoint applies (the canary's
//! route type, `route_by` and each version's weight; `crate::reconcile`'s `routing`: the
//! canary of the revision being rolled out, else of the serving one) is recorded with the
//! time the endpoint began applying it ([`record_routing`], table `routing_history`, in the
//! transaction that publishes the route), when it differs from the last one recorded: an
//! update that only changes envs keeps the split and records nothing, a deployment that never
//! had a canary has no entry, and one whose canary is removed gets an entry with no version
//! (everything to `main`). [`read`] returns every change kept ([`MAX_ROUTING`] per
//! deployment), oldest first, **not** only those of the last rollout's window: a progressive
//! delivery moves the weight by one update (one rollout) per step, and the chart of its steps
//! needs them all. The weights are the configured ones: a version with no ready replica has
//! its share sent to `main` meanwhile (`crate::split`), which the samples' replica counts show.

use std::collections::BTreeMap;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use super::render::ts;
use super::split::{RouteBy, Split};
use super::store::{self, DeploymentRow, ReplicaRow, Result};
use super::vocab::ReplicaState;

/// Samples kept per deployment.
pub const MAX_SAMPLES: usize = 500;

/// Routing changes kept per deployment.
pub const MAX_ROUTING: usize = 200;

/// One change of the canary routing a deployment's endpoint applies (see the module doc).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutingChange {
    /// RFC 3339: when the endpoint began applying it.
    pub at: String,
    /// Milliseconds since the epoch (the server's clock), for charts.
    pub at_ms: i64,
    /// The revision whose canary this is (the one rolled out, or the serving one).
    pub revision_uid: String,
    /// `random`, `header` or `query` as the endpoint applies it (a canary whose `route_type` is
    /// null routes at random); `null`: no canary, everything goes to `main`.
    pub route_type: Option<String>,
    /// The header or query parameter of `header` / `query` routing; `null` otherwise.
    pub route_by: Option<String>,
    /// Each canary version's weight in percent (`main` gets the rest); empty without a canary.
    /// Only `random` routing uses them.
    pub weights: BTreeMap<String, u32>,
}

impl RoutingChange {
    /// What is compared to tell a change: everything but when and which revision.
    fn split_key(&self) -> (&Option<String>, &Option<String>, &BTreeMap<String, u32>) {
        (&self.route_type, &self.route_by, &self.weights)
    }
}

/// The replicas of one revision in one sample.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RevisionCount {
    pub uid: String,
    pub ready: u32,
    pub starting: u32,
    pub draining: u32,
}

/// A deployment's replica counts at one instant. A revision with no live replica is absent
/// (it has zero of each).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sample {
    /// RFC 3339.
    pub at: String,
    /// Milliseconds since the epoch (the server's clock), for charts.
    pub at_ms: i64,
    pub phase: String,
    pub revision_uid: String,
    pub serving_revision_uid: String,
    pub revisions: Vec<RevisionCount>,
}

/// A revision that had replicas in the window of [`Timeline`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SeriesRevision {
    pub uid: String,
    pub seq: i64,
    /// `repo:version` of its main target.
    pub bento: String,
    /// `new` for the rollout's revision, `old` for any other.
    pub role: String,
}

/// `GET /api/local/v1/deployments/{name}/timeline`: the last rollout, step by step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeline {
    pub name: String,
    pub cluster: String,
    /// The revision of the last rollout (the deployment's latest revision).
    pub revision_uid: String,
    pub serving_revision_uid: String,
    pub phase: String,
    /// When the last rollout began: its revision was created.
    pub started_at: String,
    pub started_at_ms: i64,
    /// The server's clock when this was read: a chart of a rollout still under way ends here.
    pub now_ms: i64,
    /// Every revision with replicas in `samples`, oldest first.
    pub revisions: Vec<SeriesRevision>,
    /// Oldest first; the first one may predate `started_at` (the state the rollout began from).
    pub samples: Vec<Sample>,
    /// The autoscaler's decisions from the first sample on, oldest first: each service's count
    /// before and after, with the metric and the measured value per replica that caused it.
    pub scaling: Vec<crate::autoscale::ScaleEvent>,
    /// Every change of the canary routing kept (not only this rollout's), oldest first.
    pub routing: Vec<RoutingChange>,
}

/// One revision of a deployment, as the page lists them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RevisionItem {
    pub uid: String,
    /// `{deployment}-rev-{seq}`, as in `latest_revision.name`.
    pub name: String,
    pub seq: i64,
    pub created_at: String,
    pub creator: String,
    /// `repo:version` of its main target.
    pub bento: String,
    /// `active` for the deployment's latest revision (as `latest_revision.status` says),
    /// `inactive` for the others.
    pub status: String,
    /// Its replicas serve the traffic (the last revision whose rollout completed).
    pub serving: bool,
}

/// `GET /api/local/v1/deployments/{name}/revisions`: newest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Revisions {
    pub name: String,
    pub cluster: String,
    pub items: Vec<RevisionItem>,
}

/// Replica counts per revision, in the order the revisions' first replicas were started.
pub fn counts(reps: &[ReplicaRow]) -> Vec<RevisionCount> {
    let mut out: Vec<RevisionCount> = Vec::new();
    for r in reps {
        let i = match out.iter().position(|c| c.uid == r.revision_uid) {
            Some(i) => i,
            None => {
                out.push(RevisionCount {
                    uid: r.revision_uid.clone(),
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        let c = &mut out[i];
        match r.state {
            ReplicaState::Starting => c.starting += 1,
            ReplicaState::Ready => c.ready += 1,
            ReplicaState::Draining => c.draining += 1,
            ReplicaState::Stopped | ReplicaState::Crashed => {}
        }
    }
    out.retain(|c| c.ready + c.starting + c.draining > 0);
    out
}

/// Records the replica counts of `d` as of `now` (its live replicas as stored), replacing a
/// sample recorded at the same instant, and drops its samples beyond [`MAX_SAMPLES`].
pub fn record(c: &Connection, d: &DeploymentRow, now: i64) -> Result<()> {
    let reps = store::live_replicas(c, d.id)?;
    c.execute(
        "INSERT OR REPLACE INTO timeline
           (deployment_id, at, phase, target_revision, serving_revision, counts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            d.id,
            now,
            d.phase.as_str(),
            d.target_revision,
            d.serving_revision,
            serde_json::to_string(&counts(&reps))?
        ],
    )?;
    c.execute(
        "DELETE FROM timeline WHERE deployment_id = ?1 AND at < (
           SELECT at FROM timeline WHERE deployment_id = ?1 ORDER BY at DESC LIMIT 1 OFFSET ?2)",
        params![d.id, MAX_SAMPLES as i64 - 1],
    )?;
    Ok(())
}

/// Records the routing the endpoint of deployment `deployment_id` applies from `now` on, if
/// it differs from the last one recorded (see the module doc): `split` is the canary of
/// revision `revision_uid`, `None` for none. Replaces a change recorded at the same instant and
/// drops those beyond [`MAX_ROUTING`]. Returns whether it recorded one.
pub fn record_routing(
    c: &Connection,
    deployment_id: i64,
    revision_uid: &str,
    split: Option<&Split>,
    now: i64,
) -> Result<bool> {
    let (route_type, route_by) = match split.map(|s| &s.by) {
        None => (None, None),
        Some(RouteBy::Random) => (Some("random"), None),
        Some(RouteBy::Header(h)) => (Some("header"), Some(h.clone())),
        Some(RouteBy::Query(q)) => (Some("query"), Some(q.clone())),
    };
    let now_change = RoutingChange {
        at: ts(now),
        at_ms: now,
        revision_uid: revision_uid.to_string(),
        route_type: route_type.map(str::to_string),
        route_by,
        weights: split
            .map(|s| s.weights.iter().cloned().collect())
            .unwrap_or_default(),
    };
    match routing(c, deployment_id, 1)?.pop() {
        // Never had a canary and still has none: nothing to say.
        None if split.is_none() => return Ok(false),
        Some(last) if last.split_key() == now_change.split_key() => return Ok(false),
        _ => {}
    }
    c.execute(
        "INSERT OR REPLACE INTO routing_history
           (deployment_id, at, revision_uid, route_type, route_by, weights)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            deployment_id,
            now,
            now_change.revision_uid,
            now_change.route_type,
            now_change.route_by,
            serde_json::to_string(&now_change.weights)?
        ],
    )?;
    c.execute(
        "DELETE FROM routing_history WHERE deployment_id = ?1 AND at < (
           SELECT at FROM routing_history WHERE deployment_id = ?1
           ORDER BY at DESC LIMIT 1 OFFSET ?2)",
        params![deployment_id, MAX_ROUTING as i64 - 1],
    )?;
    Ok(true)
}

/// The last `limit` routing changes of a deployment, oldest first.
pub fn routing(c: &Connection, deployment_id: i64, limit: usize) -> Result<Vec<RoutingChange>> {
    let mut st = c.prepare(
        "SELECT at, revision_uid, route_type, route_by, weights FROM routing_history
         WHERE deployment_id = ?1 ORDER BY at DESC LIMIT ?2",
    )?;
    let rows = st
        .query_map(
            params![deployment_id, i64::try_from(limit).unwrap_or(i64::MAX)],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (at, revision_uid, route_type, route_by, weights) in rows.into_iter().rev() {
        out.push(RoutingChange {
            at: ts(at),
            at_ms: at,
            revision_uid,
            route_type,
            route_by,
            weights: serde_json::from_str(&weights)?,
        });
    }
    Ok(out)
}

/// Samples of `d` from the last one at or before `since` (or the oldest kept) on, oldest first.
pub fn samples(c: &Connection, deployment_id: i64, since: i64) -> Result<Vec<Sample>> {
    let mut st = c.prepare(
        "SELECT at, phase, target_revision, serving_revision, counts FROM timeline
         WHERE deployment_id = ?1 AND at >= COALESCE(
           (SELECT MAX(at) FROM timeline WHERE deployment_id = ?1 AND at <= ?2), ?2)
         ORDER BY at",
    )?;
    let rows = st
        .query_map(params![deployment_id, since], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (at, phase, target, serving, counts) in rows {
        out.push(Sample {
            at: ts(at),
            at_ms: at,
            phase,
            revision_uid: target,
            serving_revision_uid: serving,
            revisions: serde_json::from_str(&counts)?,
        });
    }
    Ok(out)
}

/// The timeline of the last rollout of `d` (see the module doc), read at `now`.
pub fn read(c: &Connection, d: &DeploymentRow, now: i64) -> Result<Timeline> {
    let rev = store::revision(c, &d.target_revision)?;
    let samples = samples(c, d.id, rev.created_at)?;
    let since = samples.first().map_or(rev.created_at, |s| s.at_ms);
    let scaling = crate::autoscale::events(c, d.id, since)?;
    let routing = routing(c, d.id, MAX_ROUTING)?;
    let mut seen: BTreeMap<i64, SeriesRevision> = BTreeMap::new();
    for uid in samples
        .iter()
        .flat_map(|s| s.revisions.iter().map(|r| &r.uid))
    {
        if seen.values().any(|s| &s.uid == uid) {
            continue;
        }
        let r = store::revision(c, uid)?;
        let b = store::bento_by_id(c, r.bento_id)?;
        seen.insert(
            r.seq,
            SeriesRevision {
                uid: r.uid.clone(),
                seq: r.seq,
                bento: b.tag(),
                role: if r.uid == d.target_revision {
                    "new"
                } else {
                    "old"
                }
                .into(),
            },
        );
    }
    Ok(Timeline {
        name: d.name.clone(),
        cluster: d.cluster.clone(),
        revision_uid: d.target_revision.clone(),
        serving_revision_uid: d.serving_revision.clone(),
        phase: d.phase.as_str().to_string(),
        started_at: ts(rev.created_at),
        started_at_ms: rev.created_at,
        now_ms: now,
        revisions: seen.into_values().collect(),
        samples,
        scaling,
        routing,
    })
}

/// The revisions of `d`, newest first.
pub fn revisions(c: &Connection, d: &DeploymentRow) -> Result<Revisions> {
    let mut items = Vec::new();
    for r in store::deployment_revisions(c, d.id)? {
        let b = store::bento_by_id(c, r.bento_id)?;
        items.push(RevisionItem {
            name: format!("{}-rev-{}", d.name, r.seq),
            seq: r.seq,
            created_at: ts(r.created_at),
            creator: r.creator.clone(),
            bento: b.tag(),
            status: if r.uid == d.target_revision {
                "active"
            } else {
                "inactive"
            }
            .into(),
            serving: r.uid == d.serving_revision,
            uid: r.uid,
        });
    }
    Ok(Revisions {
        name: d.name.clone(),
        cluster: d.cluster.clone(),
        items,
    })
}
