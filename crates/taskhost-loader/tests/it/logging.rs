//! Plugin log records reach the host's `tracing` subscriber, tagged with the plugin's name.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use taskhost_loader::TracingContext;

use crate::support::samples;

/// One captured event: level, target and its fields as `name=value` text.
#[derive(Debug, Clone)]
struct Captured {
    level: tracing::Level,
    target: String,
    fields: Vec<(String, String)>,
}

impl Captured {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Captured>>>);

struct FieldVisitor<'a>(&'a mut Vec<(String, String)>);

impl Visit for FieldVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut text = String::new();
        write!(text, "{value:?}").unwrap();
        self.0.push((field.name().to_owned(), text));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Vec::new();
        event.record(&mut FieldVisitor(&mut fields));
        self.0.lock().unwrap().push(Captured {
            level: *event.metadata().level(),
            target: event.metadata().target().to_owned(),
            fields,
        });
    }
}

/// Runs `plugin/log` with a [`TracingContext`] and checks the events the host's subscriber sees.
fn check_plugin_logs(plugin: &str) {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let full_name = format!("{plugin}/log");
    let task = samples().task(&full_name).unwrap();
    tracing::subscriber::with_default(subscriber, || {
        task.run(
            br#"{"message": "from the plugin"}"#,
            &TracingContext::new(&task),
        )
        .unwrap();
    });
    let events: Vec<Captured> = capture
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.target == "taskhost::plugin")
        .cloned()
        .collect();
    let levels: Vec<_> = events.iter().map(|e| e.level).collect();
    use tracing::Level;
    assert_eq!(
        levels,
        [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE
        ]
    );
    for event in &events {
        assert_eq!(event.field("plugin"), Some(plugin), "{event:?}");
        assert_eq!(event.field("task"), Some(full_name.as_str()), "{event:?}");
        let message = event.field("message").unwrap();
        assert!(message.starts_with("from the plugin ("), "{event:?}");
    }
}

#[test]
fn plugin_logs_reach_the_host_subscriber_with_the_plugin_name() {
    check_plugin_logs("testkit");
}

#[test]
fn c_plugin_logs_reach_the_host_subscriber_the_same_way() {
    check_plugin_logs("csample");
}

#[test]
fn plugin_progress_is_a_trace_event() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    let task = samples().task("testkit/progress").unwrap();
    tracing::subscriber::with_default(subscriber, || {
        task.run(br#"{"steps": 2}"#, &TracingContext::new(&task))
            .unwrap();
    });
    let events = capture.0.lock().unwrap().clone();
    let progress: Vec<_> = events
        .iter()
        .filter(|e| e.field("message") == Some("plugin.progress"))
        .map(|e| {
            (
                e.field("done").unwrap().to_owned(),
                e.field("total").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        progress,
        [("1".into(), "2".into()), ("2".into(), "2".into())] as [(String, String); 2]
    );
}
