//! Bodies for the end-to-end tests: the hyper origin and its routes, a verifiable byte
//! pattern (a body that produces it, a checker), a hyper client, and memory sampling.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

use super::{raw_origin, within, Origin};

// === the hyper origin ===

/// The body type of the hyper origin's responses.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// A whole body.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// Starts a hyper HTTP/1 origin answering with `handler`.
pub fn hyper_origin<F, Fut>(rt: &Runtime, handler: F) -> Origin
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    raw_origin(rt, move |conn, _| {
        let handler = handler.clone();
        async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, Infallible>(handler(req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(conn.stream), service)
                .await;
        }
    })
}

/// The routes of the standard hyper origin:
/// * `/hello`: "hello";
/// * `/headers`: the request fields, one `name: value` line each, in order;
/// * `/echo`: the request body streamed back as it arrives;
/// * `/upload`: reads the body, checks it against the pattern, answers "COUNT OK|BAD", and
///   `x-saw-expect` with the request's `Expect`;
/// * `/download/N` (Content-Length) and `/download-chunked/N`: N bytes of the pattern;
/// * `/status/CODE`: an empty response with that status.
pub async fn standard_routes(req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let reply = |status: u16, body: Body| {
        Response::builder()
            .status(status)
            .body(body)
            .expect("a valid response")
    };
    if path == "/hello" {
        return reply(200, full("hello"));
    }
    if path == "/headers" {
        let mut text = String::new();
        for (name, value) in req.headers() {
            text.push_str(&format!("{}: {}\n", name, value.to_str().unwrap_or("?")));
        }
        return reply(200, full(text));
    }
    if path == "/echo" {
        return reply(200, req.into_body().boxed());
    }
    if path == "/upload" {
        let expect = req
            .headers()
            .get("expect")
            .map(|v| v.to_str().unwrap_or("?").to_string())
            .unwrap_or_else(|| "none".to_string());
        let mut body = req.into_body();
        let mut check = Verifier::default();
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        check.feed(data);
                    }
                }
                Err(_) => return reply(400, full("broken body")),
            }
        }
        let mut resp = reply(
            200,
            full(format!(
                "{} {}",
                check.count,
                if check.ok { "OK" } else { "BAD" }
            )),
        );
        resp.headers_mut()
            .insert("x-saw-expect", expect.parse().expect("a header value"));
        return resp;
    }
    if let Some(n) = path.strip_prefix("/download/") {
        let n: u64 = n.parse().expect("a length");
        let mut resp = reply(200, PatternBody::new(n, true).boxed_hyper());
        resp.headers_mut().insert("content-length", n.into());
        return resp;
    }
    if let Some(n) = path.strip_prefix("/download-chunked/") {
        let n: u64 = n.parse().expect("a length");
        return reply(200, PatternBody::new(n, false).boxed_hyper());
    }
    if let Some(code) = path.strip_prefix("/status/") {
        return reply(code.parse().expect("a status"), full(Bytes::new()));
    }
    reply(404, full("not found"))
}

// === the body pattern ===

/// The period of the pattern: a prime, so that it never lines up with buffer sizes.
const PERIOD: usize = 65521;

/// Two periods of pseudo-random bytes, so that any window of up to one period starting in the
/// first is contiguous.
static PATTERN: LazyLock<Bytes> = LazyLock::new(|| {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut period = Vec::with_capacity(PERIOD);
    for _ in 0..PERIOD {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        period.push((state >> 24) as u8);
    }
    let mut two = period.clone();
    two.extend_from_slice(&period);
    Bytes::from(two)
});

/// `len` bytes of the pattern starting at stream offset `offset` (`len` at most one period).
pub fn pattern_slice(offset: u64, len: usize) -> Bytes {
    assert!(len <= PERIOD);
    let start = (offset % PERIOD as u64) as usize;
    PATTERN.slice(start..start + len)
}

/// `len` bytes of the pattern from offset 0, as one buffer.
pub fn pattern_vec(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let n = (len - out.len()).min(PERIOD);
        out.extend_from_slice(&pattern_slice(out.len() as u64, n));
    }
    out
}

/// Checks a stream of bytes against the pattern, counting them.
#[derive(Debug, Clone)]
pub struct Verifier {
    /// Bytes seen.
    pub count: u64,
    /// Every byte matched the pattern.
    pub ok: bool,
}

impl Default for Verifier {
    fn default() -> Self {
        Verifier { count: 0, ok: true }
    }
}

impl Verifier {
    /// Checks the next bytes of the stream.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let n = data.len().min(PERIOD);
            if data[..n] != pattern_slice(self.count, n)[..] {
                self.ok = false;
            }
            self.count += n as u64;
            data = &data[n..];
        }
    }
}

/// A body of `len` pattern bytes produced in 60000-byte frames, announcing its length or not.
#[derive(Debug)]
pub struct PatternBody {
    sent: u64,
    len: u64,
    exact: bool,
    /// Bytes produced so far, shared with the test.
    pub produced: Arc<AtomicU64>,
}

impl PatternBody {
    /// A body of `len` bytes; `exact` announces the length (Content-Length), else chunked.
    pub fn new(len: u64, exact: bool) -> Self {
        PatternBody {
            sent: 0,
            len,
            exact,
            produced: Arc::new(AtomicU64::new(0)),
        }
    }

    /// As the hyper origin's body type.
    pub fn boxed_hyper(self) -> Body {
        self.map_err(|never: Infallible| match never {}).boxed()
    }
}

impl hyper::body::Body for PatternBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let left = self.len - self.sent;
        if left == 0 {
            return Poll::Ready(None);
        }
        let n = left.min(60_000) as usize;
        let data = pattern_slice(self.sent, n);
        self.sent += n as u64;
        self.produced.store(self.sent, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.sent == self.len
    }

    fn size_hint(&self) -> SizeHint {
        if self.exact {
            SizeHint::with_exact(self.len - self.sent)
        } else {
            SizeHint::default()
        }
    }
}

// === a hyper client ===

/// Sends `req` to `addr` on a new connection; returns the response head and its body stream.
pub async fn hyper_request<B>(addr: SocketAddr, req: Request<B>) -> Response<Incoming>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    within("response head", sender.send_request(req))
        .await
        .expect("response")
}

/// Reads `body` to its end, checking it against the pattern.
pub async fn verify_body(mut body: Incoming) -> Verifier {
    let mut check = Verifier::default();
    while let Some(frame) = within("response body", body.frame()).await {
        let frame = frame.expect("body frame");
        if let Some(data) = frame.data_ref() {
            check.feed(data);
        }
    }
    check
}

// === memory ===

/// The resident set size of this process, in bytes.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a VmRSS line")
        * 1024
}

/// Samples the resident set size every 5 ms on a thread, keeping the peak.
#[derive(Debug)]
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    /// Starts sampling.
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(rss_bytes()));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(rss_bytes(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        RssSampler {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; returns the peak.
    pub fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("sampler thread");
        }
        self.peak.load(Ordering::SeqCst).max(rss_bytes())
    }
}
