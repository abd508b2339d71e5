//! `[cluster]`: the NATS JetStream server that `taskhost worker` and `taskhost submit` share,
//! checked into [`ClusterConfig`]. The connection's settings are `taskhost-cluster`'s own
//! ([`ClusterSettings`], whose builder checks them and names each bad key); this file parses
//! the durations and counts, adds the submitter's own setting and resolves a relative CA file.

use std::path::Path;
use std::time::Duration;

use taskhost_cluster::ClusterSettings;

use super::duration::{format_duration, parse_duration};
use super::raw::{RawCluster, RawConfig};

/// How long an item may wait while no live worker serves its plugin, by default.
pub const DEFAULT_WORKER_WAIT: Duration = Duration::from_secs(30);

/// The `[cluster]` table, checked.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// How to reach the server, and what every worker and submitter must agree on.
    pub connection: ClusterSettings,
    /// How long `taskhost submit` lets an item wait while no live worker has loaded its
    /// plugin (no worker pulls from, or holds items of, that plugin's queue) before it records
    /// the item `rejected` and takes it off the queue.
    pub worker_wait: Duration,
}

/// Checks `[cluster]`; each problem goes to `issue` with its key.
pub(super) fn validate(
    raw: &RawCluster,
    issue: &mut dyn FnMut(&str, String),
) -> Option<ClusterConfig> {
    let mut problems = Problems::default();
    let Some(url) = raw.url.clone() else {
        issue(
            "cluster",
            "expected a `url`, the NATS server's (such as \"nats://127.0.0.1:4222\"), found none"
                .to_owned(),
        );
        return None;
    };
    let mut builder = ClusterSettings::builder(url);
    if let Some(prefix) = &raw.prefix {
        builder = builder.prefix(prefix.clone());
    }
    if let Some(ack_wait) = problems.duration("cluster.ack_wait", &raw.ack_wait) {
        builder = builder.ack_wait(ack_wait);
    }
    if let Some(max_deliver) = raw.max_deliver {
        match u32::try_from(max_deliver) {
            Ok(max_deliver) => builder = builder.max_deliver(max_deliver),
            Err(_) => problems.add(
                "cluster.max_deliver",
                format!(
                    "expected an integer from 1 to {}, found {max_deliver}",
                    u32::MAX
                ),
            ),
        }
    }
    if let Some(user) = &raw.user {
        builder = builder.user(user.clone());
    }
    if let Some(password) = &raw.password {
        builder = builder.password(password.clone());
    }
    if let Some(token) = &raw.token {
        builder = builder.token(token.clone());
    }
    if let Some(tls_ca) = &raw.tls_ca {
        builder = builder.tls_ca(tls_ca.clone());
    }
    if let Some(timeout) = problems.duration("cluster.connect_timeout", &raw.connect_timeout) {
        builder = builder.connect_timeout(timeout);
    }
    if let Some(window) = problems.duration("cluster.duplicate_window", &raw.duplicate_window) {
        builder = builder.duplicate_window(window);
    }
    if let Some(max_age) = problems.duration("cluster.results_max_age", &raw.results_max_age) {
        builder = builder.results_max_age(max_age);
    }
    let worker_wait = problems
        .duration("cluster.worker_wait", &raw.worker_wait)
        .unwrap_or(DEFAULT_WORKER_WAIT);
    if worker_wait < Duration::from_secs(1) {
        problems.add(
            "cluster.worker_wait",
            format!(
                "expected at least 1s (a worker must have a moment to be seen), found {:?}",
                format_duration(worker_wait)
            ),
        );
    }
    let connection = builder.build();
    if let Err(invalid) = &connection {
        for problem in invalid.issues() {
            problems.add(problem.key(), problem.message().to_owned());
        }
    }
    if !problems.0.is_empty() {
        for (key, message) in problems.0 {
            issue(key, message);
        }
        return None;
    }
    Some(ClusterConfig {
        connection: connection.ok()?,
        worker_wait,
    })
}

/// What is wrong with the table so far, by key.
#[derive(Default)]
struct Problems(Vec<(&'static str, String)>);

impl Problems {
    fn add(&mut self, key: &'static str, message: String) {
        self.0.push((key, message));
    }

    fn duration(&mut self, key: &'static str, value: &Option<String>) -> Option<Duration> {
        match parse_duration(value.as_deref()?) {
            Ok(duration) => Some(duration),
            Err(message) => {
                self.add(key, message);
                None
            }
        }
    }
}

/// A relative `cluster.tls_ca` is taken from the folder of the file that names it (`base`),
/// never from wherever taskhost runs; with no such folder it is left as it is (and refused
/// when it cannot be read).
pub(super) fn resolve_paths(raw: &mut RawConfig, base: Option<&Path>) {
    let (Some(cluster), Some(base)) = (raw.cluster.as_mut(), base) else {
        return;
    };
    if let Some(ca) = cluster.tls_ca.as_mut() {
        if Path::new(ca.as_str()).is_relative() && !ca.is_empty() {
            *ca = base.join(&*ca).display().to_string();
        }
    }
}

/// The table with every default filled in, for `config show`; secrets are not printed.
pub(super) fn to_raw(config: &ClusterConfig) -> RawCluster {
    use taskhost_cluster::Credentials;
    let connection = &config.connection;
    let hidden = || Some("<hidden>".to_owned());
    let (user, password, token) = match connection.credentials() {
        Credentials::UserPassword { user, .. } => (Some(user.clone()), hidden(), None),
        Credentials::Token(_) => (None, None, hidden()),
        _ => (None, None, None),
    };
    RawCluster {
        url: Some(connection.url().to_owned()),
        prefix: Some(connection.prefix().to_owned()),
        ack_wait: Some(format_duration(connection.ack_wait())),
        max_deliver: Some(i64::from(connection.max_deliver())),
        user,
        password,
        token,
        tls_ca: connection.tls_ca().map(|ca| ca.display().to_string()),
        connect_timeout: Some(format_duration(connection.connect_timeout())),
        duplicate_window: Some(format_duration(connection.duplicate_window())),
        results_max_age: Some(format_duration(connection.results_max_age())),
        worker_wait: Some(format_duration(config.worker_wait)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load_from, EMBEDDED_DEFAULT};
    use super::*;

    fn load(text: &str, env: &[(&str, &str)]) -> Result<super::super::Loaded, Vec<String>> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        load_from(
            EMBEDDED_DEFAULT,
            Some(("/etc/th/my.toml".to_owned(), text.to_owned())),
            &env,
        )
        .map_err(|error| error.issues().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn no_table_no_cluster_and_a_table_needs_a_url() {
        assert!(load("", &[]).unwrap().settings.cluster.is_none());
        assert_eq!(
            load("[cluster]\nprefix = \"x\"\n", &[]).unwrap_err(),
            [
                "/etc/th/my.toml:1: key `cluster`: expected a `url`, the NATS server's (such as \
              \"nats://127.0.0.1:4222\"), found none"
            ]
        );
    }

    #[test]
    fn every_key_is_read_and_defaults_fill_the_rest() {
        let text = "[cluster]\nurl = \"nats://h:4222\"\nprefix = \"batch\"\nack_wait = \"10s\"\n\
                    max_deliver = 3\nuser = \"u\"\npassword = \"p\"\nworker_wait = \"5s\"\n";
        let cluster = load(text, &[]).unwrap().settings.cluster.unwrap();
        let connection = &cluster.connection;
        assert_eq!(connection.url(), "nats://h:4222");
        assert_eq!(connection.prefix(), "batch");
        assert_eq!(connection.ack_wait(), Duration::from_secs(10));
        assert_eq!(connection.max_deliver(), 3);
        assert_eq!(connection.connect_timeout(), Duration::from_secs(5));
        assert_eq!(cluster.worker_wait, Duration::from_secs(5));
        let shown = to_raw(&cluster);
        assert_eq!(shown.password.as_deref(), Some("<hidden>"));
        assert_eq!(shown.user.as_deref(), Some("u"));
        assert_eq!(shown.worker_wait.as_deref(), Some("5s"));
        // The environment reaches the table too.
        let cluster = load(text, &[("TASKHOST_CLUSTER__MAX_DELIVER", "9")])
            .unwrap()
            .settings
            .cluster
            .unwrap();
        assert_eq!(cluster.connection.max_deliver(), 9);
    }

    #[test]
    fn each_bad_key_is_named_with_its_line() {
        let text = "[cluster]\nurl = \"http://h\"\nack_wait = \"10 s\"\nmax_deliver = 0\n\
                    user = \"u\"\nworker_wait = \"10ms\"\nurl_typo = 1\n";
        let found = load(text, &[]).unwrap_err();
        assert_eq!(found.len(), 1, "unknown keys are reported first: {found:?}");
        assert!(found[0].starts_with("/etc/th/my.toml:7: key `cluster.url_typo`: unknown field"));
        let found = load(&text.replace("url_typo = 1\n", ""), &[]).unwrap_err();
        let keys: Vec<&str> = found
            .iter()
            .map(|line| line.split('`').nth(1).unwrap_or_default())
            .collect();
        assert_eq!(
            keys,
            [
                "cluster.ack_wait",
                "cluster.worker_wait",
                "cluster.url",
                "cluster.max_deliver",
                "cluster.password",
            ],
            "{found:#?}"
        );
        assert!(found[0].starts_with("/etc/th/my.toml:3: "), "{found:?}");
        assert!(found[3].starts_with("/etc/th/my.toml:4: "), "{found:?}");
        assert!(found[4].contains("expected a password with cluster.user"));
    }

    #[test]
    fn a_relative_ca_file_is_taken_from_the_config_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not checked here").unwrap();
        let config = dir.path().join("taskhost.toml");
        let text = "[cluster]\nurl = \"tls://h:4222\"\ntls_ca = \"ca.pem\"\n";
        let loaded = load_from(
            EMBEDDED_DEFAULT,
            Some((config.display().to_string(), text.to_owned())),
            &[],
        )
        .unwrap();
        let cluster = loaded.settings.cluster.unwrap();
        assert_eq!(
            cluster.connection.tls_ca(),
            Some(dir.path().join("ca.pem").as_path())
        );
        let missing = load(text, &[]).unwrap_err();
        assert!(
            missing[0]
                .starts_with("/etc/th/my.toml:3: key `cluster.tls_ca`: cannot read /etc/th/ca.pem"),
            "{missing:?}"
        );
    }
}
