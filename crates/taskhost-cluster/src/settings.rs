//! [`ClusterSettings`]: the typed, checked `[cluster]` settings, and their builder.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// How the client proves who it is to the server.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Credentials {
    /// None (or the user and password in the URL, `nats://user:password@host`).
    #[default]
    None,
    /// `cluster.user` and `cluster.password`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// `cluster.token`.
    Token(String),
}

/// Never prints a password or a token.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<hidden>")
                .finish(),
            Credentials::Token(_) => f.write_str("Token(<hidden>)"),
        }
    }
}

/// The settings of the cluster mode, checked: build them with [`ClusterSettings::builder`].
///
/// Every worker and submitter of one cluster must agree on the prefix, `ack_wait`,
/// `max_deliver`, `duplicate_window` and `results_max_age`: they are stored with the streams
/// and consumers, and a second process with other values gets [`ClusterError::Conflict`]
/// instead of silently changing them.
///
/// [`ClusterError::Conflict`]: crate::ClusterError::Conflict
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use taskhost_cluster::ClusterSettings;
///
/// let settings = ClusterSettings::builder("nats://127.0.0.1:4222")
///     .prefix("batch")
///     .ack_wait(Duration::from_secs(10))
///     .max_deliver(3)
///     .build()
///     .unwrap();
/// assert_eq!(settings.ack_wait(), Duration::from_secs(10));
///
/// let error = ClusterSettings::builder("nats://127.0.0.1:4222")
///     .max_deliver(0)
///     .build()
///     .unwrap_err();
/// assert_eq!(error.issues()[0].key(), "cluster.max_deliver");
/// ```
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// One server URL or several, comma-separated (`nats://` or `tls://`).
    url: String,
    /// The first token of every subject and the start of every stream name.
    prefix: String,
    /// How long a worker holds an item without a sign of life before the server gives it to
    /// another worker.
    ack_wait: Duration,
    /// How many times an item is delivered before the server gives up on it.
    max_deliver: u32,
    /// User and password, or a token.
    credentials: Credentials,
    /// A PEM file of CA certificates to trust (and TLS required) when set.
    tls_ca: Option<PathBuf>,
    /// The bound on connecting, TLS and the first JetStream request included.
    connect_timeout: Duration,
    /// How long the server remembers message ids for de-duplication.
    duplicate_window: Duration,
    /// How long outcomes and dead letters are kept.
    results_max_age: Duration,
}

impl ClusterSettings {
    /// Starts settings for the server(s) at `url`, every other setting at its default.
    pub fn builder(url: impl Into<String>) -> ClusterSettingsBuilder {
        ClusterSettingsBuilder {
            settings: ClusterSettings {
                url: url.into(),
                prefix: "taskhost".to_owned(),
                ack_wait: Duration::from_secs(30),
                max_deliver: 5,
                credentials: Credentials::None,
                tls_ca: None,
                connect_timeout: Duration::from_secs(5),
                duplicate_window: Duration::from_secs(3600),
                results_max_age: Duration::from_secs(24 * 3600),
            },
            user: None,
            password: None,
            token: None,
        }
    }

    /// The server URL(s), as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The prefix of every subject and stream name.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How long an item may go without an ack or a lease extension before it is redelivered.
    pub fn ack_wait(&self) -> Duration {
        self.ack_wait
    }

    /// How many times an item is delivered at most.
    pub fn max_deliver(&self) -> u32 {
        self.max_deliver
    }

    /// The credentials.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// The CA file, when one is set.
    pub fn tls_ca(&self) -> Option<&Path> {
        self.tls_ca.as_deref()
    }

    /// The bound on connecting.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How long the server de-duplicates message ids.
    pub fn duplicate_window(&self) -> Duration {
        self.duplicate_window
    }

    /// How long outcomes and dead letters are kept.
    pub fn results_max_age(&self) -> Duration {
        self.results_max_age
    }

    /// How often a running item's lease is extended: a third of `ack_wait`, so two extensions
    /// may be lost before the server gives the item away.
    pub fn lease_interval(&self) -> Duration {
        self.ack_wait / 3
    }
}

/// Builds [`ClusterSettings`]; every setter consumes and returns the builder.
#[derive(Debug)]
pub struct ClusterSettingsBuilder {
    settings: ClusterSettings,
    user: Option<String>,
    password: Option<String>,
    token: Option<String>,
}

impl ClusterSettingsBuilder {
    /// `cluster.prefix`: the first token of every subject and the start of every stream name,
    /// 1 to 32 of `A-Z a-z 0-9 _ -`. Default `taskhost`. Two prefixes on one server are two
    /// clusters that never see each other's items.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.prefix = prefix.into();
        self
    }

    /// `cluster.ack_wait`: how long a worker may hold an item without acking it or extending
    /// its lease. Default 30 s, at least 1 s. A worker extends the lease every third of it.
    pub fn ack_wait(mut self, ack_wait: Duration) -> Self {
        self.settings.ack_wait = ack_wait;
        self
    }

    /// `cluster.max_deliver`: how many deliveries an item gets before the server gives up and
    /// sends the max-deliveries advisory. Default 5, at least 1.
    pub fn max_deliver(mut self, max_deliver: u32) -> Self {
        self.settings.max_deliver = max_deliver;
        self
    }

    /// `cluster.user`: the user name; needs a password, excludes a token.
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// `cluster.password`: the password; needs a user.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// `cluster.token`: an authentication token; excludes a user and password.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// `cluster.tls_ca`: a PEM file of CA certificates to trust. Setting it requires TLS of the
    /// server. Default: none (a `tls://` URL then trusts the system's roots).
    pub fn tls_ca(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings.tls_ca = Some(path.into());
        self
    }

    /// `cluster.connect_timeout`: the bound on reaching the server, from the first TCP packet
    /// to the first JetStream answer. Default 5 s, from 100 ms to 10 minutes.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.settings.connect_timeout = timeout;
        self
    }

    /// `cluster.duplicate_window`: how long the server remembers the message id of an item or
    /// an outcome, so that publishing it again is a no-op. Default 1 hour, at least 1 s: a
    /// submitter that resubmits within it duplicates nothing. The server keeps each id in
    /// memory for that long.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.settings.duplicate_window = window;
        self
    }

    /// `cluster.results_max_age`: how long outcomes and dead letters are kept for a submitter
    /// to read (or to resume). Default 24 hours; at least the duplicate window.
    pub fn results_max_age(mut self, max_age: Duration) -> Self {
        self.settings.results_max_age = max_age;
        self
    }

    /// Checks every setting; the error lists each bad one with its key.
    pub fn build(self) -> Result<ClusterSettings, InvalidSettings> {
        let ClusterSettingsBuilder {
            mut settings,
            user,
            password,
            token,
        } = self;
        let mut issues = Vec::new();
        let mut issue = |key: &'static str, message: String| {
            issues.push(SettingsError { key, message });
        };

        if let Err(message) = check_url(&settings.url) {
            issue("cluster.url", message);
        }
        let prefix_ok = (1..=32).contains(&settings.prefix.len())
            && settings
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'));
        if !prefix_ok {
            issue(
                "cluster.prefix",
                format!(
                    "expected 1 to 32 of A-Z a-z 0-9 _ -, found {:?}",
                    settings.prefix
                ),
            );
        }
        if settings.ack_wait < Duration::from_secs(1) {
            issue(
                "cluster.ack_wait",
                format!("expected at least 1s, found {:?}", settings.ack_wait),
            );
        }
        if settings.max_deliver == 0 {
            issue(
                "cluster.max_deliver",
                "expected at least 1 delivery, found 0".to_owned(),
            );
        }
        settings.credentials = match (user, password, token) {
            (None, None, None) => Credentials::None,
            (Some(user), Some(password), None) => {
                if user.is_empty() {
                    issue("cluster.user", "expected a user name, found \"\"".into());
                }
                Credentials::UserPassword { user, password }
            }
            (None, None, Some(token)) => {
                if token.is_empty() {
                    issue("cluster.token", "expected a token, found \"\"".into());
                }
                Credentials::Token(token)
            }
            (_, _, Some(_)) => {
                issue(
                    "cluster.token",
                    "expected either a token or a user and password, found both".into(),
                );
                Credentials::None
            }
            (Some(_), None, None) => {
                issue(
                    "cluster.password",
                    "expected a password with cluster.user, found none".into(),
                );
                Credentials::None
            }
            (None, Some(_), None) => {
                issue(
                    "cluster.user",
                    "expected a user with cluster.password, found none".into(),
                );
                Credentials::None
            }
        };
        if let Some(path) = &settings.tls_ca {
            match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => {}
                Ok(_) => issue(
                    "cluster.tls_ca",
                    format!("expected a PEM file, found a folder: {}", path.display()),
                ),
                Err(error) => issue(
                    "cluster.tls_ca",
                    format!("cannot read {}: {error}", path.display()),
                ),
            }
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(600))
            .contains(&settings.connect_timeout)
        {
            issue(
                "cluster.connect_timeout",
                format!(
                    "expected 100ms to 10 minutes, found {:?}",
                    settings.connect_timeout
                ),
            );
        }
        if settings.duplicate_window < Duration::from_secs(1) {
            issue(
                "cluster.duplicate_window",
                format!(
                    "expected at least 1s, found {:?}",
                    settings.duplicate_window
                ),
            );
        }
        if settings.results_max_age < settings.duplicate_window {
            issue(
                "cluster.results_max_age",
                format!(
                    "expected at least cluster.duplicate_window ({:?}), found {:?}",
                    settings.duplicate_window, settings.results_max_age
                ),
            );
        }
        if issues.is_empty() {
            Ok(settings)
        } else {
            Err(InvalidSettings { issues })
        }
    }
}

/// `nats://` or `tls://` URLs, comma-separated; the client is built without websockets.
fn check_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("expected a server URL such as nats://127.0.0.1:4222, found \"\"".into());
    }
    for part in url.split(',').map(str::trim) {
        let scheme = part.split_once("://").map(|(scheme, _)| scheme);
        if let Some(scheme) = scheme.filter(|s| !matches!(*s, "nats" | "tls")) {
            return Err(format!(
                "expected a nats:// or tls:// URL, found {scheme}:// in {part:?}"
            ));
        }
        if let Err(error) = async_nats::ServerAddr::from_str(part) {
            return Err(format!(
                "expected a URL such as nats://host:4222, found {part:?}: {error}"
            ));
        }
    }
    Ok(())
}

/// One bad setting: its key (`cluster.ack_wait`) and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    key: &'static str,
    message: String,
}

impl SettingsError {
    /// The dotted key, as written in the TOML file: `cluster.ack_wait`.
    pub fn key(&self) -> &'static str {
        self.key
    }

    /// What was expected and what was found, without the key.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// The settings that [`ClusterSettingsBuilder::build`] refused, each with its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidSettings {
    issues: Vec<SettingsError>,
}

impl InvalidSettings {
    /// Every bad setting, in the order of the builder's checks.
    pub fn issues(&self) -> &[SettingsError] {
        &self.issues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(builder: ClusterSettingsBuilder) -> Vec<&'static str> {
        builder
            .build()
            .unwrap_err()
            .issues()
            .iter()
            .map(SettingsError::key)
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        let settings = ClusterSettings::builder("127.0.0.1:4222").build().unwrap();
        assert_eq!(settings.prefix(), "taskhost");
        assert_eq!(settings.ack_wait(), Duration::from_secs(30));
        assert_eq!(settings.lease_interval(), Duration::from_secs(10));
        assert_eq!(settings.max_deliver(), 5);
        assert_eq!(settings.credentials(), &Credentials::None);
        assert!(settings.results_max_age() >= settings.duplicate_window());
    }

    #[test]
    fn each_bad_setting_is_named_by_its_key() {
        let builder = ClusterSettings::builder("http://x")
            .prefix("a.b")
            .ack_wait(Duration::from_millis(10))
            .max_deliver(0)
            .connect_timeout(Duration::ZERO)
            .duplicate_window(Duration::ZERO)
            .tls_ca("/no/such/ca.pem");
        assert_eq!(
            keys(builder),
            [
                "cluster.url",
                "cluster.prefix",
                "cluster.ack_wait",
                "cluster.max_deliver",
                "cluster.tls_ca",
                "cluster.connect_timeout",
                "cluster.duplicate_window",
            ]
        );
        let error = ClusterSettings::builder("ws://x:1").build().unwrap_err();
        assert_eq!(
            error.to_string(),
            "cluster.url: expected a nats:// or tls:// URL, found ws:// in \"ws://x:1\""
        );
        let error = ClusterSettings::builder("")
            .duplicate_window(Duration::from_secs(48 * 3600))
            .build()
            .unwrap_err();
        assert_eq!(
            error
                .issues()
                .iter()
                .map(SettingsError::key)
                .collect::<Vec<_>>(),
            ["cluster.url", "cluster.results_max_age"]
        );
    }

    #[test]
    fn credentials_are_a_user_and_password_or_a_token() {
        let url = "nats://127.0.0.1:4222";
        let settings = ClusterSettings::builder(url)
            .user("u")
            .password("secret")
            .build()
            .unwrap();
        assert_eq!(
            settings.credentials(),
            &Credentials::UserPassword {
                user: "u".into(),
                password: "secret".into()
            }
        );
        let shown = format!("{settings:?}");
        assert!(!shown.contains("secret"), "{shown}");
        let token = ClusterSettings::builder(url)
            .token("s3cr3t-t0ken")
            .build()
            .unwrap();
        assert!(!format!("{token:?}").contains("s3cr3t"));
        assert_eq!(
            keys(ClusterSettings::builder(url).user("u")),
            ["cluster.password"]
        );
        assert_eq!(
            keys(ClusterSettings::builder(url).password("p")),
            ["cluster.user"]
        );
        assert_eq!(
            keys(
                ClusterSettings::builder(url)
                    .user("u")
                    .password("p")
                    .token("t")
            ),
            ["cluster.token"]
        );
        assert_eq!(
            keys(ClusterSettings::builder(url).token("")),
            ["cluster.token"]
        );
    }

    #[test]
    fn several_urls_are_checked_each() {
        assert!(ClusterSettings::builder("nats://a:1, tls://b:2")
            .build()
            .is_ok());
        assert_eq!(
            keys(ClusterSettings::builder("nats://a:1,nats://b:notaport")),
            ["cluster.url"]
        );
    }
}
