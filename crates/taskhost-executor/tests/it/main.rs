//! The executor's integration tests: one binary, one module per theme.
//!
//! Test names start with the issue point they cover (`p01_` … `p20_`), then `py314_` (the
//! Python 3.14 parity of issue 14), `stress_` and `race_`.

mod beyond_python;
mod python_parity;
mod python_semantics;
mod races;
mod red_team;
mod stress;
mod tracing_events;
mod util;
mod worker_state;
