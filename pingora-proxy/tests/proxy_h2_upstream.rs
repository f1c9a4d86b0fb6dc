//! HTTP/2 upstreams through a real proxy: HTTP/1 clients to h2c origins (bodies, trailers,
//! keepalive, multiplexing, GOAWAY, HTTP/1 for plaintext H2H1 peers), and gRPC (unary and streaming,
//! hand-framed) from an HTTP/2 client through the proxy to an h2c origin.

mod e2e;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use e2e::*;
use http::{HeaderMap, HeaderValue, Request, Response};
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

// === the proxy ===

/// Proxies everything to one origin with the given HTTP versions allowed.
struct ToH2Origin {
    addr: SocketAddr,
    /// (max, min) HTTP versions.
    versions: (u8, u8),
}

#[async_trait]
impl ProxyHttp for ToH2Origin {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.addr, false, String::new());
        peer.options
            .set_http_version(self.versions.0, self.versions.1);
        peer.options.max_h2_streams = 16;
        Ok(Box::new(peer))
    }
}

fn start(addr: SocketAddr, versions: (u8, u8)) -> (TestServer, SocketAddr) {
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    start_proxy_with(
        ToH2Origin { addr, versions },
        ServerConf::default(),
        Some(options),
    )
}

// === the h2c origins ===

/// Echoes the request body; `x-seen` lists what reached the origin (method, authority, the
/// connection fields that should not have); trailers follow when the request has
/// `want-trailers`; `Content-Length` is set when it has `want-length`.
fn echo() -> Handler {
    Arc::new(|req, mut respond| {
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            let data = read_body(&mut body).await;
            let forbidden: Vec<&str> = ["connection", "transfer-encoding", "host", "keep-alive"]
                .into_iter()
                .filter(|n| parts.headers.contains_key(*n))
                .collect();
            let seen = format!(
                "{} {} {} [{}]",
                parts.method,
                parts.uri.authority().map_or("-", |a| a.as_str()),
                parts.uri.path(),
                forbidden.join(",")
            );
            let mut resp = Response::builder().status(200).header("x-seen", seen);
            if parts.headers.contains_key("want-length") {
                resp = resp.header("content-length", data.len().to_string());
            }
            let want_trailers = parts.headers.contains_key("want-trailers");
            let Ok(mut send) = respond.send_response(resp.body(()).unwrap(), false) else {
                return;
            };
            let _ = send.send_data(Bytes::from(data), !want_trailers);
            if want_trailers {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", HeaderValue::from_static("abc"));
                let _ = send.send_trailers(trailers);
            }
        })
    })
}

// === HTTP/1 clients ===

#[test]
fn h1_client_to_h2_origin_with_body_and_trailers() {
    let rt = runtime();
    let origin = h2_origin(&rt, echo());
    let (_proxy, addr) = start(origin.addr, (2, 2));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        client
            .send(
                "POST /upload HTTP/1.1\r\nHost: example.test\r\nTE: trailers\r\n\
                 Transfer-Encoding: chunked\r\nwant-trailers: 1\r\n\r\n\
                 5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            )
            .await;
        let head = within("response head", client.read_head()).await.unwrap();
        assert_eq!(head.status(), 200);
        assert_eq!(
            head.get("x-seen"),
            Some("POST example.test /upload []"),
            "Host became :authority; no connection fields reached the origin"
        );
        assert_eq!(head.get("transfer-encoding"), Some("chunked"));
        // The chunked body, then the trailers, as the client asked for them.
        let rest = within("chunked body", read_until(&mut client, b"\r\n\r\n", 1)).await;
        let text = String::from_utf8_lossy(&rest).to_lowercase();
        assert!(text.contains("hello world"), "{text}");
        assert!(
            text.contains("x-checksum: abc"),
            "trailers forwarded: {text}"
        );

        // The client connection is kept, and the upstream connection is shared.
        let resp = within("second", client.roundtrip(post("/2", b"again"))).await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "again");
        let resp = within("third", client.roundtrip(get("/3", "want-length: 1\r\n"))).await;
        assert_eq!(resp.head.get("content-length"), Some("0"));
        assert_eq!(resp.head.get("x-seen"), Some("GET test /3 []"));
    });
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 1);
}

/// Reads until `delim` has been seen `times` times past the current position.
async fn read_until(client: &mut RawConn, delim: &[u8], times: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let seen = out.windows(delim.len()).filter(|w| *w == delim).count();
        if seen >= times {
            return out;
        }
        out.extend(client.read_exact(1).await);
    }
}

#[test]
fn concurrent_h1_clients_share_one_h2_connection() {
    let rt = runtime();
    let origin = h2_origin(&rt, echo());
    let (_proxy, addr) = start(origin.addr, (2, 2));
    rt.block_on(async {
        // One request first, so that the pool has a connection to share.
        let mut first = RawConn::connect(addr).await;
        let resp = within("first", first.roundtrip(post("/0", b"0"))).await;
        assert_eq!(resp.text(), "0");
        let mut tasks = Vec::new();
        for i in 1..=6 {
            tasks.push(tokio::spawn(async move {
                let mut client = RawConn::connect(addr).await;
                let body = format!("body {i}");
                let resp = client.roundtrip(post("/c", body.as_bytes())).await;
                assert_eq!(resp.text(), body);
            }));
        }
        for task in tasks {
            within("concurrent requests", task).await.unwrap();
        }
    });
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 1);
}

#[test]
fn origin_goaway_fails_no_request() {
    let rt = runtime();
    let origin = h2_origin(&rt, echo());
    let (_proxy, addr) = start(origin.addr, (2, 2));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = within("before", client.roundtrip(post("/1", b"one"))).await;
        assert_eq!(resp.text(), "one");
        origin.goaway.send(true).unwrap();
        for i in 2..6 {
            let body = format!("body {i}");
            let resp = within(
                "after GOAWAY",
                client.roundtrip(post("/n", body.as_bytes())),
            )
            .await;
            assert_eq!(resp.head.status(), 200);
            assert_eq!(resp.text(), body);
        }
    });
    assert!(
        origin.accepts.load(Ordering::SeqCst) >= 2,
        "a new connection after GOAWAY"
    );
}

#[test]
fn h2h1_peer_without_tls_is_spoken_to_in_h1() {
    let rt = runtime();
    let h2_attempts = Arc::new(AtomicUsize::new(0));
    let attempts = h2_attempts.clone();
    let origin = raw_origin(&rt, move |conn: RawConn, _| {
        let attempts = attempts.clone();
        async move {
            let mut tcp = conn.stream;
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let n = tcp.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..n]);
                if buf.starts_with(b"PRI") {
                    // Not HTTP/1: refuse and close, as HTTP/1 servers do.
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let _ = tcp
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
                        .await;
                    return;
                }
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    let _ = tcp.write_all(&ok_response(b"from h1")).await;
                }
            }
        }
    });
    let (_proxy, addr) = start(origin.addr, (2, 1));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        for _ in 0..3 {
            let resp = within("request", client.roundtrip(get("/", ""))).await;
            assert_eq!(resp.head.status(), 200);
            assert_eq!(resp.text(), "from h1");
        }
    });
    // As in Pingora: without TLS, only an HTTP/2-only peer gets h2c.
    assert_eq!(
        h2_attempts.load(Ordering::SeqCst),
        0,
        "no HTTP/2 preface sent"
    );
}

// === gRPC over HTTP/2 on both sides ===

/// A gRPC echo service: answers each request message as it arrives with "echo: <message>",
/// then `grpc-status: 0` in trailers.
fn grpc_echo() -> Handler {
    Arc::new(|req, mut respond| {
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            assert_eq!(parts.headers["content-type"], "application/grpc");
            assert_eq!(
                parts.headers["te"], "trailers",
                "TE: trailers reaches the origin"
            );
            let resp = Response::builder()
                .status(200)
                .header("content-type", "application/grpc")
                .body(())
                .unwrap();
            let mut send = respond.send_response(resp, false).unwrap();
            let mut buf = BytesMut::new();
            while let Some(piece) = body.data().await {
                let piece = piece.unwrap();
                let _ = body.flow_control().release_capacity(piece.len());
                buf.extend_from_slice(&piece);
                for message in grpc_messages(&mut buf) {
                    let mut reply = b"echo: ".to_vec();
                    reply.extend(message);
                    send.send_data(grpc_frame(&reply), false).unwrap();
                }
            }
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            trailers.insert("grpc-message", HeaderValue::from_static("fine"));
            send.send_trailers(trailers).unwrap();
        })
    })
}

fn grpc_request(addr: SocketAddr, method: &str) -> Request<()> {
    Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/echo.Echo/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

#[test]
fn grpc_unary_call_through_the_proxy() {
    let rt = runtime();
    let origin = h2_origin(&rt, grpc_echo());
    let (_proxy, addr) = start(origin.addr, (2, 2));
    rt.block_on(async {
        let client = h2_client(addr).await;
        let mut client = within("ready", client.ready()).await.unwrap();
        let (resp, mut send) = client
            .send_request(grpc_request(addr, "Unary"), false)
            .unwrap();
        send.send_data(grpc_frame(b"ping"), true).unwrap();
        let resp = within("response", resp).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let mut body = resp.into_body();
        let mut buf = BytesMut::new();
        while let Some(piece) = within("body", body.data()).await {
            let piece = piece.unwrap();
            let _ = body.flow_control().release_capacity(piece.len());
            buf.extend_from_slice(&piece);
        }
        assert_eq!(grpc_messages(&mut buf), [b"echo: ping".to_vec()]);
        let trailers = within("trailers", body.trailers()).await.unwrap().unwrap();
        assert_eq!(trailers["grpc-status"], "0");
        assert_eq!(trailers["grpc-message"], "fine");
    });
}

#[test]
fn grpc_bidirectional_streaming_call_through_the_proxy() {
    let rt = runtime();
    let origin = h2_origin(&rt, grpc_echo());
    let (_proxy, addr) = start(origin.addr, (2, 2));
    rt.block_on(async {
        let client = h2_client(addr).await;
        let mut client = within("ready", client.ready()).await.unwrap();
        let (resp, mut send) = client
            .send_request(grpc_request(addr, "Stream"), false)
            .unwrap();
        // Each message is answered before the next is sent: both directions stream at once.
        send.send_data(grpc_frame(b"one"), false).unwrap();
        let resp = within("response head", resp).await.unwrap();
        let mut body = resp.into_body();
        let mut buf = BytesMut::new();
        for (i, word) in ["one", "two", "three"].iter().enumerate() {
            if i > 0 {
                send.send_data(grpc_frame(word.as_bytes()), false).unwrap();
            }
            let message = loop {
                if let Some(m) = grpc_messages(&mut buf).pop() {
                    break m;
                }
                let piece = within("a streamed reply", body.data())
                    .await
                    .unwrap()
                    .unwrap();
                let _ = body.flow_control().release_capacity(piece.len());
                buf.extend_from_slice(&piece);
            };
            assert_eq!(message, format!("echo: {word}").into_bytes());
        }
        send.send_data(Bytes::new(), true).unwrap();
        while let Some(piece) = within("end of body", body.data()).await {
            assert!(piece.unwrap().is_empty(), "no more messages");
        }
        let trailers = within("trailers", body.trailers()).await.unwrap().unwrap();
        assert_eq!(trailers["grpc-status"], "0");
    });
}

/// Echoes each piece of the request body as it arrives (full duplex).
fn streaming_echo() -> Handler {
    Arc::new(|req, mut respond| {
        Box::pin(async move {
            let (_, mut body) = req.into_parts();
            let resp = Response::builder().status(200).body(()).unwrap();
            let Ok(mut send) = respond.send_response(resp, false) else {
                return;
            };
            while let Some(Ok(piece)) = body.data().await {
                let len = piece.len();
                send.reserve_capacity(len);
                let mut piece = piece;
                while !piece.is_empty() {
                    let granted = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
                        Some(Ok(n)) => n,
                        _ => return,
                    };
                    let part = piece.split_to(granted.min(piece.len()));
                    if send.send_data(part, false).is_err() {
                        return;
                    }
                }
                let _ = body.flow_control().release_capacity(len);
            }
            let _ = send.send_data(Bytes::new(), true);
        })
    })
}

#[test]
fn large_bodies_both_ways_over_h2_upstream() {
    let rt = runtime();
    let origin = h2_origin(&rt, echo());
    let (_proxy, addr) = start(origin.addr, (2, 2));
    let streaming = h2_origin(&rt, streaming_echo());
    let (_proxy2, addr2) = start(streaming.addr, (2, 2));
    let body: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    rt.block_on(async {
        // The origin reads the whole body before answering: the body goes out under flow
        // control while the proxy waits for the response.
        let mut client = RawConn::connect(addr).await;
        let resp = within("buffered echo", client.roundtrip(post("/big", &body))).await;
        assert_eq!(resp.head.status(), 200);
        assert!(resp.body == body, "the body came back intact");
        // The origin answers while it reads: both directions stream at once.
        let mut client = RawConn::connect(addr2).await;
        let resp = within("streaming echo", client.roundtrip(post("/big", &body))).await;
        assert_eq!(resp.head.status(), 200);
        assert!(resp.body == body, "the body came back intact");
    });
}

#[test]
fn a_refused_stream_is_retried() {
    let rt = runtime();
    let refused = Arc::new(AtomicUsize::new(0));
    let count = refused.clone();
    let inner = echo();
    let handler: Handler = Arc::new(move |req, mut respond| {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            // The first stream is refused: not processed, safe to retry.
            respond.send_reset(h2::Reason::REFUSED_STREAM);
            return Box::pin(async {});
        }
        inner(req, respond)
    });
    let origin = h2_origin(&rt, handler);
    let (_proxy, addr) = start(origin.addr, (2, 2));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = within("request", client.roundtrip(post("/r", b"replayed"))).await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(
            resp.text(),
            "replayed",
            "the body was replayed on the retry"
        );
    });
    assert_eq!(refused.load(Ordering::SeqCst), 2);
}
