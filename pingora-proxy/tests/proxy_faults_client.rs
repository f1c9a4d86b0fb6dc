//! Faults of the client, through real sockets: disconnecting in the middle of an upload or a
//! download, and trickling a request head (slowloris). Each case checks that the upstream
//! connection is closed rather than pooled dirty, that the proxy keeps serving others, and
//! that it comes back to its baseline: tasks, descriptors, heap, no panic (see
//! `faults::Harness`). The upstream's faults are in `proxy_faults.rs`.

mod faults;

use std::time::{Duration, Instant};

use bytes::Bytes;
use faults::{Harness, Setup};
use http::Method;
use pingora_core::apps::HttpServerOptions;
use pingora_test_support::h2::frames::{self, headers, request_fields, Wire};
use pingora_test_support::h2::{exchange, h2_client, request};
use pingora_test_support::leaks::CountingAlloc;
use pingora_test_support::raw::{chunked, get};
use pingora_test_support::within;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// How the client leaves.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// Closes (FIN).
    Close,
    /// Resets (RST).
    Reset,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_in_the_middle_of_an_upload() {
    // Allocated before the baseline is taken.
    let body = vec![b'u'; 100 * 1024];
    let by_length = "POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n";
    let by_chunks = "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    // The chunked body is cut in the middle of a chunk.
    let chunks = chunked(&body, &[30_000])[..body.len()].to_vec();
    let cases = [
        ("Content-Length, close", by_length, &body, Leave::Close),
        ("Content-Length, reset", by_length, &body, Leave::Reset),
        ("chunked, close", by_chunks, &chunks, Leave::Close),
        ("chunked, reset", by_chunks, &chunks, Leave::Reset),
    ];
    let mut h = Harness::start(Setup::default()).await;
    for (what, head, part, leave) in cases {
        let mut client = h.client().await;
        client.send(head).await;
        client.send(part).await;
        // The request is on its way upstream when the client goes.
        h.origin.saw_request("POST /upload").await;
        match leave {
            Leave::Close => drop(client),
            Leave::Reset => client.reset(),
        }
        let logged = h.logged().await;
        assert!(logged.error.is_some(), "{what}: {logged:?}");
        // The origin's connection ends: the proxy closed it with half a body in it.
        h.origin
            .got_once_on_a_closed_connection("POST /upload", what)
            .await;
        h.next_request_uses_a_fresh_connection(what).await;
        h.settle(what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_gone_in_the_middle_of_a_download() {
    let mut h = Harness::start(Setup::default()).await;
    // (path, bytes of body the client reads before leaving, how); `/silent` never answers:
    // the client leaves while the proxy waits for the response head.
    let cases = [
        ("/silent", 0, Leave::Close),
        ("/silent", 0, Leave::Reset),
        ("/download", 256 * 1024, Leave::Close),
        ("/download", 256 * 1024, Leave::Reset),
        ("/slow-download", 20, Leave::Close),
        ("/slow-download", 20, Leave::Reset),
    ];
    for (path, read, leave) in cases {
        let what = format!("{path}, {leave:?}");
        let mut client = h.client().await;
        client.send(get(path, "")).await;
        if path == "/silent" {
            h.origin.saw_request("GET /silent").await;
        } else {
            let head = client.read_head().await.expect("a response head");
            assert_eq!(head.status(), 200, "{what}");
            client.read_exact(read).await;
        }
        match leave {
            Leave::Close => drop(client),
            Leave::Reset => client.reset(),
        }
        let logged = h.logged().await;
        assert!(logged.error.is_some(), "{what}: {logged:?}");
        // The origin's connection ends: the proxy closed it in the middle of the response.
        h.origin
            .got_once_on_a_closed_connection(&format!("GET {path}"), &what)
            .await;
        h.next_request_uses_a_fresh_connection(&what).await;
        h.settle(&what).await;
    }
}

/// The proxy's limit on the time to send a request head.
const HEAD_TIMEOUT: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_cut_off_while_others_are_served() {
    let mut options = HttpServerOptions::default();
    options.h1_header_read_timeout = Some(HEAD_TIMEOUT);
    let mut h = Harness::start(Setup {
        options: Some(options),
        ..Setup::default()
    })
    .await;
    let slow = tokio::net::TcpStream::connect(h.proxy.addr)
        .await
        .expect("connect");
    let (mut slow_read, mut slow_write) = slow.into_split();
    let started = Instant::now();
    // A field every 20 ms, never the end of the head.
    let trickle = tokio::spawn(async move {
        let mut sent = slow_write.write_all(b"GET /hello HTTP/1.1\r\n").await;
        let mut i = 0;
        while sent.is_ok() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            sent = slow_write
                .write_all(format!("X-{i}: v\r\n").as_bytes())
                .await;
            i += 1;
        }
        sent
    });
    // Others are served meanwhile (and their upstream connections closed, not pooled).
    let mut served = 0;
    while started.elapsed() < HEAD_TIMEOUT / 2 {
        let mut other = h.client().await;
        assert_eq!(other.roundtrip(get("/close", "")).await.text(), "bye");
        h.logged().await;
        served += 1;
    }
    assert!(served > 0);
    // The slow client is disconnected once its time is up, without a response.
    let mut rest = Vec::new();
    let _ = within(
        "the slow client to be cut off",
        slow_read.read_to_end(&mut rest),
    )
    .await;
    let elapsed = started.elapsed();
    assert!(elapsed >= HEAD_TIMEOUT, "cut off after {elapsed:?}");
    assert!(elapsed < HEAD_TIMEOUT * 10, "cut off after {elapsed:?}");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
    // It stops trickling once the proxy has gone.
    let stopped = within("the slow client to stop writing", trickle).await;
    stopped
        .expect("the trickle task")
        .expect_err("the writes fail once the proxy is gone");
    drop(slow_read);
    // The origin saw only the others' requests.
    let log = h.origin.take_log();
    assert!(
        log.iter()
            .all(|e| e.ends_with("GET /close") || e.ends_with("end")),
        "{log:?}"
    );
    h.next_request_uses_a_fresh_connection("slowloris").await;
    h.settle("slowloris").await;
}

// === HTTP/2 clients ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_client_and_upstream_faults_end_their_streams_only() {
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    let mut h = Harness::start(Setup {
        options: Some(options),
        ..Setup::default()
    })
    .await;
    let send = h2_client(h.proxy.addr).await;

    // The client cancels a download: the upstream connection is closed.
    {
        let mut ready = send.clone().ready().await.expect("connection ready");
        let (resp, _) = ready
            .send_request(request(Method::GET, "/slow-download"), true)
            .expect("send request");
        let mut body = within("the head", resp)
            .await
            .expect("response")
            .into_body();
        within("the first bytes", body.data()).await;
        // Dropping the body resets the stream (CANCEL).
    }
    assert!(h.logged().await.error.is_some());
    h.origin
        .got_once_on_a_closed_connection("GET /slow-download", "h2 cancelled download")
        .await;

    // The client cancels an upload: the upstream connection is closed.
    {
        let mut ready = send.clone().ready().await.expect("connection ready");
        let (_resp, mut stream) = ready
            .send_request(request(Method::POST, "/upload"), false)
            .expect("send request");
        stream
            .send_data(Bytes::from_static(b"part of a body"), false)
            .expect("send data");
        h.origin.saw_request("POST /upload").await;
        stream.send_reset(h2::Reason::CANCEL);
    }
    assert!(h.logged().await.error.is_some());
    h.origin
        .got_once_on_a_closed_connection("POST /upload", "h2 cancelled upload")
        .await;

    // The upstream fails in the middle of a body: the stream is reset, not ended.
    {
        let mut ready = send.clone().ready().await.expect("connection ready");
        let (resp, _) = ready
            .send_request(request(Method::GET, "/body-rst"), true)
            .expect("send request");
        let mut body = within("the head", resp)
            .await
            .expect("response")
            .into_body();
        let first = within("the first bytes", body.data()).await;
        assert_eq!(first.expect("data").expect("data"), &b"partial"[..]);
        h.origin.go();
        let end = within("the end of the stream", body.data()).await;
        assert!(matches!(end, Some(Err(_))), "{end:?}");
    }
    assert!(h.logged().await.error.is_some());
    h.origin
        .got_once_on_a_closed_connection("GET /body-rst", "h2 upstream reset")
        .await;

    // A second connection goes away (reset) with two downloads in flight: both upstream
    // connections are closed.
    h.origin.take_log();
    let mut wire = Wire::open(h.proxy.addr).await;
    let mut streams = headers(1, &request_fields("GET", "/slow-download"), true);
    streams.extend(headers(3, &request_fields("GET", "/download"), true));
    wire.send(&streams).await.expect("requests sent");
    let mut answered = std::collections::HashSet::new();
    while answered.len() < 2 {
        let f = wire.next_significant().await;
        // Response heads (this client gives no flow-control window beyond the first).
        if f.kind == frames::HEADERS {
            answered.insert(f.stream);
        }
    }
    wire.conn.reset();
    for what in [
        "h2 connection gone: slow download",
        "h2 connection gone: download",
    ] {
        assert!(h.logged().await.error.is_some(), "{what}");
    }
    h.origin
        .got_once_on_a_closed_connection("GET /slow-download", "h2 connection gone")
        .await;
    h.origin
        .got_once_on_a_closed_connection("GET /download", "h2 connection gone")
        .await;

    // The first connection still serves streams.
    let got = exchange(&send, request(Method::GET, "/close"), None).await;
    assert_eq!(got.body, b"bye");
    h.logged().await;
    drop(send);
    h.next_request_uses_a_fresh_connection("h2").await;
    h.settle("h2").await;
}
