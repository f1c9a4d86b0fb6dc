//! HTTP/2 clients (h2c with prior knowledge: the `h2` crate, curl, h2load, raw frames) through
//! the proxy to an HTTP/1 origin: the request is translated to HTTP/1.1, bodies and trailers
//! flow, informational responses follow the version rules, failures reset only their stream,
//! many streams share a connection, and a graceful shutdown lets streams in flight finish.

mod e2e;

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::Bytes;
use e2e::*;
use http::{HeaderMap, Method, StatusCode};
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use pingora_test_support::h2::frames::{
    ping_ack, preface_and_get, read_frame, Frame, DATA, GOAWAY, HEADERS, PING,
};

/// Proxies everything to one origin.
struct ToOrigin(SocketAddr);

#[async_trait]
impl ProxyHttp for ToOrigin {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

/// A proxy to `origin` serving h2c as well as HTTP/1.
fn start_h2c_proxy(origin: SocketAddr) -> (TestServer, SocketAddr) {
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    start_proxy_with(ToOrigin(origin), ServerConf::default(), Some(options))
}

/// An HTTP/1 origin answering each request with what it saw: `x-line` (the request line),
/// `x-host`, `x-te` and `x-cl` (the request's `Transfer-Encoding` and `Content-Length`),
/// and the request body as the body (`"empty"` if none). Other routes: `/chunked`, a chunked
/// body of three pieces; `/trailers`, a chunked body with trailers; `/103`, an Early Hints
/// before the response; `/cut`, a body cut short by a hang-up; `/close`, an HTTP/1.0 body
/// ended by the close; `/204` and any `HEAD`, heads without a body.
fn echo_origin(rt: &tokio::runtime::Runtime) -> Origin {
    raw_origin(rt, |mut conn, _| async move {
        while let Some(req) = conn.read_request().await {
            if req.head.target() == "/trailers" {
                conn.send(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-checksum\r\n\r\n\
                     4\r\nbody\r\n0\r\nx-checksum: abc123\r\nx-count: 1\r\n\r\n",
                )
                .await;
                continue;
            }
            if req.head.target() == "/103" {
                conn.send(
                    "HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
                     HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal",
                )
                .await;
                continue;
            }
            if req.head.target() == "/close" {
                // HTTP/1.0, no length: the body ends when the connection closes.
                conn.send("HTTP/1.0 200 OK\r\nx-close: yes\r\n\r\nuntil the close")
                    .await;
                return;
            }
            if req.head.method() == "HEAD" || req.head.target() == "/204" {
                let status = if req.head.method() == "HEAD" {
                    "200 OK"
                } else {
                    "204 No Content"
                };
                conn.send(format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n"))
                    .await;
                continue;
            }
            if req.head.target() == "/cut" {
                // Promises 100000 bytes, sends 10, hangs up.
                conn.send("HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789")
                    .await;
                return;
            }
            if req.head.target() == "/chunked" {
                conn.send(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n\
                     5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
                )
                .await;
                continue;
            }
            let body = if req.body.is_empty() {
                b"empty".to_vec()
            } else {
                req.body.clone()
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nx-line: {}\r\nx-host: {}\r\nx-te: {}\r\nx-cl: {}\r\n\
                 Keep-Alive: timeout=5\r\nContent-Length: {}\r\n\r\n",
                req.head.line,
                req.head.get("host").unwrap_or("-"),
                req.head.get("transfer-encoding").unwrap_or("-"),
                req.head.get("content-length").unwrap_or("-"),
                body.len()
            );
            let mut resp = head.into_bytes();
            resp.extend_from_slice(&body);
            conn.send(resp).await;
        }
    })
}

#[test]
fn get_is_translated_to_http1() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let got = exchange(&send, request(Method::GET, "/a/b?c=1"), None).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.headers["x-line"], "GET /a/b?c=1 HTTP/1.1");
        assert_eq!(got.headers["x-host"], "example.test");
        assert_eq!(got.headers["x-te"], "-");
        assert_eq!(got.body, b"empty");
        // Connection-specific fields of the origin's response are not forwarded.
        assert!(!got.headers.contains_key("keep-alive"));
        assert!(!got.headers.contains_key("connection"));
    });
}

#[test]
fn request_bodies_go_up_and_responses_come_down() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        // No Content-Length: the body goes to the origin chunked.
        let body = pattern_vec(3 << 20);
        let got = exchange(&send, request(Method::POST, "/up"), Some(body.clone())).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.headers["x-te"], "chunked");
        assert_eq!(got.headers["x-cl"], "-");
        assert!(got.body == body, "the echoed body differs");

        // With a Content-Length, it is kept.
        let mut req = request(Method::PUT, "/up");
        req.headers_mut()
            .insert("content-length", "11".parse().unwrap());
        let got = exchange(&send, req, Some(b"hello world".to_vec())).await;
        assert_eq!(got.headers["x-cl"], "11");
        assert_eq!(got.headers["x-te"], "-");
        assert_eq!(got.body, b"hello world");

        // A chunked origin response arrives whole.
        let got = exchange(&send, request(Method::GET, "/chunked"), None).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, b"hello world");
        assert!(!got.headers.contains_key("transfer-encoding"));
    });
}

#[test]
fn many_streams_of_one_connection_are_proxied_concurrently() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let mut tasks = Vec::new();
        for i in 0..40usize {
            let send = send.clone();
            tasks.push(tokio::spawn(async move {
                let body = pattern_vec(1000 + i * 4099);
                let got = exchange(
                    &send,
                    request(Method::POST, &format!("/s/{i}")),
                    Some(body.clone()),
                )
                .await;
                assert_eq!(got.status, StatusCode::OK);
                assert_eq!(
                    got.headers["x-line"],
                    format!("POST /s/{i} HTTP/1.1").as_str()
                );
                assert!(got.body == body, "stream {i}: the echoed body differs");
            }));
        }
        for task in tasks {
            task.await.expect("a stream failed");
        }
    });
    // Upstream connections are pooled: far fewer than the 40 requests may be opened, and at
    // least one was.
    assert!(origin.connection_count() >= 1);
}

#[test]
fn an_unreachable_origin_is_a_502_on_the_stream() {
    let rt = runtime();
    let (_proxy, addr) = start_h2c_proxy(dead_addr());
    rt.block_on(async {
        let send = h2_client(addr).await;
        let got = exchange(&send, request(Method::GET, "/"), None).await;
        assert_eq!(got.status, StatusCode::BAD_GATEWAY);
        // The connection still serves other streams.
        let got = exchange(&send, request(Method::GET, "/"), None).await;
        assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    });
}

#[test]
fn chunked_trailers_from_the_origin_end_the_h2_stream() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let mut req = request(Method::GET, "/trailers");
        req.headers_mut().insert("te", "trailers".parse().unwrap());
        let got = exchange(&send, req, None).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, b"body");
        let trailers = got.trailers.expect("trailers on the h2 stream");
        assert_eq!(trailers["x-checksum"], "abc123");
        assert_eq!(trailers["x-count"], "1");
    });
}

#[test]
fn request_trailers_do_not_hold_the_request_up() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let mut trailers = HeaderMap::new();
        trailers.insert("x-req-checksum", "42".parse().unwrap());
        let body = b"with trailers".to_vec();
        let got = exchange_with_trailers(
            &send,
            request(Method::POST, "/t"),
            Some(body.clone()),
            Some(trailers),
        )
        .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.headers["x-te"], "chunked");
        assert_eq!(got.body, body);
    });
}

#[test]
fn informational_responses_are_not_forwarded_on_h2() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let got = exchange(&send, request(Method::GET, "/103"), None).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, b"final");
        assert!(!got.headers.contains_key("link"));
    });
}

#[test]
fn bodies_ended_by_the_close_and_bodiless_responses_end_the_stream() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let got = exchange(&send, request(Method::GET, "/close"), None).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, b"until the close");
        assert_eq!(got.headers["x-close"], "yes");

        for (method, path, status) in [
            (Method::HEAD, "/head", StatusCode::OK),
            (Method::GET, "/204", StatusCode::NO_CONTENT),
        ] {
            let mut ready = send.clone().ready().await.expect("connection ready");
            let (resp, _) = ready
                .send_request(request(method.clone(), path), true)
                .expect("send request");
            let resp = within("the response", resp).await.expect("response");
            assert_eq!(resp.status(), status, "{method} {path}");
            // The head alone ended the stream.
            assert!(resp.body().is_end_stream(), "{method} {path}");
        }
    });
}

#[test]
fn expect_continue_is_answered_with_an_informational_head() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let mut ready = send.clone().ready().await.expect("connection ready");
        let mut req = request(Method::POST, "/expect");
        req.headers_mut()
            .insert("expect", "100-continue".parse().unwrap());
        req.headers_mut()
            .insert("content-length", "4".parse().unwrap());
        let (mut resp, mut body) = ready.send_request(req, false).expect("send request");
        // The body waits for the 100.
        let interim = within(
            "100 Continue",
            std::future::poll_fn(|cx| resp.poll_informational(cx)),
        )
        .await
        .expect("an informational head")
        .expect("a valid head");
        assert_eq!(interim.status(), StatusCode::CONTINUE);
        body.send_data(Bytes::from_static(b"data"), true)
            .expect("send data");
        let resp = within("the response", resp).await.expect("response");
        assert_eq!(resp.status(), StatusCode::OK);
        let mut recv = resp.into_body();
        let mut got = Vec::new();
        while let Some(piece) = within("body", recv.data()).await {
            got.extend_from_slice(&piece.expect("body piece"));
        }
        assert_eq!(got, b"data");
    });
}

#[test]
fn an_origin_failing_mid_body_resets_the_stream_only() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let mut ready = send.clone().ready().await.expect("connection ready");
        let (resp, _) = ready
            .send_request(request(Method::GET, "/cut"), true)
            .expect("send request");
        // The reset may overtake the head and the bytes queued before it.
        let outcome = within("the cut response", async {
            let mut body = resp.await?.into_body();
            let mut got = Vec::new();
            while let Some(piece) = body.data().await {
                got.extend_from_slice(&piece?);
            }
            Ok::<_, h2::Error>(got)
        })
        .await;
        let error = outcome.expect_err("the stream is reset, not ended");
        assert_eq!(error.reason(), Some(h2::Reason::INTERNAL_ERROR), "{error}");
        // The connection still serves other streams.
        let got = exchange(&send, request(Method::GET, "/after"), None).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, b"empty");
    });
}

#[test]
fn a_client_reset_stops_the_upstream_exchange() {
    let rt = runtime();
    let (closed_tx, mut closed) = tokio::sync::mpsc::unbounded_channel();
    let origin = raw_origin(&rt, move |mut conn, _| {
        let closed = closed_tx.clone();
        async move {
            if conn.read_request().await.is_some() {
                // Half a body, then nothing: only the proxy giving up ends this.
                conn.send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst")
                    .await;
                let rest = conn.read_to_end().await;
                let _ = closed.send(rest.len());
            }
        }
    });
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let send = h2_client(addr).await;
        let mut ready = send.clone().ready().await.expect("connection ready");
        let (resp, _) = ready
            .send_request(request(Method::GET, "/half"), true)
            .expect("send request");
        let mut body = within("the head", resp)
            .await
            .expect("response")
            .into_body();
        let first = within("the first bytes", body.data()).await;
        assert_eq!(first.expect("data").expect("data"), "first".as_bytes());
        // Dropping the body resets the stream (CANCEL).
        drop(body);
        let leftover = within("the upstream connection closed", closed.recv()).await;
        assert_eq!(leftover, Some(0));
    });
}

#[test]
fn a_retryable_connect_failure_is_retried_for_an_h2_stream() {
    let rt = runtime();
    let (live, seen) = e2e::echo_origin(&rt, false, false);
    let (mut app, mut probe) = recorder(vec![dead_addr(), live.addr]);
    app.retry_connect = true;
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    let (_proxy, addr) = start_proxy_with(app, ServerConf::default(), Some(options));
    rt.block_on(async {
        let send = h2_client(addr).await;
        let got = exchange(&send, request(Method::POST, "/r"), Some(b"again".to_vec())).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, b"again");
        probe.logged(1).await;
        let events = probe.events();
        assert!(events.iter().any(|e| e == "fail_to_connect"), "{events:?}");
        assert_eq!(*seen.lock().expect("seen"), ["0 POST again"]);
    });
}

/// Runs curl with HTTP/2 prior knowledge: returns (status line, head, body).
fn curl_h2(args: &[&str]) -> (String, String, Vec<u8>) {
    let mut all = vec!["--http2-prior-knowledge", "-i"];
    all.extend_from_slice(args);
    let out = curl::output(&all);
    let end = find(&out.stdout, b"\r\n\r\n").expect("a head");
    let head = String::from_utf8_lossy(&out.stdout[..end]).into_owned();
    let status = head.lines().next().unwrap_or_default().to_string();
    (status, head, out.stdout[end + 4..].to_vec())
}

#[test]
fn curl_with_prior_knowledge_through_the_proxy() {
    let rt = runtime();
    let origin = echo_origin(&rt);
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    let url = format!("http://{addr}/curl?x=1");
    let (status, head, body) = curl_h2(&[url.as_str()]);
    assert_eq!(status.trim(), "HTTP/2 200");
    assert!(head.contains("x-line: GET /curl?x=1 HTTP/1.1"), "{head}");
    assert!(!head.contains("keep-alive"), "{head}");
    assert_eq!(body, b"empty");

    let (status, head, body) = curl_h2(&["--data-binary", "posted by curl", url.as_str()]);
    assert_eq!(status.trim(), "HTTP/2 200");
    assert!(head.contains("x-cl: 14"), "{head}");
    assert_eq!(body, b"posted by curl");
}

/// `h2load` through the proxy: 10 connections with 100 concurrent streams each; every request
/// must succeed. Skipped (with a message) when h2load (Debian `nghttp2-client`) is missing.
#[test]
fn h2load_through_the_proxy_has_no_failures() {
    if std::process::Command::new("h2load")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: h2load not installed (apt-get install nghttp2-client)");
        return;
    }
    let rt = runtime();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = raw_origin(&rt, move |conn, _| serve_ok(conn, seen.clone()));
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    let out = std::process::Command::new("h2load")
        .args(["-n", "10000", "-c", "10", "-m", "100", "-T", "20"])
        .arg(format!("http://{addr}/"))
        .output()
        .expect("h2load runs");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "h2load failed: {text}");
    assert!(
        text.contains("10000 succeeded, 0 failed, 0 errored"),
        "h2load saw failures: {text}"
    );
    assert!(text.contains("status codes: 10000 2xx"), "{text}");
}

// === Graceful shutdown, seen as frames on the wire ===

#[test]
fn graceful_shutdown_sends_goaway_and_finishes_proxied_streams() {
    let rt = runtime();
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let (gate, gate_rx) = tokio::sync::watch::channel(false);
    let origin = raw_origin(&rt, move |mut conn, _| {
        let arrived = arrived_tx.clone();
        let mut gate = gate_rx.clone();
        async move {
            while let Some(req) = conn.read_request().await {
                let _ = arrived.send(req.head.target().to_string());
                let _ = gate.wait_for(|open| *open).await;
                conn.send(ok_response(b"slow done")).await;
            }
        }
    });
    let (proxy, addr) = start_h2c_proxy(origin.addr);
    rt.block_on(async {
        let mut conn = RawConn::connect(addr).await;
        conn.send(preface_and_get("/slow")).await;
        let path = within("the request upstream", arrived.recv()).await;
        assert_eq!(path.as_deref(), Some("/slow"));

        proxy.begin_graceful_shutdown();
        // Skip SETTINGS and such until the GOAWAY that keeps stream 1; answer PINGs.
        loop {
            let Frame {
                kind,
                flags,
                payload,
                ..
            } = read_frame(&mut conn).await.expect("a GOAWAY");
            match kind {
                GOAWAY => {
                    let last = u32::from_be_bytes(payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                    let code = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                    assert_eq!(code, 0, "GOAWAY with NO_ERROR");
                    if last == 1 {
                        break;
                    }
                }
                PING if flags & 1 == 0 => {
                    conn.send(ping_ack(&payload)).await;
                }
                HEADERS | DATA => panic!("stream 1 answered before the origin did"),
                _ => {}
            }
        }

        // The stream in flight still gets its whole response, then the connection closes.
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
        while let Some(Frame { kind, .. }) = read_frame(&mut conn).await {
            assert!(kind != HEADERS && kind != DATA, "nothing more is answered");
        }
    });
}
