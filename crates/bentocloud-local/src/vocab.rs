//! The emulator's closed vocabularies, typed: a deployment's rollout [`Phase`], a replica's
//! [`ReplicaState`], and (from `crate::api`) the [`DeploymentStatus`] a deployment has and
//! reports, stored through [`StoredStatus`]. SQLite stores each as its text spelling (the values
//! data dirs have always held); reading a value that is not one of them is an error naming the
//! column's vocabulary and the value, never a silent default.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

use crate::api::DeploymentStatus;

/// Rollout phase of a deployment: `image-building` → `image-build-failed` | `rolling` →
/// `complete` | `failed`, and `terminating` → `terminated` (see `reconcile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    ImageBuilding,
    ImageBuildFailed,
    Rolling,
    Complete,
    Failed,
    Terminating,
    Terminated,
}

impl Phase {
    pub const ALL: [Phase; 7] = [
        Self::ImageBuilding,
        Self::ImageBuildFailed,
        Self::Rolling,
        Self::Complete,
        Self::Failed,
        Self::Terminating,
        Self::Terminated,
    ];

    /// The stored (and `rollout.phase`) spelling, e.g. `image-building`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ImageBuilding => "image-building",
            Self::ImageBuildFailed => "image-build-failed",
            Self::Rolling => "rolling",
            Self::Complete => "complete",
            Self::Failed => "failed",
            Self::Terminating => "terminating",
            Self::Terminated => "terminated",
        }
    }
}

/// Lifecycle state of a replica: `starting` → `ready` (readiness probe passes) → `draining`
/// (no new traffic, in-flight requests finish) → `stopped`; a ready replica may `crash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplicaState {
    Starting,
    Ready,
    Draining,
    Stopped,
    Crashed,
}

impl ReplicaState {
    pub const ALL: [ReplicaState; 5] = [
        Self::Starting,
        Self::Ready,
        Self::Draining,
        Self::Stopped,
        Self::Crashed,
    ];

    /// The states whose process exists.
    pub const LIVE: [ReplicaState; 3] = [Self::Starting, Self::Ready, Self::Draining];

    /// The stored spelling, e.g. `draining`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Ready => "ready",
            Self::Draining => "draining",
            Self::Stopped => "stopped",
            Self::Crashed => "crashed",
        }
    }

    /// Starting, ready or draining: the replica process exists.
    pub fn is_live(self) -> bool {
        Self::LIVE.contains(&self)
    }
}

/// A stored text that is not a value of the column's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// What the column holds, e.g. `deployment phase`.
    pub what: &'static str,
    pub value: String,
    pub known: Vec<&'static str>,
}

impl std::fmt::Display for UnknownValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown {} {:?} in the database (known values: {}); was the data dir written by another version of bentocloud-local?",
            self.what,
            self.value,
            self.known.join(", ")
        )
    }
}

impl std::error::Error for UnknownValue {}

/// Reads the value of `all` whose `as_str` spelling the column holds.
fn from_text<T: Copy>(
    v: ValueRef<'_>,
    what: &'static str,
    all: &[T],
    as_str: fn(T) -> &'static str,
) -> FromSqlResult<T> {
    let s = v.as_str()?;
    all.iter()
        .copied()
        .find(|x| as_str(*x) == s)
        .ok_or_else(|| {
            FromSqlError::Other(Box::new(UnknownValue {
                what,
                value: s.to_string(),
                known: all.iter().map(|x| as_str(*x)).collect(),
            }))
        })
}

/// `ToSql` and `FromSql` through `ALL` and `as_str`.
macro_rules! stored_as_text {
    ($t:ty, $what:literal) => {
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.as_str()))
            }
        }

        impl FromSql for $t {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                from_text(v, $what, &<$t>::ALL, <$t>::as_str)
            }
        }
    };
}

stored_as_text!(Phase, "deployment phase");
stored_as_text!(ReplicaState, "replica state");

/// A [`DeploymentStatus`] as a column value. The type belongs to `bentocloud-api`, so the
/// orphan rule keeps its `ToSql`/`FromSql` here, on this wrapper: bind `StoredStatus(s)`, read
/// `r.get::<_, StoredStatus>(i)?.0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredStatus(pub DeploymentStatus);

impl ToSql for StoredStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.0.as_str()))
    }
}

impl FromSql for StoredStatus {
    fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
        from_text(
            v,
            "deployment status",
            &DeploymentStatus::ALL,
            DeploymentStatus::as_str,
        )
        .map(StoredStatus)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ReplicaState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .expect("table");
        c
    }

    /// Stores `value`, then reads back both the raw text and the typed value.
    fn round_trip<T: ToSql + FromSql>(c: &Connection, value: &T) -> (String, T) {
        c.execute("DELETE FROM t", []).expect("clear");
        c.execute("INSERT INTO t (v) VALUES (?1)", [value])
            .expect("insert");
        let text: String = c
            .query_row("SELECT v FROM t", [], |r| r.get(0))
            .expect("text");
        let back: T = c
            .query_row("SELECT v FROM t", [], |r| r.get(0))
            .expect("typed");
        (text, back)
    }

    fn read<T: FromSql>(c: &Connection, text: &str) -> rusqlite::Result<T> {
        c.execute("DELETE FROM t", []).expect("clear");
        c.execute("INSERT INTO t (v) VALUES (?1)", [text])
            .expect("insert");
        c.query_row("SELECT v FROM t", [], |r| r.get(0))
    }

    #[test]
    fn every_value_is_stored_as_the_text_data_dirs_already_hold() {
        let c = db();
        let phases = [
            "image-building",
            "image-build-failed",
            "rolling",
            "complete",
            "failed",
            "terminating",
            "terminated",
        ];
        assert_eq!(Phase::ALL.len(), phases.len());
        for (p, text) in Phase::ALL.into_iter().zip(phases) {
            assert_eq!(round_trip(&c, &p), (text.to_string(), p));
            assert_eq!(p.to_string(), text);
        }
        let states = ["starting", "ready", "draining", "stopped", "crashed"];
        assert_eq!(ReplicaState::ALL.len(), states.len());
        for (s, text) in ReplicaState::ALL.into_iter().zip(states) {
            assert_eq!(round_trip(&c, &s), (text.to_string(), s));
            assert_eq!(s.to_string(), text);
        }
        for s in DeploymentStatus::ALL {
            assert_eq!(
                round_trip(&c, &StoredStatus(s)),
                (s.as_str().to_string(), StoredStatus(s))
            );
        }
        // The schema's default for `reported_status` reads as a status.
        assert_eq!(
            read::<StoredStatus>(&c, "unknown").expect("default").0,
            DeploymentStatus::Unknown
        );
    }

    #[test]
    fn an_unknown_stored_value_is_an_error_naming_it() {
        let c = db();
        let e = read::<Phase>(&c, "rollin").expect_err("phase");
        let msg = e.to_string();
        assert!(msg.contains("unknown deployment phase \"rollin\""), "{msg}");
        assert!(
            msg.contains("image-building, image-build-failed, rolling"),
            "{msg}"
        );
        let e = read::<ReplicaState>(&c, "READY").expect_err("state");
        assert!(
            e.to_string().contains("unknown replica state \"READY\""),
            "{e}"
        );
        // Unlike the API's lenient JSON reading, the store does not turn it into `unknown`.
        let e = read::<StoredStatus>(&c, "warming-up").expect_err("status");
        assert!(
            e.to_string()
                .contains("unknown deployment status \"warming-up\""),
            "{e}"
        );
        // Not text at all.
        assert!(c
            .query_row("SELECT 42", [], |r| r.get::<_, Phase>(0))
            .is_err());
    }

    #[test]
    fn live_states() {
        let live: Vec<ReplicaState> = ReplicaState::ALL
            .into_iter()
            .filter(|s| s.is_live())
            .collect();
        assert_eq!(
            live,
            [
                ReplicaState::Starting,
                ReplicaState::Ready,
                ReplicaState::Draining
            ]
        );
    }
}
