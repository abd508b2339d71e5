//! Tracing setup: one subscriber for the whole process.
//!
//! Events go to stderr as pretty, compact or JSON lines. The filter is `RUST_LOG` when set, else
//! the config's `logging.filter`. `--trace-chrome FILE` adds a Chrome / Perfetto trace layer with
//! its own filter (`RUST_LOG`, else `info` plus the executor at `debug`), so the picture of the pool
//! is complete even when stderr is kept quiet. While a progress bar is on screen, log lines are
//! written around it rather than through it.

use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use tracing::field::{Field, Visit};
use tracing::span;
use tracing_chrome::EventOrSpan;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context as LayerContext;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::{LookupSpan, SpanRef};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::settings::LogFormat;

/// The progress bar, once there is one; log lines suspend it while they are written.
pub type SharedBar = Arc<OnceLock<ProgressBar>>;

/// Keeps the Chrome trace open; dropping it finishes the file.
#[must_use]
pub struct TelemetryGuard {
    _chrome: Option<tracing_chrome::FlushGuard>,
}

impl std::fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("chrome", &self._chrome.is_some())
            .finish()
    }
}

/// Writes to stderr, suspending the progress bar while it does.
#[derive(Debug, Clone)]
struct StderrAroundBar {
    bar: SharedBar,
}

/// One log line, buffered so the bar is suspended once per line.
#[derive(Debug)]
struct LineWriter {
    bar: SharedBar,
    buffer: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let buffer = std::mem::take(&mut self.buffer);
        let write = || io::stderr().lock().write_all(&buffer);
        match self.bar.get() {
            Some(bar) if !bar.is_hidden() => bar.suspend(write),
            _ => write(),
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> MakeWriter<'a> for StderrAroundBar {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            bar: self.bar.clone(),
            buffer: Vec::with_capacity(256),
        }
    }
}

/// An item span's label in the Chrome trace: `checksum/sha256 #17` (its task and line), kept
/// in the span's extensions by [`ItemLabels`].
struct SliceName(String);

/// Labels each `item` span (the host's, with `task` and `line`) for the Chrome trace, so that the
/// pool's `task` slices inside it are named after the work item, not after a source location.
struct ItemLabels;

impl<S> Layer<S> for ItemLabels
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        let metadata = attrs.metadata();
        if metadata.name() != "item" || metadata.target() != "taskhost" {
            return;
        }
        let mut fields = ItemFields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            let name = format!("{} #{}", fields.task, fields.line);
            span.extensions_mut().insert(SliceName(name));
        }
    }
}

/// The `task` and `line` of an `item` span, or the `message` of an event.
#[derive(Default)]
struct ItemFields {
    task: String,
    line: String,
    message: String,
}

impl Visit for ItemFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "line" {
            self.line = value.to_string();
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "task" => self.task = format!("{value:?}"),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

/// A span's slice name: its item's label (its own, or the nearest enclosing item's), else the
/// span's name.
fn slice_name<S>(span: &SpanRef<'_, S>) -> String
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    span.scope()
        .find_map(|span| span.extensions().get::<SliceName>().map(|n| n.0.clone()))
        .unwrap_or_else(|| span.name().to_owned())
}

/// An event's name: its message (`task.finished`), else its name.
fn event_name(event: &tracing::Event<'_>) -> String {
    let mut fields = ItemFields::default();
    event.record(&mut fields);
    if fields.message.is_empty() {
        event.metadata().name().to_owned()
    } else {
        fields.message
    }
}

fn filter(default: &str) -> Result<EnvFilter> {
    match std::env::var("RUST_LOG") {
        Ok(value) if !value.is_empty() => {
            EnvFilter::try_new(&value).with_context(|| format!("parsing RUST_LOG={value:?}"))
        }
        _ => EnvFilter::try_new(default)
            .with_context(|| format!("parsing logging.filter {default:?}")),
    }
}

/// Installs the global subscriber.
pub fn init(
    format: LogFormat,
    default_filter: &str,
    chrome: Option<&Path>,
    bar: SharedBar,
) -> Result<TelemetryGuard> {
    let writer = StderrAroundBar { bar };
    let stderr_layer: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .pretty()
            .with_writer(writer)
            .with_thread_names(true)
            .boxed(),
        LogFormat::Compact => tracing_subscriber::fmt::layer()
            .compact()
            .with_writer(writer)
            .with_thread_names(true)
            .with_ansi(io::IsTerminal::is_terminal(&io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_thread_names(true)
            .with_writer(writer)
            .boxed(),
    };
    let stderr_layer = stderr_layer.with_filter(filter(default_filter)?);
    let mut guard = TelemetryGuard { _chrome: None };
    let chrome_layer = match chrome {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating the folder of {}", path.display()))?;
            }
            // Fail early and clearly if the file cannot be created.
            std::fs::File::create(path)
                .with_context(|| format!("creating the chrome trace {}", path.display()))?;
            let (layer, flush) = tracing_chrome::ChromeLayerBuilder::new()
                .file(path)
                .include_args(true)
                .name_fn(Box::new(|event_or_span| match event_or_span {
                    EventOrSpan::Span(span) => slice_name(span),
                    EventOrSpan::Event(event) => event_name(event),
                }))
                .build();
            guard._chrome = Some(flush);
            let filter = || filter("info,taskhost_executor=debug");
            Some(
                layer
                    .with_filter(filter()?)
                    .and_then(ItemLabels.with_filter(filter()?)),
            )
        }
        None => None,
    };
    tracing_subscriber::registry()
        .with(stderr_layer)
        .with(chrome_layer)
        .try_init()
        .context("installing the tracing subscriber")?;
    Ok(guard)
}
