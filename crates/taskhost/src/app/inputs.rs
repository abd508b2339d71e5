//! Where a command's work items come from and its records go: JSON lines, plain lines or
//! arguments, `--expand` and `[[jobs]]`, files and stdout.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal, Read};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::value::RawValue;

use crate::cli::RunArgs;
use crate::config::settings::{JobSettings, Settings};
use crate::expand::{ExpandSource, JobItems, JobsSource};
use crate::plugin_facts::PluginFacts;
use crate::sink::{JsonlSink, OutcomeSink};
use crate::source::{ItemsSource, JsonlSource, PlainInput, PlainLinesSource, WorkItem, WorkSource};

use super::host::Host;
use super::{suggestion, usage, Failure, OrExit, EXIT_NOT_ALL_OK, EXIT_USAGE};

pub(super) fn open_source(
    args: &RunArgs,
    settings: &Settings,
    host: &Host,
    progress: bool,
) -> Result<Box<dyn WorkSource>, Failure> {
    if let Some(task) = &args.expand {
        let params: serde_json::Value = serde_json::from_str(&args.params)
            .with_context(|| format!("--params: expected JSON, found {:?}", args.params))
            .or_exit(EXIT_USAGE)?;
        let job = JobSettings::Expand {
            task: task.clone(),
            params,
        };
        return Ok(Box::new(job_items(&[job], host)?));
    }
    if args.config_jobs {
        return Ok(Box::new(job_items(&settings.jobs, host)?));
    }
    let limit = settings.run.max_line_bytes;
    if let Some(task) = &args.task {
        let field = args.field.clone().or_else(|| {
            let plugin = host.plugins.plugin(task.split_once('/')?.0)?;
            let task_name = task.split_once('/')?.1;
            PluginFacts::of(plugin).arguments.remove(task_name)
        });
        let plain = PlainInput {
            task: task.clone(),
            field,
        };
        if args.lines.is_none() && !args.args.is_empty() {
            return Ok(Box::new(ItemsSource::new(plain.items(&args.args))));
        }
        let lines = open_lines(
            args.lines.as_deref(),
            limit,
            progress,
            StdinNotice::PLAIN_LINES,
        )?;
        return Ok(Box::new(PlainLinesSource::new(lines, plain)));
    }
    let lines = open_lines(
        args.input.as_deref(),
        limit,
        progress,
        StdinNotice::JSON_LINES,
    )?;
    Ok(Box::new(lines))
}

/// What a terminal on stdin is told it is read for.
pub(super) struct StdinNotice {
    /// What to type there.
    what: &'static str,
    /// How to give them otherwise.
    instead: &'static str,
}

impl StdinNotice {
    const JSON_LINES: StdinNotice = StdinNotice {
        what: "work items, one JSON object per line",
        instead: "--input FILE",
    };
    const PLAIN_LINES: StdinNotice = StdinNotice {
        what: "one line of text per work item",
        instead: "--lines FILE, or arguments after the task",
    };
}

/// The lines of `path` (`-` or `None`: stdin, with a word when it is a terminal).
pub(super) fn open_lines(
    path: Option<&str>,
    limit: usize,
    progress: bool,
    notice: StdinNotice,
) -> Result<JsonlSource<Box<dyn io::BufRead + Send>>, Failure> {
    match path {
        None | Some("-") => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                eprintln!(
                    "taskhost: reading {}, from stdin (a terminal); end with Ctrl-D, or give \
                     them otherwise ({})",
                    notice.what, notice.instead
                );
            }
            Ok(JsonlSource::new(Box::new(BufReader::new(stdin)), limit))
        }
        Some(path) => {
            let file = File::open(path)
                .with_context(|| format!("opening input {path}"))
                .or_exit(EXIT_USAGE)?;
            // Counting lines costs one quick pass; only worth it for a bar someone sees.
            let lines = (progress && io::stderr().is_terminal())
                .then(|| count_lines(Path::new(path)).ok())
                .flatten();
            let reader: Box<dyn io::BufRead + Send> =
                Box::new(BufReader::with_capacity(256 * 1024, file));
            Ok(JsonlSource::new(reader, limit).with_len_hint(lines))
        }
    }
}

pub(super) fn count_lines(path: &Path) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut lines = 0u64;
    let mut last = b'\n';
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        lines += buffer[..read].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buffer[read - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}

pub(super) fn open_sink(output: &str) -> Result<Box<dyn OutcomeSink>, Failure> {
    if output == "-" {
        let stdout = crate::sink::take_stdout().or_exit(EXIT_USAGE)?;
        return crate::sink::stdout_sink(stdout)
            .context("opening stdout for the outcome records")
            .or_exit(EXIT_USAGE);
    }
    let file = crate::sink::create_output(Path::new(output))
        .and_then(JsonlSink::file)
        .with_context(|| format!("creating output {output}"))
        .or_exit(EXIT_USAGE)?;
    Ok(Box::new(file))
}

/// Work items from the configuration's jobs (or one `--expand`).
pub(super) fn job_items(jobs: &[JobSettings], host: &Host) -> Result<JobsSource, Failure> {
    let mut made = Vec::new();
    for job in jobs {
        match job {
            JobSettings::Expand { task, params } => {
                let Some((plugin_name, job_name)) = task.split_once('/') else {
                    return Err(usage(anyhow::anyhow!(
                        "expand: expected `plugin/job`, found {task:?}"
                    )));
                };
                let Some(plugin) = host.plugins.plugin(plugin_name) else {
                    let loaded: Vec<&str> =
                        host.plugins.plugins().iter().map(|p| p.name()).collect();
                    return Err(usage(anyhow::anyhow!(
                        "expand {task}: no plugin named `{plugin_name}` is loaded{} (loaded: {})",
                        suggestion(plugin_name, loaded.iter().copied()),
                        if loaded.is_empty() {
                            "none".to_owned()
                        } else {
                            loaded.join(", ")
                        }
                    )));
                };
                // The jobs the plugin says it takes (the SDK's `expand_jobs`); a plugin that
                // says nothing gets any job name and may refuse it itself.
                let jobs = PluginFacts::of(plugin).expand_jobs;
                if plugin.can_expand() && !jobs.is_empty() && !jobs.iter().any(|j| j == job_name) {
                    return Err(usage(anyhow::anyhow!(
                        "expand {task}: plugin `{plugin_name}` has no job `{job_name}`{} (its \
                         jobs: {})",
                        suggestion(job_name, jobs.iter().map(String::as_str)),
                        jobs.join(", ")
                    )));
                }
                let expansion =
                    ExpandSource::start(plugin, job_name, params).map_err(|failure| {
                        // The plugin refusing the parameters (or not expanding at all) is a usage
                        // error; a failure while expanding is not.
                        let code = if failure.kind == taskhost_loader::FailureKind::InvalidInput {
                            EXIT_USAGE
                        } else {
                            EXIT_NOT_ALL_OK
                        };
                        Failure {
                            code,
                            error: anyhow::Error::new(failure)
                                .context(format!("expanding {task} with {params}")),
                        }
                    })?;
                made.push(JobItems::Expand(expansion));
            }
            JobSettings::Inputs { task, inputs } => {
                let items: Vec<WorkItem> = (1..)
                    .zip(inputs)
                    .map(|(number, input)| WorkItem {
                        id: format!("{task}#{number}"),
                        task: task.clone(),
                        input: to_raw(input),
                    })
                    .collect();
                made.push(JobItems::Items(items.into_iter()));
            }
        }
    }
    Ok(JobsSource::new(made))
}

pub(super) fn to_raw(value: &serde_json::Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a serialized JSON value is JSON")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_with_or_without_a_final_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        std::fs::write(&path, "a\nb\nc").unwrap();
        assert_eq!(count_lines(&path).unwrap(), 3);
        std::fs::write(&path, "a\nb\n").unwrap();
        assert_eq!(count_lines(&path).unwrap(), 2);
    }
}
