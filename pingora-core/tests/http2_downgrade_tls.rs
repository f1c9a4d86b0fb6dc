//! An upstream that negotiates HTTP/2 over TLS but answers `HTTP_1_1_REQUIRED`: the request is
//! retryable and every later connection to that peer offers only `http/1.1` in ALPN. And a
//! server whose plaintext connections are HTTP/2 only (`h2c_only`) still lets ALPN decide on
//! TLS.

mod tls_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::apps::{HttpServerOptions, ServerApp};
use pingora_core::connectors::http::Connector;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::{HttpTask, ServerSession};
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::server::ShutdownWatch;
use pingora_error::{ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_test_support::raw::RawConn;
use tls_support::{peer, Pki, TlsServer, TIMEOUT};
use tokio::sync::mpsc;

/// Resets every HTTP/2 stream with `HTTP_1_1_REQUIRED`; answers HTTP/1.1 requests with
/// "from h1". Counts both.
#[derive(Default)]
struct WantsH1 {
    h2_streams: AtomicUsize,
    h1_requests: AtomicUsize,
}

#[async_trait]
impl ServerApp for WantsH1 {
    async fn process_new(self: &Arc<Self>, io: Stream, _: &ShutdownWatch) -> Option<Stream> {
        if io.selected_alpn_proto() == Some(ALPN::H2) {
            let mut conn = h2::server::handshake(io).await.ok()?;
            while let Some(Ok((_request, mut respond))) = conn.accept().await {
                self.h2_streams.fetch_add(1, Ordering::SeqCst);
                respond.send_reset(h2::Reason::HTTP_1_1_REQUIRED);
            }
            return None;
        }
        let mut conn = RawConn::new(io);
        while conn.read_request().await.is_some() {
            self.h1_requests.fetch_add(1, Ordering::SeqCst);
            conn.try_send(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nfrom h1")
                .await
                .ok()?;
        }
        None
    }
}

fn get() -> Box<RequestHeader> {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Host", "localhost").unwrap();
    Box::new(req)
}

/// Sends a GET and reads the whole response body.
async fn exchange(session: &mut HttpSession) -> Result<Vec<u8>> {
    session.write_request_header(get()).await?;
    let mut body = Vec::new();
    loop {
        let task = tokio::time::timeout(TIMEOUT, session.read_response_task())
            .await
            .expect("the response stalled")?;
        let end = task.is_end();
        if let HttpTask::Body(Some(data), _) = task {
            body.extend_from_slice(&data);
        }
        if end {
            return Ok(body);
        }
    }
}

#[tokio::test]
async fn h2h1_peer_asking_for_http11_is_downgraded() {
    let provider = pingora_rustls::provider();
    let pki = Pki::new("downgrade CA");
    let leaf = pki.server(&["localhost"]);
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.enable_h2();
    let app = Arc::new(WantsH1::default());
    let (_tx, seen) = mpsc::unbounded_channel();
    let server = TlsServer::start(&provider, settings, ArcApp(Arc::clone(&app)), seen).await;

    let connector = Connector::new(None);
    connector
        .transport()
        .set_tls_provider(Arc::clone(&provider));
    let mut peer = peer(server.addr, "localhost", &pki);
    peer.options.set_http_version(2, 1);

    // ALPN picks HTTP/2; the server refuses the stream and asks for HTTP/1.1.
    let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
    assert!(session.as_http2().is_some(), "ALPN negotiated h2");
    let e = exchange(&mut session).await.unwrap_err();
    assert_eq!(*e.etype(), ErrorType::H2Downgrade, "{e}");
    assert!(
        e.retry(),
        "the peer accepts HTTP/1, so the request may be retried"
    );
    drop(session);

    // The retry and everything after it speak HTTP/1.1.
    for _ in 0..2 {
        let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
        assert!(session.as_http1().is_some(), "HTTP/1.1 after the downgrade");
        assert_eq!(exchange(&mut session).await.unwrap(), b"from h1");
        connector.release_http_session(session, &peer, None).await;
    }
    assert_eq!(app.h2_streams.load(Ordering::SeqCst), 1);
    assert_eq!(app.h1_requests.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn h2_only_peer_asking_for_http11_fails_without_retry() {
    let provider = pingora_rustls::provider();
    let pki = Pki::new("no-downgrade CA");
    let leaf = pki.server(&["localhost"]);
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.enable_h2();
    let app = Arc::new(WantsH1::default());
    let (_tx, seen) = mpsc::unbounded_channel();
    let server = TlsServer::start(&provider, settings, ArcApp(Arc::clone(&app)), seen).await;

    let connector = Connector::new(None);
    connector
        .transport()
        .set_tls_provider(Arc::clone(&provider));
    let mut peer = peer(server.addr, "localhost", &pki);
    peer.options.set_http_version(2, 2);

    for _ in 0..2 {
        let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
        assert!(
            session.as_http2().is_some(),
            "an HTTP/2-only peer stays on HTTP/2"
        );
        let e = exchange(&mut session).await.unwrap_err();
        assert_eq!(*e.etype(), ErrorType::H2Downgrade, "{e}");
        assert!(!e.retry(), "nothing to fall back to");
    }
    assert_eq!(app.h1_requests.load(Ordering::SeqCst), 0);
}

/// Lets the test keep a handle on the app's counters.
struct ArcApp(Arc<WantsH1>);

#[async_trait]
impl ServerApp for ArcApp {
    async fn process_new(self: &Arc<Self>, io: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        self.0.process_new(io, shutdown).await
    }
}

/// Answers with the request's HTTP version.
struct Version;

#[async_trait]
impl ServeHttp for Version {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let body = format!("{:?}", session.req_header().version).into_bytes();
        http::Response::builder()
            .header("content-length", body.len())
            .body(body)
            .unwrap()
    }
}

/// `h2c_only` is about plaintext connections: over TLS, a client that picks `http/1.1` in ALPN
/// is served HTTP/1.1, one that picks `h2` HTTP/2.
#[tokio::test]
async fn h2c_only_leaves_tls_connections_to_alpn() {
    let provider = pingora_rustls::provider();
    let pki = Pki::new("h2c-only CA");
    let leaf = pki.server(&["localhost"]);
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.enable_h2();
    let mut http = HttpServer::new_app(Version);
    let mut options = HttpServerOptions::default();
    options.h2c_only = true;
    http.server_options = Some(options);
    let (_tx, seen) = mpsc::unbounded_channel();
    let server = TlsServer::start(&provider, settings, http, seen).await;

    let connector = Connector::new(None);
    connector
        .transport()
        .set_tls_provider(Arc::clone(&provider));
    for (version, expected) in [(1, "HTTP/1.1"), (2, "HTTP/2.0")] {
        let mut peer = peer(server.addr, "localhost", &pki);
        peer.options.set_http_version(version, version);
        let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
        assert_eq!(session.as_http2().is_some(), version == 2);
        let body = exchange(&mut session).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&body), expected);
    }
}
