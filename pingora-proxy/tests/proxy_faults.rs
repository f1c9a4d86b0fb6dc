//! Faults of the upstream, through real sockets: resets and closes in the middle of a
//! response, an upstream that never answers, one that answers before the request body is in.
//! Each case checks what the client got, what the origin saw (how often, on which
//! connection), that a broken upstream connection is never reused, and that the proxy comes
//! back to its baseline: tasks, descriptors, heap, no panic (see `faults::Harness`). The
//! client's faults are in `proxy_faults_client.rs`.

mod faults;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use faults::{Harness, Setup};
use pingora_test_support::leaks::CountingAlloc;
use pingora_test_support::raw::{chunked, find, get, post};
use pingora_test_support::{within, RawConn};
use tokio::io::AsyncWriteExt;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

// === resets and closes ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_gone_in_the_middle_of_the_head_is_a_502() {
    let mut h = Harness::start(Setup::default()).await;
    // An informational response is not the response: a 502 follows it.
    for path in ["/head-rst", "/head-fin", "/hints-rst", "/hints-fin"] {
        let mut client = h.client().await;
        let resp = client.roundtrip(get(path, "")).await;
        assert_eq!(resp.status(), 502, "{path}");
        assert_eq!(resp.header("connection"), Some("close"), "{path}");
        if path == "/hints-fin" {
            let hints: Vec<u16> = resp.interim.iter().map(|h| h.status()).collect();
            assert_eq!(hints, [103], "{path}");
        }
        assert!(
            client.is_closed().await,
            "{path}: the client connection stays open"
        );
        let logged = h.logged().await;
        assert_eq!(logged.status, Some(502), "{path}");
        // It failed on a new upstream connection: it is not sent again.
        let request = format!("GET {path}");
        h.origin
            .got_once_on_a_closed_connection(&request, path)
            .await;
        assert_eq!(h.peer_calls.load(Ordering::SeqCst), 1, "{path}");
        drop(client);
        h.next_request_uses_a_fresh_connection(path).await;
        h.settle(path).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_gone_in_the_middle_of_a_body_cuts_the_client_connection() {
    let mut h = Harness::start(Setup::default()).await;
    // (path, what of the body the client gets before the fault)
    let cases = [
        ("/body-rst", &b"partial"[..]),
        ("/body-fin", b"partial"),
        ("/chunk-rst", b"5\r\nhello\r\n"),
        ("/chunk-fin", b"5\r\nhello\r\n"),
        // A body that ends with the connection goes to the client chunked.
        ("/unframed-rst", b"4\r\nsome\r\n"),
    ];
    for (path, first) in cases {
        let mut client = h.client().await;
        client.send(get(path, "")).await;
        let head = client.read_head().await.expect("a response head");
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(client.read_exact(first.len()).await, first, "{path}");
        // The head and the first bytes reached the client: now the upstream goes.
        h.origin.go();
        let (rest, _) = client.read_to_close().await;
        if path.starts_with("/body") {
            assert_eq!(head.get("content-length"), Some("100"), "{path}");
            assert!(
                first.len() + rest.len() < 100,
                "{path}: a whole body of {} bytes",
                first.len() + rest.len()
            );
        } else {
            assert_eq!(head.get("transfer-encoding"), Some("chunked"), "{path}");
            assert_eq!(
                find(&rest, b"0\r\n\r\n"),
                None,
                "{path}: the chunked body was ended: {:?}",
                String::from_utf8_lossy(&rest)
            );
        }
        let logged = h.logged().await;
        assert!(logged.error.is_some(), "{path}: {logged:?}");
        h.origin
            .got_once_on_a_closed_connection(&format!("GET {path}"), path)
            .await;
        drop(client);
        h.next_request_uses_a_fresh_connection(path).await;
        h.settle(path).await;
    }
    // The control: a body that ends with the connection closing normally is complete, and
    // the client connection serves the next request.
    let mut client = h.client().await;
    client.send(get("/unframed-fin", "")).await;
    assert_eq!(client.read_head().await.expect("a head").status(), 200);
    assert_eq!(client.read_exact(9).await, b"4\r\nsome\r\n");
    h.origin.go();
    assert_eq!(client.read_exact(5).await, b"0\r\n\r\n");
    assert_eq!(client.roundtrip(get("/close", "")).await.text(), "bye");
    assert_eq!(h.logged().await.error, None);
    h.logged().await;
    drop(client);
    h.settle("/unframed-fin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_upstream_faults_leave_nothing_behind() {
    let mut h = Harness::start(Setup::default()).await;
    // Small leaks add up: 120 faults against one baseline (64 KiB of slack).
    for _ in 0..40 {
        for path in ["/head-rst", "/head-fin"] {
            let mut client = h.client().await;
            assert_eq!(
                client.roundtrip(get(path, "")).await.status(),
                502,
                "{path}"
            );
            h.logged().await;
        }
        let mut client = h.client().await;
        client.send(get("/body-rst", "")).await;
        client.read_head().await.expect("a response head");
        client.read_exact(7).await;
        h.origin.go();
        client.read_to_close().await;
        h.logged().await;
    }
    h.next_request_uses_a_fresh_connection("repeated faults")
        .await;
    h.settle("repeated faults").await;
}

// === an upstream that never answers ===

const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(400);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_read_timeout_is_a_502_or_a_configured_504_and_not_retried() {
    let mut h = Harness::start(Setup {
        read_timeout: Some(UPSTREAM_TIMEOUT),
        max_retries: Some(3),
        ..Setup::default()
    })
    .await;
    // (what, request, expected status); connection failures are retryable (see
    // `fail_to_connect`) and 3 attempts are allowed, but a request the upstream received is
    // not sent again: it may have acted on it.
    let cases = [
        ("GET", get("/silent", "").into_bytes(), 502),
        ("POST", post("/silent", b"a body"), 502),
        (
            "GET, timeouts mapped to 504",
            get("/silent", "x-timeouts-504: 1\r\n").into_bytes(),
            504,
        ),
    ];
    for (what, request, status) in cases {
        for reused in [false, true] {
            let what = format!("{what}, reused upstream connection: {reused}");
            let mut client = h.client().await;
            if reused {
                // Leaves a connection in the pool for the request to take.
                assert_eq!(client.roundtrip(get("/hello", "")).await.text(), "hello");
                h.logged().await;
            }
            let started = Instant::now();
            let resp = client.roundtrip(&request).await;
            assert_eq!(resp.status(), status, "{what}");
            // The client connection is closed after it, whoever chose the status.
            assert_eq!(resp.header("connection"), Some("close"), "{what}");
            assert!(
                started.elapsed() >= UPSTREAM_TIMEOUT,
                "{what}: {:?}",
                started.elapsed()
            );
            assert!(
                client.is_closed().await,
                "{what}: the client connection stays open"
            );
            let logged = h.logged().await;
            assert_eq!(logged.error.as_deref(), Some("ReadTimedout"), "{what}");
            let method = what.split([',', ' ']).next().unwrap_or_default();
            h.origin
                .got_once_on_a_closed_connection(&format!("{method} /silent"), &what)
                .await;
            assert_eq!(
                h.peer_calls.load(Ordering::SeqCst),
                1 + reused as usize,
                "{what}"
            );
            drop(client);
            h.next_request_uses_a_fresh_connection(&what).await;
            h.settle(&what).await;
        }
    }
}

/// An upstream that reads neither a large request body nor answers: the proxy gives up after
/// the peer's read timeout, or its write timeout (the body stops going out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_neither_reading_the_body_nor_answering_times_out() {
    let read = Setup {
        read_timeout: Some(UPSTREAM_TIMEOUT),
        ..Setup::default()
    };
    let write = Setup {
        write_timeout: Some(UPSTREAM_TIMEOUT),
        ..Setup::default()
    };
    for (what, setup, error) in [
        ("read", read, "ReadTimedout"),
        ("write", write, "WriteTimedout"),
    ] {
        let mut h = Harness::start(setup).await;
        let client = h.client().await;
        let (read, mut write) = client.stream.into_split();
        let mut client = RawConn::new(read);
        // More body than the queues and socket buffers on the way hold: the proxy stops
        // reading from the client while the upstream reads nothing.
        let uploading = tokio::spawn(async move {
            let head =
                "POST /silent-unread HTTP/1.1\r\nHost: t\r\nContent-Length: 67108864\r\n\r\n";
            let piece = vec![b'u'; 64 * 1024];
            let mut sent = write.write_all(head.as_bytes()).await;
            while sent.is_ok() {
                sent = write.write_all(&piece).await;
            }
            sent
        });
        let started = Instant::now();
        let resp = client.response().await;
        assert_eq!(resp.status(), 502, "{what}");
        assert!(
            started.elapsed() >= UPSTREAM_TIMEOUT,
            "{what}: {:?}",
            started.elapsed()
        );
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        assert_eq!(h.logged().await.error.as_deref(), Some(error), "{what}");
        // The proxy hangs up on the client, which stops uploading.
        let stopped = within("the upload to stop", uploading).await;
        stopped
            .expect("the upload task")
            .expect_err("the upload stops with an error");
        h.origin.go();
        h.origin
            .got_once_on_a_closed_connection("POST /silent-unread", what)
            .await;
        drop(client);
        h.next_request_uses_a_fresh_connection(what).await;
        h.settle(what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_failure_is_retried_on_the_next_peer() {
    let mut h = Harness::start(Setup {
        max_retries: Some(3),
        ..Setup::default()
    })
    .await;
    let mut client = h.client().await;
    // `/close`: the upstream connection is not pooled afterwards.
    let resp = client.roundtrip(get("/close", "x-dead-first: 1\r\n")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text(), "bye");
    assert_eq!(h.logged().await.error, None);
    // The dead peer, then the origin.
    assert_eq!(h.peer_calls.load(Ordering::SeqCst), 2);
    drop(client);
    h.next_request_uses_a_fresh_connection("after a connect failure")
        .await;
    h.settle("connect failure").await;
}

// === an upstream answering before the request body is in ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_answering_before_the_body_is_in() {
    // Allocated before the baseline is taken.
    let body = vec![b'u'; 64 * 1024];
    // (what, request head, the first part of its body, path, status, response body)
    let cases = [
        (
            "413 kept alive, Content-Length",
            "POST /early-413 HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n",
            body.clone(),
            "/early-413",
            413,
            "",
        ),
        (
            "413 kept alive, chunked",
            "POST /early-413 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            chunked(&body, &[8192])[..body.len()].to_vec(),
            "/early-413",
            413,
            "",
        ),
        (
            "200 and close, Content-Length",
            "POST /early-close HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n",
            body.clone(),
            "/early-close",
            200,
            "early",
        ),
    ];
    let mut h = Harness::start(Setup::default()).await;
    for (what, head, first, path, status, text) in cases {
        let mut client = h.client().await;
        client.send(head).await;
        client.send(&first).await;
        let resp = client.response().await;
        assert_eq!(resp.status(), status, "{what}");
        assert_eq!(resp.text(), text, "{what}");
        // The rest of the request body will not be read: the client connection is closed.
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        let (rest, _) = client.read_to_close().await;
        assert!(
            rest.is_empty(),
            "{what}: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(h.logged().await.status, Some(status), "{what}");
        // The upstream connection, with half a body in it, was closed, not pooled.
        h.origin
            .got_once_on_a_closed_connection(&format!("POST {path}"), what)
            .await;
        drop(client);
        h.next_request_uses_a_fresh_connection(what).await;
        h.settle(what).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_in_the_middle_of_an_upload_is_a_502() {
    // Allocated before the baseline is taken.
    let body = vec![b'u'; 128 * 1024];
    let by_length = "POST /upload-rst HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n";
    let by_chunks = "POST /upload-rst HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
    let chunks = chunked(&body, &[8192])[..body.len()].to_vec();
    let cases = [
        ("Content-Length", by_length, &body),
        ("chunked", by_chunks, &chunks),
    ];
    let mut h = Harness::start(Setup::default()).await;
    for (what, head, part) in cases {
        let mut client = h.client().await;
        client.send(head).await;
        client.send(part).await;
        let resp = client.response().await;
        assert_eq!(resp.status(), 502, "{what}");
        assert_eq!(resp.header("connection"), Some("close"), "{what}");
        let (rest, _) = client.read_to_close().await;
        assert!(
            rest.is_empty(),
            "{what}: {:?}",
            String::from_utf8_lossy(&rest)
        );
        assert_eq!(h.logged().await.status, Some(502), "{what}");
        h.origin
            .got_once_on_a_closed_connection("POST /upload-rst", what)
            .await;
        assert_eq!(h.peer_calls.load(Ordering::SeqCst), 1, "{what}");
        drop(client);
        h.next_request_uses_a_fresh_connection(what).await;
        h.settle(what).await;
    }
}
