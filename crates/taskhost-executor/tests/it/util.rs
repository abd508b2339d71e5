//! Helpers shared by the integration tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// A latch: tasks `wait()` until the test calls `open()`.
#[derive(Default)]
pub struct Gate {
    open: Mutex<bool>,
    condvar: Condvar,
}

impl Gate {
    pub fn new() -> Arc<Gate> {
        Arc::new(Gate::default())
    }
    pub fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.condvar.notify_all();
    }
    pub fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.condvar.wait(open).unwrap();
        }
    }
}

/// Polls `condition` until it holds or 10 s pass.
pub fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Silences the default panic hook for panics raised on purpose ("boom" / "stress" payloads),
/// so test output stays readable; other panics still print.
pub fn quiet_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let text = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            if !text.starts_with("boom") && !text.starts_with("stress") {
                default(info);
            }
        }));
    });
}

/// A recorded event or span.
#[derive(Debug, Clone)]
pub struct Record {
    pub name: String,
    pub fields: HashMap<String, String>,
    /// For events: the span they happened in. For spans: their parent.
    pub span: Option<u64>,
    /// For spans: their own id.
    pub id: Option<u64>,
}

impl Record {
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }
}

#[derive(Default)]
struct Visitor(HashMap<String, String>);

impl tracing::field::Visit for Visitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

/// A minimal `tracing::Subscriber` that records events and spans while `CAPTURING` is set.
/// (Written against `tracing` directly, so the crate needs no extra dev-dependency.)
pub struct Capture {
    next_id: AtomicU64,
    pub events: Mutex<Vec<Record>>,
    pub spans: Mutex<HashMap<u64, (Record, &'static tracing::Metadata<'static>)>>,
}

/// Threads whose name contains this are captured.
pub const CAPTURE_MARKER: &str = "p20";

static CAPTURING: AtomicBool = AtomicBool::new(false);

thread_local! {
    static STACK: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Capture {
    fn current(&self) -> Option<u64> {
        STACK.with(|s| s.borrow().last().copied())
    }
}

impl tracing::Subscriber for Capture {
    fn register_callsite(
        &self,
        _: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        // Only threads of the capturing test (its own thread and its pool's workers, whose names
        // contain the marker), so concurrent tests neither pollute nor pay for the capture.
        CAPTURING.load(Ordering::Relaxed)
            && std::thread::current()
                .name()
                .is_some_and(|name| name.contains(CAPTURE_MARKER))
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::TRACE)
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut visitor = Visitor::default();
        attrs.record(&mut visitor);
        let parent = if attrs.is_root() {
            None
        } else if let Some(parent) = attrs.parent() {
            Some(parent.into_u64())
        } else {
            self.current()
        };
        let record = Record {
            name: attrs.metadata().name().to_string(),
            fields: visitor.0,
            span: parent,
            id: Some(id),
        };
        self.spans
            .lock()
            .unwrap()
            .insert(id, (record, attrs.metadata()));
        tracing::span::Id::from_u64(id)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut visitor = Visitor::default();
        event.record(&mut visitor);
        let span = if event.is_root() {
            None
        } else if let Some(parent) = event.parent() {
            Some(parent.into_u64())
        } else {
            self.current()
        };
        self.events.lock().unwrap().push(Record {
            name: event.metadata().name().to_string(),
            fields: visitor.0,
            span,
            id: None,
        });
    }
    fn enter(&self, span: &tracing::span::Id) {
        STACK.with(|s| s.borrow_mut().push(span.into_u64()));
    }
    fn exit(&self, span: &tracing::span::Id) {
        STACK.with(|s| {
            let mut s = s.borrow_mut();
            if let Some(pos) = s.iter().rposition(|id| *id == span.into_u64()) {
                s.remove(pos);
            }
        });
    }
    fn current_span(&self) -> tracing_core::span::Current {
        match self.current() {
            Some(id) => {
                let spans = self.spans.lock().unwrap();
                match spans.get(&id) {
                    Some((_, meta)) => {
                        tracing_core::span::Current::new(tracing::span::Id::from_u64(id), meta)
                    }
                    None => tracing_core::span::Current::none(),
                }
            }
            None => tracing_core::span::Current::none(),
        }
    }
}

/// The process-wide capturing subscriber (installed once, as the global default, so worker
/// threads report to it too).
pub fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture: &'static Capture = Box::leak(Box::new(Capture {
            next_id: AtomicU64::new(1),
            events: Mutex::new(Vec::new()),
            spans: Mutex::new(HashMap::new()),
        }));
        tracing::subscriber::set_global_default(CaptureRef(capture))
            .expect("no other global subscriber in this test binary");
        capture
    })
}

/// Starts or stops recording.
pub fn set_capturing(on: bool) {
    CAPTURING.store(on, Ordering::SeqCst);
}

struct CaptureRef(&'static Capture);

impl tracing::Subscriber for CaptureRef {
    fn register_callsite(
        &self,
        m: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.0.register_callsite(m)
    }
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        self.0.enabled(m)
    }
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.0.max_level_hint()
    }
    fn new_span(&self, a: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.0.new_span(a)
    }
    fn record(&self, s: &tracing::span::Id, r: &tracing::span::Record<'_>) {
        self.0.record(s, r)
    }
    fn record_follows_from(&self, a: &tracing::span::Id, b: &tracing::span::Id) {
        self.0.record_follows_from(a, b)
    }
    fn event(&self, e: &tracing::Event<'_>) {
        self.0.event(e)
    }
    fn enter(&self, s: &tracing::span::Id) {
        self.0.enter(s)
    }
    fn exit(&self, s: &tracing::span::Id) {
        self.0.exit(s)
    }
    fn current_span(&self) -> tracing_core::span::Current {
        self.0.current_span()
    }
}
