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
fn the_pin_rule_is_the_loaders() {
    for text in [
        PIN,
        &PIN.to_uppercase().replace("SHA256:", "sha256:"),
        "sha256:abc",
        "md5:abc",
        "",
        &format!("sha256:{}", "g".repeat(64)),
    ] {
        assert_eq!(
            settings::parse_pin(text),
            taskhost_loader::parse_pin(text),
            "{text:?}"
        );
    }
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
