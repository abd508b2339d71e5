//! Runs the scenarios a command line asked for and turns their samples into report tables.

use std::env;
use std::process::{Child, Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;

use crate::scenarios::{self, Contender, IdleFigures, MemoryFigures, Plan, WORKERS};
use crate::stats::Summary;
use crate::table::{figure, row_from, Row, ScenarioReport};
use crate::{external, python};

/// Every scenario: its number in issue 5 and the name `--scenario` takes.
pub const SCENARIOS: [(u8, &str); 9] = [
    (1, "throughput"),
    (2, "round-trip"),
    (3, "many-submitters"),
    (4, "cold-start"),
    (5, "plugin-call"),
    (6, "host-e2e"),
    (7, "memory"),
    (8, "idle"),
    (9, "cluster"),
];

/// The scenario named `name` (its key or its number).
pub fn scenario_by_name(name: &str) -> Result<(u8, &'static str)> {
    SCENARIOS
        .into_iter()
        .find(|(number, key)| *key == name || number.to_string() == name)
        .with_context(|| {
            let names: Vec<_> = SCENARIOS.iter().map(|(_, key)| *key).collect();
            format!(
                "unknown scenario `{name}`, expected one of {} (or 1–9)",
                names.join(", ")
            )
        })
}

/// Runs one scenario under `plan` with `contenders`.
pub fn run_scenario(key: &str, plan: &Plan, contenders: &[Contender]) -> Result<ScenarioReport> {
    let contenders: Vec<Contender> = contenders
        .iter()
        .copied()
        .filter(|contender| contender.runs_in(key))
        .collect();
    let contenders = &contenders[..];
    let mut report = match key {
        "throughput" => throughput(plan, contenders),
        "round-trip" => round_trip(plan, contenders),
        "many-submitters" => many_submitters(plan, contenders),
        "cold-start" => cold_start(plan, contenders),
        "plugin-call" => external::plugin_call(plan),
        "host-e2e" => external::host_end_to_end(plan),
        "memory" => memory(plan, contenders),
        "idle" => idle(plan, contenders),
        "cluster" => crate::cluster::cluster_end_to_end(plan),
        other => bail!("unknown scenario `{other}`"),
    };
    report.compute_ratios();
    Ok(report)
}

/// One row per Rust contender, the floor marked. `measure` takes one round's samples; the rounds
/// go round-robin over the contenders (floor, a, b, ..., floor, a, b, ...), so that a change in
/// the machine's load during the run lands on every contender alike instead of on whoever ran
/// last. A contender that fails is left out of later rounds.
fn rust_rows(
    contenders: &[Contender],
    rounds: usize,
    measure: impl Fn(Contender) -> Result<Vec<f64>>,
) -> Vec<Row> {
    let mut samples: Vec<Result<Vec<f64>>> = contenders.iter().map(|_| Ok(Vec::new())).collect();
    for _ in 0..rounds {
        for (&contender, samples) in contenders.iter().zip(&mut samples) {
            if let Ok(so_far) = samples {
                match measure(contender) {
                    Ok(round) => so_far.extend(round),
                    Err(error) => *samples = Err(error),
                }
            }
        }
    }
    contenders
        .iter()
        .zip(samples)
        .map(|(&contender, samples)| {
            let row = row_from(contender.name(), samples);
            if contender == Contender::Floor {
                row.floor()
            } else {
                row
            }
        })
        .collect()
}

/// Rounds for the scenarios whose samples are single iterations or pools (2 and 4).
const ROUNDS: usize = 5;

/// Starts a scenario's report.
fn scenario(
    number: u8,
    key: &'static str,
    title: &'static str,
    unit: &'static str,
    measures: String,
) -> ScenarioReport {
    eprintln!("scenario {number}: {key}");
    ScenarioReport {
        number,
        key,
        title,
        measures,
        unit,
        show_p99: false,
        rows: Vec::new(),
        notes: Vec::new(),
        skipped: None,
    }
}

fn throughput(plan: &Plan, contenders: &[Contender]) -> ScenarioReport {
    let mut report = scenario(
        1,
        "throughput",
        "Throughput",
        "ns per task",
        format!(
            "{} trivial tasks submitted from one thread to {WORKERS} workers, then all waited for; \
             {} repetitions, each on a fresh pool after a warm-up, taken round-robin over the \
             contenders; one sample per repetition (elapsed / tasks).",
            plan.throughput_tasks, plan.throughput_reps
        ),
    );
    report.rows = rust_rows(contenders, plan.throughput_reps, |contender| {
        scenarios::throughput(contender, plan.throughput_tasks, 1)
    });
    let python_arguments = [
        ("tasks", plan.python_throughput_tasks.to_string()),
        ("reps", plan.python_reps.to_string()),
        ("workers", WORKERS.to_string()),
    ];
    report.rows.push(
        row_from(
            python::NAME,
            python::samples("throughput", &python_arguments),
        )
        .with_extra(format!(
            "{} tasks per repetition",
            plan.python_throughput_tasks
        )),
    );
    report.notes.push(
        "Spawners (floor, rayon, threadpool, executor execute) count completions on a latch; \
         submitters (handle floor, executor submit, tokio, blocking, Python) keep one handle per \
         task and wait on each."
            .to_owned(),
    );
    note_against_handle_floor(&mut report);
    if let Some(note) = kept_heap_note(plan, contenders) {
        report.notes.push(note);
    }
    report.note_unsteady_floor(UNSTEADY_FLOOR);
    report
}

/// Notes executor `submit` against the handle floor: what a future per task costs beyond the
/// least any handle costs in this harness ([`crate::pools::HandleFloor`]).
fn note_against_handle_floor(report: &mut ScenarioReport) {
    report.note_ratio_to(
        Contender::ExecutorSubmit.name(),
        Contender::HandleFloor.name(),
        "the floor plus the least a result handle per task costs: an Arc'd OnceLock slot that \
         wakes a parked waiter; not a target",
    );
}

/// The floor's max / min above which scenarios 1 and 3 say the machine changed speed while
/// they ran ([`ScenarioReport::note_unsteady_floor`]).
const UNSTEADY_FLOOR: f64 = 2.0;

/// glibc's `M_TOP_PAD` for [`kept_heap_note`]'s children: keep up to 512 MiB of freed heap at
/// its top instead of giving it back to the kernel.
const KEPT_HEAP_TOP_PAD: &str = "536870912";

/// Scenario 1 again for the floor and the contenders that return a handle per task, each in a
/// child process whose glibc keeps freed heap (`MALLOC_TOP_PAD_`). A million live handles grow
/// the heap by their size; once they are dropped glibc trims it, and the next batch faults it
/// in again (page faults, zeroed pages, and TLB shootdowns that interrupt the workers). The
/// floor frees each task as it runs and never grows the heap. This note shows how much of the
/// handle-returning contenders' gap above is that cycle; it is not a target figure.
fn kept_heap_note(plan: &Plan, contenders: &[Contender]) -> Option<String> {
    let measured: Vec<Contender> = [
        Contender::Floor,
        Contender::HandleFloor,
        Contender::ExecutorSubmit,
        Contender::Tokio,
        Contender::Blocking,
    ]
    .into_iter()
    .filter(|contender| contenders.contains(contender))
    .collect();
    if measured.len() < 2 {
        return None;
    }
    eprintln!("  the same with glibc keeping freed heap (child processes)");
    let rounds = if plan.quick { 2 } else { 3 };
    let reps = plan.throughput_reps.div_ceil(rounds).max(2);
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); measured.len()];
    for _ in 0..rounds {
        for (contender, samples) in measured.iter().zip(&mut samples) {
            let arguments = [
                "throughput".to_owned(),
                contender.key().to_owned(),
                plan.throughput_tasks.to_string(),
                // One more: the first batch of a fresh process grows the heap, and is dropped.
                (reps + 1).to_string(),
            ];
            let round = spawn_child_with_env(&arguments, &[("MALLOC_TOP_PAD_", KEPT_HEAP_TOP_PAD)])
                .and_then(child_output::<Vec<f64>>);
            match round {
                Ok(round) => samples.extend(round.into_iter().skip(1)),
                Err(error) => {
                    eprintln!(
                        "  kept-heap child for {} failed: {error:#}",
                        contender.name()
                    );
                    return None;
                }
            }
        }
    }
    let medians: Vec<f64> = samples
        .iter()
        .map(|samples| Summary::of(samples).map_or(f64::NAN, |summary| summary.median))
        .collect();
    let floor = medians[0];
    let others: Vec<String> = measured
        .iter()
        .zip(&medians)
        .skip(1)
        .map(|(contender, median)| {
            format!(
                "{} {} ns ({:.2}×)",
                contender.name(),
                figure(*median),
                median / floor
            )
        })
        .collect();
    Some(format!(
        "The same scenario in child processes whose glibc keeps up to 512 MiB of freed heap \
         (`MALLOC_TOP_PAD_={KEPT_HEAP_TOP_PAD}`; {rounds} rounds of {reps} repetitions, after one \
         that grows the heap): floor {} \
         ns, {}. A batch's live handles grow the heap by their size, glibc gives it back once \
         they are dropped, and the next batch faults it in again; the floor never holds its \
         tasks. Not a target figure: it shows how much of the handle-returning contenders' gap \
         is that cycle.",
        figure(floor),
        others.join(", ")
    ))
}

fn round_trip(plan: &Plan, contenders: &[Contender]) -> ScenarioReport {
    let mut report = scenario(
        2,
        "round-trip",
        "Round trip",
        "ns per iteration",
        format!(
            "Submit one trivial task and wait for its result, {} times in {ROUNDS} rounds taken \
             round-robin over the contenders, each on a fresh pool after a warm-up that starts \
             all its workers (a pool that starts them on demand would otherwise run every round \
             trip on one, and a lone worker the scheduler puts on the waiter's CPU costs ~10 µs a \
             trip); every iteration is a sample, so min and max are single iterations.",
            plan.round_trips
        ),
    );
    report.show_p99 = true;
    report.rows = rust_rows(contenders, ROUNDS, |contender| {
        scenarios::round_trip(contender, plan.round_trips.div_ceil(ROUNDS))
    });
    let python_arguments = [
        ("tasks", plan.python_round_trips.to_string()),
        ("reps", "1".to_owned()),
        ("workers", WORKERS.to_string()),
    ];
    report.rows.push(
        row_from(
            python::NAME,
            python::samples("round-trip", &python_arguments),
        )
        .with_extra(format!("{} iterations", plan.python_round_trips)),
    );
    report
        .notes
        .push("Spawners answer over one reused bounded(1) crossbeam channel.".to_owned());
    report
}

fn many_submitters(plan: &Plan, contenders: &[Contender]) -> ScenarioReport {
    let mut report = scenario(
        3,
        "many-submitters",
        "Many submitters",
        "ns per task",
        format!(
            "{} threads each submit {} trivial tasks and wait for their own, {WORKERS} workers; \
             {} repetitions taken round-robin over the contenders, one sample per repetition \
             (elapsed / all tasks).",
            plan.submitters, plan.tasks_per_submitter, plan.many_submitters_reps
        ),
    );
    report.rows = rust_rows(contenders, plan.many_submitters_reps, |contender| {
        scenarios::many_submitters(contender, plan.submitters, plan.tasks_per_submitter, 1)
    });
    let python_arguments = [
        ("tasks", plan.python_tasks_per_submitter.to_string()),
        ("reps", plan.python_reps.to_string()),
        ("workers", WORKERS.to_string()),
        ("submitters", plan.submitters.to_string()),
    ];
    report.rows.push(
        row_from(
            python::NAME,
            python::samples("many-submitters", &python_arguments),
        )
        .with_extra(format!(
            "{} tasks per submitter",
            plan.python_tasks_per_submitter
        )),
    );
    note_against_handle_floor(&mut report);
    report.note_unsteady_floor(UNSTEADY_FLOOR);
    report
}

fn cold_start(plan: &Plan, contenders: &[Contender]) -> ScenarioReport {
    let mut report = scenario(
        4,
        "cold-start",
        "Cold start",
        "ns",
        format!(
            "Build a pool of {WORKERS} workers and get the first task's result; {} pools in \
             {ROUNDS} rounds taken round-robin over the contenders, one sample each; tearing the \
             pool down is not timed.",
            plan.cold_starts
        ),
    );
    report.rows = rust_rows(contenders, ROUNDS, |contender| {
        let pools = plan.cold_starts.div_ceil(ROUNDS);
        if scenarios::needs_fresh_process(contender) {
            (0..pools)
                .map(|_| {
                    spawn_child(&["cold-start".to_owned(), contender.key().to_owned()])
                        .and_then(child_output::<f64>)
                })
                .collect()
        } else {
            scenarios::cold_start(contender, pools)
        }
    });
    for row in &mut report.rows {
        if row.summary.is_some() && row.contender == Contender::Blocking.name() {
            row.extra =
                Some("global pool: its first use, in a fresh process per sample".to_owned());
        }
    }
    let python_arguments = [
        ("reps", plan.python_cold_starts.to_string()),
        ("workers", WORKERS.to_string()),
    ];
    report.rows.push(
        row_from(
            python::NAME,
            python::samples("cold-start", &python_arguments),
        )
        .with_extra(format!("{} pools", plan.python_cold_starts)),
    );
    report
}

/// Starts this very binary with the hidden `__child` command.
fn spawn_child(arguments: &[String]) -> Result<Child> {
    spawn_child_with_env(arguments, &[])
}

/// [`spawn_child`] with extra environment variables.
fn spawn_child_with_env(arguments: &[String], vars: &[(&str, &str)]) -> Result<Child> {
    let this_binary = env::current_exe().context("finding this benchmark's own binary")?;
    Command::new(this_binary)
        .arg("__child")
        .args(arguments)
        .envs(vars.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting a child benchmark process")
}

/// Waits for a child started by [`spawn_child`] and parses the JSON it printed.
fn child_output<T: DeserializeOwned>(child: Child) -> Result<T> {
    let output = child
        .wait_with_output()
        .context("waiting for a child benchmark process")?;
    if !output.status.success() {
        bail!("the child benchmark process failed with {}", output.status);
    }
    serde_json::from_slice(&output.stdout).context("parsing a child benchmark process's JSON")
}

fn memory(plan: &Plan, contenders: &[Contender]) -> ScenarioReport {
    let mut report = scenario(
        7,
        "memory",
        "Memory",
        "bytes per queued task",
        format!(
            "In a fresh child process: block all {WORKERS} workers, queue {} trivial tasks \
             (keeping their handles where the pool returns any), and divide the growth of VmRSS \
             by the task count.",
            plan.memory_tasks
        ),
    );
    let memory_row = |name: &str, figures: Result<MemoryFigures>| match figures {
        Ok(figures) => {
            let row = row_from(name, Ok(vec![figures.bytes_per_task()]))
                .with_peak_rss_kib(figures.hwm_after_kib);
            let peak_growth_mib =
                figures.hwm_after_kib.saturating_sub(figures.hwm_before_kib) as f64 / 1024.0;
            row.with_extra(format!(
                "{} tasks; peak RSS {} MiB (+{} MiB)",
                figures.tasks,
                figure(figures.hwm_after_kib as f64 / 1024.0),
                figure(peak_growth_mib)
            ))
        }
        Err(error) => row_from(name, Err(error)),
    };
    for &contender in contenders {
        let arguments = [
            "memory".to_owned(),
            contender.key().to_owned(),
            plan.memory_tasks.to_string(),
        ];
        let figures = spawn_child(&arguments).and_then(child_output::<MemoryFigures>);
        let row = memory_row(contender.name(), figures);
        report.rows.push(if contender == Contender::Floor {
            row.floor()
        } else {
            row
        });
    }
    let python_arguments = [
        "--tasks".to_owned(),
        plan.python_memory_tasks.to_string(),
        "--workers".to_owned(),
        WORKERS.to_string(),
    ];
    report.rows.push(memory_row(
        python::NAME,
        python::run("memory", &python_arguments),
    ));
    report.notes.push(format!(
        "One process per contender, so min = median = max. The queued closure itself is {} bytes \
         for spawners (index + latch) and 8 bytes for submitters (index); Python queues a \
         `Future` and a work item per task.",
        std::mem::size_of::<(u64, std::sync::Arc<()>)>()
    ));
    report
}

fn idle(plan: &Plan, contenders: &[Contender]) -> ScenarioReport {
    let mut report = scenario(
        8,
        "idle",
        "Idle",
        "µs of CPU",
        format!(
            "A child process starts a pool, makes all {WORKERS} workers exist, then sleeps {} s; \
             the sample is the CPU time all its threads used in those seconds (per-thread \
             schedstat). The floor is a process with no pool. {} processes per contender, all \
             running at once.",
            plan.idle_seconds, plan.idle_reps
        ),
    );
    let seconds = plan.idle_seconds.to_string();
    let mut entries: Vec<(String, bool, Vec<Result<Child>>)> = Vec::new();
    let spawn_reps = |key: &str| {
        (0..plan.idle_reps)
            .map(|_| spawn_child(&["idle".to_owned(), key.to_owned(), seconds.clone()]))
            .collect::<Vec<_>>()
    };
    entries.push((
        "no pool (a bare process)".to_owned(),
        true,
        spawn_reps("none"),
    ));
    for &contender in contenders {
        entries.push((
            contender.name().to_owned(),
            false,
            spawn_reps(contender.key()),
        ));
    }
    let python_children: Vec<_> = (0..plan.idle_reps)
        .map(|_| {
            let seconds = seconds.clone();
            std::thread::spawn(move || {
                python::run::<IdleFigures>("idle", &["--seconds".to_owned(), seconds])
            })
        })
        .collect();
    for (name, is_floor, children) in entries {
        let figures: Result<Vec<IdleFigures>> = children
            .into_iter()
            .map(|child| child.and_then(child_output::<IdleFigures>))
            .collect();
        let row = idle_row(&name, figures);
        report.rows.push(if is_floor { row.floor() } else { row });
    }
    let python_figures: Result<Vec<IdleFigures>> = python_children
        .into_iter()
        .map(|thread| {
            thread
                .join()
                .unwrap_or_else(|_| bail!("the python idle thread panicked"))
        })
        .collect();
    report.rows.push(idle_row(python::NAME, python_figures));
    report.notes.push(
        "Clock ticks (10 ms) from /proc/self/stat are in the notes as a cross-check that also \
         counts threads which exited during the window. Ratios to a floor near zero are noise: \
         compare the absolute microseconds."
            .to_owned(),
    );
    report
}

/// A row of the idle table.
fn idle_row(name: &str, figures: Result<Vec<IdleFigures>>) -> Row {
    match figures {
        Ok(figures) => {
            let micros = figures
                .iter()
                .map(|figure| figure.cpu_ns as f64 / 1_000.0)
                .collect();
            let tick_millis: Vec<String> = figures
                .iter()
                .map(|figure| figure_ms(figure.tick_cpu_ns))
                .collect();
            let threads = figures
                .iter()
                .map(|figure| figure.threads)
                .max()
                .unwrap_or(0);
            row_from(name, Ok(micros)).with_extra(format!(
                "ticks: {} ms; {threads} threads",
                tick_millis.join(", ")
            ))
        }
        Err(error) => row_from(name, Err(error)),
    }
}

fn figure_ms(nanos: u64) -> String {
    format!("{}", nanos / 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handle_floor_runs_only_in_the_batch_scenarios() {
        let scenarios_of = |contender: Contender| {
            SCENARIOS
                .iter()
                .filter(|(_, scenario)| contender.runs_in(scenario))
                .count()
        };
        assert_eq!(scenarios_of(Contender::ExecutorSubmit), SCENARIOS.len());
        assert!(Contender::HandleFloor.runs_in("throughput"));
        assert!(Contender::HandleFloor.runs_in("many-submitters"));
        assert!(Contender::HandleFloor.runs_in("memory"));
        assert_eq!(scenarios_of(Contender::HandleFloor), 3);
    }
}
