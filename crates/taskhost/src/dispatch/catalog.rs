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

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.tasks.keys().cloned().collect();
        names.sort();
        names
    }
}
