//! The small commands: `completions`, `__man`, `config show|check`, `plugins` and `demo`.

use std::io::{self};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use taskhost_loader::PluginSet;

use crate::cli::{Cli, DemoArgs, PluginsArgs};
use crate::config::settings::{self, Isolation, Settings};
use crate::plugin_facts::PluginFacts;
use crate::routing::{RouteOverrides, Router};
use crate::sink::{JsonlSink, OutcomeSink};
use crate::source::WorkSource;
use crate::telemetry::SharedBar;

use super::host::{display_dirs, load_options, Host};
use super::inputs::{job_items, open_sink};
use super::work::{execute, start_run};
use super::{
    init_telemetry, load_settings, Failure, OrExit, EXIT_NOT_ALL_OK, EXIT_OK, EXIT_OUTPUT_CLOSED,
    EXIT_USAGE,
};

/// `taskhost completions SHELL`: the completion script on stdout.
pub(super) fn completions(shell: clap_complete::Shell) -> Result<u8, Failure> {
    use clap::CommandFactory;
    // Without the hidden commands, which clap_complete would offer too.
    let full = Cli::command();
    let mut visible = clap::Command::new("taskhost")
        .version(env!("CARGO_PKG_VERSION"))
        .args(full.get_arguments().cloned());
    for command in full.get_subcommands().filter(|c| !c.is_hide_set()) {
        visible = visible.subcommand(command.clone());
    }
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut visible, "taskhost", &mut script);
    match io::Write::write_all(&mut io::stdout().lock(), &script) {
        Ok(()) => Ok(EXIT_OK),
        Err(error) if error.kind() == io::ErrorKind::BrokenPipe => Ok(EXIT_OUTPUT_CLOSED),
        Err(error) => Err(error)
            .context("writing the completion script")
            .or_exit(EXIT_NOT_ALL_OK),
    }
}

/// `taskhost __man DIR`: the man pages, for `cargo xtask man`.
pub(super) fn man(dir: &Path) -> Result<u8, Failure> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)
        .and_then(|()| clap_mangen::generate_to(Cli::command(), dir))
        .with_context(|| format!("writing the man pages into {}", dir.display()))
        .or_exit(EXIT_NOT_ALL_OK)?;
    Ok(EXIT_OK)
}

/// `taskhost config show`: the effective configuration as TOML.
pub(super) fn config_show(file: Option<&Path>) -> Result<u8, Failure> {
    let (settings, sources) = load_settings(file)?;
    let text = toml::to_string(&settings::to_raw(&settings))
        .context("printing the configuration as TOML")
        .or_exit(EXIT_NOT_ALL_OK)?;
    println!(
        "# The effective configuration, from: {}\n",
        sources.join(", then ")
    );
    print!("{text}");
    Ok(EXIT_OK)
}

/// `taskhost config check [FILE]`: exit 2 with every problem, or a line that says it is fine.
pub(super) fn config_check(
    file: Option<PathBuf>,
    checked: Option<&PathBuf>,
) -> Result<u8, Failure> {
    let Some(checked) = checked.cloned().or(file) else {
        return Err(Failure {
            code: EXIT_USAGE,
            error: anyhow::anyhow!(
                "expected a file to check (`taskhost config check FILE` or --config FILE)"
            ),
        });
    };
    let (settings, _) = load_settings(Some(&checked))?;
    // Routes that match no loaded task are probably typos: warn, do not fail.
    if let Ok((plugins, _)) =
        PluginSet::load(&settings.plugins.dirs, &load_options(&settings, false))
    {
        let names: Vec<String> = plugins.tasks().map(|t| t.full_name().to_owned()).collect();
        if !names.is_empty() {
            for route in Router::new(settings.routes.clone()).unused(&names) {
                eprintln!(
                    "taskhost: warning: {}: route `{}` matches no loaded task",
                    checked.display(),
                    route.task
                );
            }
        }
    }
    println!(
        "{}: ok ({} pools, {} routes, {} jobs)",
        checked.display(),
        settings.pools.len(),
        settings.routes.len(),
        settings.jobs.len()
    );
    Ok(EXIT_OK)
}

/// `taskhost plugins [--pins]`.
pub(super) fn plugins(cli: &Cli, args: &PluginsArgs, file: Option<&Path>) -> Result<u8, Failure> {
    let (settings, _) = load_settings(file)?;
    let _guard = init_telemetry(cli, &settings, &SharedBar::default())?;
    let host = Host::load(&settings, cli, RouteOverrides::default())?;
    if args.pins {
        print_pins(&host, &settings)?;
    } else {
        print_plugins(&host);
    }
    Ok(EXIT_OK)
}

/// `taskhost demo`: the config's jobs, with a summary.
pub(super) fn demo(cli: &Cli, args: &DemoArgs, file: Option<&Path>) -> Result<u8, Failure> {
    let (settings, _) = load_settings(file)?;
    let session = start_run(cli, &settings)?;
    let host = Host::load(&settings, cli, RouteOverrides::default())?;
    if host.plugins.plugins().is_empty() {
        return Err(Failure {
            code: EXIT_USAGE,
            error: anyhow::anyhow!(
                "no plugins found in {}: build them with `cargo xtask build-plugins` and \
                 name target/plugins in [plugins] dirs, or run `cargo xtask demo`",
                display_dirs(&settings.plugins.dirs)
            ),
        });
    }
    let items = job_items(&settings.jobs, &host)?;
    eprintln!(
        "taskhost demo: {} from {} jobs in the configuration, on pools {}",
        match items.len_hint() {
            Some(n) => format!("{n} work items"),
            None => "work items".to_owned(),
        },
        settings.jobs.len(),
        settings
            .pools
            .keys()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    );
    let source: Box<dyn WorkSource> = Box::new(items);
    let sink: Box<dyn OutcomeSink> = match &args.output {
        Some(output) => open_sink(output)?,
        None => Box::new(JsonlSink::new(io::sink())),
    };
    execute(
        cli,
        &settings,
        host,
        source,
        sink,
        false,
        &session.interrupts,
        &session.bar,
    )
}

/// `taskhost plugins --pins`: the loaded plugins' checksums as a `[plugins.pins]` table.
fn print_pins(host: &Host, settings: &Settings) -> Result<(), Failure> {
    let mut lines = Vec::new();
    for plugin in host.plugins.plugins() {
        let sum = plugin
            .sha256()
            .with_context(|| format!("reading {}", plugin.path().display()))
            .or_exit(EXIT_NOT_ALL_OK)?;
        let name = plugin.name();
        let key = if name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            name.to_owned()
        } else {
            format!("{name:?}")
        };
        lines.push(format!(
            "{key} = \"{sum}\"  # version {}, {}",
            plugin.version(),
            plugin.path().display()
        ));
    }
    println!(
        "# SHA-256 pins (`taskhost plugins --pins`): {} plugin(s) loaded from {}.\n\
         # Paste into the configuration; with `require_pins = true` under [plugins], no other\n\
         # library is opened.\n[plugins.pins]",
        lines.len(),
        display_dirs(&settings.plugins.dirs)
    );
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

fn print_plugins(host: &Host) {
    if host.plugins.plugins().is_empty() {
        println!("no plugins loaded");
        return;
    }
    for plugin in host.plugins.plugins() {
        let facts = PluginFacts::of(plugin);
        let mut notes = String::new();
        if plugin.can_expand() {
            notes.push_str("  [expands jobs");
            if !facts.expand_jobs.is_empty() {
                notes.push_str(&format!(": {}", facts.expand_jobs.join(", ")));
            }
            notes.push(']');
        }
        if facts.debug_build == Some(true) {
            notes.push_str(
                "  [debug build: tasks run several times slower; build it with --release]",
            );
        }
        println!(
            "{} {}  ({}){notes}",
            plugin.name(),
            plugin.version(),
            plugin.path().display(),
        );
        for task in plugin.tasks() {
            let full = format!("{}/{}", plugin.name(), task.name);
            let decision = host.router.route(&full);
            let mut routing = format!("pool {}", decision.pool);
            if host
                .pools
                .index(&decision.pool)
                .is_some_and(|pool| host.pools.settings[pool].isolation == Isolation::Process)
            {
                routing.push_str(" (isolated)");
            }
            if decision.retry.retries > 0 {
                routing.push_str(&format!(", retries {}", decision.retry.retries));
            }
            if let Some(timeout) = decision.timeout {
                routing.push_str(&format!(
                    ", timeout {}",
                    crate::config::duration::format_duration(timeout)
                ));
            }
            if let Some(field) = facts.arguments.get(&task.name) {
                routing.push_str(&format!(", ARG is `{field}`"));
            }
            println!("  {full:<24} -> {routing:<28} {}", task.description);
        }
    }
}
