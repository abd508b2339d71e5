//! A thread-pool executor with the semantics of Python's `concurrent.futures.ThreadPoolExecutor`.
//!
//! This crate knows nothing of plugins, TOML or JSON.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
