//! Settings back in the raw shape, every default filled in: what `config show` prints.

use crate::config::cluster::{self};
use crate::config::duration::format_duration;
use crate::config::raw::{RawConfig, RawJob, RawLogging, RawPlugins, RawPool, RawRoute, RawRun};

use super::*;

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
