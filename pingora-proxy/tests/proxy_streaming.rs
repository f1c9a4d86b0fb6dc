//! Bodies through a real proxy: large uploads and downloads with bounded memory, full duplex,
//! and the body filters (rewriting, dropping, delaying).

mod e2e;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use e2e::*;
use http_body_util::BodyExt;
use hyper::Request;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};
use tokio::sync::mpsc;

/// Size of the large transfers. 256 MiB takes a few seconds each in a debug build.
const LARGE: u64 = 256 * 1024 * 1024;
/// The most the process may grow while moving [`LARGE`] bytes.
const MAX_GROWTH: u64 = 64 * 1024 * 1024;

/// The memory tests measure the whole process: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Proxies everything to one origin, unchanged.
struct ToOrigin(SocketAddr);

#[async_trait]
impl ProxyHttp for ToOrigin {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

/// Runs `transfer` while sampling memory; fails if the process grew by [`MAX_GROWTH`] or more.
fn bounded_memory<F: std::future::Future<Output = ()>>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    transfer: F,
) {
    let before = rss_bytes();
    let sampler = RssSampler::start();
    let started = Instant::now();
    rt.block_on(transfer);
    let elapsed = started.elapsed();
    let peak = sampler.finish();
    let growth = peak.saturating_sub(before);
    println!(
        "{what}: {} MiB in {elapsed:?}, RSS before {} MiB, peak {} MiB",
        LARGE >> 20,
        before >> 20,
        peak >> 20
    );
    assert!(
        growth < MAX_GROWTH,
        "{what}: memory grew by {} MiB",
        growth >> 20
    );
}

fn download(exact: bool) {
    let _serial = serial();
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (_proxy, addr) = start_proxy(ToOrigin(origin.addr));
    let path = if exact {
        format!("/download/{LARGE}")
    } else {
        format!("/download-chunked/{LARGE}")
    };
    bounded_memory(&rt, &format!("download {path}"), async move {
        let req = Request::get(path)
            .header("host", "test")
            .body(http_body_util::Empty::<Bytes>::new())
            .expect("request");
        let resp = hyper_request(addr, req).await;
        assert_eq!(resp.status(), 200);
        if exact {
            assert_eq!(
                resp.headers()["content-length"].to_str().ok(),
                Some(LARGE.to_string().as_str())
            );
        } else {
            assert_eq!(resp.headers()["transfer-encoding"], "chunked");
        }
        let check = verify_body(resp.into_body()).await;
        assert_eq!(check.count, LARGE);
        assert!(check.ok, "the body differs from what the origin sent");
    });
}

fn upload(exact: bool) {
    let _serial = serial();
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (_proxy, addr) = start_proxy(ToOrigin(origin.addr));
    bounded_memory(&rt, &format!("upload exact={exact}"), async move {
        let mut req = Request::post("/upload").header("host", "test");
        if exact {
            req = req.header("content-length", LARGE);
        }
        let req = req.body(PatternBody::new(LARGE, exact)).expect("request");
        let resp = hyper_request(addr, req).await;
        assert_eq!(resp.status(), 200);
        let body = within("upload answer", resp.into_body().collect())
            .await
            .expect("body")
            .to_bytes();
        assert_eq!(body, format!("{LARGE} OK"));
    });
}

#[test]
fn large_download_with_length_streams() {
    download(true);
}

#[test]
fn large_download_chunked_streams() {
    download(false);
}

#[test]
fn large_upload_with_length_streams() {
    upload(true);
}

#[test]
fn large_upload_chunked_streams() {
    upload(false);
}

/// Echoes `size` bytes through the proxy, sending and receiving at once; returns how much of
/// the request body had been produced when the first echoed byte arrived.
fn duplex_echo(size: u64) -> u64 {
    let _serial = serial();
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (_proxy, addr) = start_proxy(ToOrigin(origin.addr));
    rt.block_on(async move {
        let body = PatternBody::new(size, false);
        let produced = body.produced.clone();
        let req = Request::post("/echo")
            .header("host", "test")
            .body(body)
            .expect("request");
        let resp = hyper_request(addr, req).await;
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut check = Verifier::default();
        let mut produced_at_first_byte = None;
        while let Some(frame) = within("echoed body", body.frame()).await {
            let frame = frame.expect("frame");
            if let Some(data) = frame.data_ref() {
                if produced_at_first_byte.is_none() && !data.is_empty() {
                    produced_at_first_byte = Some(produced.load(Ordering::SeqCst));
                }
                check.feed(data);
            }
        }
        assert_eq!(check.count, size);
        assert!(check.ok, "the echo differs from what was sent");
        produced_at_first_byte.expect("some body")
    })
}

#[test]
fn duplex_echo_of_4_mib_is_exact() {
    duplex_echo(4 * 1024 * 1024);
}

#[test]
fn full_duplex_echo_of_32_mib_streams_both_ways_at_once() {
    const SIZE: u64 = 32 * 1024 * 1024;
    let at_first = duplex_echo(SIZE);
    // The echo started while most of the request body was still to be sent.
    assert!(
        at_first < SIZE / 2,
        "first echo byte after {at_first} bytes"
    );
}

// === body filters ===

/// Body filters chosen by the request's `x-filter` field:
/// * `upper`: the request body is uppercased on its way up;
/// * `double`: every response byte is doubled, `Content-Length` replaced by
///   `Transfer-Encoding: chunked` (as Pingora's modify_response example does);
/// * `double-close`: the same with `Content-Length` only removed: the body then ends when the
///   connection closes;
/// * `drop`: response pieces starting with "DROP" are dropped; every piece seen is
///   acknowledged on `seen`;
/// * `delay`: the first response piece is held for [`DELAY`].
struct Filters {
    origin: SocketAddr,
    seen: mpsc::UnboundedSender<()>,
}

const DELAY: Duration = Duration::from_millis(300);

#[derive(Default)]
struct FilterCtx {
    mode: String,
    delayed: bool,
}

#[async_trait]
impl ProxyHttp for Filters {
    type CTX = FilterCtx;
    fn new_ctx(&self) -> FilterCtx {
        FilterCtx::default()
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut FilterCtx,
    ) -> Result<Box<HttpPeer>> {
        ctx.mode = session
            .get_header("x-filter")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }

    async fn request_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        _: bool,
        ctx: &mut FilterCtx,
    ) -> Result<()> {
        if ctx.mode == "upper" {
            if let Some(data) = body {
                *data = Bytes::from(data.to_ascii_uppercase());
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut FilterCtx,
    ) -> Result<()> {
        if ctx.mode.starts_with("double") {
            resp.remove_header("content-length");
        }
        if ctx.mode == "double" {
            resp.insert_header("transfer-encoding", "chunked")?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _: &mut Session,
        body: &mut Option<Bytes>,
        _: bool,
        ctx: &mut FilterCtx,
    ) -> Result<Option<Duration>> {
        if ctx.mode.starts_with("double") {
            if let Some(data) = body {
                *data = data
                    .iter()
                    .flat_map(|&b| [b, b])
                    .collect::<Vec<u8>>()
                    .into();
            }
        }
        if ctx.mode == "drop" {
            if let Some(data) = body.as_ref().filter(|d| !d.is_empty()) {
                if data.starts_with(b"DROP") {
                    *body = None;
                }
                let _ = self.seen.send(());
            }
        }
        if ctx.mode == "delay" && !ctx.delayed && body.is_some() {
            ctx.delayed = true;
            return Ok(Some(DELAY));
        }
        Ok(None)
    }
}

fn filters_proxy(
    rt: &tokio::runtime::Runtime,
    origin: Option<SocketAddr>,
) -> (TestServer, SocketAddr, mpsc::UnboundedReceiver<()>) {
    let origin = origin.unwrap_or_else(|| hyper_origin(rt, standard_routes).addr);
    let (tx, rx) = mpsc::unbounded_channel();
    let (proxy, addr) = start_proxy(Filters { origin, seen: tx });
    (proxy, addr, rx)
}

#[test]
fn request_body_filter_rewrites_what_the_origin_gets() {
    let _serial = serial();
    let rt = runtime();
    let (_proxy, addr, _) = filters_proxy(&rt, None);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let req = post("/echo", b"hello world");
        let req = String::from_utf8(req)
            .expect("text")
            .replace("Host: test\r\n", "Host: test\r\nx-filter: upper\r\n");
        let resp = client.roundtrip(req).await;
        assert_eq!(resp.head.status(), 200, "{:?}", resp.head);
        assert_eq!(resp.text(), "HELLO WORLD");
        // A chunked body in several pieces, each rewritten.
        client
            .send("POST /echo HTTP/1.1\r\nHost: t\r\nx-filter: upper\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n")
            .await;
        client.send("3\r\nxyz\r\n0\r\n\r\n").await;
        let resp = client.read_response("POST").await;
        assert_eq!(resp.text(), "ABCDXYZ");
    });
}

#[test]
fn response_body_filter_changing_the_length_goes_chunked() {
    let _serial = serial();
    let rt = runtime();
    let (_proxy, addr, _) = filters_proxy(&rt, None);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client
            .roundtrip(get("/hello", "x-filter: double\r\n"))
            .await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.head.get("content-length"), None);
        assert_eq!(resp.head.get("transfer-encoding"), Some("chunked"));
        assert_eq!(resp.text(), "hheelllloo");
        // The connection is still good for another request.
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!(resp.text(), "hello");

        // Without any framing left, the body is delimited by closing the connection.
        let mut client = RawConn::connect(addr).await;
        let resp = client
            .roundtrip(get("/hello", "x-filter: double-close\r\n"))
            .await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.head.get("content-length"), None);
        assert_eq!(resp.head.get("transfer-encoding"), None);
        assert_eq!(resp.head.get("connection"), Some("close"));
        assert_eq!(resp.text(), "hheelllloo");
    });
}

#[test]
fn response_body_filter_dropping_a_piece() {
    let _serial = serial();
    let rt = runtime();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel::<()>();
    let ack_rx = Arc::new(tokio::sync::Mutex::new(ack_rx));
    // Sends three chunks, each only once the proxy's filter saw the one before, so that the
    // pieces the filter sees are exactly the chunks.
    let origin = raw_origin(&rt, move |mut conn, _| {
        let acks = ack_rx.clone();
        async move {
            let _ = conn.read_request().await;
            conn.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nkeep1 \r\n")
                .await;
            let mut acks = acks.lock().await;
            within("ack 1", acks.recv()).await.expect("ack");
            conn.send("9\r\nDROP this\r\n").await;
            within("ack 2", acks.recv()).await.expect("ack");
            conn.send("5\r\nkeep2\r\n0\r\n\r\n").await;
            let _ = conn.read_request().await;
        }
    });
    let (tx, mut seen) = mpsc::unbounded_channel();
    let (_proxy, addr) = start_proxy(Filters {
        origin: origin.addr,
        seen: tx,
    });
    rt.block_on(async move {
        let relay = tokio::spawn(async move {
            while seen.recv().await.is_some() {
                let _ = ack_tx.send(());
            }
        });
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/", "x-filter: drop\r\n")).await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "keep1 keep2");
        relay.abort();
    });
}

#[test]
fn response_body_filter_delay_holds_the_body() {
    let _serial = serial();
    let rt = runtime();
    let (_proxy, addr, _) = filters_proxy(&rt, None);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let started = Instant::now();
        let resp = client.roundtrip(get("/hello", "x-filter: delay\r\n")).await;
        let elapsed = started.elapsed();
        assert_eq!(resp.text(), "hello");
        assert!(elapsed >= DELAY, "answered after {elapsed:?}");
    });
}
