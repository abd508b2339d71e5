//! Stage two: typed, validated settings. Nothing past this module sees a string that still has
//! to be parsed, and every problem found here names the key it is about.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::cluster::{self, ClusterConfig};
use super::duration::parse_duration;
use super::raw::{RawConfig, RawPool};

mod pools;
mod sections;
mod to_raw;

pub use to_raw::to_raw;

/// The pool a task runs on when no route matches it.
pub const DEFAULT_POOL: &str = "default";

/// Everything the host needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub plugins: PluginSettings,
    pub logging: LoggingSettings,
    pub run: RunSettings,
    /// Always holds [`DEFAULT_POOL`].
    pub pools: BTreeMap<String, PoolSettings>,
    pub routes: Vec<RouteSettings>,
    pub jobs: Vec<JobSettings>,
    /// `[cluster]`, when the configuration has one (`taskhost worker` and `submit` need it).
    pub cluster: Option<ClusterConfig>,
}

#[derive(Debug, Clone)]
pub struct PluginSettings {
    pub dirs: Vec<PathBuf>,
    pub strict: bool,
    /// Refuse every plugin library that no pin matches (checked before it is opened).
    pub require_pins: bool,
    /// Plugin name → `sha256:<64 lowercase hex digits>` (checked and normalised).
    pub pins: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Compact,
    Json,
}

impl LogFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pretty" => Some(Self::Pretty),
            "compact" => Some(Self::Compact),
            "json" => Some(Self::Json),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pretty => "pretty",
            Self::Compact => "compact",
            Self::Json => "json",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LoggingSettings {
    pub format: LogFormat,
    /// A `tracing_subscriber::EnvFilter` directive string.
    pub filter: String,
}

#[derive(Debug, Clone)]
pub struct RunSettings {
    /// Most items between read and written; at least 1.
    pub max_in_flight: usize,
    /// Longer lines are rejected unparsed; at least 1.
    pub max_line_bytes: usize,
    /// How long running tasks get to stop after Ctrl-C.
    pub shutdown_grace: Duration,
}

/// What a pool's `submit` does when its bounded queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    Block,
    Reject,
    CallerRuns,
}

impl WhenFull {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Reject => "reject",
            Self::CallerRuns => "caller-runs",
        }
    }
}

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub name: String,
    pub max_workers: usize,
    /// `None`: workers never retire for idleness.
    pub idle_timeout: Option<Duration>,
    /// 0: unlimited.
    pub max_tasks_per_worker: usize,
    /// 0: unbounded.
    pub queue_capacity: usize,
    pub when_full: WhenFull,
    pub thread_name_prefix: String,
    /// Where its tasks run: in this process, or each worker's in a worker process of its own.
    pub isolation: Isolation,
    /// An isolated pool stops running a plugin's items after this many crashes in a row (0:
    /// never).
    pub quarantine_after: u32,
    /// An isolated pool's limit on each worker process's address space, in bytes.
    pub memory_limit: Option<u64>,
    /// An isolated pool's limit on the CPU time of each task.
    pub cpu_limit: Option<Duration>,
}

/// Where a pool's tasks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// On the pool's worker threads, in the host process (the default).
    Thread,
    /// Each worker thread hands its tasks to a worker process of its own, which a crash, an
    /// `exit` or a kill costs only the item it was running.
    Process,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Thread => "thread",
            Self::Process => "process",
        }
    }
}

/// How many crashes in a row quarantine a plugin in an isolated pool, by default.
pub const DEFAULT_QUARANTINE_AFTER: u32 = 5;

/// How often and how patiently an item is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Extra attempts after the first.
    pub retries: u32,
    /// Wait before the first retry; doubled before each next one.
    pub backoff: Duration,
    /// Upper bound of the wait.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    pub const NONE: Self = Self {
        retries: 0,
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(10),
    };

    /// The wait before attempt `next_attempt` (2 for the first retry).
    pub fn delay_before(&self, next_attempt: u32) -> Duration {
        let doublings = next_attempt.saturating_sub(2).min(30);
        self.backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff)
    }
}

#[derive(Debug, Clone)]
pub struct RouteSettings {
    /// The glob as written.
    pub task: String,
    pub pattern: glob::Pattern,
    pub pool: String,
    pub retry: RetryPolicy,
    /// Longest run of one attempt.
    pub timeout: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum JobSettings {
    /// Ask a plugin to expand `params` into work items.
    Expand {
        task: String,
        params: serde_json::Value,
    },
    /// Run `task` once per input.
    Inputs {
        task: String,
        inputs: Vec<serde_json::Value>,
    },
}

/// One problem with the configuration: where, which key, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// `path/to/file.toml:12`, `the embedded default config`, `environment variable TASKHOST_X`.
    pub origin: String,
    /// A dotted key path such as `pools.cpu.max_workers` or `routes[1].pool`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: key `{}`: {}", self.origin, self.key, self.message)
        }
    }
}

/// `sha256:<64 lowercase hex digits>` from a pin as written: the loader's rule, so a pin the
/// config accepts is one the loader accepts.
pub use taskhost_loader::parse_pin;

/// Where relative `plugins.dirs` are taken from, and the folders used when none is set.
#[derive(Debug, Clone, Default)]
pub struct PluginDirs {
    /// The folder of the source that set `plugins.dirs` (a config file's own folder, the
    /// working directory for an environment variable); `None`: relative folders are refused.
    pub base: Option<PathBuf>,
    /// The folders when no source sets `plugins.dirs` (see `config::default_plugin_dirs`).
    pub default: Vec<PathBuf>,
}

/// The largest value of each count, and why: past these a value can only be a mistake, and
/// would crash the host or exhaust the machine (threads, queue slots, buffered lines).
pub mod limits {
    /// `pools.*.max_workers`: one thread each.
    pub const MAX_WORKERS: i64 = 1024;
    /// `pools.*.queue_capacity`: queued tasks beyond the running ones.
    pub const QUEUE_CAPACITY: i64 = 1 << 20;
    /// `pools.*.max_tasks_per_worker`.
    pub const MAX_TASKS_PER_WORKER: i64 = u32::MAX as i64;
    /// `run.max_in_flight`: each item in flight holds its input line and outcome.
    pub const MAX_IN_FLIGHT: i64 = 1 << 20;
    /// `run.max_line_bytes`: a line is held in memory whole (1 GiB).
    pub const MAX_LINE_BYTES: i64 = 1 << 30;
    /// `routes[].retries`.
    pub const RETRIES: i64 = 100;
}

/// Default `max_workers`, as Python's: `min(32, cpus + 4)`.
pub fn default_max_workers() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus + 4).min(32)
}

/// Validates a merged raw config. `locate(key)` names the source that set `key`; `dirs` says
/// where relative plugin folders are taken from.
pub fn validate(
    raw: &RawConfig,
    locate: &dyn Fn(&str) -> String,
    dirs: &PluginDirs,
) -> Result<Settings, Vec<Issue>> {
    let mut v = Validator {
        issues: Vec::new(),
        locate,
    };
    let plugins = v.plugins(&raw.plugins, dirs);
    let logging = v.logging(&raw.logging);
    let run = v.run(&raw.run);
    let mut pools = BTreeMap::new();
    for (name, pool) in &raw.pools {
        if let Some(pool) = v.pool(name, pool) {
            pools.insert(name.clone(), pool);
        }
    }
    if !raw.pools.contains_key(DEFAULT_POOL) {
        pools.insert(
            DEFAULT_POOL.to_owned(),
            v.pool(DEFAULT_POOL, &RawPool::default())
                .expect("an empty pool table is valid"),
        );
    }
    let mut prefixes: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, pool) in &pools {
        if let Some(other) = prefixes.insert(&pool.thread_name_prefix, name) {
            v.issue(
                &format!("pools.{name}.thread_name_prefix"),
                format!(
                    "conflicts with pool `{other}`: both name their threads `{}_N`",
                    pool.thread_name_prefix
                ),
            );
        }
    }
    let routes = raw
        .routes
        .iter()
        .enumerate()
        .filter_map(|(index, route)| v.route(index, route, &raw.pools))
        .collect();
    let jobs = raw
        .jobs
        .iter()
        .enumerate()
        .filter_map(|(index, job)| v.job(index, job))
        .collect();
    let cluster = raw.cluster.as_ref().and_then(|raw| {
        cluster::validate(raw, &mut |key: &str, message: String| v.issue(key, message))
    });
    if v.issues.is_empty() {
        Ok(Settings {
            plugins,
            logging,
            run,
            pools,
            routes,
            jobs,
            cluster,
        })
    } else {
        Err(v.issues)
    }
}

/// The values a count may take.
#[derive(Debug, Clone, Copy)]
struct Range {
    minimum: i64,
    maximum: i64,
    /// Why the maximum, for the message.
    why: &'static str,
}

impl Range {
    const fn new(minimum: i64, maximum: i64, why: &'static str) -> Self {
        Self {
            minimum,
            maximum,
            why,
        }
    }
}

struct Validator<'a> {
    issues: Vec<Issue>,
    locate: &'a dyn Fn(&str) -> String,
}

impl Validator<'_> {
    fn issue(&mut self, key: &str, message: String) {
        self.issues.push(Issue {
            origin: (self.locate)(key),
            key: key.to_owned(),
            message,
        });
    }

    fn duration(&mut self, key: &str, value: Option<&String>, default: Duration) -> Duration {
        match value.map(|text| parse_duration(text)) {
            None => default,
            Some(Ok(duration)) => duration,
            Some(Err(message)) => {
                self.issue(key, message);
                default
            }
        }
    }

    /// A count from `minimum` to `maximum`; `why` says what the maximum protects.
    fn count(&mut self, key: &str, value: Option<i64>, range: Range, default: usize) -> usize {
        let Range {
            minimum,
            maximum,
            why,
        } = range;
        match value {
            None => default,
            Some(n) if n < minimum => {
                let meaning = if minimum == 1 {
                    " (0 is not allowed)"
                } else {
                    ""
                };
                self.issue(
                    key,
                    format!("expected an integer of at least {minimum}{meaning}, found {n}"),
                );
                default
            }
            Some(n) if n > maximum => {
                self.issue(
                    key,
                    format!("expected an integer of at most {maximum} ({why}), found {n}"),
                );
                default
            }
            Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        }
    }
}
