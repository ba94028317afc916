//! What the pods say: whether they show the submitted revision rolled out ([`judge_pods`], the
//! module doc's "When the pods show that the rollout is done"), whether they contradict a
//! `running` ([`pods_serving_another_bento`]), and why a failed rollout's pods are not ready
//! ([`pods_reason`]). Pure: the pods are read by the caller.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, Timelike};

use crate::api::{Deployment, KubePod, Scaling, POD_BENTO_VERSION_LABEL};

use super::Change;

/// The pod label naming the service (deployment target) a pod runs, when the platform sends it:
/// `bentocloud-local` does; the ancestor's operator does not (see the module doc of
/// [`crate::wait`]), so the pods rule counts per service only when every pod has it.
pub const POD_SERVICE_LABEL: &str = "yatai.ai/bento-deployment-target-name";

/// Why the pods contradict a `running` for the revision whose main bento is `bento_version`:
/// a pod that still serves another bento (ready, not a canary's, not terminating). `None`
/// when they agree, or say nothing (no version label). Pure.
///
/// The status is computed from all pods by a periodic sync; a sync that falls between two
/// steps of a rolling update, when no pod is pending, reports `running` while old pods still
/// serve (API doc §10). The pods stream is the evidence that settles it for a bento change.
/// An env-only change keeps the bento version, so pods cannot tell old from new there (they
/// carry no revision label): the status alone judges it.
pub fn pods_serving_another_bento(pods: &[KubePod], bento_version: &str) -> Option<String> {
    let stale: Vec<String> = pods
        .iter()
        .filter(|p| p.status.ready && !p.status.is_canary && !p.is_terminating())
        .filter_map(|p| {
            let v = p.labels.get(POD_BENTO_VERSION_LABEL)?;
            (v != bento_version).then(|| format!("{} (bento version {v})", p.name))
        })
        .collect();
    (!stale.is_empty()).then(|| {
        format!(
            "BentoCloud reports running, but pods of another bento still serve: {}; waiting \
             for them to be replaced by bento version {bento_version}",
            stale.join(", ")
        )
    })
}

/// The reason a failed rollout's pods give: the pods that are not ready, those of the latest
/// revision's bento (`bento_version`) first, with their warnings (Kubernetes events such as a
/// failing readiness probe). `None` when no pod says anything. Pure.
pub fn pods_reason(pods: &[KubePod], bento_version: Option<&str>) -> Option<String> {
    let mut unready: Vec<&KubePod> = pods.iter().filter(|p| !p.status.ready).collect();
    if let Some(v) = bento_version {
        let of_new: Vec<&KubePod> = unready
            .iter()
            .copied()
            .filter(|p| p.labels.get(POD_BENTO_VERSION_LABEL).map(String::as_str) == Some(v))
            .collect();
        if !of_new.is_empty() {
            unready = of_new;
        }
    }
    let lines: Vec<String> = unready
        .iter()
        .take(3)
        .map(|p| {
            let version = p
                .labels
                .get(POD_BENTO_VERSION_LABEL)
                .map(|v| format!(" (bento version {v})"))
                .unwrap_or_default();
            let events: Vec<String> = p
                .warnings
                .iter()
                .flatten()
                .map(|e| format!("{}: {}", e.reason, e.message))
                .collect();
            if events.is_empty() {
                format!(
                    "pod {}{version} is not ready (phase {})",
                    p.name, p.status.phase
                )
            } else {
                format!(
                    "pod {}{version} is not ready: {}",
                    p.name,
                    events.join("; ")
                )
            }
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join(". "))
}

/// The replica bounds of one service, as the platform normalises them (API doc §5.3, the
/// official client's `_fix_scaling`): no scaling is `{1, 1}`, a missing `min` is 1, a missing
/// `max` is `max(min, 1)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub min: u32,
    pub max: u32,
}

impl Bounds {
    /// The bounds `scaling` asks for.
    pub fn of(scaling: Option<&Scaling>) -> Bounds {
        let min = scaling.and_then(|s| s.min_replicas).unwrap_or(1).max(0);
        let max = scaling
            .and_then(|s| s.max_replicas)
            .unwrap_or(min.max(1))
            .max(min);
        let cv = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
        Bounds {
            min: cv(min),
            max: cv(max),
        }
    }

    /// How many pods of a restarted revision must serve: `min_replicas` (a missing one is 1,
    /// see [`Bounds::of`]; 0 asks for none: the deployment may be scaled to zero).
    fn wanted(self) -> u32 {
        self.min
    }
}

/// What the submitted revision asks of the pods, read from its deployment document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutTarget {
    /// `latest_revision.created_at` (the server's clock).
    pub created_at: String,
    /// The main target's bento version.
    pub bento_version: Option<String>,
    /// The main target's services and their bounds; empty when the config names none (one
    /// service, bounds `{1, 1}`).
    pub services: BTreeMap<String, Bounds>,
}

impl RolloutTarget {
    /// The target of `d`'s latest revision.
    pub fn of(d: &Deployment) -> RolloutTarget {
        let created_at = d
            .latest_revision
            .as_ref()
            .map(|r| r.meta.created_at.clone())
            .unwrap_or_default();
        let services = d
            .main_target()
            .and_then(|t| t.config.as_ref())
            .map(|c| {
                c.services
                    .iter()
                    .map(|(name, s)| (name.clone(), Bounds::of(s.scaling.as_ref())))
                    .collect()
            })
            .unwrap_or_default();
        RolloutTarget {
            created_at,
            bento_version: main_bento_version(d).map(str::to_string),
            services,
        }
    }

    /// The bounds of all services together.
    pub(super) fn summed(&self) -> Bounds {
        if self.services.is_empty() {
            return Bounds::of(None);
        }
        self.services
            .values()
            .fold(Bounds { min: 0, max: 0 }, |a, b| Bounds {
                min: a.min.saturating_add(b.min),
                max: a.max.saturating_add(b.max),
            })
    }
}

/// What the pods say about the rollout of a revision ([`judge_pods`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodsVerdict {
    /// The rollout is done: `serving` pods of the revision serve; `why` says what showed it.
    Done { serving: usize, why: String },
    /// Not yet, or the pods cannot tell: what is missing.
    Waiting(String),
    /// Pods of the revision crash (a crash loop, or phase `Failed`): fails after the
    /// unhealthy grace.
    Crashing(String),
    /// Pods of the revision are not ready and Kubernetes' warnings say why: fails after the
    /// unready grace.
    Unready(String),
}

/// A server timestamp (RFC 3339).
fn server_time(s: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s.trim()).ok()
}

/// Whether a pod that started at `start` started at or after `created`, at the precision of
/// `start`: Kubernetes' `metav1.Time` has whole seconds, so `created` is then taken to its
/// second.
fn started_at_or_after(start: &DateTime<FixedOffset>, created: &DateTime<FixedOffset>) -> bool {
    let created = if start.nanosecond() == 0 {
        created.with_nanosecond(0).unwrap_or(*created)
    } else {
        *created
    };
    *start >= created
}

/// Serving: ready and not terminating (a terminating pod is out of the endpoints).
fn serves(p: &KubePod) -> bool {
    p.status.ready && !p.is_terminating()
}

/// A crash loop or a failed pod: what Kubernetes (and so `pod_status`) reports for it.
fn crashing(p: &KubePod) -> bool {
    let runtime = p.pod_status.as_ref().map(|r| r.status.as_str());
    matches!(runtime, Some("CrashLoopBackOff" | "Error" | "Failed")) || p.status.phase == "Failed"
}

/// Why `p` is not a pod of the revision (see the module doc of [`crate::wait`]), or `None` when it
/// is.
fn not_of_revision(
    p: &KubePod,
    created: &DateTime<FixedOffset>,
    bento_version: &str,
) -> Option<String> {
    if p.status.is_old {
        return Some("marked is_old".into());
    }
    match p.labels.get(POD_BENTO_VERSION_LABEL) {
        None => return Some("no bento version label".into()),
        Some(v) if v != bento_version => return Some(format!("bento version {v}")),
        Some(_) => {}
    }
    let Some(start) = p.status.start_time.as_deref() else {
        return Some("no start time".into());
    };
    match server_time(start) {
        None => Some(format!("unreadable start time {start:?}")),
        Some(t) if !started_at_or_after(&t, created) => {
            Some(format!("started {start}, before the revision"))
        }
        Some(_) => None,
    }
}

/// At most three items, then how many more.
pub(super) fn some_of(items: &[String]) -> String {
    let mut out = items.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 3 {
        out.push_str(&format!(" and {} more", items.len() - 3));
    }
    out
}

/// The groups the pods are counted in: per service when every pod in `main` names a service
/// of `target` in [`POD_SERVICE_LABEL`], else one group of all of them against the summed
/// bounds. Each group: its name (empty for all), its bounds, and its pods.
fn groups<'a>(
    target: &RolloutTarget,
    main: &[&'a KubePod],
) -> Vec<(String, Bounds, Vec<&'a KubePod>)> {
    let labelled = !main.is_empty()
        && !target.services.is_empty()
        && main.iter().all(|p| {
            p.labels
                .get(POD_SERVICE_LABEL)
                .is_some_and(|s| target.services.contains_key(s))
        });
    if labelled {
        target
            .services
            .iter()
            .map(|(name, b)| {
                let of: Vec<&KubePod> = main
                    .iter()
                    .copied()
                    .filter(|p| p.labels.get(POD_SERVICE_LABEL) == Some(name))
                    .collect();
                (name.clone(), *b, of)
            })
            .collect()
    } else {
        vec![(String::new(), target.summed(), main.to_vec())]
    }
}

/// "service X: " or nothing for the group of all pods.
fn group_name(name: &str) -> String {
    if name.is_empty() {
        String::new()
    } else {
        format!("service {name}: ")
    }
}

/// Judges whether the rollout of `target` (the submitted revision, making `change`) is done,
/// from the deployment's `pods` alone. Pure; the rule and its evidence are in the module doc
/// ("When the pods show that the rollout is done"). Canary pods are not matched against the
/// revision; one not ready (and not terminating) keeps it waiting.
///
/// - Pods of the revision that crash: [`PodsVerdict::Crashing`], whatever else holds.
/// - [`Change::Restart`]: [`PodsVerdict::Done`] when every serving pod is of the revision and
///   each group has at least its `min_replicas` of them serving.
/// - [`Change::Scale`]: done when no pod is pending or terminating, every pod runs the
///   revision's bento and is not `is_old`, and each group's ready count is within its bounds.
/// - Otherwise pods of the revision not ready with warnings: [`PodsVerdict::Unready`]; else
///   [`PodsVerdict::Waiting`], saying what is missing (also when the revision has no bento
///   version or no readable `created_at`: the pods cannot be matched or dated).
pub fn judge_pods(change: Change, target: &RolloutTarget, pods: &[KubePod]) -> PodsVerdict {
    let rev = match Revision::of(target) {
        Ok(rev) => rev,
        Err(why) => return PodsVerdict::Waiting(why),
    };
    let main: Vec<&KubePod> = pods.iter().filter(|p| !p.status.is_canary).collect();
    if let Some(reason) = rev.crash_reason(&main) {
        return PodsVerdict::Crashing(format!("pods of this revision crash: {reason}"));
    }
    let mut missing: Vec<String> = Vec::new();
    let mut serving = 0usize;
    for (name, bounds, of) in groups(target, &main) {
        let group = match change {
            Change::Restart => rev.restarted(bounds, &of),
            Change::Scale => rev.scaled(bounds, &of),
        };
        serving += group.serving;
        let label = group_name(&name);
        missing.extend(group.missing.iter().map(|m| format!("{label}{m}")));
    }
    missing.extend(canaries_starting(pods));
    if missing.is_empty() {
        return PodsVerdict::Done {
            serving,
            why: rev.done(change, serving),
        };
    }
    let missing = missing.join("; ");
    match rev.unready_reason(&main) {
        Some(reason) => PodsVerdict::Unready(format!("{missing}; {reason}")),
        None => PodsVerdict::Waiting(missing),
    }
}

/// The submitted revision as [`judge_pods`] matches pods against it: when it was created and
/// its bento version.
struct Revision<'a> {
    /// `created_at`, as the server wrote it.
    created_at: &'a str,
    created: DateTime<FixedOffset>,
    bento: &'a str,
}

/// What the pods of one group (a service, or all of them) show.
struct GroupCount {
    /// Pods of the revision that serve (after a restart), or ready pods (after a scaling).
    serving: usize,
    /// What keeps the rollout from being done in this group.
    missing: Vec<String>,
}

impl<'a> Revision<'a> {
    /// The revision of `target`, or why its pods cannot be matched or dated.
    fn of(target: &'a RolloutTarget) -> Result<Revision<'a>, String> {
        let Some(created) = server_time(&target.created_at) else {
            return Err(format!(
                "the revision's created_at ({:?}) is not a time: its pods cannot be dated",
                target.created_at
            ));
        };
        let Some(bento) = target.bento_version.as_deref() else {
            return Err("the revision names no bento version".into());
        };
        Ok(Revision {
            created_at: &target.created_at,
            created,
            bento,
        })
    }

    /// Why `p` is not a pod of this revision, or `None` when it is.
    fn disowns(&self, p: &KubePod) -> Option<String> {
        not_of_revision(p, &self.created, self.bento)
    }

    fn owns(&self, p: &KubePod) -> bool {
        self.disowns(p).is_none()
    }

    /// Why pods of this revision crash, when some do.
    fn crash_reason(&self, main: &[&KubePod]) -> Option<String> {
        let crashes: Vec<KubePod> = main
            .iter()
            .filter(|p| self.owns(p) && crashing(p))
            .map(|p| (*p).clone())
            .collect();
        if crashes.is_empty() {
            return None;
        }
        let names: Vec<String> = crashes.iter().map(|p| p.name.clone()).collect();
        Some(pods_reason(&crashes, Some(self.bento)).unwrap_or_else(|| some_of(&names)))
    }

    /// A group after a [`Change::Restart`]: no older pod may serve, and at least its
    /// `min_replicas` of this revision must.
    fn restarted(&self, bounds: Bounds, of: &[&KubePod]) -> GroupCount {
        let older: Vec<String> = of
            .iter()
            .filter(|p| serves(p))
            .filter_map(|p| self.disowns(p).map(|why| format!("{} ({why})", p.name)))
            .collect();
        let new = of.iter().filter(|p| serves(p) && self.owns(p)).count();
        let mut missing = Vec::new();
        if !older.is_empty() {
            missing.push(format!("older pods still serve: {}", some_of(&older)));
        }
        if new < bounds.wanted() as usize {
            missing.push(format!(
                "{new} of {} pods of this revision serve",
                bounds.wanted()
            ));
        }
        GroupCount {
            serving: new,
            missing,
        }
    }

    /// A group after a [`Change::Scale`]: no pod pending or terminating, every serving one of
    /// this revision's bento (not `is_old`), and a ready count within the new bounds.
    fn scaled(&self, bounds: Bounds, of: &[&KubePod]) -> GroupCount {
        let unsettled: Vec<String> = of
            .iter()
            .filter(|p| !serves(p))
            .map(|p| {
                let state = if p.is_terminating() {
                    "terminating"
                } else {
                    "pending"
                };
                format!("{} ({state})", p.name)
            })
            .collect();
        let other: Vec<String> = of
            .iter()
            .filter(|p| serves(p))
            .filter_map(|p| {
                let why = match p.labels.get(POD_BENTO_VERSION_LABEL) {
                    _ if p.status.is_old => "marked is_old".to_string(),
                    None => "no bento version label".to_string(),
                    Some(v) if v != self.bento => format!("bento version {v}"),
                    Some(_) => return None,
                };
                Some(format!("{} ({why})", p.name))
            })
            .collect();
        let ready = of.iter().filter(|p| serves(p)).count();
        let mut missing = Vec::new();
        if !unsettled.is_empty() {
            missing.push(format!("pods not settled: {}", some_of(&unsettled)));
        }
        if !other.is_empty() {
            missing.push(format!("pods of another bento serve: {}", some_of(&other)));
        }
        if !(bounds.min as usize..=bounds.max as usize).contains(&ready) {
            missing.push(format!(
                "{ready} ready pods, wanted {}..{}",
                bounds.min, bounds.max
            ));
        }
        GroupCount {
            serving: ready,
            missing,
        }
    }

    /// What showed the rollout done, with `serving` pods.
    fn done(&self, change: Change, serving: usize) -> String {
        let bento = self.bento;
        match change {
            Change::Restart => format!(
                "{serving} serving pods, all of bento version {bento} started since the \
                 revision was created ({}), none older",
                self.created_at
            ),
            Change::Scale => format!(
                "{serving} ready pods of bento version {bento} within the new scaling \
                 bounds, none pending or terminating"
            ),
        }
    }

    /// Why pods of this revision are not ready, when Kubernetes' warnings say.
    fn unready_reason(&self, main: &[&KubePod]) -> Option<String> {
        let unready: Vec<KubePod> = main
            .iter()
            .filter(|p| self.owns(p) && !p.status.ready && !p.is_terminating())
            .filter(|p| p.warnings.as_ref().is_some_and(|w| !w.is_empty()))
            .map(|p| (*p).clone())
            .collect();
        pods_reason(&unready, Some(self.bento))
    }
}

/// Canary pods still starting, if any: canary versions run other bentos by design, so their
/// pods are not matched; but one still starting is part of the rollout (the platform's status
/// counts every pod).
fn canaries_starting(pods: &[KubePod]) -> Option<String> {
    let starting: Vec<String> = pods
        .iter()
        .filter(|p| p.status.is_canary && !p.status.ready && !p.is_terminating())
        .map(|p| p.name.clone())
        .collect();
    (!starting.is_empty()).then(|| format!("canary pods not ready: {}", some_of(&starting)))
}

/// The version of the main target's bento of `d`.
pub(super) fn main_bento_version(d: &Deployment) -> Option<&str> {
    Some(d.main_target()?.bento.as_ref()?.version.as_str())
}

// ----- what the pods say about a deployment's health (the `bentocloud_deployment` data source)

/// The non-canary pods of `pods` in the groups the rollout wait counts them in: per service of
/// `target` when every one names a service of it in [`POD_SERVICE_LABEL`], else one group
/// (named `""`) of all of them against the summed bounds. Each group: its name, its bounds,
/// its pods. Pure; the same rule as [`judge_pods`], so a deployment's health and its rollouts
/// are counted alike.
pub fn pods_by_service<'a>(
    target: &RolloutTarget,
    pods: &'a [KubePod],
) -> Vec<(String, Bounds, Vec<&'a KubePod>)> {
    let main: Vec<&KubePod> = pods.iter().filter(|p| !p.status.is_canary).collect();
    groups(target, &main)
}

/// Whether `p` serves: ready and not terminating (a terminating pod is out of the endpoints).
/// The rule [`judge_pods`] counts serving pods by.
pub fn pod_serves(p: &KubePod) -> bool {
    serves(p)
}

/// Whether `p` crashes: a crash loop or a failed pod (`pod_status.status` `CrashLoopBackOff`,
/// `Error` or `Failed`, or phase `Failed`). The rule [`judge_pods`] fails a rollout on.
pub fn pod_crashes(p: &KubePod) -> bool {
    crashing(p)
}
