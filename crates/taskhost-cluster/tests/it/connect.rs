//! Connecting: one clear error within the bound, credentials checked.

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use taskhost_cluster::testing::NatsServer;
use taskhost_cluster::{Client, ClusterError, ClusterSettings, Credentials};

fn connect(url: &str, timeout: Duration) -> (Result<Client, ClusterError>, Duration) {
    let settings = ClusterSettings::builder(url)
        .connect_timeout(timeout)
        .build()
        .unwrap();
    let started = Instant::now();
    let result = Client::connect(&settings);
    (result, started.elapsed())
}

#[test]
fn nothing_listening_is_one_error_at_once() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let (result, took) = connect(&url, Duration::from_secs(2));
    let error = result.unwrap_err();
    assert!(matches!(error, ClusterError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot connect to the NATS server at {url}: ")),
        "{message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
}

#[test]
fn a_server_that_says_nothing_times_out_within_the_bound() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("nats://{}", listener.local_addr().unwrap());
    // Accepts connections and never answers (holds them open until the test ends).
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(8) {
            held.push(stream);
        }
    });
    let (result, took) = connect(&url, Duration::from_millis(500));
    let message = result.unwrap_err().to_string();
    assert!(message.contains("cannot connect"), "{message}");
    assert!(
        message.contains("500ms") || message.contains("timed out"),
        "{message}"
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[test]
fn wrong_credentials_are_refused_in_words_that_name_the_keys() {
    let server = NatsServer::start_with(Credentials::UserPassword {
        user: "worker".into(),
        password: "right".into(),
    });
    let with = |user: &str, password: &str| {
        let settings = ClusterSettings::builder(server.url())
            .user(user)
            .password(password)
            .build()
            .unwrap();
        Client::connect(&settings)
    };
    let error = with("worker", "wrong").unwrap_err().to_string();
    assert!(
        error.ends_with(
            "the server refused the credentials (cluster.user and cluster.password, or \
             cluster.token)"
        ),
        "{error}"
    );
    let (none, _) = connect(&server.url(), Duration::from_secs(2));
    assert!(none.is_err());
    let client = with("worker", "right").unwrap();
    assert!(client.server_version().starts_with("2."), "{client:?}");

    let server = NatsServer::start_with(Credentials::Token("s3cret".into()));
    let with_token = |token: &str| {
        let settings = ClusterSettings::builder(server.url())
            .token(token)
            .build()
            .unwrap();
        Client::connect(&settings)
    };
    assert!(with_token("guess")
        .unwrap_err()
        .to_string()
        .contains("refused the credentials"));
    with_token("s3cret").unwrap();
}
