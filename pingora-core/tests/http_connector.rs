//! The HTTP connector on real loopback sockets: sessions over new and pooled connections,
//! what is pooled and what is not, retry marking, timeouts and connect failures.
//!
//! The origins are raw tokio listeners scripted by hand in each test, speaking HTTP/1.1 byte
//! by byte, so the test decides exactly when the origin answers, keeps a connection or closes
//! it, and can count the connections it accepted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pingora_core::connectors::http::Connector;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_error::{ErrorType, Result, RetryType};
use pingora_http::RequestHeader;
use pingora_test_support::raw::RawConn;
use tokio::net::{TcpListener, TcpSocket};

/// Bound on waiting for something that should happen promptly.
const PROMPTLY: Duration = Duration::from_secs(5);

/// A complete keep-alive response with a small body.
const OK_HELLO: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

// === the origin side ===

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// One connection accepted by the origin.
struct OriginConn {
    conn: RawConn,
    /// The client's port: which client connection this is.
    client_port: u16,
}

impl OriginConn {
    /// Reads one request head (the tests send no request bodies unless they say so).
    async fn read_request(&mut self) -> String {
        let head = self.conn.read_until(b"\r\n\r\n").await;
        String::from_utf8(head).expect("an ASCII request head")
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.conn.send(bytes).await;
    }

    /// Reads a request and answers it with `response`.
    async fn serve(&mut self, response: &[u8]) -> String {
        let request = self.read_request().await;
        self.send(response).await;
        request
    }

    /// Waits until the client closes the connection. A connection closed with unread data in
    /// it is reset rather than closed cleanly.
    async fn expect_eof(&mut self) {
        let (rest, _closed) = self.conn.read_to_close().await;
        assert!(rest.is_empty(), "unread request bytes: {rest:?}");
    }
}

async fn accept(listener: &TcpListener) -> OriginConn {
    let (stream, client) = tokio::time::timeout(PROMPTLY, listener.accept())
        .await
        .expect("no connection arrived")
        .unwrap();
    OriginConn {
        conn: RawConn::new(stream),
        client_port: client.port(),
    }
}

/// Asserts that no further connection arrives: checked after the exchanges under test.
async fn assert_no_accept(listener: &TcpListener) {
    let more = tokio::time::timeout(Duration::from_millis(50), listener.accept()).await;
    assert!(more.is_err(), "an unexpected new connection was made");
}

// === the client side ===

fn peer(addr: SocketAddr) -> HttpPeer {
    HttpPeer::new(addr, false, String::new())
}

fn get_request(path: &str) -> Box<RequestHeader> {
    let mut req = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    Box::new(req)
}

async fn send_request(session: &mut HttpSession, req: Box<RequestHeader>) -> Result<()> {
    session.write_request_header(req).await?;
    session.finish_request_body().await
}

async fn send_get(session: &mut HttpSession, path: &str) -> Result<()> {
    send_request(session, get_request(path)).await
}

/// Reads the whole response: its status and body.
async fn read_response(session: &mut HttpSession) -> Result<(u16, Vec<u8>)> {
    session.read_response_header().await?;
    let status = session
        .response_header()
        .expect("just read")
        .status
        .as_u16();
    let mut body = Vec::new();
    while let Some(piece) = session.read_response_body().await? {
        body.extend_from_slice(&piece);
    }
    Ok((status, body))
}

fn local_port(session: &HttpSession) -> u16 {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .expect("a TCP connection")
        .port()
}

/// A fresh session to `peer` (asserted not reused) and the origin's end of its connection.
async fn fresh(
    connector: &Connector,
    peer: &HttpPeer,
    listener: &TcpListener,
) -> (HttpSession, OriginConn) {
    let (session, reused) = connector.get_http_session(peer).await.unwrap();
    assert!(!reused, "expected a new connection");
    let origin = accept(listener).await;
    assert_eq!(origin.client_port, local_port(&session));
    (session, origin)
}

/// One GET over a new connection answered with `response`, then released.
async fn exchange_and_release(
    connector: &Connector,
    peer: &HttpPeer,
    listener: &TcpListener,
    response: &[u8],
) -> OriginConn {
    let (mut session, mut origin) = fresh(connector, peer, listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin.serve(response).await;
    read_response(&mut session).await.unwrap();
    connector.release_http_session(session, peer, None).await;
    origin
}

// === reuse ===

#[tokio::test]
async fn released_session_connection_carries_the_next_request() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);

    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/first").await.unwrap();
    let request = origin.serve(OK_HELLO).await;
    assert!(request.starts_with("GET /first HTTP/1.1\r\n"), "{request}");
    assert_eq!(
        read_response(&mut session).await.unwrap(),
        (200, b"hello".to_vec())
    );
    let port = local_port(&session);
    connector.release_http_session(session, &peer, None).await;

    // The second exchange, chunked this time, arrives on the same origin connection.
    let (mut session, reused) = connector.get_http_session(&peer).await.unwrap();
    assert!(reused);
    assert_eq!(local_port(&session), port);
    send_get(&mut session, "/second").await.unwrap();
    let request = origin
        .serve(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        .await;
    assert!(request.starts_with("GET /second HTTP/1.1\r\n"), "{request}");
    assert_eq!(
        read_response(&mut session).await.unwrap(),
        (200, b"abc".to_vec())
    );
    connector.release_http_session(session, &peer, None).await;

    // And a third, with a request body.
    let (mut session, reused) = connector.get_http_session(&peer).await.unwrap();
    assert!(reused);
    let mut post = RequestHeader::build("POST", b"/third", None).unwrap();
    post.insert_header("Host", "origin.test").unwrap();
    post.insert_header("Content-Length", "4").unwrap();
    session.write_request_header(Box::new(post)).await.unwrap();
    session
        .write_request_body(bytes::Bytes::from_static(b"data"), true)
        .await
        .unwrap();
    let request = origin.read_request().await;
    assert!(request.starts_with("POST /third HTTP/1.1\r\n"), "{request}");
    assert_eq!(origin.conn.read_exact(4).await, b"data");
    origin.send(b"HTTP/1.1 204 No Content\r\n\r\n").await;
    assert_eq!(read_response(&mut session).await.unwrap(), (204, vec![]));
    assert_eq!(local_port(&session), port);
    connector.release_http_session(session, &peer, None).await;

    assert_no_accept(&listener).await;
    assert_eq!(connector.transport().unexpected_data_connection_count(), 0);
}

#[tokio::test]
async fn peers_with_other_reuse_hashes_do_not_share() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let a = peer(addr);
    let mut b = peer(addr);
    b.group_key = 7;
    assert_ne!(a.reuse_hash(), b.reuse_hash());

    let origin_a = exchange_and_release(&connector, &a, &listener, OK_HELLO).await;

    // `b` gets a connection of its own even though `a`'s is idle.
    let (mut session, mut origin_b) = fresh(&connector, &b, &listener).await;
    assert_ne!(origin_b.client_port, origin_a.client_port);
    send_get(&mut session, "/").await.unwrap();
    origin_b.serve(OK_HELLO).await;
    read_response(&mut session).await.unwrap();
    connector.release_http_session(session, &b, None).await;

    // Each peer then reuses its own.
    for (peer, origin) in [(&a, &origin_a), (&b, &origin_b)] {
        let (session, reused) = connector.get_http_session(peer).await.unwrap();
        assert!(reused);
        assert_eq!(local_port(&session), origin.client_port);
        connector.release_http_session(session, peer, None).await;
    }
    assert_no_accept(&listener).await;
}

#[tokio::test]
async fn pooled_connection_closed_by_the_origin_is_replaced() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let origin = exchange_and_release(&connector, &peer, &listener, OK_HELLO).await;
    let old_port = origin.client_port;
    drop(origin); // the origin closes the idle connection
                  // A connection idle for 200 ms or more is checked with the kernel when taken, so the
                  // close is seen for sure (a fresher one may be handed out, then retried on failure).
    tokio::time::sleep(Duration::from_millis(250)).await;

    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    assert_ne!(origin.client_port, old_port);
    send_get(&mut session, "/").await.unwrap();
    origin.serve(OK_HELLO).await;
    assert_eq!(
        read_response(&mut session).await.unwrap(),
        (200, b"hello".to_vec())
    );
    assert_eq!(connector.transport().unexpected_data_connection_count(), 0);
}

/// Asserts that after an exchange answered with `response` to `request`, the connection is
/// closed by the client instead of pooled, and the next session is a new connection.
async fn assert_not_pooled(request: Box<RequestHeader>, response: &[u8]) {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_request(&mut session, request).await.unwrap();
    origin.serve(response).await;
    let (status, body) = read_response(&mut session).await.unwrap();
    assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
    connector.release_http_session(session, &peer, None).await;
    origin.expect_eof().await;
    let (_session, _origin) = fresh(&connector, &peer, &listener).await;
}

#[tokio::test]
async fn connection_close_response_is_not_pooled() {
    assert_not_pooled(
        get_request("/"),
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
}

#[tokio::test]
async fn http10_response_without_keepalive_is_not_pooled() {
    assert_not_pooled(
        get_request("/"),
        b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
}

#[tokio::test]
async fn close_delimited_response_is_not_pooled() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin.serve(b"HTTP/1.1 200 OK\r\n\r\nhello").await;
    drop(origin); // the close ends the body
    assert_eq!(
        read_response(&mut session).await.unwrap(),
        (200, b"hello".to_vec())
    );
    connector.release_http_session(session, &peer, None).await;
    let (_session, _origin) = fresh(&connector, &peer, &listener).await;
}

#[tokio::test]
async fn request_connection_close_is_not_pooled() {
    let mut req = get_request("/");
    req.insert_header("Connection", "close").unwrap();
    assert_not_pooled(req, OK_HELLO).await;
}

#[tokio::test]
async fn http10_response_with_keepalive_is_pooled() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let origin = exchange_and_release(
        &connector,
        &peer,
        &listener,
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    let (session, reused) = connector.get_http_session(&peer).await.unwrap();
    assert!(reused);
    assert_eq!(local_port(&session), origin.client_port);
}

#[tokio::test]
async fn origin_keepalive_timeout_bounds_the_idle_time() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let mut origin = exchange_and_release(
        &connector,
        &peer,
        &listener,
        b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=1\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    let released = Instant::now();
    origin.expect_eof().await;
    let idle = released.elapsed();
    assert!(idle >= Duration::from_millis(900), "closed after {idle:?}");
    assert!(idle < Duration::from_secs(3), "closed after {idle:?}");
    let (_session, _origin) = fresh(&connector, &peer, &listener).await;
}

#[tokio::test]
async fn shorter_own_idle_timeout_wins_over_the_origins() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin
        .serve(b"HTTP/1.1 200 OK\r\nKeep-Alive: timeout=30\r\nContent-Length: 5\r\n\r\nhello")
        .await;
    read_response(&mut session).await.unwrap();
    let released = Instant::now();
    connector
        .release_http_session(session, &peer, Some(Duration::from_millis(150)))
        .await;
    origin.expect_eof().await;
    assert!(released.elapsed() >= Duration::from_millis(140));
}

/// Runs one exchange of `method` answered with `response` (read to its end, informational
/// responses skipped), releases it, and asserts that a second GET goes over the same
/// connection.
async fn assert_reused_after(method: &str, response: &[u8], status: u16) {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    let mut req = RequestHeader::build(method, b"/", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    send_request(&mut session, Box::new(req)).await.unwrap();
    origin.serve(response).await;
    loop {
        session.read_response_header().await.unwrap();
        let got = session.response_header().unwrap().status;
        if !got.is_informational() {
            assert_eq!(got.as_u16(), status);
            break;
        }
    }
    assert_eq!(session.read_response_body().await.unwrap(), None);
    connector.release_http_session(session, &peer, None).await;

    let (mut session, reused) = connector.get_http_session(&peer).await.unwrap();
    assert!(reused);
    send_get(&mut session, "/").await.unwrap();
    origin.serve(OK_HELLO).await;
    assert_eq!(
        read_response(&mut session).await.unwrap(),
        (200, b"hello".to_vec())
    );
    assert_no_accept(&listener).await;
}

#[tokio::test]
async fn head_response_with_a_length_but_no_body_is_reused() {
    assert_reused_after(
        "HEAD",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n",
        200,
    )
    .await;
}

#[tokio::test]
async fn not_modified_response_is_reused() {
    assert_reused_after(
        "GET",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 1000\r\n\r\n",
        304,
    )
    .await;
}

#[tokio::test]
async fn informational_then_final_response_is_reused() {
    assert_reused_after(
        "GET",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
          HTTP/1.1 204 No Content\r\n\r\n",
        204,
    )
    .await;
}

#[tokio::test]
async fn bytes_beyond_the_response_are_not_pooled() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    // A second, unsolicited response arrives with the first.
    origin
        .serve(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\n\r\n")
        .await;
    assert_eq!(
        read_response(&mut session).await.unwrap(),
        (200, b"hello".to_vec())
    );
    connector.release_http_session(session, &peer, None).await;
    origin.expect_eof().await;
    let (_session, _origin) = fresh(&connector, &peer, &listener).await;
}

// === failures part-way ===

#[tokio::test]
async fn origin_closing_mid_body_fails_and_is_not_pooled() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin
        .serve(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        .await;
    drop(origin);
    let err = read_response(&mut session).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed, "{err}");
    let h1 = session.as_http1_mut().expect("HTTP/1");
    h1.respect_keepalive();
    assert!(!h1.will_keepalive());
    connector.release_http_session(session, &peer, None).await;
    let (_session, _origin) = fresh(&connector, &peer, &listener).await;
}

#[tokio::test]
async fn body_read_timeout_fails_and_is_not_pooled() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let mut peer = peer(addr);
    peer.options.read_timeout = Some(Duration::from_millis(100));
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    // The origin stalls in the middle of the body but keeps the connection open.
    origin
        .serve(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        .await;
    let err = read_response(&mut session).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout, "{err}");
    connector.release_http_session(session, &peer, None).await;
    // Unlike a close, the stall is invisible to the pool's checks: only the session knows.
    origin.expect_eof().await;
    let (_session, _origin) = fresh(&connector, &peer, &listener).await;
}

#[tokio::test]
async fn unread_response_body_is_not_pooled() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin.serve(OK_HELLO).await;
    session.read_response_header().await.unwrap();
    connector.release_http_session(session, &peer, None).await;
    origin.expect_eof().await;
    let (_session, _origin) = fresh(&connector, &peer, &listener).await;
}

#[tokio::test]
async fn reused_connection_closed_after_the_request_is_retryable() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let mut origin = exchange_and_release(&connector, &peer, &listener, OK_HELLO).await;

    let (mut session, reused) = connector.get_http_session(&peer).await.unwrap();
    assert!(reused);
    send_get(&mut session, "/").await.unwrap();
    // The origin takes the request and hangs up without answering, as one whose idle
    // timeout fired just as the request arrived would.
    origin.read_request().await;
    drop(origin);

    let mut err = session.read_response_header().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed, "{err}");
    assert_eq!(err.retry, RetryType::ReusedOnly);
    assert!(!err.retry(), "undecided ReusedOnly must not retry");
    err.retry.decide_reuse(reused);
    assert!(err.retry());
}

#[tokio::test]
async fn fresh_connection_closed_after_the_request_is_not_retryable() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin.read_request().await;
    drop(origin);
    let mut err = session.read_response_header().await.unwrap_err();
    assert_eq!(err.retry, RetryType::ReusedOnly);
    err.retry.decide_reuse(false);
    assert!(!err.retry());
}

#[tokio::test]
async fn close_after_part_of_the_head_is_not_retryable() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let peer = peer(addr);
    let mut origin = exchange_and_release(&connector, &peer, &listener, OK_HELLO).await;
    let (mut session, reused) = connector.get_http_session(&peer).await.unwrap();
    assert!(reused);
    send_get(&mut session, "/").await.unwrap();
    origin.serve(b"HTTP/1.1 200 OK\r\nContent-").await;
    drop(origin);
    let mut err = session.read_response_header().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed, "{err}");
    // The origin began answering: it may have acted on the request.
    assert_ne!(err.retry, RetryType::ReusedOnly);
    err.retry.decide_reuse(true);
    assert!(!err.retry());
}

// === peer options ===

#[tokio::test]
async fn peer_read_timeout_applies_to_the_response_head() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let mut peer = peer(addr);
    peer.options.read_timeout = Some(Duration::from_millis(100));
    let (mut session, mut origin) = fresh(&connector, &peer, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin.read_request().await;
    let start = Instant::now();
    let err = session.read_response_header().await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.etype(), &ErrorType::ReadTimedout, "{err}");
    // A timeout is not a sign of a stale connection.
    assert_ne!(err.retry, RetryType::ReusedOnly);
    assert!(took >= Duration::from_millis(90), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn peer_write_timeout_applies_to_the_request() {
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);
    let mut peer = peer(addr);
    peer.options.write_timeout = Some(Duration::from_millis(100));
    // The origin accepts and never reads, so the socket buffers fill up.
    let (mut session, _origin) = fresh(&connector, &peer, &listener).await;
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 256;
    let mut post = RequestHeader::build("POST", b"/", None).unwrap();
    post.insert_header("Host", "origin.test").unwrap();
    post.insert_header("Content-Length", (CHUNK * CHUNKS).to_string())
        .unwrap();
    session.write_request_header(Box::new(post)).await.unwrap();
    let chunk = bytes::Bytes::from(vec![b'x'; CHUNK]);
    let mut failure = None;
    for _ in 0..CHUNKS {
        let start = Instant::now();
        if let Err(e) = session.write_request_body(chunk.clone(), false).await {
            failure = Some((e, start.elapsed()));
            break;
        }
    }
    let (err, took) = failure.expect("the socket buffers never filled up");
    assert_eq!(err.etype(), &ErrorType::WriteTimedout, "{err}");
    assert!(took >= Duration::from_millis(90), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn invalid_content_length_is_tolerated_only_when_the_peer_allows_it() {
    const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\nhello";
    let (listener, addr) = listener().await;
    let connector = Connector::new(None);

    let strict = peer(addr);
    let (mut session, mut origin) = fresh(&connector, &strict, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin.serve(RESPONSE).await;
    let err = session.read_response_header().await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader, "{err}");

    let mut lenient = peer(addr);
    lenient.options.allow_h1_response_invalid_content_length = true;
    let (mut session, mut origin) = fresh(&connector, &lenient, &listener).await;
    send_get(&mut session, "/").await.unwrap();
    origin.serve(RESPONSE).await;
    drop(origin);
    assert_eq!(
        read_response(&mut session).await.unwrap(),
        (200, b"hello".to_vec())
    );
}

// === connecting ===

#[tokio::test]
async fn refused_connect_is_connect_refused() {
    let addr = listener().await.1; // dropped: nothing listens there any more
    let connector = Connector::new(None);
    let err = connector.get_http_session(&peer(addr)).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectRefused, "{err}");
}

#[tokio::test]
async fn unanswered_connect_is_connect_timedout() {
    // A listener that never accepts, with the smallest backlog: once its accept queue is
    // full the kernel drops further SYNs, and connecting hangs as against a black hole.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let _listener = socket.listen(0).unwrap();
    let addr = _listener.local_addr().unwrap();
    let connector = Connector::new(Some(ConnectorOptions::new(16)));
    let mut peer = peer(addr);
    peer.options.connection_timeout = Some(Duration::from_millis(100));

    let mut held = Vec::new();
    let (err, took) = loop {
        assert!(held.len() < 16, "the backlog never filled");
        let start = Instant::now();
        match connector.get_http_session(&peer).await {
            Ok((session, _)) => held.push(session),
            Err(e) => break (e, start.elapsed()),
        }
    };
    assert_eq!(err.etype(), &ErrorType::ConnectTimedout, "{err}");
    assert!(took >= Duration::from_millis(90), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}
