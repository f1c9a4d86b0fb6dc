//! The server session of a subrequest, and the handle its creator keeps.
//!
//! [`HttpSession::new_from_session`] copies a client's request out of a parent session and
//! returns the new session with a [`SubrequestHandle`]. Whatever the subrequest writes as its
//! response reaches the handle as [`HttpTask`]s, in order; the handle may feed it a request
//! body the same way. Both channels are bounded, so a side that stops reading slows the other
//! down instead of letting memory grow.
//!
//! # How a response ends
//! Exactly one task on the handle's receiver ends a response ([`HttpTask::is_end`]): a header
//! that no body can follow (`HEAD`, 204, 304, `Content-Length: 0`), `Done` after the body,
//! `Trailer`, or `Failed`. A subrequest dropped, shut down or finished before its response is
//! complete sends `Failed` if the channel has room; either way the channel then closes. A
//! closed channel without an end task is therefore never a complete response.
//!
//! # Cancel safety
//! Dropping a future of this session in the middle of a write loses at most the task being
//! sent; the response is then incomplete and the handle sees a failure or a closed channel.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use log::{debug, warn};
use pingora_error::{BError, Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_http_codec::h1::head::{self, RequestHead};
use pingora_http_codec::h1::{Framing, Limits};
use tokio::sync::{mpsc, oneshot};

use super::body::{BodyReader, WriteState, PREMATURE_BODY_END};
use crate::protocols::digest::Digest;
use crate::protocols::http::body_buffer::FixedBuffer;
use crate::protocols::http::v1::io::with_timeout;
use crate::protocols::http::{HttpTask, ServerSession};
use crate::protocols::l4::socket::SocketAddr;

/// How many tasks each channel holds before its sender waits.
pub(super) const CHANNEL_CAPACITY: usize = 4;
/// How much request body the retry buffer keeps.
const RETRY_BUFFER_SIZE: usize = 64 * 1024;

/// The server side of a subrequest: one request, copied from a parent session, whose response
/// goes to a [`SubrequestHandle`] as [`HttpTask`]s. See the [module docs](self).
#[derive(Debug)]
pub struct HttpSession {
    request: Box<RequestHeader>,
    /// The parent's request head in HTTP/1 wire form.
    raw_head: Bytes,
    expect_continue: bool,
    upgrade_requested: bool,
    request_read: bool,
    body_reader: BodyReader,
    retry_buffer: Option<FixedBuffer>,
    /// Response tasks go out here; `None` once shut down.
    tx: Option<mpsc::Sender<HttpTask>>,
    /// Request body tasks come in here; `None` once shut down.
    rx: Option<mpsc::Receiver<HttpTask>>,
    proxy_error: Option<oneshot::Sender<BError>>,
    response: Option<Box<ResponseHeader>>,
    write_state: WriteState,
    continue_sent: bool,
    upgraded: bool,
    body_bytes_sent: usize,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    total_drain_timeout: Option<Duration>,
    digest: Option<Box<Digest>>,
}

/// What the creator of a subrequest keeps to talk to it.
///
/// Drop `tx` (or send an end) once the request body is complete. While `tx` is alive and the
/// request body is over, the subrequest takes the handle as a client still waiting for its
/// response; dropping it reads, to the subrequest, as the client going away.
#[derive(Debug)]
pub struct SubrequestHandle {
    /// Sends the request body: `Body` pieces, ended by a piece with its end flag, `Trailer`
    /// or `Done`. `Failed` aborts the request.
    pub tx: mpsc::Sender<HttpTask>,
    /// Receives the response, task by task. It closes when the subrequest session is gone.
    pub rx: mpsc::Receiver<HttpTask>,
    /// Resolves when the subrequest first asks for request body (an error if it never will).
    pub subreq_wants_body: oneshot::Receiver<()>,
    /// Receives the error the subrequest reported through [`HttpSession::on_proxy_failure`]
    /// (an error if it ended without one).
    pub subreq_proxy_error: oneshot::Receiver<BError>,
}

// === impl SubrequestHandle ===

impl SubrequestHandle {
    /// Discards the response in a spawned task so the subrequest never waits for a reader.
    /// The task keeps `tx` open (the subrequest sees a client that waits) and ends when the
    /// subrequest session is gone; await the returned handle to wait for that.
    pub fn drain_tasks(self) -> tokio::task::JoinHandle<()> {
        let SubrequestHandle { tx, mut rx, .. } = self;
        tokio::spawn(async move {
            while rx.recv().await.is_some() {}
            drop(tx);
        })
    }
}

/// The parts of the parent's request a subrequest needs.
struct ParentRequest {
    header: RequestHeader,
    raw: Bytes,
    framing: Framing,
    expect_continue: bool,
    upgrade: bool,
}

impl ParentRequest {
    /// The request `session` received, as it arrived (before any change the application made
    /// to it), re-read from its HTTP/1 wire form.
    fn of(session: &ServerSession) -> Self {
        let raw = session.to_h1_raw();
        if let Some(parsed) = Self::parse(&raw) {
            return Self::with_h2_body(parsed, session);
        }
        // The wire form could not be read back: use the header as it is now.
        let header = session.req_header().clone();
        let mut out = BytesMut::new();
        head::write_request_head(&header, &mut out);
        match Self::parse(&out) {
            Some(parsed) => Self::with_h2_body(parsed, session),
            None => ParentRequest {
                framing: match head::outgoing_framing(&header.headers) {
                    Framing::UntilClose => Framing::Empty,
                    framing => framing,
                },
                header,
                raw,
                expect_continue: false,
                upgrade: false,
            },
        }
    }

    fn parse(raw: &[u8]) -> Option<Self> {
        // The parent accepted this head under its own limits: only its size bounds it here
        // (a head cannot have more fields than bytes).
        let limits = Limits::default()
            .max_headers(raw.len())
            .max_header_bytes(raw.len());
        let mut buf = BytesMut::from(raw);
        let head: RequestHead = head::parse_request(&mut buf, &limits).ok()??;
        Some(ParentRequest {
            header: head.header,
            raw: head.raw,
            framing: head.framing,
            expect_continue: head.expect_continue,
            upgrade: head.upgrade,
        })
    }

    /// An HTTP/2 request need not announce its body's length: it has one unless its head
    /// ended the stream.
    fn with_h2_body(mut self, session: &ServerSession) -> Self {
        let h2_has_body = session.as_http2().is_some_and(|s| !s.is_body_empty());
        if h2_has_body && self.framing == Framing::Empty {
            self.framing = Framing::Chunked;
        }
        self
    }
}

// === impl HttpSession: construction and request ===

impl HttpSession {
    /// A subrequest for the request `session` received, and the handle to talk to it.
    ///
    /// The subrequest's request is the parent's as the client sent it (changes the
    /// application made to the parent's header are not copied: a subrequest that runs the
    /// same request filters gets the same result). It expects a request body if the parent's
    /// request has one; [`HttpSession::clear_request_body_headers`] makes it a request without.
    /// The parent's [`Digest`] (addresses, TLS and timing facts) is copied.
    ///
    /// # Panics
    /// If `session` has not read its request yet.
    pub fn new_from_session(session: &ServerSession) -> (Self, SubrequestHandle) {
        let parent = ParentRequest::of(session);
        let (body_tx, body_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (task_tx, task_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (wants_body_tx, wants_body_rx) = oneshot::channel();
        let (error_tx, error_rx) = oneshot::channel();
        let session = HttpSession {
            request: Box::new(parent.header),
            raw_head: parent.raw,
            expect_continue: parent.expect_continue,
            upgrade_requested: parent.upgrade,
            request_read: false,
            body_reader: BodyReader::new(parent.framing, wants_body_tx),
            retry_buffer: None,
            tx: Some(task_tx),
            rx: Some(body_rx),
            proxy_error: Some(error_tx),
            response: None,
            write_state: WriteState::NoHeader,
            continue_sent: false,
            upgraded: false,
            body_bytes_sent: 0,
            read_timeout: None,
            write_timeout: None,
            total_drain_timeout: None,
            digest: session.digest().cloned().map(Box::new),
        };
        let handle = SubrequestHandle {
            tx: body_tx,
            rx: task_rx,
            subreq_wants_body: wants_body_rx,
            subreq_proxy_error: error_rx,
        };
        (session, handle)
    }

    /// "Reads" the request head, which the subrequest holds from its creation: returns its
    /// size in wire form the first time, `None` afterwards (a subrequest serves one request).
    pub async fn read_request(&mut self) -> Result<Option<usize>> {
        if self.request_read {
            return Ok(None);
        }
        self.request_read = true;
        Ok(Some(self.raw_head.len()))
    }

    /// The request header.
    pub fn req_header(&self) -> &RequestHeader {
        &self.request
    }

    /// The request header, to modify.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.request
    }

    /// The first value of the request header `name`.
    pub fn get_header(&self, name: impl header::AsHeaderName) -> Option<&HeaderValue> {
        self.request.headers.get(name)
    }

    /// The first value of the request header `name` as bytes (empty if absent).
    pub fn get_header_bytes(&self, name: impl header::AsHeaderName) -> &[u8] {
        self.get_header(name).map_or(b"", HeaderValue::as_bytes)
    }

    /// The parent's request head in HTTP/1 wire form, as it arrived.
    pub fn get_headers_raw_bytes(&self) -> Bytes {
        self.raw_head.clone()
    }

    /// The request method.
    pub fn get_method(&self) -> Option<&Method> {
        Some(&self.request.method)
    }

    /// The request path and query as received.
    pub fn get_path(&self) -> &[u8] {
        self.request.raw_path()
    }

    /// "METHOD path, Host: host (subrequest)", for logs.
    pub fn request_summary(&self) -> String {
        format!(
            "{} {}, Host: {} (subrequest)",
            self.request.method,
            String::from_utf8_lossy(self.get_path()),
            String::from_utf8_lossy(self.get_header_bytes(header::HOST))
        )
    }

    /// Whether the request asks to switch protocols.
    pub fn is_upgrade_req(&self) -> bool {
        self.upgrade_requested
    }

    /// Whether the request carries `Expect: 100-continue` and a body.
    pub fn is_expect_continue_req(&self) -> bool {
        self.expect_continue && !self.body_reader.is_empty()
    }

    /// Makes this a request without a body: removes `Content-Length`, `Transfer-Encoding`,
    /// `Content-Type` and `Content-Encoding`, and reads no body from the handle. For
    /// subrequests that must not wait for a body nobody will send (background refreshes).
    pub fn clear_request_body_headers(&mut self) {
        for name in [
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::CONTENT_TYPE,
            header::CONTENT_ENCODING,
        ] {
            self.request.remove_header(&name);
        }
        self.expect_continue = false;
        self.body_reader.close();
    }

    /// Reports the error that ended the subrequest's work to the handle's
    /// [`SubrequestHandle::subreq_proxy_error`]. Only the first report is kept.
    pub fn on_proxy_failure(&mut self, e: BError) {
        if let Some(sender) = self.proxy_error.take() {
            // The handle's owner may not be listening: nothing to do then.
            let _ = sender.send(e);
        }
    }
}

// === impl HttpSession: request body ===

impl HttpSession {
    /// Reads the next piece of the request body from the handle; `None` at its end. Bounded
    /// by the read timeout, if set.
    ///
    /// # Errors
    /// A body cut short (the handle closing before its end or short of `Content-Length`), a
    /// `Failed` task from the handle, or [`ErrorType::ReadTimedout`].
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        let Some(rx) = self.rx.as_mut() else {
            return self.after_shutdown();
        };
        let read = self.body_reader.read(rx);
        let data = with_timeout(self.read_timeout, ErrorType::ReadTimedout, read).await?;
        if let (Some(data), Some(buffer)) = (data.as_ref(), self.retry_buffer.as_mut()) {
            buffer.write_to_buffer(data);
        }
        Ok(data)
    }

    /// While a response is being produced: reads the next piece of the request body if one is
    /// expected, otherwise waits until the handle goes away (an error: the client is gone).
    /// Empty pieces and `Done` sent after the body are ignored.
    ///
    /// # Errors
    /// As [`HttpSession::read_body_bytes`]; when idle, [`ErrorType::ConnectionClosed`] once the
    /// handle's sender is dropped, or an error for a task that has no place after the body.
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if !no_body_expected && !self.is_body_done() {
            return self.read_body_bytes().await;
        }
        let Some(rx) = self.rx.as_mut() else {
            return self.after_shutdown();
        };
        loop {
            match rx.recv().await {
                Some(HttpTask::Done) => {}
                Some(HttpTask::Body(data, _)) if data.as_ref().is_none_or(Bytes::is_empty) => {}
                Some(task) => {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        format!(
                            "subrequest: unexpected {} task after the request body",
                            task.type_str()
                        ),
                    )
                }
                None => {
                    return Error::e_explain(
                        ErrorType::ConnectionClosed,
                        "subrequest: the handle went away while waiting for the response",
                    )
                    .map_err(Error::into_down)
                }
            }
        }
    }

    /// Reads and discards the rest of the request body, bounded by the total drain timeout
    /// when set.
    ///
    /// # Errors
    /// As [`HttpSession::read_body_bytes`].
    pub async fn drain_request_body(&mut self) -> Result<()> {
        let limit = self.total_drain_timeout;
        let drain = async {
            while self.read_body_bytes().await?.is_some() {}
            Ok(())
        };
        with_timeout(limit, ErrorType::ReadTimedout, drain).await
    }

    /// Whether the whole request body was read.
    pub fn is_body_done(&self) -> bool {
        self.body_reader.is_done()
    }

    /// Whether the request has no body.
    pub fn is_body_empty(&self) -> bool {
        self.body_reader.is_empty()
    }

    /// Bytes of request body read.
    pub fn body_bytes_read(&self) -> usize {
        self.body_reader.bytes_read()
    }

    /// The request trailers, if the handle ended the body with them.
    pub fn take_request_trailers(&mut self) -> Option<Box<HeaderMap>> {
        self.body_reader.take_trailers()
    }

    /// Starts keeping the first 64 KiB of the request body for retries.
    pub fn enable_retry_buffering(&mut self) {
        if self.retry_buffer.is_none() {
            self.retry_buffer = Some(FixedBuffer::new(RETRY_BUFFER_SIZE));
        }
    }

    /// The request body read so far, if it was kept whole.
    pub fn get_retry_buffer(&self) -> Option<Bytes> {
        self.retry_buffer
            .as_ref()
            .filter(|b| !b.is_truncated())
            .and_then(FixedBuffer::get_buffer)
    }

    /// Whether the retry buffer lost part of the body.
    pub fn retry_buffer_truncated(&self) -> bool {
        self.retry_buffer
            .as_ref()
            .is_some_and(FixedBuffer::is_truncated)
    }

    fn after_shutdown<T>(&self) -> Result<T> {
        Error::e_explain(
            ErrorType::InternalError,
            "subrequest: session already shut down",
        )
    }
}

// === impl HttpSession: settings and facts ===

impl HttpSession {
    /// Bounds each wait for a request body piece from the handle (none by default).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// The bound on each wait for a request body piece.
    pub fn get_read_timeout(&self) -> Option<Duration> {
        self.read_timeout
    }

    /// Bounds each wait for room in the response channel (none by default).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// The bound on each wait for room in the response channel.
    pub fn get_write_timeout(&self) -> Option<Duration> {
        self.write_timeout
    }

    /// Bounds [`HttpSession::drain_request_body`] as a whole (none by default).
    pub fn set_total_drain_timeout(&mut self, timeout: Option<Duration>) {
        self.total_drain_timeout = timeout;
    }

    /// The bound on draining the request body as a whole.
    pub fn get_total_drain_timeout(&self) -> Option<Duration> {
        self.total_drain_timeout
    }

    /// What was known about the parent's connection when the subrequest was made.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_deref()
    }

    /// What was known about the parent's connection, to modify.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        self.digest.as_deref_mut()
    }

    /// The parent's client address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest()?.socket_digest.as_ref()?.peer_addr()
    }

    /// Our address the parent's client connected to.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest()?.socket_digest.as_ref()?.local_addr()
    }

    /// Closes both channels: the handle's receiver ends (after a `Failed` task if the
    /// response was not complete) and its sender is refused.
    pub fn shutdown(&mut self) {
        self.fail_unfinished();
        self.tx = None;
        self.rx = None;
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        self.fail_unfinished();
    }
}

mod write;
