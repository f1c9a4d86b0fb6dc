//! The TLS conformance suite: every check is a function taking a backend's provider, so each
//! backend's test file (`tests/tls_<backend>.rs`) is a list of one-line calls.
//!
//! Certificates are generated at run time (`pingora_test_support::tls`); nothing is
//! committed. Peers are pingora-core's own connector and listener, `curl`, and
//! `openssl s_client`.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::apps::ServerApp;
use pingora_core::connectors::TransportConnector;
use pingora_core::listeners::tls::{HandshakeCallbacks, HandshakeRef, TlsSettings};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::tls::{der, TlsProvider, TlsStream, TlsVersion};
use pingora_core::protocols::{Stream, ALPN};
use pingora_core::tls::CertKey;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{ErrorType, Result};
use pingora_test_support::apps::{next_seen, ByteEcho, Seen, SeenEvents};
pub(crate) use pingora_test_support::tls::{connector, peer, Leaf, Pki, ORG};
pub(crate) use pingora_test_support::{TestService, TIMEOUT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub(crate) mod pingora_shaped;

// === server ===

/// A TLS listener on `127.0.0.1:0` with what its echo application saw of each connection;
/// stopped when dropped.
pub(crate) struct TlsServer {
    pub(crate) addr: SocketAddr,
    pub(crate) seen: SeenEvents,
    service: TestService,
}

impl TlsServer {
    /// Serves the byte echo with `settings` through `provider`.
    pub(crate) async fn echo(provider: &Arc<dyn TlsProvider>, settings: TlsSettings) -> TlsServer {
        let (echo, seen) = ByteEcho::reporting();
        Self::start(provider, settings, echo, seen).await
    }

    /// Serves HTTP (body `hello <version>`) with `settings` through `provider`.
    pub(crate) async fn http(provider: &Arc<dyn TlsProvider>, settings: TlsSettings) -> TlsServer {
        let (_tx, seen) = mpsc::unbounded_channel();
        Self::start(provider, settings, HttpServer::new_app(Hello), seen).await
    }

    /// Serves `app`, whose reports `seen` receives.
    pub(crate) async fn start<A: ServerApp + Send + Sync + 'static>(
        provider: &Arc<dyn TlsProvider>,
        settings: TlsSettings,
        app: A,
        seen: SeenEvents,
    ) -> TlsServer {
        let service = TestService::start_tls(app, provider, settings).await;
        TlsServer {
            addr: service.addr,
            seen,
            service,
        }
    }

    /// What the server saw of its next connection.
    /// See [`TestService::assert_settled`].
    pub(crate) async fn assert_settled(&self, what: &str) {
        self.service.assert_settled(what).await;
    }

    pub(crate) async fn next_seen(&mut self) -> Seen {
        next_seen(&mut self.seen).await
    }
}

struct Hello;

#[async_trait]
impl ServeHttp for Hello {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let body = format!("hello {:?}", session.req_header().version).into_bytes();
        http::Response::builder()
            .header("content-length", body.len())
            .body(body)
            .unwrap()
    }
}

// === client ===

/// Connects, sends a line and expects it back; returns the client stream.
pub(crate) async fn round_trip(connector: &TransportConnector, peer: &HttpPeer) -> Result<Stream> {
    let mut stream = tokio::time::timeout(TIMEOUT, connector.new_stream(peer))
        .await
        .expect("connect timed out")?;
    stream.write_all(b"ping\n").await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = [0u8; 5];
    match tokio::time::timeout(TIMEOUT, stream.read_exact(&mut buf)).await {
        Ok(Ok(_)) => {
            assert_eq!(&buf, b"ping\n");
            Ok(stream)
        }
        // A server may reject a client certificate only after the client finished (TLS 1.3).
        Ok(Err(e)) => Err(pingora_error::Error::because(
            ErrorType::TLSHandshakeFailure,
            "the server closed the connection",
            e,
        )),
        Err(_) => panic!("echo timed out"),
    }
}

fn error_type(result: Result<Stream>) -> ErrorType {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.etype().clone(),
    }
}

// === the suite ===

/// A full handshake both ways, with the digests on both sides.
pub(crate) async fn handshake_and_digest(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("handshake CA");
    let leaf = pki.server(&["localhost"]);
    let mut server = TlsServer::echo(
        &provider,
        TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap(),
    )
    .await;
    let connector = connector(&provider);
    let stream = round_trip(&connector, &peer(server.addr, "localhost", &pki))
        .await
        .expect("handshake");

    let client = stream.get_ssl_digest().expect("client digest");
    assert_eq!(client.version, "TLSv1.3");
    assert!(!client.cipher.is_empty() && client.cipher != "unknown");
    assert_eq!(client.organization.as_deref(), Some(ORG));
    let leaf_der = leaf.cert_key.leaf();
    assert_eq!(client.cert_digest, der::sha256(leaf_der));
    assert_eq!(client.serial_number, der::summarize(leaf_der).serial_number);
    assert!(client.serial_number.is_some());
    assert_eq!(stream.get_timing_digest().len(), 2, "TCP and TLS layers");
    assert!(stream.get_socket_digest().is_some());
    // The peer offers http/1.1 but the listener has no ALPN.
    assert_eq!(stream.selected_alpn_proto(), None);

    let seen = server.next_seen().await;
    let digest = seen.digest.expect("server digest");
    assert_eq!(digest.version, "TLSv1.3");
    assert_eq!(digest.cipher, client.cipher);
    // No client certificate.
    assert!(digest.organization.is_none() && digest.cert_digest.is_empty());
}

/// TLS 1.2 when the listener allows no more.
pub(crate) async fn tls12(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("tls12 CA");
    let leaf = pki.server(&["localhost"]);
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.set_max_version(TlsVersion::Tls12);
    let mut server = TlsServer::echo(&provider, settings).await;
    let stream = round_trip(&connector(&provider), &peer(server.addr, "localhost", &pki))
        .await
        .expect("handshake");
    assert_eq!(stream.get_ssl_digest().unwrap().version, "TLSv1.2");
    assert_eq!(server.next_seen().await.digest.unwrap().version, "TLSv1.2");
}

/// A second connection from the same connector resumes the session.
pub(crate) async fn resumption(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("resumption CA");
    let leaf = pki.server(&["localhost"]);
    let _server = TlsServer::echo(
        &provider,
        TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap(),
    )
    .await;
    let connector = connector(&provider);
    let peer = peer(_server.addr, "localhost", &pki);
    let first = round_trip(&connector, &peer).await.expect("first");
    assert!(
        !first
            .as_any()
            .downcast_ref::<TlsStream>()
            .unwrap()
            .handshake_info()
            .resumed
    );
    // Dropped without a close_notify, as pooled connections often are: still resumable.
    drop(first);
    let second = round_trip(&connector, &peer).await.expect("second");
    let second = second.as_any().downcast_ref::<TlsStream>().unwrap();
    assert!(
        second.handshake_info().resumed,
        "the second handshake was full"
    );
}

/// Callbacks: the certificate chosen by SNI, asynchronously; the completion value stored in
/// the digest; no certificate chosen fails the handshake.
pub(crate) async fn sni_certificate_callback(provider: Arc<dyn TlsProvider>) {
    struct BySni {
        a: Arc<CertKey>,
        b: Arc<CertKey>,
    }
    #[async_trait]
    impl HandshakeCallbacks for BySni {
        async fn certificate_callback(&self, ssl: &mut HandshakeRef) {
            tokio::task::yield_now().await; // the handshake waits for async work
            match ssl.server_name() {
                Some("a.test") => ssl.set_certificate(Arc::clone(&self.a)),
                Some("b.test") => ssl.set_certificate(Arc::clone(&self.b)),
                _ => {}
            }
        }
        async fn handshake_complete_callback(
            &self,
            ssl: &HandshakeRef,
        ) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
            let version = ssl.ssl_digest()?.version;
            Some(Arc::new(format!("{}/{version}", ssl.server_name()?)))
        }
    }
    let pki = Pki::new("sni CA");
    let a = pki.server(&["a.test"]);
    let b = pki.server(&["b.test"]);
    let settings = TlsSettings::with_handshake_callbacks(Box::new(BySni {
        a: Arc::clone(&a.cert_key),
        b: Arc::clone(&b.cert_key),
    }))
    .unwrap();
    let mut server = TlsServer::echo(&provider, settings).await;
    let connector = connector(&provider);
    for (sni, leaf) in [("a.test", &a), ("b.test", &b)] {
        let stream = round_trip(&connector, &peer(server.addr, sni, &pki))
            .await
            .expect("handshake");
        let digest = stream.get_ssl_digest().unwrap();
        assert_eq!(
            digest.cert_digest,
            der::sha256(leaf.cert_key.leaf()),
            "{sni}"
        );
        let seen = server.next_seen().await.digest.unwrap();
        let ext = seen.extension.get::<String>().expect("extension");
        assert_eq!(ext, &format!("{sni}/TLSv1.3"));
    }
    let err = round_trip(&connector, &peer(server.addr, "c.test", &pki))
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ErrorType::TLSHandshakeFailure, "{err}");
}

/// ALPN: server preference with H2H1, h1 only, none configured, h2 only.
pub(crate) async fn alpn(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("alpn CA");
    let leaf = pki.server(&["localhost"]);
    let connector = connector(&provider);
    let with = |alpn: Option<ALPN>| {
        let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
        if let Some(alpn) = alpn {
            settings.set_alpn(alpn);
        }
        settings
    };
    let client = |server: &TlsServer, alpn: ALPN| {
        let mut p = peer(server.addr, "localhost", &pki);
        p.options.alpn = alpn;
        p
    };

    let mut server = TlsServer::echo(&provider, with(Some(ALPN::H2H1))).await;
    for (offer, expected) in [
        (ALPN::H2H1, Some(ALPN::H2)),
        (ALPN::H1, Some(ALPN::H1)),
        (ALPN::H2, Some(ALPN::H2)),
    ] {
        let stream = round_trip(&connector, &client(&server, offer.clone()))
            .await
            .unwrap();
        assert_eq!(stream.selected_alpn_proto(), expected, "offer {offer}");
        assert_eq!(server.next_seen().await.alpn, expected, "offer {offer}");
    }

    let mut server = TlsServer::echo(&provider, with(None)).await;
    let stream = round_trip(&connector, &client(&server, ALPN::H2H1))
        .await
        .unwrap();
    assert_eq!(stream.selected_alpn_proto(), None);
    assert_eq!(server.next_seen().await.alpn, None);

    let server = TlsServer::echo(&provider, with(Some(ALPN::H2))).await;
    let result = round_trip(&connector, &client(&server, ALPN::H1)).await;
    assert_eq!(error_type(result), ErrorType::TLSHandshakeFailure);
}

/// Mutual TLS: a required client certificate present, missing, and from an unknown CA.
pub(crate) async fn mtls(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("mtls CA");
    let leaf = pki.server(&["localhost"]);
    let client_leaf = pki.client("client.test");
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.set_client_ca(pki.ca().to_vec().into_boxed_slice(), true);
    let mut server = TlsServer::echo(&provider, settings).await;
    let connector = connector(&provider);

    let mut with_cert = HttpPeer::new_mtls(
        server.addr,
        "localhost".to_string(),
        Arc::clone(&client_leaf.cert_key),
    );
    with_cert.options.ca = Some(pki.ca());
    round_trip(&connector, &with_cert)
        .await
        .expect("with a client certificate");
    let seen = server.next_seen().await.digest.unwrap();
    assert_eq!(seen.organization.as_deref(), Some(ORG));
    assert_eq!(seen.cert_digest, der::sha256(client_leaf.cert_key.leaf()));

    let without = peer(server.addr, "localhost", &pki);
    let result = round_trip(&connector, &without).await;
    let etype = error_type(result);
    assert!(
        etype == ErrorType::InvalidCert || etype == ErrorType::TLSHandshakeFailure,
        "{etype:?}"
    );

    let other = Pki::new("other CA").client("client.test");
    let mut stranger = HttpPeer::new_mtls(
        server.addr,
        "localhost".to_string(),
        Arc::clone(&other.cert_key),
    );
    stranger.options.ca = Some(pki.ca());
    let etype = error_type(round_trip(&connector, &stranger).await);
    assert!(
        etype == ErrorType::InvalidCert || etype == ErrorType::TLSHandshakeFailure,
        "{etype:?}"
    );
}

/// Upstream verification: failures are `InvalidCert`; the switches and name rules.
pub(crate) async fn verification(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("verify CA");
    let connector = connector(&provider);
    let serve = |leaf: Leaf| {
        let provider = Arc::clone(&provider);
        async move {
            TlsServer::echo(
                &provider,
                TlsSettings::with_cert_key(leaf.cert_key).unwrap(),
            )
            .await
        }
    };

    // Expired.
    let expired = serve(pki.leaf(&["localhost"], false, true)).await;
    let result = round_trip(&connector, &peer(expired.addr, "localhost", &pki)).await;
    assert_eq!(error_type(result), ErrorType::InvalidCert, "expired");
    let mut lax = peer(expired.addr, "localhost", &pki);
    lax.options.verify_cert = false;
    round_trip(&connector, &lax).await.expect("verify_cert off");

    // Unknown CA.
    let server = serve(pki.server(&["localhost", "my-host.test", "*.wild.test"])).await;
    let stranger = Pki::new("unrelated CA");
    let result = round_trip(&connector, &peer(server.addr, "localhost", &stranger)).await;
    assert_eq!(error_type(result), ErrorType::InvalidCert, "unknown CA");
    // An empty SNI turns verification off.
    round_trip(&connector, &peer(server.addr, "", &stranger))
        .await
        .expect("no SNI, no verification");

    // Wrong host.
    let result = round_trip(&connector, &peer(server.addr, "other.test", &pki)).await;
    assert_eq!(error_type(result), ErrorType::InvalidCert, "wrong host");
    let mut no_host = peer(server.addr, "other.test", &pki);
    no_host.options.verify_hostname = false;
    round_trip(&connector, &no_host)
        .await
        .expect("verify_hostname off");
    let mut alt = peer(server.addr, "other.test", &pki);
    alt.options.alternative_cn = Some("localhost".to_string());
    round_trip(&connector, &alt).await.expect("alternative_cn");
    // Underscores in the leftmost label match the certificate's dashes.
    round_trip(&connector, &peer(server.addr, "my_host.test", &pki))
        .await
        .expect("underscore variant");
    round_trip(&connector, &peer(server.addr, "x.wild.test", &pki))
        .await
        .expect("wildcard");
    let result = round_trip(&connector, &peer(server.addr, "x.y.wild.test", &pki)).await;
    assert_eq!(error_type(result), ErrorType::InvalidCert, "wildcard depth");
}

/// Bytes that are not a TLS handshake close the connection without an answer in plaintext,
/// a client that stalls is cut off by the handshake timeout, and none of them leaves a socket
/// or a task behind; the listener keeps serving.
pub(crate) async fn garbage_and_timeout(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("garbage CA");
    let leaf = pki.server(&["localhost"]);
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.set_handshake_timeout(Duration::from_millis(300));
    let server = TlsServer::echo(&provider, settings).await;
    // A ClientHello record header announcing 512 bytes, and the start of its handshake header.
    let truncated_hello: &[u8] = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03";
    // (what, bytes, then close our write side)
    let rows: [(&str, &[u8], bool); 8] = [
        (
            "plaintext HTTP/1",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            false,
        ),
        (
            "random bytes",
            &[0x9c, 0x00, 0xff, 0x13, 0x37, 0x42, 0x00, 0x01, 0x02],
            false,
        ),
        (
            "handshake record of length zero",
            b"\x16\x03\x01\x00\x00",
            false,
        ),
        (
            "alert record instead of a hello",
            b"\x15\x03\x03\x00\x02\x02\x28",
            false,
        ),
        (
            "SSLv2-style hello",
            b"\x80\x2e\x01\x00\x02\x00\x15\x00\x00\x00\x10",
            false,
        ),
        ("truncated hello then close", truncated_hello, true),
        ("truncated hello then silence", truncated_hello, false),
        ("nothing at all", b"", false),
    ];
    for (what, bytes, half_close) in rows {
        let mut raw = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        raw.write_all(bytes).await.unwrap();
        if half_close {
            raw.shutdown().await.unwrap();
        }
        let mut buf = Vec::new();
        let read = tokio::time::timeout(TIMEOUT, raw.read_to_end(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{what}: the connection was left open"));
        // A TLS alert at most, never plaintext HTTP.
        assert!(
            read.is_err() || buf.is_empty() || buf[0] == 0x15,
            "{what}: answered {buf:?}"
        );
    }
    server.assert_settled("non-TLS input").await;
    round_trip(&connector(&provider), &peer(server.addr, "localhost", &pki))
        .await
        .expect("still serving");
}

/// Missing files and a key that does not load fail cleanly.
pub(crate) async fn bad_settings(provider: Arc<dyn TlsProvider>) {
    let err =
        TlsSettings::intermediate("/nonexistent/cert.pem", "/nonexistent/key.pem").unwrap_err();
    assert_eq!(err.etype(), &ErrorType::FileReadError);
    let pki = Pki::new("bad CA");
    let leaf = pki.server(&["localhost"]);
    let broken = Arc::new(CertKey::new(
        leaf.cert_key.certs().to_vec(),
        b"not a key".to_vec(),
    ));
    let settings = TlsSettings::with_cert_key(broken).unwrap();
    let err = TestService::try_start_tls(ByteEcho::default(), &provider, settings)
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ErrorType::BindError, "{err}");
}

// === external clients ===

/// curl over TLS 1.2 and 1.3 with ALPN http/1.1 and h2 (h2 served by the HTTP/2 server
/// session); PEM files loaded by `TlsSettings::intermediate`.
pub(crate) async fn curl(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("curl CA");
    let (cert, key) = pki.write(&pki.server(&["localhost"]), "server");
    let mut settings = TlsSettings::intermediate(&cert, &key).unwrap();
    settings.enable_h2();
    let server = TlsServer::http(&provider, settings).await;
    let url = format!("https://localhost:{}/", server.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    for (tls, max, http, body, version) in [
        ("--tlsv1.2", "1.2", "--http1.1", "hello HTTP/1.1", "1.1"),
        ("--tlsv1.3", "1.3", "--http1.1", "hello HTTP/1.1", "1.1"),
        ("--tlsv1.3", "1.3", "--http2", "hello HTTP/2.0", "2"),
    ] {
        let out = tokio::process::Command::new("curl")
            .args(["-sSv", "--max-time", "10", "--cacert", &pki.path("ca.pem")])
            .args(["--resolve", &resolve, tls, "--tls-max", max, http])
            .args(["-w", "\n%{http_version}", &url])
            .output()
            .await
            .expect("curl runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{tls} {http}: {stdout} {stderr}");
        assert_eq!(stdout, format!("{body}\n{version}"), "{tls} {http}");
        let expected_tls = format!("SSL connection using TLSv{max}");
        assert!(stderr.contains(&expected_tls), "{tls} {http}: {stderr}");
    }
}

/// `openssl s_client`: handshake, verification against the CA, ALPN h2, and mTLS.
pub(crate) async fn openssl_s_client(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("s_client CA");
    let leaf = pki.server(&["localhost"]);
    let (client_cert, client_key) = pki.write(&pki.client("client.test"), "client");
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.enable_h2();
    settings.set_client_ca(pki.ca().to_vec().into_boxed_slice(), false);
    let mut server = TlsServer::echo(&provider, settings).await;
    let addr = server.addr;
    let run = |extra: Vec<String>| {
        let ca = pki.path("ca.pem");
        async move {
            let mut child = tokio::process::Command::new("openssl")
                .args([
                    "s_client",
                    "-connect",
                    &addr.to_string(),
                    "-servername",
                    "localhost",
                ])
                .args([
                    "-CAfile",
                    &ca,
                    "-verify_return_error",
                    "-alpn",
                    "h2,http/1.1",
                ])
                .args(extra)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("openssl runs");
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(b"Q\n").await.unwrap();
            drop(stdin);
            let out = tokio::time::timeout(TIMEOUT, child.wait_with_output())
                .await
                .expect("s_client finished")
                .unwrap();
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        }
    };
    let out = run(vec![]).await;
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    assert!(out.contains("ALPN protocol: h2"), "{out}");
    assert!(out.contains("TLSv1.3"), "{out}");
    assert!(server
        .next_seen()
        .await
        .digest
        .unwrap()
        .organization
        .is_none());

    let out = run(vec!["-cert".into(), client_cert, "-key".into(), client_key]).await;
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
    let seen = server.next_seen().await.digest.unwrap();
    assert_eq!(seen.organization.as_deref(), Some(ORG));
}

/// Every check of the suite as a `#[tokio::test]` against the backend that the calling test
/// file's `provider()` returns; one line per backend file. (Other test binaries include this
/// module without it.)
#[allow(unused_macros)]
macro_rules! conformance_suite {
    () => {
        tls_support::conformance_suite!(
            handshake_and_digest,
            tls12,
            resumption,
            sni_certificate_callback,
            alpn,
            mtls,
            verification,
            garbage_and_timeout,
            bad_settings,
            curl,
            openssl_s_client,
        );
    };
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            tls_support::$name(provider()).await;
        }
    )*};
}
#[allow(unused_imports)]
pub(crate) use conformance_suite;
