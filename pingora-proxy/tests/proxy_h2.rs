//! HTTP/2 clients (h2c with prior knowledge) through the proxy to an HTTP/1 origin: the
//! request is translated to HTTP/1.1, bodies flow both ways, many streams share a connection.

mod e2e;
mod utils;

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::Bytes;
use e2e::*;
use h2::client::SendRequest;
use http::{HeaderMap, Method, Request, StatusCode};
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use tokio::net::TcpStream;

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
fn start_h2c_proxy(origin: SocketAddr) -> (utils::TestServer, SocketAddr) {
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    start_proxy_with(ToOrigin(origin), ServerConf::default(), Some(options))
}

/// An HTTP/1 origin answering each request with what it saw: `x-line` (the request line),
/// `x-host`, `x-te` and `x-cl` (the request's `Transfer-Encoding` and `Content-Length`),
/// and the request body as the body (`"empty"` if none). `/chunked` is answered with a
/// chunked body of three pieces instead.
fn echo_origin(rt: &tokio::runtime::Runtime) -> Origin {
    raw_origin(rt, |mut conn, _| async move {
        while let Some(req) = conn.read_request().await {
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

/// Opens an h2c connection to `addr`, its driver running as a task.
async fn h2_client(addr: SocketAddr) -> SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (send, conn) = within("h2 handshake", h2::client::handshake(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A whole response.
struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Sends `req` with `body` and reads the whole response.
async fn exchange(send: &SendRequest<Bytes>, req: Request<()>, body: Option<Vec<u8>>) -> Got {
    let run = async {
        let mut send = send.clone().ready().await.expect("connection ready");
        let (resp, mut stream) = send
            .send_request(req, body.is_none())
            .expect("send request");
        if let Some(body) = body {
            let mut data = Bytes::from(body);
            while !data.is_empty() {
                stream.reserve_capacity(data.len());
                let granted = std::future::poll_fn(|cx| stream.poll_capacity(cx))
                    .await
                    .expect("stream open")
                    .expect("capacity");
                let piece = data.split_to(granted.min(data.len()));
                stream.send_data(piece, data.is_empty()).expect("send data");
            }
        }
        let (parts, mut recv) = resp.await.expect("response").into_parts();
        let mut body = Vec::new();
        while let Some(piece) = recv.data().await {
            let piece = piece.expect("body piece");
            let _ = recv.flow_control().release_capacity(piece.len());
            body.extend_from_slice(&piece);
        }
        Got {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    };
    within("h2 exchange", run).await
}

fn request(method: Method, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://example.test{path}"))
        .body(())
        .expect("a valid request")
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

/// `h2load -n 10000 -c 10 -m 10` through the proxy: every request must succeed.
#[test]
#[ignore = "load test; needs /usr/bin/h2load"]
fn h2load_through_the_proxy_has_no_failures() {
    let rt = runtime();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let origin = raw_origin(&rt, move |conn, _| serve_ok(conn, seen.clone()));
    let (_proxy, addr) = start_h2c_proxy(origin.addr);
    let out = std::process::Command::new("h2load")
        .args(["-n", "10000", "-c", "10", "-m", "10"])
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
}
