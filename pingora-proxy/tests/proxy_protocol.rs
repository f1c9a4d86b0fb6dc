//! HTTP/1 protocol behaviours through a real proxy: hop-by-hop fields, `Expect: 100-continue`,
//! 1xx forwarding, bodiless responses, WebSocket upgrades, CONNECT, HTTP/1.0 origins, client
//! keepalive and its limit, client disconnects, and upstream connection reuse.

mod e2e;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use e2e::*;
use futures_util::{SinkExt, StreamExt};
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// Proxies everything to one origin, unchanged, counting `upstream_peer` calls.
struct ToOrigin {
    origin: SocketAddr,
    peer_calls: Arc<AtomicUsize>,
}

fn to_origin(origin: SocketAddr) -> (ToOrigin, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    (
        ToOrigin {
            origin,
            peer_calls: calls.clone(),
        },
        calls,
    )
}

#[async_trait]
impl ProxyHttp for ToOrigin {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        self.peer_calls.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}

/// A hyper origin with the standard routes and a proxy in front of it.
fn standard_setup(rt: &tokio::runtime::Runtime) -> (TestServer, SocketAddr, Origin) {
    let origin = hyper_origin(rt, standard_routes);
    let (app, _) = to_origin(origin.addr);
    let (proxy, addr) = start_proxy(app);
    (proxy, addr, origin)
}

#[test]
fn hop_by_hop_request_fields_stop_at_the_proxy() {
    let rt = runtime();
    let (_proxy, addr, origin) = standard_setup(&rt);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client
            .roundtrip(get(
                "/headers",
                "Connection: X-Foo, keep-alive\r\nX-Foo: secret\r\nKeep-Alive: timeout=5\r\n\
                 Proxy-Connection: keep-alive\r\nTE: gzip\r\nX-Kept: yes\r\n",
            ))
            .await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "host: test\nx-kept: yes\n");
        assert_eq!(resp.head.get("connection"), Some("keep-alive"));

        // `TE: trailers` is the one value kept; `Connection: close` itself is not forwarded
        // but closes the client connection after the response.
        let resp = client
            .roundtrip(get(
                "/headers",
                "Connection: close, X-Foo\r\nX-Foo: secret\r\nTE: trailers\r\n",
            ))
            .await;
        assert_eq!(resp.text(), "host: test\nte: trailers\n");
        assert_eq!(resp.head.get("connection"), Some("close"));
        assert!(client.is_closed().await);
        assert_eq!(
            origin.connection_count(),
            1,
            "the upstream connection is kept"
        );
    });
}

#[test]
fn expect_100_continue_gets_exactly_one_interim_response() {
    let rt = runtime();
    let (_proxy, addr, _origin) = standard_setup(&rt);
    rt.block_on(async {
        let body = pattern_vec(3000);
        let mut client = RawConn::connect(addr).await;
        client
            .send(format!(
                "POST /upload HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\
                 Expect: 100-continue\r\n\r\n",
                body.len()
            ))
            .await;
        // The body is sent only once the proxy asked for it.
        let interim = client.read_head().await.expect("100 Continue");
        assert_eq!(interim.line, "HTTP/1.1 100 Continue");
        client.send(&body).await;
        let resp = client.read_response("POST").await;
        assert!(resp.interim.is_empty(), "a second 1xx: {:?}", resp.interim);
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "3000 OK");
        // The expectation was passed on to the origin.
        assert_eq!(resp.head.get("x-saw-expect"), Some("100-continue"));
        // And the connection is still good.
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!(resp.text(), "hello");
    });
}

#[test]
fn curl_upload_with_expect_sees_one_100_continue() {
    let rt = runtime();
    let (_proxy, addr, _origin) = standard_setup(&rt);
    let file = std::env::temp_dir().join(format!("pingora-proxy-e2e-{}.bin", std::process::id()));
    std::fs::write(&file, pattern_vec(200_000)).expect("temp file");
    let raw = curl::raw(&[
        "-H",
        "Expect: 100-continue",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{addr}/upload"),
    ]);
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 100 Continue").count(), 1, "{text}");
    let (status, _, body) = curl::split_response(&raw);
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), "200000 OK");
}

#[test]
fn early_hints_are_forwarded_before_the_response() {
    let rt = runtime();
    let origin = raw_origin(&rt, |mut conn, _| async move {
        while conn.read_request().await.is_some() {
            conn.send("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
                .await;
            conn.send(ok_response(b"page")).await;
        }
    });
    let (app, _) = to_origin(origin.addr);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        for _ in 0..2 {
            let resp = client.roundtrip(get("/", "")).await;
            assert_eq!(resp.interim.len(), 1);
            assert_eq!(resp.interim[0].status(), 103);
            assert_eq!(
                resp.interim[0].get("link"),
                Some("</style.css>; rel=preload")
            );
            assert_eq!(resp.head.status(), 200);
            assert_eq!(resp.text(), "page");
        }
        assert_eq!(origin.connection_count(), 1);
    });
}

#[test]
fn head_204_and_304_have_no_body_and_keep_the_connection() {
    let rt = runtime();
    let (_proxy, addr, origin) = standard_setup(&rt);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client
            .roundtrip("HEAD /hello HTTP/1.1\r\nHost: test\r\n\r\n")
            .await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.head.get("content-length"), Some("5"));
        assert_eq!(resp.head.get("connection"), Some("keep-alive"));
        for code in [204, 304] {
            let resp = client.roundtrip(get(&format!("/status/{code}"), "")).await;
            assert_eq!(resp.head.status(), code);
            assert_eq!(resp.head.get("transfer-encoding"), None, "{code}");
            assert_eq!(resp.head.get("connection"), Some("keep-alive"), "{code}");
        }
        // Had a body followed any of them, this response would not parse.
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!(resp.text(), "hello");
        assert!(client.leftover().is_empty());
        assert_eq!(origin.connection_count(), 1);
    });
}

/// An origin accepting WebSocket connections: it greets with "welcome", then echoes every
/// message.
fn websocket_echo_origin(rt: &tokio::runtime::Runtime) -> Origin {
    raw_origin(rt, |conn, _| async move {
        let Ok(mut ws) = tokio_tungstenite::accept_async(conn.stream).await else {
            return;
        };
        if ws.send(Message::text("welcome")).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    })
}

/// Opens a WebSocket through the proxy at `addr` and reads the origin's greeting.
async fn open_websocket(
    addr: SocketAddr,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let stream = RawConn::connect(addr).await.stream;
    let (mut ws, resp) = within(
        "websocket handshake",
        tokio_tungstenite::client_async(format!("ws://{addr}/ws"), stream),
    )
    .await
    .expect("handshake through the proxy");
    assert_eq!(resp.status(), 101);
    let greeting = within("greeting", ws.next())
        .await
        .expect("a message")
        .expect("no error");
    assert_eq!(greeting, Message::text("welcome"));
    ws
}

#[test]
fn websocket_upgrade_carries_the_origin_messages() {
    let rt = runtime();
    let origin = websocket_echo_origin(&rt);
    let (app, _) = to_origin(origin.addr);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let _ws = open_websocket(addr).await;
    });
}

#[test]
fn websocket_upgrade_pipes_both_ways() {
    let rt = runtime();
    let origin = websocket_echo_origin(&rt);
    let (app, _) = to_origin(origin.addr);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut ws = open_websocket(addr).await;
        let big = "x".repeat(100_000);
        let messages = [
            Message::text("hello"),
            Message::binary(vec![0u8, 1, 2, 255]),
            Message::text(big),
            Message::binary(pattern_vec(70_000)),
            Message::text("bye"),
        ];
        for msg in &messages {
            within("send", ws.send(msg.clone())).await.expect("send");
            let echoed = within("echo", ws.next())
                .await
                .expect("a message")
                .expect("no error");
            assert_eq!(&echoed, msg);
        }
        within("close", ws.close(None)).await.expect("close");
        let mut saw_close = false;
        while let Some(msg) = within("closing", ws.next()).await {
            match msg {
                Ok(Message::Close(_)) => saw_close = true,
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => break,
            }
        }
        assert!(saw_close, "the origin's close frame came back");
    });
}

#[test]
fn refused_upgrade_continues_as_plain_http() {
    let rt = runtime();
    let (_proxy, addr, origin) = standard_setup(&rt);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client
            .roundtrip(get(
                "/hello",
                "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
            ))
            .await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "hello");
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!(resp.text(), "hello");
        assert_eq!(origin.connection_count(), 1);
    });
}

#[test]
fn connect_is_refused_by_default() {
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (app, calls) = to_origin(origin.addr);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client
            .roundtrip("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
            .await;
        assert_eq!(resp.head.status(), 405);
        assert!(client.is_closed().await);
    });
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(origin.connection_count(), 0);
}

#[test]
fn http10_origin_response_is_rechunked_and_the_client_kept() {
    let rt = runtime();
    let origin = raw_origin(&rt, |mut conn, _| async move {
        if conn.read_request().await.is_some() {
            conn.send("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nold style body")
                .await;
        }
    });
    let (app, _) = to_origin(origin.addr);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        for _ in 0..2 {
            let resp = client.roundtrip(get("/", "")).await;
            assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
            assert_eq!(resp.head.get("transfer-encoding"), Some("chunked"));
            assert_eq!(resp.head.get("connection"), Some("keep-alive"));
            assert_eq!(resp.text(), "old style body");
        }
        // A body delimited by closing cannot leave its connection reusable.
        assert_eq!(origin.connection_count(), 2);
    });
}

#[test]
fn client_connection_serves_many_requests() {
    let rt = runtime();
    let (_proxy, addr, origin) = standard_setup(&rt);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        for i in 0..5 {
            let resp = client.roundtrip(get("/hello", "")).await;
            assert_eq!(resp.text(), "hello", "request {i}");
            assert_eq!(resp.head.get("connection"), Some("keep-alive"));
        }
        // Pipelined: two requests in one write, answered in order.
        client
            .send(format!("{}{}", get("/hello", ""), get("/status/204", "")))
            .await;
        assert_eq!(client.read_response("GET").await.text(), "hello");
        assert_eq!(client.read_response("GET").await.head.status(), 204);
        assert_eq!(origin.connection_count(), 1);
    });
}

#[test]
fn keepalive_request_limit_closes_after_the_limit() {
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (app, _) = to_origin(origin.addr);
    let mut options = HttpServerOptions::default();
    options.keepalive_request_limit = Some(2);
    let (_proxy, addr) = start_proxy_with(app, ServerConf::default(), Some(options));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!(resp.head.get("connection"), Some("keep-alive"));
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!(resp.text(), "hello");
        assert_eq!(resp.head.get("connection"), Some("close"));
        assert!(client.is_closed().await);
    });
}

#[test]
fn client_hanging_up_closes_the_slow_upstream() {
    let rt = runtime();
    let (got_request, mut requests) = mpsc::unbounded_channel::<()>();
    let (report, mut reports) = mpsc::unbounded_channel::<&'static str>();
    let origin = raw_origin(&rt, move |mut conn, _| {
        let (got_request, report) = (got_request.clone(), report.clone());
        async move {
            if conn.read_request().await.is_none() {
                return;
            }
            let _ = got_request.send(());
            // Would answer after 5 s; reports whether the proxy hung up first.
            let mut byte = [0u8; 1];
            let outcome =
                tokio::time::timeout(Duration::from_secs(5), conn.stream.read(&mut byte)).await;
            let _ = report.send(match outcome {
                Ok(Ok(0)) | Ok(Err(_)) => "closed",
                Ok(Ok(_)) => "data",
                Err(_) => "still open",
            });
            conn.send(ok_response(b"too late")).await;
        }
    });
    let (app, _) = to_origin(origin.addr);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        client.send(get("/slow", "")).await;
        within("origin got the request", requests.recv())
            .await
            .expect("request");
        drop(client);
        let outcome = within("origin report", reports.recv())
            .await
            .expect("report");
        assert_eq!(outcome, "closed");
    });
}

#[test]
fn sequential_requests_share_one_upstream_connection() {
    let rt = runtime();
    let (_proxy, addr, origin) = standard_setup(&rt);
    for _ in 0..3 {
        let (status, _, body) = curl::response(&[&format!("http://{addr}/hello")]);
        assert_eq!(status, 200);
        assert_eq!(body, b"hello");
    }
    assert_eq!(origin.connection_count(), 1);
}
