//! HTTP/2 over cleartext (h2c with prior knowledge) on real loopback sockets, driven by the
//! `h2` crate's client and, where frames must be seen as they are on the wire, by hand.

mod http_support;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_support::*;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use pingora_test_support::body::pseudo_random;
use pingora_test_support::h2::frames::{
    ping_ack, preface_and_get, read_frame, Frame, DATA, GOAWAY, HEADERS, PING,
};
use pingora_test_support::h2::{exchange, exchange_with_trailers, h2_client};
use pingora_test_support::raw::Closed;
use pingora_test_support::{TestService, TIMEOUT};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

/// Options with h2c on.
fn h2c() -> Option<HttpServerOptions> {
    options(|o| o.h2c = true)
}

fn get(path: &str) -> Request<()> {
    Request::builder()
        .uri(format!("http://example.test{path}"))
        .body(())
        .expect("a valid request")
}

// === ServeHttp over h2c ===

#[tokio::test]
async fn get_is_answered_with_host_from_authority() {
    let (server, mut events) = echo_server(h2c()).await;
    let send = h2_client(server.addr).await;
    let got = exchange(&send, get("/a/b?q=1&r=2"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, b"GET /a/b?q=1&r=2\n");
    assert_eq!(got.headers["x-echo-version"], "HTTP/2.0");
    assert_eq!(got.headers["x-echo-path"], "/a/b?q=1&r=2");
    // HTTP/2 field names are lower case: no spellings are recorded.
    assert_eq!(got.headers["x-echo-header-names"], "");
    assert!(got.headers.contains_key("date"));
    assert!(!got.headers.contains_key("connection"));
    assert_eq!(got.headers["content-length"], "17");
    assert_eq!(next_event(&mut events).await.outcome, Ok(0));
    server.stop().await;
}

#[tokio::test]
async fn post_bodies_larger_than_the_windows_are_echoed() {
    let (server, mut events) = echo_server(h2c()).await;
    let send = h2_client(server.addr).await;
    // 6 MiB: more than the server's stream (1 MiB) and connection (4 MiB) windows, so the
    // upload completes only if the server gives window back as it reads; the echo is more
    // than the client's 64 KiB windows, so the server must wait for window to send it.
    let body = pseudo_random(6 << 20, 7);
    let req = Request::builder()
        .method(Method::POST)
        .uri("http://example.test/upload")
        .body(())
        .unwrap();
    let got = exchange(&send, req, Some(body.clone())).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(
        got.headers["x-echo-body-len"],
        (6 << 20).to_string().as_str()
    );
    assert!(got.body == body, "the echoed body differs");
    assert_eq!(next_event(&mut events).await.outcome, Ok(6 << 20));
    server.stop().await;
}

#[tokio::test]
async fn many_concurrent_streams_share_one_connection() {
    let (app, _events) = Echo::new();
    let (counting, connections) = Counting::new(app);
    let mut inner = Arc::into_inner(counting.inner).expect("not shared yet");
    inner.server_options = h2c();
    let counting = Counting {
        inner: Arc::new(inner),
        connections: connections.clone(),
    };
    let server = TestService::start(counting).await;
    let send = h2_client(server.addr).await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let send = send.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::builder()
                .method(Method::PUT)
                .uri(format!("http://example.test/s/{i}"))
                .body(())
                .unwrap();
            let body = pseudo_random(10_000 + i * 997, i as u64);
            let got = exchange(&send, req, Some(body.clone())).await;
            assert_eq!(got.status, StatusCode::OK);
            assert_eq!(got.headers["x-echo-path"], format!("/s/{i}").as_str());
            assert!(got.body == body, "stream {i}: the echoed body differs");
        }));
    }
    for task in tasks {
        task.await.expect("a stream failed");
    }
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn http1_is_still_served_when_h2c_is_on() {
    let (server, _events) = echo_server(h2c()).await;
    let mut conn = server.connect().await;
    conn.send(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let resp = conn.response().await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body, b"GET /one\n");
    // A request starting like the preface but differing is HTTP/1 as well.
    conn.send(b"PRI /x HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let resp = conn.response().await;
    assert_eq!(resp.header("x-echo-method"), Some("PRI"));
    server.stop().await;
}

#[tokio::test]
async fn the_preface_is_not_served_as_h2_when_h2c_is_off() {
    let (server, _events) = echo_server(None).await;
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let handshake = async {
        let (send, conn) = h2::client::handshake(tcp).await?;
        let driver = tokio::spawn(conn);
        let mut send = send.ready().await?;
        let (resp, _) = send.send_request(get("/"), true)?;
        let result = resp.await.map(|_| ());
        drop(driver);
        result
    };
    let result = tokio::time::timeout(TIMEOUT, handshake)
        .await
        .expect("the server neither answered nor closed");
    assert!(result.is_err(), "h2 must not be served without h2c");
    server.stop().await;
}

// === Trailers and shutdown: an application with its own exchanges ===

/// `/trailers`: reads the request body and trailers, answers `x-body-len`, a body and
/// trailers echoing the request's `x-req-trailer`.
/// `/slow`: reports its arrival on `arrived`, waits for `gate` to open, then answers.
struct H2App {
    arrived: mpsc::UnboundedSender<String>,
    gate: watch::Receiver<bool>,
}

#[async_trait]
impl HttpServerApp for H2App {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        assert!(session.read_request().await.ok()?);
        assert!(session.is_http2());
        let path = session.req_header().uri.path().to_string();
        let _ = self.arrived.send(path.clone());
        let mut resp = ResponseHeader::build(200, None).ok()?;
        if path == "/slow" {
            let mut gate = self.gate.clone();
            gate.wait_for(|open| *open).await.ok()?;
            resp.insert_header("content-length", "9").ok()?;
            session.write_response_header(Box::new(resp)).await.ok()?;
            session
                .write_response_body(Bytes::from_static(b"slow done"), true)
                .await
                .ok()?;
            return session
                .finish()
                .await
                .ok()?
                .map(|s| ReusedHttpStream::new(s, None));
        }
        let mut len = 0;
        while let Some(piece) = session.read_request_body().await.ok()? {
            len += piece.len();
        }
        let req_trailers = session.as_http2_mut()?.read_trailers().await.ok()?;
        let echoed = req_trailers
            .as_ref()
            .and_then(|t| t.get("x-req-trailer").cloned());
        resp.insert_header("x-body-len", len.to_string()).ok()?;
        let host = session.get_header("host").cloned();
        resp.insert_header("x-host", host?).ok()?;
        resp.insert_header("x-summary", session.request_summary())
            .ok()?;
        session.write_response_header(Box::new(resp)).await.ok()?;
        session
            .write_response_body(Bytes::from_static(b"body"), false)
            .await
            .ok()?;
        let mut trailers = HeaderMap::new();
        trailers.insert("x-trailer", "done".parse().ok()?);
        if let Some(v) = echoed {
            trailers.insert("x-req-trailer", v);
        }
        session.write_response_trailers(trailers).await.ok()?;
        session.finish().await.ok()?;
        None
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        static OPTIONS: std::sync::OnceLock<HttpServerOptions> = std::sync::OnceLock::new();
        Some(OPTIONS.get_or_init(|| h2c().expect("options")))
    }
}

async fn start_h2_app() -> (
    TestService,
    mpsc::UnboundedReceiver<String>,
    watch::Sender<bool>,
) {
    let (arrived, arrivals) = mpsc::unbounded_channel();
    let (gate, gate_rx) = watch::channel(false);
    let app = H2App {
        arrived,
        gate: gate_rx,
    };
    (TestService::start(app).await, arrivals, gate)
}

#[tokio::test]
async fn trailers_flow_both_ways() {
    let (server, _arrivals, _gate) = start_h2_app().await;
    let send = h2_client(server.addr).await;
    let req = Request::builder()
        .method(Method::POST)
        .uri("http://example.test/trailers")
        .body(())
        .unwrap();
    let mut req_trailers = HeaderMap::new();
    req_trailers.insert("x-req-trailer", "from-client".parse().unwrap());
    let got = exchange_with_trailers(&send, req, Some(b"12345".to_vec()), Some(req_trailers)).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["x-body-len"], "5");
    // `Host` comes from `:authority` when the client sends none.
    assert_eq!(got.headers["x-host"], "example.test");
    assert_eq!(
        got.headers["x-summary"],
        "POST /trailers, Host: example.test"
    );
    assert_eq!(got.body, b"body");
    let trailers = got.trailers.expect("response trailers");
    assert_eq!(trailers["x-trailer"], "done");
    assert_eq!(trailers["x-req-trailer"], "from-client");
    server.stop().await;
}

#[tokio::test]
async fn shutdown_sends_goaway_and_lets_open_streams_finish() {
    let (server, mut arrivals, gate) = start_h2_app().await;
    let mut conn = server.connect().await;
    conn.send(preface_and_get("/slow")).await;
    let path = tokio::time::timeout(TIMEOUT, arrivals.recv())
        .await
        .unwrap();
    assert_eq!(path.as_deref(), Some("/slow"));

    server.begin_shutdown();
    // Skip SETTINGS and such until the GOAWAY; answer PINGs as a client must.
    let mut goaways = 0;
    let last_stream_id;
    loop {
        let Frame {
            kind,
            flags,
            payload,
            ..
        } = read_frame(&mut conn).await.expect("a GOAWAY");
        match kind {
            GOAWAY => {
                goaways += 1;
                let id = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                assert_eq!(code, 0, "GOAWAY with NO_ERROR");
                if id == 1 {
                    last_stream_id = id;
                    break;
                }
            }
            PING if flags & 1 == 0 => {
                conn.send(ping_ack(&payload)).await;
            }
            HEADERS | DATA => panic!("the slow stream answered before its gate opened"),
            _ => {}
        }
    }
    assert!(goaways >= 1);
    assert_eq!(last_stream_id, 1, "the accepted stream is kept");

    // The accepted stream still gets its whole response, then the connection closes.
    gate.send_replace(true);
    let mut status_seen = false;
    let mut body = Vec::new();
    loop {
        let Frame {
            kind,
            flags,
            stream,
            payload,
        } = read_frame(&mut conn).await.expect("the response");
        match kind {
            HEADERS => {
                assert_eq!(stream, 1);
                // HPACK: `:status 200` is static index 8.
                assert_eq!(payload[0], 0x88);
                status_seen = true;
            }
            DATA => {
                assert_eq!(stream, 1);
                body.extend_from_slice(&payload);
                if flags & 1 == 1 {
                    break;
                }
            }
            _ => {}
        }
    }
    assert!(status_seen);
    assert_eq!(body, b"slow done");
    let (_, closed) = conn.read_to_close().await;
    assert_eq!(closed, Closed::Eof);
    server.stop().await;
}
