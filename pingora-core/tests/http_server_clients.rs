//! The HTTP/1 server on real loopback sockets, driven by real clients: the `curl` binary and
//! a hyper 1.x client connection.

mod http_support;

use std::process::Output;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Channel, Empty, Full};
use http_support::*;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use pingora_test_support::body::pseudo_random;
use pingora_test_support::curl;
use pingora_test_support::raw::{Message, RawConn};
use pingora_test_support::{TestService, TIMEOUT};
use tokio::net::TcpStream;

// === curl ===

/// Runs `curl` with `args` (plus `-sS` and a time limit) off the runtime's threads.
async fn curl(args: Vec<String>) -> Output {
    let run = tokio::task::spawn_blocking(move || curl::output(&args));
    tokio::time::timeout(TIMEOUT + Duration::from_secs(2), run)
        .await
        .expect("curl hung")
        .expect("curl failed")
}

/// Splits what `curl -i` printed into responses (each with a `Content-Length` body).
async fn split_responses(out: &[u8]) -> Vec<Message> {
    let mut conn = RawConn::new(out);
    let mut responses = Vec::new();
    while !conn.is_closed().await {
        let resp = conn.response().await;
        assert!(resp.header("content-length").is_some(), "a Content-Length");
        responses.push(resp);
    }
    responses
}

/// A file in the temporary directory, unique to this process and `name`.
fn temp_file(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("pingora-http-it-{}-{name}", std::process::id()))
}

#[tokio::test]
async fn curl_http10() {
    let (server, _events) = echo_server(None).await;
    let url = format!("http://{}/ten?q=1", server.addr);
    let out = curl(vec!["--http1.0".into(), "-i".into(), url]).await;
    let responses = split_responses(&out.stdout).await;
    assert_eq!(responses.len(), 1);
    let resp = &responses[0];
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.header("x-echo-version"), Some("HTTP/1.0"));
    assert_eq!(resp.header("x-echo-path"), Some("/ten?q=1"));
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(resp.body, b"GET /ten?q=1\n");
    server.stop().await;
}

#[tokio::test]
async fn curl_http11_with_a_custom_header() {
    let (server, _events) = echo_server(None).await;
    let url = format!("http://{}/eleven", server.addr);
    let out = curl(vec![
        "--http1.1".into(),
        "-i".into(),
        "-H".into(),
        "X-MiXeD-Case: yes".into(),
        "-A".into(),
        "test-agent".into(),
        url,
    ])
    .await;
    let responses = split_responses(&out.stdout).await;
    assert_eq!(responses.len(), 1);
    let resp = &responses[0];
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.header("x-echo-version"), Some("HTTP/1.1"));
    // The request header names, spelled as curl sent them.
    assert_eq!(
        resp.header("x-echo-header-names"),
        Some("Host,User-Agent,Accept,X-MiXeD-Case")
    );
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    assert_eq!(resp.body, b"GET /eleven\n");
    // Well-known response header names are written in their conventional spelling.
    let head = String::from_utf8_lossy(&resp.head.raw).into_owned();
    assert!(head.contains("\r\nContent-Length: 12\r\n"), "{head}");
    assert!(head.contains("\r\nDate: "), "{head}");
    server.stop().await;
}

#[tokio::test]
async fn curl_reuses_one_connection_for_two_urls() {
    let (echo, _events) = Echo::new();
    let (app, connections) = Counting::new(echo);
    let server = TestService::start(app).await;
    let out = curl(vec![
        "-v".into(),
        "-i".into(),
        format!("http://{}/one", server.addr),
        format!("http://{}/two", server.addr),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Re-using existing connection"), "{stderr}");
    let responses = split_responses(&out.stdout).await;
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0].body, b"GET /one\n");
    assert_eq!(responses[1].body, b"GET /two\n");
    assert_eq!(
        responses[0].header("x-echo-peer"),
        responses[1].header("x-echo-peer")
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test]
async fn curl_chunked_upload_is_echoed_exactly() {
    const SIZE: usize = 3 * 1024 * 1024 + 17;
    let (server, mut events) = echo_server(None).await;
    let input = temp_file("upload");
    let output = temp_file("echoed");
    let headers = temp_file("headers");
    let body = pseudo_random(SIZE, 7);
    std::fs::write(&input, &body).unwrap();
    curl(vec![
        "-H".into(),
        "Transfer-Encoding: chunked".into(),
        "--data-binary".into(),
        format!("@{}", input.display()),
        "-D".into(),
        headers.display().to_string(),
        "-o".into(),
        output.display().to_string(),
        format!("http://{}/upload", server.addr),
    ])
    .await;
    let echoed = std::fs::read(&output).unwrap();
    let head = std::fs::read_to_string(&headers).unwrap();
    for file in [&input, &output, &headers] {
        std::fs::remove_file(file).unwrap();
    }
    // curl asks for 100-continue before a large body; the final response follows it.
    let final_head = head.rsplit("\r\n\r\n").nth(1).unwrap_or(&head);
    assert!(final_head.contains("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        final_head.contains(&format!("\r\nx-echo-body-len: {SIZE}\r\n")),
        "{head}"
    );
    assert!(final_head.contains("\r\nx-echo-method: POST\r\n"), "{head}");
    assert_eq!(echoed.len(), SIZE);
    assert!(echoed == body, "the echoed body differs");
    assert_eq!(next_event(&mut events).await.outcome, Ok(SIZE));
    server.stop().await;
}

// === hyper ===

/// A hyper HTTP/1 client connection to `server`; returns it and the client's own address.
async fn hyper_conn<B>(
    server: &TestService,
    builder: &http1::Builder,
) -> (http1::SendRequest<B>, String, tokio::task::JoinHandle<()>)
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let local = tcp.local_addr().unwrap().to_string();
    let (sender, conn) = builder.handshake(TokioIo::new(tcp)).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (sender, local, driver)
}

async fn collect<B>(body: B) -> Vec<u8>
where
    B: hyper::body::Body,
    B::Error: std::fmt::Debug,
{
    let collected = tokio::time::timeout(TIMEOUT, body.collect())
        .await
        .expect("body timed out")
        .expect("body failed");
    collected.to_bytes().to_vec()
}

#[tokio::test]
async fn hyper_client_sends_several_requests_on_one_connection() {
    let (server, mut events) = echo_server(None).await;
    let builder = http1::Builder::new();
    let (mut sender, local, driver) = hyper_conn::<Full<Bytes>>(&server, &builder).await;
    for i in 0..5 {
        let (method, body) = if i % 2 == 0 {
            (Method::GET, Bytes::new())
        } else {
            (Method::POST, Bytes::from(format!("payload {i}")))
        };
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("/r{i}?x=y"))
            .header("host", "example.test")
            .header("x-request-tag", format!("tag-{i}"))
            .body(Full::new(body.clone()))
            .unwrap();
        sender.ready().await.unwrap();
        let resp = tokio::time::timeout(TIMEOUT, sender.send_request(req))
            .await
            .expect("response timed out")
            .expect("request failed");
        assert_eq!(resp.status(), StatusCode::OK);
        let headers = resp.headers().clone();
        assert_eq!(headers["x-echo-method"], method.as_str());
        assert_eq!(headers["x-echo-path"], format!("/r{i}?x=y").as_str());
        assert_eq!(headers["x-echo-peer"], local.as_str());
        assert_eq!(headers["connection"], "keep-alive");
        // hyper writes header names in lowercase unless asked otherwise.
        let names = if method == Method::POST {
            "host,x-request-tag,content-length"
        } else {
            "host,x-request-tag"
        };
        assert_eq!(headers["x-echo-header-names"], names);
        let resp_body = collect(resp.into_body()).await;
        let expected = if body.is_empty() {
            format!("GET /r{i}?x=y\n").into_bytes()
        } else {
            body.to_vec()
        };
        assert_eq!(resp_body, expected);
        assert_eq!(next_event(&mut events).await.outcome, Ok(body.len()));
    }
    drop(sender);
    tokio::time::timeout(TIMEOUT, driver)
        .await
        .unwrap()
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn hyper_client_header_case_is_kept() {
    let (server, _events) = echo_server(None).await;
    let mut builder = http1::Builder::new();
    builder.title_case_headers(true);
    let (mut sender, _, _driver) = hyper_conn::<Empty<Bytes>>(&server, &builder).await;
    let req = Request::builder()
        .uri("/case")
        .header("host", "example.test")
        .header("x-request-tag", "t")
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-echo-header-names"], "Host,X-Request-Tag");
    server.stop().await;
}

#[tokio::test]
async fn hyper_client_without_host_gets_400_and_a_close() {
    let (server, mut events) = echo_server(None).await;
    let (mut sender, _, driver) = hyper_conn::<Empty<Bytes>>(&server, &http1::Builder::new()).await;
    let req = Request::builder()
        .uri("/nohost")
        .body(Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.headers()["connection"], "close");
    assert_eq!(resp.headers()["content-length"], "0");
    assert!(collect(resp.into_body()).await.is_empty());
    // The server closed the connection: hyper's connection task ends by itself.
    tokio::time::timeout(TIMEOUT, driver)
        .await
        .unwrap()
        .unwrap();
    assert!(sender.is_closed());
    assert!(events.try_recv().is_err(), "the app saw the request");
    server.stop().await;
}

#[tokio::test]
async fn hyper_streamed_post_is_echoed_piece_by_piece() {
    let server = TestService::start(StreamEcho).await;
    let (mut sender, _, _driver) =
        hyper_conn::<Channel<Bytes>>(&server, &http1::Builder::new()).await;
    let (mut body_tx, body) = Channel::<Bytes>::new(4);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/stream")
        .header("host", "example.test")
        .body(body)
        .unwrap();
    // Sent with chunked coding since its length is unknown; the response head comes back
    // before the request body ends.
    body_tx
        .send_data(Bytes::from_static(b"first"))
        .await
        .unwrap();
    let resp = tokio::time::timeout(TIMEOUT, sender.send_request(req))
        .await
        .expect("no response head before the body ended")
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-custom-header"], "pingora");
    assert_eq!(resp.headers()["transfer-encoding"], "chunked");
    let mut resp_body = resp.into_body();
    let mut received = Vec::new();
    for piece in ["first", "second piece", "third"] {
        if piece != "first" {
            body_tx.send_data(Bytes::from(piece)).await.unwrap();
        }
        // Each piece comes back before the next is sent.
        let mut got = Vec::new();
        while got.len() < piece.len() {
            let frame = tokio::time::timeout(TIMEOUT, resp_body.frame())
                .await
                .expect("piece not echoed")
                .expect("body ended early")
                .unwrap();
            got.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(got, piece.as_bytes());
        received.extend_from_slice(&got);
    }
    drop(body_tx);
    let rest = collect(resp_body).await;
    assert!(rest.is_empty());
    assert_eq!(received, b"firstsecond piecethird");
    server.stop().await;
}

#[tokio::test]
async fn response_header_case_is_kept_on_the_wire() {
    let server = TestService::start(StreamEcho).await;
    let mut conn = server.connect().await;
    conn.send(b"POST /case HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        .await;
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    let head = String::from_utf8_lossy(&resp.head.raw).into_owned();
    assert!(head.contains("\r\nX-Custom-Header: pingora\r\n"), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    assert!(resp.chunked_complete);
    assert_eq!(resp.body, b"hi");
    server.stop().await;
}
