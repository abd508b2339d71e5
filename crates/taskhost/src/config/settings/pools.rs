//! The rules of `[pools.NAME]` (sizes, queues, isolation and its limits) and `[[routes]]`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::config::duration::{format_duration, parse_duration};
use crate::config::raw::{RawPool, RawRoute};

use super::*;

impl Validator<'_> {
    pub(super) fn pool(&mut self, name: &str, raw: &RawPool) -> Option<PoolSettings> {
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

    pub(super) fn route(
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
}
