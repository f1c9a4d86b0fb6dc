use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use pingora_error::ErrorType;
use pingora_http::ResponseHeader;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_test::task;

use super::server::{HttpSession, SubrequestHandle, CHANNEL_CAPACITY};
use crate::protocols::http::{v2::server as v2, HttpTask, ServerSession};
use crate::protocols::l4::stream::Stream as L4Stream;

/// An HTTP/1 parent session over a real TCP connection whose client sent `request`, with the
/// request head read. The client socket is returned so it stays open.
async fn parent_with(request: &[u8]) -> (ServerSession, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    client.write_all(request).await.unwrap();
    let mut parent = ServerSession::new_http1(Box::new(L4Stream::from(server)));
    assert!(parent.read_request().await.unwrap());
    (parent, client)
}

/// A subrequest of a parent whose client sent `request`, wrapped in a [`ServerSession`].
async fn subrequest_of(request: &[u8]) -> (ServerSession, SubrequestHandle, ServerSession) {
    let (parent, client) = parent_with(request).await;
    // The client socket may close: the subrequest does not use it.
    drop(client);
    let (sub, handle) = HttpSession::new_from_session(&parent);
    let mut sub = ServerSession::new_subrequest(sub);
    assert!(sub.read_request().await.unwrap());
    (sub, handle, parent)
}

fn response(code: u16, headers: &[(&'static str, &'static str)]) -> Box<ResponseHeader> {
    let mut resp = ResponseHeader::build(code, None).unwrap();
    for (name, value) in headers {
        resp.append_header(*name, *value).unwrap();
    }
    Box::new(resp)
}

/// The next task, which must be a body piece; returns its bytes and end flag.
async fn next_body(rx: &mut mpsc::Receiver<HttpTask>) -> (Bytes, bool) {
    match rx.recv().await {
        Some(HttpTask::Body(Some(data), end)) => (data, end),
        other => panic!("expected a body piece, got {other:?}"),
    }
}

const GET: &[u8] =
    b"GET /a/b?q=1 HTTP/1.1\r\nHost: example.com\r\nX-Case: One\r\nx-case: two\r\n\r\n";

#[tokio::test]
async fn request_header_and_connection_facts_come_from_the_parent() {
    let (parent, _client) = parent_with(GET).await;
    let (sub, _handle) = HttpSession::new_from_session(&parent);
    let mut sub = ServerSession::new_subrequest(sub);

    assert!(sub.is_subrequest() && !parent.is_subrequest());
    assert!(sub.as_subrequest().is_some() && sub.as_http1().is_none());
    let (p, s) = (parent.req_header(), sub.req_header());
    assert_eq!(s.method, p.method);
    assert_eq!(s.uri, p.uri);
    assert_eq!(s.version, p.version);
    assert_eq!(s.headers, p.headers);
    assert_eq!(sub.to_h1_raw(), parent.to_h1_raw());
    assert_eq!(&sub.to_h1_raw()[..], GET);
    assert_eq!(sub.get_header_bytes("x-case"), b"One");

    assert!(sub.client_addr().is_some());
    assert_eq!(sub.client_addr(), parent.client_addr());
    assert_eq!(sub.server_addr(), parent.server_addr());
    assert_eq!(
        sub.request_summary(),
        "GET /a/b?q=1, Host: example.com (subrequest)"
    );

    // One request only: the second read finds none, as a closed keepalive connection would.
    assert!(sub.read_request().await.unwrap());
    assert!(!sub.read_request().await.unwrap());
    assert!(sub.is_body_done() && sub.is_body_empty());
    assert_eq!(sub.read_request_body().await.unwrap(), None);
}

#[tokio::test]
async fn changes_to_the_parent_header_are_not_copied() {
    let (mut parent, _client) = parent_with(GET).await;
    parent
        .req_header_mut()
        .insert_header("x-added", "by a filter")
        .unwrap();
    parent
        .req_header_mut()
        .set_uri("/rewritten".parse().unwrap());
    let (sub, _handle) = HttpSession::new_from_session(&parent);
    assert_eq!(sub.req_header().uri, "/a/b?q=1");
    assert!(sub.get_header("x-added").is_none());
}

#[tokio::test]
async fn request_body_sent_through_the_handle_is_read() {
    let req = b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
    let (mut sub, mut handle, _parent) = subrequest_of(req).await;
    assert!(!sub.is_body_empty() && !sub.is_body_done());
    sub.enable_retry_buffering();

    let tx = handle.tx.clone();
    tx.send(HttpTask::Body(Some(Bytes::from_static(b"hel")), false))
        .await
        .unwrap();
    // Empty pieces carry nothing and are skipped.
    tx.send(HttpTask::Body(Some(Bytes::new()), false))
        .await
        .unwrap();
    tx.send(HttpTask::Body(Some(Bytes::from_static(b"lo")), false))
        .await
        .unwrap();

    assert_eq!(sub.read_request_body().await.unwrap().unwrap(), "hel");
    handle
        .subreq_wants_body
        .try_recv()
        .expect("told it wants body");
    assert!(!sub.is_body_done());
    assert_eq!(sub.read_request_body().await.unwrap().unwrap(), "lo");
    assert!(sub.is_body_done());
    assert_eq!(sub.read_request_body().await.unwrap(), None);
    assert_eq!(sub.body_bytes_read(), 5);
    assert_eq!(sub.get_retry_buffer().unwrap(), "hello");
}

#[tokio::test]
async fn chunked_request_body_ends_with_its_trailers() {
    let req = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (mut sub, handle, _parent) = subrequest_of(req).await;
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", "abc".parse().unwrap());
    handle
        .tx
        .send(HttpTask::Body(Some(Bytes::from_static(b"data")), false))
        .await
        .unwrap();
    handle
        .tx
        .send(HttpTask::Trailer(Some(Box::new(trailers.clone()))))
        .await
        .unwrap();

    assert_eq!(
        sub.read_request_trailers().await.unwrap(),
        None,
        "body not read yet"
    );
    assert_eq!(sub.read_request_body().await.unwrap().unwrap(), "data");
    assert_eq!(sub.read_request_body().await.unwrap(), None);
    assert_eq!(
        *sub.read_request_trailers().await.unwrap().unwrap(),
        trailers
    );
}

#[tokio::test]
async fn request_body_cut_short_is_an_error() {
    // Chunked: the handle closing before an explicit end is not an end.
    let req = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (mut sub, handle, _parent) = subrequest_of(req).await;
    handle
        .tx
        .send(HttpTask::Body(Some(Bytes::from_static(b"part")), false))
        .await
        .unwrap();
    drop(handle);
    assert_eq!(sub.read_request_body().await.unwrap().unwrap(), "part");
    let e = sub.read_request_body().await.unwrap_err();
    assert_eq!(*e.etype(), ErrorType::ConnectionClosed);

    // Content-Length: an end flag before the announced length.
    let req = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n";
    let (mut sub, handle, _parent) = subrequest_of(req).await;
    handle
        .tx
        .send(HttpTask::Body(Some(Bytes::from_static(b"short")), true))
        .await
        .unwrap();
    let e = sub.read_request_body().await.unwrap_err();
    assert_eq!(e.etype().as_str(), "PrematureBodyEnd");
    assert!(sub.is_body_done());
}

#[tokio::test]
async fn cleared_body_headers_make_a_request_without_body() {
    let req =
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n";
    let (mut sub, _handle, _parent) = subrequest_of(req).await;
    sub.as_subrequest_mut()
        .unwrap()
        .clear_request_body_headers();
    assert!(sub.get_header("content-length").is_none());
    assert!(sub.get_header("content-type").is_none());
    assert!(sub.is_body_done() && sub.is_body_empty());
    // Nothing is waited for: the handle never sends a body.
    assert_eq!(sub.read_request_body().await.unwrap(), None);
}

#[tokio::test]
async fn response_arrives_as_tasks_in_order() {
    let (mut sub, mut handle, _parent) = subrequest_of(GET).await;
    let rx = &mut handle.rx;
    sub.write_response_header(response(200, &[("Content-Length", "5")]))
        .await
        .unwrap();
    match rx.recv().await.unwrap() {
        HttpTask::Header(h, end) => {
            assert_eq!(h.status, StatusCode::OK);
            assert_eq!(h.headers["content-length"], "5");
            assert!(!end);
        }
        other => panic!("expected the header, got {other:?}"),
    }
    assert_eq!(sub.response_written().unwrap().status, 200);
    sub.write_response_body(Bytes::from_static(b"hel"), false)
        .await
        .unwrap();
    sub.write_response_body(Bytes::from_static(b"lo"), true)
        .await
        .unwrap();
    assert_eq!(next_body(rx).await, (Bytes::from_static(b"hel"), false));
    assert_eq!(next_body(rx).await, (Bytes::from_static(b"lo"), false));
    assert!(matches!(rx.recv().await, Some(HttpTask::Done)));
    assert_eq!(sub.body_bytes_sent(), 5);

    // No keepalive: nothing to reuse, and the channel closes with the session.
    assert!(sub.finish().await.unwrap().is_none());
    assert!(rx.recv().await.is_none());
}

#[tokio::test]
async fn a_response_without_body_ends_with_its_header() {
    let (mut sub, mut handle, _parent) = subrequest_of(GET).await;
    // Informational headers pass through and do not end anything.
    sub.write_continue_response().await.unwrap();
    sub.write_response_header(response(204, &[])).await.unwrap();
    // A second final header is ignored.
    sub.write_response_header(response(500, &[])).await.unwrap();
    assert!(sub.finish().await.unwrap().is_none());
    let tasks: Vec<_> = std::iter::from_fn(|| handle.rx.try_recv().ok()).collect();
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    assert!(matches!(&tasks[0], HttpTask::Header(h, false) if h.status == 100));
    assert!(matches!(&tasks[1], HttpTask::Header(h, true) if h.status == 204));
    assert!(handle.rx.recv().await.is_none());

    let head = b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n";
    let (mut sub, mut handle, _parent) = subrequest_of(head).await;
    sub.write_response_header(response(200, &[("Content-Length", "100")]))
        .await
        .unwrap();
    assert!(matches!(
        handle.rx.recv().await,
        Some(HttpTask::Header(_, true))
    ));
}

#[tokio::test]
async fn trailers_end_the_response() {
    let (mut sub, mut handle, _parent) = subrequest_of(GET).await;
    let mut tasks = vec![
        HttpTask::Header(response(200, &[("Transfer-Encoding", "chunked")]), false),
        HttpTask::Body(Some(Bytes::from_static(b"abc")), false),
    ];
    assert!(!sub.response_duplex_vec(tasks).await.unwrap());
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    tasks = vec![HttpTask::Trailer(Some(Box::new(trailers)))];
    assert!(sub.response_duplex_vec(tasks).await.unwrap());
    drop(sub);

    assert!(matches!(
        handle.rx.recv().await,
        Some(HttpTask::Header(_, false))
    ));
    assert_eq!(next_body(&mut handle.rx).await.0, "abc");
    match handle.rx.recv().await {
        Some(HttpTask::Trailer(Some(t))) => assert_eq!(t["grpc-status"], "0"),
        other => panic!("expected trailers, got {other:?}"),
    }
    assert!(
        handle.rx.recv().await.is_none(),
        "no failure after a complete response"
    );
}

#[tokio::test]
async fn a_subrequest_dropped_mid_response_fails() {
    let (mut sub, mut handle, _parent) = subrequest_of(GET).await;
    sub.write_response_header(response(200, &[("Content-Length", "10")]))
        .await
        .unwrap();
    sub.write_response_body(Bytes::from_static(b"part"), false)
        .await
        .unwrap();
    drop(sub);
    let mut tasks = Vec::new();
    while let Some(task) = handle.rx.recv().await {
        tasks.push(task);
    }
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert!(matches!(&tasks[2], HttpTask::Failed(_)));
    assert!(!tasks.iter().any(|t| matches!(t, HttpTask::Done)));

    // Even before any response: the handle learns the subrequest gave up.
    let (sub, mut handle, _parent) = subrequest_of(GET).await;
    drop(sub);
    assert!(matches!(handle.rx.recv().await, Some(HttpTask::Failed(_))));
    assert!(handle.rx.recv().await.is_none());
}

#[tokio::test]
async fn finishing_short_of_content_length_fails() {
    let (mut sub, mut handle, _parent) = subrequest_of(GET).await;
    sub.write_response_header(response(200, &[("Content-Length", "10")]))
        .await
        .unwrap();
    sub.write_response_body(Bytes::from_static(b"abc"), false)
        .await
        .unwrap();
    let e = sub.finish_body().await.unwrap_err();
    assert_eq!(e.etype().as_str(), "PrematureBodyEnd");
    // The response already failed: finishing again sends nothing.
    assert!(sub.finish().await.unwrap().is_none());
    let tasks: Vec<_> = std::iter::from_fn(|| handle.rx.try_recv().ok()).collect();
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    assert!(matches!(tasks[2], HttpTask::Failed(_)));
    assert!(handle.rx.recv().await.is_none());

    // Writing past the length fails the response too.
    let (mut sub, mut handle, _parent) = subrequest_of(GET).await;
    sub.write_response_header(response(200, &[("Content-Length", "2")]))
        .await
        .unwrap();
    assert!(sub
        .write_response_body(Bytes::from_static(b"abc"), false)
        .await
        .is_err());
    assert!(matches!(handle.rx.recv().await, Some(HttpTask::Header(..))));
    assert!(matches!(handle.rx.recv().await, Some(HttpTask::Failed(_))));
}

#[tokio::test]
async fn bounded_response_channel_applies_back_pressure() {
    let (mut sub, mut handle, _parent) = subrequest_of(GET).await;
    sub.write_response_header(response(200, &[])).await.unwrap();
    for _ in 1..CHANNEL_CAPACITY {
        sub.write_response_body(Bytes::from_static(b"x"), false)
            .await
            .unwrap();
    }
    {
        // The channel is full: the next write waits for the reader.
        let mut write = task::spawn(sub.write_response_body(Bytes::from_static(b"y"), false));
        assert!(write.poll().is_pending());
        assert!(matches!(handle.rx.recv().await, Some(HttpTask::Header(..))));
        assert!(write.is_woken());
        assert!(write.poll().is_ready());
    }
    // With a write timeout, a reader that never reads makes the write fail.
    sub.set_write_timeout(Some(Duration::from_millis(20)));
    let e = sub
        .write_response_body(Bytes::from_static(b"z"), false)
        .await
        .unwrap_err();
    assert_eq!(*e.etype(), ErrorType::WriteTimedout);
}

#[tokio::test]
async fn bounded_request_channel_applies_back_pressure() {
    let req = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (mut sub, handle, _parent) = subrequest_of(req).await;
    for _ in 0..CHANNEL_CAPACITY {
        handle
            .tx
            .try_send(HttpTask::Body(Some(Bytes::from_static(b"x")), false))
            .unwrap();
    }
    let full = handle
        .tx
        .try_send(HttpTask::Body(Some(Bytes::from_static(b"x")), false));
    assert!(matches!(full, Err(mpsc::error::TrySendError::Full(_))));
    assert_eq!(sub.read_request_body().await.unwrap().unwrap(), "x");
    handle.tx.try_send(HttpTask::Done).unwrap();

    // With a read timeout, a handle that sends nothing makes the read fail.
    let req = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n";
    let (mut sub, _handle, _parent) = subrequest_of(req).await;
    sub.set_read_timeout(Some(Duration::from_millis(20)));
    let e = sub.read_request_body().await.unwrap_err();
    assert_eq!(*e.etype(), ErrorType::ReadTimedout);
}

#[tokio::test]
async fn drain_tasks_lets_a_large_response_complete() {
    let (mut sub, handle, _parent) = subrequest_of(GET).await;
    let drained = handle.drain_tasks();
    const PIECES: usize = 256;
    let piece = Bytes::from(vec![b'z'; 16 * 1024]);
    let total = PIECES * piece.len();
    let len = total.to_string();
    let mut header = response(200, &[]);
    header.insert_header("Content-Length", &len).unwrap();
    // Without the drain, the fifth task would wait for ever: bound the test instead of hanging.
    let write_all = async {
        sub.write_response_header(header).await.unwrap();
        for _ in 0..PIECES {
            sub.write_response_body(piece.clone(), false).await.unwrap();
        }
        sub.finish_body().await.unwrap();
    };
    tokio::time::timeout(Duration::from_secs(30), write_all)
        .await
        .expect("the drained subrequest never blocks");
    assert_eq!(sub.body_bytes_sent(), total);
    // While the drain runs, the handle looks like a client waiting: no disconnect is seen.
    let mut idle = task::spawn(sub.read_body_or_idle(true));
    assert!(idle.poll().is_pending());
    drop(idle);
    assert!(sub.finish().await.unwrap().is_none());
    drained.await.unwrap();
}

#[tokio::test]
async fn the_handle_going_away_reads_as_a_client_disconnect() {
    let (mut sub, handle, _parent) = subrequest_of(GET).await;
    let SubrequestHandle { tx, rx: _rx, .. } = handle;
    tx.send(HttpTask::Done).await.unwrap();
    drop(tx);
    let e = sub.read_body_or_idle(true).await.unwrap_err();
    assert_eq!(*e.etype(), ErrorType::ConnectionClosed);
}

#[tokio::test]
async fn proxy_failures_reach_the_handle() {
    let (mut sub, handle, _parent) = subrequest_of(GET).await;
    sub.on_proxy_failure(pingora_error::Error::explain(
        ErrorType::ConnectTimedout,
        "origin",
    ));
    // Only the first report is kept.
    sub.on_proxy_failure(pingora_error::Error::new(ErrorType::InternalError));
    let e = handle.subreq_proxy_error.await.unwrap();
    assert_eq!(*e.etype(), ErrorType::ConnectTimedout);
}

#[tokio::test]
async fn an_upgrade_switches_both_bodies_to_raw_bytes() {
    let req = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n";
    let (mut sub, mut handle, _parent) = subrequest_of(req).await;
    assert!(sub.is_upgrade_req() && sub.is_body_empty());
    sub.write_response_header(response(101, &[("Upgrade", "websocket")]))
        .await
        .unwrap();
    assert!(sub.was_upgraded());
    sub.write_response_body(Bytes::from_static(b"frame"), false)
        .await
        .unwrap();
    assert!(matches!(handle.rx.recv().await, Some(HttpTask::Header(h, false)) if h.status == 101));
    assert!(matches!(
        handle.rx.recv().await,
        Some(HttpTask::UpgradedBody(Some(d), false)) if d == "frame"
    ));

    // The client's bytes now flow until the handle stops sending.
    handle
        .tx
        .send(HttpTask::UpgradedBody(
            Some(Bytes::from_static(b"ping")),
            false,
        ))
        .await
        .unwrap();
    assert_eq!(sub.read_request_body().await.unwrap().unwrap(), "ping");
    drop(handle.tx);
    assert_eq!(sub.read_request_body().await.unwrap(), None);
}

#[test]
fn sessions_and_handles_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ServerSession>();
    send_sync::<HttpSession>();
    send_sync::<SubrequestHandle>();
}

/// An HTTP/2 parent session (one stream) over a real TCP connection; the client sends a
/// `POST` whose head ends the stream unless `with_body`. Returns the connection too, which
/// must stay alive.
async fn h2_parent(
    with_body: bool,
) -> (
    ServerSession,
    v2::H2Connection<crate::protocols::Stream>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let client_task = tokio::spawn(async move {
        let (mut send, conn) = h2::client::handshake(client).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::post("https://example.com/up")
            .body(())
            .unwrap();
        let (response, _body) = send.send_request(req, !with_body).unwrap();
        // Keep the stream open until the server side goes away.
        let _ = response.await;
    });
    let mut conn = v2::handshake(Box::new(L4Stream::from(server)), None)
        .await
        .unwrap();
    let digest = std::sync::Arc::new(crate::protocols::digest::Digest::default());
    let stream = v2::HttpSession::from_h2_conn(&mut conn, digest)
        .await
        .unwrap()
        .unwrap();
    (ServerSession::new_http2(stream), conn, client_task)
}

#[tokio::test]
async fn an_http2_parent_gives_its_request_and_body_presence() {
    let (parent, _conn, _client) = h2_parent(true).await;
    let (sub, handle) = HttpSession::new_from_session(&parent);
    let mut sub = ServerSession::new_subrequest(sub);
    assert_eq!(sub.req_header().method, "POST");
    assert_eq!(sub.req_header().uri.path(), "/up");
    assert_eq!(sub.get_header_bytes("host"), b"example.com");
    // No Content-Length, yet the parent's stream carries a body: read it up to its end.
    assert!(!sub.is_body_empty());
    handle
        .tx
        .send(HttpTask::Body(Some(Bytes::from_static(b"b")), true))
        .await
        .unwrap();
    assert_eq!(sub.read_request_body().await.unwrap().unwrap(), "b");
    assert_eq!(sub.read_request_body().await.unwrap(), None);

    let (parent, _conn, _client) = h2_parent(false).await;
    let (sub, _handle) = HttpSession::new_from_session(&parent);
    assert!(sub.is_body_empty() && sub.is_body_done());
}
