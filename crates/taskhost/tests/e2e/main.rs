//! End-to-end tests: the real `taskhost` binary on the real compiled sample plugins.
//!
//! One test binary (compiled as the `e2e` integration test of the `taskhost` package, so that
//! `CARGO_BIN_EXE_taskhost` is set); the plugins come from `TASKHOST_TEST_PLUGIN_DIR`, which
//! `cargo xtask test` sets after building them, else from `<workspace>/target/plugins`.

mod util;

mod bad_input;
mod cluster;
mod cluster_metrics;
mod config;
mod flags;
mod isolation;
mod journal;
mod plugin_guide;
mod run;
mod signals;
mod streaming;
mod trace;
mod trust;
