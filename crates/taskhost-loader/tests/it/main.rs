//! Integration tests of the loader against real compiled plugins: the samples (three in Rust,
//! one in C), a plugin built outside the workspace, small C plugins compiled by the tests, and
//! libraries that must be refused, and the trust rules (symbolic links, permissions, owners,
//! pins).
//!
//! The sample plugins come from `TASKHOST_TEST_PLUGIN_DIR` (set by `cargo xtask test`); without
//! it the tests build them with `cargo xtask build-plugins`.

mod both_abis;
mod c_plugins;
mod errors;
mod external;
mod logging;
mod sample_plugins;
mod support;
mod trust;
