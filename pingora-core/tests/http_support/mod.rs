//! Helpers for the HTTP server integration tests: a listening service run on the test's own
//! runtime on an ephemeral loopback port, echo applications, and a raw HTTP/1 client that
//! reads responses byte by byte as they are on the wire.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::Response;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::apps::{
    HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream, ServerApp,
};
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::listening::Service;
use pingora_core::services::Service as _;
use pingora_http::ResponseHeader;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How long any single wait in a test may take before the test fails.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

// === TestServer ===

/// A listening service on `127.0.0.1:0`, run as a task of the test's runtime.
pub(crate) struct TestServer {
    /// The address the service is bound to.
    pub(crate) addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl TestServer {
    /// Starts serving connections with `app`; returns once the port is bound.
    pub(crate) async fn start<A: ServerApp + Send + Sync + 'static>(app: A) -> TestServer {
        let mut service = Service::new("http test".to_string(), app);
        service.add_tcp("127.0.0.1:0");
        let addrs = service.local_addrs();
        let (shutdown, watch) = watch::channel(false);
        let task = tokio::spawn(async move { service.start_service(None, watch, 1).await });
        let bound = tokio::time::timeout(TIMEOUT, addrs.wait())
            .await
            .expect("binding timed out")
            .expect("binding failed");
        let addr = *bound[0].as_inet().expect("a TCP endpoint");
        TestServer {
            addr,
            shutdown,
            task,
        }
    }

    /// Starts serving with the echo application under `options`.
    pub(crate) async fn echo(options: Option<HttpServerOptions>) -> (TestServer, EchoEvents) {
        let (app, events) = Echo::new();
        (TestServer::echo_app(app, options).await, events)
    }

    /// Starts serving with `app` under `options`.
    pub(crate) async fn echo_app(app: Echo, options: Option<HttpServerOptions>) -> TestServer {
        let mut http = HttpServer::new_app(app);
        http.server_options = options;
        TestServer::start(http).await
    }

    /// A new raw client connection.
    pub(crate) async fn connect(&self) -> RawConn<TcpStream> {
        RawConn::connect(self.addr).await
    }

    /// Starts a graceful shutdown (what the server does on SIGTERM) without waiting for it.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Shuts the service down gracefully and waits until it has finished.
    pub(crate) async fn stop(self) {
        self.begin_shutdown();
        tokio::time::timeout(TIMEOUT, self.task)
            .await
            .expect("the service did not stop")
            .expect("the service task panicked");
    }
}

// === Echo ===

/// What the echo application saw of one request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BodyEvent {
    pub(crate) path: String,
    /// The body length, or the [`pingora_error::ErrorType`] of the error reading it with the
    /// number of bytes read before.
    pub(crate) outcome: Result<usize, (&'static str, usize)>,
}

/// The receiving end of an echo application's events.
pub(crate) type EchoEvents = mpsc::UnboundedReceiver<BodyEvent>;

/// Waits for the next body event.
pub(crate) async fn next_event(events: &mut EchoEvents) -> BodyEvent {
    tokio::time::timeout(TIMEOUT, events.recv())
        .await
        .expect("no body event")
        .expect("the echo app is gone")
}

/// A [`ServeHttp`] application that reads the whole request body and answers 200 with:
///
/// * `x-echo-method`, `x-echo-path` (raw), `x-echo-version`, `x-echo-peer` (the client's
///   address), `x-echo-body-len`, and `x-echo-header-names`: the request header names, comma
///   separated, spelled as the server recorded them;
/// * the request body as the response body, or `"METHOD path\n"` when it is empty.
///
/// A body that cannot be read is answered with 400 and `x-echo-error: <ErrorType>`.
pub(crate) struct Echo {
    events: mpsc::UnboundedSender<BodyEvent>,
    /// Applied to each session before its body is read.
    pub(crate) read_timeout: Option<Duration>,
    /// Applied to each session before its body is read.
    pub(crate) keepalive: Option<u64>,
}

impl Echo {
    pub(crate) fn new() -> (Echo, EchoEvents) {
        let (events, rx) = mpsc::unbounded_channel();
        let echo = Echo {
            events,
            read_timeout: None,
            keepalive: None,
        };
        (echo, rx)
    }
}

#[async_trait]
impl ServeHttp for Echo {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        if let Some(timeout) = self.read_timeout {
            session.set_read_timeout(Some(timeout));
        }
        if let Some(keepalive) = self.keepalive {
            session.set_keepalive(Some(keepalive));
        }
        let req = session.req_header();
        let method = req.method.to_string();
        let path = String::from_utf8_lossy(req.raw_path()).into_owned();
        let version = format!("{:?}", req.version);
        let names: Vec<String> = req
            .case_header_iter()
            .map(|(name, _)| String::from_utf8_lossy(name.as_slice()).into_owned())
            .collect();
        let peer = session
            .client_addr()
            .map(ToString::to_string)
            .unwrap_or_default();

        let mut body = Vec::new();
        let outcome = loop {
            match session.read_request_body().await {
                Ok(Some(piece)) => body.extend_from_slice(&piece),
                Ok(None) => break Ok(body.len()),
                Err(e) => break Err((e.etype().as_str(), body.len())),
            }
        };
        let _ = self.events.send(BodyEvent {
            path: path.clone(),
            outcome,
        });
        let builder = Response::builder()
            .header("x-echo-method", &method)
            .header("x-echo-path", &path)
            .header("x-echo-version", version)
            .header("x-echo-peer", peer)
            .header("x-echo-header-names", names.join(","))
            .header("x-echo-body-len", body.len().to_string());
        let builder = match outcome {
            Ok(_) => builder.status(200),
            Err((etype, _)) => builder.status(400).header("x-echo-error", etype),
        };
        if body.is_empty() && outcome.is_ok() {
            body = format!("{method} {path}\n").into_bytes();
        }
        builder.body(body).expect("a valid response")
    }
}

// === StreamEcho ===

/// An [`HttpServerApp`] that answers 200 at once, before reading the request body, then
/// streams the body back chunked as it arrives. Its head carries `X-Custom-Header: pingora`
/// with that spelling. On a body error it closes the connection.
#[derive(Debug, Default)]
pub(crate) struct StreamEcho;

#[async_trait]
impl HttpServerApp for StreamEcho {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        if !session.read_request().await.ok()? {
            return None;
        }
        let mut resp = ResponseHeader::build(200, None).expect("valid status");
        resp.insert_header("X-Custom-Header", "pingora").ok()?;
        resp.insert_header("Transfer-Encoding", "chunked").ok()?;
        session.write_response_header(Box::new(resp)).await.ok()?;
        loop {
            match session.read_request_body().await {
                Ok(Some(piece)) => session.write_response_body(piece, false).await.ok()?,
                Ok(None) => break,
                Err(_) => {
                    session.shutdown().await;
                    return None;
                }
            }
        }
        session.write_response_body(Bytes::new(), true).await.ok()?;
        let settings = HttpPersistentSettings::for_session(&session);
        let stream = session.finish().await.ok()??;
        Some(ReusedHttpStream::new(stream, Some(settings)))
    }
}

// === Counting ===

/// Serves connections with an [`HttpServer`], counting them.
pub(crate) struct Counting<SV> {
    pub(crate) inner: Arc<HttpServer<SV>>,
    pub(crate) connections: Arc<AtomicUsize>,
}

impl<SV> Counting<SV> {
    pub(crate) fn new(app: SV) -> (Counting<SV>, Arc<AtomicUsize>) {
        let connections = Arc::new(AtomicUsize::new(0));
        let counting = Counting {
            inner: Arc::new(HttpServer::new_app(app)),
            connections: Arc::clone(&connections),
        };
        (counting, connections)
    }
}

#[async_trait]
impl<SV: ServeHttp + Send + Sync + 'static> ServerApp for Counting<SV> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.connections.fetch_add(1, Ordering::SeqCst);
        self.inner.process_new(stream, shutdown).await
    }
}

// === WithReadTimeout ===

/// Runs an [`HttpServer`] with a read timeout set on each session before its request head is
/// read (the only way to bound a slow request head below the 60 s default).
pub(crate) struct WithReadTimeout<SV> {
    pub(crate) inner: Arc<HttpServer<SV>>,
    pub(crate) timeout: Duration,
}

#[async_trait]
impl<SV: ServeHttp + Send + Sync + 'static> HttpServerApp for WithReadTimeout<SV> {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        session.set_read_timeout(Some(self.timeout));
        self.inner.process_new_http(session, shutdown).await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.inner.server_options()
    }
}

// === RawConn ===

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// A clean close: read returned 0.
    Eof,
    /// The server reset the connection.
    Reset,
}

/// A response as it was on the wire.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    /// The status line, without CRLF.
    pub(crate) status_line: String,
    pub(crate) status: u16,
    /// Header fields with their names spelled as on the wire.
    pub(crate) headers: Vec<(String, String)>,
    /// The head, as received.
    pub(crate) head: Vec<u8>,
    /// The decoded body.
    pub(crate) body: Vec<u8>,
    /// Whether the body was chunked and ended with its last chunk.
    pub(crate) chunked_complete: bool,
}

impl RawResponse {
    /// The value of header `name` (any case); panics if it appears more than once.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let mut found = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str());
        let first = found.next();
        assert!(found.next().is_none(), "{name} appears more than once");
        first
    }
}

/// A raw HTTP/1 client connection (or its reading half) with a read buffer.
pub(crate) struct RawConn<S> {
    pub(crate) stream: S,
    buf: Vec<u8>,
}

impl RawConn<TcpStream> {
    pub(crate) async fn connect(addr: SocketAddr) -> RawConn<TcpStream> {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect failed");
        RawConn::new(stream)
    }
}

impl<S: AsyncWrite + Unpin> RawConn<S> {
    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(TIMEOUT, self.stream.write_all(bytes))
            .await
            .expect("write timed out")
            .expect("write failed");
    }
}

impl<S: AsyncRead + Unpin> RawConn<S> {
    /// Reads responses from `stream`.
    pub(crate) fn new(stream: S) -> RawConn<S> {
        RawConn {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; `Err` when the connection ended.
    async fn fill(&mut self) -> Result<(), Closed> {
        let mut chunk = [0u8; 16 * 1024];
        let n = tokio::time::timeout(TIMEOUT, self.stream.read(&mut chunk))
            .await
            .expect("read timed out: the server neither answered nor closed");
        match n {
            Ok(0) => Err(Closed::Eof),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Err(Closed::Reset),
            Err(e) => panic!("read failed: {e}"),
        }
    }

    async fn need(&mut self, n: usize) {
        while self.buf.len() < n {
            if let Err(closed) = self.fill().await {
                panic!(
                    "connection closed ({closed:?}) with {} of {n} bytes: {:?}",
                    self.buf.len(),
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Takes exactly `n` bytes.
    pub(crate) async fn take(&mut self, n: usize) -> Vec<u8> {
        self.need(n).await;
        self.buf.drain(..n).collect()
    }

    /// Takes the bytes up to and including the first `pattern`.
    pub(crate) async fn take_until(&mut self, pattern: &[u8]) -> Vec<u8> {
        loop {
            if let Some(pos) = find(&self.buf, pattern) {
                return self.buf.drain(..pos + pattern.len()).collect();
            }
            if let Err(closed) = self.fill().await {
                panic!(
                    "connection closed ({closed:?}) before {:?}; got {:?}",
                    String::from_utf8_lossy(pattern),
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// Reads everything until the server closes; returns the bytes and how it closed.
    pub(crate) async fn read_to_close(&mut self) -> (Vec<u8>, Closed) {
        loop {
            if let Err(closed) = self.fill().await {
                return (std::mem::take(&mut self.buf), closed);
            }
        }
    }

    /// Asserts the server closed the connection cleanly with nothing more sent.
    pub(crate) async fn expect_eof(&mut self) {
        let (rest, closed) = self.read_to_close().await;
        assert_eq!(
            String::from_utf8_lossy(&rest),
            "",
            "unexpected bytes before close"
        );
        assert_eq!(closed, Closed::Eof, "the server reset the connection");
    }

    /// Reads one response to a request that was not `HEAD`.
    pub(crate) async fn response(&mut self) -> RawResponse {
        self.read_response(false).await
    }

    /// Reads one response; `head_request` says it answers a `HEAD` (no body).
    pub(crate) async fn read_response(&mut self, head_request: bool) -> RawResponse {
        let head = self.take_until(b"\r\n\r\n").await;
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut slots);
        let status = parsed.parse(&head).expect("a valid response head");
        assert!(status.is_complete());
        let code = parsed.code.expect("a status code");
        let status_line =
            String::from_utf8_lossy(&head[..find(&head, b"\r\n").unwrap()]).into_owned();
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let mut resp = RawResponse {
            status_line,
            status: code,
            headers,
            head,
            body: Vec::new(),
            chunked_complete: false,
        };
        if head_request || (100..200).contains(&code) || code == 204 || code == 304 {
            return resp;
        }
        if resp
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            self.read_chunked(&mut resp).await;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().expect("a numeric Content-Length");
            resp.body = self.take(len).await;
        } else {
            let (body, closed) = self.read_to_close().await;
            assert_eq!(closed, Closed::Eof, "a body read until close was reset");
            resp.body = body;
        }
        resp
    }

    /// Decodes a chunked body. If the connection closes before the last chunk, returns what
    /// was received with `chunked_complete` false.
    async fn read_chunked(&mut self, resp: &mut RawResponse) {
        loop {
            let Some(line) = self.try_take_until(b"\r\n").await else {
                return;
            };
            let size_str = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
            let size_str = size_str.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_str, 16).expect("a hex chunk size");
            if size == 0 {
                let _trailers = self.take_until(b"\r\n").await;
                resp.chunked_complete = true;
                return;
            }
            let data = self.take(size + 2).await;
            assert_eq!(&data[size..], b"\r\n", "chunk data not followed by CRLF");
            resp.body.extend_from_slice(&data[..size]);
        }
    }

    async fn try_take_until(&mut self, pattern: &[u8]) -> Option<Vec<u8>> {
        loop {
            if let Some(pos) = find(&self.buf, pattern) {
                return Some(self.buf.drain(..pos + pattern.len()).collect());
            }
            self.fill().await.ok()?;
        }
    }
}

/// The position of the first `pattern` in `hay`.
pub(crate) fn find(hay: &[u8], pattern: &[u8]) -> Option<usize> {
    hay.windows(pattern.len()).position(|w| w == pattern)
}

/// Deterministic pseudo-random bytes (xorshift), so large bodies are not all one value.
pub(crate) fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `body` in chunked coding, in chunks of sizes cycling through `sizes`.
pub(crate) fn chunked(body: &[u8], sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / 64 + 16);
    let mut rest = body;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Options with `f` applied to the defaults.
pub(crate) fn options(f: impl FnOnce(&mut HttpServerOptions)) -> Option<HttpServerOptions> {
    let mut options = HttpServerOptions::default();
    f(&mut options);
    Some(options)
}
