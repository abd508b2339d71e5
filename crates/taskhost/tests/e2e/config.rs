//! Configuration: sources, `config show`, `config check` and every error message.

use crate::util::Dir;

#[test]
fn env_override_wins_over_file() {
    let dir = Dir::with_config("[pools.io]\nmax_workers = 3\n");
    let shown = dir.run(&["config", "show"], "");
    shown.assert_code(0);
    assert!(
        shown.stdout.contains("[pools.io]\nmax_workers = 3\n"),
        "{}",
        shown.stdout
    );

    let shown = dir.run_command(
        dir.command()
            .env("TASKHOST_POOLS__IO__MAX_WORKERS", "7")
            .args(["config", "show"]),
        "",
    );
    shown.assert_code(0);
    assert!(
        shown.stdout.contains("[pools.io]\nmax_workers = 7\n"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("then the environment"),
        "{}",
        shown.stdout
    );
}

#[test]
fn taskhost_config_env_names_the_file() {
    let dir = Dir::new();
    let other = dir.write("other.toml", "[pools.cpu]\nmax_workers = 5\n");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_taskhost"));
    command
        .current_dir(dir.path())
        .env("TASKHOST_CONFIG", &other)
        .args(["config", "show"]);
    let shown = dir.run_command(&mut command, "");
    shown.assert_code(0);
    assert!(
        shown.stdout.contains("[pools.cpu]\nmax_workers = 5\n"),
        "{}",
        shown.stdout
    );
}

/// Each bad file, the key the message must name and a phrase it must contain.
const BAD_CONFIGS: &[(&str, &str, &str)] = &[
    (
        "[pools.io]\nmax_wrokers = 3\n",
        "pools.io.max_wrokers",
        "unknown field",
    ),
    ("colour = \"red\"\n", "colour", "unknown field"),
    (
        "[pools.io]\nmax_workers = \"many\"\n",
        "pools.io.max_workers",
        "wrong type",
    ),
    (
        "[pools.io]\nidle_timeout = \"30 s\"\n",
        "pools.io.idle_timeout",
        "without the space",
    ),
    (
        "[pools.io]\nidle_timeout = \"30\"\n",
        "pools.io.idle_timeout",
        "unit is missing",
    ),
    (
        "[pools.io]\nmax_workers = 0\n",
        "pools.io.max_workers",
        "found 0",
    ),
    (
        "[[routes]]\ntask = \"x/*\"\npool = \"gpu\"\n",
        "routes[0].pool",
        "no pool named \"gpu\"",
    ),
    (
        "[pools.io]\nwhen_full = \"reject\"\n",
        "pools.io.when_full",
        "conflicts with queue_capacity",
    ),
    (
        "[pools.io]\nwhen_full = \"sometimes\"\n",
        "pools.io.when_full",
        "expected one of",
    ),
    (
        "[logging]\nformat = \"xml\"\n",
        "logging.format",
        "expected one of",
    ),
    (
        "[[routes]]\ntask = \"x/[\"\n",
        "routes[0].task",
        "invalid glob",
    ),
];

#[test]
fn each_config_error_names_the_file_and_key() {
    let dir = Dir::new();
    for (index, (text, key, phrase)) in BAD_CONFIGS.iter().enumerate() {
        let name = format!("bad{index}.toml");
        let file = dir.write(&name, text);
        let checked = dir.run(&["config", "check", file.to_str().unwrap()], "");
        checked.assert_code(2);
        let message = checked.stderr.trim();
        assert!(
            message.contains(&name),
            "{text:?}: no file name in {message:?}"
        );
        assert!(
            message.contains(&format!("key `{key}`")),
            "{text:?}: no key in {message:?}"
        );
        assert!(
            message.contains(phrase),
            "{text:?}: no {phrase:?} in {message:?}"
        );
    }
}

#[test]
fn an_error_names_the_line() {
    let dir = Dir::new();
    let file = dir.write(
        "lines.toml",
        "# comment\n[pools.cpu]\nmax_workers = 2\nidle_timeout = \"1 m\"\n",
    );
    let checked = dir.run(&["config", "check", file.to_str().unwrap()], "");
    checked.assert_code(2);
    assert!(
        checked
            .stderr
            .contains("lines.toml:4: key `pools.cpu.idle_timeout`"),
        "{}",
        checked.stderr
    );
}

#[test]
fn an_env_error_names_the_variable() {
    let dir = Dir::new();
    let checked = dir.run_command(
        dir.command()
            .env("TASKHOST_POOLS__CPU__IDLE_TIMEOUT", "30 s")
            .args(["run"]),
        "",
    );
    checked.assert_code(2);
    assert!(
        checked
            .stderr
            .contains("environment variable TASKHOST_POOLS__CPU__IDLE_TIMEOUT"),
        "{}",
        checked.stderr
    );
}

#[test]
fn a_good_file_checks_ok() {
    let dir = Dir::new();
    let checked = dir.run(&["config", "check"], "");
    checked.assert_code(0);
    assert!(checked.stdout.contains(": ok ("), "{}", checked.stdout);
}

#[test]
fn a_route_that_matches_nothing_is_a_warning() {
    let dir = Dir::with_config("[[routes]]\ntask = \"nothing/*\"\npool = \"cpu\"\n");
    let checked = dir.run(&["config", "check"], "");
    checked.assert_code(0);
    assert!(
        checked
            .stderr
            .contains("route `nothing/*` matches no loaded task"),
        "{}",
        checked.stderr
    );
}

#[test]
fn a_missing_config_file_is_a_usage_error() {
    let dir = Dir::new();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_taskhost"));
    command
        .current_dir(dir.path())
        .env_remove("TASKHOST_CONFIG")
        .args(["--config", "does-not-exist.toml", "config", "show"]);
    let run = dir.run_command(&mut command, "");
    run.assert_code(2);
    assert!(run.stderr.contains("does-not-exist.toml"), "{}", run.stderr);
}

#[test]
fn a_bad_flag_is_a_usage_error() {
    Dir::new()
        .run(&["run", "--no-such-flag"], "")
        .assert_code(2);
}

#[test]
fn every_wrong_type_in_a_file_is_reported_at_once_with_line_and_key() {
    let dir = Dir::new();
    let file = dir.write(
        "types.toml",
        "[run]\nmax_in_flight = \"many\"\n\n[pools.io]\nmax_workers = \"lots\"\nmax_tasks_per_worker \
         = \"often\"\n\n[[routes]]\ntask = \"x/*\"\nretries = \"twice\"\n",
    );
    let checked = dir.run(&["config", "check", file.to_str().unwrap()], "");
    checked.assert_code(2);
    let message = checked.stderr.trim();
    let name = file.display();
    let lines: Vec<&str> = message.lines().collect();
    assert_eq!(lines.len(), 5, "{message}");
    assert_eq!(
        lines[0],
        "taskhost: error: invalid configuration (4 problems):"
    );
    // In the order of the file.
    for (line, expected) in lines[1..].iter().zip([
        format!("{name}:2: key `run.max_in_flight`: wrong type: expected an integer, found string \"many\""),
        format!("{name}:5: key `pools.io.max_workers`: wrong type: expected an integer, found string \"lots\""),
        format!("{name}:6: key `pools.io.max_tasks_per_worker`: wrong type: expected an integer, found string \"often\""),
        format!("{name}:10: key `routes[0].retries`: wrong type: expected an integer, found string \"twice\""),
    ]) {
        assert_eq!(line.trim(), expected, "{message}");
    }
}

#[test]
fn an_integer_too_large_for_toml_names_the_line_and_key() {
    let dir = Dir::new();
    let file = dir.write(
        "huge.toml",
        "[run]\nmax_in_flight = 8\nmax_line_bytes = 18446744073709551615\n",
    );
    let checked = dir.run(&["config", "check", file.to_str().unwrap()], "");
    checked.assert_code(2);
    assert_eq!(
        checked.stderr.trim(),
        format!(
            "taskhost: error: invalid configuration: {}:3: key `run.max_line_bytes`: expected an \
             integer of at most 9223372036854775807 (the largest TOML allows), found \
             18446744073709551615",
            file.display()
        )
    );
}

/// The TOML parser stops at the first integer too large for it, and the `config` crate took
/// `true` as 1 and `1.5` as 2: the file's other problems went unreported, those two unseen.
#[test]
fn every_integer_too_large_and_every_count_of_the_wrong_type_is_reported_at_once() {
    let dir = Dir::new();
    let file = dir.write(
        "counts.toml",
        "[run]\nmax_line_bytes = 18446744073709551615\nmax_in_flight = 1.5\n\n[pools.io]\n\
         max_workers = true\nqueue_capacity = 99999999999999999999\n",
    );
    let name = file.display();
    let expected = format!(
        "taskhost: error: invalid configuration (4 problems):\n  \
         {name}:2: key `run.max_line_bytes`: expected an integer of at most 9223372036854775807 \
         (the largest TOML allows), found 18446744073709551615\n  \
         {name}:3: key `run.max_in_flight`: wrong type: expected an integer, found floating point \
         `1.5`\n  \
         {name}:6: key `pools.io.max_workers`: wrong type: expected an integer, found boolean \
         `true`\n  \
         {name}:7: key `pools.io.queue_capacity`: expected an integer of at most \
         9223372036854775807 (the largest TOML allows), found 99999999999999999999"
    );
    let checked = dir.run(&["config", "check", file.to_str().unwrap()], "");
    checked.assert_code(2);
    assert_eq!(checked.stderr.trim(), expected);
    // `run` stops before any item with the same message; so does a variable's integer too
    // large, shown as written (it was read as a float and clamped: `found 9223372036854775807`).
    let run = dir.run(
        &["run", "--config", file.to_str().unwrap()],
        "{\"id\":\"a\",\"task\":\"testkit/echo\",\"input\":1}\n",
    );
    run.assert_code(2);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert_eq!(run.stderr.trim(), expected);
    let run = dir.run_command(
        dir.command()
            .env("TASKHOST_RUN__MAX_IN_FLIGHT", "18446744073709551615")
            .arg("run"),
        "",
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains(
            "environment variable TASKHOST_RUN__MAX_IN_FLIGHT: key `run.max_in_flight`: expected \
             an integer of at most 9223372036854775807, found 18446744073709551615"
        ),
        "{}",
        run.stderr
    );
}

/// Values `config check` used to accept that then crashed the host or exhausted the machine,
/// each with the limit its error must name.
const ABSURD_COUNTS: &[(&str, &str)] = &[
    (
        "[pools.io]\nqueue_capacity = 9223372036854775807\n",
        "key `pools.io.queue_capacity`: expected an integer of at most 1048576",
    ),
    (
        "[pools.io]\nqueue_capacity = 1000000000000\n",
        "key `pools.io.queue_capacity`: expected an integer of at most 1048576",
    ),
    (
        "[pools.default]\nmax_workers = 1000000000\n",
        "key `pools.default.max_workers`: expected an integer of at most 1024 (each worker is a thread)",
    ),
    (
        "[run]\nmax_in_flight = 9223372036854775807\n",
        "key `run.max_in_flight`: expected an integer of at most 1048576",
    ),
    (
        "[run]\nmax_line_bytes = 9223372036854775807\n",
        "key `run.max_line_bytes`: expected an integer of at most 1073741824",
    ),
];

#[test]
fn absurd_counts_are_refused_naming_the_limit() {
    let dir = Dir::new();
    for (index, (text, expected)) in ABSURD_COUNTS.iter().enumerate() {
        let file = dir.write(&format!("absurd{index}.toml"), text);
        let checked = dir.run(&["config", "check", file.to_str().unwrap()], "");
        checked.assert_code(2);
        assert!(
            checked
                .stderr
                .contains(&format!("{}:2: {expected}", file.display())),
            "{text:?}: {}",
            checked.stderr
        );
        // `run` stops before any item, with the same message (it used to panic, exit 101).
        let run = dir.run(
            &["run", "--config", file.to_str().unwrap()],
            "{\"id\":\"a\",\"task\":\"testkit/echo\",\"input\":1}\n",
        );
        run.assert_code(2);
        assert!(run.stdout.is_empty(), "{text:?}: {}", run.stdout);
        assert!(run.stderr.contains(expected), "{text:?}: {}", run.stderr);
    }
}
