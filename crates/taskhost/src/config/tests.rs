//! The configuration's tests: every source alone and merged, every check of the settings,
//! the blame on a file, line or variable, and `config show`'s round trip.

use std::time::Duration;

use super::settings::{JobSettings, WhenFull};
use super::*;

fn env(vars: &[(&str, &str)]) -> Vec<(String, String)> {
    vars.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn load_file(text: &str) -> Result<Loaded, ConfigError> {
    load_from(
        EMBEDDED_DEFAULT,
        Some(("my.toml".to_owned(), text.to_owned())),
        &[],
    )
}

/// The error of the embedded default with `vars` as the environment.
fn env_error(vars: &[(&str, &str)]) -> ConfigError {
    load_from(EMBEDDED_DEFAULT, None, &env(vars)).unwrap_err()
}

fn issues(text: &str) -> Vec<String> {
    load_file(text)
        .unwrap_err()
        .issues()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_embedded_default_is_valid() {
    let loaded = load_from(EMBEDDED_DEFAULT, None, &[]).unwrap();
    let settings = loaded.settings;
    assert!(settings.pools.contains_key("default"));
    assert!(settings.pools.contains_key("io"));
    assert_eq!(settings.pools["cpu"].max_workers, 2);
    assert_eq!(settings.routes[0].pool, "io");
    assert!(!settings.jobs.is_empty());
}

#[test]
fn a_file_overrides_the_default_and_env_overrides_the_file() {
    let file = "[pools.cpu]\nmax_workers = 3\nidle_timeout = \"250ms\"\n";
    let loaded = load_from(
        EMBEDDED_DEFAULT,
        Some(("my.toml".to_owned(), file.to_owned())),
        &env(&[
            ("TASKHOST_POOLS__CPU__MAX_WORKERS", "7"),
            ("TASKHOST_CONFIG", "ignored.toml"),
            ("TASKHOST_TEST_PLUGIN_DIR", "ignored"),
        ]),
    )
    .unwrap();
    let cpu = &loaded.settings.pools["cpu"];
    assert_eq!(cpu.max_workers, 7);
    assert_eq!(cpu.idle_timeout, Some(Duration::from_millis(250)));
    // Pools the file does not mention stay as the default has them.
    assert!(loaded.settings.pools.contains_key("io"));
}

#[test]
fn an_unknown_key_names_the_file_line_and_key() {
    let found = issues("[pools.cpu]\nmax_workers = 2\nmax_wrokers = 3\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("my.toml:3: key `pools.cpu.max_wrokers`: unknown field"),
        "{found:?}"
    );
}

#[test]
fn an_unknown_top_level_key_is_an_error() {
    let found = issues("colour = \"red\"\n");
    assert!(
        found[0].starts_with("my.toml:1: key `colour`: unknown field"),
        "{found:?}"
    );
}

#[test]
fn a_wrong_type_names_the_key() {
    let found = issues("[pools.cpu]\nmax_workers = \"many\"\n");
    assert!(
        found[0].contains("key `pools.cpu.max_workers`"),
        "{found:?}"
    );
    assert!(found[0].contains("my.toml:2"), "{found:?}");
}

#[test]
fn a_spaced_duration_is_an_error_that_says_so() {
    let found = issues("[pools.io]\nidle_timeout = \"30 s\"\n");
    assert!(
        found[0].starts_with("my.toml:2: key `pools.io.idle_timeout`"),
        "{found:?}"
    );
    assert!(found[0].contains("without the space"), "{found:?}");
}

#[test]
fn zero_workers_is_an_error() {
    let found = issues("[pools.cpu]\nmax_workers = 0\n");
    assert!(
        found[0].contains("key `pools.cpu.max_workers`"),
        "{found:?}"
    );
    assert!(found[0].contains("found 0"), "{found:?}");
}

#[test]
fn a_route_to_a_missing_pool_is_an_error() {
    let found = issues("[[routes]]\ntask = \"x/*\"\npool = \"gpu\"\n");
    assert!(
        found[0].starts_with("my.toml:3: key `routes[0].pool`"),
        "{found:?}"
    );
    assert!(found[0].contains("no pool named \"gpu\""), "{found:?}");
}

#[test]
fn conflicting_settings_are_errors() {
    let found = issues("[pools.io]\nwhen_full = \"reject\"\n");
    assert!(
        found[0].contains("conflicts with queue_capacity = 0"),
        "{found:?}"
    );
    let found = issues("[[routes]]\ntask = \"x/*\"\nbackoff = \"2s\"\nmax_backoff = \"1s\"\n");
    assert!(found[0].contains("routes[0].max_backoff"), "{found:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let found = issues("[pools.cpu]\nmax_workers = 0\nidle_timeout = \"soon\"\n");
    assert_eq!(found.len(), 2, "{found:?}");
}

#[test]
fn an_env_error_names_the_variable() {
    let error = load_from(
        EMBEDDED_DEFAULT,
        None,
        &env(&[("TASKHOST_POOLS__CPU__IDLE_TIMEOUT", "30 s")]),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("environment variable TASKHOST_POOLS__CPU__IDLE_TIMEOUT"),
        "{text}"
    );
    let error = load_from(
        EMBEDDED_DEFAULT,
        None,
        &env(&[("TASKHOST_POOLS__CPU__MAX_WROKERS", "3")]),
    )
    .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("TASKHOST_POOLS__CPU__MAX_WROKERS"), "{text}");
    assert!(text.contains("unknown field"), "{text}");
}

#[test]
fn invalid_toml_names_the_file() {
    let found = issues("[pools.cpu\n");
    assert!(found[0].starts_with("my.toml"), "{found:?}");
    assert!(found[0].contains("not valid TOML"), "{found:?}");
}

#[test]
fn when_full_and_jobs_are_typed() {
    let loaded = load_file(
        "[pools.io]\nqueue_capacity = 4\nwhen_full = \"caller-runs\"\n\
         [[jobs]]\ntask = \"primes/count\"\ninputs = [{ n = 10 }]\n",
    )
    .unwrap();
    assert_eq!(loaded.settings.pools["io"].when_full, WhenFull::CallerRuns);
    assert!(matches!(
        loaded.settings.jobs.last(),
        Some(JobSettings::Inputs { inputs, .. }) if inputs.len() == 1
    ));
}

#[test]
fn show_round_trips() {
    let loaded = load_from(EMBEDDED_DEFAULT, None, &[]).unwrap();
    let raw = settings::to_raw(&loaded.settings);
    let text = toml::to_string(&raw).unwrap();
    let again = load_from(&text, None, &[]).unwrap();
    assert_eq!(
        again.settings.pools["cpu"].max_workers,
        loaded.settings.pools["cpu"].max_workers
    );
    assert_eq!(again.settings.routes.len(), loaded.settings.routes.len());
}

const PIN: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

#[test]
fn pins_and_require_pins_are_read_and_normalised() {
    let loaded = load_file(&format!(
        "[plugins]\nrequire_pins = true\n\n[plugins.pins]\nprimes = \"{}\"\ntestkit = \"{PIN}\"\n",
        PIN.to_uppercase().replace("SHA256:", "sha256:")
    ))
    .unwrap();
    let plugins = &loaded.settings.plugins;
    assert!(plugins.require_pins);
    assert_eq!(plugins.pins.len(), 2);
    assert_eq!(plugins.pins["primes"], PIN);
    assert_eq!(plugins.pins["testkit"], PIN);
    // The default: no pins, not required.
    let loaded = load_from(EMBEDDED_DEFAULT, None, &[]).unwrap();
    assert!(!loaded.settings.plugins.require_pins);
    assert!(loaded.settings.plugins.pins.is_empty());
}

#[test]
fn a_bad_pin_names_the_file_line_and_key() {
    let found = issues("[plugins.pins]\nprimes = \"sha256:abc\"\nchecksum = \"md5:x\"\n");
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found.iter().any(|f| f.starts_with(
            "my.toml:2: key `plugins.pins.primes`: expected \"sha256:\" and 64 hex digits, found 3"
        )),
        "{found:?}"
    );
    assert!(
        found.iter().any(|f| f.starts_with(
            "my.toml:3: key `plugins.pins.checksum`: expected \"sha256:<64 hex digits>\""
        )),
        "{found:?}"
    );
    let found = issues("[plugins]\nrequire_pins = \"maybe\"\n");
    assert!(
        found[0].starts_with("my.toml:2: key `plugins.require_pins`: wrong type"),
        "{found:?}"
    );
}

#[test]
fn pins_come_from_the_environment_too() {
    let loaded = load_from(
        EMBEDDED_DEFAULT,
        None,
        &env(&[
            ("TASKHOST_PLUGINS__REQUIRE_PINS", "true"),
            ("TASKHOST_PLUGINS__PINS__PRIMES", PIN),
        ]),
    )
    .unwrap();
    assert!(loaded.settings.plugins.require_pins);
    assert_eq!(loaded.settings.plugins.pins["primes"], PIN);
}

#[test]
fn show_round_trips_pins() {
    let loaded = load_file(&format!(
        "[plugins]\nrequire_pins = true\n[plugins.pins]\nprimes = \"{PIN}\"\n"
    ))
    .unwrap();
    let text = toml::to_string(&settings::to_raw(&loaded.settings)).unwrap();
    assert!(text.contains("require_pins = true"), "{text}");
    let again = load_from(&text, None, &[]).unwrap();
    assert!(again.settings.plugins.require_pins);
    assert_eq!(again.settings.plugins.pins, loaded.settings.plugins.pins);
}

fn dirs_of(loaded: &Loaded) -> Vec<String> {
    loaded
        .settings
        .plugins
        .dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect()
}

#[test]
fn no_plugin_folder_comes_from_the_working_directory_by_default() {
    let home = load_from(EMBEDDED_DEFAULT, None, &env(&[("HOME", "/home/ann")])).unwrap();
    assert_eq!(dirs_of(&home), ["/home/ann/.local/share/taskhost/plugins"]);
    let xdg = load_from(
        EMBEDDED_DEFAULT,
        None,
        &env(&[("HOME", "/home/ann"), ("XDG_DATA_HOME", "/data/ann")]),
    )
    .unwrap();
    assert_eq!(dirs_of(&xdg), ["/data/ann/taskhost/plugins"]);
    // A relative XDG_DATA_HOME is ignored (the XDG rule), and so is a relative HOME.
    let relative = load_from(
        EMBEDDED_DEFAULT,
        None,
        &env(&[("HOME", "ann"), ("XDG_DATA_HOME", "data")]),
    )
    .unwrap();
    assert!(dirs_of(&relative).is_empty(), "{:?}", dirs_of(&relative));
    let none = load_from(EMBEDDED_DEFAULT, None, &[]).unwrap();
    assert!(dirs_of(&none).is_empty(), "{:?}", dirs_of(&none));
}

#[test]
fn relative_plugin_dirs_are_taken_from_the_config_files_folder() {
    let loaded = load_from(
        EMBEDDED_DEFAULT,
        Some((
            "/etc/taskhost/site.toml".to_owned(),
            "[plugins]\ndirs = [\"plugins\", \"../shared/plugins\", \"/opt/plugins\"]\n".to_owned(),
        )),
        &env(&[("HOME", "/home/ann")]),
    )
    .unwrap();
    assert_eq!(
        dirs_of(&loaded),
        [
            "/etc/taskhost/plugins",
            "/etc/taskhost/../shared/plugins",
            "/opt/plugins"
        ]
    );
    // A file named by a relative path: its folder, made absolute.
    let cwd = std::env::current_dir().unwrap();
    let loaded = load_file("[plugins]\ndirs = [\"plugins\"]\n").unwrap();
    assert_eq!(loaded.settings.plugins.dirs, [cwd.join("plugins")]);
}

#[test]
fn relative_plugin_dirs_from_the_environment_are_taken_from_the_working_directory() {
    let cwd = std::env::current_dir().unwrap();
    let loaded = load_from(
        EMBEDDED_DEFAULT,
        Some((
            "/etc/taskhost/site.toml".to_owned(),
            "[plugins]\ndirs = [\"plugins\"]\n".to_owned(),
        )),
        &env(&[("TASKHOST_PLUGINS__DIRS", "mine,/opt/plugins")]),
    )
    .unwrap();
    assert_eq!(
        loaded.settings.plugins.dirs,
        [cwd.join("mine"), "/opt/plugins".into()]
    );
}

#[test]
fn a_relative_plugin_dir_in_the_embedded_default_is_an_error() {
    let embedded = format!("{EMBEDDED_DEFAULT}\n").replace(
        "# dirs = [\"/opt/taskhost/plugins\", \"plugins\"]",
        "dirs = [\"target/plugins\"]",
    );
    assert_ne!(
        embedded,
        format!("{EMBEDDED_DEFAULT}\n"),
        "the example line moved"
    );
    let error = load_from(&embedded, None, &[]).unwrap_err().to_string();
    assert!(
        error.contains(
            "key `plugins.dirs`: expected an absolute folder, found \"target/plugins\" (there is \
             no folder to take it from)"
        ),
        "{error}"
    );
    let empty = issues("[plugins]\ndirs = [\"\"]\n");
    assert_eq!(
        empty,
        ["my.toml:2: key `plugins.dirs`: expected a folder, found an empty string at position 0"]
    );
}

#[test]
fn absurd_counts_are_errors_that_name_the_limit() {
    let cases = [
        (
            "[pools.io]\nqueue_capacity = 9223372036854775807\n",
            "my.toml:2: key `pools.io.queue_capacity`: expected an integer of at most 1048576 \
             (queued tasks are held in memory; 0 means unbounded), found 9223372036854775807",
        ),
        (
            "[pools.io]\nqueue_capacity = 1000000000000\n",
            "found 1000000000000",
        ),
        (
            "[pools.io]\nmax_workers = 1000000000\n",
            "my.toml:2: key `pools.io.max_workers`: expected an integer of at most 1024 (each \
             worker is a thread), found 1000000000",
        ),
        (
            "[pools.io]\nmax_tasks_per_worker = 9223372036854775807\n",
            "key `pools.io.max_tasks_per_worker`: expected an integer of at most 4294967295",
        ),
        (
            "[run]\nmax_in_flight = 100000000\n",
            "my.toml:2: key `run.max_in_flight`: expected an integer of at most 1048576 (each \
             item in flight holds its line and its outcome in memory), found 100000000",
        ),
        (
            "[run]\nmax_line_bytes = 9223372036854775807\n",
            "my.toml:2: key `run.max_line_bytes`: expected an integer of at most 1073741824 (1 \
             GiB: a line is held in memory whole), found 9223372036854775807",
        ),
        (
            "[[routes]]\ntask = \"x/*\"\nretries = 4294967296\n",
            "my.toml:3: key `routes[0].retries`: expected an integer of at most 100 (extra \
             attempts after the first), found 4294967296",
        ),
    ];
    for (text, expected) in cases {
        let found = issues(text);
        assert_eq!(found.len(), 1, "{text:?}: {found:?}");
        assert!(found[0].contains(expected), "{text:?}: {found:?}");
    }
    // The limits themselves are allowed.
    let loaded = load_file(
        "[pools.io]\nmax_workers = 1024\nqueue_capacity = 1048576\n\
         [run]\nmax_in_flight = 1048576\nmax_line_bytes = 1073741824\n",
    )
    .unwrap();
    assert_eq!(loaded.settings.pools["io"].queue_capacity, 1 << 20);
    assert_eq!(loaded.settings.run.max_line_bytes, 1 << 30);
}

#[test]
fn every_wrong_type_and_unknown_key_of_a_file_is_reported_at_once() {
    let text = "[run]\n\
                max_in_flight = \"x\"\n\
                max_line_bytes = \"y\"\n\
                [pools.io]\n\
                max_workers = \"many\"\n\
                max_wrokers = 3\n\
                [[routes]]\n\
                task = \"a/*\"\n\
                retries = \"r\"\n\
                [[routes]]\n\
                task = \"b/*\"\n\
                pool = [\"gpu\"]\n\
                [plugins]\n\
                strict = \"maybe\"\n";
    let mut found = issues(text);
    found.sort();
    let expected = [
        "my.toml:12: key `routes[1].pool`: wrong type: expected a string, found",
        "my.toml:14: key `plugins.strict`: wrong type: expected a boolean, found string \"maybe\"",
        "my.toml:2: key `run.max_in_flight`: wrong type: expected an integer, found string \"x\"",
        "my.toml:3: key `run.max_line_bytes`: wrong type: expected an integer, found string \"y\"",
        "my.toml:5: key `pools.io.max_workers`: wrong type: expected an integer, found string \"many\"",
        "my.toml:6: key `pools.io.max_wrokers`: unknown field `max_wrokers`",
        "my.toml:9: key `routes[0].retries`: wrong type: expected an integer, found string \"r\"",
    ];
    assert_eq!(found.len(), expected.len(), "{found:#?}");
    for (found, expected) in found.iter().zip(expected) {
        assert!(
            found.starts_with(expected),
            "{found:?} does not start with {expected:?}"
        );
    }
}

#[test]
fn wrong_types_in_the_file_and_the_environment_are_all_reported() {
    let error = load_from(
        EMBEDDED_DEFAULT,
        Some((
            "my.toml".to_owned(),
            "[pools.io]\nmax_workers = \"many\"\n".to_owned(),
        )),
        &env(&[
            ("TASKHOST_RUN__MAX_IN_FLIGHT", "lots"),
            ("TASKHOST_POOLS__CPU__MAX_WROKERS", "3"),
        ]),
    )
    .unwrap_err();
    let found: Vec<String> = error.issues().iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(error
        .to_string()
        .starts_with("invalid configuration (3 problems):"));
    for variable in [
        "environment variable TASKHOST_RUN__MAX_IN_FLIGHT: key `run.max_in_flight`",
        "environment variable TASKHOST_POOLS__CPU__MAX_WROKERS: key `pools.cpu.max_wrokers`",
    ] {
        assert!(
            found.iter().any(|f| f.starts_with(variable)),
            "{variable}: {found:#?}"
        );
    }
}

#[test]
fn an_integer_too_large_for_toml_names_the_line_and_key() {
    let found = issues("# limits\n[run]\nmax_line_bytes = 18446744073709551615\n");
    assert_eq!(
        found,
        [
            "my.toml:3: key `run.max_line_bytes`: expected an integer of at most \
          9223372036854775807 (the largest TOML allows), found 18446744073709551615"
        ]
    );
    let found = issues("[pools.io]\nqueue_capacity = -9_223_372_036_854_775_809 # min - 1\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("my.toml:2: key `pools.io.queue_capacity`: expected an integer"),
        "{found:?}"
    );
    // The smallest and largest TOML integers parse, and are then checked against the limits.
    let found = issues("[pools.io]\nqueue_capacity = -9223372036854775808\n");
    assert!(found[0].contains("at least 0"), "{found:?}");
}

/// The TOML parser stops at the first integer too large for it: it used to be the only problem
/// reported.
#[test]
fn every_integer_too_large_is_reported_with_the_files_other_problems() {
    let found = issues(
        "[run]\n\
         max_line_bytes = 18446744073709551615\n\
         max_in_flight = \"x\"\n\
         [pools.io]\n\
         max_workers = 99999999999999999999 # twenty nines\n\
         [[routes]]\n\
         task = \"x/*\"\n\
         retries = -99999999999999999999\n\
         [[jobs]]\n\
         task = \"x/y\"\n\
         inputs = [1, 99999999999999999999, \"99999999999999999999\"]\n",
    );
    let too_large = |line: u32, key: &str, literal: &str| {
        format!(
            "my.toml:{line}: key `{key}`: expected an integer of at most 9223372036854775807 \
             (the largest TOML allows), found {literal}"
        )
    };
    assert_eq!(
        found,
        [
            too_large(2, "run.max_line_bytes", "18446744073709551615"),
            "my.toml:3: key `run.max_in_flight`: wrong type: expected an integer, found string \"x\""
                .to_owned(),
            too_large(5, "pools.io.max_workers", "99999999999999999999"),
            too_large(8, "routes[0].retries", "-99999999999999999999"),
            too_large(11, "jobs[0].inputs", "99999999999999999999"),
        ]
    );
}

/// The `config` crate took `true` as 1, `1.5` as 2 and `"yes"` as 1 without a word.
#[test]
fn a_boolean_a_fraction_or_a_word_is_not_a_count() {
    let found = issues(
        "[run]\nmax_in_flight = true\nmax_line_bytes = 1.5\n[pools.io]\nmax_workers = \"yes\"\n\
         queue_capacity = [8]\nmax_tasks_per_worker = \"7\"\n",
    );
    let wrong = |line: u32, key: &str, found: &str| {
        format!("my.toml:{line}: key `{key}`: wrong type: expected an integer, found {found}")
    };
    assert_eq!(
        found,
        [
            wrong(2, "run.max_in_flight", "boolean `true`"),
            wrong(3, "run.max_line_bytes", "floating point `1.5`"),
            wrong(5, "pools.io.max_workers", "string \"yes\""),
            wrong(6, "pools.io.queue_capacity", "sequence"),
        ]
    );
    // A string of digits is still a count (it is what an environment variable holds).
    let loaded = load_file("[pools.io]\nmax_tasks_per_worker = \"7\"\n").unwrap();
    assert_eq!(loaded.settings.pools["io"].max_tasks_per_worker, 7);
    let error = env_error(&[
        ("TASKHOST_RUN__MAX_IN_FLIGHT", "2.5"),
        ("TASKHOST_POOLS__IO__MAX_WORKERS", "on"),
        ("TASKHOST_RUN__MAX_LINE_BYTES", "4096"),
    ]);
    let found: Vec<String> = error.issues().iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "environment variable TASKHOST_POOLS__IO__MAX_WORKERS: key `pools.io.max_workers`: \
             wrong type: expected an integer, found string \"on\"",
            "environment variable TASKHOST_RUN__MAX_IN_FLIGHT: key `run.max_in_flight`: wrong \
             type: expected an integer, found floating point `2.5`",
        ]
    );
}

/// The `config` crate reads a variable's integer too large for 64 bits as a float: the message
/// said `found 9223372036854775807`, which is not what was written.
#[test]
fn an_integer_too_large_in_the_environment_is_shown_as_written() {
    assert_eq!(
        env_error(&[("TASKHOST_RUN__MAX_IN_FLIGHT", "18446744073709551615")]).to_string(),
        "invalid configuration: environment variable TASKHOST_RUN__MAX_IN_FLIGHT: key \
         `run.max_in_flight`: expected an integer of at most 9223372036854775807, found \
         18446744073709551615"
    );
}
