//! A server that requires TLS, trusted through `cluster.tls_ca` (rustls on ring).
//!
//! `certs/` holds a test CA (`ca.pem`), a server certificate it signed for 127.0.0.1 and
//! localhost (`server.pem`, `server-key.pem`, valid for 100 years) and an unrelated CA
//! (`other-ca.pem`); the CAs' keys were thrown away. Made with `openssl req -x509 -newkey ec`.

use std::path::PathBuf;
use std::time::Duration;

use taskhost_cluster::testing::NatsServer;
use taskhost_cluster::{Client, ClusterSettings, Queue};

use crate::support::echo;

fn certs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/certs")
}

#[test]
fn a_tls_server_is_reached_through_its_ca_and_refused_without_it() {
    let server = NatsServer::start_tls(certs().join("server.pem"), certs().join("server-key.pem"));
    let connect = |ca: Option<&str>| {
        let mut builder =
            ClusterSettings::builder(server.url()).connect_timeout(Duration::from_secs(3));
        if let Some(ca) = ca {
            builder = builder.tls_ca(certs().join(ca));
        }
        Client::connect(&builder.build().unwrap())
    };
    let client = connect(Some("ca.pem")).unwrap();
    let queue = Queue::open(&client).unwrap();
    let published = queue.publish_item(&echo("r1", "over tls")).unwrap();
    assert_eq!(
        queue.item_at(published.sequence).unwrap().unwrap().item_id,
        "over tls"
    );

    for ca in [Some("other-ca.pem"), None] {
        let error = connect(ca).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!(
                "cannot connect to the NATS server at {}",
                server.url()
            )),
            "{ca:?}: {error}"
        );
    }
    let error = connect(Some("other-ca.pem")).unwrap_err().to_string();
    assert!(error.contains("TLS failed (cluster.tls_ca)"), "{error}");
}
