//! Support for the end-to-end proxy tests: a proxy launcher, in-process origins (hyper and
//! scripted raw TCP), raw HTTP/1 connections for both sides, a verifiable body pattern, and
//! memory sampling. Every wait is bounded by [`STEP`].

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Server;
use pingora_proxy::{ProxyHttp, ProxyServiceBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

use crate::utils::TestServer;

mod bodies;
mod http2;
mod recorder;

pub use bodies::*;
pub use http2::*;
pub use recorder::*;

/// How long any single step may take before the test fails.
pub const STEP: Duration = Duration::from_secs(10);

/// A shared, ordered record of events.
pub type Log = Arc<Mutex<Vec<String>>>;

/// Appends `event` to `log`.
pub fn record(log: &Log, event: impl Into<String>) {
    log.lock().expect("log lock").push(event.into());
}

/// A copy of the events in `log`.
pub fn events(log: &Log) -> Vec<String> {
    log.lock().expect("log lock").clone()
}

/// Runs `fut`, failing the test if it takes longer than [`STEP`].
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {STEP:?}: {what}"),
    }
}

/// A runtime for the origins and clients of one test.
pub fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

// === the proxy ===

/// Starts a proxy running `app` with the default configuration.
pub fn start_proxy<SV>(app: SV) -> (TestServer, SocketAddr)
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    start_proxy_with(app, ServerConf::default(), None)
}

/// Starts a proxy running `app` with `conf` (for the connector and retry settings) and
/// `options` for serving clients.
pub fn start_proxy_with<SV>(
    app: SV,
    conf: ServerConf,
    options: Option<HttpServerOptions>,
) -> (TestServer, SocketAddr)
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let conf = Arc::new(conf);
    let (server, addrs) = TestServer::start(move |server: &mut Server| {
        let mut builder = ProxyServiceBuilder::new(&conf, app);
        if let Some(options) = options {
            builder = builder.server_options(options);
        }
        let mut service = builder.build();
        service.add_tcp("127.0.0.1:0");
        let addrs = service.local_addrs();
        server.add_service(service);
        vec![addrs]
    });
    (server, addrs[0])
}

/// An address where nothing listens (bound, noted, closed).
pub fn dead_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("local addr")
}

// === raw HTTP/1 connections ===

/// A message head: the start line and the fields in order.
#[derive(Debug, Clone)]
pub struct Head {
    /// The request or status line.
    pub line: String,
    /// The fields, names as sent.
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The status code of a response head.
    pub fn status(&self) -> u16 {
        self.line
            .get(9..12)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {:?}", self.line))
    }

    /// The first value of field `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The lowercased field names, in order.
    pub fn names(&self) -> Vec<String> {
        self.headers
            .iter()
            .map(|(n, _)| n.to_ascii_lowercase())
            .collect()
    }

    /// The method of a request head.
    pub fn method(&self) -> &str {
        self.line.split(' ').next().unwrap_or("")
    }

    /// The target of a request head.
    pub fn target(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or("")
    }

    fn framing(&self) -> BodyFraming {
        if self
            .get("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            BodyFraming::Chunked
        } else if let Some(n) = self.get("content-length") {
            BodyFraming::Length(n.trim().parse().expect("a numeric Content-Length"))
        } else {
            BodyFraming::None
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum BodyFraming {
    Chunked,
    Length(usize),
    None,
}

/// A request or a final response with its body.
#[derive(Debug, Clone)]
pub struct Message {
    /// Informational (1xx) heads received before the final one (responses only).
    pub interim: Vec<Head>,
    /// The head.
    pub head: Head,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Message {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One TCP connection spoken to in raw HTTP/1, as client or as origin.
#[derive(Debug)]
pub struct Conn {
    /// The connection.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    /// Wraps an accepted or connected stream.
    pub fn new(stream: TcpStream) -> Self {
        Conn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        Conn::new(stream)
    }

    /// Writes `bytes` whole.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        within("write", self.stream.write_all(bytes.as_ref()))
            .await
            .expect("write");
    }

    /// Reads more bytes into the buffer; 0 at EOF (a reset counts as EOF).
    async fn fill(&mut self) -> usize {
        let mut chunk = vec![0u8; 64 * 1024];
        let n = within("read", self.stream.read(&mut chunk))
            .await
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads a head; `None` if the peer closed before sending a byte of it.
    ///
    /// # Panics
    /// If the peer closes in the middle of a head.
    pub async fn read_head(&mut self) -> Option<Head> {
        let head = self.try_read_head().await;
        assert!(
            head.is_some() || self.buf.is_empty(),
            "connection closed in the middle of a head: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        head
    }

    async fn try_read_head(&mut self) -> Option<Head> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                let text = String::from_utf8_lossy(&raw[..end]).into_owned();
                let mut lines = text.split("\r\n");
                let line = lines.next().unwrap_or_default().to_string();
                let headers = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.to_string(), v.trim().to_string()))
                    .collect();
                return Some(Head { line, headers });
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// Reads exactly `n` bytes.
    ///
    /// # Panics
    /// If the peer closes first.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        self.try_read_exact(n)
            .await
            .expect("closed in the middle of a body")
    }

    async fn try_read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill().await == 0 {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }

    /// Reads until the peer closes.
    pub async fn read_to_end(&mut self) -> Vec<u8> {
        while self.fill().await > 0 {}
        std::mem::take(&mut self.buf)
    }

    async fn try_read_line(&mut self) -> Option<String> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 2).collect();
                return Some(String::from_utf8_lossy(&raw[..end]).into_owned());
            }
            if self.fill().await == 0 {
                return None;
            }
        }
    }

    /// Reads a chunked body, trailers discarded; `None` if it is cut short or malformed.
    async fn try_read_chunked(&mut self) -> Option<Vec<u8>> {
        self.try_read_chunked_with_trailers()
            .await
            .map(|(body, _)| body)
    }

    /// Reads a chunked body and its trailer fields (name as sent, value trimmed); `None` if it
    /// is cut short or malformed.
    async fn try_read_chunked_with_trailers(&mut self) -> Option<(Vec<u8>, Vec<(String, String)>)> {
        let mut body = Vec::new();
        loop {
            let line = self.try_read_line().await?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16).ok()?;
            if size == 0 {
                let mut trailers = Vec::new();
                loop {
                    let line = self.try_read_line().await?;
                    if line.is_empty() {
                        return Some((body, trailers));
                    }
                    let (name, value) = line.split_once(':')?;
                    trailers.push((name.to_string(), value.trim().to_string()));
                }
            }
            body.extend(self.try_read_exact(size).await?);
            if !self.try_read_line().await?.is_empty() {
                return None;
            }
        }
    }

    /// Reads a chunked body, trailers discarded.
    ///
    /// # Panics
    /// If the body is cut short or malformed.
    pub async fn read_chunked(&mut self) -> Vec<u8> {
        self.try_read_chunked()
            .await
            .expect("a complete chunked body")
    }

    async fn try_read_body(&mut self, framing: BodyFraming, until_close: bool) -> Option<Vec<u8>> {
        match framing {
            BodyFraming::Chunked => self.try_read_chunked().await,
            BodyFraming::Length(n) => self.try_read_exact(n).await,
            BodyFraming::None if until_close => Some(self.read_to_end().await),
            BodyFraming::None => Some(Vec::new()),
        }
    }

    /// Reads a request with its body; `None` if the peer closed (or broke the framing) first.
    pub async fn read_request(&mut self) -> Option<Message> {
        let head = self.try_read_head().await?;
        let body = self.try_read_body(head.framing(), false).await?;
        Some(Message {
            interim: Vec::new(),
            head,
            body,
        })
    }

    /// Reads a request with its body and, for a chunked one, its trailer fields; `None` if the
    /// peer closed (or broke the framing) first.
    pub async fn read_request_with_trailers(&mut self) -> Option<(Message, Vec<(String, String)>)> {
        let head = self.try_read_head().await?;
        let (body, trailers) = match head.framing() {
            BodyFraming::Chunked => self.try_read_chunked_with_trailers().await?,
            framing => (self.try_read_body(framing, false).await?, Vec::new()),
        };
        let message = Message {
            interim: Vec::new(),
            head,
            body,
        };
        Some((message, trailers))
    }

    /// Reads a response (1xx heads collected in `interim`) to a request of `method`.
    pub async fn read_response(&mut self, method: &str) -> Message {
        let mut interim = Vec::new();
        loop {
            let head = self.read_head().await.expect("a response, not EOF");
            let status = head.status();
            if (100..200).contains(&status) && status != 101 {
                interim.push(head);
                continue;
            }
            let bodiless = method == "HEAD" || status == 204 || status == 304 || status == 101;
            let body = if bodiless {
                Vec::new()
            } else {
                self.try_read_body(head.framing(), true)
                    .await
                    .expect("a complete response body")
            };
            return Message {
                interim,
                head,
                body,
            };
        }
    }

    /// Sends `request` and reads the response to it.
    pub async fn roundtrip(&mut self, request: impl AsRef<[u8]>) -> Message {
        let request = request.as_ref();
        let method = String::from_utf8_lossy(request)
            .split(' ')
            .next()
            .unwrap_or_default()
            .to_string();
        self.send(request).await;
        self.read_response(&method).await
    }

    /// Whether the peer closed the connection (EOF or reset) with nothing more to read.
    pub async fn is_closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.fill().await == 0
    }

    /// Bytes received but not consumed yet.
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }
}

/// A GET of `path` with the given extra header lines.
pub fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}\r\n")
}

/// A POST of `body` to `path` with a Content-Length.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

// === raw origins ===

/// An origin listening on a loopback port.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub connections: Arc<AtomicUsize>,
}

impl Origin {
    /// Connections accepted so far.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Starts an origin that runs `script(connection, index)` for each connection it accepts,
/// `index` counting from 0.
pub fn raw_origin<F, Fut>(rt: &Runtime, script: F) -> Origin
where
    F: Fn(Conn, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind origin");
    let addr = listener.local_addr().expect("origin addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    rt.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let index = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(script(Conn::new(stream), index));
        }
    });
    Origin { addr, connections }
}

/// A response with `body` and a Content-Length, keeping the connection.
pub fn ok_response(body: &[u8]) -> Vec<u8> {
    let mut resp =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    resp.extend_from_slice(body);
    resp
}

/// Serves every request on `conn` with `200` and the body "ok", recording each request head
/// in `seen` (as "METHOD target body-length").
pub async fn serve_ok(mut conn: Conn, seen: Arc<Mutex<Vec<String>>>) {
    while let Some(req) = conn.read_request().await {
        seen.lock().expect("seen lock").push(format!(
            "{} {} {}",
            req.head.method(),
            req.head.target(),
            req.body.len()
        ));
        conn.send(ok_response(b"ok")).await;
    }
}

// === curl ===

/// Runs curl with `args`, everything it received (all heads, then the body) on stdout.
pub fn curl_raw(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "-o", "/dev/stdout"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
