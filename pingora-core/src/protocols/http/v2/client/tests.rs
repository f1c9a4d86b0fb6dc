//! Tests of the HTTP/2 client session: stream accounting over an in-memory connection. The
//! request translation is tested in `pingora-http-codec`.

use super::*;
use crate::connectors::http::v2::{handshake, H2HandshakeSettings};
use crate::protocols::Stream;
use http::HeaderValue;

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
    for (name, value) in headers {
        req.append_header(name.to_string(), *value).unwrap();
    }
    req
}

/// A client connection over memory to an `h2` server that answers every request with 200.
async fn connection(max_streams: usize) -> ConnectionRef {
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut conn = h2::server::handshake(server).await.unwrap();
        while let Some(Ok((_req, mut respond))) = conn.accept().await {
            let resp = http::Response::builder().status(200).body(()).unwrap();
            let _ = respond.send_response(resp, true);
        }
    });
    let settings = H2HandshakeSettings {
        max_streams,
        ..Default::default()
    };
    let stream: Stream = Box::new(client);
    handshake(stream, settings).await.unwrap()
}

#[tokio::test]
async fn stream_slots_are_counted_and_given_back() {
    let conn = connection(2).await;
    let a = conn.spawn_stream().expect("first slot");
    let b = conn.spawn_stream().expect("second slot");
    assert!(conn.spawn_stream().is_none(), "only two streams allowed");
    assert!(!conn.more_streams_allowed());
    assert_eq!(conn.active_streams(), 2);
    drop(a);
    assert_eq!(conn.active_streams(), 1);
    assert!(conn.more_streams_allowed());
    drop(b);
    conn.mark_closed();
    assert!(
        conn.spawn_stream().is_none(),
        "a closed connection opens no stream"
    );
}

#[tokio::test]
async fn a_session_runs_an_exchange_and_ends_cleanly() {
    let conn = connection(1).await;
    let mut session = conn.spawn_stream().unwrap();
    let req = request("GET", "/", &[("Host", "h")]);
    session
        .write_request_header(Box::new(req), true)
        .await
        .unwrap();
    assert!(session.request_finished());
    session.read_response_header().await.unwrap();
    assert_eq!(session.response_header().unwrap().status, 200);
    assert!(session.response_finished(), "END_STREAM came with the head");
    assert_eq!(session.read_response_body().await.unwrap(), None);
    assert!(session.exchange_done());
    assert!(session.check_response_end_or_error().unwrap());
}

#[tokio::test]
async fn misuse_is_an_error_not_a_panic() {
    let conn = connection(1).await;
    let mut session = conn.spawn_stream().unwrap();
    assert!(session.read_response_header().await.is_err());
    assert!(session.read_response_body().await.is_err());
    assert!(session.queue_request_body(Bytes::new(), true).is_err());
    let req = request("GET", "/", &[("Host", "h")]);
    session
        .write_request_header(Box::new(req.clone()), true)
        .await
        .unwrap();
    let again = session.write_request_header(Box::new(req), true).await;
    assert!(again.is_err(), "a second head");
}

#[tokio::test]
async fn a_body_ended_by_an_empty_frame_ends_the_response() {
    let (client, server) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        let mut conn = h2::server::handshake(server).await.unwrap();
        let server_conn = async {
            while let Some(Ok((_req, mut respond))) = conn.accept().await {
                let resp = http::Response::builder().status(200).body(()).unwrap();
                let mut send = respond.send_response(resp, false).unwrap();
                send.send_data(Bytes::from_static(b"abc"), false).unwrap();
                send.send_data(Bytes::new(), true).unwrap();
            }
        };
        server_conn.await;
    });
    let stream: Stream = Box::new(client);
    let conn = handshake(stream, H2HandshakeSettings::default())
        .await
        .unwrap();
    let mut session = conn.spawn_stream().unwrap();
    let req = request("GET", "/", &[("Host", "h")]);
    session
        .write_request_header(Box::new(req), true)
        .await
        .unwrap();
    session.read_response_header().await.unwrap();
    let mut body = Vec::new();
    while let Some(piece) = session.read_response_body().await.unwrap() {
        body.extend_from_slice(&piece);
    }
    assert_eq!(body, b"abc");
    assert!(session.response_finished(), "no trailers to wait for");
    assert!(session.exchange_done());
}

#[tokio::test]
async fn queued_trailers_follow_the_body_and_end_the_stream() {
    let (client, server) = tokio::io::duplex(1 << 16);
    let (seen_tx, seen_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut conn = h2::server::handshake(server).await.unwrap();
        let Some(Ok((req, mut respond))) = conn.accept().await else {
            return;
        };
        // The stream is served in a task of its own: the connection must be driven meanwhile.
        tokio::spawn(async move {
            let mut body = req.into_body();
            let mut data = Vec::new();
            while let Some(piece) = body.data().await {
                let piece = piece.unwrap();
                let _ = body.flow_control().release_capacity(piece.len());
                data.extend_from_slice(&piece);
            }
            let trailers = body.trailers().await.unwrap();
            let _ = seen_tx.send((data, trailers));
            let resp = http::Response::builder().status(200).body(()).unwrap();
            let _ = respond.send_response(resp, true);
        });
        while conn.accept().await.is_some() {}
    });
    let stream: Stream = Box::new(client);
    let conn = handshake(stream, H2HandshakeSettings::default())
        .await
        .unwrap();
    let mut session = conn.spawn_stream().unwrap();
    let req = request(
        "POST",
        "/",
        &[("Host", "h"), ("Transfer-Encoding", "chunked")],
    );
    session
        .write_request_header(Box::new(req), false)
        .await
        .unwrap();
    session
        .queue_request_body(Bytes::from_static(b"abc"), false)
        .unwrap();
    session
        .queue_request_body(Bytes::from_static(b"def"), false)
        .unwrap();
    let mut trailers = HeaderMap::new();
    trailers.insert("x-sum", HeaderValue::from_static("1"));
    trailers.insert("connection", HeaderValue::from_static("close"));
    trailers.insert("te", HeaderValue::from_static("trailers"));
    session.queue_request_trailers(trailers).unwrap();
    // The request ended once: later body is ignored.
    session
        .queue_request_body(Bytes::from_static(b"late"), true)
        .unwrap();
    assert_eq!(session.queued_request_body_len(), 6);
    // Reading the response sends what is queued.
    let read = session.read_response_header();
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("response in time")
        .unwrap();
    assert_eq!(session.response_header().unwrap().status, 200);
    let (data, trailers) = seen_rx.await.unwrap();
    assert_eq!(data, b"abcdef");
    let trailers = trailers.expect("trailers arrived");
    assert_eq!(trailers.len(), 1, "connection-specific fields left out");
    assert_eq!(trailers["x-sum"], "1");
    assert!(session.request_finished());
    assert!(session.exchange_done());
}

#[tokio::test]
async fn a_body_the_server_gives_no_window_for_times_out() {
    let (client, server) = tokio::io::duplex(1 << 16);
    // A server that opens no window for request bodies and never answers.
    tokio::spawn(async move {
        let mut conn = h2::server::Builder::new()
            .initial_window_size(0)
            .handshake::<_, Bytes>(server)
            .await
            .unwrap();
        let mut held = Vec::new();
        while let Some(Ok(request)) = conn.accept().await {
            held.push(request);
        }
    });
    let stream: Stream = Box::new(client);
    let conn = handshake(stream, H2HandshakeSettings::default())
        .await
        .unwrap();
    let mut session = conn.spawn_stream().unwrap();
    session.write_timeout = Some(Duration::from_millis(50));
    let req = request("POST", "/", &[("Host", "h"), ("Content-Length", "5")]);
    session
        .write_request_header(Box::new(req), false)
        .await
        .unwrap();
    session
        .queue_request_body(Bytes::from_static(b"hello"), true)
        .unwrap();
    let start = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), session.read_response_header())
        .await
        .expect("the read fails in time");
    assert_eq!(read.unwrap_err().etype(), &ErrorType::WriteTimedout);
    assert!(start.elapsed() >= Duration::from_millis(50));
}
