//! The HTTP/1 server on real loopback sockets, driven by raw clients: malformed, oversized and
//! ambiguous requests, broken bodies, slow and vanishing clients, and the connection
//! management rules (pipelining, 100-continue, HEAD, keepalive limits, HTTP/1.0, graceful
//! shutdown).

mod http_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_support::*;
use pingora_core::apps::http_app::HttpServer;
use pingora_core::protocols::http::v1::Limits;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownSignal};
use pingora_core::services::listening::Service;
use pingora_test_support::body::pseudo_random;
use pingora_test_support::raw::{chunked, Message, RawConn};
use pingora_test_support::TestServer;
use pingora_test_support::{TestService, TIMEOUT};
use tokio::io::AsyncWriteExt;

/// Sends `request` on a new connection and checks it is refused with `status_line`, an empty
/// body and `Connection: close`, and that the connection is then closed cleanly. The
/// application must not have seen the request.
async fn assert_rejected(
    server: &TestService,
    events: &mut EchoEvents,
    request: &[u8],
    status_line: &str,
) {
    let mut conn = server.connect().await;
    conn.send(request).await;
    let resp = conn.response().await;
    let shown = shown(request);
    assert_eq!(resp.head.line, status_line, "for {shown:?}");
    assert_eq!(resp.header("Connection"), Some("close"), "for {shown:?}");
    assert_eq!(resp.header("Content-Length"), Some("0"), "for {shown:?}");
    assert_eq!(resp.header("Server"), Some("Pingora"), "for {shown:?}");
    conn.expect_eof().await;
    assert!(
        events.try_recv().is_err(),
        "the app saw the rejected request {shown:?}"
    );
}

/// The start of `request`, for assertion messages.
fn shown(request: &[u8]) -> String {
    let text = String::from_utf8_lossy(request);
    text.chars().take(120).collect()
}

/// Sends `request` and checks the echo application answered 200 with `body`.
async fn assert_echoed(server: &TestService, request: &[u8], body: &[u8]) -> Message {
    let mut conn = server.connect().await;
    conn.send(request).await;
    let resp = conn.response().await;
    assert_eq!(
        resp.head.line,
        "HTTP/1.1 200 OK",
        "for {:?}",
        shown(request)
    );
    assert_eq!(resp.body, body);
    resp
}

// === malformed heads ===

#[tokio::test]
async fn malformed_request_lines_are_400() {
    let (server, mut events) = echo_server(None).await;
    for request in [
        &b"GET / HTTP/1.1 extra\r\nHost: a\r\n\r\n"[..],
        b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
        b"\x00\x01\x02\x03 garbage\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_rejected(&server, &mut events, request, "HTTP/1.1 400 Bad Request").await;
    }
    server
        .assert_settled("malformed_request_lines_are_400")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_header_fields_are_400() {
    let (server, mut events) = echo_server(None).await;
    for request in [
        // A space in a name, a control byte in a name, no colon, space before the colon.
        &b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A\x01: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A : y\r\n\r\n",
        // A bare CR inside a value, and a NUL.
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\rb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\x00b\r\n\r\n",
        // Obsolete line folding (RFC 9112 section 5.2: a server may reject it with 400).
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: a\r\n\tb\r\n\r\n",
        // A line folded before the first header field.
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    ] {
        assert_rejected(&server, &mut events, request, "HTTP/1.1 400 Bad Request").await;
    }
    server
        .assert_settled("malformed_header_fields_are_400")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn host_rules_are_enforced() {
    let (server, mut events) = echo_server(None).await;
    for request in [
        // Missing on 1.1, or more than one (RFC 9112 section 3.2).
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
        // Not a `uri-host [ ":" port ]`.
        b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a?b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a#b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: ::1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 2001:db8::1:80\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n",
        // A list: a documented policy stricter than RFC 3986.
        b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: a b\r\n\r\n",
        // absolute-form: Host still required on 1.1, no userinfo, a valid authority.
        b"GET http://a/x HTTP/1.1\r\n\r\n",
        b"GET http://u@a/x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://u:p@a/x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://a,b/x HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_rejected(&server, &mut events, request, "HTTP/1.1 400 Bad Request").await;
    }
    // HTTP/1.0 does not need a Host.
    assert_echoed(&server, b"GET /x HTTP/1.0\r\n\r\n", b"GET /x\n").await;
    for host in [
        "a",
        "a:8080",
        "127.0.0.1:1",
        "[::1]",
        "[2001:db8::1]:443",
        "a-b.c_d",
    ] {
        let request = format!("GET /h HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let resp = assert_echoed(&server, request.as_bytes(), b"GET /h\n").await;
        assert_eq!(resp.header("x-echo-host"), Some(host));
    }
    server.assert_settled("host_rules_are_enforced").await;
    server.stop().await;
}

#[tokio::test]
async fn absolute_form_authority_wins_over_host() {
    let (server, _events) = echo_server(None).await;
    for (request, host) in [
        (
            &b"GET http://target.example:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n"[..],
            "target.example:8080",
        ),
        (
            b"GET http://target.example HTTP/1.0\r\n\r\n",
            "target.example",
        ),
    ] {
        let mut conn = server.connect().await;
        conn.send(request).await;
        let resp = conn.response().await;
        assert_eq!(
            resp.head.line,
            "HTTP/1.1 200 OK",
            "for {:?}",
            shown(request)
        );
        assert_eq!(
            resp.header("x-echo-host"),
            Some(host),
            "for {:?}",
            shown(request)
        );
    }
    server
        .assert_settled("absolute_form_authority_wins_over_host")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn unsupported_versions_are_505() {
    let (server, mut events) = echo_server(None).await;
    for request in [
        &b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/3.0\r\nHost: a\r\n\r\n",
        b"GET / HTTP/9.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/0.9\r\nHost: a\r\n\r\n",
    ] {
        assert_rejected(
            &server,
            &mut events,
            request,
            "HTTP/1.1 505 HTTP Version Not Supported",
        )
        .await;
    }
    server.assert_settled("unsupported_versions_are_505").await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_versions_are_400_not_505() {
    let (server, mut events) = echo_server(None).await;
    for request in [
        // A space inside the target: the "version" is `b HTTP/1.1`.
        &b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET / FOO/1.1\r\nHost: a\r\n\r\n",
        // The version is case-sensitive (RFC 9112 section 2.3).
        b"GET / http/1.1\r\nHost: a\r\n\r\n",
        b"GET / Http/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/11\r\nHost: a\r\n\r\n",
        // Exactly one digit on each side of the dot.
        b"GET / HTTP/1.10\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.20\r\nHost: a\r\n\r\n",
        b"GET / HTTP/01.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.x\r\nHost: a\r\n\r\n",
    ] {
        assert_rejected(&server, &mut events, request, "HTTP/1.1 400 Bad Request").await;
    }
    server
        .assert_settled("malformed_versions_are_400_not_505")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn higher_minor_versions_are_served_as_http11() {
    // RFC 9110 section 2.5: a later 1.x is answered as the highest 1.x we speak.
    let (server, mut events) = echo_server(None).await;
    let mut conn = server.connect().await;
    for (request, path) in [
        (&b"GET /two HTTP/1.2\r\nHost: a\r\n\r\n"[..], "/two"),
        (b"GET /nine HTTP/1.9\r\nHost: a\r\n\r\n", "/nine"),
    ] {
        // The same connection: kept alive as for HTTP/1.1.
        conn.send(request).await;
        let resp = conn.response().await;
        assert_eq!(
            resp.head.line,
            "HTTP/1.1 200 OK",
            "for {:?}",
            shown(request)
        );
        assert_eq!(resp.header("x-echo-version"), Some("HTTP/1.1"));
        assert_eq!(resp.header("x-echo-path"), Some(path));
        assert_ne!(resp.header("Connection"), Some("close"));
        assert_eq!(next_event(&mut events).await.path, path);
    }
    drop(conn);
    // Still a Host is required, as in HTTP/1.1.
    assert_rejected(
        &server,
        &mut events,
        b"GET / HTTP/1.2\r\n\r\n",
        "HTTP/1.1 400 Bad Request",
    )
    .await;
    server
        .assert_settled("higher_minor_versions_are_served_as_http11")
        .await;
    server.stop().await;
}

// === size limits ===

/// A request head of about `header_bytes` bytes (never more), in fields of at most 1 KB.
fn head_with_header_bytes(header_bytes: usize) -> Vec<u8> {
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    let mut i = 0;
    while req.len() + 20 < header_bytes {
        let value = "v".repeat((header_bytes - req.len() - 20).min(1000));
        req.extend_from_slice(format!("X-Filler-{i:04}: {value}\r\n").as_bytes());
        i += 1;
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[tokio::test]
async fn head_over_configured_byte_limit_is_431() {
    let options = options(|o| o.h1_limits = Limits::default().max_header_bytes(1024));
    let (server, mut events) = echo_server(options).await;
    // Complete in one read, and spread over several reads.
    for size in [1500, 20_000] {
        let request = head_with_header_bytes(size);
        assert_rejected(
            &server,
            &mut events,
            &request,
            "HTTP/1.1 431 Request Header Fields Too Large",
        )
        .await;
    }
    // Just under the limit is served.
    let request = head_with_header_bytes(1000);
    assert!(request.len() > 900 && request.len() <= 1024);
    assert_echoed(&server, &request, b"GET /\n").await;
    server
        .assert_settled("head_over_configured_byte_limit_is_431")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn head_over_default_byte_limit_is_431() {
    let (server, mut events) = echo_server(None).await;
    let request = head_with_header_bytes(64 * 1024 + 200);
    assert_rejected(
        &server,
        &mut events,
        &request,
        "HTTP/1.1 431 Request Header Fields Too Large",
    )
    .await;
    let request = head_with_header_bytes(64 * 1024);
    assert!(request.len() > 63 * 1024 && request.len() <= 64 * 1024);
    assert_echoed(&server, &request, b"GET /\n").await;
    server
        .assert_settled("head_over_default_byte_limit_is_431")
        .await;
    server.stop().await;
}

/// A request with `n` header fields, `Host` included.
fn head_with_fields(n: usize) -> Vec<u8> {
    let mut req = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..n {
        req.extend_from_slice(format!("X-F{i}: {i}\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    req
}

#[tokio::test]
async fn too_many_header_fields_is_431() {
    let options = options(|o| o.h1_limits = Limits::default().max_headers(8));
    let (server, mut events) = echo_server(options).await;
    assert_rejected(
        &server,
        &mut events,
        &head_with_fields(9),
        "HTTP/1.1 431 Request Header Fields Too Large",
    )
    .await;
    let resp = assert_echoed(&server, &head_with_fields(8), b"GET /\n").await;
    assert_eq!(
        resp.header("x-echo-header-names"),
        Some("Host,X-F1,X-F2,X-F3,X-F4,X-F5,X-F6,X-F7")
    );
    server.assert_settled("too_many_header_fields_is_431").await;
    server.stop().await;
}

#[tokio::test]
async fn too_many_header_fields_default_limit_is_431() {
    let (server, mut events) = echo_server(None).await;
    assert_rejected(
        &server,
        &mut events,
        &head_with_fields(257),
        "HTTP/1.1 431 Request Header Fields Too Large",
    )
    .await;
    assert_echoed(&server, &head_with_fields(256), b"GET /\n").await;
    server
        .assert_settled("too_many_header_fields_default_limit_is_431")
        .await;
    server.stop().await;
}

/// A request whose target is `/` followed by `len - 1` letters.
fn long_uri_request(len: usize) -> Vec<u8> {
    format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(len - 1)).into_bytes()
}

#[tokio::test]
async fn request_line_over_limit_is_414() {
    let options = options(|o| o.h1_limits = Limits::default().max_header_bytes(1024));
    let (server, mut events) = echo_server(options).await;
    // The line has not ended when the limit is passed: the client is still sending it.
    let partial = format!("GET /{}", "a".repeat(2000));
    assert_rejected(
        &server,
        &mut events,
        partial.as_bytes(),
        "HTTP/1.1 414 URI Too Long",
    )
    .await;
    // Longer than the first read (4 KiB), so the limit is passed before the line ends.
    assert_rejected(
        &server,
        &mut events,
        &long_uri_request(16 * 1024),
        "HTTP/1.1 414 URI Too Long",
    )
    .await;
    server
        .assert_settled("request_line_over_limit_is_414")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn request_line_over_default_limit_is_414() {
    let (server, mut events) = echo_server(None).await;
    let partial = format!("GET /{}", "a".repeat(65 * 1024));
    assert_rejected(
        &server,
        &mut events,
        partial.as_bytes(),
        "HTTP/1.1 414 URI Too Long",
    )
    .await;
    server
        .assert_settled("request_line_over_default_limit_is_414")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn complete_request_line_over_limit_is_414() {
    // The whole request fits in the first read, so the parser sees a complete head.
    let options = options(|o| o.h1_limits = Limits::default().max_header_bytes(1024));
    let (server, mut events) = echo_server(options).await;
    assert_rejected(
        &server,
        &mut events,
        &long_uri_request(1500),
        "HTTP/1.1 414 URI Too Long",
    )
    .await;
    server
        .assert_settled("complete_request_line_over_limit_is_414")
        .await;
    server.stop().await;
    // The same with the default limit: the read that passes 64 KiB also takes the line end.
    let (server, mut events) = echo_server(None).await;
    assert_rejected(
        &server,
        &mut events,
        &long_uri_request(80 * 1024),
        "HTTP/1.1 414 URI Too Long",
    )
    .await;
    server
        .assert_settled("complete_request_line_over_limit_is_414")
        .await;
    server.stop().await;
}

// === body framing ===

#[tokio::test]
async fn conflicting_content_lengths_are_400() {
    let (server, mut events) = echo_server(None).await;
    for request in [
        &b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n",
    ] {
        assert_rejected(&server, &mut events, request, "HTTP/1.1 400 Bad Request").await;
    }
    server
        .assert_settled("conflicting_content_lengths_are_400")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn identical_content_lengths_are_accepted() {
    // RFC 9110 section 8.6 lets a recipient accept repeated identical values; the parser
    // (`FramingChecks::observe` in `pingora-http-codec/src/h1/head.rs`) does.
    let (server, mut events) = echo_server(None).await;
    for request in [
        &b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello",
        b"POST /d HTTP/1.1\r\nHost: a\r\nContent-Length: 5,5\r\nContent-Length: 5\r\n\r\nhello",
    ] {
        let resp = assert_echoed(&server, request, b"hello").await;
        assert_eq!(resp.header("x-echo-body-len"), Some("5"));
        // Merged into one field with one value: the application never sees the duplicates.
        assert_eq!(
            resp.header("x-echo-header-names"),
            Some("Host,Content-Length")
        );
        let event = next_event(&mut events).await;
        assert_eq!(event.outcome, Ok(5));
    }
    server
        .assert_settled("identical_content_lengths_are_accepted")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn transfer_encoding_misuse_is_refused() {
    let (server, mut events) = echo_server(None).await;
    let bad = [
        // Both framings: a request smuggling vector (RFC 9112 section 6.3).
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Transfer-Encoding in HTTP/1.0.
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        // The final coding is not chunked: the length cannot be known (section 6.3 rule 4).
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n0\r\n\r\n",
        // chunked applied twice (section 6.1).
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked, chunked\r\n\r\n0\r\n\r\n",
    ];
    for request in bad {
        assert_rejected(&server, &mut events, request, "HTTP/1.1 400 Bad Request").await;
    }
    // A coding we do not decode before a single, final chunked (section 6.1).
    let unsupported = [
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ];
    for request in unsupported {
        assert_rejected(
            &server,
            &mut events,
            request,
            "HTTP/1.1 501 Not Implemented",
        )
        .await;
    }
    // The coding name is case-insensitive.
    assert_echoed(
        &server,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"abc",
    )
    .await;
    server
        .assert_settled("transfer_encoding_misuse_is_refused")
        .await;
    server.stop().await;
}

/// Sends a chunked request whose body is `body` and checks the echo application failed to
/// read it with `InvalidHTTPHeader` after `good_bytes`, answered 400, and closed.
async fn assert_bad_chunked(
    server: &TestService,
    events: &mut EchoEvents,
    body: &[u8],
    good_bytes: usize,
) {
    let mut conn = server.connect().await;
    let mut request = b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(body);
    conn.send(&request).await;
    let resp = conn.response().await;
    let shown = String::from_utf8_lossy(body);
    assert_eq!(resp.head.line, "HTTP/1.1 400 Bad Request", "for {shown:?}");
    assert_eq!(resp.header("x-echo-error"), Some("InvalidHTTPHeader"));
    assert_eq!(resp.header("Connection"), Some("close"), "for {shown:?}");
    conn.expect_eof().await;
    let event = next_event(events).await;
    assert_eq!(
        event.outcome,
        Err(("InvalidHTTPHeader", good_bytes)),
        "for {shown:?}"
    );
}

#[tokio::test]
async fn malformed_chunked_bodies_are_400() {
    let (server, mut events) = echo_server(None).await;
    // Not a hex size.
    assert_bad_chunked(&server, &mut events, b"zz\r\nhello\r\n0\r\n\r\n", 0).await;
    assert_bad_chunked(&server, &mut events, b"\r\nhello\r\n0\r\n\r\n", 0).await;
    assert_bad_chunked(&server, &mut events, b"-5\r\nhello\r\n0\r\n\r\n", 0).await;
    assert_bad_chunked(&server, &mut events, b"0x5\r\nhello\r\n0\r\n\r\n", 0).await;
    // A size that overflows 64 bits.
    assert_bad_chunked(&server, &mut events, b"10000000000000000\r\nhello\r\n", 0).await;
    assert_bad_chunked(&server, &mut events, b"fffffffffffffffff\r\nhello\r\n", 0).await;
    // Chunk data not followed by CRLF (longer than its size), after a good chunk.
    assert_bad_chunked(
        &server,
        &mut events,
        b"2\r\nok\r\n5\r\nhelloXX\r\n0\r\n\r\n",
        7,
    )
    .await;
    assert_bad_chunked(&server, &mut events, b"5\r\nhello\nX0\r\n\r\n", 5).await;
    // A size line ended by a bare LF.
    assert_bad_chunked(&server, &mut events, b"5\nhello\r\n0\r\n\r\n", 0).await;
    // A chunk size line longer than the 8 KiB default limit.
    let mut long_ext = b"5;".to_vec();
    long_ext.extend(std::iter::repeat_n(b'x', 9 * 1024));
    long_ext.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_bad_chunked(&server, &mut events, &long_ext, 0).await;
    // Chunk extensions and trailers within limits are accepted.
    let resp = assert_echoed(
        &server,
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;name=value\r\nhello\r\n1 ; x\r\n!\r\n0\r\nX-Trailer: t\r\n\r\n",
        b"hello!",
    )
    .await;
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    server
        .assert_settled("malformed_chunked_bodies_are_400")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_chunk_after_response_started_closes_connection() {
    let server = TestService::start(StreamEcho).await;
    let mut conn = server.connect().await;
    conn.send(b"POST /s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        .await;
    // The head and the first piece come back before the body ends.
    let head = conn.read_until(b"\r\n\r\n").await;
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nTransfer-Encoding: chunked\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    assert_eq!(conn.read_exact(10).await, b"5\r\nhello\r\n");
    conn.send(b"zz\r\n").await;
    // The response cannot become an error any more: it is cut short, without its last chunk.
    conn.expect_eof().await;
    server
        .assert_settled("malformed_chunk_after_response_started_closes_connection")
        .await;
    server.stop().await;
}

// === CONNECT ===

#[tokio::test]
async fn connect_is_refused_by_default() {
    let (server, mut events) = echo_server(None).await;
    for request in [
        &b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"[..],
        // Tunnel bytes sent at once must not be served as a request.
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.0\r\n\r\n",
    ] {
        assert_rejected(&server, &mut events, request, "HTTP/1.1 405 Method Not Allowed").await;
    }
    server.assert_settled("connect_is_refused_by_default").await;
    server.stop().await;
}

#[tokio::test]
async fn connect_reaches_the_app_when_allowed() {
    let options = options(|o| o.allow_connect_method_proxying = true);
    let (server, mut events) = echo_server(options).await;
    let mut conn = server.connect().await;
    conn.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await;
    let head = conn.read_until(b"\r\n\r\n").await;
    let head = String::from_utf8_lossy(&head).into_owned();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("\r\nx-echo-method: CONNECT\r\n"), "{head}");
    assert!(
        head.contains("\r\nx-echo-path: example.com:443\r\n"),
        "{head}"
    );
    assert_eq!(next_event(&mut events).await.outcome, Ok(0));
    server
        .assert_settled("connect_reaches_the_app_when_allowed")
        .await;
    server.stop().await;
}

// === slow and vanishing clients ===

#[tokio::test]
async fn slow_request_head_is_closed_after_read_timeout() {
    let (echo, _events) = Echo::new();
    let app = WithReadTimeout {
        inner: Arc::new(HttpServer::new_app(echo)),
        timeout: Duration::from_millis(300),
    };
    let server = TestService::start(app).await;
    let mut conn = server.connect().await;
    conn.send(b"GET /slow HTTP/1.1\r\nHost: a\r\nX-Half: ")
        .await;
    let start = Instant::now();
    // A timed-out head gets no response: the connection is just closed.
    conn.expect_eof().await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    server
        .assert_settled("slow_request_head_is_closed_after_read_timeout")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn slow_request_body_times_out() {
    let (mut echo, mut events) = Echo::new();
    echo.read_timeout = Some(Duration::from_millis(300));
    let server = echo_app_server(echo, None).await;
    let mut conn = server.connect().await;
    let start = Instant::now();
    conn.send(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .await;
    let resp = conn.response().await;
    let waited = start.elapsed();
    assert_eq!(resp.head.line, "HTTP/1.1 400 Bad Request");
    assert_eq!(resp.header("x-echo-error"), Some("ReadTimedout"));
    assert_eq!(resp.header("x-echo-body-len"), Some("3"));
    assert_eq!(resp.header("Connection"), Some("close"));
    assert!(
        waited >= Duration::from_millis(250),
        "answered after {waited:?}"
    );
    conn.expect_eof().await;
    assert_eq!(
        next_event(&mut events).await.outcome,
        Err(("ReadTimedout", 3))
    );
    server.assert_settled("slow_request_body_times_out").await;
    server.stop().await;
}

#[tokio::test]
async fn client_half_closing_mid_body_gets_an_answer_and_a_close() {
    let (server, mut events) = echo_server(None).await;
    let mut conn = server.connect().await;
    conn.send(b"POST /cut HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789")
        .await;
    conn.stream.shutdown().await.unwrap();
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 400 Bad Request");
    assert_eq!(resp.header("x-echo-error"), Some("ConnectionClosed"));
    assert_eq!(resp.header("Connection"), Some("close"));
    conn.expect_eof().await;
    assert_eq!(
        next_event(&mut events).await,
        BodyEvent {
            path: "/cut".to_string(),
            outcome: Err(("ConnectionClosed", 10)),
        }
    );
    server
        .assert_settled("client_half_closing_mid_body_gets_an_answer_and_a_close")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn client_vanishing_mid_body_is_seen_by_the_app() {
    let (server, mut events) = echo_server(None).await;
    for (framing, partial) in [
        ("Content-Length: 100", &b"0123456789"[..]),
        ("Transfer-Encoding: chunked", b"a\r\n0123456789\r\n5\r\nab"),
    ] {
        let mut conn = server.connect().await;
        let mut request =
            format!("POST /gone HTTP/1.1\r\nHost: a\r\n{framing}\r\n\r\n").into_bytes();
        request.extend_from_slice(partial);
        conn.send(&request).await;
        drop(conn);
        let event = next_event(&mut events).await;
        let read = if framing.starts_with("Content") {
            10
        } else {
            12
        };
        assert_eq!(event.outcome, Err(("ConnectionClosed", read)), "{framing}");
    }
    server
        .assert_settled("client_vanishing_mid_body_is_seen_by_the_app")
        .await;
    server.stop().await;
}

// === connection management ===

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    const N: usize = 200;
    let (server, _events) = echo_server(None).await;
    let mut conn = server.connect().await;
    let mut requests = Vec::new();
    for i in 0..N {
        if i % 3 == 0 {
            let body = format!("body {i}");
            requests.extend_from_slice(
                format!(
                    "POST /p{i} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        } else {
            let close = if i == N - 1 {
                "Connection: close\r\n"
            } else {
                ""
            };
            requests.extend_from_slice(
                format!("GET /p{i} HTTP/1.1\r\nHost: a\r\n{close}\r\n").as_bytes(),
            );
        }
    }
    conn.send(&requests).await;
    for i in 0..N {
        let resp = conn.response().await;
        assert_eq!(resp.head.line, "HTTP/1.1 200 OK", "response {i}");
        assert_eq!(resp.header("x-echo-path"), Some(format!("/p{i}").as_str()));
        let expected = if i % 3 == 0 {
            format!("body {i}")
        } else {
            format!("GET /p{i}\n")
        };
        assert_eq!(
            String::from_utf8_lossy(&resp.body),
            expected,
            "response {i}"
        );
        let connection = if i == N - 1 { "close" } else { "keep-alive" };
        assert_eq!(resp.header("Connection"), Some(connection), "response {i}");
    }
    conn.expect_eof().await;
    server
        .assert_settled("pipelined_requests_are_answered_in_order")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_before_the_body() {
    let (server, mut events) = echo_server(None).await;
    let mut conn = server.connect().await;
    conn.send(b"PUT /e HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        .await;
    // Nothing else may come before the client sends the body.
    assert_eq!(conn.read_exact(25).await, b"HTTP/1.1 100 Continue\r\n\r\n");
    conn.send(b"hello").await;
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.body, b"hello");
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    assert_eq!(next_event(&mut events).await.outcome, Ok(5));

    // A body sent along with the head is read without a 100; a request without a body gets
    // no 100 either.
    conn.send(
        b"PUT /w HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    )
    .await;
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.body, b"abc");
    conn.send(b"GET /n HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n")
        .await;
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.body, b"GET /n\n");
    drop(conn);
    server
        .assert_settled("expect_100_continue_is_answered_before_the_body")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn expect_100_continue_is_ignored_for_http10() {
    let (server, _events) = echo_server(None).await;
    let mut conn = server.connect().await;
    // No body follows: the server reads for it (sending a 100 first if it wrongly honours the
    // expectation), then sees the client's half-close.
    conn.send(b"POST /e HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        .await;
    conn.stream.shutdown().await.unwrap();
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 400 Bad Request");
    assert_eq!(resp.header("x-echo-error"), Some("ConnectionClosed"));
    conn.expect_eof().await;
    server
        .assert_settled("expect_100_continue_is_ignored_for_http10")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn empty_lines_before_a_request_are_ignored() {
    let (server, _events) = echo_server(None).await;
    let mut conn = server.connect().await;
    // RFC 9112 section 2.2: a server should ignore at least one empty line before a request
    // line; some clients send an extra CRLF after a body.
    conn.send(
        b"\r\nGET /lead HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi\r\n\
          GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    assert_eq!(conn.response().await.body, b"GET /lead\n");
    assert_eq!(conn.response().await.body, b"hi");
    let resp = conn.response().await;
    assert_eq!(resp.body, b"GET /after\n");
    assert_eq!(resp.header("Connection"), Some("keep-alive"));
    drop(conn);
    server
        .assert_settled("empty_lines_before_a_request_are_ignored")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn client_half_closing_after_a_request_still_gets_the_response() {
    let (server, _events) = echo_server(None).await;
    let mut conn = server.connect().await;
    conn.send(b"GET /half HTTP/1.1\r\nHost: a\r\n\r\n").await;
    conn.stream.shutdown().await.unwrap();
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.body, b"GET /half\n");
    conn.expect_eof().await;
    server
        .assert_settled("client_half_closing_after_a_request_still_gets_the_response")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn http10_streamed_response_is_delimited_by_close() {
    let server = TestService::start(StreamEcho).await;
    for keepalive in ["", "Connection: keep-alive\r\n"] {
        let mut conn = server.connect().await;
        let request = format!("POST /s HTTP/1.0\r\n{keepalive}Content-Length: 5\r\n\r\nhello");
        conn.send(request.as_bytes()).await;
        // HTTP/1.0 has no chunked coding: the app's chunked response is sent raw, up to close.
        let resp = conn.response().await;
        assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
        assert_eq!(resp.header("Transfer-Encoding"), None, "{keepalive:?}");
        assert_eq!(resp.header("Content-Length"), None, "{keepalive:?}");
        assert_eq!(resp.header("Connection"), Some("close"), "{keepalive:?}");
        assert_eq!(resp.header("X-Custom-Header"), Some("pingora"));
        assert_eq!(resp.body, b"hello");
    }
    server
        .assert_settled("http10_streamed_response_is_delimited_by_close")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn head_responses_have_no_body() {
    let (server, _events) = echo_server(None).await;
    let mut conn = server.connect().await;
    // HEAD and GET pipelined: the GET's response must start right after the HEAD's head.
    conn.send(b"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /g HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    let head = conn.response_to_head().await;
    assert_eq!(head.head.line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("Content-Length"), Some("8"));
    assert_eq!(head.header("x-echo-method"), Some("HEAD"));
    let get = conn.response().await;
    assert_eq!(get.head.line, "HTTP/1.1 200 OK");
    assert_eq!(get.body, b"GET /g\n");
    drop(conn);
    server.assert_settled("head_responses_have_no_body").await;
    server.stop().await;
}

#[tokio::test]
async fn keepalive_request_limit_closes_after_the_last_allowed() {
    let options = options(|o| o.keepalive_request_limit = Some(3));
    let (server, _events) = echo_server(options).await;
    let mut conn = server.connect().await;
    let mut peers = Vec::new();
    for (i, connection) in ["keep-alive", "keep-alive", "close"].iter().enumerate() {
        conn.send(format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await;
        let resp = conn.response().await;
        assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
        assert_eq!(resp.body, format!("GET /{i}\n").as_bytes());
        assert_eq!(resp.header("Connection"), Some(*connection), "request {i}");
        peers.push(resp.header("x-echo-peer").unwrap().to_string());
    }
    conn.expect_eof().await;
    assert!(peers.iter().all(|p| *p == peers[0]), "{peers:?}");
    // A new connection gets a fresh allowance.
    let mut conn = server.connect().await;
    conn.send(b"GET /again HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(
        conn.response().await.header("Connection"),
        Some("keep-alive")
    );
    drop(conn);
    server
        .assert_settled("keepalive_request_limit_closes_after_the_last_allowed")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn keepalive_request_limit_with_pipelined_requests() {
    let options = options(|o| o.keepalive_request_limit = Some(3));
    let (server, _events) = echo_server(options).await;
    let mut conn = server.connect().await;
    let mut requests = Vec::new();
    for i in 0..4 {
        requests.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    conn.send(&requests).await;
    for (i, connection) in ["keep-alive", "keep-alive", "close"].iter().enumerate() {
        let resp = conn.response().await;
        assert_eq!(resp.body, format!("GET /{i}\n").as_bytes());
        assert_eq!(resp.header("Connection"), Some(*connection), "request {i}");
    }
    // The fourth request is not answered.
    conn.expect_eof().await;
    server
        .assert_settled("keepalive_request_limit_with_pipelined_requests")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn http10_closes_unless_keepalive_is_asked() {
    let (server, _events) = echo_server(None).await;
    let mut conn = server.connect().await;
    conn.send(b"GET /a HTTP/1.0\r\n\r\n").await;
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.header("x-echo-version"), Some("HTTP/1.0"));
    assert_eq!(resp.header("Connection"), Some("close"));
    assert_eq!(resp.body, b"GET /a\n");
    conn.expect_eof().await;

    let mut conn = server.connect().await;
    for i in 0..3 {
        conn.send(format!("GET /k{i} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes())
            .await;
        let resp = conn.response().await;
        assert_eq!(resp.header("Connection"), Some("keep-alive"), "request {i}");
        assert_eq!(resp.body, format!("GET /k{i}\n").as_bytes());
    }
    // An HTTP/1.1 request with `Connection: close` ends the connection too.
    conn.send(b"GET /c HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.header("Connection"), Some("close"));
    conn.expect_eof().await;
    server
        .assert_settled("http10_closes_unless_keepalive_is_asked")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn large_chunked_upload_is_echoed_exactly() {
    const SIZE: usize = 8 * 1024 * 1024;
    let (server, mut events) = echo_server(None).await;
    let body = pseudo_random(SIZE, 0x9e37_79b9_7f4a_7c15);
    let conn = server.connect().await;
    let mut request =
        b"POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&chunked(&body, &[1, 4093, 65_536, 100_000, 7]));
    let (mut reader, mut writer) = conn.stream.into_split();
    let send = tokio::spawn(async move {
        writer.write_all(&request).await.unwrap();
        writer
    });
    let mut conn = RawConn::new(&mut reader);
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(
        resp.header("x-echo-body-len"),
        Some(SIZE.to_string().as_str())
    );
    assert!(resp.body == body, "the echoed body differs");
    assert_eq!(next_event(&mut events).await.outcome, Ok(SIZE));
    drop(send.await.unwrap());
    server
        .assert_settled("large_chunked_upload_is_echoed_exactly")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn large_chunked_upload_is_streamed_back_exactly() {
    const SIZE: usize = 8 * 1024 * 1024;
    let server = TestService::start(StreamEcho).await;
    let body = pseudo_random(SIZE, 42);
    let conn = server.connect().await;
    let mut request =
        b"POST /big HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    request.extend_from_slice(&chunked(&body, &[65_536, 3, 10_000]));
    let (mut reader, mut writer) = conn.stream.into_split();
    // The response streams back while the request is still being sent: both must progress.
    let send = tokio::spawn(async move {
        writer.write_all(&request).await.unwrap();
        writer
    });
    let mut conn = RawConn::new(&mut reader);
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert!(resp.chunked_complete);
    assert!(resp.body == body, "the echoed body differs");
    drop(send.await.unwrap());
    server
        .assert_settled("large_chunked_upload_is_streamed_back_exactly")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn idle_keepalive_connection_closes_after_its_timeout() {
    let (mut echo, _events) = Echo::new();
    echo.keepalive = Some(1);
    let server = echo_app_server(echo, None).await;
    let mut conn = server.connect().await;
    conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(
        conn.response().await.header("Connection"),
        Some("keep-alive")
    );
    let start = Instant::now();
    conn.expect_eof().await;
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900),
        "closed after {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "closed after {waited:?}");
    server
        .assert_settled("idle_keepalive_connection_closes_after_its_timeout")
        .await;
    server.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_closes_idle_keepalive_connections_promptly() {
    let (server, _events) = echo_server(None).await;
    let mut idle = server.connect().await;
    idle.send(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(
        idle.response().await.header("Connection"),
        Some("keep-alive")
    );
    // A second connection in the middle of a request (its 100 Continue proves the server is
    // reading the body): it is still answered, then closed.
    let mut busy = server.connect().await;
    busy.send(b"POST /2 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
        .await;
    assert_eq!(busy.read_exact(25).await, b"HTTP/1.1 100 Continue\r\n\r\n");
    let addr = server.addr;
    let start = Instant::now();
    server.begin_shutdown();
    idle.expect_eof().await;
    let waited = start.elapsed();
    assert!(
        waited < Duration::from_secs(2),
        "idle connection closed after {waited:?}"
    );
    busy.send(b"abcd").await;
    let resp = busy.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.body, b"abcd");
    busy.expect_eof().await;
    server
        .assert_settled("graceful_shutdown_closes_idle_keepalive_connections_promptly")
        .await;
    server.stop().await;
    // The listening socket is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn request_sent_just_after_shutdown_on_an_idle_connection_is_served_and_closes_it() {
    let (server, _events) = echo_server(None).await;
    let mut conn = server.connect().await;
    conn.send(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(
        conn.response().await.header("Connection"),
        Some("keep-alive")
    );
    // The client had been told it may reuse the connection and sends its next request a
    // moment after the shutdown started: the request is answered, with the connection closed
    // after it, rather than lost to a connection closed under it.
    server.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.send(b"GET /2 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    let resp = conn.response().await;
    assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
    assert_eq!(resp.header("Connection"), Some("close"));
    conn.expect_eof().await;
    server
        .assert_settled(
            "request_sent_just_after_shutdown_on_an_idle_connection_is_served_and_closes_it",
        )
        .await;
    server.stop().await;
}

#[tokio::test]
async fn full_server_graceful_terminate_closes_idle_keepalive_connections() {
    let conf = ServerConf {
        grace_period_seconds: Some(60),
        graceful_shutdown_timeout_seconds: Some(1),
        threads: 1,
        ..ServerConf::new().unwrap()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let (echo, _events) = Echo::new();
    let mut service = Service::new("echo".to_string(), HttpServer::new_app(echo));
    service.add_tcp("127.0.0.1:0");
    let addrs = service.local_addrs();
    server.add_service(service);
    let mut running = TestServer::run(server);
    let bound = tokio::time::timeout(TIMEOUT, addrs.wait())
        .await
        .unwrap()
        .unwrap();
    let addr = *bound[0].as_inet().unwrap();
    running.wait_phase("Running").await;

    let mut conn = RawConn::connect(addr).await;
    conn.send(b"GET /idle HTTP/1.1\r\nHost: a\r\n\r\n").await;
    assert_eq!(
        conn.response().await.header("Connection"),
        Some("keep-alive")
    );
    let start = Instant::now();
    running.signal(ShutdownSignal::GracefulTerminate);
    conn.expect_eof().await;
    let waited = start.elapsed();
    assert!(waited < Duration::from_secs(2), "closed after {waited:?}");
    // With no connection left, the server does not wait for its 60 s grace period.
    let joined = tokio::task::spawn_blocking(move || running.join());
    let rest = tokio::time::timeout(TIMEOUT, joined)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest.last(), Some(&"Terminated"), "{rest:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn response_during_graceful_shutdown_announces_close() {
    let (server, _events) = echo_server(None).await;
    let mut conn = server.connect().await;
    conn.send(b"POST /s HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        .await;
    assert_eq!(conn.read_exact(25).await, b"HTTP/1.1 100 Continue\r\n\r\n");
    server.begin_shutdown();
    conn.send(b"ok").await;
    let resp = conn.response().await;
    assert_eq!(resp.body, b"ok");
    // The server knows it will close the connection: it must say so, or a client sending its
    // next request at once loses it.
    assert_eq!(resp.header("Connection"), Some("close"));
    conn.expect_eof().await;
    server
        .assert_settled("response_during_graceful_shutdown_announces_close")
        .await;
    server.stop().await;
}
