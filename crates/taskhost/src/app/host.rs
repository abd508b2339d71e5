//! The plugins, pools and routes of a command (`Host`), and how an isolated pool's worker
//! processes are started and served.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use taskhost_loader::{LoadOptions, PluginSet};

use crate::cli::Cli;
use crate::config::settings::{Isolation, Settings};
use crate::dispatch::{self, Catalog, Pools};
use crate::routing::{RouteOverrides, Router};

use super::{load_settings, Failure, OrExit, EXIT_NOT_ALL_OK, EXIT_OK, EXIT_USAGE};

/// Plugins, pools and routes, ready to run.
pub(crate) struct Host {
    pub(crate) plugins: PluginSet,
    pub(crate) pools: Pools,
    pub(crate) catalog: Catalog,
    pub(super) router: Router,
}

impl Host {
    pub(crate) fn load(
        settings: &Settings,
        cli: &Cli,
        overrides: RouteOverrides,
    ) -> Result<Self, Failure> {
        let options = load_options(settings, settings.plugins.strict);
        let (plugins, skipped) = PluginSet::load(&settings.plugins.dirs, &options)
            .context("loading plugins")
            .or_exit(EXIT_USAGE)?;
        if plugins.plugins().is_empty() {
            tracing::warn!(
                target: "taskhost",
                dirs = %display_dirs(&settings.plugins.dirs),
                skipped = skipped.len(),
                "no plugins loaded"
            );
        }
        let router = Router::new(settings.routes.clone()).with_overrides(overrides);
        let worker_process = worker_process(settings, cli).or_exit(EXIT_USAGE)?;
        let pools = Pools::build(settings, worker_process.as_ref()).or_exit(EXIT_USAGE)?;
        let catalog = Catalog::new(&plugins, &router, &pools).or_exit(EXIT_USAGE)?;
        let names = catalog.names();
        if !names.is_empty() {
            for route in router.unused(&names) {
                tracing::warn!(
                    target: "taskhost",
                    route = %route.task,
                    pool = %route.pool,
                    "route matches no loaded task"
                );
            }
        }
        Ok(Self {
            plugins,
            pools,
            catalog,
            router,
        })
    }
}

/// How an isolated pool starts its worker processes: this binary again, with the same
/// configuration file (the environment, and with it `TASKHOST_*` settings, is inherited).
/// `None` when no pool is isolated.
#[cfg(unix)]
pub(super) fn worker_process(
    settings: &Settings,
    cli: &Cli,
) -> Result<Option<dispatch::WorkerProcess>> {
    use crate::isolation::{ChildSpec, SERVE_COMMAND};
    if !settings
        .pools
        .values()
        .any(|pool| pool.isolation == Isolation::Process)
    {
        return Ok(None);
    }
    let program = std::env::current_exe().context("finding this program, to start workers")?;
    let mut args = Vec::new();
    if let Some(config) = &cli.global.config {
        args.push("--config".into());
        args.push(config.clone().into_os_string());
    }
    args.push(SERVE_COMMAND.into());
    Ok(Some(Arc::new(ChildSpec::new(program, args))))
}

#[cfg(not(unix))]
pub(super) fn worker_process(_: &Settings, _: &Cli) -> Result<Option<dispatch::WorkerProcess>> {
    Ok(None)
}

/// `taskhost __serve-worker`: one worker process of an isolated pool. It loads the plugins as
/// the host did (same folders, trust rules and pins) and serves its host worker's tasks; it
/// logs nothing of its own (what it prints reaches the host's log as `plugin.output`).
pub(super) fn serve_worker(file: Option<&Path>) -> Result<u8, Failure> {
    #[cfg(unix)]
    {
        let plugins = load_settings(file)
            .map_err(|failure| format!("{:#}", failure.error))
            .and_then(|(settings, _)| {
                let options = load_options(&settings, settings.plugins.strict);
                PluginSet::load(&settings.plugins.dirs, &options)
                    .map(|(plugins, _)| plugins)
                    .map_err(|error| format!("loading plugins: {error:#}"))
            });
        crate::isolation::serve(plugins).or_exit(EXIT_NOT_ALL_OK)?;
        Ok(EXIT_OK)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Err(Failure {
            code: EXIT_USAGE,
            error: anyhow::anyhow!("isolated pools need a Unix system"),
        })
    }
}

/// The loader's options from the settings: `strict`, and the trust pins.
pub(super) fn load_options(settings: &Settings, strict: bool) -> LoadOptions {
    LoadOptions {
        strict,
        pins: settings.plugins.pins.clone(),
        require_pins: settings.plugins.require_pins,
    }
}

pub(super) fn display_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        // The default folder is below $XDG_DATA_HOME or $HOME, and neither is set.
        return "no folder (set [plugins] dirs, or HOME for the default one)".to_owned();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
