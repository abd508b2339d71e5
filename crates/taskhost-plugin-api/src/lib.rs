//! The stable ABI between the taskhost host and its compiled task plugins, and the SDK that
//! makes writing a plugin a few lines of plain Rust.
//!
//! This crate owns the interface: the root module every plugin exports ([`abi::PluginModule`]),
//! the FFI types it passes, the host context a running task talks to ([`abi::HostContext`]),
//! and the author-side SDK ([`Plugin`], [`TaskContext`], [`TaskError`], [`export_plugin!`]).
//! It knows nothing of pools, queues, configuration or how the host loads libraries (that is
//! `taskhost-loader`).
//!
//! # Writing a plugin, from zero
//!
//! A plugin is a Rust library compiled as a `cdylib` that exports named *task types*. The host
//! runs a task by name (`plugin/task`) on an input (JSON bytes) and records the output (JSON
//! bytes) or a failure.
//!
//! **1. Create the crate** (`cargo new --lib taskhost-plugin-wordcount`) and make it a `cdylib`
//! (keep `rlib` too, so that `cargo test` can run its unit tests):
//!
//! ```toml
//! [lib]
//! name = "taskhost_wordcount"
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! # Not on crates.io: the path of a checkout of taskhost (or `git = "…"` and its URL).
//! taskhost-plugin-api = { path = "../taskhost/crates/taskhost-plugin-api" }
//! serde = { version = "1", features = ["derive"] }
//! serde_json = "1"   # for `serde_json::json!` in the expand step below
//! ```
//!
//! **2. Write each task as a function** from a typed input and a [`TaskContext`] to a typed
//! output or a [`TaskError`]. Inputs are parsed from JSON with serde (a parse error becomes an
//! `invalid_input` failure), outputs are written back as JSON. Poll
//! [`TaskContext::check_cancelled`] in long loops, report [`TaskContext::progress`], and log
//! through the context ([`TaskContext::info`] and friends): a plugin's own `tracing` or `log`
//! calls never reach the host, because a `cdylib` carries its own copy of their globals.
//!
//! **3. Build a [`Plugin`]** in a function, naming and describing each task, and hand that
//! function to [`export_plugin!`]. The complete plugin:
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use taskhost_plugin_api::{export_plugin, Plugin, TaskContext, TaskError, WorkItem};
//!
//! #[derive(Deserialize)]
//! struct CountInput {
//!     text: String,
//! }
//!
//! #[derive(Serialize)]
//! struct CountOutput {
//!     words: usize,
//! }
//!
//! fn count(input: CountInput, ctx: &TaskContext<'_>) -> Result<CountOutput, TaskError> {
//!     let mut words = 0;
//!     for (index, line) in input.text.lines().enumerate() {
//!         if index % 1024 == 0 {
//!             ctx.check_cancelled()?; // returns a `cancelled` failure once the host asks
//!         }
//!         words += line.split_whitespace().count();
//!     }
//!     ctx.info(format!("counted {words} words"));
//!     Ok(CountOutput { words })
//! }
//!
//! /// A raw task: bytes in, bytes out.
//! fn length(input: &[u8], _ctx: &TaskContext<'_>) -> Result<Vec<u8>, TaskError> {
//!     Ok(input.len().to_string().into_bytes())
//! }
//!
//! #[derive(Deserialize)]
//! struct Texts {
//!     texts: Vec<String>,
//! }
//!
//! /// The optional expand step: one job becomes many work items.
//! fn expand(_job: &str, params: Texts, _ctx: &TaskContext<'_>) -> Result<Vec<WorkItem>, TaskError> {
//!     Ok(params
//!         .texts
//!         .into_iter()
//!         .map(|text| WorkItem {
//!             id: None,
//!             task: "wordcount/count".into(),
//!             input: serde_json::json!({ "text": text }),
//!         })
//!         .collect())
//! }
//!
//! fn plugin() -> Plugin {
//!     Plugin::new("wordcount", env!("CARGO_PKG_VERSION"))
//!         .task("count", "counts the words of `text`", count)
//!         .raw_task("length", "the length of the raw input in bytes", length)
//!         .expand(expand)
//! }
//!
//! export_plugin!(plugin);
//!
//! // Unit tests can run a task without a host:
//! # fn main() {
//! let output = plugin().run_detached("count", br#"{"text": "a b c"}"#).unwrap();
//! assert_eq!(output, br#"{"words":3}"#);
//! let error = plugin().run_detached("count", b"{}").unwrap_err();
//! assert_eq!(error.kind(), taskhost_plugin_api::FailureKind::InvalidInput);
//! # }
//! ```
//!
//! **4. Build and drop it in**: `cargo build --release`, then copy
//! `target/release/libtaskhost_wordcount.so` (`.dylib` on macOS, `taskhost_wordcount.dll` on
//! Windows) into a folder the host's `[plugins] dirs` names. Its tasks are then
//! `wordcount/count` and `wordcount/length`.
//!
//! # What happens on failure
//!
//! | in the task                         | the host records                      |
//! |-------------------------------------|---------------------------------------|
//! | `Err(TaskError::failed(..))`, `?` on an I/O error | `failed` with the message |
//! | input JSON that does not parse into the input type | `invalid_input`          |
//! | `Err(TaskError::cancelled())`, `ctx.check_cancelled()?` | `cancelled`         |
//! | a panic                             | `panicked` with the panic message; the host lives on |
//!
//! # Compatibility
//!
//! The root module is frozen for the major version of this crate (for `0.x`, the minor
//! version): the host refuses a plugin built against another one, with an error that names
//! both versions. abi_stable also rejects a plugin built against an *older* revision of the
//! root module than the host's, so the interface never grows new root fields within a version;
//! it evolves through the JSON payloads, [`abi::PluginDescriptor::metadata`] and new failure
//! codes (unknown codes read as `failed`). Rebuild plugins when the host moves to a new
//! `taskhost-plugin-api` version.
//!
//! # Features
//!
//! - `json` (default): typed tasks and expand steps over serde ([`Plugin::task`],
//!   [`Plugin::expand`], [`WorkItem`]). Without it only the raw-bytes API remains.
#![deny(missing_docs)]

pub mod abi;
mod export;
#[cfg(feature = "json")]
pub mod pages;
mod panics;
mod sdk;

pub use abi::LogLevel;
#[cfg(feature = "json")]
pub use pages::WorkItems;
#[doc(hidden)]
pub use sdk::__private;
#[cfg(feature = "json")]
pub use sdk::WorkItem;
pub use sdk::{FailureKind, Plugin, TaskContext, TaskError};
