//! The server side of an HTTP/1 connection: one request and its response at a time.
//!
//! # Cancel safety
//! Dropping a future of this session in the middle of a read or write leaves the connection in
//! an unknown state: the session must not be reused ([`HttpSession::reuse`] is the only way to
//! get the connection back, and it refuses a session whose exchange did not complete).

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, StatusCode, Version};
use log::{debug, warn};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_http_codec::h1::decode::{BodyDecoder, Decoded};
use pingora_http_codec::h1::encode::BodyEncoder;
use pingora_http_codec::h1::fields;
use pingora_http_codec::h1::head::{self, RequestHead};
use pingora_http_codec::h1::Framing;
use tokio::io::AsyncWriteExt;

use super::io::{
    read_more, read_more_sized, with_timeout, write_all_vectored, write_deadline, BODY_READ_CHUNK,
};
use super::Limits;
use crate::protocols::digest::Digest;
use crate::protocols::http::body_buffer::FixedBuffer;
use crate::protocols::http::date::get_cached_date;
use crate::protocols::http::HttpTask;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::{PrefixedStream, Stream};

/// Default bound on each read of the request body, and on reading a request head once its
/// first byte arrived.
const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How much request body the retry buffer keeps.
const RETRY_BUFFER_SIZE: usize = 64 * 1024;
/// Pending bytes and body up to this size are copied into one buffer and written with one call.
const COALESCE_LIMIT: usize = 16 * 1024;

/// Room for a response head's status line and final empty line, beyond its fields.
const HEAD_ROOM: usize = 64;
/// When closing with an unread request body, read and discard at most this much, for at most
/// [`LINGER_TIME`], so the client sees the response instead of a reset.
const LINGER_BYTES: usize = 256 * 1024;
const LINGER_TIME: Duration = Duration::from_millis(500);

/// Whether and how long to keep the connection open after a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keepalive {
    Off,
    /// Close if the next request does not start within this time.
    Timeout(Duration),
    /// Wait for the next request for ever.
    Infinite,
}

/// The server side of one HTTP/1 exchange.
#[derive(Debug)]
pub struct HttpSession {
    stream: Stream,
    /// Bytes read and not consumed yet: the rest of the head, body, or a pipelined request.
    buf: BytesMut,
    /// The peer closed its sending side.
    eof: bool,
    request: Option<Box<RequestHeader>>,
    raw_head: Bytes,
    decoder: BodyDecoder,
    request_keepalive: bool,
    expect_continue: bool,
    upgrade_requested: bool,
    /// A 101 or CONNECT tunnel was answered: once the request body ends, read raw bytes.
    upgraded: bool,
    /// The request body ended after an upgrade and the decoder now passes raw bytes through.
    raw_mode: bool,
    /// Drain the client's side briefly before closing (a request was rejected mid-stream).
    linger_on_close: bool,
    continue_sent: bool,
    response: Option<Box<ResponseHeader>>,
    encoder: Option<BodyEncoder>,
    /// Head bytes written but not yet sent.
    pending: BytesMut,
    keepalive: Keepalive,
    keepalive_reuses_remaining: Option<u32>,
    read_timeout: Option<Duration>,
    /// Bounds reading the request head as a whole; `None`: `read_timeout` does.
    header_read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    total_drain_timeout: Option<Duration>,
    min_send_rate: Option<usize>,
    ignore_info_resp: bool,
    close_on_response_before_downstream_finish: bool,
    abort_on_close: bool,
    allow_connect: bool,
    /// Writing failed or the body was cut short: the connection cannot be reused.
    broken: bool,
    retry_buffer: Option<FixedBuffer>,
    limits: Limits,
    digest: OnceLock<Box<Digest>>,
}

// === impl HttpSession: construction and settings ===

impl HttpSession {
    /// A session over `stream`, waiting for a request.
    pub fn new(stream: Stream) -> Self {
        Self::new_with_buffer(stream, BytesMut::new())
    }

    /// A session over `stream` whose first bytes, already read, are in `buf`.
    pub(crate) fn new_with_buffer(stream: Stream, buf: BytesMut) -> Self {
        HttpSession {
            stream,
            buf,
            eof: false,
            request: None,
            raw_head: Bytes::new(),
            decoder: BodyDecoder::new(Framing::Empty),
            request_keepalive: false,
            expect_continue: false,
            upgrade_requested: false,
            upgraded: false,
            raw_mode: false,
            linger_on_close: false,
            continue_sent: false,
            response: None,
            encoder: None,
            pending: BytesMut::new(),
            keepalive: Keepalive::Off,
            keepalive_reuses_remaining: None,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            header_read_timeout: None,
            write_timeout: None,
            total_drain_timeout: None,
            min_send_rate: None,
            ignore_info_resp: false,
            close_on_response_before_downstream_finish: true,
            abort_on_close: true,
            allow_connect: false,
            broken: false,
            retry_buffer: None,
            limits: Limits::default(),
            digest: OnceLock::new(),
        }
    }

    /// Sets the limits on the request head and body framing.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Lets `CONNECT` requests open tunnels when answered with 2xx.
    pub fn set_allow_connect(&mut self, allow: bool) {
        self.allow_connect = allow;
    }

    /// Keeps the connection open after the response: `None` closes it, `Some(0)` waits for the
    /// next request for ever, `Some(n)` waits `n` seconds.
    pub fn set_keepalive(&mut self, seconds: Option<u64>) {
        self.keepalive = match seconds {
            None => Keepalive::Off,
            Some(0) => Keepalive::Infinite,
            Some(n) => Keepalive::Timeout(Duration::from_secs(n)),
        };
    }

    /// The keepalive setting, in the form [`HttpSession::set_keepalive`] takes.
    pub fn get_keepalive_timeout(&self) -> Option<u64> {
        match self.keepalive {
            Keepalive::Off => None,
            Keepalive::Infinite => Some(0),
            Keepalive::Timeout(d) => Some(d.as_secs()),
        }
    }

    /// How many more requests this connection may serve; `Some(0)` closes it after this one.
    pub fn set_keepalive_reuses_remaining(&mut self, remaining: Option<u32>) {
        self.keepalive_reuses_remaining = remaining;
    }

    /// How many more requests this connection may serve, if limited.
    pub fn get_keepalive_reuses_remaining(&self) -> Option<u32> {
        self.keepalive_reuses_remaining
    }

    /// Bounds each read of the request (default 60 s; `None` waits for ever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// Bounds reading the request head as a whole, once its first byte arrived (default
    /// `None`: the read timeout bounds it).
    pub fn set_header_read_timeout(&mut self, timeout: Option<Duration>) {
        self.header_read_timeout = timeout;
    }

    /// Bounds each write of the response (default none).
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// Bounds the whole draining of an unread request body before reuse.
    pub fn set_total_drain_timeout(&mut self, timeout: Option<Duration>) {
        self.total_drain_timeout = timeout;
    }

    /// Lets slow readers take longer: each write may take as long as sending its bytes at
    /// `rate` bytes per second would.
    pub fn set_min_send_rate(&mut self, rate: Option<usize>) {
        self.min_send_rate = rate;
    }

    /// Drops informational (1xx) responses, except 101 and a 100 to a request that expects it.
    pub fn set_ignore_info_resp(&mut self, ignore: bool) {
        self.ignore_info_resp = ignore;
    }

    /// Whether responding before the request body was read closes the connection afterwards
    /// (default true).
    pub fn set_close_on_response_before_downstream_finish(&mut self, close: bool) {
        self.close_on_response_before_downstream_finish = close;
    }

    /// Whether the client closing its side while the response is still being produced is an
    /// error (default true). When false, a half-closed client still gets its response.
    pub fn set_abort_on_close(&mut self, abort: bool) {
        self.abort_on_close = abort;
    }

    /// Starts keeping the first 64 KiB of the request body, so it can be sent again on retry.
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
}

// === impl HttpSession: reading the request ===

impl HttpSession {
    /// Reads the request head. Returns its size, or `None` if the client closed the connection
    /// (or stayed idle past the keepalive timeout) before sending a byte.
    ///
    /// # Errors
    /// [`ErrorType::HTTPStatus`] with the status to answer for a malformed, ambiguous or
    /// oversized head; [`ErrorType::ReadTimedout`] or a read error otherwise.
    pub async fn read_request(&mut self) -> Result<Option<usize>> {
        if self.buf.is_empty() {
            let first_read = read_more(&mut self.stream, &mut self.buf);
            let n = match self.keepalive {
                Keepalive::Timeout(idle) => {
                    match pingora_timeout::timeout(idle, first_read).await {
                        Ok(n) => n,
                        Err(_) => {
                            debug!("keepalive timeout waiting for the next request");
                            return Ok(None);
                        }
                    }
                }
                Keepalive::Infinite => first_read.await,
                Keepalive::Off => {
                    with_timeout(self.read_timeout, ErrorType::ReadTimedout, first_read).await
                }
            };
            match n {
                Ok(0) | Err(_) if self.buf.is_empty() => {
                    // Closing an idle connection (or resetting it) is normal.
                    self.eof = true;
                    return Ok(None);
                }
                Ok(_) => {}
                Err(e) => return Err(e.into_down()),
            }
        }
        let read_timeout = self.header_read_timeout.or(self.read_timeout);
        let head = with_timeout(read_timeout, ErrorType::ReadTimedout, self.read_head())
            .await
            .map_err(|e| {
                // The rest of a rejected request may still be arriving: read it for a moment
                // when closing, so that the client gets the error response, not a reset.
                self.linger_on_close = !self.eof;
                e.into_down()
            })?;
        let size = head.raw.len();
        let refused_connect = head.header.method == Method::CONNECT && !self.allow_connect;
        self.apply_request_head(head);
        if refused_connect {
            // The request cannot be served, and its tunnel bytes must not be read as requests.
            self.broken = true;
            return Error::e_explain(
                ErrorType::HTTPStatus(405),
                "CONNECT is not allowed on this server",
            )
            .map_err(|e| e.into_down());
        }
        Ok(Some(size))
    }

    /// Parses the head from the buffer, reading more until it is complete.
    async fn read_head(&mut self) -> Result<RequestHead> {
        loop {
            if let Some(head) = head::parse_request(&mut self.buf, &self.limits)? {
                return Ok(head);
            }
            let n = read_more(&mut self.stream, &mut self.buf)
                .await
                .map_err(|e| e.into_down())?;
            if n == 0 {
                self.eof = true;
                return Error::e_explain(
                    ErrorType::ConnectionClosed,
                    "client closed the connection in the middle of a request head",
                )
                .map_err(|e| e.into_down());
            }
        }
    }

    fn apply_request_head(&mut self, head: RequestHead) {
        self.decoder = BodyDecoder::new(head.framing);
        self.request_keepalive = head.keepalive;
        self.expect_continue = head.expect_continue && head.framing != Framing::Empty;
        self.upgrade_requested = head.upgrade;
        self.raw_head = head.raw;
        self.request = Some(Box::new(head.header));
    }

    /// The request head.
    ///
    /// # Panics
    /// If called before [`HttpSession::read_request`] returned a request. The HTTP apps of
    /// this crate only hand out sessions whose request was read.
    pub fn req_header(&self) -> &RequestHeader {
        self.request
            .as_deref()
            .expect("the request head is read before the session is used")
    }

    /// The request head, to modify.
    ///
    /// # Panics
    /// As [`HttpSession::req_header`].
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        self.request
            .as_deref_mut()
            .expect("the request head is read before the session is used")
    }

    /// The first value of the request header `name`.
    pub fn get_header(&self, name: impl http::header::AsHeaderName) -> Option<&HeaderValue> {
        self.request.as_ref()?.headers.get(name)
    }

    /// The first value of the request header `name` as bytes (empty if absent).
    pub fn get_header_bytes(&self, name: impl http::header::AsHeaderName) -> &[u8] {
        self.get_header(name).map_or(b"", HeaderValue::as_bytes)
    }

    /// The request head exactly as received.
    pub fn get_headers_raw_bytes(&self) -> Bytes {
        self.raw_head.clone()
    }

    /// The raw request path.
    pub fn get_path(&self) -> &[u8] {
        self.req_header().raw_path()
    }

    /// The request method.
    pub fn get_method(&self) -> Option<&Method> {
        self.request.as_ref().map(|r| &r.method)
    }

    /// "METHOD path, Host: host", for logs.
    pub fn request_summary(&self) -> String {
        let Some(req) = self.request.as_ref() else {
            return String::from("(no request)");
        };
        format!(
            "{} {}, Host: {}",
            req.method,
            String::from_utf8_lossy(req.raw_path()),
            String::from_utf8_lossy(self.get_header_bytes(header::HOST))
        )
    }

    /// Whether the request asks to switch protocols.
    pub fn is_upgrade_req(&self) -> bool {
        self.upgrade_requested
    }

    /// Whether the request carries `Expect: 100-continue` and a body.
    pub fn is_expect_continue_req(&self) -> bool {
        self.expect_continue
    }

    /// Whether the whole request body was read.
    pub fn is_body_done(&self) -> bool {
        self.decoder.is_done() && !self.upgraded_reading()
    }

    /// Whether the request has no body at all.
    pub fn is_body_empty(&self) -> bool {
        self.decoder.is_done() && self.decoder.decoded_bytes() == 0 && !self.upgraded_reading()
    }

    fn upgraded_reading(&self) -> bool {
        self.upgraded && !self.raw_mode
    }

    /// Bytes of request body read so far.
    pub fn body_bytes_read(&self) -> usize {
        self.decoder.decoded_bytes() as usize
    }

    /// The trailers of a chunked request body, once it was read whole.
    pub fn take_request_trailers(&mut self) -> Option<Box<http::HeaderMap>> {
        self.decoder.take_trailers()
    }

    /// Reads the next piece of the request body; `None` at its end. After a protocol switch
    /// (101 or a CONNECT tunnel) the pieces are the raw bytes of the new protocol, up to the
    /// client closing its side.
    ///
    /// # Errors
    /// Malformed chunked framing, a client that closes before the end of the body, or
    /// [`ErrorType::ReadTimedout`].
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.decoder.decode(&mut self.buf, self.eof, &self.limits) {
                Ok(Decoded::Data(data)) => {
                    if let Some(retry) = self.retry_buffer.as_mut() {
                        retry.write_to_buffer(&data);
                    }
                    return Ok(Some(data));
                }
                Ok(Decoded::Done) => {
                    if self.upgraded_reading() {
                        // The request body ended; the new protocol's bytes follow.
                        self.decoder = BodyDecoder::new(Framing::UntilClose);
                        self.raw_mode = true;
                        continue;
                    }
                    return Ok(None);
                }
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e.into_down());
                }
            }
            if self.expect_continue && !self.continue_sent && self.response.is_none() {
                self.write_continue_response().await?;
            }
            let read = read_more_sized(&mut self.stream, &mut self.buf, BODY_READ_CHUNK);
            let n = with_timeout(self.read_timeout, ErrorType::ReadTimedout, read)
                .await
                .map_err(|e| {
                    self.broken = true;
                    e.into_down()
                })?;
            if n == 0 {
                self.eof = true;
            }
        }
    }

    /// While a response is being produced: reads the next piece of the request body if one is
    /// expected, otherwise waits for the client to close the connection.
    ///
    /// When `no_body_expected` (or the body is done), this resolves only with an error if the
    /// client disconnects (with [`HttpSession::set_abort_on_close`] on); data the client sends
    /// early, such as a pipelined request, is kept for later and makes this wait for ever.
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        if !no_body_expected && !self.is_body_done() {
            return self.read_body_bytes().await;
        }
        if self.eof || !self.buf.is_empty() {
            return std::future::pending().await;
        }
        let n = read_more(&mut self.stream, &mut self.buf).await;
        match n {
            Ok(0) | Err(_) => {
                self.eof = true;
                if self.abort_on_close {
                    return Error::e_explain(
                        ErrorType::ConnectionClosed,
                        "client closed the connection while waiting for the response",
                    )
                    .map_err(|e| e.into_down());
                }
                std::future::pending().await
            }
            Ok(_) => std::future::pending().await,
        }
    }

    /// Reads and discards the rest of the request body, bounded by the total drain timeout
    /// when set, else by the read timeout of each read.
    pub async fn drain_request_body(&mut self) -> Result<()> {
        let limit = self.total_drain_timeout;
        let drain = async {
            while self.read_body_bytes().await?.is_some() {}
            Ok(())
        };
        with_timeout(limit, ErrorType::ReadTimedout, drain).await
    }
}

// === impl HttpSession: connection reuse and facts ===

impl HttpSession {
    /// Whether the connection can serve another request after this response, as far as is
    /// known now.
    pub fn will_keepalive(&self) -> bool {
        self.keepalive != Keepalive::Off
            && self.request_keepalive
            && !self.broken
            && !self.upgraded
            && self.keepalive_reuses_remaining != Some(0)
    }

    /// Ends the exchange. Returns the connection if it can serve another request, after
    /// reading any request body left, and with any bytes of a pipelined request kept.
    pub async fn reuse(mut self) -> Result<Option<Stream>> {
        let response_complete = self.encoder.as_ref().is_some_and(BodyEncoder::is_finished);
        if !self.will_keepalive() || !response_complete {
            self.shutdown().await;
            return Ok(None);
        }
        if !self.is_body_done() {
            if let Err(e) = self.drain_request_body().await {
                debug!("failed to drain the request body before reuse: {e}");
                self.shutdown().await;
                return Ok(None);
            }
        }
        let leftover = self.buf.split().freeze();
        Ok(Some(PrefixedStream::prepend(self.stream, leftover)))
    }

    /// Closes the connection. When the client may still be sending a request body, its side
    /// is drained for a short while first so it reads the response instead of a reset.
    pub async fn shutdown(&mut self) {
        if let Err(e) = self.stream.flush().await {
            debug!("flush before shutdown failed: {e}");
        }
        let lingering = !self.eof && (self.linger_on_close || !self.is_body_done());
        crate::protocols::Shutdown::shutdown(&mut *self.stream).await;
        if lingering {
            let stream = &mut self.stream;
            let buf = &mut self.buf;
            let drain = async {
                let mut total = 0;
                while total < LINGER_BYTES {
                    buf.clear();
                    match read_more(stream, buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n,
                    }
                }
            };
            let _ = pingora_timeout::timeout(LINGER_TIME, drain).await;
        }
    }

    /// Everything known about the connection.
    pub fn digest(&self) -> &Digest {
        self.digest.get_or_init(|| {
            Box::new(Digest {
                ssl_digest: self.stream.get_ssl_digest(),
                timing_digest: self.stream.get_timing_digest(),
                proxy_digest: self.stream.get_proxy_digest(),
                socket_digest: self.stream.get_socket_digest(),
            })
        })
    }

    /// Everything known about the connection, to modify.
    pub fn digest_mut(&mut self) -> &mut Digest {
        self.digest();
        self.digest.get_mut().expect("initialized just above")
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest().socket_digest.as_ref()?.peer_addr()
    }

    /// Our address the client connected to.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest().socket_digest.as_ref()?.local_addr()
    }

    /// The connection's [`UniqueID`](crate::protocols::UniqueID).
    pub fn id(&self) -> i32 {
        self.stream.id()
    }

    /// The connection, for protocols that take it over.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Takes the connection out of the session, with any bytes read but not consumed.
    pub fn into_inner(self) -> Stream {
        let leftover = self.buf.freeze();
        PrefixedStream::prepend(self.stream, leftover)
    }
}

mod write;

#[cfg(test)]
mod tests;
