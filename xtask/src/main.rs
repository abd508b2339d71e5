//! `cargo xtask`: the project's build, demo, test and benchmark entry points.
//!
//! One binary, one `match` over subcommands. Everything CI checks runs through `cargo xtask test`,
//! so a contributor and CI always run the same thing.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

#[cfg(test)]
mod tidy;

const HELP: &str = "\
usage: cargo xtask <command> [options]

commands:
  build-plugins [--release]   build the sample plugins into target/plugins/
  demo [--release]            build the plugins and run the demo batch on the default config
  test                        everything CI checks: fmt, clippy, plugins, cargo test
  bench [--quick]             run the benchmarks against the peers and write the report
  ci                          same as `test`
";

fn main() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => {
            print!("{HELP}");
            return Ok(());
        }
    };
    let release = rest.iter().any(|a| a == "--release");
    match command {
        "build-plugins" => build_plugins(release).map(|_| ()),
        "demo" => demo(release, rest),
        "test" | "ci" => test(),
        "bench" => bench(rest),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown command `{other}`\n\n{HELP}"),
    }
}

/// The workspace root, found from this crate's manifest directory.
fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut command = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(project_root());
    command
}

fn run(command: &mut Command) -> Result<()> {
    eprintln!("$ {}", display(command));
    let status = command
        .status()
        .with_context(|| format!("starting `{}`", display(command)))?;
    if !status.success() {
        bail!("`{}` failed with {status}", display(command));
    }
    Ok(())
}

fn display(command: &Command) -> String {
    let mut parts = vec![command.get_program().to_string_lossy().into_owned()];
    parts.extend(command.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

/// A cdylib package under `plugins/`, as `cargo metadata` describes it.
struct PluginPackage {
    package: String,
    lib_name: String,
}

struct Metadata {
    target_directory: PathBuf,
    plugins: Vec<PluginPackage>,
}

fn metadata() -> Result<Metadata> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running cargo metadata")?;
    if !output.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing cargo metadata")?;
    let target_directory = PathBuf::from(
        json["target_directory"]
            .as_str()
            .context("cargo metadata has no target_directory")?,
    );
    let plugins_dir = project_root().join("plugins");
    let mut plugins = Vec::new();
    for package in json["packages"].as_array().into_iter().flatten() {
        let manifest = Path::new(package["manifest_path"].as_str().unwrap_or_default());
        if !manifest.starts_with(&plugins_dir) {
            continue;
        }
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_cdylib = target["kind"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k == "cdylib");
            if is_cdylib {
                plugins.push(PluginPackage {
                    package: package["name"].as_str().unwrap_or_default().to_owned(),
                    lib_name: target["name"]
                        .as_str()
                        .unwrap_or_default()
                        .replace('-', "_"),
                });
            }
        }
    }
    plugins.sort_by(|a, b| a.package.cmp(&b.package));
    Ok(Metadata {
        target_directory,
        plugins,
    })
}

/// Builds every cdylib under `plugins/` and copies the libraries into `target/plugins/`.
/// Returns that folder.
fn build_plugins(release: bool) -> Result<PathBuf> {
    let metadata = metadata()?;
    let out_dir = metadata.target_directory.join("plugins");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    if metadata.plugins.is_empty() {
        eprintln!("no plugin packages under plugins/ yet");
        return Ok(out_dir);
    }
    let mut build = cargo();
    build.arg("build");
    if release {
        build.arg("--release");
    }
    for plugin in &metadata.plugins {
        build.args(["--package", &plugin.package]);
    }
    run(&mut build)?;
    let profile_dir = metadata
        .target_directory
        .join(if release { "release" } else { "debug" });
    for plugin in &metadata.plugins {
        let file = format!(
            "{}{}{}",
            env::consts::DLL_PREFIX,
            plugin.lib_name,
            env::consts::DLL_SUFFIX
        );
        let from = profile_dir.join(&file);
        let to = out_dir.join(&file);
        // Copy through a temporary name and rename, so a running host never sees half a file.
        let partial = out_dir.join(format!(".{file}.partial"));
        fs::copy(&from, &partial)
            .with_context(|| format!("copying {} to {}", from.display(), partial.display()))?;
        fs::rename(&partial, &to).with_context(|| format!("renaming to {}", to.display()))?;
        eprintln!("plugin {} -> {}", plugin.package, to.display());
    }
    Ok(out_dir)
}

fn demo(release: bool, rest: &[String]) -> Result<()> {
    build_plugins(release)?;
    let mut command = cargo();
    command.arg("run");
    if release {
        command.arg("--release");
    }
    command.args(["--quiet", "--package", "taskhost", "--", "demo"]);
    command.args(rest.iter().filter(|a| *a != "--release"));
    run(&mut command)
}

fn test() -> Result<()> {
    run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let plugins = build_plugins(false)?;
    run(cargo()
        .args(["test", "--workspace"])
        .env("TASKHOST_TEST_PLUGIN_DIR", &plugins))?;
    Ok(())
}

fn bench(rest: &[String]) -> Result<()> {
    let quick = rest.iter().any(|a| a == "--quick");
    let _ = quick;
    let has_bench_crate = project_root().join("crates/taskhost-bench").exists();
    if !has_bench_crate {
        bail!("no benchmark crate yet (crates/taskhost-bench)");
    }
    let mut command = cargo();
    command.args(["run", "--release", "--package", "taskhost-bench", "--"]);
    command.args(rest.iter().map(OsStr::new));
    run(&mut command)
}
