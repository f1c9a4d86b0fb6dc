//! HTTP/1 server session cost per request: parse a request head, write a response head and a
//! small body, against the floor of `httparse` alone plus a hand-written response head.
//!
//! The connection is an in-memory stream that is always ready, so the futures are polled by
//! hand and no executor or socket cost is counted. Throughput is reported in requests per second
//! on one core.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use async_trait::async_trait;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pingora_core::protocols::http::v1::server::HttpSession;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, Ssl, TimingDigest, UniqueID,
    UniqueIDType,
};
use pingora_http::ResponseHeader;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A request as a browser sends it: 11 headers, about 600 bytes.
const REQUEST: &[u8] = b"GET /static/app/main.js?v=20261126 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/index.html\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; lang=en\r\n\
Sec-Fetch-Dest: script\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Priority: u=1\r\n\
\r\n";

const BODY: &[u8] = b"console.log('hello');\n";

/// Serves `input` once, then end of file; swallows everything written.
#[derive(Debug)]
struct MemIo {
    input: &'static [u8],
    written: usize,
}

impl AsyncRead for MemIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.input.len().min(buf.remaining());
        buf.put_slice(&self.input[..n]);
        self.input = &self.input[n..];
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MemIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.written += buf.len();
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = bufs.iter().map(|b| b.len()).sum();
        self.written += n;
        Poll::Ready(Ok(n))
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[async_trait]
impl Shutdown for MemIo {
    async fn shutdown(&mut self) {}
}
impl UniqueID for MemIo {
    fn id(&self) -> UniqueIDType {
        0
    }
}
impl Ssl for MemIo {}
impl GetTimingDigest for MemIo {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}
impl GetProxyDigest for MemIo {}
impl GetSocketDigest for MemIo {}
impl Peek for MemIo {}

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future that never waits to completion.
fn run_ready<F: Future>(waker: &Waker, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("an in-memory exchange never waits"),
    }
}

/// One whole exchange through our session.
async fn pingora_exchange() -> usize {
    let io = MemIo {
        input: REQUEST,
        written: 0,
    };
    let mut session = HttpSession::new(Box::new(io));
    session.read_request().await.unwrap().unwrap();
    let mut resp = ResponseHeader::build(200, Some(4)).unwrap();
    resp.insert_header("Content-Type", "application/javascript")
        .unwrap();
    resp.insert_header("Content-Length", BODY.len()).unwrap();
    resp.insert_header("Cache-Control", "max-age=3600").unwrap();
    session.write_response_header(Box::new(resp)).await.unwrap();
    session.write_body(BODY).await.unwrap();
    session.finish_body().await.unwrap();
    session.body_bytes_sent()
}

/// The floor: `httparse` over the same bytes and the same response head written by hand.
fn httparse_floor(out: &mut Vec<u8>) -> usize {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(REQUEST).unwrap() {
        httparse::Status::Complete(len) => len,
        httparse::Status::Partial => unreachable!("the request is complete"),
    };
    out.clear();
    out.extend_from_slice(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/javascript\r\nContent-Length: ",
    );
    out.extend_from_slice(itoa::Buffer::new().format(BODY.len()).as_bytes());
    out.extend_from_slice(
        b"\r\nCache-Control: max-age=3600\r\nDate: Thu, 26 Nov 2026 23:00:00 GMT\r\n\r\n",
    );
    out.extend_from_slice(BODY);
    len + req.headers.len()
}

fn bench(c: &mut Criterion) {
    let waker = Waker::from(Arc::new(NoopWake));
    let mut group = c.benchmark_group("h1_exchange");
    group.throughput(Throughput::Elements(1));
    group.bench_function("pingora_session", |b| {
        b.iter(|| run_ready(&waker, pingora_exchange()))
    });
    let mut out = Vec::with_capacity(512);
    group.bench_function("httparse_floor", |b| b.iter(|| httparse_floor(&mut out)));
    group.bench_function("request_parse_only/httparse", |b| {
        b.iter_batched(
            || Bytes::from_static(REQUEST),
            |bytes| {
                let mut headers = [httparse::EMPTY_HEADER; 32];
                let mut req = httparse::Request::new(&mut headers);
                req.parse(&bytes).unwrap().is_complete()
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
