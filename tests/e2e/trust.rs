//! Plugin trust through the binary: `taskhost plugins --pins`, pins pasted back into the config
//! with `require_pins`, a wrong pin, and a plugin folder the trust rules refuse.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::util::{by_id, jsonl, plugin_dir, Dir};

/// The sample plugins, by plugin name, with their file names.
const SAMPLES: [(&str, &str); 4] = [
    ("checksum", "taskhost_checksum"),
    ("csample", "taskhost_csample"),
    ("primes", "taskhost_primes"),
    ("testkit", "taskhost_testkit"),
];

fn library(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ))
}

/// `sha256:<hex>` by the system's `sha256sum`, independent of taskhost; `None` without it.
fn sha256sum(path: &Path) -> Option<String> {
    let output = Command::new("sha256sum").arg(path).output().ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    Some(format!("sha256:{}", text.split_whitespace().next()?))
}

/// The `[plugins.pins]` table `taskhost plugins --pins` prints in `dir`.
fn printed_pins(dir: &Dir) -> (String, toml::Table) {
    let run = dir.run(&["plugins", "--pins"], "");
    run.assert_code(0);
    let table: toml::Table = run
        .stdout
        .parse()
        .unwrap_or_else(|e| panic!("`plugins --pins` is not TOML ({e}):\n{}", run.stdout));
    let pins = table["plugins"]["pins"]
        .as_table()
        .expect("a [plugins.pins] table")
        .clone();
    (run.stdout, pins)
}

fn primes_item() -> String {
    jsonl(&[json!({"id": "p", "task": "primes/count", "input": {"n": 100}})])
}

#[test]
fn plugins_pins_prints_the_sha256_of_every_loaded_plugin_as_toml() {
    let dir = Dir::new();
    let (text, pins) = printed_pins(&dir);
    let names: Vec<&str> = pins.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["checksum", "csample", "primes", "testkit"],
        "{text}"
    );
    for (name, file) in SAMPLES {
        let pin = pins[name].as_str().unwrap();
        assert!(pin.starts_with("sha256:") && pin.len() == 7 + 64, "{pin}");
        match sha256sum(&library(&plugin_dir(), file)) {
            Some(expected) => assert_eq!(pin, expected, "{name}"),
            None => eprintln!("sha256sum is not available: checked the format only"),
        }
    }
}

#[test]
fn pasted_pins_with_require_pins_load_and_run() {
    let dir = Dir::new();
    let (text, _) = printed_pins(&dir);
    // Paste the printed table into the config, as the user would.
    let config = std::fs::read_to_string(dir.config()).unwrap();
    std::fs::write(dir.config(), format!("{config}\n{text}")).unwrap();
    let run = dir.run_command(
        dir.command()
            .env("TASKHOST_PLUGINS__REQUIRE_PINS", "true")
            .env("TASKHOST_PLUGINS__STRICT", "true")
            .arg("run"),
        &primes_item(),
    );
    run.assert_code(0);
    let outcomes = by_id(&run.outcomes());
    assert_eq!(outcomes["p"]["status"], "ok");
    assert_eq!(outcomes["p"]["output"]["count"], 25);
}

#[test]
fn require_pins_without_a_pin_loads_nothing_and_says_why() {
    let dir = Dir::new();
    let run = dir.run_command(
        dir.command()
            .env("TASKHOST_PLUGINS__REQUIRE_PINS", "true")
            .arg("plugins"),
        "",
    );
    run.assert_code(0);
    assert_eq!(run.stdout.trim(), "no plugins loaded");
    let primes = library(&plugin_dir(), "taskhost_primes");
    assert!(
        run.stderr.contains(&format!(
            "{}: refused: `require_pins` is on and no pin in [plugins.pins] matches the file's checksum sha256:",
            primes.display()
        )),
        "{}",
        run.stderr
    );
}

#[test]
fn a_wrong_pin_refuses_the_plugin_naming_both_checksums() {
    let wrong = format!("sha256:{}", "0".repeat(64));
    let dir = Dir::with_config(&format!("[plugins.pins]\nprimes = \"{wrong}\"\n"));
    let run = dir.run(&["run"], &primes_item());
    run.assert_code(1);
    let outcomes = by_id(&run.outcomes());
    assert_eq!(outcomes["p"]["status"], "rejected");
    let primes = library(&plugin_dir(), "taskhost_primes");
    let expected = format!(
        "{}: refused: plugin `primes` is pinned to {wrong}, found sha256:",
        primes.display()
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    // With `strict`, the refusal stops the host: a usage/config error.
    let strict = dir.run_command(
        dir.command()
            .env("TASKHOST_PLUGINS__STRICT", "true")
            .arg("run"),
        &primes_item(),
    );
    strict.assert_code(2);
    assert!(strict.stderr.contains(&expected), "{}", strict.stderr);
}

#[test]
fn a_bad_pin_in_the_config_names_the_file_line_and_key() {
    let dir = Dir::with_config("[plugins.pins]\nprimes = \"sha256:1234\"\n");
    let run = dir.run(&["config", "check"], "");
    run.assert_code(2);
    let expected = format!(
        "{}:{}: key `plugins.pins.primes`: expected \"sha256:\" and 64 hex digits, found 4",
        dir.config().display(),
        std::fs::read_to_string(dir.config())
            .unwrap()
            .lines()
            .position(|l| l.starts_with("primes ="))
            .unwrap()
            + 1
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
}

#[cfg(unix)]
#[test]
fn a_group_writable_plugin_folder_is_refused_with_its_path_and_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(
        library(&plugin_dir(), "taskhost_primes"),
        library(&plugins, "taskhost_primes"),
    )
    .unwrap();
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o775)).unwrap();
    let config = dir.config().to_path_buf();
    std::fs::write(
        &config,
        format!("[plugins]\ndirs = [{:?}]\n", plugins.display().to_string()),
    )
    .unwrap();
    let run = dir.run(&["plugins"], "");
    run.assert_code(0);
    assert_eq!(run.stdout.trim(), "no plugins loaded");
    assert!(
        run.stderr.contains(&format!(
            "plugin folder {}: refused: it is writable by group or others (mode 0775)",
            plugins.display()
        )),
        "{}",
        run.stderr
    );
    // `chmod go-w` fixes it.
    std::fs::set_permissions(&plugins, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = dir.run(&["plugins"], "");
    run.assert_code(0);
    assert!(run.stdout.starts_with("primes 0.1.0"), "{}", run.stdout);
}
