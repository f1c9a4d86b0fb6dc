//! The core's built-in metrics of TLS handshakes, HTTP/2 streams and upstream sessions, on
//! both sides of real connections (rustls).
//!
//! Metrics are process-wide: this file is a test binary of its own, with one test, so that
//! the counts it asserts are those of its own connections.

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::connectors::http::Connector;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::metrics::{self, Samples};
use pingora_core::protocols::http::ServerSession;
use pingora_http::RequestHeader;
use pingora_test_support::raw::RawConn;
use pingora_test_support::tls::{peer, Pki};
use pingora_test_support::TestService;

struct Hello;

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, _session: &mut ServerSession) -> http::Response<Vec<u8>> {
        http::Response::new(b"hello".to_vec())
    }
}

/// The value of the sample of family `name` whose label is `value` ("" without a label).
fn sample(name: &str, value: &str) -> i64 {
    let family = metrics::families()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no metric {name}"));
    let found = match family.samples {
        Samples::Counters(samples) => samples
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, c)| c.get() as i64),
        Samples::Gauges(samples) => samples
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, g)| g.get()),
        Samples::Sampled(read) => Some(read()),
        Samples::Histograms(samples) => samples
            .iter()
            .find(|(v, _)| *v == value)
            .map(|(_, h)| h.snapshot().count as i64),
    };
    found.unwrap_or_else(|| panic!("no {name}{{{value}}}"))
}

/// Every sample the test looks at, in one snapshot.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    tls_ok: [i64; 2],
    tls_failed: [i64; 2],
    h2_opened: [i64; 2],
    h2_active_upstream: i64,
    sessions_new: i64,
    connects: i64,
}

fn counts() -> Counts {
    let sides = |name| [sample(name, "downstream"), sample(name, "upstream")];
    Counts {
        tls_ok: sides("pingora_tls_handshakes_total"),
        tls_failed: sides("pingora_tls_handshake_failures_total"),
        h2_opened: sides("pingora_h2_streams_opened_total"),
        h2_active_upstream: sample("pingora_h2_streams_active", "upstream"),
        sessions_new: sample("pingora_upstream_sessions_total", "new"),
        connects: sample("pingora_upstream_connect_seconds", ""),
    }
}

#[tokio::test]
async fn tls_handshakes_and_h2_streams_are_counted_on_both_sides() {
    let provider = pingora_rustls::provider();
    let pki = Pki::new("metrics");
    let leaf = pki.server(&["localhost"]);
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.enable_h2();
    let service = TestService::start_tls(HttpServer::new_app(Hello), &provider, settings).await;
    let connector = Connector::new(None);
    connector
        .transport()
        .set_tls_provider(Arc::clone(&provider));
    let start = counts();

    // One HTTP/2 exchange over a new TLS connection.
    let mut h2_peer = peer(service.addr, "localhost", &pki);
    h2_peer.options.set_http_version(2, 2);
    let (mut session, reused) = connector.get_http_session(&h2_peer).await.unwrap();
    assert!(!reused);
    assert_eq!(session.http_version(), 2);
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("host", "localhost").unwrap();
    session.write_request_header(Box::new(req)).await.unwrap();
    session.finish_request_body().await.unwrap();
    session.read_response_header().await.unwrap();
    assert_eq!(session.response_header().unwrap().status, 200);
    while session.read_response_body().await.unwrap().is_some() {}
    let during = counts();
    drop(session);
    let after = counts();
    // The server answered, so its handshake and its stream were counted too.
    let mut expected = start.clone();
    expected.tls_ok = [start.tls_ok[0] + 1, start.tls_ok[1] + 1];
    expected.h2_opened = [start.h2_opened[0] + 1, start.h2_opened[1] + 1];
    expected.h2_active_upstream = start.h2_active_upstream + 1;
    expected.sessions_new = start.sessions_new + 1;
    expected.connects = start.connects + 1;
    assert_eq!(during, expected);
    expected.h2_active_upstream = start.h2_active_upstream;
    assert_eq!(after, expected, "the stream ended with its session");

    // A client that is not speaking TLS: a failed handshake on the server's side, counted
    // before the server closes the connection.
    let mut garbage = RawConn::connect(service.addr).await;
    garbage.send(b"GET / HTTP/1.1\r\n\r\n").await;
    garbage.read_to_close().await;
    let mut failed = after.clone();
    failed.tls_failed[0] += 1;
    assert_eq!(counts(), failed);

    // A server whose certificate is not for the name asked: our side's handshake fails (the
    // server's may end either way, so only ours is checked), and so does the connection.
    let wrong_name = peer(service.addr, "not-localhost.example", &pki);
    assert!(connector.get_http_session(&wrong_name).await.is_err());
    let now = counts();
    assert_eq!(now.tls_failed[1], after.tls_failed[1] + 1);
    assert_eq!(now.tls_ok[1], after.tls_ok[1]);
    assert_eq!(
        now.connects, after.connects,
        "failed connects are not timed"
    );
    assert_eq!(now.sessions_new, after.sessions_new);
}
