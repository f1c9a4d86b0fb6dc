use super::*;
use tokio::io::{AsyncReadExt, DuplexStream};

/// A session whose client has sent `input` (and keeps its side open).
async fn session_with(input: &[u8]) -> (HttpSession, DuplexStream) {
    let (server, mut client) = tokio::io::duplex(1 << 20);
    client.write_all(input).await.unwrap();
    (HttpSession::new(Box::new(server)), client)
}

/// Everything the server wrote, once it is done.
async fn output_of(session: HttpSession, mut client: DuplexStream) -> String {
    drop(session);
    let mut out = Vec::new();
    client.read_to_end(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

fn response(code: u16, headers: &[(&'static str, &'static str)]) -> Box<ResponseHeader> {
    let mut resp = ResponseHeader::build(code, None).unwrap();
    for (name, value) in headers {
        resp.append_header(*name, *value).unwrap();
    }
    Box::new(resp)
}

/// The head lines of a response, without the Date line.
fn head_without_date(out: &str) -> String {
    let head = out.split("\r\n\r\n").next().unwrap();
    head.split("\r\n")
        .filter(|l| !l.starts_with("Date: "))
        .collect::<Vec<_>>()
        .join("\r\n")
}

#[tokio::test]
async fn keepalive_and_pipelining() {
    let (mut s, client) =
        session_with(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.set_keepalive(Some(60));
    assert_eq!(s.read_request().await.unwrap(), Some(28));
    assert_eq!(s.req_header().uri.path(), "/1");
    assert!(s.is_body_done() && s.is_body_empty());
    s.write_response_header(response(200, &[("Content-Length", "2")]))
        .await
        .unwrap();
    s.write_body(b"ok").await.unwrap();
    assert_eq!(s.finish_body().await.unwrap(), Some(2));
    assert!(s.will_keepalive());
    let stream = s.reuse().await.unwrap().expect("reusable");

    let mut s = HttpSession::new(stream);
    s.set_keepalive(Some(60));
    assert!(s.read_request().await.unwrap().is_some());
    assert_eq!(s.req_header().uri.path(), "/2");
    s.write_response_header(response(204, &[])).await.unwrap();
    s.finish_body().await.unwrap();
    let out = output_of(s, client).await;
    let mut responses = out.split("HTTP/1.1 ").skip(1);
    let first = responses.next().unwrap();
    assert!(first.starts_with("200 OK\r\n"), "{first}");
    assert!(first.contains("Content-Length: 2\r\n"));
    assert!(first.contains("Connection: keep-alive\r\n"));
    assert!(first.contains("Date: "));
    assert!(first.ends_with("\r\n\r\nok"));
    assert!(responses.next().unwrap().starts_with("204 No Content\r\n"));
}

#[tokio::test]
async fn content_length_body() {
    let (mut s, _client) =
        session_with(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world").await;
    s.read_request().await.unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = s.read_body_bytes().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, b"hello world");
    assert_eq!(s.body_bytes_read(), 11);
    assert!(s.is_body_done());
    assert!(!s.is_body_empty());
}

#[tokio::test]
async fn chunked_body_with_trailers() {
    let (mut s, _client) = session_with(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwiki\r\n5\r\npedia\r\n0\r\nX-T: 1\r\n\r\n",
    )
    .await;
    s.read_request().await.unwrap();
    let mut body = Vec::new();
    while let Some(chunk) = s.read_body_bytes().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    assert_eq!(body, b"wikipedia");
    assert_eq!(s.take_request_trailers().unwrap()["x-t"], "1");
}

#[tokio::test]
async fn http10_closes() {
    let (mut s, client) = session_with(b"GET / HTTP/1.0\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    s.write_response_header(response(200, &[("Content-Length", "1")]))
        .await
        .unwrap();
    s.write_body(b"x").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(!s.will_keepalive());
    let out = output_of(s, client).await;
    assert!(out.contains("Connection: close\r\n"), "{out}");
}

#[tokio::test]
async fn http10_keepalive_and_chunked_downgrade() {
    let (mut s, client) = session_with(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    assert!(s.will_keepalive());
    s.write_response_header(response(200, &[("Transfer-Encoding", "chunked")]))
        .await
        .unwrap();
    s.write_body(b"abc").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(!s.will_keepalive(), "close-delimited body");
    let out = output_of(s, client).await;
    assert!(!out.contains("Transfer-Encoding"), "{out}");
    assert!(out.ends_with("\r\n\r\nabc"), "{out}");
}

#[tokio::test]
async fn head_and_no_content_have_no_body() {
    let (mut s, client) = session_with(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    s.write_response_header(response(200, &[("Content-Length", "10")]))
        .await
        .unwrap();
    s.write_body(b"0123456789").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(s.will_keepalive());
    let out = output_of(s, client).await;
    assert!(out.ends_with("\r\n\r\n"), "{out}");
    assert!(!out.contains("0123456789"));
}

#[tokio::test]
async fn chunked_response() {
    let (mut s, client) = session_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    s.write_response_header(response(200, &[("Transfer-Encoding", "chunked")]))
        .await
        .unwrap();
    s.write_body(b"hello").await.unwrap();
    s.write_body(b"").await.unwrap();
    s.write_body(&[b'x'; 20_000]).await.unwrap();
    s.finish_body().await.unwrap();
    assert!(s.will_keepalive());
    let out = output_of(s, client).await;
    let body = out.split_once("\r\n\r\n").unwrap().1;
    assert!(
        body.starts_with("5\r\nhello\r\n4e20\r\nxxx"),
        "{}",
        &body[..20]
    );
    assert!(body.ends_with("xxx\r\n0\r\n\r\n"));
}

#[tokio::test]
async fn close_delimited_response_disables_keepalive() {
    let (mut s, client) = session_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    s.write_response_header(response(200, &[])).await.unwrap();
    s.write_body(b"until close").await.unwrap();
    s.finish_body().await.unwrap();
    assert!(!s.will_keepalive());
    let out = output_of(s, client).await;
    assert!(out.contains("Connection: close\r\n"));
    assert!(out.ends_with("\r\n\r\nuntil close"));
}

#[tokio::test]
async fn body_length_is_enforced() {
    let (mut s, _client) = session_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    s.write_response_header(response(200, &[("Content-Length", "3")]))
        .await
        .unwrap();
    assert!(s.write_body(b"toolong").await.is_err());
    assert!(!s.will_keepalive());

    let (mut s, _client) = session_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    s.write_response_header(response(200, &[("Content-Length", "3")]))
        .await
        .unwrap();
    s.write_body(b"ab").await.unwrap();
    assert!(s.finish_body().await.is_err());
    assert!(!s.will_keepalive());
    assert!(s.reuse().await.unwrap().is_none());
}

#[tokio::test]
async fn expect_continue_is_answered_when_the_body_is_read() {
    let (server, mut client) = tokio::io::duplex(1 << 16);
    client
        .write_all(
            b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
        )
        .await
        .unwrap();
    let mut s = HttpSession::new(Box::new(server));
    s.read_request().await.unwrap();
    assert!(s.is_expect_continue_req());
    let reader = tokio::spawn(async move {
        let body = s.read_body_bytes().await.unwrap().unwrap();
        (s, body)
    });
    let mut buf = [0u8; 25];
    client.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 100 Continue\r\n\r\n");
    client.write_all(b"data").await.unwrap();
    let (mut s, body) = reader.await.unwrap();
    assert_eq!(body, "data");
    // A later 100 from elsewhere (an upstream) is not sent twice.
    s.write_response_header(response(100, &[])).await.unwrap();
    s.write_response_header(response(200, &[("Content-Length", "0")]))
        .await
        .unwrap();
    s.finish_body().await.unwrap();
    let out = output_of(s, client).await;
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
}

#[tokio::test]
async fn informational_responses() {
    let (mut s, client) = session_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.read_request().await.unwrap();
    s.write_response_header(response(103, &[("Link", "</a.css>; rel=preload")]))
        .await
        .unwrap();
    s.write_response_header(response(200, &[("Content-Length", "0")]))
        .await
        .unwrap();
    s.finish_body().await.unwrap();
    let out = output_of(s, client).await;
    assert!(
        out.starts_with(
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK"
        ),
        "{out}"
    );

    let (mut s, client) = session_with(b"GET / HTTP/1.0\r\n\r\n").await;
    s.read_request().await.unwrap();
    s.write_response_header(response(103, &[])).await.unwrap();
    s.write_response_header(response(200, &[("Content-Length", "0")]))
        .await
        .unwrap();
    s.finish_body().await.unwrap();
    let out = output_of(s, client).await;
    assert!(
        out.starts_with("HTTP/1.1 200 OK"),
        "1xx not sent to HTTP/1.0: {out}"
    );
}

#[tokio::test]
async fn upgrade_switches_to_raw_bytes() {
    let (server, mut client) = tokio::io::duplex(1 << 16);
    client
        .write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nearly")
        .await
        .unwrap();
    let mut s = HttpSession::new(Box::new(server));
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    assert!(s.is_upgrade_req());
    assert_eq!(
        s.read_body_bytes().await.unwrap(),
        None,
        "no body before the switch"
    );
    s.write_response_header(response(
        101,
        &[("Connection", "Upgrade"), ("Upgrade", "websocket")],
    ))
    .await
    .unwrap();
    assert!(s.was_upgraded());
    assert!(!s.will_keepalive());
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "early");
    client.write_all(b"frame").await.unwrap();
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "frame");
    s.write_body(b"reply").await.unwrap();
    client.shutdown().await.unwrap();
    assert_eq!(s.read_body_bytes().await.unwrap(), None);
    let out = output_of(s, client).await;
    assert!(out.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(!out.contains("Connection: close"));
    assert!(out.ends_with("\r\n\r\nreply"));
}

#[tokio::test]
async fn idle_keepalive_timeout_is_a_quiet_close() {
    let (server, _client) = tokio::io::duplex(1024);
    let mut s = HttpSession::new(Box::new(server));
    s.set_keepalive(Some(1));
    let start = std::time::Instant::now();
    assert_eq!(s.read_request().await.unwrap(), None);
    assert!(start.elapsed() >= Duration::from_millis(990));
}

#[tokio::test]
async fn slow_head_times_out() {
    let (mut s, _client) = session_with(b"GET / HTTP/1.1\r\nHost:").await;
    s.set_read_timeout(Some(Duration::from_millis(50)));
    let err = s.read_request().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout);
    assert_eq!(err.esource(), &pingora_error::ErrorSource::Downstream);
}

#[tokio::test]
async fn header_read_timeout_bounds_a_trickled_head() {
    let (mut s, mut client) = session_with(b"GET / HTTP/1.1\r\n").await;
    s.set_read_timeout(Some(Duration::from_secs(30)));
    s.set_header_read_timeout(Some(Duration::from_millis(100)));
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let field = format!("X-{i}: v\r\n");
            if client.write_all(field.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    let start = std::time::Instant::now();
    let err = s.read_request().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout);
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    drop(s);
    trickle.await.unwrap();
}

#[tokio::test]
async fn client_closing_mid_body_is_an_error() {
    let (server, mut client) = tokio::io::duplex(1024);
    client
        .write_all(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    drop(client);
    let mut s = HttpSession::new(Box::new(server));
    s.read_request().await.unwrap();
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "abc");
    let err = s.read_body_bytes().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed);
}

#[tokio::test]
async fn early_response_closes_unless_body_read() {
    let (mut s, client) =
        session_with(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    s.write_response_header(response(403, &[("Content-Length", "0")]))
        .await
        .unwrap();
    s.finish_body().await.unwrap();
    assert!(!s.will_keepalive());
    let out = output_of(s, client).await;
    assert!(out.contains("Connection: close"));
}

#[tokio::test]
async fn reuse_drains_unread_body() {
    let (mut s, _client) = session_with(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: a\r\n\r\n",
    )
    .await;
    s.set_keepalive(Some(60));
    s.set_close_on_response_before_downstream_finish(false);
    s.read_request().await.unwrap();
    s.write_response_header(response(200, &[("Content-Length", "0")]))
        .await
        .unwrap();
    s.finish_body().await.unwrap();
    let stream = s.reuse().await.unwrap().expect("reusable after draining");
    let mut next = HttpSession::new(stream);
    next.read_request().await.unwrap();
    assert_eq!(next.req_header().uri.path(), "/next");
}

#[tokio::test]
async fn keepalive_reuse_limit() {
    let (mut s, _client) = session_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.set_keepalive_reuses_remaining(Some(0));
    s.read_request().await.unwrap();
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn eof_before_request_is_not_an_error() {
    let (server, client) = tokio::io::duplex(64);
    drop(client);
    let mut s = HttpSession::new(Box::new(server));
    assert_eq!(s.read_request().await.unwrap(), None);
}

#[tokio::test]
async fn client_disconnect_while_waiting() {
    let (server, mut client) = tokio::io::duplex(1024);
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let mut s = HttpSession::new(Box::new(server));
    s.read_request().await.unwrap();
    drop(client);
    let err = s.read_body_or_idle(true).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed);
}

#[tokio::test]
async fn retry_buffer() {
    let (mut s, _client) =
        session_with(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello").await;
    s.read_request().await.unwrap();
    s.enable_retry_buffering();
    while s.read_body_bytes().await.unwrap().is_some() {}
    assert_eq!(s.get_retry_buffer().unwrap(), "hello");
    assert!(!s.retry_buffer_truncated());
}

#[tokio::test]
async fn batched_tasks_go_out_together() {
    let (mut s, client) = session_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
    s.set_keepalive(Some(60));
    s.read_request().await.unwrap();
    let tasks = vec![
        HttpTask::Header(response(200, &[("Content-Length", "5")]), false),
        HttpTask::Body(Some(Bytes::from_static(b"hello")), true),
    ];
    assert!(s.response_duplex_vec(tasks).await.unwrap());
    assert!(s.will_keepalive());
    let out = output_of(s, client).await;
    assert_eq!(
        head_without_date(&out),
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive"
    );
    assert!(out.ends_with("\r\n\r\nhello"));
}

#[tokio::test]
async fn bad_requests_carry_their_status() {
    for (input, code) in [
        (&b"GET / HTTP/1.1\r\n\r\n"[..], 400),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
    ] {
        let (mut s, _client) = session_with(input).await;
        let err = s.read_request().await.unwrap_err();
        assert_eq!(err.etype(), &ErrorType::HTTPStatus(code));
    }
}
