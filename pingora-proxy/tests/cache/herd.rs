//! Rules section 9: the cache lock and streaming (one origin request for many concurrent
//! misses, readers following the write, writer failures, wait timeouts, the predictor),
//! and HTTP/2 clients of the same cache.

use std::sync::atomic::{AtomicUsize, Ordering};

use http::{Method, Request};
use pingora_test_support::body::pattern_vec;
use pingora_test_support::h2::{exchange, h2_client};

use super::*;

/// Reads the rest of a response body whose head is `head`: `(bytes, complete)`, where
/// `complete` means the framing ended cleanly (the whole `Content-Length`, or the last chunk).
async fn read_rest(client: &mut RawConn, head: &Head, mut got: Vec<u8>) -> (Vec<u8>, bool) {
    if joined(head, "transfer-encoding").contains("chunked") {
        // `got` holds raw chunked bytes so far: decode everything from the start.
        let (rest, _) = client.read_to_close().await;
        got.extend_from_slice(&rest);
        return decode_chunked(&got);
    }
    let length: usize = head
        .get("content-length")
        .expect("Content-Length or chunked")
        .parse()
        .expect("a length");
    match client
        .try_read_exact(length.saturating_sub(got.len()))
        .await
    {
        Some(rest) => {
            got.extend_from_slice(&rest);
            (got, true)
        }
        None => {
            got.extend_from_slice(client.leftover());
            (got, false)
        }
    }
}

/// Decodes chunked bytes: the data and whether the last chunk came.
fn decode_chunked(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut data = Vec::new();
    loop {
        let Some(eol) = pingora_test_support::raw::find(raw, b"\r\n") else {
            return (data, false);
        };
        let size = String::from_utf8_lossy(&raw[..eol]).into_owned();
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            return (data, false);
        };
        raw = &raw[eol + 2..];
        if size == 0 {
            return (data, raw.starts_with(b"\r\n"));
        }
        if raw.len() < size + 2 {
            data.extend_from_slice(&raw[..raw.len().min(size)]);
            return (data, false);
        }
        data.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

/// Reads a response head and at least `n` bytes of its body (raw, as framed).
async fn head_and_first_bytes(client: &mut RawConn, n: usize) -> (Head, Vec<u8>) {
    let head = client.read_head().await.expect("a response head");
    let first = client.read_exact(n).await;
    (head, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_make_one_origin_request_and_readers_follow_the_write() {
    const CLIENTS: usize = 200;
    const FIRST: usize = 16 * 1024;
    let h = Arc::new(Cached::start().await);
    let body = pattern_vec(256 * 1024);
    let gate = Gate::new();
    h.origin.set(
        "/herd",
        Reply::ok(&body)
            .header("Cache-Control", "max-age=60")
            .pieces(FIRST)
            .pause_after(FIRST, &gate),
    );
    let first_bytes = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (h, first_bytes, body) = (Arc::clone(&h), Arc::clone(&first_bytes), body.clone());
        clients.push(tokio::spawn(async move {
            let mut client = h.client().await;
            client.send(request("GET", "/herd", "")).await;
            // Enough raw bytes to hold the first piece of data whatever the framing.
            let (head, got) = head_and_first_bytes(&mut client, FIRST / 2).await;
            first_bytes.fetch_add(1, Ordering::SeqCst);
            let (got, complete) = read_rest(&mut client, &head, got).await;
            assert!(complete, "a reader's body did not end cleanly");
            assert!(got == body, "a reader got {} wrong bytes", got.len());
            status_of(&head)
        }));
    }
    // Every client has its first bytes while the origin is still held at the gate.
    eventually("every client to get its first bytes", || {
        first_bytes.load(Ordering::SeqCst) == CLIENTS
    })
    .await;
    assert_eq!(h.origin.count("/herd"), 1, "more than one origin request");
    gate.open();
    // One writer; every other client was served from its write: a hit of the object being
    // written, or collapsed into the writer's request (which of the two depends on whether
    // it arrived before the response head).
    let mut writers = 0;
    for client in clients {
        let status = within("a client", client).await.expect("a client task");
        if status.stored && !status.collapsed {
            writers += 1;
        } else {
            assert!(status.hit || status.collapsed, "{}", status.member);
        }
    }
    assert_eq!(writers, 1, "writers");
    assert_eq!(h.origin.count("/herd"), 1, "more than one origin request");
    let hit = h.get("/herd", "").await;
    assert!(is_hit(&hit));
    assert!(hit.body == body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_writer_aborts_its_streaming_readers_and_the_next_request_refetches() {
    const READERS: usize = 5;
    let h = Arc::new(Cached::start().await);
    let body = pattern_vec(64 * 1024);
    let gates = [Gate::new(), Gate::new()];
    let targets = [("/fail-rst", Cut::Reset), ("/fail-fin", Cut::Close)];
    for ((target, cut), gate) in targets.into_iter().zip(&gates) {
        h.origin.set_sequence(
            target,
            vec![
                Reply::ok(&body)
                    .header("Cache-Control", "max-age=60")
                    .pieces(8 * 1024)
                    .pause_after(8 * 1024, gate)
                    .cut_after(32 * 1024, cut),
                Reply::ok(&body).header("Cache-Control", "max-age=60"),
            ],
        );
    }
    for ((target, _), gate) in targets.into_iter().zip(&gates) {
        let started = Arc::new(AtomicUsize::new(0));
        let mut readers = Vec::new();
        for _ in 0..READERS {
            let (h, started) = (Arc::clone(&h), Arc::clone(&started));
            readers.push(tokio::spawn(async move {
                let mut client = h.client().await;
                client.send(request("GET", target, "")).await;
                let (head, got) = head_and_first_bytes(&mut client, 4 * 1024).await;
                started.fetch_add(1, Ordering::SeqCst);
                read_rest(&mut client, &head, got).await
            }));
        }
        eventually("every reader to be streaming", || {
            started.load(Ordering::SeqCst) == READERS
        })
        .await;
        assert_eq!(h.origin.count(target), 1, "{target}");
        gate.open();
        for reader in readers {
            let (got, complete) = within("a reader", reader).await.expect("a reader task");
            assert!(
                !complete,
                "{target}: a reader got a clean end of a cut body"
            );
            assert!(got.len() < body.len(), "{target}");
        }
        // Nothing of the failed write was kept: the next request fetches the whole body.
        let next = h.get(target, "").await;
        assert!(next.body == body, "{target}: the refetch");
        assert_eq!(h.origin.count(target), 2, "{target}");
        let hit = h.get(target, "").await;
        assert!(is_hit(&hit), "{target}");
        assert!(hit.body == body, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_waiter_that_times_out_goes_to_the_origin() {
    let h = Arc::new(
        Cached::with(Knobs {
            wait_timeout: Some(Duration::from_millis(300)),
            ..Knobs::default()
        })
        .await,
    );
    let gate = Gate::new();
    h.origin
        .set_sequence("/slow", vec![fresh("slow").head_gate(&gate), fresh("fast")]);
    let writer = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.get("/slow", "").await })
    };
    h.origin.wait_count("/slow", 1).await;
    // The writer holds the lock until the gate opens: this one waits, then gives up.
    let started = std::time::Instant::now();
    let waiter = h.get("/slow", "").await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the second request did not wait for the lock ({:?})",
        started.elapsed()
    );
    assert_eq!(waiter.status(), 200);
    assert_eq!(waiter.text(), "fast");
    assert_eq!(h.origin.count("/slow"), 2);
    assert!(!gate.is_open());
    gate.open();
    let writer = within("the writer", writer).await.expect("the writer task");
    assert_eq!(writer.text(), "slow");
}

/// Stores nothing at `/u` (a `Set-Cookie` response), then sends two concurrent requests for
/// it whose answers wait at a gate; returns how many reached the origin before the gate
/// opened, looking for `window` at most.
async fn concurrent_requests_for_an_uncacheable_key(predictor: bool, window: Duration) -> usize {
    let h = Arc::new(
        Cached::with(Knobs {
            predictor,
            ..Knobs::default()
        })
        .await,
    );
    let gate = Gate::new();
    let uncacheable = || fresh("mine").header("Set-Cookie", "id=1");
    h.origin
        .set_sequence("/u", vec![uncacheable(), uncacheable().head_gate(&gate)]);
    let first = h.get("/u", "").await;
    assert_eq!(first.header("set-cookie"), Some("id=1"));
    let requests: Vec<_> = (0..2)
        .map(|_| {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.get("/u", "").await })
        })
        .collect();
    h.origin.wait_count("/u", 2).await;
    let _ = tokio::time::timeout(window, h.origin.wait_count("/u", 3)).await;
    let reached = h.origin.count("/u") - 1;
    gate.open();
    for request in requests {
        let resp = within("a request", request).await.expect("a request task");
        assert_eq!(resp.text(), "mine");
    }
    assert_eq!(h.origin.count("/u"), 3);
    reached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_keys_are_remembered_and_skip_the_lock() {
    // Remembered: both go to the origin at once, neither waits for the other's lock.
    let reached = concurrent_requests_for_an_uncacheable_key(true, Duration::from_secs(5)).await;
    assert_eq!(
        reached, 2,
        "a request waited for the lock of an uncacheable key"
    );
    // Control: without the predictor the second waits for the first (the lock is used).
    let reached =
        concurrent_requests_for_an_uncacheable_key(false, Duration::from_millis(300)).await;
    assert_eq!(
        reached, 1,
        "without a predictor, the lock did not collapse the requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_revalidations_are_collapsed_through_the_lock() {
    const CLIENTS: usize = 10;
    let h = Arc::new(Cached::start().await);
    let gate = Gate::new();
    let tagged = || {
        fresh("body")
            .header("ETag", "\"c\"")
            .not_modified_if_none_match("\"c\"")
    };
    h.origin
        .set_sequence("/collapse", vec![tagged(), tagged().head_gate(&gate)]);
    let _ = h.get("/collapse", "").await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.get("/collapse", "Cache-Control: no-cache\r\n").await })
        })
        .collect();
    h.origin.wait_count("/collapse", 2).await;
    // Open the gate only once every other client waits on the revalidation: one that looked
    // up after it ended would revalidate again, rightly (its `no-cache` asks for it).
    eventually("every other client to wait on the lock", || {
        h.lock_readers() == CLIENTS - 1
    })
    .await;
    gate.open();
    for client in clients {
        let resp = within("a client", client).await.expect("a client task");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text(), "body");
    }
    assert_eq!(
        h.origin.count("/collapse"),
        2,
        "revalidations were not collapsed"
    );
}

/// A GET of `path` on host `test` (the key the HTTP/1 requests use).
fn h2_get(path: &str) -> Request<()> {
    Request::builder()
        .method(Method::GET)
        .uri(format!("http://test{path}"))
        .body(())
        .expect("a request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_share_the_cache_with_http1_clients() {
    let h = Cached::with(Knobs {
        h2c: true,
        ..Knobs::default()
    })
    .await;
    h.origin.set("/shared", fresh("shared body"));
    h.origin
        .set("/from-h2", fresh("h2 body").chunked().pieces(3));
    // Stored from HTTP/1, hit over HTTP/2.
    let _ = h.get("/shared", "").await;
    let send = h2_client(h.proxy.addr).await;
    let got = exchange(&send, h2_get("/shared"), None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"shared body");
    let cache_status = got.headers["cache-status"].to_str().expect("text");
    assert!(cache_status.contains("pingora; hit"), "{cache_status}");
    assert!(got.headers.contains_key("age"));
    assert_eq!(h.origin.count("/shared"), 1);
    // Stored from HTTP/2, hit over HTTP/1 and HTTP/2.
    let got = exchange(&send, h2_get("/from-h2"), None).await;
    assert_eq!(got.body, b"h2 body");
    let again = exchange(&send, h2_get("/from-h2"), None).await;
    assert_eq!(again.body, b"h2 body");
    let hit = h.get("/from-h2", "").await;
    assert!(is_hit(&hit));
    assert_eq!(hit.text(), "h2 body");
    assert_eq!(h.origin.count("/from-h2"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_that_got_nothing_wait_for_the_next_writer_after_a_failure() {
    const WAITERS: usize = 8;
    let h = Arc::new(
        Cached::with(Knobs {
            read_timeout: Some(Duration::from_millis(400)),
            ..Knobs::default()
        })
        .await,
    );
    // The first writer's origin never answers (its head waits on a gate never opened): the
    // writer times out before any byte reached its waiters.
    let never = Gate::new();
    h.origin.set_sequence(
        "/next-writer",
        vec![
            Reply::ok("first").head_gate(&never),
            Reply::ok("second").header("Cache-Control", "max-age=60"),
        ],
    );
    let first = {
        let h = Arc::clone(&h);
        tokio::spawn(async move { h.get("/next-writer", "").await })
    };
    h.origin.wait_count("/next-writer", 1).await;
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| {
            let h = Arc::clone(&h);
            tokio::spawn(async move { h.get("/next-writer", "").await })
        })
        .collect();
    let first = within("the failed writer", first).await.expect("a task");
    assert_eq!(first.status(), 502, "the writer's own request fails");
    for waiter in waiters {
        let resp = within("a waiter", waiter).await.expect("a task");
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.text(),
            "second",
            "fetched again from byte 0 by a new writer"
        );
    }
    assert_eq!(
        h.origin.count("/next-writer"),
        2,
        "one failed fetch, then one for all the waiters"
    );
}
