//! Typed views of the free-form parts of a service's configuration: the autoscaling policy
//! (`scaling.policy`) and the traffic settings (`config_overrides.traffic`), with the words
//! each accepts. The wire keeps them as JSON (`api::Scaling::policy`,
//! `api::ServiceConfig::config_overrides`), so keys neither side models survive a
//! read-modify-write; these views read and write the keys both sides do model.
//!
//! Where the vocabulary comes from (API doc §3.2, "Autoscaling and traffic vocabulary"):
//! - `scaling.policy`'s five keys are the official client's `HPAPolicy` (ms.py:196-212); it
//!   sends all five, `null` when unset.
//! - Metric types and behaviours are Yatai's (`bentoml/yatai-schemas`
//!   `modelschemas/deployment_target.go`): two versions of its history name `cpu`, `memory`,
//!   `gpu`, `qps` and `cpu`, `gpu`, `queue`; behaviours `disabled`, `stable`, `fast`.
//!   **Inferred**: that BentoCloud (closed source) accepts the union of those words. We validate
//!   against the union, so a word either version knows passes and a typo fails at plan time.
//! - Metric values: Yatai's `HPAMetric.value` is a Kubernetes quantity or an integer.
//!   **Inferred** per type from the HPA it becomes: `cpu` and `gpu` are a target utilisation in
//!   percent, `qps` and `queue` a per-replica average (requests per second, requests waiting),
//!   all positive integers; `memory` a quantity (`512Mi`, `2Gi`) or a plain number of bytes.
//! - Traffic: the SDK's `@bentoml.service(traffic={...})` keys `timeout` (seconds, a number),
//!   `max_concurrency` (requests per replica) and `external_queue` (bool), sent under
//!   `config_overrides.traffic` (API doc §3.2's example `{"traffic":{"timeout":30}}`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

/// Metric types a policy may scale on (the union of Yatai's two vocabularies).
pub const METRIC_TYPES: [&str; 5] = ["cpu", "memory", "gpu", "qps", "queue"];

/// Scale-up and scale-down behaviours: `disabled` never scales that way, `fast` acts on the
/// next evaluation, `stable` waits the stabilization window.
pub const SCALE_BEHAVIORS: [&str; 3] = ["disabled", "stable", "fast"];

/// Keys of `config_overrides.traffic` that the typed settings own.
pub const TRAFFIC_KEYS: [&str; 3] = ["timeout", "max_concurrency", "external_queue"];

/// One `HPAMetric`: `{type, value}`; `value` is kept as sent (a number or a string).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScalingMetric {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: Json,
}

impl ScalingMetric {
    /// The value as text (`10`, `512Mi`): a number's decimal form, a string as is.
    pub fn value_text(&self) -> String {
        match &self.value {
            Json::String(s) => s.clone(),
            Json::Null => String::new(),
            other => other.to_string(),
        }
    }

    /// A metric from its text: a plain integer travels as a JSON number (what a config file
    /// with `value: 10` sends), anything else (a quantity) as a string.
    pub fn from_text(kind: &str, value: &str) -> ScalingMetric {
        let value = match value.trim().parse::<i64>() {
            Ok(n) => Json::from(n),
            Err(_) => Json::String(value.trim().to_string()),
        };
        ScalingMetric {
            kind: kind.to_string(),
            value,
        }
    }
}

/// `HPAPolicy`, every key serialised (`null` when unset), as the official client sends it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScalingPolicy {
    pub metrics: Option<Vec<ScalingMetric>>,
    pub scale_down_behavior: Option<String>,
    pub scale_up_behavior: Option<String>,
    pub scale_down_stabilization_window: Option<i64>,
    pub scale_up_stabilization_window: Option<i64>,
}

impl ScalingPolicy {
    /// The policy a document carries (lenient: an unreadable one reads as empty).
    pub fn of(policy: Option<&Json>) -> ScalingPolicy {
        policy
            .and_then(|p| serde_json::from_value(p.clone()).ok())
            .unwrap_or_default()
    }

    /// `policy` with this policy's five keys written over it (keys it does not model stay).
    pub fn write_over(&self, policy: Option<&Json>) -> Json {
        let mut out = match policy {
            Some(Json::Object(m)) => m.clone(),
            _ => Map::new(),
        };
        if let Ok(Json::Object(mine)) = serde_json::to_value(self) {
            out.extend(mine);
        }
        Json::Object(out)
    }

    /// The target of `kind`, if the policy scales on it.
    pub fn target(&self, kind: &str) -> Option<&ScalingMetric> {
        self.metrics.iter().flatten().find(|m| m.kind == kind)
    }
}

/// `config_overrides.traffic`'s typed keys.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Traffic {
    /// Request timeout in seconds.
    pub timeout: Option<f64>,
    /// Requests one replica serves at once.
    pub max_concurrency: Option<i64>,
    /// Whether requests beyond `max_concurrency` wait in a queue in front of the replicas.
    pub external_queue: Option<bool>,
}

impl Traffic {
    /// The typed keys `config_overrides` carries (lenient: a key of the wrong type reads as
    /// unset).
    pub fn of(config_overrides: &Json) -> Traffic {
        let t = &config_overrides["traffic"];
        Traffic {
            timeout: t["timeout"].as_f64(),
            max_concurrency: t["max_concurrency"].as_i64(),
            external_queue: t["external_queue"].as_bool(),
        }
    }

    /// Writes the set keys into `config_overrides.traffic` (creating both objects as needed);
    /// unset keys leave what is there.
    pub fn write_into(&self, config_overrides: &mut Json) {
        if self == &Traffic::default() {
            return;
        }
        if !config_overrides.is_object() {
            *config_overrides = Json::Object(Map::new());
        }
        let Some(root) = config_overrides.as_object_mut() else {
            return;
        };
        let traffic = root
            .entry("traffic")
            .or_insert_with(|| Json::Object(Map::new()));
        if !traffic.is_object() {
            *traffic = Json::Object(Map::new());
        }
        let Some(t) = traffic.as_object_mut() else {
            return;
        };
        if let Some(v) = self.timeout {
            t.insert("timeout".into(), number(v));
        }
        if let Some(v) = self.max_concurrency {
            t.insert("max_concurrency".into(), Json::from(v));
        }
        if let Some(v) = self.external_queue {
            t.insert("external_queue".into(), Json::from(v));
        }
    }
}

/// A whole number of seconds as an integer (`30`, as a config file writes it), else a float.
fn number(v: f64) -> Json {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Json::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number)
    }
}

/// `config_overrides` without the typed traffic keys (and without `traffic` when nothing else
/// is left in it): what the free-form escape hatch holds.
pub fn overrides_without_traffic(config_overrides: &Json) -> Json {
    let mut out = match config_overrides {
        Json::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if let Some(Json::Object(t)) = out.get_mut("traffic") {
        for k in TRAFFIC_KEYS {
            t.remove(k);
        }
        if t.is_empty() {
            out.remove("traffic");
        }
    }
    Json::Object(out)
}

fn one_of(what: &str, value: &str, words: &[&str]) -> Result<(), String> {
    if words.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "unknown {what} {value:?}: use one of {}",
            words.join(", ")
        ))
    }
}

/// A metric type.
pub fn metric_type(kind: &str) -> Result<(), String> {
    one_of("autoscaling metric type", kind, &METRIC_TYPES)
}

/// A scale-up or scale-down behaviour.
pub fn scale_behavior(b: &str) -> Result<(), String> {
    one_of("scaling behavior", b, &SCALE_BEHAVIORS)
}

/// A metric's target value for its type (see the module doc for where the rule is inferred).
pub fn metric_value(kind: &str, value: &str) -> Result<(), String> {
    let v = value.trim();
    if kind == "memory" {
        return quantity(v).map_err(|e| format!("memory target {value:?} {e}"));
    }
    match v.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(()),
        _ => Err(format!(
            "{kind} target {value:?} is not a positive whole number (e.g. \"{}\")",
            match kind {
                "cpu" | "gpu" => "80",
                _ => "10",
            }
        )),
    }
}

/// A Kubernetes quantity: a positive number with an optional suffix.
fn quantity(v: &str) -> Result<(), String> {
    const SUFFIXES: [&str; 13] = [
        "", "m", "k", "M", "G", "T", "P", "Ki", "Mi", "Gi", "Ti", "Pi", "E",
    ];
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let ok_num = num.parse::<f64>().is_ok_and(|n| n > 0.0);
    if ok_num && SUFFIXES.contains(&suffix) {
        Ok(())
    } else {
        Err("is not a Kubernetes quantity (e.g. \"512Mi\", \"2Gi\")".to_string())
    }
}

/// A metric target's numeric value: a plain number, or a Kubernetes quantity with its suffix
/// applied (`500m` = 0.5, `2k` = 2000, `512Mi` = 536870912). `None` when it is not a positive
/// quantity (what [`metric_value`]'s `memory` rule refuses). For a control plane that acts on
/// targets (the local emulator's autoscaler).
pub fn quantity_value(value: &str) -> Option<f64> {
    let v = value.trim();
    quantity(v).ok()?;
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, suffix) = v.split_at(split);
    let n = num.parse::<f64>().ok()?;
    let k = 1024f64;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => k,
        "Mi" => k * k,
        "Gi" => k * k * k,
        "Ti" => k * k * k * k,
        "Pi" => k * k * k * k * k,
        _ => return None,
    };
    Some(n * factor)
}

/// A stabilization window in seconds: Kubernetes' HPA accepts 0 to 3600.
pub fn stabilization_window(which: &str, seconds: i64) -> Result<(), String> {
    if (0..=3600).contains(&seconds) {
        Ok(())
    } else {
        Err(format!(
            "{which} is {seconds}: a stabilization window is 0 to 3600 seconds"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn policy_serialises_every_key_like_the_official_client() {
        let p = ScalingPolicy {
            metrics: Some(vec![ScalingMetric::from_text("qps", "10")]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"metrics": [{"type": "qps", "value": 10}], "scale_down_behavior": null,
                   "scale_up_behavior": null, "scale_down_stabilization_window": null,
                   "scale_up_stabilization_window": null})
        );
        assert_eq!(
            ScalingMetric::from_text("memory", "512Mi").value,
            json!("512Mi")
        );
        assert_eq!(ScalingMetric::from_text("qps", "10").value_text(), "10");
    }

    #[test]
    fn write_over_keeps_keys_it_does_not_model() {
        let old = json!({"metrics": null, "vendor_knob": 3});
        let p = ScalingPolicy {
            scale_up_behavior: Some("fast".into()),
            ..Default::default()
        };
        let out = p.write_over(Some(&old));
        assert_eq!(out["vendor_knob"], 3);
        assert_eq!(out["scale_up_behavior"], "fast");
        assert_eq!(ScalingPolicy::of(Some(&out)), p);
        assert_eq!(
            ScalingPolicy::of(Some(&json!("junk"))),
            ScalingPolicy::default()
        );
    }

    #[test]
    fn traffic_reads_and_writes_only_its_keys() {
        let mut o = json!({"traffic": {"concurrency": 8, "timeout": 5}, "resources": {"gpu": 1}});
        assert_eq!(Traffic::of(&o).timeout, Some(5.0));
        Traffic {
            timeout: Some(30.0),
            max_concurrency: Some(4),
            external_queue: None,
        }
        .write_into(&mut o);
        assert_eq!(
            o,
            json!({"traffic": {"concurrency": 8, "timeout": 30, "max_concurrency": 4}, "resources": {"gpu": 1}})
        );
        Traffic {
            timeout: Some(0.5),
            ..Default::default()
        }
        .write_into(&mut o);
        assert_eq!(o["traffic"]["timeout"], 0.5);
        let mut empty = Json::Null;
        Traffic::default().write_into(&mut empty);
        assert_eq!(empty, Json::Null);
        Traffic {
            external_queue: Some(true),
            ..Default::default()
        }
        .write_into(&mut empty);
        assert_eq!(empty, json!({"traffic": {"external_queue": true}}));
        assert_eq!(
            overrides_without_traffic(&o),
            json!({"traffic": {"concurrency": 8}, "resources": {"gpu": 1}})
        );
        assert_eq!(
            overrides_without_traffic(&json!({"traffic": {"timeout": 1}})),
            json!({})
        );
    }

    #[test]
    fn vocabulary_names_the_accepted_words() {
        for k in METRIC_TYPES {
            assert!(metric_type(k).is_ok());
        }
        let e = metric_type("latency").unwrap_err();
        assert!(e.contains("cpu, memory, gpu, qps, queue"), "{e}");
        assert!(scale_behavior("fast").is_ok());
        assert!(scale_behavior("slow")
            .unwrap_err()
            .contains("disabled, stable, fast"));
        assert!(metric_value("qps", "10").is_ok());
        assert!(metric_value("qps", "0").is_err());
        assert!(metric_value("cpu", "80%").is_err());
        assert!(metric_value("memory", "512Mi").is_ok());
        assert!(metric_value("memory", "1073741824").is_ok());
        assert!(metric_value("memory", "lots").is_err());
        assert!(metric_value("memory", "-1Gi").is_err());
        assert!(stabilization_window("scale_down_stabilization_window", 300).is_ok());
        assert!(stabilization_window("w", 0).is_ok());
        assert!(stabilization_window("w", 3600).is_ok());
        assert!(stabilization_window("w", -1).is_err());
        assert!(stabilization_window("w", 3601).is_err());
    }

    #[test]
    fn quantity_values_apply_their_suffix() {
        assert_eq!(quantity_value("10"), Some(10.0));
        assert_eq!(quantity_value("500m"), Some(0.5));
        assert_eq!(quantity_value("512Mi"), Some(536_870_912.0));
        assert_eq!(quantity_value("2k"), Some(2000.0));
        assert_eq!(quantity_value("lots"), None);
        assert_eq!(quantity_value("0"), None);
        // Every suffix, decimal and binary: 3 of each unit.
        let k = 1024f64;
        for (suffix, unit) in [
            ("", 1.0),
            ("m", 1e-3),
            ("k", 1e3),
            ("M", 1e6),
            ("G", 1e9),
            ("T", 1e12),
            ("P", 1e15),
            ("E", 1e18),
            ("Ki", k),
            ("Mi", k * k),
            ("Gi", k * k * k),
            ("Ti", k * k * k * k),
            ("Pi", k * k * k * k * k),
        ] {
            assert_eq!(
                quantity_value(&format!("3{suffix}")),
                Some(3.0 * unit),
                "{suffix}"
            );
        }
        assert_eq!(quantity_value("2Ti"), Some(2_199_023_255_552.0));
        assert_eq!(quantity_value("1Pi"), Some(1_125_899_906_842_624.0));
    }

    #[test]
    fn a_policy_finds_its_target_by_type() {
        let p = ScalingPolicy {
            metrics: Some(vec![
                ScalingMetric::from_text("cpu", "80"),
                ScalingMetric::from_text("qps", "10"),
            ]),
            ..Default::default()
        };
        assert_eq!(
            p.target("qps").map(ScalingMetric::value_text).as_deref(),
            Some("10")
        );
        assert!(p.target("memory").is_none());
        assert!(ScalingPolicy::default().target("qps").is_none());
    }
}
