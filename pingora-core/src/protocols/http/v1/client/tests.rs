use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// A session over an in-memory connection, and the upstream's end of it.
fn session() -> (HttpSession, DuplexStream) {
    let (ours, theirs) = tokio::io::duplex(1 << 20);
    (HttpSession::new(Box::new(ours)), theirs)
}

fn get(path: &str) -> Box<RequestHeader> {
    let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    req.insert_header("Host", "upstream.test").unwrap();
    Box::new(req)
}

fn post(headers: &[(&str, &str)]) -> Box<RequestHeader> {
    let mut req = RequestHeader::build("POST", b"/upload", None).unwrap();
    req.insert_header("Host", "upstream.test").unwrap();
    for (name, value) in headers {
        req.append_header(name.to_string(), *value).unwrap();
    }
    Box::new(req)
}

/// Reads what the session wrote until `marker` has been seen.
async fn read_until(upstream: &mut DuplexStream, marker: &[u8]) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(marker) {
        let n = tokio::time::timeout(Duration::from_secs(5), upstream.read(&mut byte))
            .await
            .expect("request in time")
            .unwrap();
        assert_eq!(
            n,
            1,
            "the session closed early; got {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(byte[0]);
    }
    String::from_utf8(got).unwrap()
}

async fn body_of(s: &mut HttpSession) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(piece) = s.read_body_bytes().await.unwrap() {
        body.extend_from_slice(&piece);
    }
    body
}

#[tokio::test]
async fn get_with_length_then_reuse() {
    let (mut s, mut up) = session();
    let n = s.write_request_header(get("/a?b=c")).await.unwrap();
    s.finish_body().await.unwrap();
    let wire = read_until(&mut up, b"\r\n\r\n").await;
    assert_eq!(wire, "GET /a?b=c HTTP/1.1\r\nHost: upstream.test\r\n\r\n");
    assert_eq!(n, wire.len());
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello")
        .await
        .unwrap();
    let head_len = s.read_response().await.unwrap();
    assert_eq!(head_len, 47);
    assert_eq!(s.get_status(), Some(StatusCode::OK));
    assert_eq!(s.get_header_bytes("x-up"), b"1");
    assert_eq!(body_of(&mut s).await, b"hello");
    assert!(s.is_body_done());
    assert_eq!(s.body_bytes_received(), 5);
    s.respect_keepalive();
    assert!(s.will_keepalive());
    let stream = s.reuse().await.expect("reusable");

    // A second exchange on the same connection.
    let mut s = HttpSession::new(stream);
    s.write_request_header(get("/second")).await.unwrap();
    s.finish_body().await.unwrap();
    read_until(&mut up, b"\r\n\r\n").await;
    up.write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
        .await
        .unwrap();
    s.read_response().await.unwrap();
    assert!(s.is_body_done());
    assert_eq!(s.read_body_bytes().await.unwrap(), None);
}

#[tokio::test]
async fn chunked_request_body_is_framed() {
    let (mut s, mut up) = session();
    s.write_request_header(post(&[("Transfer-Encoding", "chunked")]))
        .await
        .unwrap();
    assert_eq!(s.write_body(b"hello").await.unwrap(), Some(5));
    assert_eq!(
        s.write_body(b"").await.unwrap(),
        Some(0),
        "an empty piece must not end the body"
    );
    assert_eq!(s.write_body(&[b'x'; 26]).await.unwrap(), Some(26));
    assert_eq!(s.finish_body().await.unwrap(), Some(31));
    let wire = read_until(&mut up, b"0\r\n\r\n").await;
    assert!(
        wire.ends_with("\r\n\r\n5\r\nhello\r\n1a\r\nxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n0\r\n\r\n"),
        "{wire}"
    );
    assert_eq!(s.body_bytes_sent(), 31);
}

#[tokio::test]
async fn length_request_body_is_checked() {
    let (mut s, mut up) = session();
    s.write_request_header(post(&[("Content-Length", "4")]))
        .await
        .unwrap();
    s.write_body(b"ab").await.unwrap();
    let err = s.write_body(b"cde").await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::InternalError);
    drop(up.write_all(b"").await);

    // Too short: finishing fails and the connection is not reusable.
    let (mut s, _up) = session();
    s.write_request_header(post(&[("Content-Length", "4")]))
        .await
        .unwrap();
    s.write_body(b"ab").await.unwrap();
    assert!(s.finish_body().await.is_err());
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn body_without_framing_is_refused() {
    let (mut s, _up) = session();
    s.write_request_header(post(&[])).await.unwrap();
    let err = s.write_body(b"data").await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::InternalError);
    // No body at all is fine.
    let (mut s, _up) = session();
    s.write_request_header(post(&[])).await.unwrap();
    assert_eq!(s.finish_body().await.unwrap(), Some(0));
}

#[tokio::test]
async fn chunked_response_with_trailers_as_tasks() {
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    s.finish_body().await.unwrap();
    up.write_all(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nGrpc-Status: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let HttpTask::Header(head, end) = s.read_response_task().await.unwrap() else {
        panic!("expected the head first")
    };
    assert_eq!(head.status, 200);
    assert!(!end);
    let mut body = Vec::new();
    loop {
        match s.read_response_task().await.unwrap() {
            HttpTask::Body(Some(data), _) => body.extend_from_slice(&data),
            HttpTask::Trailer(Some(trailers)) => {
                assert_eq!(trailers["grpc-status"], "0");
                break;
            }
            other => panic!("unexpected task {other:?}"),
        }
    }
    assert_eq!(body, b"abcde");
    s.respect_keepalive();
    assert!(s.reuse().await.is_some());
}

#[tokio::test]
async fn te_and_length_reads_chunked_and_drops_length() {
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    s.finish_body().await.unwrap();
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        .await
        .unwrap();
    s.read_response().await.unwrap();
    assert!(s.get_header(header::CONTENT_LENGTH).is_none());
    assert_eq!(body_of(&mut s).await, b"ok");
}

#[tokio::test]
async fn informational_responses_then_final() {
    let (mut s, mut up) = session();
    s.write_request_header(post(&[("Content-Length", "2"), ("Expect", "100-continue")]))
        .await
        .unwrap();
    up.write_all(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n",
    )
    .await
    .unwrap();
    match s.read_response_task().await.unwrap() {
        HttpTask::Header(h, false) => assert_eq!(h.status, 100),
        other => panic!("unexpected {other:?}"),
    }
    s.write_body(b"hi").await.unwrap();
    s.finish_body().await.unwrap();
    match s.read_response_task().await.unwrap() {
        HttpTask::Header(h, false) => assert_eq!(h.headers["link"], "</a.css>"),
        other => panic!("unexpected {other:?}"),
    }
    up.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    match s.read_response_task().await.unwrap() {
        HttpTask::Header(h, true) => assert_eq!(h.status, 201),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn bodiless_responses() {
    for (method, status_line) in [
        ("HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"),
        (
            "GET",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n",
        ),
        ("GET", "HTTP/1.1 204 No Content\r\n\r\n"),
    ] {
        let (mut s, mut up) = session();
        let req = RequestHeader::build(method, b"/", None).unwrap();
        s.write_request_header(Box::new(req)).await.unwrap();
        s.finish_body().await.unwrap();
        up.write_all(status_line.as_bytes()).await.unwrap();
        match s.read_response_task().await.unwrap() {
            HttpTask::Header(_, end) => assert!(end, "{method} {status_line}"),
            other => panic!("unexpected {other:?}"),
        }
        s.respect_keepalive();
        assert!(s.reuse().await.is_some(), "{method} {status_line}");
    }
}

#[tokio::test]
async fn keepalive_rules() {
    // (response head, reusable, keepalive timeout)
    let cases: [(&str, bool, Option<u64>); 6] = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, None),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            false,
            None,
        ),
        ("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, None),
        (
            "HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
            true,
            None,
        ),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nKeep-Alive: timeout=5, max=100\r\n\r\n",
            true,
            Some(5),
        ),
        // Read until close: the end of the body is the end of the connection.
        ("HTTP/1.1 200 OK\r\n\r\n", false, None),
    ];
    for (response, reusable, timeout) in cases {
        let (mut s, mut up) = session();
        s.write_request_header(get("/")).await.unwrap();
        s.finish_body().await.unwrap();
        up.write_all(response.as_bytes()).await.unwrap();
        s.read_response().await.unwrap();
        if !reusable {
            drop(up);
            body_of(&mut s).await;
        } else {
            assert_eq!(body_of(&mut s).await, b"");
        }
        s.respect_keepalive();
        assert_eq!(s.will_keepalive(), reusable, "{response}");
        assert_eq!(
            s.get_keepalive_timeout(),
            timeout.map(Duration::from_secs),
            "{response}"
        );
    }

    // The request's own `Connection: close` wins.
    let (mut s, mut up) = session();
    let mut req = get("/");
    req.insert_header("Connection", "close").unwrap();
    s.write_request_header(req).await.unwrap();
    s.finish_body().await.unwrap();
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    s.read_response().await.unwrap();
    s.respect_keepalive();
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn closed_before_response_is_retryable_on_reuse() {
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    s.finish_body().await.unwrap();
    read_until(&mut up, b"\r\n\r\n").await;
    drop(up);
    let err = s.read_response().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed);
    assert_eq!(err.esource(), &pingora_error::ErrorSource::Upstream);
    assert_eq!(err.retry, RetryType::ReusedOnly);

    // Part of a head arrived: the upstream saw the request, so it is not retried.
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    up.write_all(b"HTTP/1.1 200 O").await.unwrap();
    drop(up);
    let err = s.read_response().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed);
    assert!(!err.retry());
    assert_ne!(err.retry, RetryType::ReusedOnly);
}

#[tokio::test]
async fn closed_mid_body_is_an_error_and_not_reused() {
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    s.finish_body().await.unwrap();
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        .await
        .unwrap();
    drop(up);
    s.read_response().await.unwrap();
    assert_eq!(s.read_body_bytes().await.unwrap().unwrap(), "abc");
    let err = s.read_body_bytes().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed);
    s.respect_keepalive();
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn bytes_beyond_the_response_prevent_reuse() {
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    s.finish_body().await.unwrap();
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
        .await
        .unwrap();
    s.read_response().await.unwrap();
    assert_eq!(body_of(&mut s).await, b"ok");
    s.respect_keepalive();
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn upgrade_pipes_raw_bytes() {
    let (mut s, mut up) = session();
    let mut req = get("/ws");
    req.insert_header("Connection", "Upgrade").unwrap();
    req.insert_header("Upgrade", "websocket").unwrap();
    s.write_request_header(req).await.unwrap();
    assert!(s.is_upgrade_req());
    read_until(&mut up, b"\r\n\r\n").await;
    up.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nserver-frame")
        .await
        .unwrap();
    match s.read_response_task().await.unwrap() {
        HttpTask::Header(h, false) => assert_eq!(h.status, 101),
        other => panic!("unexpected {other:?}"),
    }
    assert!(s.was_upgraded());
    match s.read_response_task().await.unwrap() {
        HttpTask::UpgradedBody(Some(data), false) => assert_eq!(data, "server-frame"),
        other => panic!("unexpected {other:?}"),
    }
    s.write_body(b"client-frame").await.unwrap();
    let mut got = [0u8; 12];
    up.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"client-frame");
    drop(up);
    assert!(matches!(
        s.read_response_task().await.unwrap(),
        HttpTask::Done
    ));
    s.respect_keepalive();
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn unrequested_switch_is_rejected() {
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    up.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
        .await
        .unwrap();
    let err = s.read_response().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader);
}

#[tokio::test]
async fn invalid_length_is_an_error_unless_allowed() {
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nbody";
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    up.write_all(response).await.unwrap();
    let err = s.read_response().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader);
    assert_ne!(err.retry, RetryType::ReusedOnly);

    let (mut s, mut up) = session();
    s.set_allow_h1_response_invalid_content_length(true);
    s.write_request_header(get("/")).await.unwrap();
    up.write_all(response).await.unwrap();
    drop(up);
    s.read_response().await.unwrap();
    assert_eq!(body_of(&mut s).await, b"body");
    s.respect_keepalive();
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn read_timeout() {
    let (mut s, _up) = session();
    s.read_timeout = Some(Duration::from_millis(30));
    s.write_request_header(get("/")).await.unwrap();
    let err = s.read_response().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout);
    assert_ne!(
        err.retry,
        RetryType::ReusedOnly,
        "a slow upstream may be working on it"
    );
}

#[tokio::test]
async fn response_split_across_many_reads() {
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    s.finish_body().await.unwrap();
    let response =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world";
    let writer = tokio::spawn(async move {
        for byte in response {
            up.write_all(&[*byte]).await.unwrap();
            tokio::task::yield_now().await;
        }
        up
    });
    s.read_response().await.unwrap();
    assert_eq!(
        s.resp_header().unwrap().headers["content-type"],
        "text/plain"
    );
    assert_eq!(body_of(&mut s).await, b"hello world");
    let _up = writer.await.unwrap();
    s.respect_keepalive();
    assert!(s.reuse().await.is_some());
}

fn trailers(fields: &[(&'static str, &'static str)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in fields {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

#[tokio::test]
async fn queued_chunked_body_ends_with_trailers() {
    let (mut s, mut up) = session();
    s.write_request_header(post(&[("Transfer-Encoding", "chunked")]))
        .await
        .unwrap();
    s.queue_body(b"hello", false).unwrap();
    s.queue_trailers(&trailers(&[("grpc-status", "0"), ("x-sum", "a1")]))
        .unwrap();
    // The body ended once: what comes after is ignored.
    s.queue_body(b"late", true).unwrap();
    s.queue_trailers(&trailers(&[("x-late", "1")])).unwrap();
    assert_eq!(
        s.queued_len(),
        b"5\r\nhello\r\n0\r\ngrpc-status: 0\r\nx-sum: a1\r\n\r\n".len()
    );
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    // Reading the response writes the queued request.
    s.read_response().await.unwrap();
    let wire = read_until(&mut up, b"a1\r\n\r\n").await;
    assert!(
        wire.ends_with("\r\n\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\nx-sum: a1\r\n\r\n"),
        "{wire}"
    );
    assert_eq!(s.queued_len(), 0);
    assert_eq!(s.body_bytes_sent(), 5);
    s.respect_keepalive();
    assert!(s.will_keepalive());
}

#[tokio::test]
async fn written_trailers_follow_the_queued_body() {
    let (mut s, mut up) = session();
    s.write_request_header(post(&[("Transfer-Encoding", "chunked")]))
        .await
        .unwrap();
    s.queue_body(b"abc", false).unwrap();
    s.write_trailers(&trailers(&[("x-a", "1"), ("x-a", "2")]))
        .await
        .unwrap();
    let wire = read_until(&mut up, b"x-a: 2\r\n\r\n").await;
    assert!(
        wire.ends_with("\r\n\r\n3\r\nabc\r\n0\r\nx-a: 1\r\nx-a: 2\r\n\r\n"),
        "{wire}"
    );
    // Empty trailers give the plain terminator.
    let (mut s, mut up) = session();
    s.write_request_header(post(&[("Transfer-Encoding", "chunked")]))
        .await
        .unwrap();
    s.write_trailers(&http::HeaderMap::new()).await.unwrap();
    let wire = read_until(&mut up, b"0\r\n\r\n").await;
    assert!(wire.ends_with("chunked\r\n\r\n0\r\n\r\n"), "{wire}");
}

#[tokio::test]
async fn trailers_of_a_length_body_are_dropped() {
    let (mut s, mut up) = session();
    s.write_request_header(post(&[("Content-Length", "4")]))
        .await
        .unwrap();
    s.queue_body(b"abcd", false).unwrap();
    s.queue_trailers(&trailers(&[("x-dropped", "1")])).unwrap();
    assert_eq!(s.queued_len(), 4, "only the body is queued");
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    s.read_response().await.unwrap();
    let wire = read_until(&mut up, b"abcd").await;
    assert!(wire.ends_with("Content-Length: 4\r\n\r\nabcd"), "{wire}");
    s.respect_keepalive();
    assert!(s.will_keepalive());

    // A body cut short cannot be ended by trailers either.
    let (mut s, _up) = session();
    s.write_request_header(post(&[("Content-Length", "4")]))
        .await
        .unwrap();
    s.queue_body(b"ab", false).unwrap();
    assert!(s.queue_trailers(&trailers(&[("x-a", "1")])).is_err());
    assert!(!s.will_keepalive());
}

#[tokio::test]
async fn queued_body_the_upstream_does_not_take_times_out() {
    let (ours, mut theirs) = tokio::io::duplex(4096);
    let mut s = HttpSession::new(Box::new(ours));
    s.write_timeout = Some(Duration::from_millis(50));
    s.write_request_header(post(&[("Content-Length", "65536")]))
        .await
        .unwrap();
    s.queue_body(&[b'x'; 65536], true).unwrap();
    // The upstream reads the head and a little of the body, then nothing: the wait starts
    // again with each byte taken, and ends with an error once none is.
    read_until(&mut theirs, b"\r\n\r\n").await;
    let start = std::time::Instant::now();
    let reading = tokio::spawn(async move {
        let e = s.read_response().await.unwrap_err();
        (e, s)
    });
    let mut taken = [0u8; 1024];
    theirs.read_exact(&mut taken).await.unwrap();
    let (e, s) = tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .expect("the read fails in time")
        .unwrap();
    assert_eq!(e.etype(), &ErrorType::WriteTimedout);
    assert_eq!(e.esource(), &pingora_error::ErrorSource::Upstream);
    let mut retry = e.retry;
    retry.decide_reuse(true);
    assert!(!retry.retry(), "not retried even on a reused connection");
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(s.reuse().await.is_none());
}

#[tokio::test]
async fn a_limited_read_takes_no_more_than_asked_and_counts_down_the_body() {
    let (mut s, mut up) = session();
    assert_eq!(s.response_body_left(), None, "no head yet");
    s.write_request_header(get("/")).await.unwrap();
    s.finish_body().await.unwrap();
    read_until(&mut up, b"\r\n\r\n").await;
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    up.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    let HttpTask::Header(_, false) = s.read_response_task_at_most(1000).await.unwrap() else {
        panic!("expected the head first")
    };
    assert_eq!(s.response_body_left(), Some(100_000));
    up.write_all(&body).await.unwrap();
    let mut got = Vec::new();
    loop {
        match s.read_response_task_at_most(1000).await.unwrap() {
            HttpTask::Body(Some(piece), end) => {
                // The head's read may have taken some of the body with it; every read since
                // takes at most what was asked.
                assert!(piece.len() <= 1000, "a piece of {}", piece.len());
                got.extend_from_slice(&piece);
                assert_eq!(s.response_body_left(), Some(100_000 - got.len()));
                assert_eq!(end, got.len() == 100_000);
            }
            HttpTask::Done => break,
            other => panic!("unexpected task {other:?}"),
        }
    }
    assert_eq!(got, body);
    assert_eq!(s.response_body_left(), Some(0));
}

#[tokio::test]
async fn a_chunked_body_has_no_known_rest() {
    let (mut s, mut up) = session();
    s.write_request_header(get("/")).await.unwrap();
    s.finish_body().await.unwrap();
    up.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await
        .unwrap();
    s.read_response().await.unwrap();
    assert_eq!(s.response_body_left(), None);
    assert_eq!(body_of(&mut s).await, b"abc");
    assert_eq!(s.response_body_left(), Some(0));
}
