//! HTTP/2 abuse that conformance suites do not cover, against the h2c listener: floods of
//! frames (rapid reset, CONTINUATION, SETTINGS, PING, PRIORITY, empty DATA), a header list
//! that decompresses to gigabytes, and clients that leave the server waiting for window or
//! stop reading. Each case measures what the abuse cost the process (CPU time of the test's
//! thread, which runs the server and both clients, and the growth of live heap bytes), checks
//! how the abusive connection ends, and has a well-behaved client on another connection
//! complete requests during and after the abuse.
//!
//! The cases run one at a time (the heap is counted for the whole process).

// `getrusage` needs `unsafe`.
#![allow(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::protocols::http::v2::server::H2Limits;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::ShutdownWatch;
use pingora_http::ResponseHeader;
use pingora_test_support::h2::frames::*;
use pingora_test_support::h2::{exchange, h2_client, request};
use pingora_test_support::leaks::{self, CountingAlloc};
use pingora_test_support::raw::RawConn;
use pingora_test_support::{within, TestService};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

// === Measuring ===

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Serializes the cases: heap counts are process-wide.
static SERIAL: Mutex<()> = Mutex::const_new(());

/// CPU time (user and system) of the calling thread. The tests run on a current-thread
/// runtime: server, abusive client and well-behaved client all run on this thread.
fn thread_cpu() -> Duration {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// What one abusive connection cost and how it ended.
#[derive(Debug)]
struct Cost {
    /// The GOAWAY the server sent, if any.
    goaway: Option<Frame>,
    /// Bytes the abusive client managed to write (some may have stayed in socket buffers).
    sent: usize,
    /// Bytes the server sent it.
    received: usize,
    /// CPU time of the whole exchange.
    cpu: Duration,
    /// Growth of the live heap at its peak, over the start.
    peak_heap: usize,
    /// Requests the well-behaved client completed meanwhile.
    good_requests: usize,
}

impl Cost {
    /// Asserts the connection ended with `GOAWAY(ENHANCE_YOUR_CALM)` and the cost stayed
    /// under `cpu` and `heap` bytes; prints the figures.
    fn assert_calmed(&self, what: &str, cpu: Duration, heap: usize) {
        println!(
            "{what}: wrote {} B, received {} B, CPU {:?}, heap peak +{} B, good requests {}",
            self.sent, self.received, self.cpu, self.peak_heap, self.good_requests
        );
        let goaway = self
            .goaway
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: no GOAWAY"));
        assert_eq!(goaway.error_code(), ENHANCE_YOUR_CALM, "{what}");
        assert!(self.cpu < cpu, "{what}: {:?} of CPU", self.cpu);
        assert!(
            self.peak_heap < heap,
            "{what}: heap grew {} bytes",
            self.peak_heap
        );
        assert!(
            self.good_requests > 0,
            "{what}: the good client was starved"
        );
    }

    /// The debug data of the GOAWAY: the `h2` crate names the limit it enforced there; the
    /// server's own budgets leave it empty.
    fn debug_data(&self) -> &[u8] {
        self.goaway.as_ref().map_or(&[], |g| &g.payload[8..])
    }
}

// === The application ===

/// `/big` answers 200 with 64 MiB of body; `/hold` waits for the client to reset the stream;
/// anything else is answered 200 with an empty body.
struct App {
    options: HttpServerOptions,
    calls: AtomicUsize,
}

#[async_trait]
impl HttpServerApp for App {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        session.read_request().await.ok()?;
        let path = session.req_header().uri.path().to_string();
        if path == "/hold" {
            let _ = session.read_body_or_idle(true).await;
            return None;
        }
        let resp = ResponseHeader::build(200, None).ok()?;
        session.write_response_header(Box::new(resp)).await.ok()?;
        if path == "/big" {
            let piece = Bytes::from(vec![b'x'; 64 << 10]);
            for _ in 0..1024 {
                session
                    .write_response_body(piece.clone(), false)
                    .await
                    .ok()?;
            }
        }
        session.finish_body().await.ok()?;
        None
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        Some(&self.options)
    }
}

/// An h2c server with `limits`; its application's call counter.
async fn start(limits: H2Limits) -> (TestService, Arc<App>) {
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    options.h2_limits = limits;
    let app = Arc::new(App {
        options,
        calls: AtomicUsize::new(0),
    });
    let server = TestService::start(ArcApp(app.clone())).await;
    (server, app)
}

/// Lets the test keep a handle on the application the service runs.
struct ArcApp(Arc<App>);

#[async_trait]
impl HttpServerApp for ArcApp {
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        self.0.process_new_http(session, shutdown).await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.0.server_options()
    }
}

// === The clients ===

/// A well-behaved client on its own connection, sending GETs one after another until
/// stopped; returns how many it completed.
fn good_client(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let send = h2_client(addr).await;
        let mut done = 0;
        while !stop.load(Ordering::Relaxed) {
            let got = exchange(&send, request(Method::GET, "/"), None).await;
            assert_eq!(got.status, 200);
            done += 1;
            tokio::task::yield_now().await;
        }
        done
    })
}

/// Opens a connection, sends the preface, `setup`, then `flood` up to `times` times (or until
/// the server closes), reading everything the server sends meanwhile, while a well-behaved
/// client runs on another connection. Measures the whole.
async fn abuse(server: &TestService, setup: &[u8], flood: &[u8], times: usize) -> Cost {
    let stop = Arc::new(AtomicBool::new(false));
    let good = good_client(server.addr, stop.clone());
    let cpu = thread_cpu();
    let heap = leaks::reset_peak();

    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let (read, mut write) = tcp.into_split();
    let reader = tokio::spawn(async move {
        let mut conn = RawConn::new(read);
        let mut goaway = None;
        let mut received = 0;
        while let Some(f) = read_frame(&mut conn).await {
            received += 9 + f.payload.len();
            if f.kind == GOAWAY && goaway.is_none() {
                goaway = Some(f);
            }
        }
        (goaway, received)
    });
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[]));
    hello.extend_from_slice(setup);
    let mut sent = 0;
    if write.write_all(&hello).await.is_ok() {
        sent += hello.len();
        for _ in 0..times {
            if within("flood write", write.write_all(flood)).await.is_err() {
                break;
            }
            sent += flood.len();
        }
    }
    let (goaway, received) = within("the abusive connection to close", reader)
        .await
        .expect("reader");
    let cpu = thread_cpu() - cpu;
    let peak_heap = leaks::peak_heap().saturating_sub(heap);
    drop(write);

    // The good client goes on after the abuse too.
    stop.store(true, Ordering::Relaxed);
    let during = within("the good client", good).await.expect("good client");
    let after = h2_client(server.addr).await;
    assert_eq!(
        exchange(&after, request(Method::GET, "/"), None)
            .await
            .status,
        200
    );
    Cost {
        goaway,
        sent,
        received,
        cpu,
        peak_heap,
        good_requests: during,
    }
}

/// `n` copies of `frame`, as one buffer.
fn repeat(frame: Vec<u8>, n: usize) -> Vec<u8> {
    frame.repeat(n)
}

// CPU bounds are generous for debug builds on a loaded machine; the figures printed by each
// case show the real cost. Heap bounds are tight: a flood must not make the server buffer.
const CPU: Duration = Duration::from_secs(3);
const HEAP: usize = 4 << 20;

// === Floods of frames that carry no request (the server's budget) ===

#[tokio::test]
async fn ping_flood_is_bounded_and_calmed() {
    let _serial = SERIAL.lock().await;
    let (server, _) = start(H2Limits::default()).await;
    // 1,000,000 PINGs (17 MB) if nothing stopped them; the budget allows 10,000.
    let flood = repeat(frame(PING, 0, 0, &[7; 8]), 1000);
    let cost = abuse(&server, &[], &flood, 1000).await;
    cost.assert_calmed("PING flood", CPU, HEAP);
    assert!(cost.debug_data().is_empty(), "our budget, not h2's");
    assert!(
        cost.received < 11_000 * 17,
        "{} bytes of PING ACKs",
        cost.received
    );
    server.stop().await;
}

#[tokio::test]
async fn settings_flood_is_bounded_and_calmed() {
    let _serial = SERIAL.lock().await;
    let (server, _) = start(H2Limits::default()).await;
    let mut one = 0x3u16.to_be_bytes().to_vec(); // SETTINGS_MAX_CONCURRENT_STREAMS = 100
    one.extend_from_slice(&100u32.to_be_bytes());
    let flood = repeat(frame(SETTINGS, 0, 0, &one), 1000);
    let cost = abuse(&server, &[], &flood, 1000).await;
    cost.assert_calmed("SETTINGS flood", CPU, HEAP);
    assert!(cost.debug_data().is_empty(), "our budget, not h2's");
    assert!(
        cost.received < 11_000 * 9 + 1000,
        "{} bytes of ACKs",
        cost.received
    );
    server.stop().await;
}

#[tokio::test]
async fn priority_flood_is_bounded_and_calmed() {
    let _serial = SERIAL.lock().await;
    let (server, _) = start(H2Limits::default()).await;
    // Stream 3 depends on stream 1, weight 16: nothing the server answers.
    let flood = repeat(frame(2, 0, 3, &[0, 0, 0, 1, 16]), 1000);
    let cost = abuse(&server, &[], &flood, 1000).await;
    cost.assert_calmed("PRIORITY flood", CPU, HEAP);
    assert!(cost.debug_data().is_empty(), "our budget, not h2's");
    server.stop().await;
}

#[tokio::test]
async fn empty_data_flood_is_bounded_and_calmed() {
    let _serial = SERIAL.lock().await;
    let (server, app) = start(H2Limits::default()).await;
    // An upload that never ends, in empty DATA frames (CVE-2019-9518).
    let setup = headers(1, &request_fields("POST", "/hold"), false);
    let flood = repeat(frame(DATA, 0, 1, &[]), 1000);
    let cost = abuse(&server, &setup, &flood, 1000).await;
    // The `h2` crate (0.4.20) allows 100 empty DATA frames per connection, before the
    // server's budget; either ends the connection.
    cost.assert_calmed("empty DATA flood", CPU, HEAP);
    assert!(app.calls.load(Ordering::SeqCst) >= 1);
    server.stop().await;
}

/// A budget that renews: a client that stays under it is served.
#[tokio::test]
async fn pings_under_the_budget_are_answered() {
    let _serial = SERIAL.lock().await;
    let mut limits = H2Limits::default();
    limits.max_control_frames = 50;
    let (server, _) = start(limits).await;
    let mut wire = Wire::open(server.addr).await;
    for i in 0..40u8 {
        wire.send(&frame(PING, 0, 0, &[i; 8])).await.unwrap();
        let ack = loop {
            let f = wire.next().await.expect("a PING ACK");
            if f.kind == PING {
                break f;
            }
        };
        assert_eq!((ack.flags, ack.payload), (ACK, vec![i; 8]));
    }
    wire.expect_served(1).await;
    drop(wire);
    server.stop().await;
}

// === Floods the `h2` crate bounds itself (measured) ===

#[tokio::test]
async fn rapid_reset_is_bounded_and_calmed() {
    let _serial = SERIAL.lock().await;
    let (server, app) = start(H2Limits::default()).await;
    let block = request_fields("GET", "/hold");
    let mut flood = Vec::new();
    for i in 0..100_000u32 {
        let id = 1 + 2 * i;
        flood.extend(headers(id, &block, true));
        flood.extend(rst_stream(id, CANCEL));
    }
    let cost = abuse(&server, &[], &flood, 1).await;
    cost.assert_calmed("rapid reset", CPU, HEAP);
    assert_eq!(cost.debug_data(), b"too_many_resets", "h2's own bound");
    let calls = app.calls.load(Ordering::SeqCst);
    assert!(
        calls < cost.good_requests + 500,
        "{calls} streams reached the application"
    );
    server.stop().await;
}

#[tokio::test]
async fn continuation_flood_is_bounded_and_calmed() {
    let _serial = SERIAL.lock().await;
    let (server, _) = start(H2Limits::default()).await;
    let setup = frame(HEADERS, END_STREAM, 1, &request_fields("GET", "/"));
    let flood = frame(CONTINUATION, 0, 1, &field("x-flood", &"y".repeat(16_000)));
    let cost = abuse(&server, &setup, &flood, 10_000).await;
    cost.assert_calmed("CONTINUATION flood", CPU, HEAP);
    assert_eq!(
        cost.debug_data(),
        b"too_many_continuations",
        "h2's own bound"
    );
    server.stop().await;
}

/// An HPACK bomb: one 4 KB field put in the dynamic table, then referenced by a one-byte
/// index 12,000 times per header block (48 MB per request once decoded), on 500 streams. The
/// `h2` crate stops keeping fields past `SETTINGS_MAX_HEADER_LIST_SIZE` and ends the
/// connection once the decoded size passes a multiple of it.
#[tokio::test]
async fn hpack_bomb_is_bounded_and_calmed() {
    let _serial = SERIAL.lock().await;
    let (server, app) = start(H2Limits::default()).await;
    let mut setup = Vec::new();
    let mut flood = Vec::new();
    for i in 0..500u32 {
        let mut block = request_fields("GET", "/");
        if i == 0 {
            // Literal with incremental indexing, new name: dynamic table entry 62.
            block.push(0x40);
            hpack_int(0, 7, 5, &mut block);
            block.extend_from_slice(b"x-big");
            hpack_int(0, 7, 4000, &mut block);
            block.extend(std::iter::repeat_n(b'b', 4000));
        }
        block.extend(std::iter::repeat_n(0x80 | 62, 12_000));
        let stream = frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, &block);
        if i == 0 {
            setup = stream;
        } else {
            flood.extend(stream);
        }
    }
    let cost = abuse(&server, &setup, &flood, 1).await;
    cost.assert_calmed("HPACK bomb", CPU, HEAP);
    assert_eq!(
        cost.debug_data(),
        b"header_list_way_too_large",
        "h2's own bound"
    );
    let calls = app.calls.load(Ordering::SeqCst);
    assert!(
        calls <= cost.good_requests + 1,
        "{calls} bombs reached the application"
    );
    server.stop().await;
}

// === Stalls ===

/// A client that opens its windows to zero (SETTINGS_INITIAL_WINDOW_SIZE 0) and asks for a
/// large response: the stream waits for window for the stall timeout, then the connection is
/// ended with `GOAWAY(ENHANCE_YOUR_CALM)`.
#[tokio::test]
async fn zero_window_stall_is_ended() {
    let _serial = SERIAL.lock().await;
    let mut limits = H2Limits::default();
    limits.send_stall_timeout = Some(Duration::from_millis(300));
    let (server, _) = start(limits).await;
    let mut setup = frame(SETTINGS, 0, 0, &[0, 4, 0, 0, 0, 0]);
    for i in 0..20u32 {
        setup.extend(headers(1 + 2 * i, &request_fields("GET", "/big"), true));
    }
    let started = std::time::Instant::now();
    let cost = abuse(&server, &setup, &[], 0).await;
    cost.assert_calmed("zero-window stall", CPU, HEAP);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        cost.received < 64 << 10,
        "{} bytes sent in a zero window",
        cost.received
    );
    server.stop().await;
}

/// A client that opens its windows wide, asks for large responses and never reads the
/// socket: once writes make no progress for the stall timeout the connection is closed, and
/// the server holds no more than the socket buffers and `h2`'s per-stream send buffers.
#[tokio::test]
async fn client_that_stops_reading_is_dropped() {
    let _serial = SERIAL.lock().await;
    let mut limits = H2Limits::default();
    limits.send_stall_timeout = Some(Duration::from_millis(300));
    let (server, _) = start(limits).await;
    let stop = Arc::new(AtomicBool::new(false));
    let good = good_client(server.addr, stop.clone());
    let heap = leaks::reset_peak();

    let mut conn = RawConn::connect(server.addr).await;
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(SETTINGS, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    hello.extend(window_update(0, 0x7fff_0000));
    for i in 0..4u32 {
        hello.extend(headers(1 + 2 * i, &request_fields("GET", "/big"), true));
    }
    conn.send(&hello).await;
    // Long enough for the socket buffers to fill and the stall timeout to pass.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let read_all = async {
        let mut received = 0;
        while let Some(f) = read_frame(&mut conn).await {
            received += 9 + f.payload.len();
        }
        received
    };
    let received = within("the stalled connection to close", read_all).await;
    let peak_heap = leaks::peak_heap().saturating_sub(heap);
    println!("stopped reading: {received} bytes received, heap grew {peak_heap}");
    assert!(received < 4 * (64 << 20), "the whole responses were sent");
    assert!(peak_heap < 16 << 20, "heap grew {peak_heap} bytes");
    stop.store(true, Ordering::Relaxed);
    assert!(within("the good client", good).await.expect("good client") > 0);
    server.stop().await;
}
