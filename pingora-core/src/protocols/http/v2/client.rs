//! The client side of HTTP/2: one request and its response on a stream of a shared connection.
//!
//! The `h2` crate does the framing, HPACK and flow control; the connection is driven by a task
//! of its own (see [`connectors::http::v2`](crate::connectors::http::v2)), so a stream's reads
//! and writes make progress whatever the other streams do.
//!
//! # Retries
//! A request the server refused without acting on it is marked retryable: `REFUSED_STREAM`, a
//! GOAWAY that excluded the stream, `HTTP_1_1_REQUIRED` ([`ErrorType::H2Downgrade`]: retry over
//! HTTP/1), a connection that turned out not to speak HTTP/2 ([`ErrorType::InvalidH2`]). An I/O
//! failure before the response head is retryable on a reused connection only.
//!
//! # Cancel safety
//! Dropping a session whose exchange did not end resets its stream (`RST_STREAM` with
//! `CANCEL`); the connection and its other streams are not affected. The reads are cancel-safe:
//! a piece of body or a head is either returned or left in the stream.

mod body;
mod conn;

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::client::{ResponseFuture, SendRequest};
use h2::{Reason, RecvStream};
use http::HeaderMap;
use log::debug;
use pingora_error::{Error, ErrorType, Result, RetryType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_http_codec::h2 as h2_heads;
use tokio::sync::Notify;

use crate::metrics::{self, Side};
use crate::protocols::digest::Digest;
use crate::protocols::http::v1::io::with_timeout;
use crate::protocols::http::HttpTask;
use crate::protocols::l4::socket::SocketAddr;

use body::{while_flushing, BodyQueue};
pub(crate) use conn::ConnState;
pub use conn::ConnectionRef;
pub use pingora_http_codec::h2::request_has_no_body;

/// The error type of a request that failed because its connection missed a keepalive PING.
pub const PING_TIMEDOUT: ErrorType = ErrorType::new("PingTimedout");

/// The client side of one HTTP/2 stream: a request and its response.
pub struct Http2Session {
    send_req: SendRequest<Bytes>,
    conn: ConnectionRef,
    /// The stream slot is still held (given back on drop).
    holds_slot: bool,
    /// Bounds each read of the response (`None`: no bound).
    pub read_timeout: Option<Duration>,
    /// Bounds each write of the request, waiting for flow-control window included.
    pub write_timeout: Option<Duration>,
    request: Option<Box<RequestHeader>>,
    body: BodyQueue,
    response_future: Option<ResponseFuture>,
    response: Option<Box<ResponseHeader>>,
    response_body: Option<RecvStream>,
    /// The response body ended (trailers may follow).
    body_ended: bool,
    /// The response ended: `END_STREAM` read, trailers included.
    response_ended: bool,
    body_received: usize,
    /// The stream was reset or failed.
    failed: bool,
    /// The stream counts in the active-streams metric (until dropped).
    counted_active: bool,
}

impl std::fmt::Debug for Http2Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http2Session")
            .field("conn", &self.conn)
            .field("request", &self.request.as_ref().map(|r| &r.method))
            .field("status", &self.response.as_ref().map(|r| r.status))
            .field("request_ended", &self.body.end_sent)
            .field("response_ended", &self.response_ended)
            .finish_non_exhaustive()
    }
}

// === impl Http2Session: the request ===

impl Http2Session {
    pub(crate) fn new(send_req: SendRequest<Bytes>, conn: ConnectionRef) -> Self {
        Http2Session {
            send_req,
            conn,
            holds_slot: true,
            read_timeout: None,
            write_timeout: None,
            request: None,
            body: BodyQueue::default(),
            response_future: None,
            response: None,
            response_body: None,
            body_ended: false,
            response_ended: false,
            body_received: 0,
            failed: false,
            counted_active: metrics::h2_stream_opened(Side::Upstream),
        }
    }

    /// Sends the request head; `end` ends the request with it (no body follows).
    ///
    /// The head is translated for HTTP/2: `Host` becomes `:authority` (the URI's authority when
    /// there is no `Host`), the scheme is `https` over TLS and `http` otherwise, and the fields
    /// HTTP/2 forbids (`Connection` and those it lists, `Transfer-Encoding`, `Upgrade`,
    /// `Keep-Alive`, `Proxy-Connection`, a `TE` other than `trailers`) are removed.
    ///
    /// # Errors
    /// A head written twice ([`ErrorType::InternalError`]); a head that cannot be expressed in
    /// HTTP/2 ([`ErrorType::InvalidHTTPHeader`]); the connection refusing new streams (after a
    /// GOAWAY, retryable); [`ErrorType::WriteTimedout`] waiting for a stream slot.
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>, end: bool) -> Result<()> {
        if self.request.is_some() {
            return Error::e_explain(ErrorType::InternalError, "request head already sent");
        }
        let request = h2_heads::to_h2_request(&req, self.conn.is_tls())?;
        let send_req = &mut self.send_req;
        let ready = with_timeout(self.write_timeout, ErrorType::WriteTimedout, async {
            Ok(poll_fn(|cx| send_req.poll_ready(cx)).await)
        })
        .await;
        self.request = Some(req);
        let ready = match ready {
            Ok(ready) => ready,
            Err(e) => {
                self.failed = true;
                return Err(e.into_up());
            }
        };
        if let Err(e) = ready {
            self.failed = true;
            return Err(self.classify(e, "waiting to open an HTTP/2 stream", true));
        }
        match self.send_req.send_request(request, end) {
            Ok((response_future, writer)) => {
                self.response_future = Some(response_future);
                self.body.writer = Some(writer);
                if end {
                    self.body.end_queued = true;
                    self.body.end_sent = true;
                }
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(self.classify(e, "sending the HTTP/2 request head", true))
            }
        }
    }

    /// The request head sent, if any.
    pub fn request_header(&self) -> Option<&RequestHeader> {
        self.request.as_deref()
    }

    /// Sends a piece of request body as flow control allows; `end` ends the request with it.
    /// Body after the end is ignored.
    ///
    /// # Errors
    /// Before the request head; a reset stream or failed connection;
    /// [`ErrorType::WriteTimedout`] waiting for window.
    pub async fn write_request_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        self.queue_request_body(data, end)?;
        let limit = self.write_timeout;
        let flushed = with_timeout(limit, ErrorType::WriteTimedout, self.body.flush()).await;
        if let Err(e) = flushed {
            self.reset(Reason::CANCEL);
            return Err(e);
        }
        Ok(())
    }

    /// Ends the request body (an empty `DATA` frame with `END_STREAM`) unless it ended.
    ///
    /// # Errors
    /// As [`write_request_body`](Self::write_request_body).
    pub async fn finish_request_body(&mut self) -> Result<()> {
        self.write_request_body(Bytes::new(), true).await
    }

    /// Queues a piece of request body (the end too, with `end`) without waiting: queued body
    /// is sent as the server's flow-control window allows while the response is read (any of
    /// the `read_*` methods), so that neither side waits on the other. Check
    /// [`queued_request_body_len`](Self::queued_request_body_len) to bound the memory used.
    ///
    /// If the server stops reading (it answered early and reset the stream), what is queued
    /// is discarded; the response decides the outcome. If it gives no window for the
    /// [write timeout](Self::write_timeout), the read sending the body fails with
    /// [`ErrorType::WriteTimedout`] and the stream is reset.
    ///
    /// # Errors
    /// Before the request head.
    pub fn queue_request_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        if self.body.writer.is_none() {
            return Error::e_explain(ErrorType::InternalError, "request body before its head");
        }
        self.body.queue(data, end);
        Ok(())
    }

    /// Queues the end of the request with `trailers` (a `HEADERS` frame with `END_STREAM`),
    /// sent after all the body queued before them, like
    /// [`queue_request_body`](Self::queue_request_body) with `end`. Fields HTTP/2 forbids
    /// (those describing a connection, as for the head, and `TE`) are left out; empty
    /// trailers end the request with an empty `DATA` frame instead. Nothing is queued if the
    /// request already ended.
    ///
    /// # Errors
    /// Before the request head.
    pub fn queue_request_trailers(&mut self, mut trailers: HeaderMap) -> Result<()> {
        if self.body.writer.is_none() {
            return Error::e_explain(ErrorType::InternalError, "request trailers before the head");
        }
        h2_heads::strip_request_trailers(&mut trailers);
        if trailers.is_empty() {
            self.body.queue(Bytes::new(), true);
        } else {
            self.body.queue_trailers(trailers);
        }
        Ok(())
    }

    /// Ends the request with `trailers` and sends what is queued, as flow control allows.
    /// See [`queue_request_trailers`](Self::queue_request_trailers).
    ///
    /// # Errors
    /// As [`write_request_body`](Self::write_request_body).
    pub async fn write_request_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        self.queue_request_trailers(trailers)?;
        let limit = self.write_timeout;
        let flushed = with_timeout(limit, ErrorType::WriteTimedout, self.body.flush()).await;
        if let Err(e) = flushed {
            self.reset(Reason::CANCEL);
            return Err(e);
        }
        Ok(())
    }

    /// Bytes of request body queued and not sent yet.
    pub fn queued_request_body_len(&self) -> usize {
        self.body.queued_len
    }

    /// A notification given once the queued request body is down to `len` bytes or fewer.
    pub fn notify_queue_below(&mut self, len: usize) -> Arc<Notify> {
        self.body.notify_below(len)
    }

    /// Whether the whole request was sent (`END_STREAM` written).
    pub fn request_finished(&self) -> bool {
        self.body.end_sent
    }
}

// === impl Http2Session: the response ===

impl Http2Session {
    /// Reads the next response head: an informational (1xx) one, or the final one. Call again
    /// after an informational head to read on.
    ///
    /// # Errors
    /// Before the request head; a reset stream or failed connection, classified for retries
    /// (see the [module docs](self)); [`ErrorType::ReadTimedout`] (the stream is then reset).
    pub async fn read_response_header(&mut self) -> Result<()> {
        if self.response_body.is_some() {
            return Ok(());
        }
        let Some(future) = self.response_future.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "response read before the request");
        };
        let next = poll_fn(|cx| {
            if let Poll::Ready(Some(info)) = future.poll_informational(cx) {
                return Poll::Ready(info.map(|r| (r, None)));
            }
            Pin::new(&mut *future).poll(cx).map(|r| {
                r.map(|r| {
                    let (parts, body) = r.into_parts();
                    (http::Response::from_parts(parts, ()), Some(body))
                })
            })
        });
        let read =
            while_flushing(&mut self.body, self.read_timeout, self.write_timeout, next).await;
        let (response, body) = match read {
            Ok(Ok(next)) => next,
            Ok(Err(e)) => {
                self.failed = true;
                return Err(self.classify(e, "reading the HTTP/2 response head", true));
            }
            Err(e) => {
                self.reset(Reason::CANCEL);
                return Err(e.into_up());
            }
        };
        let (parts, ()) = response.into_parts();
        let header = h2_heads::response_from_h2(parts);
        if let Some(body) = body {
            self.response_ended = body.is_end_stream();
            self.body_ended = self.response_ended;
            self.response_body = Some(body);
            self.response_future = None;
        }
        self.response = Some(Box::new(header));
        Ok(())
    }

    /// The response head read last (an informational one until the final one is read).
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        self.response.as_deref()
    }

    /// Reads the next piece of the response body; `None` at its end. The piece's bytes are
    /// given back to the server's flow-control window as they are handed out.
    ///
    /// # Errors
    /// Before the final response head; a reset stream or failed connection;
    /// [`ErrorType::ReadTimedout`] (the stream is then reset).
    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        if self.body_ended {
            return Ok(None);
        }
        let Some(body) = self.response_body.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "response body before its head");
        };
        let next = poll_fn(|cx| body.poll_data(cx));
        let read =
            while_flushing(&mut self.body, self.read_timeout, self.write_timeout, next).await;
        match read {
            Ok(Some(Ok(data))) => {
                let body = self.response_body.as_mut().expect("read from it just now");
                let _ = body.flow_control().release_capacity(data.len());
                self.body_received += data.len();
                if body.is_end_stream() {
                    self.body_ended = true;
                    self.response_ended = true;
                }
                Ok(Some(data))
            }
            Ok(None) => {
                self.body_ended = true;
                // Ended without trailers (the stream closed with an empty last frame).
                self.response_ended = self
                    .response_body
                    .as_ref()
                    .is_some_and(RecvStream::is_end_stream);
                Ok(None)
            }
            Ok(Some(Err(e))) => {
                self.failed = true;
                Err(self.classify(e, "reading the HTTP/2 response body", false))
            }
            Err(e) => {
                self.reset(Reason::CANCEL);
                Err(e.into_up())
            }
        }
    }

    /// Reads the response trailers, once the body was read whole; `None` if there are none.
    ///
    /// # Errors
    /// A reset stream or failed connection; [`ErrorType::ReadTimedout`].
    pub async fn read_trailers(&mut self) -> Result<Option<HeaderMap>> {
        if self.response_ended {
            return Ok(None);
        }
        let Some(body) = self.response_body.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "trailers before the response");
        };
        let next = poll_fn(|cx| body.poll_trailers(cx));
        let read =
            while_flushing(&mut self.body, self.read_timeout, self.write_timeout, next).await;
        match read {
            Ok(Ok(trailers)) => {
                self.body_ended = true;
                self.response_ended = true;
                Ok(trailers)
            }
            Ok(Err(e)) => {
                self.failed = true;
                Err(self.classify(e, "reading HTTP/2 response trailers", false))
            }
            Err(e) => {
                self.reset(Reason::CANCEL);
                Err(e.into_up())
            }
        }
    }

    /// Reads what comes next of the response, as a task: a head (`end` set if nothing
    /// follows; informational heads do not end the response), a piece of body, the trailers,
    /// or the end.
    ///
    /// # Errors
    /// As the `read_*` methods.
    pub async fn read_response_task(&mut self) -> Result<HttpTask> {
        if self.response_body.is_none() {
            self.read_response_header().await?;
            let header = self.response.clone().expect("a head was read just now");
            let end = self.response_ended;
            return Ok(HttpTask::Header(header, end));
        }
        if self.response_ended {
            return Ok(HttpTask::Done);
        }
        if !self.body_ended {
            if let Some(data) = self.read_response_body().await? {
                return Ok(HttpTask::Body(Some(data), self.response_ended));
            }
        }
        match self.read_trailers().await? {
            Some(trailers) => Ok(HttpTask::Trailer(Some(Box::new(trailers)))),
            None => Ok(HttpTask::Done),
        }
    }

    /// Whether the response was read to its end (trailers included).
    pub fn response_finished(&self) -> bool {
        self.response_ended
    }

    /// Checks, without waiting, how the response stands: `true` once it ended, `false` while
    /// more is to come.
    ///
    /// # Errors
    /// [`ErrorType::H2Error`] when the stream failed (reset, or its connection failed).
    pub fn check_response_end_or_error(&mut self) -> Result<bool> {
        if self.response_ended {
            return Ok(true);
        }
        if self.failed {
            return Error::e_explain(ErrorType::H2Error, "the HTTP/2 stream failed");
        }
        Ok(false)
    }

    /// Bytes of response body read.
    pub fn body_bytes_received(&self) -> usize {
        self.body_received
    }

    /// Bytes of response body still to come when the response announced its length (0 once
    /// it ended); `None` otherwise, or before the head.
    pub fn response_body_left(&self) -> Option<usize> {
        if self.response_ended {
            return Some(0);
        }
        let length = self
            .response
            .as_ref()?
            .headers
            .get(http::header::CONTENT_LENGTH)?;
        let length: usize = std::str::from_utf8(length.as_bytes()).ok()?.parse().ok()?;
        Some(length.saturating_sub(self.body_received))
    }

    /// Bytes of request body sent.
    pub fn body_bytes_sent(&self) -> usize {
        self.body.sent
    }
}

// === impl Http2Session: the stream and its connection ===

impl Http2Session {
    /// Resets the stream with `reason` unless the exchange ended both ways.
    pub fn reset(&mut self, reason: Reason) {
        if self.exchange_done() || self.failed {
            return;
        }
        self.failed = true;
        if let Some(writer) = self.body.writer.as_mut() {
            writer.send_reset(reason);
        }
        self.body.discard();
    }

    /// Abandons the exchange: resets the stream if it did not end.
    pub async fn shutdown(&mut self) {
        self.reset(Reason::CANCEL);
    }

    /// Whether the request and the response both ended without error: the stream closed
    /// cleanly.
    pub fn exchange_done(&self) -> bool {
        !self.failed && self.body.end_sent && self.response_ended
    }

    /// The connection this stream belongs to.
    pub fn conn(&self) -> &ConnectionRef {
        &self.conn
    }

    /// Everything known about the connection.
    pub fn digest(&self) -> &Digest {
        self.conn.digest()
    }

    /// The server's address.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        self.digest().socket_digest.as_ref()?.peer_addr()
    }

    /// Our end of the connection.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        self.digest().socket_digest.as_ref()?.local_addr()
    }

    /// The connection's identifier (its file descriptor).
    pub fn fd(&self) -> i32 {
        self.conn.id()
    }

    /// Turns an `h2` error into ours, deciding whether the request may be retried, and
    /// retires the connection when the error concerns all of it.
    fn classify(&self, e: h2::Error, context: &'static str, before_response: bool) -> Box<Error> {
        let reason = e.reason();
        let connection_wide = e.is_go_away() || e.is_io();
        if connection_wide {
            self.conn.mark_closed();
        }
        let downgrade = self.conn.may_downgrade();
        let (etype, retry) = if reason == Some(Reason::HTTP_1_1_REQUIRED) {
            if downgrade {
                self.conn.set_wants_h1();
            }
            (ErrorType::H2Downgrade, RetryType::Decided(downgrade))
        } else if e.is_go_away() && e.is_library() && reason == Some(Reason::PROTOCOL_ERROR) {
            // We could not make sense of what the server sent.
            (ErrorType::InvalidH2, RetryType::Decided(downgrade))
        } else if e.is_go_away() && e.is_remote() && reason == Some(Reason::NO_ERROR) {
            // The server is closing the connection and did not process this stream.
            (ErrorType::H2Error, RetryType::Decided(before_response))
        } else if e.is_reset() && reason == Some(Reason::REFUSED_STREAM) {
            (ErrorType::H2Error, RetryType::Decided(before_response))
        } else if e.is_io() {
            let retry = if before_response {
                RetryType::ReusedOnly
            } else {
                RetryType::Decided(false)
            };
            (ErrorType::ReadError, retry)
        } else {
            (ErrorType::H2Error, RetryType::Decided(false))
        };
        let etype = if self.conn.ping_timedout() {
            PING_TIMEDOUT
        } else {
            etype
        };
        let mut err = Error::because(etype, context, e);
        err.retry = retry;
        err.into_up()
    }
}

impl Drop for Http2Session {
    fn drop(&mut self) {
        if !self.exchange_done() && self.body.writer.is_some() && !self.failed {
            debug!("HTTP/2 stream dropped before its exchange ended; resetting it");
            self.reset(Reason::CANCEL);
        }
        if self.holds_slot {
            self.holds_slot = false;
            self.conn.release_stream();
        }
        if self.counted_active {
            metrics::h2_stream_closed(Side::Upstream);
        }
    }
}

#[cfg(test)]
mod tests;
