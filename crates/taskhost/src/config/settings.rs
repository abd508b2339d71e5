//! Stage two: typed, validated settings. Nothing past this module sees a string that still has
//! to be parsed, and every problem found here names the key it is about.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::cluster::{self, ClusterConfig};
use super::duration::{format_duration, parse_duration};
use super::raw::{RawConfig, RawJob, RawLogging, RawPlugins, RawPool, RawRoute, RawRun};

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

    fn plugins(&mut self, raw: &RawPlugins, dirs: &PluginDirs) -> PluginSettings {
        let folders = match &raw.dirs {
            None => dirs.default.clone(),
            Some(written) => written
                .iter()
                .enumerate()
                .filter_map(|(index, dir)| self.plugin_dir(index, dir, dirs.base.as_deref()))
                .collect(),
        };
        PluginSettings {
            dirs: folders,
            strict: raw.strict.unwrap_or(false),
            require_pins: raw.require_pins.unwrap_or(false),
            pins: self.pins(raw.pins.as_ref()),
        }
    }

    /// A plugin folder as written: an absolute path as it is, a relative one taken from
    /// `base` (the folder of the file that names it), never from wherever taskhost runs.
    fn plugin_dir(&mut self, index: usize, dir: &str, base: Option<&Path>) -> Option<PathBuf> {
        let path = Path::new(dir);
        if dir.is_empty() {
            self.issue(
                "plugins.dirs",
                format!("expected a folder, found an empty string at position {index}"),
            );
            return None;
        }
        if path.is_absolute() {
            return Some(path.to_path_buf());
        }
        match base {
            Some(base) => Some(base.join(path)),
            None => {
                self.issue(
                    "plugins.dirs",
                    format!("expected an absolute folder, found {dir:?} (there is no folder to take it from)"),
                );
                None
            }
        }
    }

    /// `[plugins.pins]`: each key a plugin name, each value `"sha256:<64 hex digits>"`.
    fn pins(&mut self, raw: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
        let mut pins = BTreeMap::new();
        for (name, pin) in raw.into_iter().flatten() {
            let key = format!("plugins.pins.{name}");
            let valid_name = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                self.issue(
                    &key,
                    format!(
                        "expected a plugin name of letters, digits, `_` or `-`, found {name:?}"
                    ),
                );
                continue;
            }
            match parse_pin(pin) {
                Ok(pin) => {
                    pins.insert(name.clone(), pin);
                }
                Err(message) => self.issue(&key, message),
            }
        }
        pins
    }

    fn logging(&mut self, raw: &RawLogging) -> LoggingSettings {
        let format = match raw.format.as_deref() {
            None => LogFormat::Compact,
            Some(text) => LogFormat::parse(text).unwrap_or_else(|| {
                self.issue(
                    "logging.format",
                    format!("expected one of \"pretty\", \"compact\", \"json\", found {text:?}"),
                );
                LogFormat::Compact
            }),
        };
        let filter = raw.filter.clone().unwrap_or_else(|| "warn".to_owned());
        LoggingSettings { format, filter }
    }

    fn run(&mut self, raw: &RawRun) -> RunSettings {
        RunSettings {
            max_in_flight: self.count(
                "run.max_in_flight",
                raw.max_in_flight,
                Range::new(
                    1,
                    limits::MAX_IN_FLIGHT,
                    "each item in flight holds its line and its outcome in memory",
                ),
                1024,
            ),
            max_line_bytes: self.count(
                "run.max_line_bytes",
                raw.max_line_bytes,
                Range::new(
                    1,
                    limits::MAX_LINE_BYTES,
                    "1 GiB: a line is held in memory whole",
                ),
                1 << 20,
            ),
            shutdown_grace: self.duration(
                "run.shutdown_grace",
                raw.shutdown_grace.as_ref(),
                Duration::from_secs(5),
            ),
        }
    }

    fn pool(&mut self, name: &str, raw: &RawPool) -> Option<PoolSettings> {
        let before = self.issues.len();
        let key = |field: &str| format!("pools.{name}.{field}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            self.issue(
                &format!("pools.{name}"),
                format!("expected a pool name of letters, digits, `-` and `_`, found {name:?}"),
            );
        }
        let max_workers = self.count(
            &key("max_workers"),
            raw.max_workers,
            Range::new(1, limits::MAX_WORKERS, "each worker is a thread"),
            default_max_workers(),
        );
        let idle_timeout = self.duration(
            &key("idle_timeout"),
            raw.idle_timeout.as_ref(),
            Duration::from_secs(30),
        );
        let max_tasks_per_worker = self.count(
            &key("max_tasks_per_worker"),
            raw.max_tasks_per_worker,
            Range::new(0, limits::MAX_TASKS_PER_WORKER, "0 means unlimited"),
            0,
        );
        let queue_capacity = self.count(
            &key("queue_capacity"),
            raw.queue_capacity,
            Range::new(
                0,
                limits::QUEUE_CAPACITY,
                "queued tasks are held in memory; 0 means unbounded",
            ),
            0,
        );
        let when_full = match raw.when_full.as_deref() {
            None | Some("block") => WhenFull::Block,
            Some("reject") => WhenFull::Reject,
            Some("caller-runs") => WhenFull::CallerRuns,
            Some(other) => {
                self.issue(
                    &key("when_full"),
                    format!(
                        "expected one of \"block\", \"reject\", \"caller-runs\", found {other:?}"
                    ),
                );
                WhenFull::Block
            }
        };
        if when_full != WhenFull::Block && queue_capacity == 0 {
            self.issue(
                &key("when_full"),
                format!(
                    "conflicts with queue_capacity = 0: an unbounded queue is never full, so \
                     when_full = {:?} would never apply; set queue_capacity or remove when_full",
                    when_full.as_str()
                ),
            );
        }
        let thread_name_prefix = match &raw.thread_name_prefix {
            Some(prefix) if prefix.is_empty() => {
                self.issue(
                    &key("thread_name_prefix"),
                    "expected a non-empty string, found \"\"".to_owned(),
                );
                name.to_owned()
            }
            Some(prefix) => prefix.clone(),
            None => name.to_owned(),
        };
        let isolation = match raw.isolation.as_deref() {
            None | Some("thread") => Isolation::Thread,
            Some("process") if cfg!(unix) => Isolation::Process,
            Some("process") => {
                self.issue(
                    &key("isolation"),
                    "\"process\" needs a Unix system (worker processes talk over Unix sockets)"
                        .to_owned(),
                );
                Isolation::Thread
            }
            Some(other) => {
                self.issue(
                    &key("isolation"),
                    format!("expected one of \"thread\", \"process\", found {other:?}"),
                );
                Isolation::Thread
            }
        };
        let quarantine_after = self.count(
            &key("quarantine_after"),
            raw.quarantine_after,
            Range::new(0, 1_000_000, "0 means never"),
            DEFAULT_QUARANTINE_AFTER as usize,
        ) as u32;
        let memory_limit = raw.memory_limit.as_ref().and_then(|text| {
            match text.trim().parse::<bytesize::ByteSize>() {
                Ok(size) if size.as_u64() >= 16 << 20 => Some(size.as_u64()),
                Ok(size) => {
                    self.issue(
                        &key("memory_limit"),
                        format!(
                            "expected at least 16 MiB (a worker process needs that much to load \
                             its plugins), found {size}"
                        ),
                    );
                    None
                }
                Err(_) => {
                    self.issue(
                        &key("memory_limit"),
                        format!("expected a size such as \"512 MiB\" or \"2 GiB\", found {text:?}"),
                    );
                    None
                }
            }
        });
        let cpu_limit = raw
            .cpu_limit
            .as_ref()
            .and_then(|text| match parse_duration(text) {
                Ok(limit) if limit >= Duration::from_secs(1) => Some(limit),
                Ok(_) => {
                    self.issue(
                        &key("cpu_limit"),
                        format!(
                            "expected at least 1s (the limit counts whole seconds), found {text:?}"
                        ),
                    );
                    None
                }
                Err(message) => {
                    self.issue(&key("cpu_limit"), message);
                    None
                }
            });
        if isolation == Isolation::Thread {
            for (field, set) in [
                ("memory_limit", memory_limit.is_some()),
                ("cpu_limit", cpu_limit.is_some()),
            ] {
                if set {
                    self.issue(
                        &key(field),
                        "applies only to isolation = \"process\" (a thread cannot be limited \
                         alone); set isolation = \"process\" or remove it"
                            .to_owned(),
                    );
                }
            }
        }
        if isolation == Isolation::Process && when_full == WhenFull::CallerRuns {
            self.issue(
                &key("when_full"),
                "\"caller-runs\" conflicts with isolation = \"process\": the caller has no \
                 worker process to run the task in; use \"block\" or \"reject\""
                    .to_owned(),
            );
        }
        (self.issues.len() == before).then(|| PoolSettings {
            name: name.to_owned(),
            max_workers,
            idle_timeout: (!idle_timeout.is_zero()).then_some(idle_timeout),
            max_tasks_per_worker,
            queue_capacity,
            when_full,
            thread_name_prefix,
            isolation,
            quarantine_after,
            memory_limit,
            cpu_limit,
        })
    }

    fn route(
        &mut self,
        index: usize,
        raw: &RawRoute,
        pools: &BTreeMap<String, RawPool>,
    ) -> Option<RouteSettings> {
        let before = self.issues.len();
        let key = |field: &str| format!("routes[{index}].{field}");
        let task = match &raw.task {
            Some(task) => task.clone(),
            None => {
                self.issue(
                    &format!("routes[{index}]"),
                    "expected a `task` glob such as \"primes/*\", found none".to_owned(),
                );
                String::new()
            }
        };
        let pattern = match glob::Pattern::new(&task) {
            Ok(pattern) => Some(pattern),
            Err(error) => {
                self.issue(&key("task"), format!("invalid glob {task:?}: {error}"));
                None
            }
        };
        let pool = raw.pool.clone().unwrap_or_else(|| DEFAULT_POOL.to_owned());
        if pool != DEFAULT_POOL && !pools.contains_key(&pool) {
            let known: Vec<&str> = pools
                .keys()
                .map(String::as_str)
                .chain((!pools.contains_key(DEFAULT_POOL)).then_some(DEFAULT_POOL))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            self.issue(
                &key("pool"),
                format!(
                    "no pool named {pool:?}; expected one of: {}",
                    known.join(", ")
                ),
            );
        }
        let retries = self.count(
            &key("retries"),
            raw.retries,
            Range::new(0, limits::RETRIES, "extra attempts after the first"),
            0,
        );
        let backoff = self.duration(
            &key("backoff"),
            raw.backoff.as_ref(),
            RetryPolicy::NONE.backoff,
        );
        let max_backoff = self.duration(
            &key("max_backoff"),
            raw.max_backoff.as_ref(),
            RetryPolicy::NONE.max_backoff.max(backoff),
        );
        if max_backoff < backoff {
            self.issue(
                &key("max_backoff"),
                format!(
                    "conflicts with backoff: max_backoff ({}) is shorter than backoff ({})",
                    format_duration(max_backoff),
                    format_duration(backoff)
                ),
            );
        }
        let timeout = match &raw.timeout {
            None => None,
            Some(text) => match parse_duration(text) {
                Ok(d) if d.is_zero() => {
                    self.issue(
                        &key("timeout"),
                        "expected a duration above zero, found \"0s\" (leave it out for no timeout)"
                            .to_owned(),
                    );
                    None
                }
                Ok(d) => Some(d),
                Err(message) => {
                    self.issue(&key("timeout"), message);
                    None
                }
            },
        };
        (self.issues.len() == before).then(|| RouteSettings {
            task,
            pattern: pattern.expect("checked above"),
            pool,
            retry: RetryPolicy {
                retries: u32::try_from(retries).unwrap_or(u32::MAX),
                backoff,
                max_backoff,
            },
            timeout,
        })
    }

    fn job(&mut self, index: usize, raw: &RawJob) -> Option<JobSettings> {
        let key = format!("jobs[{index}]");
        match (&raw.expand, &raw.task) {
            (Some(task), None) if raw.inputs.is_none() => Some(JobSettings::Expand {
                task: task.clone(),
                params: raw.params.clone().unwrap_or(serde_json::json!({})),
            }),
            (None, Some(task)) if raw.params.is_none() => Some(JobSettings::Inputs {
                task: task.clone(),
                inputs: raw.inputs.clone().unwrap_or_default(),
            }),
            _ => {
                self.issue(
                    &key,
                    "expected either `expand` (with optional `params`) or `task` (with `inputs`)"
                        .to_owned(),
                );
                None
            }
        }
    }
}

/// Turns settings back into the raw shape, every default filled in: what `config show` prints.
pub fn to_raw(settings: &Settings) -> RawConfig {
    RawConfig {
        plugins: RawPlugins {
            dirs: Some(
                settings
                    .plugins
                    .dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect(),
            ),
            strict: Some(settings.plugins.strict),
            require_pins: Some(settings.plugins.require_pins),
            pins: (!settings.plugins.pins.is_empty()).then(|| settings.plugins.pins.clone()),
        },
        logging: RawLogging {
            format: Some(settings.logging.format.as_str().to_owned()),
            filter: Some(settings.logging.filter.clone()),
        },
        run: RawRun {
            max_in_flight: Some(settings.run.max_in_flight as i64),
            max_line_bytes: Some(settings.run.max_line_bytes as i64),
            shutdown_grace: Some(format_duration(settings.run.shutdown_grace)),
        },
        pools: settings
            .pools
            .iter()
            .map(|(name, pool)| {
                (
                    name.clone(),
                    RawPool {
                        max_workers: Some(pool.max_workers as i64),
                        idle_timeout: Some(format_duration(pool.idle_timeout.unwrap_or_default())),
                        max_tasks_per_worker: Some(pool.max_tasks_per_worker as i64),
                        queue_capacity: Some(pool.queue_capacity as i64),
                        when_full: Some(pool.when_full.as_str().to_owned()),
                        thread_name_prefix: Some(pool.thread_name_prefix.clone()),
                        isolation: Some(pool.isolation.as_str().to_owned()),
                        quarantine_after: (pool.isolation == Isolation::Process)
                            .then_some(i64::from(pool.quarantine_after)),
                        memory_limit: pool
                            .memory_limit
                            .map(|bytes| bytesize::ByteSize::b(bytes).display().iec().to_string()),
                        cpu_limit: pool.cpu_limit.map(format_duration),
                    },
                )
            })
            .collect(),
        routes: settings
            .routes
            .iter()
            .map(|route| RawRoute {
                task: Some(route.task.clone()),
                pool: Some(route.pool.clone()),
                retries: Some(i64::from(route.retry.retries)),
                backoff: Some(format_duration(route.retry.backoff)),
                max_backoff: Some(format_duration(route.retry.max_backoff)),
                timeout: route.timeout.map(format_duration),
            })
            .collect(),
        jobs: settings
            .jobs
            .iter()
            .map(|job| match job {
                JobSettings::Expand { task, params } => RawJob {
                    expand: Some(task.clone()),
                    params: Some(params.clone()),
                    ..RawJob::default()
                },
                JobSettings::Inputs { task, inputs } => RawJob {
                    task: Some(task.clone()),
                    inputs: Some(inputs.clone()),
                    ..RawJob::default()
                },
            })
            .collect(),
        cluster: settings.cluster.as_ref().map(cluster::to_raw),
    }
}
