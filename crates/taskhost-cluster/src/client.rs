//! [`Client`]: one connection to the server and the small tokio runtime that drives it, behind
//! blocking methods.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::runtime::Runtime;

use crate::error::ClusterError;
use crate::names::Names;
use crate::settings::{ClusterSettings, Credentials};

/// The oldest server the client accepts: 2.10 brought the consumer `Create` action (strict,
/// idempotent creation) and multiple filters that the client relies on.
const OLDEST_SERVER: (u32, u32) = (2, 10);

/// How long a JetStream request (create a stream, publish and wait for the ack, delete a
/// message) may take once connected. While the server restarts, requests fail after this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long dropping the last handle waits for unsent acks and publications to reach the
/// server.
const FLUSH_ON_DROP: Duration = Duration::from_secs(2);

/// A connection to the NATS server, usable from plain threads.
///
/// It owns a tokio runtime with one worker thread, which drives the connection (pings,
/// reconnects, incoming messages, lease extensions) whether or not a caller is waiting. Every
/// method blocks the calling thread; none may be called from inside an async runtime. Clones
/// are cheap and share the connection; the last one to drop flushes what is unsent (for up to
/// 2 s) and stops the runtime.
///
/// When the server goes away after connecting, the client reconnects by itself, without end;
/// requests made meanwhile fail after 5 s with [`ClusterError::Request`] or
/// [`ClusterError::TimedOut`].
///
/// # Examples
///
/// ```no_run
/// use taskhost_cluster::{Client, ClusterSettings};
///
/// let settings = ClusterSettings::builder("nats://127.0.0.1:4222").build()?;
/// let client = Client::connect(&settings)?;
/// println!("connected to nats-server {}", client.server_version());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    /// Taken in `Drop`, to shut it down with a bound.
    runtime: Option<Runtime>,
    /// The core NATS connection (cancels, advisories).
    nats: async_nats::Client,
    /// The JetStream API over `nats`.
    jetstream: jetstream::Context,
    settings: ClusterSettings,
    names: Names,
    /// The version the server reported when the client connected, `2.15.1`.
    server_version: String,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.settings.url())
            .field("prefix", &self.inner.settings.prefix())
            .field("server_version", &self.inner.server_version)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the server of `settings` and checks that it runs JetStream 2.10 or later.
    ///
    /// Fails within `connect_timeout` (plus a few milliseconds) with one clear
    /// [`ClusterError::Connect`] when the server is unreachable, silent or refuses the
    /// credentials, and with [`ClusterError::UnsuitableServer`] when it is too old or has no
    /// JetStream. It never retries the first connection.
    pub fn connect(settings: &ClusterSettings) -> Result<Client, ClusterError> {
        let url = settings.url().to_owned();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("taskhost-cluster")
            .enable_all()
            .build()
            .map_err(|error| ClusterError::Connect {
                url: url.clone(),
                reason: format!("starting the client's runtime: {error}"),
            })?;
        let timeout = settings.connect_timeout();
        let connected = runtime.block_on(async {
            match tokio::time::timeout(timeout, connect_and_check(settings)).await {
                Ok(result) => result,
                Err(_) => Err(ClusterError::Connect {
                    url: url.clone(),
                    reason: format!(
                        "no answer within {timeout:?} (cluster.connect_timeout); is the server \
                         running and is the address right?"
                    ),
                }),
            }
        });
        let (nats, jetstream, server_version) = match connected {
            Ok(connected) => connected,
            Err(error) => {
                runtime.shutdown_background();
                return Err(error);
            }
        };
        Ok(Client {
            inner: Arc::new(ClientInner {
                runtime: Some(runtime),
                nats,
                jetstream,
                settings: settings.clone(),
                names: Names::new(settings.prefix()),
                server_version,
            }),
        })
    }

    /// The settings the client was made with.
    pub fn settings(&self) -> &ClusterSettings {
        &self.inner.settings
    }

    /// The server's version, as it reported it when the client connected (`2.15.1`).
    pub fn server_version(&self) -> &str {
        &self.inner.server_version
    }

    /// Waits until everything published so far (acks included) has been written to the server.
    pub fn flush(&self) -> Result<(), ClusterError> {
        self.block_on_timeout("flushing to the server", REQUEST_TIMEOUT, async {
            self.inner
                .nats
                .flush()
                .await
                .map_err(|error| ClusterError::request("flushing to the server", error))
        })?
    }

    pub(crate) fn nats(&self) -> &async_nats::Client {
        &self.inner.nats
    }

    pub(crate) fn jetstream(&self) -> &jetstream::Context {
        &self.inner.jetstream
    }

    pub(crate) fn names(&self) -> &Names {
        &self.inner.names
    }

    /// Runs `future` to completion on the calling thread (the runtime's worker keeps driving
    /// the connection meanwhile).
    pub(crate) fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime().block_on(future)
    }

    /// [`Client::block_on`] with a bound (the timer is made inside the runtime, which it
    /// needs): `TimedOut` naming `action` after `after`.
    pub(crate) fn block_on_timeout<F: Future>(
        &self,
        action: &str,
        after: Duration,
        future: F,
    ) -> Result<F::Output, ClusterError> {
        self.block_on(async { tokio::time::timeout(after, future).await })
            .map_err(|_| ClusterError::TimedOut {
                action: action.to_owned(),
                after,
            })
    }

    /// Spawns `future` on the runtime's worker thread. It must not hold a [`Client`]: the last
    /// handle dropping inside the runtime could not stop it.
    pub(crate) fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.runtime().spawn(future)
    }

    fn runtime(&self) -> &Runtime {
        self.inner
            .runtime
            .as_ref()
            .expect("the runtime lives until the last handle drops")
    }
}

impl Drop for ClientInner {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            let nats = self.nats.clone();
            // Acks and lease extensions are sent without waiting for the server; give them a
            // chance to leave before the connection goes.
            let _ =
                runtime.block_on(async { tokio::time::timeout(FLUSH_ON_DROP, nats.flush()).await });
            runtime.shutdown_timeout(Duration::from_millis(200));
        }
    }
}

async fn connect_and_check(
    settings: &ClusterSettings,
) -> Result<(async_nats::Client, jetstream::Context, String), ClusterError> {
    let url = settings.url();
    let urls: Vec<&str> = url.split(',').map(str::trim).collect();
    let nats = connect_options(settings)
        .connect(&urls[..])
        .await
        .map_err(|error| ClusterError::Connect {
            url: url.to_owned(),
            reason: connect_reason(&error),
        })?;
    let info = nats.server_info();
    let unsuitable = |reason: String| ClusterError::UnsuitableServer {
        url: url.to_owned(),
        reason,
    };
    match parse_version(&info.version) {
        Some(version) if version >= OLDEST_SERVER => {}
        _ => {
            return Err(unsuitable(format!(
                "runs {}; the cluster mode needs JetStream 2.10 or later",
                info.version
            )))
        }
    }
    if !info.jetstream {
        return Err(unsuitable(
            "has JetStream off; start it with `nats-server -js` (or `jetstream {}` in its \
             config)"
                .to_owned(),
        ));
    }
    let jetstream = jetstream::ContextBuilder::new()
        .timeout(REQUEST_TIMEOUT)
        .build(nats.clone());
    // The account may still lack JetStream even where the server has it.
    jetstream
        .query_account()
        .await
        .map_err(|error| unsuitable(format!("refuses JetStream to this account: {error}")))?;
    Ok((nats, jetstream, info.version.clone()))
}

fn connect_options(settings: &ClusterSettings) -> async_nats::ConnectOptions {
    let mut options = match settings.credentials() {
        Credentials::None => async_nats::ConnectOptions::new(),
        Credentials::UserPassword { user, password } => {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone())
        }
        Credentials::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
    };
    options = options
        .name("taskhost")
        .connection_timeout(settings.connect_timeout())
        .max_reconnects(None)
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => {
                    tracing::info!(target: "taskhost::cluster", "connected to the NATS server")
                }
                async_nats::Event::Disconnected => tracing::warn!(
                    target: "taskhost::cluster",
                    "disconnected from the NATS server; reconnecting"
                ),
                other => tracing::debug!(target: "taskhost::cluster", "NATS event: {other}"),
            }
        });
    if let Some(ca) = settings.tls_ca() {
        options = options
            .add_root_certificates(ca.to_owned())
            .require_tls(true);
    }
    options
}

/// The reason of a failed first connection, in words a user can act on.
fn connect_reason(error: &async_nats::ConnectError) -> String {
    use async_nats::ConnectErrorKind;
    match error.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            "the server refused the credentials (cluster.user and cluster.password, or \
             cluster.token)"
                .to_owned()
        }
        ConnectErrorKind::TimedOut => "timed out (cluster.connect_timeout)".to_owned(),
        ConnectErrorKind::Tls => format!("TLS failed (cluster.tls_ca): {error}"),
        // rustls's verdict on the server's certificate comes as an I/O error.
        ConnectErrorKind::Io if error.to_string().contains("certificate") => {
            format!("TLS failed (cluster.tls_ca): {error}")
        }
        _ => error.to_string(),
    }
}

/// `(major, minor)` of a server version such as `2.15.1` or `2.11.0-RC.1`.
pub(crate) fn parse_version(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim_start_matches('v').split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::parse_version;

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert_eq!(parse_version("2.15.1"), Some((2, 15)));
        assert_eq!(parse_version("v2.9.25"), Some((2, 9)));
        assert_eq!(parse_version("2.11.0-RC.1"), Some((2, 11)));
        assert!(parse_version("2.9.25").unwrap() < super::OLDEST_SERVER);
        assert!(parse_version("2.10.0").unwrap() >= super::OLDEST_SERVER);
        assert_eq!(parse_version("garbage"), None);
    }
}
