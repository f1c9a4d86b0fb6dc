//! HTTP/2 to upstreams on real loopback sockets: the client session against an `h2` crate
//! server (bodies, trailers, 1xx), stream multiplexing and its limit, GOAWAY, PING keepalive,
//! and HTTP/1 for a plaintext peer that allows both versions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::HttpTask;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_test_support::h2::frames::{
    accept_preface, frame, ping_ack, read_frame, ACK, DATA, END_HEADERS, HEADERS, PING, SETTINGS,
};
use pingora_test_support::h2::{read_body, H2Origin, Handler};
use pingora_test_support::origin::Origin;
use tokio::sync::{mpsc, watch, Barrier};

/// Bound on waiting for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(5);

// === the origin ===

/// Echoes the request body, with `x-method` and `x-authority` telling what arrived and, if
/// the request has `want-trailers`, trailers after the body.
fn echo() -> Handler {
    Arc::new(|req, mut respond| {
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            let data = read_body(&mut body).await;
            let want_trailers = parts.headers.contains_key("want-trailers");
            let authority = parts.uri.authority().map_or("", |a| a.as_str()).to_owned();
            let resp = Response::builder()
                .status(200)
                .header("x-method", parts.method.as_str())
                .header("x-authority", authority)
                .header("x-scheme", parts.uri.scheme_str().unwrap_or(""))
                .header(
                    "x-forbidden",
                    ["connection", "transfer-encoding", "host", "keep-alive"]
                        .iter()
                        .filter(|n| parts.headers.contains_key(**n))
                        .count()
                        .to_string(),
                )
                .body(())
                .unwrap();
            let Ok(mut send) = respond.send_response(resp, false) else {
                return;
            };
            let _ = send.send_data(Bytes::from(data), !want_trailers);
            if want_trailers {
                let mut trailers = HeaderMap::new();
                trailers.insert("x-trailer", HeaderValue::from_static("yes"));
                let _ = send.send_trailers(trailers);
            }
        })
    })
}

/// A peer speaking HTTP/2 only, with room for `streams` streams per connection.
fn h2_peer(addr: SocketAddr, streams: usize) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.set_http_version(2, 2);
    peer.options.max_h2_streams = streams;
    peer
}

fn get(path: &str) -> Box<RequestHeader> {
    let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    Box::new(req)
}

/// A whole response as read through the version-neutral session.
#[derive(Debug, Default)]
struct Got {
    heads: Vec<(StatusCode, HeaderMap)>,
    body: Vec<u8>,
    trailers: Option<HeaderMap>,
}

/// Reads the rest of the response, task by task.
async fn read_all(session: &mut HttpSession) -> Result<Got> {
    let mut got = Got::default();
    loop {
        let task = tokio::time::timeout(PROMPTLY, session.read_response_task())
            .await
            .expect("the response stalled")?;
        let end = task.is_end();
        match task {
            HttpTask::Header(h, _) => got.heads.push((h.status, h.headers.clone())),
            HttpTask::Body(Some(d), _) => got.body.extend_from_slice(&d),
            HttpTask::Trailer(t) => got.trailers = t.map(|t| *t),
            HttpTask::Failed(e) => return Err(e),
            _ => {}
        }
        if end {
            return Ok(got);
        }
    }
}

/// Sends a GET through `connector` and reads its response; returns the session for release.
async fn do_get(connector: &Connector, peer: &HttpPeer, path: &str) -> Result<(HttpSession, Got)> {
    let (mut session, _) = connector.get_http_session(peer).await?;
    session.write_request_header(get(path)).await?;
    let got = read_all(&mut session).await?;
    Ok((session, got))
}

// === the client session ===

#[tokio::test]
async fn request_body_response_body_and_trailers() {
    let origin = H2Origin::start(echo()).await;
    let connector = Connector::new(None);
    let peer = h2_peer(origin.addr, 1);
    let (mut session, reused) = connector.get_http_session(&peer).await.unwrap();
    assert!(!reused);
    assert!(session.as_http2().is_some(), "an HTTP/2 session");
    let mut req = RequestHeader::build("POST", b"/upload?x=1", None).unwrap();
    req.insert_header("Host", "origin.test:8080").unwrap();
    req.insert_header("Transfer-Encoding", "chunked").unwrap();
    req.insert_header("Connection", "keep-alive").unwrap();
    req.insert_header("want-trailers", "1").unwrap();
    session.write_request_header(Box::new(req)).await.unwrap();
    session
        .write_request_body(Bytes::from_static(b"hello "), false)
        .await
        .unwrap();
    session
        .write_request_body(Bytes::from_static(b"world"), true)
        .await
        .unwrap();
    let got = read_all(&mut session).await.unwrap();
    let (status, headers) = &got.heads[0];
    assert_eq!(*status, 200);
    assert_eq!(headers["x-method"], "POST");
    assert_eq!(headers["x-authority"], "origin.test:8080");
    assert_eq!(headers["x-scheme"], "http");
    assert_eq!(
        headers["x-forbidden"], "0",
        "connection fields were not sent"
    );
    assert_eq!(got.body, b"hello world");
    assert_eq!(got.trailers.expect("trailers")["x-trailer"], "yes");
    assert!(session.response_done());
    let h2 = session.as_http2().unwrap();
    assert!(h2.exchange_done());
    assert_eq!(h2.body_bytes_sent(), 11);
    assert_eq!(h2.body_bytes_received(), 11);
    connector.release_http_session(session, &peer, None).await;

    // The connection is reused for the next request.
    let (session, got) = do_get(&connector, &peer, "/again").await.unwrap();
    assert_eq!(got.heads[0].1["x-method"], "GET");
    assert!(got.trailers.is_none());
    connector.release_http_session(session, &peer, None).await;
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn queued_body_is_sent_while_the_response_is_read() {
    let origin = H2Origin::start(echo()).await;
    let connector = Connector::new(None);
    let peer = h2_peer(origin.addr, 1);
    let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
    let mut req = RequestHeader::build("PUT", b"/", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    req.insert_header("Content-Length", (300 * 1024).to_string())
        .unwrap();
    session.write_request_header(Box::new(req)).await.unwrap();
    // More than the protocol's default 64 KiB window: sent only as the response is read.
    let piece = Bytes::from(vec![b'x'; 100 * 1024]);
    for i in 0..3 {
        session.queue_request_body(&piece, i == 2).unwrap();
    }
    assert!(session.queued_request_body_len() > 0);
    let got = read_all(&mut session).await.unwrap();
    assert_eq!(got.body.len(), 300 * 1024);
    assert_eq!(session.queued_request_body_len(), 0);
}

#[tokio::test]
async fn informational_responses_come_before_the_final_one() {
    let handler: Handler = Arc::new(|_req, mut respond| {
        Box::pin(async move {
            let early = Response::builder()
                .status(103)
                .header("link", "</style.css>; rel=preload")
                .body(())
                .unwrap();
            respond.send_informational(early).unwrap();
            let resp = Response::builder().status(204).body(()).unwrap();
            let _ = respond.send_response(resp, true);
        })
    });
    let origin = H2Origin::start(handler).await;
    let connector = Connector::new(None);
    let peer = h2_peer(origin.addr, 1);
    let (_session, got) = do_get(&connector, &peer, "/").await.unwrap();
    let statuses: Vec<_> = got.heads.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!(statuses, [103, 204]);
    assert_eq!(got.heads[0].1["link"], "</style.css>; rel=preload");
}

#[tokio::test]
async fn a_reset_stream_is_an_error_not_a_hang() {
    let handler: Handler = Arc::new(|_req, mut respond| {
        Box::pin(async move {
            respond.send_reset(h2::Reason::INTERNAL_ERROR);
        })
    });
    let origin = H2Origin::start(handler).await;
    let connector = Connector::new(None);
    let peer = h2_peer(origin.addr, 1);
    let e = do_get(&connector, &peer, "/").await.unwrap_err();
    assert_eq!(*e.etype(), ErrorType::H2Error);
    assert!(!e.retry(), "a stream the server reset was acted upon");
}

#[tokio::test]
async fn a_read_timeout_resets_the_stream() {
    let handler: Handler = Arc::new(|_req, respond| {
        Box::pin(async move {
            // Never answers; the stream lives until the client gives up.
            let mut respond = respond;
            let _ = std::future::poll_fn(|cx| respond.poll_reset(cx)).await;
        })
    });
    let origin = H2Origin::start(handler).await;
    let connector = Connector::new(None);
    let mut peer = h2_peer(origin.addr, 1);
    peer.options.read_timeout = Some(Duration::from_millis(100));
    let e = do_get(&connector, &peer, "/").await.unwrap_err();
    assert_eq!(*e.etype(), ErrorType::ReadTimedout);
}

// === multiplexing and the pool ===

/// Holds each response until `n` requests (other than `/warm`) are being served at once.
fn held_until(n: usize) -> Handler {
    let barrier = Arc::new(Barrier::new(n));
    Arc::new(move |req, respond| {
        let barrier = barrier.clone();
        Box::pin(async move {
            if req.uri().path() != "/warm" {
                barrier.wait().await;
            }
            let mut respond = respond;
            let resp = Response::builder().status(200).body(()).unwrap();
            let _ = respond.send_response(resp, true);
        })
    })
}

/// Warms the pool with one connection, then sends `n` requests at once.
async fn concurrent_gets(origin: &H2Origin, streams: usize, n: usize) -> Arc<Connector> {
    let connector = Arc::new(Connector::new(None));
    let peer = h2_peer(origin.addr, streams);
    let (session, _) = do_get(&connector, &peer, "/warm").await.unwrap();
    connector.release_http_session(session, &peer, None).await;
    let mut tasks = Vec::new();
    for i in 0..n {
        let connector = connector.clone();
        let peer = peer.clone();
        tasks.push(tokio::spawn(async move {
            let (session, got) = do_get(&connector, &peer, &format!("/{i}")).await?;
            connector.release_http_session(session, &peer, None).await;
            Result::<StatusCode>::Ok(got.heads[0].0)
        }));
    }
    for task in tasks {
        let status = tokio::time::timeout(PROMPTLY, task)
            .await
            .expect("requests not served concurrently")
            .unwrap()
            .unwrap();
        assert_eq!(status, 200);
    }
    connector
}

#[tokio::test]
async fn one_connection_serves_concurrent_requests() {
    let origin = H2Origin::start(held_until(8)).await;
    let connector = concurrent_gets(&origin, 100, 8).await;
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 1);
    let peer = h2_peer(origin.addr, 100);
    assert_eq!(connector.h2_connection_count(&peer), 1);
}

#[tokio::test]
async fn max_h2_streams_opens_another_connection() {
    // Two streams per connection: the third concurrent request needs a second connection.
    let origin = H2Origin::start(held_until(3)).await;
    concurrent_gets(&origin, 2, 3).await;
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_servers_stream_limit_caps_ours() {
    // We allow 100 streams; the server allows 2: the third concurrent request needs a second
    // connection.
    let mut builder = h2::server::Builder::new();
    builder.max_concurrent_streams(2);
    let origin = H2Origin::start_with(held_until(3), builder).await;
    concurrent_gets(&origin, 100, 3).await;
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn goaway_retires_the_connection() {
    let mut origin = H2Origin::start(echo()).await;
    let connector = Connector::new(None);
    let peer = h2_peer(origin.addr, 10);
    let (session, _) = do_get(&connector, &peer, "/1").await.unwrap();
    connector.release_http_session(session, &peer, None).await;
    origin.goaway.send(true).unwrap();
    tokio::time::timeout(PROMPTLY, origin.closed.recv())
        .await
        .expect("the connection did not end after GOAWAY");
    // The request may still race the client's noticing the GOAWAY: the failure is then
    // marked retryable, as the request was not processed.
    let (session, got) = match do_get(&connector, &peer, "/2").await {
        Ok(done) => done,
        Err(e) => {
            assert!(e.retry(), "a request refused by GOAWAY is retryable: {e}");
            do_get(&connector, &peer, "/2").await.unwrap()
        }
    };
    assert_eq!(got.heads[0].0, 200);
    connector.release_http_session(session, &peer, None).await;
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn streams_in_flight_finish_after_goaway() {
    let (goaway_tx, mut goaway_rx) = mpsc::unbounded_channel::<()>();
    let (answer_tx, answer_rx) = watch::channel(false);
    let handler: Handler = Arc::new(move |_req, mut respond| {
        let goaway = goaway_tx.clone();
        let mut answer = answer_rx.clone();
        Box::pin(async move {
            let _ = goaway.send(());
            let _ = answer.wait_for(|go| *go).await;
            let resp = Response::builder().status(200).body(()).unwrap();
            let _ = respond.send_response(resp, true);
        })
    });
    let origin = H2Origin::start(handler).await;
    let connector = Arc::new(Connector::new(None));
    let peer = h2_peer(origin.addr, 10);
    let first = {
        let (connector, peer) = (connector.clone(), peer.clone());
        tokio::spawn(async move { do_get(&connector, &peer, "/1").await.map(|(_, g)| g) })
    };
    goaway_rx.recv().await.unwrap();
    origin.goaway.send(true).unwrap();
    answer_tx.send(true).unwrap();
    let got = first.await.unwrap().unwrap();
    assert_eq!(got.heads[0].0, 200, "a stream the GOAWAY covered completes");
}

#[tokio::test]
async fn idle_connections_close_after_the_idle_timeout() {
    let mut origin = H2Origin::start(echo()).await;
    let connector = Connector::new(None);
    let peer = h2_peer(origin.addr, 10);
    let (session, _) = do_get(&connector, &peer, "/").await.unwrap();
    connector
        .release_http_session(session, &peer, Some(Duration::from_millis(50)))
        .await;
    tokio::time::timeout(PROMPTLY, origin.closed.recv())
        .await
        .expect("the idle connection was not closed");
    assert_eq!(connector.h2_connection_count(&peer), 0);
}

// === PING keepalive, by hand on the wire ===

/// A minimal HTTP/2 server that answers SETTINGS and PING frames and reports each PING.
async fn ping_counting_origin() -> (SocketAddr, mpsc::UnboundedReceiver<[u8; 8]>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let origin = Origin::start(move |mut conn, _| {
        let tx = tx.clone();
        async move {
            accept_preface(&mut conn).await;
            while let Some(f) = read_frame(&mut conn).await {
                match (f.kind, f.flags) {
                    (SETTINGS, 0) => conn.send(frame(SETTINGS, ACK, 0, &[])).await,
                    (PING, 0) => {
                        conn.send(ping_ack(&f.payload)).await;
                        let _ = tx.send(f.payload.try_into().unwrap());
                    }
                    _ => {}
                }
            }
        }
    })
    .await;
    (origin.addr, rx)
}

#[tokio::test]
async fn pings_keep_the_connection_alive() {
    let (addr, mut pings) = ping_counting_origin().await;
    let connector = Connector::new(None);
    let mut peer = h2_peer(addr, 1);
    peer.options.h2_ping_interval = Some(Duration::from_millis(20));
    let (session, _) = connector.get_http_session(&peer).await.unwrap();
    for _ in 0..3 {
        tokio::time::timeout(PROMPTLY, pings.recv())
            .await
            .expect("no PING sent")
            .expect("the origin stopped");
    }
    let h2 = session.as_http2().unwrap();
    assert!(!h2.conn().is_closed());
    assert!(!h2.conn().ping_timedout());
}

// === downgrade to HTTP/1 ===

/// An HTTP/1-only origin: answers the HTTP/2 preface with 400 and closes, and answers HTTP/1
/// requests with "hello". Counts HTTP/2 attempts.
async fn h1_only_origin() -> (SocketAddr, Arc<AtomicUsize>) {
    let h2_attempts = Arc::new(AtomicUsize::new(0));
    let attempts = h2_attempts.clone();
    let origin = Origin::start(move |mut conn, _| {
        let attempts = attempts.clone();
        async move {
            // The preface starts like a request head: `PRI * HTTP/2.0`.
            while let Some(req) = conn.read_request().await {
                if req.head.line == "PRI * HTTP/2.0" {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    let refusal =
                        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
                    let _ = conn.try_send(refusal).await;
                    return;
                }
                let _ = conn
                    .try_send(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                    .await;
            }
        }
    })
    .await;
    (origin.addr, h2_attempts)
}

#[tokio::test]
async fn h2h1_peer_without_tls_speaks_h1() {
    // Without TLS nothing says the peer speaks HTTP/2, so, as in Pingora, a peer that allows
    // both versions gets HTTP/1.1 and never sees an HTTP/2 preface.
    let (addr, h2_attempts) = h1_only_origin().await;
    let connector = Connector::new(None);
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.set_http_version(2, 1);
    for _ in 0..2 {
        let (session, got) = do_get(&connector, &peer, "/").await.unwrap();
        assert!(session.as_http1().is_some());
        assert_eq!(got.body, b"hello");
        connector.release_http_session(session, &peer, None).await;
    }
    assert_eq!(h2_attempts.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn h2_only_peer_is_not_downgraded() {
    let (addr, _) = h1_only_origin().await;
    let connector = Connector::new(None);
    let peer = h2_peer(addr, 1);
    let e = do_get(&connector, &peer, "/").await.unwrap_err();
    assert!(
        !e.retry(),
        "an HTTP/2-only peer has nothing to fall back to: {e}"
    );
    let (session, _) = connector.get_http_session(&peer).await.unwrap();
    assert!(session.as_http2().is_some());
}

/// A minimal HTTP/2 server that answers SETTINGS but neither PINGs nor requests.
async fn silent_origin() -> SocketAddr {
    let origin = Origin::start(|mut conn, _| async move {
        accept_preface(&mut conn).await;
        while let Some(f) = read_frame(&mut conn).await {
            if (f.kind, f.flags) == (SETTINGS, 0) {
                conn.send(frame(SETTINGS, ACK, 0, &[])).await;
            }
        }
    })
    .await;
    origin.addr
}

#[tokio::test]
async fn a_missed_ping_fails_the_request_with_ping_timedout() {
    let addr = silent_origin().await;
    let connector = Connector::new(None);
    let mut peer = h2_peer(addr, 1);
    peer.options.h2_ping_interval = Some(Duration::from_millis(20));
    let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
    session.write_request_header(get("/")).await.unwrap();
    // The PING goes unanswered for 5 s; then the connection is dropped under the request.
    let e = tokio::time::timeout(
        PROMPTLY + Duration::from_secs(2),
        session.read_response_header(),
    )
    .await
    .expect("the dead connection was not noticed")
    .unwrap_err();
    assert_eq!(e.etype().as_str(), "PingTimedout", "{e}");
    assert!(session.as_http2().unwrap().conn().ping_timedout());
    assert_eq!(connector.h2_connection_count(&peer), 0);
}

#[tokio::test]
async fn concurrent_requests_to_a_cold_pool_share_one_connection() {
    let origin = H2Origin::start(held_until(6)).await;
    let connector = Arc::new(Connector::new(None));
    let peer = h2_peer(origin.addr, 100);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let connector = connector.clone();
        let peer = peer.clone();
        tasks.push(tokio::spawn(async move {
            let (session, got) = do_get(&connector, &peer, &format!("/{i}")).await?;
            connector.release_http_session(session, &peer, None).await;
            Result::<StatusCode>::Ok(got.heads[0].0)
        }));
    }
    for task in tasks {
        let status = tokio::time::timeout(PROMPTLY, task)
            .await
            .expect("requests not served concurrently")
            .unwrap()
            .unwrap();
        assert_eq!(status, 200);
    }
    assert_eq!(origin.accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_oversized_response_head_is_an_error() {
    let handler: Handler = Arc::new(|_req, mut respond| {
        Box::pin(async move {
            let resp = Response::builder()
                .status(200)
                .header("x-huge", "a".repeat(100 * 1024))
                .body(())
                .unwrap();
            let _ = respond.send_response(resp, true);
        })
    });
    let origin = H2Origin::start(handler).await;
    let connector = Connector::new(None);
    let peer = h2_peer(origin.addr, 1);
    let e = do_get(&connector, &peer, "/").await.unwrap_err();
    assert!(!e.retry(), "{e}");
}

#[tokio::test]
async fn a_refused_stream_is_retryable() {
    let handler: Handler = Arc::new(|_req, mut respond| {
        Box::pin(async move {
            respond.send_reset(h2::Reason::REFUSED_STREAM);
        })
    });
    let origin = H2Origin::start(handler).await;
    let connector = Connector::new(None);
    let peer = h2_peer(origin.addr, 1);
    let e = do_get(&connector, &peer, "/").await.unwrap_err();
    assert_eq!(*e.etype(), ErrorType::H2Error);
    assert!(
        e.retry(),
        "the server did not process a refused stream: {e}"
    );
}

#[tokio::test]
async fn a_slow_upload_making_progress_does_not_time_out() {
    // The origin reads the body slowly (one piece every 20 ms) and answers at its end; the
    // whole upload takes several read timeouts, but none passes without progress.
    let handler: Handler = Arc::new(|req, mut respond| {
        Box::pin(async move {
            let (_, mut body) = req.into_parts();
            let mut total = 0;
            while let Some(Ok(piece)) = body.data().await {
                total += piece.len();
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = body.flow_control().release_capacity(piece.len());
            }
            let resp = Response::builder()
                .status(200)
                .header("x-total", total.to_string())
                .body(())
                .unwrap();
            let _ = respond.send_response(resp, true);
        })
    });
    let origin = H2Origin::start(handler).await;
    let connector = Connector::new(None);
    let mut peer = h2_peer(origin.addr, 1);
    peer.options.read_timeout = Some(Duration::from_millis(150));
    let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
    let mut req = RequestHeader::build("POST", b"/", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    req.insert_header("Content-Length", (512 * 1024).to_string())
        .unwrap();
    session.write_request_header(Box::new(req)).await.unwrap();
    session
        .queue_request_body(&Bytes::from(vec![b'u'; 512 * 1024]), true)
        .unwrap();
    let started = std::time::Instant::now();
    let got = read_all(&mut session).await.unwrap();
    assert_eq!(got.heads[0].1["x-total"], (512 * 1024).to_string().as_str());
    assert!(
        started.elapsed() > Duration::from_millis(150),
        "the upload outlasted one read timeout"
    );
}

/// A hand-written HTTP/2 server: answers the first request with a 200 head and `abc` on
/// stream 1, then closes the connection in the middle of the body.
async fn cut_short_origin() -> SocketAddr {
    let origin = Origin::start(|mut conn, _| async move {
        accept_preface(&mut conn).await;
        while let Some(f) = read_frame(&mut conn).await {
            if f.kind == HEADERS {
                // `:status: 200` (HPACK static index 8), then 3 of the body's bytes.
                let mut out = frame(HEADERS, END_HEADERS, 1, &[0x88]);
                out.extend(frame(DATA, 0, 1, b"abc"));
                conn.send(out).await;
                return;
            }
        }
    })
    .await;
    origin.addr
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_an_error_not_a_hang() {
    let addr = cut_short_origin().await;
    let connector = Connector::new(None);
    let peer = h2_peer(addr, 1);
    let (mut session, _) = connector.get_http_session(&peer).await.unwrap();
    session.write_request_header(get("/")).await.unwrap();
    let mut body = Vec::new();
    let e = loop {
        let task = tokio::time::timeout(PROMPTLY, session.read_response_task())
            .await
            .expect("the cut was not noticed");
        match task {
            Ok(HttpTask::Header(h, end)) => {
                assert_eq!(h.status, 200);
                assert!(!end);
            }
            Ok(HttpTask::Body(Some(d), _)) => body.extend_from_slice(&d),
            Ok(other) => panic!("the response cannot end cleanly: {other:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(body, b"abc");
    assert!(!e.retry(), "part of the response arrived: {e}");
    assert!(session.as_http2().unwrap().conn().is_closed());
}
