//! The executor's integration tests: one binary, one module per theme.
//!
//! Test names start with the issue point they cover (`p01_` … `p20_`), then `py314_` (the
//! Python 3.14 parity of issue 14), `stress_`, `race_`, and `i16_` (issue 16: the source files
//! form layers).

mod beyond_python;
mod layers;
mod python_parity;
mod python_semantics;
mod races;
mod red_team;
mod stress;
mod tracing_events;
mod util;
mod worker_state;
