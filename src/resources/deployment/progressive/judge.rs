//! The pure rules of a progressive rollout: its settings with their defaults, and the judges
//! of a step (the canary's pods, the probe results). Time is passed in (`now` since the step
//! began), so the rules are tested without waiting.

use std::collections::BTreeMap;
use std::time::Duration;

use tf_provider::value::Value;

use super::super::model::{
    Analysis, ProgressiveRollout, DEFAULT_BAKE_TIME, DEFAULT_MAX_LATENCY, DEFAULT_PROBE_INTERVAL,
    DEFAULT_UNREADY_GRACE,
};
use crate::api::KubePod;
use crate::data_sources::health::shows_restart;
use crate::duration::parse_go_duration;

/// The label of a pod's bento version (set by the platform's operator, API doc §10).
const VERSION_LABEL: &str = "yatai.ai/bento-version";

/// A `progressive_rollout` block with its defaults, parsed (validated at plan time).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub steps: Vec<i64>,
    pub bake_time: Duration,
    pub route_type: String,
    pub route_by: Option<String>,
    pub unready_grace: Duration,
    pub max_restarts: u32,
    pub probe: Option<Probe>,
}

/// The probe part of `analysis`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub path: String,
    pub interval: Duration,
    pub max_failure_rate: f64,
    pub max_latency: Duration,
}

fn duration_or(v: &Value<String>, default: &str) -> Duration {
    let text = v.as_ref_option().map_or(default, String::as_str);
    parse_go_duration(text)
        .or_else(|_| parse_go_duration(default))
        .unwrap_or_default()
}

impl Settings {
    /// The settings of a block (`None` when the block or its steps are not known).
    pub fn of(p: &ProgressiveRollout) -> Option<Settings> {
        let steps: Vec<i64> = p
            .steps
            .as_ref_option()?
            .iter()
            .filter_map(|s| s.as_ref_option().copied())
            .collect();
        if steps.is_empty() {
            return None;
        }
        let a = p.analysis.as_ref_option().cloned().unwrap_or_default();
        let Analysis {
            unready_grace,
            max_restarts,
            probe_path,
            probe_interval,
            max_failure_rate,
            max_latency,
        } = a;
        Some(Settings {
            steps,
            bake_time: duration_or(&p.bake_time, DEFAULT_BAKE_TIME),
            route_type: p
                .route_type
                .as_ref_option()
                .cloned()
                .unwrap_or_else(|| "random".into()),
            route_by: p.route_by.as_ref_option().cloned(),
            unready_grace: duration_or(&unready_grace, DEFAULT_UNREADY_GRACE),
            max_restarts: max_restarts
                .as_ref_option()
                .map_or(0, |n| u32::try_from(*n).unwrap_or(0)),
            probe: probe_path.as_ref_option().map(|path| Probe {
                path: path.clone(),
                interval: duration_or(&probe_interval, DEFAULT_PROBE_INTERVAL),
                max_failure_rate: max_failure_rate.as_ref_option().copied().unwrap_or(0.0),
                max_latency: duration_or(&max_latency, DEFAULT_MAX_LATENCY),
            }),
        })
    }
}

/// Why a step failed: the check and its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub check: &'static str,
    pub evidence: String,
}

/// What the canary's pods say at one look.
#[derive(Debug, Clone, PartialEq)]
pub enum PodsSay {
    /// Not all of the canary's pods are ready yet (within the grace).
    Starting {
        ready: usize,
        total: usize,
    },
    /// Every canary pod of the version is ready.
    Ready {
        ready: usize,
    },
    Failed(Failure),
}

/// Watches the canary's pods over a step: when each pod was first seen not ready, and which
/// pods showed a restart.
#[derive(Debug, Default)]
pub struct PodWatch {
    unready_since: BTreeMap<String, Duration>,
    restarted: BTreeMap<String, String>,
}

impl PodWatch {
    /// Judges `pods` (the whole deployment's) at `now` for the canary pods running
    /// `bento_version`. Fails on a crash loop, on more pods showing a restart than
    /// `max_restarts`, and on a pod not ready for longer than `grace`.
    pub fn observe(
        &mut self,
        pods: &[KubePod],
        bento_version: &str,
        now: Duration,
        grace: Duration,
        max_restarts: u32,
    ) -> PodsSay {
        let canary: Vec<&KubePod> = pods
            .iter()
            .filter(|p| p.status.is_canary && !p.is_terminating())
            .filter(|p| p.labels.get(VERSION_LABEL).map(String::as_str) == Some(bento_version))
            .collect();
        for p in &canary {
            if let Some(reason) = crash_loop(p) {
                return PodsSay::Failed(Failure {
                    check: "crash loop",
                    evidence: format!("canary pod {} is in {reason}{}", p.name, warnings_of(p)),
                });
            }
            if shows_restart(p) {
                self.restarted.insert(p.name.clone(), warnings_of(p));
            }
        }
        if self.restarted.len() > max_restarts as usize {
            let (name, w) = self
                .restarted
                .iter()
                .next()
                .map_or((String::new(), String::new()), |(n, w)| {
                    (n.clone(), w.clone())
                });
            return PodsSay::Failed(Failure {
                check: "restarts",
                evidence: format!(
                    "{} canary pod(s) restarted (at most {max_restarts} tolerated), e.g. {name}{w}",
                    self.restarted.len()
                ),
            });
        }
        let mut ready = 0;
        for p in &canary {
            if p.status.ready {
                ready += 1;
                self.unready_since.remove(&p.name);
                continue;
            }
            let since = *self.unready_since.entry(p.name.clone()).or_insert(now);
            if now.saturating_sub(since) > grace {
                return PodsSay::Failed(Failure {
                    check: "not ready",
                    evidence: format!(
                        "canary pod {} not ready for {}s (grace {}s){}",
                        p.name,
                        now.saturating_sub(since).as_secs(),
                        grace.as_secs(),
                        warnings_of(p)
                    ),
                });
            }
        }
        if !canary.is_empty() && ready == canary.len() {
            PodsSay::Ready { ready }
        } else {
            PodsSay::Starting {
                ready,
                total: canary.len(),
            }
        }
    }
}

/// The crash-loop state of a pod, if it is in one (`CrashLoopBackOff`, `Error`).
fn crash_loop(p: &KubePod) -> Option<String> {
    let s = p
        .pod_status
        .as_ref()
        .map(|s| s.status.as_str())
        .unwrap_or("");
    matches!(s, "CrashLoopBackOff" | "Error").then(|| s.to_string())
}

fn warnings_of(p: &KubePod) -> String {
    let w: Vec<String> = p
        .warnings
        .iter()
        .flatten()
        .map(|e| format!("{}: {}", e.reason, e.message))
        .collect();
    if w.is_empty() {
        String::new()
    } else {
        format!(" ({})", w.join("; "))
    }
}

/// One probe's outcome: its status code (or transport error) and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub outcome: Result<u16, String>,
    pub took: Duration,
}

/// The probe results of a step.
#[derive(Debug, Default, Clone)]
pub struct ProbeTally {
    pub sent: usize,
    pub failed: usize,
    pub last_failure: Option<String>,
}

impl ProbeTally {
    /// Records one result: a 5xx, an error, or an answer slower than `max_latency` fails.
    pub fn record(&mut self, r: &ProbeResult, max_latency: Duration) {
        self.sent += 1;
        let why = match &r.outcome {
            Err(e) => Some(format!("request failed: {e}")),
            Ok(code) if *code >= 500 => Some(format!("answered {code}")),
            Ok(_) if r.took > max_latency => Some(format!(
                "answered in {} ms (max_latency {} ms)",
                r.took.as_millis(),
                max_latency.as_millis()
            )),
            Ok(_) => None,
        };
        if let Some(why) = why {
            self.failed += 1;
            self.last_failure = Some(why);
        }
    }

    /// Fails when the share of failed probes is above `max_failure_rate`.
    pub fn verdict(&self, max_failure_rate: f64) -> Result<(), Failure> {
        if self.sent == 0 || self.failed == 0 {
            return Ok(());
        }
        let rate = self.failed as f64 / self.sent as f64;
        if rate > max_failure_rate {
            return Err(Failure {
                check: "probe",
                evidence: format!(
                    "{} of {} probes failed ({:.0}%, at most {:.0}% tolerated); last: {}",
                    self.failed,
                    self.sent,
                    rate * 100.0,
                    max_failure_rate * 100.0,
                    self.last_failure.clone().unwrap_or_default()
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
