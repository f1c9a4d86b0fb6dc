//! Applications: what a service does with each connection it accepts.
//!
//! * [`ServerApp`] gets raw connections (TCP, Unix or TLS streams), for any protocol.
//! * [`HttpServerApp`] gets HTTP sessions; every `HttpServerApp` is a `ServerApp` that reads
//!   requests off the connection and serves them one after another while the connection is
//!   kept alive.
//! * [`http_app::ServeHttp`] is the simplest HTTP application: a function from a request to a
//!   response, run by [`http_app::HttpServer`].

mod h2_conn;
mod h2c;
pub mod http_app;

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use log::debug;
use std::time::Duration;
use tokio::io::AsyncReadExt;

use self::h2_conn::serve_h2;
use self::h2c::read_preface;
use crate::protocols::http::v1::Limits;
use crate::protocols::http::v2::server::{H2Limits, H2Options};
use crate::protocols::http::ServerSession;
use crate::protocols::{PrefixedStream, Stream, ALPN};
use crate::shutdown::ShutdownWatch;

/// An application serving raw connections.
#[async_trait]
pub trait ServerApp {
    /// Serves a new connection. Returning `Some(stream)` hands the connection back to be served
    /// again by another call (for protocols with several exchanges per connection); `None`
    /// means the connection is done.
    ///
    /// `shutdown` turns `true` when the server starts shutting down gracefully.
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream>;

    /// Called once after the service stopped accepting connections.
    async fn cleanup(&self) {}
}

/// How an HTTP server treats its connections. The switches are off by default; the limits
/// have safe defaults.
#[non_exhaustive]
#[derive(Debug, Clone, Default)]
pub struct HttpServerOptions {
    /// Accept HTTP/2 without TLS (h2c with prior knowledge), detected by its connection
    /// preface; HTTP/1 is still served on the same port.
    pub h2c: bool,
    /// Serve plaintext connections as HTTP/2 only (h2c with prior knowledge; implies
    /// [`h2c`](Self::h2c)). A plaintext connection that does not open with the 24-byte
    /// connection preface is a connection error (RFC 9113 section 3.4): the server sends an
    /// empty SETTINGS frame and `GOAWAY(PROTOCOL_ERROR)` with last-stream-id 0, then closes it,
    /// never writing a byte of HTTP/1. A connection that sends part of the preface then stops
    /// is refused 10 s after its first byte; one that sends nothing is closed after the
    /// keepalive timeout (60 s), or when a graceful shutdown starts. TLS connections are not
    /// affected: ALPN decides their protocol.
    pub h2c_only: bool,
    /// Let `CONNECT` requests through to the application; otherwise they are refused (405).
    pub allow_connect_method_proxying: bool,
    /// Most requests one connection may serve (like nginx's `keepalive_requests`); `None` for
    /// no limit.
    pub keepalive_request_limit: Option<u32>,
    /// Limits on request heads and bodies (HTTP/1).
    pub h1_limits: Limits,
    /// Most time a client may take to send a whole request head once its first byte arrived
    /// (HTTP/1): a client that trickles a head byte by byte (slowloris) is disconnected then.
    /// `None` bounds the head by the session's read timeout (60 s).
    pub h1_header_read_timeout: Option<Duration>,
    /// Limits of HTTP/2 connections against floods and stalls, beyond the protocol settings of
    /// [`HttpServerApp::h2_options`].
    pub h2_limits: H2Limits,
}

/// Per-connection state carried from one HTTP/1 request to the next on the same connection.
#[derive(Debug)]
pub struct HttpPersistentSettings {
    keepalive_timeout: Option<u64>,
    keepalive_reuses_remaining: Option<u32>,
    user_context: Option<Box<dyn Any + Send + Sync>>,
}

impl HttpPersistentSettings {
    /// The settings of `session` to carry to the next request.
    pub fn for_session(session: &ServerSession) -> Self {
        HttpPersistentSettings {
            keepalive_timeout: session.get_keepalive(),
            keepalive_reuses_remaining: session.get_keepalive_reuses_remaining(),
            user_context: None,
        }
    }

    /// Attaches a value for the application to find on the next request.
    pub fn set_user_context(&mut self, ctx: Box<dyn Any + Send + Sync>) {
        self.user_context = Some(ctx);
    }

    /// Takes the value attached for the application.
    pub fn take_user_context(&mut self) -> Option<Box<dyn Any + Send + Sync>> {
        self.user_context.take()
    }

    /// Applies the settings to the session of the next request: the keepalive timeout, and one
    /// reuse fewer remaining.
    pub fn apply_to_session(&self, session: &mut ServerSession) {
        session.set_keepalive(self.keepalive_timeout);
        session.set_keepalive_reuses_remaining(
            self.keepalive_reuses_remaining.map(|n| n.saturating_sub(1)),
        );
    }
}

/// A connection that can serve another request, with the settings to carry over.
#[derive(Debug)]
pub struct ReusedHttpStream {
    stream: Stream,
    persistent_settings: Option<HttpPersistentSettings>,
}

impl ReusedHttpStream {
    /// A reusable `stream` with `persistent_settings`.
    pub fn new(stream: Stream, persistent_settings: Option<HttpPersistentSettings>) -> Self {
        ReusedHttpStream {
            stream,
            persistent_settings,
        }
    }

    /// The connection and its settings.
    pub fn consume(self) -> (Stream, Option<HttpPersistentSettings>) {
        (self.stream, self.persistent_settings)
    }
}

/// How long an idle HTTP/1 connection waits for its next request, in seconds.
const DEFAULT_KEEPALIVE_SECS: u64 = 60;

/// How long an idle HTTP/1 connection still waits for a request once a graceful shutdown has
/// started. A client that got a keep-alive response just before the shutdown may already be
/// sending its next request; that request is served (with `Connection: close`) rather than
/// lost to a connection closed under it.
const SHUTDOWN_LINGER: Duration = Duration::from_millis(500);

/// Waits for the first bytes of the next request on an idle connection.
///
/// Gives up (`None`, the connection is closed quietly) when the client closes it, after `idle`
/// seconds of silence, or [`SHUTDOWN_LINGER`] after a graceful shutdown starts, so that idle
/// keepalive connections never hold a shutdown up.
async fn wait_for_request(
    stream: &mut Stream,
    idle: u64,
    shutdown: &mut ShutdownWatch,
) -> Option<BytesMut> {
    let mut buf = BytesMut::new();
    let got_bytes = {
        let read = first_read(stream, &mut buf);
        tokio::pin!(read);
        let before_shutdown = if *shutdown.borrow() {
            None
        } else {
            let stop = async {
                // An error means the server is gone: stop as well.
                let _ = shutdown.wait_for(|stopping| *stopping).await;
            };
            tokio::select! {
                // Bytes already waiting win over a shutdown that starts at the same time.
                biased;
                read = pingora_timeout::timeout(Duration::from_secs(idle), &mut read) => Some(read),
                _ = stop => None,
            }
        };
        let read = match before_shutdown {
            Some(read) => read,
            None => {
                debug!("graceful shutdown: closing an idle connection unless a request comes");
                pingora_timeout::timeout(SHUTDOWN_LINGER, &mut read).await
            }
        };
        matches!(read, Ok(Ok(n)) if n > 0)
    };
    got_bytes.then_some(buf)
}

/// What the first read of a request asks for; most request heads fit.
const FIRST_READ_CAPACITY: usize = 4096;

/// Reads the first bytes of a request into `buf`, taking its memory only once bytes may be
/// there: an idle keepalive connection holds no read buffer (thousands of them would hold
/// megabytes). A read that finds nothing after all gives the memory back and waits again.
async fn first_read(stream: &mut Stream, buf: &mut BytesMut) -> std::io::Result<usize> {
    use std::future::Future;

    std::future::poll_fn(|cx| {
        std::task::ready!(stream.poll_read_ready(cx))?;
        buf.reserve(FIRST_READ_CAPACITY);
        let polled = std::pin::pin!(stream.read_buf(&mut *buf)).poll(cx);
        if polled.is_pending() {
            // A false alarm (readiness left over from the last request): the memory goes back
            // until bytes come; the read has asked to be woken then.
            *buf = BytesMut::new();
        }
        polled
    })
    .await
}

/// An application serving HTTP sessions.
#[async_trait]
pub trait HttpServerApp {
    /// Serves one HTTP exchange: reads the request from `session` (it is not read yet),
    /// answers it, and returns the connection if it can serve another request (see
    /// [`ServerSession::finish`]).
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream>;

    /// Options for serving connections; `None` for the defaults.
    fn server_options(&self) -> Option<&HttpServerOptions> {
        None
    }

    /// Settings of HTTP/2 connections; `None` for
    /// [`default_options`](crate::protocols::http::v2::server::default_options).
    fn h2_options(&self) -> Option<H2Options> {
        None
    }

    /// Called once after the service stopped accepting connections.
    async fn http_cleanup(&self) {}
}

#[async_trait]
impl<T> ServerApp for T
where
    T: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let options = self.server_options();
        let mut stream = stream;
        // The HTTP/2 paths are boxed: their state would otherwise sit inline in this future,
        // which every HTTP/1 connection holds while idle (see `bench/proxy.sh --idle`).
        if stream.selected_alpn_proto() == Some(ALPN::H2) {
            return Box::pin(serve_h2(self, stream, shutdown)).await;
        }
        let h2c_only = options.is_some_and(|o| o.h2c_only);
        if h2c_only && stream.get_ssl_digest().is_none() {
            return Box::pin(h2c::serve_prior_knowledge_only(self, stream, shutdown)).await;
        }
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut shutdown = shutdown.clone();
        let h2c = h2c_only || options.is_some_and(|o| o.h2c);
        let mut first = true;
        loop {
            let idle = settings
                .as_ref()
                .and_then(|s| s.keepalive_timeout)
                .unwrap_or(DEFAULT_KEEPALIVE_SECS);
            let mut first_bytes = wait_for_request(&mut stream, idle, &mut shutdown).await?;
            if std::mem::take(&mut first)
                && h2c
                && read_preface(&mut stream, &mut first_bytes).await
            {
                let stream = PrefixedStream::prepend(stream, first_bytes.freeze());
                return Box::pin(serve_h2(self, stream, &shutdown)).await;
            }
            let mut session = ServerSession::new_http1_with_buffer(stream, first_bytes);
            if let Some(h1) = session.as_http1_mut() {
                if let Some(options) = options {
                    h1.set_limits(options.h1_limits);
                    h1.set_header_read_timeout(options.h1_header_read_timeout);
                    h1.set_allow_connect(options.allow_connect_method_proxying);
                }
            }
            match settings.take() {
                Some(mut settings) => {
                    settings.apply_to_session(&mut session);
                    if let Some(ctx) = settings.take_user_context() {
                        session.set_persisted_context(ctx);
                    }
                }
                None => {
                    session.set_keepalive(Some(DEFAULT_KEEPALIVE_SECS));
                    // A limit of N requests leaves N - 1 reuses after the first.
                    session.set_keepalive_reuses_remaining(
                        options
                            .and_then(|o| o.keepalive_request_limit)
                            .map(|n| n.saturating_sub(1)),
                    );
                }
            }
            if *shutdown.borrow() {
                session.set_keepalive(None);
            }
            let reused = in_request_span(self.process_new_http(session, &shutdown)).await?;
            (stream, settings) = reused.consume();
        }
    }

    async fn cleanup(&self) {
        self.http_cleanup().await
    }
}

pub use crate::utils::spans_wanted;

/// The span every request of an HTTP application runs in: `request`, at INFO level. Its fields
/// are declared here and filled in by the application (the proxy records all of them; see
/// `docs/user_guide/error_log.md`): `id`, `method`, `path`, `peer`, `status`, `upstream`,
/// `retries`, `connect_ms`, `upstream_header_ms`, `first_byte_ms`, `total_ms`.
pub fn http_request_span() -> tracing::Span {
    use tracing::field::Empty;
    if !spans_wanted() {
        return tracing::Span::none();
    }
    tracing::info_span!(
        "request",
        id = Empty,
        method = Empty,
        path = Empty,
        peer = Empty,
        status = Empty,
        upstream = Empty,
        retries = Empty,
        connect_ms = Empty,
        upstream_header_ms = Empty,
        first_byte_ms = Empty,
        total_ms = Empty,
    )
}

/// Runs an application's (boxed) request future inside a new [`http_request_span`], when a
/// subscriber wants it; bare otherwise. The future is boxed already, so wrapping it moves a
/// pointer, not the request's state.
pub(crate) async fn in_request_span<F: std::future::Future>(fut: F) -> F::Output {
    let span = http_request_span();
    if span.is_disabled() {
        fut.await
    } else {
        tracing::Instrument::instrument(fut, span).await
    }
}
