//! The TLS conformance suite against the s2n backend (blinding off, so failed handshakes close at once).

mod tls_support;

use tls_support as suite;

fn provider() -> std::sync::Arc<dyn pingora_core::tls::TlsProvider> {
    std::sync::Arc::new(pingora_s2n::S2nProvider::new().with_max_blinding_delay(0))
}

tls_support::conformance_suite!();

/// `s2n_config_cache_size: 0` keeps no client configuration, and with it no session ticket:
/// every handshake is a full one. The default cache resumes (the `resumption` case above).
#[tokio::test]
async fn config_cache_size_zero_gives_up_resumption() {
    use std::sync::Arc;

    use pingora_core::connectors::{ConnectorOptions, TransportConnector};
    use pingora_core::listeners::TlsSettings;
    use pingora_core::protocols::tls::TlsStream;
    use pingora_test_support::tls::{peer, Pki};

    let provider = provider();
    let pki = Pki::new("s2n cache CA");
    let leaf = pki.server(&["localhost"]);
    let server = suite::TlsServer::echo(
        &provider,
        TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap(),
    )
    .await;
    let options = ConnectorOptions {
        s2n_config_cache_size: Some(0),
        ..ConnectorOptions::new(16)
    };
    let connector = TransportConnector::new(Some(options));
    connector.set_tls_provider(Arc::clone(&provider));
    let peer = peer(server.addr, "localhost", &pki);
    for attempt in 0..2 {
        let stream = suite::round_trip(&connector, &peer)
            .await
            .expect("round trip");
        let tls = stream.as_any().downcast_ref::<TlsStream>().unwrap();
        assert!(!tls.handshake_info().resumed, "attempt {attempt} resumed");
    }
}
