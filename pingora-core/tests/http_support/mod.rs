//! Helpers for the HTTP server integration tests: the echo applications they serve, and the
//! shared helpers of `pingora-test-support` they use (a listening service on the test's own
//! runtime on an ephemeral loopback port, a raw HTTP/1 client that reads responses as they are
//! on the wire).

#![allow(dead_code)]

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
use pingora_http::ResponseHeader;
use pingora_test_support::{TestService, TIMEOUT};
use tokio::sync::mpsc;

/// Starts a service answering with the echo application under `options`.
pub(crate) async fn echo_server(options: Option<HttpServerOptions>) -> (TestService, EchoEvents) {
    let (app, events) = Echo::new();
    (echo_app_server(app, options).await, events)
}

/// Starts a service answering with `app` under `options`.
pub(crate) async fn echo_app_server(app: Echo, options: Option<HttpServerOptions>) -> TestService {
    let mut http = HttpServer::new_app(app);
    http.server_options = options;
    TestService::start(http).await
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
///   address), `x-echo-body-len`, `x-echo-header-names`: the request header names, comma
///   separated, spelled as the server recorded them, and `x-echo-host`: the `Host` values,
///   comma separated;
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
        let hosts: Vec<String> = req
            .headers
            .get_all(http::header::HOST)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
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
            .header("x-echo-host", hosts.join(","))
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

/// Options with `f` applied to the defaults.
pub(crate) fn options(f: impl FnOnce(&mut HttpServerOptions)) -> Option<HttpServerOptions> {
    let mut options = HttpServerOptions::default();
    f(&mut options);
    Some(options)
}
