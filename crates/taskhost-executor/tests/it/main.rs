//! The executor's integration tests: one binary, one module per theme.
//!
//! Test names start with the issue point they cover (`p01_` … `p20_`), then `stress_` and `race_`.

mod beyond_python;
mod python_semantics;
mod races;
mod stress;
mod tracing_events;
mod util;
