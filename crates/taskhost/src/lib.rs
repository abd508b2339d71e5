//! The `taskhost` host as a library; the binary's `main` only calls [`run_cli`].
//!
//! It owns the command line, the configuration (raw TOML → validated [`config::Settings`]),
//! routing tasks to pools, reading work items ([`source`]), writing outcomes ([`sink`]), the
//! [`dispatch`]er between them, tracing setup, the progress bar and Ctrl-C handling. It must not
//! know how a pool works inside (that is `taskhost-executor`) or how a plugin is called across the
//! FFI boundary (that is `taskhost-loader`).
#![forbid(unsafe_code)]

pub mod app;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod dispatch;
pub mod dry_run;
pub mod expand;
#[cfg(unix)]
pub mod isolation;
pub mod plugin_facts;
pub mod progress;
pub mod rerun;
pub mod routing;
pub mod signals;
pub mod sink;
pub mod source;
pub mod telemetry;

pub use app::run_cli;
