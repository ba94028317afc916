//! Provider logging: `tracing` events written as hclog-style JSON lines.
//!
//! Terraform's plugin host (go-plugin) reads the provider's stderr line by line; a line that is a
//! JSON object with `@level`, `@message`, `@module` and `@timestamp` becomes a leveled log entry
//! under `TF_LOG` / `TF_LOG_PROVIDER`. So every event goes to stderr in that shape, and also to
//! `$PLUGIN_LOG_FILE` when it is set (the variable is removed from the environment before
//! `tf-provider` starts, because the crate would otherwise install a second global subscriber
//! and panic). Nothing here ever writes to stdout, which carries the plugin handshake.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Where log lines go, besides stderr.
struct Sinks {
    file: Option<Mutex<File>>,
}

/// A `tracing` layer that renders events as hclog JSON lines.
pub struct HclogLayer {
    max: Level,
    sinks: Sinks,
}

impl HclogLayer {
    /// A layer logging at `max` and more severe, to stderr and optionally to `file`.
    pub fn new(max: Level, file: Option<File>) -> Self {
        Self {
            max,
            sinks: Sinks {
                file: file.map(Mutex::new),
            },
        }
    }
}

/// Collects an event's message and fields.
#[derive(Default)]
struct Fields {
    message: String,
    extra: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.extra
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.extra.push((field.name().to_string(), text));
        }
    }
}

fn hclog_level(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

/// Renders one hclog JSON line (without the trailing newline).
pub fn render_line(
    level: &Level,
    module: &str,
    message: &str,
    extra: &[(String, String)],
) -> String {
    let mut obj = serde_json::Map::new();
    obj.insert("@level".into(), hclog_level(level).into());
    obj.insert("@message".into(), message.into());
    obj.insert("@module".into(), module.replace("::", ".").into());
    obj.insert(
        "@timestamp".into(),
        chrono::Utc::now()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            .into(),
    );
    for (k, v) in extra {
        obj.insert(k.clone(), v.clone().into());
    }
    serde_json::Value::Object(obj).to_string()
}

impl<S: Subscriber> Layer<S> for HclogLayer {
    fn enabled(&self, metadata: &tracing::Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        metadata.level() <= &self.max
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.level() > &self.max {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = render_line(meta.level(), meta.target(), &fields.message, &fields.extra);
        let _ = line.write_char('\n');
        // One write call per line so concurrent lines do not interleave.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
        if let Some(file) = &self.sinks.file {
            if let Ok(mut f) = file.lock() {
                let _ = f.write_all(line.as_bytes());
            }
        }
    }
}

/// The level asked for by `TF_LOG_PROVIDER`, else `TF_LOG`, else INFO. Terraform filters again
/// on its side; this only saves the work of rendering lines nobody will see.
pub fn level_from_env() -> Level {
    let var = std::env::var("TF_LOG_PROVIDER")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("TF_LOG").ok());
    match var.map(|v| v.to_ascii_uppercase()).as_deref() {
        Some("TRACE") | Some("JSON") => Level::TRACE,
        Some("DEBUG") => Level::DEBUG,
        Some("WARN") => Level::WARN,
        Some("ERROR") => Level::ERROR,
        _ => Level::INFO,
    }
}

/// Installs the global subscriber. Takes `PLUGIN_LOG_FILE` out of the environment (see the
/// module docs) and logs to it as well. A file that cannot be opened is reported on stderr and
/// otherwise ignored: logging must never stop the provider.
pub fn init() {
    let file = match std::env::var_os("PLUGIN_LOG_FILE") {
        Some(path) => {
            // SAFETY-equivalent note: called from `main` before any thread is started.
            std::env::remove_var("PLUGIN_LOG_FILE");
            match File::options().create(true).append(true).open(&path) {
                Ok(f) => Some(f),
                Err(e) => {
                    let line = render_line(
                        &Level::WARN,
                        "bentocloud",
                        &format!(
                            "cannot open PLUGIN_LOG_FILE {}: {e}",
                            path.to_string_lossy()
                        ),
                        &[],
                    );
                    let _ = writeln!(std::io::stderr(), "{line}");
                    None
                }
            }
        }
        None => None,
    };
    let subscriber = tracing_subscriber::registry().with(HclogLayer::new(level_from_env(), file));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_hclog_json_with_level_message_module_and_timestamp() {
        let line = render_line(
            &Level::INFO,
            "bentocloud::wait",
            "deployment a/b running",
            &[("revision".into(), "r1".into())],
        );
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["@level"], "info");
        assert_eq!(v["@message"], "deployment a/b running");
        assert_eq!(v["@module"], "bentocloud.wait");
        assert_eq!(v["revision"], "r1");
        assert!(v["@timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
        assert!(!line.contains('\n'));
    }
}
