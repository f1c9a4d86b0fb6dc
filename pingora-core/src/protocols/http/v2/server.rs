//! The server side of HTTP/2: the connection handshake, and one session per stream.
//!
//! The `h2` crate does the framing, HPACK and flow-control bookkeeping; this module turns its
//! streams into request heads, bodies and responses shaped like the HTTP/1 session's, so that
//! applications and the proxy serve both versions with the same code.
//!
//! The connection itself is driven by whoever accepts its streams
//! ([`HttpSession::from_h2_conn`] in a loop): a stream's reads and writes make progress only
//! while that loop runs.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::server::{Connection, SendResponse};
use h2::{Reason, RecvStream, SendStream};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use log::{debug, warn};
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_http_codec::h2 as h2_heads;
use tokio::sync::OwnedSemaphorePermit;

use super::guard::Guard;
use super::room::{budgeted, take_budget, wait_for_room};
use crate::protocols::digest::Digest;
use crate::protocols::http::body_buffer::FixedBuffer;
use crate::protocols::http::date::get_cached_date;
use crate::protocols::http::v1::io::with_timeout;
use crate::protocols::http::ClientEvent;
use crate::protocols::http::HttpTask;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::Stream;

pub use super::guard::H2Limits;
pub use pingora_http_codec::h2::response_has_no_body;

/// The settings of an HTTP/2 server connection (window sizes, most concurrent streams, largest
/// header list...): the `h2` crate's server builder.
pub type H2Options = h2::server::Builder;

/// An HTTP/2 server connection over a [`Stream`].
pub type H2Connection<S> = Connection<S, Bytes>;

/// The HTTP/2 connection preface a client sends first (RFC 9113 section 3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How much request body the retry buffer keeps.
const RETRY_BUFFER_SIZE: usize = 64 * 1024;
/// Default bound on each read of the request body.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The connection settings used when the application gives none:
///
/// * at most 100 concurrent streams (`SETTINGS_MAX_CONCURRENT_STREAMS`);
/// * 1 MiB stream windows and a 4 MiB connection window (the protocol's 64 KiB default
///   throttles uploads on any link with latency);
/// * header lists up to 64 KiB (`SETTINGS_MAX_HEADER_LIST_SIZE`; a larger request is answered
///   431, a much larger one ends the connection);
/// * against floods: at most 20 streams reset by the client while waiting to be accepted, 10
///   reset streams remembered at once, and 1024 streams reset by us for the client's protocol
///   errors, each limit ending the connection with `GOAWAY(ENHANCE_YOUR_CALM)` when passed;
///   at most 400 KiB of response queued per stream.
///
/// The limits the `h2` crate does not enforce (floods of PING, SETTINGS, PRIORITY or empty
/// DATA frames; a client that leaves the server waiting for window) are [`H2Limits`], part of
/// the server's options.
///
/// These values may change between releases. Build your own [`H2Options`] (starting from this
/// function's result) to change them.
pub fn default_options() -> H2Options {
    let mut options = H2Options::new();
    options
        .max_concurrent_streams(100)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(4 << 20)
        .max_header_list_size(64 << 10)
        .max_pending_accept_reset_streams(20)
        .max_concurrent_reset_streams(10)
        .max_local_error_reset_streams(Some(1024))
        .max_send_buffer_size(400 << 10);
    options
}

/// Performs the server side of the HTTP/2 handshake on `io` (whose first bytes must be the
/// client's preface), with `options` or [`default_options`].
///
/// # Errors
/// [`ErrorType::HandshakeError`] when the client does not speak HTTP/2 or goes away.
pub async fn handshake(io: Stream, options: Option<H2Options>) -> Result<H2Connection<Stream>> {
    let options = options.unwrap_or_else(default_options);
    options
        .handshake(io)
        .await
        .or_err(ErrorType::HandshakeError, "HTTP/2 handshake failed")
}

/// The server side of one HTTP/2 stream: one request and its response.
///
/// Dropping a session whose response did not end resets the stream (`RST_STREAM`), so that the
/// client sees a failure rather than a response cut short.
#[derive(Debug)]
pub struct HttpSession {
    request: Box<RequestHeader>,
    body_reader: RecvStream,
    send_response: SendResponse<Bytes>,
    body_writer: Option<SendStream<Bytes>>,
    response: Option<Box<ResponseHeader>>,
    /// `END_STREAM` (or a reset) was sent: nothing more can be written.
    ended: bool,
    /// The request body ended (`END_STREAM` read).
    body_done: bool,
    /// `100 Continue` was sent.
    continue_sent: bool,
    body_read: usize,
    body_sent: usize,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    total_drain_timeout: Option<Duration>,
    retry_buffer: Option<FixedBuffer>,
    digest: Arc<Digest>,
    /// The connection's abuse limits: how long a write may wait for window, and whom to tell
    /// when it waited too long.
    guard: Option<Arc<Guard>>,
    /// Bytes of the connection's response budget taken for the next piece of body.
    reserved: Option<OwnedSemaphorePermit>,
}

// === impl HttpSession: construction and the request ===

impl HttpSession {
    /// Accepts the next stream of `conn`, driving the connection meanwhile. Returns `None` when
    /// the connection ended (the client closed it, or it finished after a GOAWAY).
    ///
    /// # Errors
    /// [`ErrorType::H2Error`] when the connection failed.
    pub async fn from_h2_conn(
        conn: &mut H2Connection<Stream>,
        digest: Arc<Digest>,
    ) -> Result<Option<Self>> {
        loop {
            match conn.accept().await {
                None => return Ok(None),
                Some(Ok((request, mut send_response))) => {
                    // A malformed request is a stream error (RFC 9113 section 8.1.1): reset
                    // it and wait for the next one; the application never sees it.
                    let (parts, body) = request.into_parts();
                    if let Err(why) = h2_heads::check_request_host(&parts) {
                        debug!("HTTP/2 request refused: {why}");
                        send_response.send_reset(Reason::PROTOCOL_ERROR);
                        continue;
                    }
                    let request = http::Request::from_parts(parts, body);
                    return Ok(Some(Self::new(request, send_response, digest)));
                }
                Some(Err(e)) => {
                    return Err(
                        Error::because(ErrorType::H2Error, "HTTP/2 connection failed", e)
                            .into_down(),
                    )
                }
            }
        }
    }

    fn new(
        request: http::Request<RecvStream>,
        send_response: SendResponse<Bytes>,
        digest: Arc<Digest>,
    ) -> Self {
        let (parts, body_reader) = request.into_parts();
        let request = h2_heads::request_from_h2(parts);
        let body_done = body_reader.is_end_stream();
        HttpSession {
            request: Box::new(request),
            body_reader,
            send_response,
            body_writer: None,
            response: None,
            ended: false,
            body_done,
            continue_sent: false,
            body_read: 0,
            body_sent: 0,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            write_timeout: None,
            total_drain_timeout: None,
            retry_buffer: None,
            digest,
            guard: None,
            reserved: None,
        }
    }

    /// Bounds the waits of the response's writes for flow-control window by the connection's
    /// [`H2Limits::send_stall_timeout`], and reports a wait that times out to the connection.
    pub(crate) fn set_guard(&mut self, guard: Arc<Guard>) {
        self.guard = Some(guard);
    }

    /// The request head. Its version is HTTP/2; `Host` is filled from `:authority` when the
    /// client sent none.
    pub fn req_header(&self) -> &RequestHeader {
        &self.request
    }

    /// The request head, to modify.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        &mut self.request
    }

    /// The first value of the request header `name`.
    pub fn get_header(&self, name: impl header::AsHeaderName) -> Option<&HeaderValue> {
        self.request.headers.get(name)
    }

    /// The first value of the request header `name` as bytes (empty if absent).
    pub fn get_header_bytes(&self, name: impl header::AsHeaderName) -> &[u8] {
        self.get_header(name).map_or(b"", |v| v.as_bytes())
    }

    /// The request head in HTTP/1 wire form (with `HTTP/2` as the version), for logs and
    /// caches keyed on raw heads.
    pub fn pseudo_raw_h1_request_header(&self) -> Bytes {
        h2_heads::pseudo_raw_h1_request_header(&self.request)
    }

    /// "METHOD path, Host: host", for logs.
    pub fn request_summary(&self) -> String {
        format!(
            "{} {}, Host: {}",
            self.request.method,
            String::from_utf8_lossy(self.request.raw_path()),
            String::from_utf8_lossy(self.get_header_bytes(header::HOST))
        )
    }

    /// Always `false`: HTTP/2 has no `Upgrade`.
    pub fn is_upgrade_req(&self) -> bool {
        false
    }

    /// Whether the client asked for `100 Continue` (`Expect: 100-continue`) before sending the
    /// body it has not sent yet.
    pub fn is_expect_continue_req(&self) -> bool {
        !self.continue_sent
            && !self.is_body_done()
            && self
                .request
                .headers
                .get(header::EXPECT)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    }

    /// Sends `100 Continue` (an informational HEADERS frame) if the client asked for it and
    /// nothing was sent on the stream yet.
    ///
    /// # Errors
    /// The stream was reset or the connection failed.
    pub async fn write_continue_response(&mut self) -> Result<()> {
        if !self.is_expect_continue_req() || self.response.is_some() || self.ended {
            return Ok(());
        }
        self.continue_sent = true;
        let interim = http::Response::builder()
            .status(StatusCode::CONTINUE)
            .body(())
            .or_err(ErrorType::InternalError, "building 100 Continue")?;
        self.send_response
            .send_informational(interim)
            .or_err(ErrorType::WriteError, "writing HTTP/2 100 Continue")
            .map_err(|e| e.into_down())
    }

    /// Whether the whole request body was read.
    pub fn is_body_done(&self) -> bool {
        self.body_done || self.body_reader.is_end_stream()
    }

    /// Whether the request has no body at all.
    pub fn is_body_empty(&self) -> bool {
        self.body_read == 0 && self.is_body_done()
    }

    /// Bytes of request body read so far.
    pub fn body_bytes_read(&self) -> usize {
        self.body_read
    }

    /// Bounds each read of the request body (default 60 s); `None` for no bound.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Bounds each write of the response (waiting for flow-control window included).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Bounds [`HttpSession::drain_request_body`] as a whole.
    pub fn set_total_drain_timeout(&mut self, timeout: Option<Duration>) {
        self.total_drain_timeout = timeout;
    }

    /// Starts keeping the first 64 KiB of the request body for retries.
    pub fn enable_retry_buffering(&mut self) {
        if self.retry_buffer.is_none() {
            self.retry_buffer = Some(FixedBuffer::new(RETRY_BUFFER_SIZE));
        }
    }

    /// The request body read so far, if it was kept whole.
    pub fn get_retry_buffer(&self) -> Option<Bytes> {
        self.retry_buffer.as_ref().and_then(FixedBuffer::get_buffer)
    }

    /// Whether the retry buffer lost part of the body.
    pub fn retry_buffer_truncated(&self) -> bool {
        self.retry_buffer
            .as_ref()
            .is_some_and(FixedBuffer::is_truncated)
    }

    /// Reads the next piece of the request body; `None` at its end. The piece's bytes are
    /// given back to the client's flow-control window as they are handed out.
    ///
    /// # Errors
    /// A reset stream or failed connection, or [`ErrorType::ReadTimedout`].
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        if self.body_done {
            return Ok(None);
        }
        let next = next_piece(&mut self.body_reader, self.read_timeout).await?;
        self.take_piece(next)
    }

    /// Accounts for a piece of request body read by [`next_piece`].
    fn take_piece(&mut self, next: Option<Result<Bytes, h2::Error>>) -> Result<Option<Bytes>> {
        match next {
            None => {
                self.body_done = true;
                Ok(None)
            }
            Some(Ok(data)) => {
                let _ = self.body_reader.flow_control().release_capacity(data.len());
                self.body_read += data.len();
                if let Some(retry) = self.retry_buffer.as_mut() {
                    retry.write_to_buffer(&data);
                }
                if self.body_reader.is_end_stream() {
                    self.body_done = true;
                }
                Ok(Some(data))
            }
            Some(Err(e)) => {
                Err(
                    Error::because(ErrorType::ReadError, "reading the HTTP/2 request body", e)
                        .into_down(),
                )
            }
        }
    }

    /// Reads the request trailers, once the body was read whole.
    ///
    /// # Errors
    /// A reset stream or failed connection.
    pub async fn read_trailers(&mut self) -> Result<Option<HeaderMap>> {
        self.body_reader
            .trailers()
            .await
            .or_err(ErrorType::ReadError, "reading HTTP/2 request trailers")
            .map_err(|e| e.into_down())
    }

    /// While a response is being produced: reads the next piece of the request body if one is
    /// expected, otherwise waits for the client to reset the stream (an error).
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if !no_body_expected && !self.is_body_done() {
            return self.read_body_bytes().await;
        }
        let reason = self.idle().await;
        Error::e_explain(
            ErrorType::ConnectionClosed,
            format!("client reset the HTTP/2 stream: {reason:?}"),
        )
        .map_err(|e| e.into_down())
    }

    /// Like [`HttpSession::read_body_or_idle`], and with `room_for` also resolves with
    /// [`ClientEvent::ResponseRoom`] once the response can take more body (up to `room_for`
    /// bytes are asked for, see [`HttpSession::response_room`]). A stream reset while waiting
    /// for room is an error.
    pub async fn read_body_or_room(
        &mut self,
        no_body_expected: bool,
        room_for: Option<usize>,
    ) -> Result<ClientEvent> {
        let Some(want) = room_for else {
            return self
                .read_body_or_idle(no_body_expected)
                .await
                .map(ClientEvent::Body);
        };
        let read_body = !no_body_expected && !self.is_body_done();
        let room = wait_for_room(
            self.body_writer.as_mut(),
            &mut self.reserved,
            want,
            self.write_timeout,
            self.guard.as_deref(),
        );
        if !read_body {
            return room.await.map(ClientEvent::ResponseRoom);
        }
        tokio::select! {
            room = room => room.map(ClientEvent::ResponseRoom),
            next = next_piece(&mut self.body_reader, self.read_timeout) => {
                let next = next?;
                self.take_piece(next).map(ClientEvent::Body)
            }
        }
    }

    /// Resolves when the client resets the stream (or the connection fails).
    pub async fn idle(&mut self) -> Result<Reason> {
        let reset = match self.body_writer.as_mut() {
            Some(writer) => poll_fn(|cx| writer.poll_reset(cx)).await,
            None => poll_fn(|cx| self.send_response.poll_reset(cx)).await,
        };
        reset.or_err(ErrorType::H2Error, "HTTP/2 connection failed")
    }

    /// Whether the client already reset the stream, without waiting for it to.
    pub(crate) async fn was_reset(&mut self) -> bool {
        let send_response = &mut self.send_response;
        poll_fn(|cx| Poll::Ready(send_response.poll_reset(cx).is_ready())).await
    }

    /// Reads and discards the rest of the request body.
    pub async fn drain_request_body(&mut self) -> Result<()> {
        let limit = self.total_drain_timeout;
        let drain = async {
            while self.read_body_bytes().await?.is_some() {}
            Ok(())
        };
        with_timeout(limit, ErrorType::ReadTimedout, drain).await
    }
}

// === impl HttpSession: the response ===

impl HttpSession {
    /// Writes the response head; `end` ends the stream with it (no body follows).
    ///
    /// Informational (1xx) heads are dropped (see [`HttpSession::write_continue_response`]
    /// for `100 Continue`). `Date` is added when missing and the fields HTTP/2
    /// forbids (`Transfer-Encoding`, `Connection`, `Upgrade`, `Keep-Alive`, `Proxy-Connection`)
    /// are removed. A second final head is ignored with a warning.
    ///
    /// # Errors
    /// The stream was reset or the connection failed.
    pub async fn write_response_header(
        &mut self,
        mut header: Box<ResponseHeader>,
        end: bool,
    ) -> Result<()> {
        if header.status.is_informational() {
            debug!("dropping a {} response on an HTTP/2 stream", header.status);
            return Ok(());
        }
        if self.response.is_some() || self.ended {
            warn!(
                "response head already written; ignoring another {}",
                header.status
            );
            return Ok(());
        }
        h2_heads::prepare_h2_response(&mut header);
        if !header.headers.contains_key(header::DATE) {
            let _ = header.insert_header(header::DATE, get_cached_date());
        }
        let response = http::Response::from_parts(header.as_owned_parts(), ());
        let sent = self.send_response.send_response(response, end);
        self.response = Some(header);
        match sent {
            Ok(writer) => {
                self.ended = end;
                self.body_writer = Some(writer);
                Ok(())
            }
            Err(e) => {
                self.ended = true;
                Err(
                    Error::because(ErrorType::WriteError, "writing the HTTP/2 response head", e)
                        .into_down(),
                )
            }
        }
    }

    /// The final response head written, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.response.as_deref()
    }

    /// Writes a piece of response body, as flow control allows; `end` ends the stream with
    /// its last frame. Writing after the end is ignored.
    ///
    /// # Errors
    /// Writing before the response head, a reset stream, a failed connection, or
    /// [`ErrorType::WriteTimedout`] while waiting for window.
    pub async fn write_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if self.ended || (data.is_empty() && !end) {
            return Ok(());
        }
        let Some(writer) = self.body_writer.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "response body before its head");
        };
        let len = data.len();
        let data = match self.reserved.take() {
            Some(permit) if len > 0 => budgeted(data, permit),
            _ => data,
        };
        let stall = self.guard.as_ref().and_then(|g| g.send_stall_timeout());
        let result = with_timeout(
            self.write_timeout,
            ErrorType::WriteTimedout,
            send_data(writer, data, end, stall),
        )
        .await;
        match result {
            Ok(()) => {
                self.body_sent += len;
                self.ended = end;
                Ok(())
            }
            Err(e) => {
                if e.etype() == &ErrorType::WriteTimedout {
                    if let Some(guard) = &self.guard {
                        guard.window_stalled();
                    }
                }
                self.reset(Reason::INTERNAL_ERROR);
                Err(e.into_down())
            }
        }
    }

    /// How many bytes of response body (up to `want`) the stream can take now without
    /// waiting: the window the client granted, bounded by the stream's send buffer
    /// ([`H2Options::max_send_buffer_size`]) less what waits in it, and by what the
    /// connection may still queue ([`H2Limits::max_queued_response_bytes`]: the room is
    /// taken from the connection's budget now, and given back once the client has taken the
    /// body written next). `None` before the response head or after the response ended.
    ///
    /// A proxy that reads only this much from its upstream before writing keeps a slow
    /// client's response waiting upstream rather than in its own memory.
    pub fn response_room(&mut self, want: usize) -> Option<usize> {
        if self.ended {
            return None;
        }
        let writer = self.body_writer.as_mut()?;
        let want = want.max(1);
        writer.reserve_capacity(want);
        let capacity = writer.capacity();
        let budget = self.guard.as_deref().and_then(Guard::response_budget);
        Some(take_budget(&mut self.reserved, budget, capacity.min(want)).unwrap_or(0))
    }

    /// Ends the response with `trailers`.
    ///
    /// # Errors
    /// Writing before the response head, a reset stream or a failed connection.
    pub async fn write_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        if self.ended {
            return Ok(());
        }
        let Some(writer) = self.body_writer.as_mut() else {
            return Error::e_explain(
                ErrorType::InternalError,
                "trailers before the response head",
            );
        };
        self.ended = true;
        writer
            .send_trailers(trailers)
            .or_err(ErrorType::WriteError, "writing HTTP/2 response trailers")
            .map_err(|e| e.into_down())
    }

    /// Ends the response (an empty `DATA` frame with `END_STREAM`) if it has not ended yet.
    ///
    /// # Errors
    /// Before the response head, a reset stream or a failed connection.
    pub async fn finish(&mut self) -> Result<()> {
        self.write_body(Bytes::new(), true).await
    }

    /// Whether the response ended (or the stream was reset).
    pub fn is_response_done(&self) -> bool {
        self.ended
    }

    /// Writes a batch of response tasks. Returns whether the response ended.
    pub async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        let mut ended = false;
        for task in tasks {
            ended = match task {
                HttpTask::Header(header, end) => {
                    self.write_response_header(header, end).await?;
                    end
                }
                HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                    self.write_body(data.unwrap_or_default(), end).await?;
                    end
                }
                HttpTask::Trailer(Some(trailers)) => {
                    self.write_trailers(*trailers).await?;
                    true
                }
                HttpTask::Trailer(None) | HttpTask::Done => {
                    self.finish().await?;
                    true
                }
                HttpTask::Failed(e) => return Err(e),
            };
        }
        Ok(ended)
    }

    /// Bytes of response body written.
    pub fn body_bytes_sent(&self) -> usize {
        self.body_sent
    }

    /// Resets the stream with `reason` unless the response already ended.
    pub fn reset(&mut self, reason: Reason) {
        if self.ended {
            return;
        }
        self.ended = true;
        match self.body_writer.as_mut() {
            Some(writer) => writer.send_reset(reason),
            None => self.send_response.send_reset(reason),
        }
    }

    /// Abandons the exchange: resets the stream if its response did not end.
    pub async fn shutdown(&mut self) {
        self.reset(Reason::INTERNAL_ERROR);
    }

    /// Everything known about the connection.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// Everything known about the connection, to modify; `None` while other streams of the
    /// connection share it.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        Arc::get_mut(&mut self.digest)
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest.socket_digest.as_ref()?.peer_addr()
    }

    /// Our address the client connected to.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest.socket_digest.as_ref()?.local_addr()
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        if !self.ended {
            debug!("HTTP/2 stream dropped before its response ended; resetting it");
            self.reset(Reason::CANCEL);
        }
    }
}

/// Reads the next piece of request body off `reader` (`None` at the end), bounded by
/// `timeout`.
async fn next_piece(
    reader: &mut RecvStream,
    timeout: Option<Duration>,
) -> Result<Option<Result<Bytes, h2::Error>>> {
    with_timeout(timeout, ErrorType::ReadTimedout, async {
        Ok(reader.data().await)
    })
    .await
    .map_err(|e| e.into_down())
}

/// Sends `data` on `writer` in pieces as the peer's window allows, ending the stream with the
/// last one when `end`. Each wait for window is bounded by `stall`.
async fn send_data(
    writer: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    stall: Option<Duration>,
) -> Result<()> {
    if data.is_empty() {
        return writer
            .send_data(data, end)
            .or_err(ErrorType::WriteError, "writing the HTTP/2 response body");
    }
    while !data.is_empty() {
        writer.reserve_capacity(data.len());
        let mut granted = writer.capacity();
        if granted == 0 {
            let wait = async { Ok(poll_fn(|cx| writer.poll_capacity(cx)).await) };
            granted = match with_timeout(stall, ErrorType::WriteTimedout, wait).await? {
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    return Err(Error::because(
                        ErrorType::WriteError,
                        "waiting for HTTP/2 flow-control window",
                        e,
                    ))
                }
                None => return Error::e_explain(ErrorType::WriteError, "the HTTP/2 stream closed"),
            };
        }
        if granted == 0 {
            continue;
        }
        let piece = data.split_to(granted.min(data.len()));
        writer
            .send_data(piece, end && data.is_empty())
            .or_err(ErrorType::WriteError, "writing the HTTP/2 response body")?;
    }
    Ok(())
}
