//! The cluster crate against a real `nats-server -js` on 127.0.0.1, one server per test.
//!
//! Every loop is bounded in count and in time. A missing server fails these tests with how to
//! install one (see `taskhost_cluster::testing`).

mod cancel;
mod connect;
mod dead_letters;
mod publish;
mod pull;
mod restart;
mod results;
mod setup;
mod status;
mod support;
mod tls;
