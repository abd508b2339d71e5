//! The catalog: every task of every loaded plugin with its route resolved (pool, retries,
//! timeout), looked up by name for each item.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use taskhost_loader::{PluginSet, PluginTask};

use super::pools::Pools;
use crate::config::settings::RetryPolicy;
use crate::routing::Router;

/// A task the host can run: the plugin's task with its route resolved.
#[derive(Debug)]
pub struct ResolvedTask {
    pub name: Arc<str>,
    pub plugin: String,
    pub task: PluginTask,
    pub pool: usize,
    pub pool_name: Arc<str>,
    pub retry: RetryPolicy,
    pub timeout: Option<Duration>,
}

/// The candidate closest to `name`, when one is close enough to be a likely typo (clap's
/// measure and threshold: Jaro similarity above 0.7).
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro(name, candidate), candidate))
        .filter(|(similarity, _)| *similarity > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0).then_with(|| b.1.cmp(a.1)))
        .map(|(_, candidate)| candidate)
}

/// Every task of every loaded plugin, routed.
#[derive(Debug)]
pub struct Catalog {
    tasks: HashMap<String, Arc<ResolvedTask>>,
}

impl Catalog {
    pub fn new(plugins: &PluginSet, router: &Router, pools: &Pools) -> Result<Self> {
        let mut tasks = HashMap::new();
        for task in plugins.tasks() {
            let name = task.full_name().to_owned();
            let decision = router.route(&name);
            let pool = pools.index(&decision.pool).with_context(|| {
                format!(
                    "the route for {name} names pool `{}`, which does not exist",
                    decision.pool
                )
            })?;
            tasks.insert(
                name.clone(),
                Arc::new(ResolvedTask {
                    name: Arc::from(name.as_str()),
                    plugin: task.plugin_name().to_owned(),
                    task,
                    pool,
                    pool_name: Arc::from(decision.pool.as_str()),
                    retry: decision.retry,
                    timeout: decision.timeout,
                }),
            );
        }
        Ok(Self { tasks })
    }

    pub fn get(&self, name: &str) -> Option<&Arc<ResolvedTask>> {
        self.tasks.get(name)
    }

    /// Why `name` cannot run: `unknown task "checksum/sha265": no loaded plugin provides it;
    /// did you mean "checksum/sha256"? (see `taskhost plugins`)`.
    pub fn unknown(&self, name: &str) -> String {
        let hint = did_you_mean(name, self.tasks.keys().map(String::as_str))
            .map(|close| format!("; did you mean {close:?}?"))
            .unwrap_or_default();
        format!(
            "unknown task {name:?}: no loaded plugin provides it{hint} (see `taskhost plugins`)"
        )
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tasks.keys().cloned().collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_name_is_suggested_and_a_far_one_is_not() {
        let names = ["checksum/sha256", "primes/count", "testkit/echo"];
        assert_eq!(
            did_you_mean("checksum/sha265", names),
            Some("checksum/sha256")
        );
        assert_eq!(did_you_mean("testkit/ecko", names), Some("testkit/echo"));
        assert_eq!(did_you_mean("primes", names), Some("primes/count"));
        assert_eq!(did_you_mean("zzz/qqq", names), None);
        assert_eq!(did_you_mean("anything", []), None);
    }
}
