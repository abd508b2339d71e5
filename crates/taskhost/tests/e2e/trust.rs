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

/// The binary in `cwd` with no config file and no `TASKHOST_*` variable: the embedded default
/// alone, with `home` as `HOME` and no `XDG_DATA_HOME`.
fn bare_command(cwd: &Path, home: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskhost"));
    command.current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TASKHOST_") {
            command.env_remove(&name);
        }
    }
    command
        .env_remove("RUST_LOG")
        .env_remove("XDG_DATA_HOME")
        .env("HOME", home)
        .arg("--no-progress");
    command
}

/// A folder `dir` (made with its parents) holding a copy of the testkit plugin.
fn plugin_folder_with_testkit(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(
        library(&plugin_dir(), "taskhost_testkit"),
        library(dir, "taskhost_testkit"),
    )
    .unwrap();
}

#[test]
fn a_plugin_folder_in_the_working_directory_is_not_loaded_by_default() {
    // A cloned repository that ships target/plugins/libtaskhost_testkit.so, every file the
    // user's own: running taskhost inside it must not run that library.
    let dir = Dir::new();
    let repo = dir.path().join("repo");
    plugin_folder_with_testkit(&repo.join("target/plugins"));
    plugin_folder_with_testkit(&repo.join("plugins"));
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let listed = dir.run_command(bare_command(&repo, &home).arg("plugins"), "");
    listed.assert_code(0);
    assert_eq!(
        listed.stdout.trim(),
        "no plugins loaded",
        "{}",
        listed.stderr
    );
    let shown = dir.run_command(bare_command(&repo, &home).args(["config", "show"]), "");
    shown.assert_code(0);
    let expected = format!(
        "dirs = [{:?}]",
        home.join(".local/share/taskhost/plugins")
            .display()
            .to_string()
    );
    assert!(shown.stdout.contains(&expected), "{}", shown.stdout);
    let run = dir.run_command(
        bare_command(&repo, &home).arg("run"),
        "{\"id\":\"x\",\"task\":\"testkit/echo\",\"input\":1}\n",
    );
    run.assert_code(1);
    assert_eq!(by_id(&run.outcomes())["x"]["status"], "rejected");
}

#[test]
fn the_default_plugin_folder_is_the_users_data_folder() {
    let dir = Dir::new();
    let home = dir.path().join("home");
    plugin_folder_with_testkit(&home.join(".local/share/taskhost/plugins"));
    let listed = dir.run_command(bare_command(dir.path(), &home).arg("plugins"), "");
    listed.assert_code(0);
    assert!(listed.stdout.starts_with("testkit "), "{}", listed.stdout);
    // $XDG_DATA_HOME comes first.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    let listed = dir.run_command(
        bare_command(dir.path(), &home)
            .env("XDG_DATA_HOME", &data)
            .arg("plugins"),
        "",
    );
    listed.assert_code(0);
    assert_eq!(listed.stdout.trim(), "no plugins loaded");
}

#[test]
fn a_config_files_relative_plugin_folder_is_taken_from_the_files_folder() {
    let dir = Dir::new();
    let site = dir.path().join("site");
    plugin_folder_with_testkit(&site.join("plugins"));
    let config = site.join("taskhost.toml");
    std::fs::write(&config, "[plugins]\ndirs = [\"plugins\"]\nstrict = true\n").unwrap();
    // Run elsewhere, where a `plugins` folder holds another library.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::create_dir(elsewhere.join("plugins")).unwrap();
    std::fs::copy(
        library(&plugin_dir(), "taskhost_primes"),
        library(&elsewhere.join("plugins"), "taskhost_primes"),
    )
    .unwrap();
    let listed = dir.run_command(
        bare_command(&elsewhere, dir.path())
            .arg("--config")
            .arg(&config)
            .arg("plugins"),
        "",
    );
    listed.assert_code(0);
    assert!(listed.stdout.starts_with("testkit "), "{}", listed.stdout);
    assert!(!listed.stdout.contains("primes"), "{}", listed.stdout);
    // The same with the file named relative to the working directory.
    let listed = dir.run_command(
        bare_command(dir.path(), dir.path()).args(["--config", "site/taskhost.toml", "plugins"]),
        "",
    );
    listed.assert_code(0);
    assert!(listed.stdout.starts_with("testkit "), "{}", listed.stdout);
}

#[cfg(unix)]
#[test]
fn a_symlinked_or_writable_folder_above_the_plugin_folder_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let real = dir.path().join("real");
    plugin_folder_with_testkit(&real.join("plugins"));
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let through_link = link.join("plugins");
    std::fs::write(
        dir.config(),
        format!(
            "[plugins]\ndirs = [{:?}]\nstrict = true\n",
            through_link.display().to_string()
        ),
    )
    .unwrap();
    let run = dir.run(&["plugins"], "");
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "plugin folder {}: refused: folder {} on its path: it is a symbolic link (to {})",
            through_link.display(),
            link.display(),
            real.display()
        )),
        "{}",
        run.stderr
    );
    // The real path loads; made group-writable, the folder above it is refused.
    let real_plugins = real.join("plugins");
    std::fs::write(
        dir.config(),
        format!(
            "[plugins]\ndirs = [{:?}]\nstrict = true\n",
            real_plugins.display().to_string()
        ),
    )
    .unwrap();
    let run = dir.run(&["plugins"], "");
    run.assert_code(0);
    assert!(run.stdout.starts_with("testkit "), "{}", run.stdout);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o775)).unwrap();
    let run = dir.run(&["plugins"], "");
    run.assert_code(2);
    assert!(
        run.stderr.contains(&format!(
            "plugin folder {}: refused: folder {} on its path: it is writable by group or others \
             (mode 0775)",
            real_plugins.display(),
            real.display()
        )),
        "{}",
        run.stderr
    );
}
