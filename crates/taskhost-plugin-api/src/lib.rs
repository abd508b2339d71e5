//! The stable ABI between the taskhost host and its compiled task plugins.
//!
//! This crate knows nothing of pools.
#![deny(missing_docs)]
