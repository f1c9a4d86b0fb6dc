//! The client side of an HTTP/1 connection: send one request to an upstream, read its response.
//!
//! # Retries
//! A request sent on a connection taken from the pool can fail because the upstream closed the
//! connection just before the request arrived. Such a failure (the connection closed or failed
//! before any byte of the response arrived, or writing the request head failed) is marked
//! [`RetryType::ReusedOnly`]: safe to retry when the connection was a reused one, and only then.
//!
//! # Cancel safety
//! Like the server session: a future dropped in the middle of a read or write leaves the
//! connection in an unknown state, and [`HttpSession::reuse`] then refuses to hand it back.

use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, HeaderValue, Method, StatusCode, Version};
use log::debug;
use pingora_error::{Error, ErrorType, Result, RetryType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_http_codec::h1::decode::{BodyDecoder, Decoded};
use pingora_http_codec::h1::encode::BodyEncoder;
use pingora_http_codec::h1::fields::ConnectionTokens;
use pingora_http_codec::h1::{head, Framing};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;
use tokio::time::Sleep;

use super::io::{with_timeout, write_all_vectored, BODY_READ_CHUNK, READ_CHUNK};
use super::Limits;
use crate::protocols::digest::Digest;
use crate::protocols::http::HttpTask;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::{PrefixedStream, Stream};

/// Request body pieces up to this size are copied next to their framing and written with one
/// call; bigger ones are written from where they are.
const COALESCE_LIMIT: usize = 16 * 1024;

/// Whether the connection may be reused after this exchange, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keepalive {
    /// Not decided yet: [`HttpSession::respect_keepalive`] was not called.
    Unset,
    Off,
    /// The upstream said how long it keeps idle connections (`Keep-Alive: timeout=N`).
    Timeout(Duration),
    /// The upstream keeps the connection without saying for how long.
    Infinite,
}

/// The client side of one HTTP/1 exchange with an upstream.
#[derive(Debug)]
pub struct HttpSession {
    stream: Stream,
    /// Bytes read and not consumed yet.
    buf: BytesMut,
    eof: bool,
    /// Bounds each read of the response (`None`: no bound).
    pub read_timeout: Option<Duration>,
    /// Bounds each write of the request (`None`: no bound).
    pub write_timeout: Option<Duration>,
    request: Option<Box<RequestHeader>>,
    /// The request carried `Connection: close`.
    request_close: bool,
    upgrade_requested: bool,
    encoder: Option<BodyEncoder>,
    /// Framing and small body pieces waiting to be written with the next write.
    pending: BytesMut,
    /// Request body queued by [`HttpSession::queue_body`], written while the response is read.
    queued: BytesMut,
    /// Writing the queued request body failed; what follows is discarded.
    queue_failed: bool,
    /// Half-close the connection once `queued` is written (the end of a tunnel's bytes).
    half_close_queued: bool,
    /// Told when `queued` shrinks to the given size (see [`HttpSession::notify_queue_below`]).
    queue_watch: Option<(Arc<Notify>, usize)>,
    /// When queued bytes that the upstream takes none of fail with `WriteTimedout`.
    queue_stall: Option<Pin<Box<Sleep>>>,
    response: Option<Box<ResponseHeader>>,
    response_tokens: ConnectionTokens,
    response_keepalive_timeout: Option<u64>,
    /// Any byte of the current response head has arrived.
    response_started: bool,
    decoder: BodyDecoder,
    /// The response body ends when the connection closes.
    close_delimited: bool,
    upgraded: bool,
    keepalive: Keepalive,
    /// Reject responses whose `Content-Length` is invalid instead of reading them until close.
    strict_length: bool,
    limits: Limits,
    /// The exchange failed part-way: the connection must not be reused.
    broken: bool,
    /// The last piece of body returned by [`HttpSession::read_body_ref`].
    last_body: Bytes,
    digest: OnceLock<Digest>,
}

// === impl HttpSession: construction and settings ===

impl HttpSession {
    /// A session over `stream`, a connection to the upstream.
    pub fn new(stream: Stream) -> Self {
        HttpSession {
            stream,
            buf: BytesMut::new(),
            eof: false,
            read_timeout: None,
            write_timeout: None,
            request: None,
            request_close: false,
            upgrade_requested: false,
            encoder: None,
            pending: BytesMut::new(),
            queued: BytesMut::new(),
            queue_failed: false,
            half_close_queued: false,
            queue_watch: None,
            queue_stall: None,
            response: None,
            response_tokens: ConnectionTokens::default(),
            response_keepalive_timeout: None,
            response_started: false,
            decoder: BodyDecoder::new(Framing::Empty),
            close_delimited: false,
            upgraded: false,
            keepalive: Keepalive::Unset,
            strict_length: true,
            limits: Limits::default(),
            broken: false,
            last_body: Bytes::new(),
            digest: OnceLock::new(),
        }
    }

    /// Reads responses whose `Content-Length` is invalid until the connection closes, instead
    /// of failing them (off by default).
    pub fn set_allow_h1_response_invalid_content_length(&mut self, allow: bool) {
        self.strict_length = !allow;
    }

    /// Sets the limits on the response head and body framing.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }
}

// === impl HttpSession: the request ===

impl HttpSession {
    /// Writes the request head. Returns the number of bytes written.
    ///
    /// The body that follows is framed as the head says: chunked with `Transfer-Encoding:
    /// chunked`, by length with `Content-Length`, raw after an upgrade; without any of these,
    /// the request has no body.
    ///
    /// # Errors
    /// A failed or timed-out write, marked retryable on a reused connection.
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>) -> Result<usize> {
        let tokens = ConnectionTokens::from_headers(&req.headers);
        self.request_close = tokens.close || req.version == Version::HTTP_10 && !tokens.keep_alive;
        self.upgrade_requested = req.version == Version::HTTP_11
            && tokens.upgrade
            && req.headers.contains_key(header::UPGRADE);
        let framing = head::outgoing_framing(&req.headers);
        let framing = match framing {
            // Without framing headers a request has no body (RFC 9112 section 6.3 rule 7),
            // except the bytes of the new protocol after an upgrade or a CONNECT.
            Framing::UntilClose if !self.upgrade_requested && req.method != Method::CONNECT => {
                Framing::Empty
            }
            framing => framing,
        };
        self.encoder = Some(BodyEncoder::new(framing));
        self.pending.clear();
        head::write_request_head(&req, &mut self.pending);
        let len = self.pending.len();
        self.request = Some(req);
        self.flush_pending().await.map_err(|mut e| {
            // The upstream cannot have acted on a request it did not fully receive.
            e.retry = RetryType::ReusedOnly;
            e
        })?;
        Ok(len)
    }

    /// Writes a piece of request body. Returns the number of body bytes accepted (`None` if the
    /// body has ended).
    ///
    /// # Errors
    /// Writing before the head, more bytes than the `Content-Length` said, a body on a request
    /// whose head announced none, or a failed write.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<Option<usize>> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "request body before its head");
        };
        if encoder.is_finished() {
            return Ok(None);
        }
        if !data.is_empty() && encoder.is_length_complete() && !encoder.is_until_close() {
            self.broken = true;
            return Error::e_explain(
                ErrorType::InternalError,
                "request body longer than its head announced (no Content-Length or chunked \
                 Transfer-Encoding?)",
            );
        }
        let frame = encoder
            .encode(data.len())
            .inspect_err(|_| self.broken = true)?;
        if frame.wire_len() == 0 && self.pending.is_empty() {
            return Ok(Some(0));
        }
        let data = &data[..frame.data_len];
        if self.pending.len() + frame.wire_len() <= COALESCE_LIMIT {
            self.pending.extend_from_slice(frame.prefix());
            self.pending.extend_from_slice(data);
            self.pending.extend_from_slice(frame.suffix);
            self.flush_pending().await?;
        } else {
            let pending = std::mem::take(&mut self.pending);
            let result = self
                .send(&mut [&pending, frame.prefix(), data, frame.suffix])
                .await;
            self.pending = pending;
            self.pending.clear();
            result?;
        }
        Ok(Some(frame.data_len))
    }

    /// Ends the request body. Returns the number of body bytes written.
    ///
    /// # Errors
    /// A body shorter than its `Content-Length`, or a failed write.
    pub async fn finish_body(&mut self) -> Result<Option<usize>> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(None);
        };
        if encoder.is_finished() {
            return Ok(Some(encoder.written() as usize));
        }
        let mut tail = Vec::new();
        let result = encoder.finish(None, &mut tail);
        let written = encoder.written() as usize;
        if result.is_err() {
            self.broken = true;
        }
        self.pending.extend_from_slice(&tail);
        self.flush_pending().await?;
        if self.upgraded {
            // The end of a tunnel's bytes is told by closing our half of the connection.
            if let Err(e) = AsyncWriteExt::shutdown(&mut self.stream).await {
                debug!("failed to half-close an upgraded connection: {e}");
            }
        }
        result.map(|()| Some(written))
    }

    /// The request head written, if any.
    pub fn req_header(&self) -> Option<&RequestHeader> {
        self.request.as_deref()
    }

    /// Bytes of request body written.
    pub fn body_bytes_sent(&self) -> usize {
        self.encoder.as_ref().map_or(0, |e| e.written() as usize)
    }

    /// Whether the request asks to switch protocols.
    pub fn is_upgrade_req(&self) -> bool {
        self.upgrade_requested
    }

    async fn flush_pending(&mut self) -> Result<()> {
        if !self.queued.is_empty() {
            // Queued body goes first, to keep the request in order.
            let queued = std::mem::take(&mut self.queued);
            self.send(&mut [&queued]).await?;
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let result = self.send(&mut [&pending]).await;
        self.pending = pending;
        self.pending.clear();
        result
    }

    async fn send(&mut self, parts: &mut [&[u8]]) -> Result<()> {
        let write = write_all_vectored(&mut self.stream, parts);
        with_timeout(self.write_timeout, ErrorType::WriteTimedout, write)
            .await
            .map_err(|e| {
                self.broken = true;
                e.into_up()
            })
    }
}

// === impl HttpSession: the response ===

impl HttpSession {
    /// Reads the next response head. Returns its size in bytes.
    ///
    /// Informational (1xx) responses other than 101 are returned like any other; call again to
    /// read the final response.
    ///
    /// # Errors
    /// [`ErrorType::InvalidHTTPHeader`] for a malformed head; [`ErrorType::ConnectionClosed`]
    /// or a read error, retryable on a reused connection if no byte of the response arrived;
    /// [`ErrorType::ReadTimedout`].
    pub async fn read_response(&mut self) -> Result<usize> {
        let read_timeout = self.read_timeout;
        let result = with_timeout(read_timeout, ErrorType::ReadTimedout, self.read_head()).await;
        let response_head = result.map_err(|mut e| {
            self.broken = true;
            let timed_out = matches!(e.etype, ErrorType::ReadTimedout | ErrorType::WriteTimedout);
            if !self.response_started && !timed_out {
                e.retry = RetryType::ReusedOnly;
            }
            e.into_up()
        })?;
        let size = response_head.raw.len();
        self.apply_response_head(response_head)?;
        Ok(size)
    }

    async fn read_head(&mut self) -> Result<head::ResponseHead> {
        self.response_started = !self.buf.is_empty();
        loop {
            if let Some(parsed) =
                head::parse_response(&mut self.buf, &self.limits, self.strict_length)?
            {
                return Ok(parsed);
            }
            let n = self.read_and_flush(READ_CHUNK, None).await?;
            if n == 0 {
                self.eof = true;
                return Error::e_explain(
                    ErrorType::ConnectionClosed,
                    if self.response_started {
                        "upstream closed the connection in the middle of a response head"
                    } else {
                        "upstream closed the connection before responding"
                    },
                );
            }
            self.response_started = true;
        }
    }

    fn apply_response_head(&mut self, response_head: head::ResponseHead) -> Result<()> {
        let status = response_head.header.status;
        let method = self
            .request
            .as_ref()
            .map_or(Method::GET, |r| r.method.clone());
        if status == StatusCode::SWITCHING_PROTOCOLS {
            if !self.upgrade_requested {
                self.broken = true;
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    "101 Switching Protocols to a request that did not ask for it",
                )
                .map_err(|e| e.into_up());
            }
            self.upgraded = true;
            self.close_delimited = true;
            self.decoder = BodyDecoder::new(Framing::UntilClose);
        } else {
            let framing = head::response_framing(&method, status, response_head.framing);
            if method == Method::CONNECT && status.is_success() {
                self.upgraded = true;
            }
            self.close_delimited = framing == Framing::UntilClose;
            self.decoder = BodyDecoder::new(framing);
        }
        self.response_tokens = response_head.connection;
        self.response_keepalive_timeout = response_head.keepalive_timeout;
        self.response = Some(Box::new(response_head.header));
        Ok(())
    }

    /// Reads the response head (see [`HttpSession::read_response`]) and returns a copy of it.
    pub async fn read_resp_header_parts(&mut self) -> Result<Box<ResponseHeader>> {
        self.read_response().await?;
        Ok(Box::new(
            self.response.as_deref().expect("read just above").clone(),
        ))
    }

    /// The response head read, if any.
    pub fn resp_header(&self) -> Option<&ResponseHeader> {
        self.response.as_deref()
    }

    /// The status of the response read, if any.
    pub fn get_status(&self) -> Option<StatusCode> {
        self.response.as_ref().map(|r| r.status)
    }

    /// A header of the response read (the first if repeated).
    pub fn get_header(&self, name: impl header::AsHeaderName) -> Option<&HeaderValue> {
        self.response.as_ref()?.headers.get(name)
    }

    /// A header of the response read, as bytes; empty if absent.
    pub fn get_header_bytes(&self, name: impl header::AsHeaderName) -> &[u8] {
        self.get_header(name).map_or(b"", HeaderValue::as_bytes)
    }

    /// Reads the next piece of the response body; `None` once it is complete. After a 101 or
    /// a 2xx to CONNECT these are the raw bytes of the new protocol.
    ///
    /// # Errors
    /// Invalid chunked framing, the upstream closing before the end of a delimited body, a
    /// read error or timeout. The connection is then not reused.
    pub async fn read_body_bytes(&mut self) -> Result<Option<Bytes>> {
        self.read_body_within(None).await
    }

    /// [`HttpSession::read_body_bytes`], reading at most `limit` bytes off the connection at
    /// a time when set.
    async fn read_body_within(&mut self, limit: Option<usize>) -> Result<Option<Bytes>> {
        loop {
            match self.decoder.decode(&mut self.buf, self.eof, &self.limits) {
                Ok(Decoded::Data(data)) => {
                    if limit.is_some() && self.buf.is_empty() {
                        // The caller reads as room is made and may wait long before the
                        // next read: the buffer's spare room is not kept meanwhile, and the
                        // allocation lives only as long as the pieces cut from it.
                        self.buf = BytesMut::new();
                    }
                    return Ok(Some(data));
                }
                Ok(Decoded::Done) => return Ok(None),
                Ok(Decoded::NeedMore) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e.into_up());
                }
            }
            let read_timeout = self.read_timeout;
            let read = self.read_and_flush(BODY_READ_CHUNK, limit);
            let n = with_timeout(read_timeout, ErrorType::ReadTimedout, read)
                .await
                .map_err(|e| {
                    self.broken = true;
                    e.into_up()
                })?;
            if n == 0 {
                self.eof = true;
            }
        }
    }

    /// Like [`HttpSession::read_body_bytes`], returning a view of the piece.
    pub async fn read_body_ref(&mut self) -> Result<Option<&[u8]>> {
        match self.read_body_bytes().await? {
            Some(data) => {
                self.last_body = data;
                Ok(Some(&self.last_body))
            }
            None => Ok(None),
        }
    }

    /// Whether the whole response body was read (true before any response, and for a 1xx).
    pub fn is_body_done(&mut self) -> bool {
        self.decoder.is_done()
    }

    /// Bytes of response body still to come when its length is known (0 once the body is
    /// read whole); `None` for a chunked or close-delimited body, or before the head.
    pub fn response_body_left(&self) -> Option<usize> {
        self.response.as_ref()?;
        self.decoder
            .remaining()
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Bytes of response body read.
    pub fn body_bytes_received(&self) -> usize {
        self.decoder.decoded_bytes() as usize
    }

    /// Reads what comes next of the response, as a task: the head (`end` set if no body
    /// follows), a piece of body, trailers, or the end.
    ///
    /// Informational responses are returned as heads that do not end the response; the next
    /// call reads on.
    pub async fn read_response_task(&mut self) -> Result<HttpTask> {
        self.read_response_task_within(None).await
    }

    /// [`HttpSession::read_response_task`], reading at most `limit` bytes of body off the
    /// connection (a piece may hold more when more was read already): lets a caller that
    /// can forward only so much leave the rest in the upstream's socket.
    pub async fn read_response_task_at_most(&mut self, limit: usize) -> Result<HttpTask> {
        self.read_response_task_within(Some(limit.max(1))).await
    }

    async fn read_response_task_within(&mut self, limit: Option<usize>) -> Result<HttpTask> {
        if self.should_read_resp_header() {
            let header = self.read_resp_header_parts().await?;
            let end = !header.status.is_informational() && self.decoder.is_done();
            return Ok(HttpTask::Header(header, end));
        }
        match self.read_body_within(limit).await? {
            Some(data) => {
                let end = self.decoder.is_done();
                Ok(if self.upgraded {
                    HttpTask::UpgradedBody(Some(data), end)
                } else {
                    HttpTask::Body(Some(data), end)
                })
            }
            None => match self.decoder.take_trailers() {
                Some(trailers) => Ok(HttpTask::Trailer(Some(trailers))),
                None => Ok(HttpTask::Done),
            },
        }
    }

    fn should_read_resp_header(&self) -> bool {
        match &self.response {
            None => true,
            Some(r) => r.status.is_informational() && r.status != StatusCode::SWITCHING_PROTOCOLS,
        }
    }

    /// Whether the connection switched to another protocol (101) or became a CONNECT tunnel.
    pub fn was_upgraded(&self) -> bool {
        self.upgraded
    }
}

// === impl HttpSession: connection reuse and facts ===

impl HttpSession {
    /// Decides, from the request and the response, whether the connection can be reused and
    /// for how long (RFC 9112 section 9.3): HTTP/1.1 unless either side said `close`,
    /// HTTP/1.0 only with `keep-alive`, never after a body read until close or an upgrade.
    pub fn respect_keepalive(&mut self) {
        let Some(response) = self.response.as_ref() else {
            self.keepalive = Keepalive::Off;
            return;
        };
        let tokens = self.response_tokens;
        let keep = !self.request_close
            && !self.upgraded
            && !self.close_delimited
            && !tokens.close
            && (response.version == Version::HTTP_11 || tokens.keep_alive);
        self.keepalive = match (keep, self.response_keepalive_timeout) {
            (false, _) => Keepalive::Off,
            (true, Some(0)) => Keepalive::Off,
            (true, Some(secs)) => Keepalive::Timeout(Duration::from_secs(secs)),
            (true, None) => Keepalive::Infinite,
        };
    }

    /// Whether the connection can carry another request after this exchange, as far as is
    /// known now. [`HttpSession::respect_keepalive`] must have been called for this to be true.
    pub fn will_keepalive(&self) -> bool {
        matches!(self.keepalive, Keepalive::Timeout(_) | Keepalive::Infinite) && !self.broken
    }

    /// How long the upstream said it keeps the idle connection, if it said.
    pub fn get_keepalive_timeout(&self) -> Option<Duration> {
        match self.keepalive {
            Keepalive::Timeout(d) => Some(d),
            _ => None,
        }
    }

    /// Ends the exchange. Returns the connection if it can carry another request: keepalive
    /// allowed, request and response complete, and no byte beyond the response received.
    pub async fn reuse(self) -> Option<Stream> {
        match self.into_reusable() {
            Ok(stream) => Some(stream),
            Err(mut session) => {
                session.shutdown().await;
                None
            }
        }
    }

    /// The connection, if it can serve another request (see [`reuse`](Self::reuse));
    /// otherwise the session, to be shut down.
    pub(crate) fn into_reusable(self) -> std::result::Result<Stream, Box<Self>> {
        let request_done = self.encoder.as_ref().is_some_and(BodyEncoder::is_finished);
        if !self.will_keepalive() || !request_done || !self.decoder.is_done() || self.eof {
            return Err(Box::new(self));
        }
        if !self.buf.is_empty() {
            debug!(
                "upstream sent {} bytes beyond its response; not reusing",
                self.buf.len()
            );
            return Err(Box::new(self));
        }
        Ok(self.stream)
    }

    /// Closes the connection.
    pub async fn shutdown(&mut self) {
        if let Err(e) = self.stream.flush().await {
            debug!("flush before shutdown failed: {e}");
        }
        crate::protocols::Shutdown::shutdown(&mut *self.stream).await;
    }

    /// Everything known about the connection.
    pub fn digest(&self) -> &Digest {
        self.digest.get_or_init(|| Digest {
            ssl_digest: self.stream.get_ssl_digest(),
            timing_digest: self.stream.get_timing_digest(),
            proxy_digest: self.stream.get_proxy_digest(),
            socket_digest: self.stream.get_socket_digest(),
        })
    }

    /// Everything known about the connection, to modify.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        self.digest();
        self.digest.get_mut()
    }

    /// The upstream's address.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest().socket_digest.as_ref()?.peer_addr()
    }

    /// Our end of the connection.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest().socket_digest.as_ref()?.local_addr()
    }

    /// The connection's [`UniqueID`](crate::protocols::UniqueID).
    pub fn id(&self) -> i32 {
        self.stream.id()
    }

    /// The connection.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Takes the connection out of the session, with any bytes read but not consumed.
    pub fn into_inner(self) -> Stream {
        let leftover = self.buf.freeze();
        PrefixedStream::prepend(self.stream, leftover)
    }
}

mod queue;
#[cfg(test)]
mod tests;
