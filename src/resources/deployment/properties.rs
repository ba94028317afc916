//! Generated cases of Terraform's contract over the pure plan and conversion rules.
//!
//! Each case is a server document (every optional field present, absent or null; the entry
//! service configured, bare or missing; another service or not; settings Terraform does not
//! manage), a prior state read from it (imported, or refreshed under an earlier
//! configuration), and a configuration where each attribute is left out or set. Terraform's
//! proposed state is built the way Terraform builds it (configured value, else the prior
//! value of an optional+computed attribute, else null), then:
//!
//! 1. **No known value changes in apply**: the apply is simulated (the PUT body
//!    `update_request` builds, taken by a server that either fills what the body leaves out,
//!    like the platform's defaults, or keeps it unset), and every attribute the plan gave a
//!    known value reads back with that value.
//! 2. **Nothing Terraform does not manage is lost**: scaling policies, config overrides,
//!    extras, cold start timeouts, services without a `service` block and the canary reach
//!    the PUT body unchanged.
//! 3. **Round trip**: planning the same configuration again after the apply plans nothing.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::{json, Value as Json};
use tf_provider::value::Value;

use super::convert::{entry_service, state_from_server, update_request};
use super::model::{
    Autoscaling, DeploymentState, JsonText, LastApply, ServiceBlock, ServiceSettings, Settings,
    StringMap, TrafficSettings,
};
use super::plan::{plan_update, put_needed, with_default_labels};
use crate::api::{Deployment, EnvItem, LabelItem, Scaling, ServiceConfig};

const ENTRY: &str = "MyService";
const OTHER: &str = "Worker";
const TYPES: [&str; 3] = ["cpu.1", "cpu.2", "gpu.t4.1"];
const STRATEGIES: [&str; 2] = ["RollingUpdate", "Recreate"];

fn base_document() -> Deployment {
    serde_json::from_str(include_str!("../../../tests/fixtures/deployment-full.json"))
        .expect("fixture")
}

/// One service as a server may hold it.
#[derive(Debug, Clone)]
struct GenService {
    instance_type: Option<&'static str>,
    scaling: Option<(Option<i64>, Option<i64>)>,
    strategy: Option<&'static str>,
    /// Settings Terraform does not manage.
    policy: bool,
    overrides: bool,
    cold_start: Option<i64>,
}

fn gen_service() -> impl Strategy<Value = GenService> {
    (
        proptest::option::of(proptest::sample::select(&TYPES[..])),
        proptest::option::of((proptest::option::of(0i64..3), proptest::option::of(0i64..3))),
        proptest::option::of(proptest::sample::select(&STRATEGIES[..])),
        any::<bool>(),
        any::<bool>(),
        proptest::option::of(0i64..100),
    )
        .prop_map(
            |(instance_type, scaling, strategy, policy, overrides, cold_start)| GenService {
                instance_type,
                // A server holds only valid scaling (min <= max, max >= 1).
                scaling: scaling.map(|(min, max)| match (min, max) {
                    (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b).max(1))),
                    (min, Some(b)) => (min, Some(b.max(1))),
                    other => other,
                }),
                strategy,
                policy,
                overrides,
                cold_start,
            },
        )
}

impl GenService {
    fn config(&self) -> ServiceConfig {
        ServiceConfig {
            instance_type: self.instance_type.map(str::to_string),
            scaling: self.scaling.map(|(min, max)| Scaling {
                min_replicas: min,
                max_replicas: max,
                policy: self
                    .policy
                    .then(|| json!({"metrics": [{"type": "qps", "value": 7}]})),
            }),
            envs: None,
            deployment_strategy: self.strategy.map(str::to_string),
            extras: None,
            cold_start_timeout: self.cold_start,
            config_overrides: if self.overrides {
                json!({"traffic": {"timeout": 30}})
            } else {
                Json::Null
            },
        }
    }
}

/// A server document: the entry service configured, bare (`{}`) or missing; another
/// service or not; envs, labels and secrets present, empty or null.
#[derive(Debug, Clone)]
struct GenDocument {
    entry: Option<GenService>,
    other: Option<GenService>,
    envs: Option<Vec<(String, String)>>,
    labels: Vec<(String, String)>,
    secrets: Option<Vec<String>>,
    access_authorization: bool,
}

fn gen_pairs() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map("[A-C]", "[a-b]", 0..3)
        .prop_map(|m| m.into_iter().collect::<Vec<_>>())
}

fn gen_document() -> impl Strategy<Value = GenDocument> {
    (
        proptest::option::of(gen_service()),
        proptest::option::of(gen_service()),
        proptest::option::of(gen_pairs()),
        gen_pairs(),
        proptest::option::of(proptest::collection::vec("s[12]", 0..2)),
        any::<bool>(),
    )
        .prop_map(
            |(entry, other, envs, labels, secrets, access_authorization)| GenDocument {
                entry,
                other,
                envs,
                labels: labels
                    .into_iter()
                    .map(|(k, v)| (k.to_lowercase(), v))
                    .collect(),
                secrets,
                access_authorization,
            },
        )
}

impl GenDocument {
    fn deployment(&self) -> Deployment {
        let mut d = base_document();
        d.meta.labels = self
            .labels
            .iter()
            .map(|(k, v)| LabelItem {
                key: k.clone(),
                value: v.clone(),
            })
            .collect();
        let mut services = BTreeMap::new();
        if let Some(e) = &self.entry {
            services.insert(ENTRY.to_string(), e.config());
        }
        if let Some(o) = &self.other {
            services.insert(OTHER.to_string(), o.config());
        }
        let config = main_config(&mut d);
        config.services = services;
        config.envs = self.envs.as_ref().map(|e| {
            e.iter()
                .map(|(k, v)| EnvItem {
                    name: k.clone(),
                    value: v.clone(),
                })
                .collect()
        });
        config.secrets = self.secrets.clone();
        config.access_authorization = self.access_authorization;
        d
    }
}

fn main_config(d: &mut Deployment) -> &mut crate::api::DeploymentConfig {
    d.latest_revision
        .as_mut()
        .and_then(|r| r.targets.first_mut())
        .and_then(Option::as_mut)
        .and_then(|t| t.config.as_mut())
        .expect("main target config")
}

/// One setting of the configuration: left out, or set.
fn gen_opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<T>> {
    proptest::option::of(s)
}

/// The entry service's (or a block's) configured settings; valid together (min <= max).
fn gen_settings() -> impl Strategy<Value = ServiceSettings> {
    (
        gen_opt(proptest::sample::select(&TYPES[..])),
        gen_opt(0i64..4),
        gen_opt(1i64..4),
        gen_opt(proptest::sample::select(&STRATEGIES[..])),
        (
            gen_opt(proptest::sample::select(&["qps", "cpu", "memory"][..])),
            gen_opt(proptest::sample::select(
                &crate::settings::SCALE_BEHAVIORS[..],
            )),
            gen_opt(0i64..600),
            gen_opt(1i64..120),
            gen_opt(any::<bool>()),
            gen_opt(proptest::sample::select(
                &[
                    r#"{}"#,
                    r#"{"resources": {"gpu": 1}}"#,
                    r#"{"traffic":{"concurrency":4}}"#,
                ][..],
            )),
        ),
    )
        .prop_map(
            |(it, min, max, st, (metric, behavior, window, timeout, queue, overrides))| {
                let (min, max) = match (min, max) {
                    (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
                    x => x,
                };
                let target = |m: &str| if m == "memory" { "2Gi" } else { "10" };
                ServiceSettings {
                    instance_type: opt(it.map(str::to_string)),
                    min_replicas: opt(min),
                    max_replicas: opt(max),
                    deployment_strategy: opt(st.map(str::to_string)),
                    autoscaling: Autoscaling {
                        autoscaling_metrics: opt(metric.map(|m| {
                            StringMap::from([(m.to_string(), Value::Value(target(m).to_string()))])
                        })),
                        scale_up_behavior: opt(behavior.map(str::to_string)),
                        scale_down_stabilization_window: opt(window),
                        ..Default::default()
                    },
                    traffic: TrafficSettings {
                        traffic_timeout: opt(timeout.map(|t| t as f64)),
                        traffic_external_queue: opt(queue),
                        config_overrides: JsonText(opt(overrides.map(str::to_string))),
                        ..Default::default()
                    },
                }
            },
        )
}

fn opt<T>(o: Option<T>) -> Value<T> {
    o.map(Value::Value).unwrap_or(Value::Null)
}

#[derive(Debug, Clone)]
struct GenConfig {
    bento: &'static str,
    envs: Option<Vec<(String, String)>>,
    labels: Option<Vec<(String, String)>>,
    access_authorization: Option<bool>,
    entry: ServiceSettings,
    /// A `service` block for the other service, with its settings.
    block: Option<ServiceSettings>,
}

fn gen_config() -> impl Strategy<Value = GenConfig> {
    (
        proptest::sample::select(&["my_bento:abc123", "my_bento:v2"][..]),
        gen_opt(gen_pairs()),
        gen_opt(gen_pairs()),
        gen_opt(any::<bool>()),
        gen_settings(),
        gen_opt(gen_settings()),
    )
        .prop_map(
            |(bento, envs, labels, access_authorization, entry, block)| GenConfig {
                bento,
                envs,
                labels: labels.map(|l| l.into_iter().map(|(k, v)| (k.to_lowercase(), v)).collect()),
                access_authorization,
                entry,
                block,
            },
        )
}

fn map_value(pairs: &Option<Vec<(String, String)>>) -> Value<super::model::StringMap> {
    match pairs {
        None => Value::Null,
        Some(p) => Value::Value(
            p.iter()
                .map(|(k, v)| (k.clone(), Value::Value(v.clone())))
                .collect(),
        ),
    }
}

impl GenConfig {
    /// The configuration as Terraform sends it (`config_state`).
    fn state(&self, name: &str) -> DeploymentState {
        let mut s = DeploymentState::default();
        s.location.name = Value::Value(name.to_string());
        s.spec.bento = Value::Value(self.bento.to_string());
        s.spec.envs = map_value(&self.envs);
        s.spec.labels = map_value(&self.labels);
        s.spec.access_authorization = opt(self.access_authorization);
        s.spec.entry = self.entry.clone();
        s.spec.service = Value::Value(
            self.block
                .iter()
                .map(|b| ServiceBlock {
                    name: Value::Value(OTHER.to_string()),
                    settings: b.clone(),
                    envs: Value::Null,
                })
                .collect(),
        );
        s
    }
}

/// Terraform's proposed new state: the configured value; else, for an optional+computed
/// attribute, the prior value; else null. Computed-only attributes keep the prior value.
fn proposed(prior: &DeploymentState, config: &DeploymentState) -> DeploymentState {
    fn pick<T: Clone>(config: &Value<T>, prior: &Value<T>) -> Value<T> {
        if config.is_null() {
            prior.clone()
        } else {
            config.clone()
        }
    }
    // Every service setting is optional+computed: `fill_from` is `pick` for each.
    fn settings(c: &ServiceSettings, p: &ServiceSettings) -> ServiceSettings {
        let mut out = c.clone();
        out.fill_from(p);
        out
    }
    let mut s = config.clone();
    s.location = prior.location.clone();
    s.reported = prior.reported.clone();
    s.label_sets = prior.label_sets.clone();
    s.spec.access_authorization = pick(
        &config.spec.access_authorization,
        &prior.spec.access_authorization,
    );
    s.spec.entry = settings(&config.spec.entry, &prior.spec.entry);
    let prior_blocks = prior.spec.service_blocks();
    if let Value::Value(blocks) = &mut s.spec.service {
        for (i, b) in blocks.iter_mut().enumerate() {
            // Terraform matches list blocks by index.
            if let Some(p) = prior_blocks.get(i) {
                b.settings = settings(&b.settings, &p.settings);
            }
        }
    }
    let Settings {
        wait_for_rollout,
        rollback_on_failure,
        bento_managed_externally,
        rollback_on_interrupt,
        ..
    } = &prior.settings;
    s.settings.wait_for_rollout = pick(&config.settings.wait_for_rollout, wait_for_rollout);
    s.settings.rollback_on_failure =
        pick(&config.settings.rollback_on_failure, rollback_on_failure);
    s.settings.bento_managed_externally = pick(
        &config.settings.bento_managed_externally,
        bento_managed_externally,
    );
    s.settings.rollback_on_interrupt = pick(
        &config.settings.rollback_on_interrupt,
        rollback_on_interrupt,
    );
    s
}

/// A server taking a PUT: the body replaces the configuration; with `fills`, what the body
/// leaves out gets the platform's defaults (an instance type, a strategy), like
/// bentocloud-local; without, it stays unset.
fn server_takes(
    d: &Deployment,
    body: &crate::api::UpdateDeploymentRequest,
    fills: bool,
) -> Deployment {
    let mut took = d.clone();
    let (repo, version) = body.bento.split_once(':').unwrap_or((&body.bento, ""));
    if let Some(b) = took
        .latest_revision
        .as_mut()
        .and_then(|r| r.targets.first_mut())
        .and_then(Option::as_mut)
        .and_then(|t| t.bento.as_mut())
    {
        b.version = version.to_string();
        b.repository.meta.name = repo.to_string();
    }
    took.meta.labels = body.labels.clone().unwrap_or_default();
    let config = main_config(&mut took);
    config.access_authorization = body.access_authorization;
    config.envs = body.envs.clone();
    config.secrets = body.secrets.clone();
    config.services = body.services.clone();
    if fills {
        for svc in config.services.values_mut() {
            svc.instance_type.get_or_insert_with(|| "cpu.1".to_string());
            svc.deployment_strategy
                .get_or_insert_with(|| "RollingUpdate".to_string());
        }
    }
    if let Some(rev) = took.latest_revision.as_mut() {
        rev.meta.uid = format!("{}-next", rev.meta.uid);
    }
    took
}

/// Every known value of `planned` reads back the same in `after`, attribute by attribute.
fn known_values_hold(planned: &DeploymentState, after: &DeploymentState) -> Result<(), String> {
    let p = serde_json::to_value(&planned.spec).map_err(|e| e.to_string())?;
    let a = serde_json::to_value(&after.spec).map_err(|e| e.to_string())?;
    let Some(p) = p.as_object() else {
        return Err("spec is not an object".into());
    };
    for (k, pv) in p {
        if k == "service" {
            continue;
        }
        if planned_known(pv) && a.get(k) != Some(pv) {
            return Err(format!("{k}: planned {pv}, read back {:?}", a.get(k)));
        }
    }
    let blocks = |s: &DeploymentState| s.spec.service.as_ref_option().cloned().unwrap_or_default();
    for (pb, ab) in blocks(planned).iter().zip(blocks(after).iter()) {
        let pb = serde_json::to_value(pb).map_err(|e| e.to_string())?;
        let ab = serde_json::to_value(ab).map_err(|e| e.to_string())?;
        for (k, pv) in pb.as_object().into_iter().flatten() {
            if planned_known(pv) && ab.get(k) != Some(pv) {
                return Err(format!(
                    "service.{k}: planned {pv}, read back {:?}",
                    ab.get(k)
                ));
            }
        }
    }
    Ok(())
}

/// Whether a serialised value is known (tf-provider serialises unknown as a marker string).
fn planned_known(v: &Json) -> bool {
    let unknown = serde_json::to_value(Value::<String>::Unknown).unwrap_or(Json::Null);
    v != &unknown
}

fn unmanaged(svc: &ServiceConfig) -> (Option<Json>, Json, Option<i64>) {
    (
        svc.scaling.as_ref().and_then(|s| s.policy.clone()),
        svc.config_overrides.clone(),
        svc.cold_start_timeout,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn plans_keep_terraforms_contract_for_documents_made_anywhere(
        doc in gen_document(),
        earlier in proptest::option::of(gen_config()),
        config in gen_config(),
        fills in any::<bool>(),
        failed_before in any::<bool>(),
        defaults in proptest::option::of(proptest::collection::btree_map(
            proptest::sample::select(&["team", "env", "a"][..]),
            proptest::sample::select(&["ml", "prod", "a"][..]),
            0..3,
        )),
    ) {
        let defaults: Value<StringMap> = opt(defaults.map(|m| {
            m.into_iter()
                .map(|(k, v)| (k.to_string(), Value::Value(v.to_string())))
                .collect()
        }));
        let d = doc.deployment();
        // The prior: imported, or refreshed under an earlier configuration.
        let seed = match &earlier {
            None => DeploymentState {
                settings: Settings {
                    wait_for_rollout: Value::Value(true),
                    rollback_on_failure: Value::Value(false),
                    bento_managed_externally: Value::Value(false),
                    rollback_on_interrupt: Value::Value(false),
                    ..Default::default()
                },
                ..Default::default()
            },
            Some(e) => {
                let mut s = e.state("demo");
                s.spec.entry = ServiceSettings::default();
                s
            }
        };
        let prior = state_from_server(&d, &seed, earlier.is_none());
        let config = config.state("demo");
        let last = if failed_before { LastApply::Failed } else { LastApply::Settled };
        let (planned, replace) = plan_update(&prior, &with_default_labels(proposed(&prior, &config), &defaults), &config, last);
        prop_assert!(replace.is_empty());

        // 1. Apply: a PUT when needed, and every known planned value reads back.
        let after = if put_needed(&prior, &planned, last) {
            let entry = entry_service(&d).unwrap_or_else(|| ENTRY.to_string());
            let body = update_request(&planned, &d, &entry, None, super::convert::managed_keys(&prior));
            // 2. Nothing Terraform does not manage is lost.
            let server = main_config(&mut d.clone()).services.clone();
            for (name, svc) in &server {
                let sent = body.services.get(name);
                prop_assert!(sent.is_some(), "service {name} dropped from the PUT");
                // What the planned settings of this service leave out is sent as the server
                // has it (a service without settings here: all of it).
                let mine = if *name == entry {
                    Some(&planned.spec.entry)
                } else {
                    planned.spec.service_blocks().iter().find(|b| b.name == Value::Value(name.clone())).map(|b| &b.settings)
                };
                let a = mine.map(|m| m.autoscaling.clone()).unwrap_or_default();
                let t = mine.map(|m| m.traffic.clone()).unwrap_or_default();
                let policy_left = [
                    a.autoscaling_metrics.is_value(),
                    a.scale_up_behavior.is_value(),
                    a.scale_down_behavior.is_value(),
                    a.scale_up_stabilization_window.is_value(),
                    a.scale_down_stabilization_window.is_value(),
                ] == [false; 5];
                let overrides_left = !t.config_overrides.0.is_value()
                    && !t.traffic_timeout.is_value()
                    && !t.traffic_max_concurrency.is_value()
                    && !t.traffic_external_queue.is_value();
                if let Some(sent) = sent {
                    if policy_left {
                        prop_assert_eq!(unmanaged(sent).0, unmanaged(svc).0, "policy of {}", name);
                    }
                    if !t.cold_start_timeout.is_value() {
                        prop_assert_eq!(unmanaged(sent).2, unmanaged(svc).2, "cold start of {}", name);
                    }
                    if overrides_left && !svc.config_overrides.is_null() {
                        prop_assert_eq!(&sent.config_overrides, &svc.config_overrides);
                    }
                    // Keys of the free-form part the configuration does not replace survive.
                    if !t.config_overrides.0.is_value() {
                        let before = crate::settings::overrides_without_traffic(&svc.config_overrides);
                        let after = crate::settings::overrides_without_traffic(&sent.config_overrides);
                        prop_assert_eq!(before, after, "config_overrides of {}", name);
                    }
                }
            }
            prop_assert_eq!(body.canary.clone(), d.canary());
            for svc in body.services.values() {
                if let Some(s) = &svc.scaling {
                    if let (Some(min), Some(max)) = (s.min_replicas, s.max_replicas) {
                        prop_assert!(min <= max && max >= 1, "invalid scaling sent: {s:?}");
                    }
                }
            }
            let took = server_takes(&d, &body, fills);
            state_from_server(&took, &planned, false)
        } else {
            state_from_server(&d, &planned, false)
        };
        if let Err(e) = known_values_hold(&planned, &after) {
            prop_assert!(false, "inconsistent result after apply: {e}\nplanned {planned:?}\nafter {after:?}");
        }

        // 3. Round trip: the same configuration again plans nothing.
        let (again, _) = plan_update(&after, &with_default_labels(proposed(&after, &config), &defaults), &config, LastApply::Settled);
        prop_assert!(
            !put_needed(&after, &again, LastApply::Settled),
            "a second plan still changes the spec:\nafter {:?}\nagain {:?}",
            after.spec,
            again.spec
        );
        let names: BTreeSet<_> = again.spec.differing_attributes(&after.spec, false).into_iter().collect();
        prop_assert!(names.is_empty(), "differs after apply: {names:?}");
    }
}

/// The property above tells planned-unknown from planned-null by their serialised forms.
#[test]
fn the_unknown_marker_is_not_null() {
    let unknown = serde_json::to_value(Value::<String>::Unknown).expect("serialise");
    assert_ne!(unknown, Json::Null);
    assert!(planned_known(&Json::Null) && !planned_known(&unknown));
}
