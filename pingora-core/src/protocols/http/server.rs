//! The version-neutral server session that HTTP applications see.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use pingora_error::{BError, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use super::error_resp;
use super::subrequest::server::HttpSession as SessionSubrequest;
use super::v1::server::HttpSession as SessionV1;
use super::v2::server::{self as v2, HttpSession as SessionV2};
use super::{ClientEvent, HttpTask};
use crate::protocols::digest::Digest;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::Stream;

/// The server side of one HTTP exchange (a request and its response), whatever the HTTP
/// version: HTTP/1, one stream of an HTTP/2 connection, or a subrequest (a copy of a client's
/// request served with no socket, see [`SessionSubrequest`]).
#[derive(Debug)]
pub struct Session {
    inner: Inner,
    /// What the application left for this request on the previous request of the connection.
    persisted: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// The request trailers, once read from the protocol session.
    request_trailers: Option<Box<HeaderMap>>,
    request_trailers_read: bool,
}

#[derive(Debug)]
enum Inner {
    H1(Box<SessionV1>),
    H2(Box<SessionV2>),
    Subrequest(Box<SessionSubrequest>),
}

macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match &$self.inner {
            Inner::H1($s) => $body,
            Inner::H2($s) => $body,
            Inner::Subrequest($s) => $body,
        }
    };
    (mut $self:expr, $s:ident => $body:expr) => {
        match &mut $self.inner {
            Inner::H1($s) => $body,
            Inner::H2($s) => $body,
            Inner::Subrequest($s) => $body,
        }
    };
}

/// Like `each!`, for what only HTTP/1 has: `$other` is the answer of HTTP/2 and subrequests.
macro_rules! h1_only {
    ($self:expr, $s:ident => $body:expr, $other:expr) => {
        match &$self.inner {
            Inner::H1($s) => $body,
            Inner::H2(_) | Inner::Subrequest(_) => $other,
        }
    };
    (mut $self:expr, $s:ident => $body:expr, $other:expr) => {
        match &mut $self.inner {
            Inner::H1($s) => $body,
            Inner::H2(_) | Inner::Subrequest(_) => $other,
        }
    };
}

impl Session {
    /// Leaves `ctx` for the application to find with [`Session::take_persisted_context`].
    pub fn set_persisted_context(&mut self, ctx: Box<dyn std::any::Any + Send + Sync>) {
        self.persisted = Some(ctx);
    }

    /// Takes what the application kept from the previous request on this connection (see
    /// [`HttpPersistentSettings::set_user_context`](crate::apps::HttpPersistentSettings::set_user_context)).
    pub fn take_persisted_context(&mut self) -> Option<Box<dyn std::any::Any + Send + Sync>> {
        self.persisted.take()
    }

    /// An HTTP/1 session over `stream`, waiting for a request.
    pub fn new_http1(stream: Stream) -> Self {
        Session {
            inner: Inner::H1(Box::new(SessionV1::new(stream))),
            persisted: None,
            request_trailers: None,
            request_trailers_read: false,
        }
    }

    /// An HTTP/1 session over `stream` whose first bytes, already read, are in `buf`.
    pub(crate) fn new_http1_with_buffer(stream: Stream, buf: bytes::BytesMut) -> Self {
        Session {
            inner: Inner::H1(Box::new(SessionV1::new_with_buffer(stream, buf))),
            persisted: None,
            request_trailers: None,
            request_trailers_read: false,
        }
    }

    /// Wraps an HTTP/1 session.
    pub fn from_http1(session: SessionV1) -> Self {
        Session {
            inner: Inner::H1(Box::new(session)),
            persisted: None,
            request_trailers: None,
            request_trailers_read: false,
        }
    }

    /// A session for one HTTP/2 stream, whose request head is already in.
    pub fn new_http2(session: SessionV2) -> Self {
        Session {
            inner: Inner::H2(Box::new(session)),
            persisted: None,
            request_trailers: None,
            request_trailers_read: false,
        }
    }

    /// A session serving a subrequest (see [`SessionSubrequest::new_from_session`]).
    pub fn new_subrequest(session: SessionSubrequest) -> Self {
        Session {
            inner: Inner::Subrequest(Box::new(session)),
            persisted: None,
            request_trailers: None,
            request_trailers_read: false,
        }
    }

    /// The HTTP/1 session, if this is one.
    pub fn as_http1(&self) -> Option<&SessionV1> {
        match &self.inner {
            Inner::H1(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTP/1 session, to modify, if this is one.
    pub fn as_http1_mut(&mut self) -> Option<&mut SessionV1> {
        match &mut self.inner {
            Inner::H1(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTP/2 stream session, if this is one.
    pub fn as_http2(&self) -> Option<&SessionV2> {
        match &self.inner {
            Inner::H2(s) => Some(s),
            _ => None,
        }
    }

    /// The HTTP/2 stream session, to modify, if this is one.
    pub fn as_http2_mut(&mut self) -> Option<&mut SessionV2> {
        match &mut self.inner {
            Inner::H2(s) => Some(s),
            _ => None,
        }
    }

    /// The subrequest session, if this is one.
    pub fn as_subrequest(&self) -> Option<&SessionSubrequest> {
        match &self.inner {
            Inner::Subrequest(s) => Some(s),
            _ => None,
        }
    }

    /// The subrequest session, to modify, if this is one.
    pub fn as_subrequest_mut(&mut self) -> Option<&mut SessionSubrequest> {
        match &mut self.inner {
            Inner::Subrequest(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this session serves a subrequest.
    pub fn is_subrequest(&self) -> bool {
        matches!(self.inner, Inner::Subrequest(_))
    }

    /// Whether this is an HTTP/2 stream.
    pub fn is_http2(&self) -> bool {
        matches!(self.inner, Inner::H2(_))
    }

    /// Reads the request head. Returns `false` if the client closed the connection (or stayed
    /// idle past the keepalive timeout) before sending a request. An HTTP/2 stream's head is
    /// read already: `true`. A subrequest holds its request from the start: `true` the first
    /// time, `false` afterwards.
    ///
    /// # Errors
    /// See [`SessionV1::read_request`]: [`HTTPStatus`](pingora_error::ErrorType::HTTPStatus) carries the status to answer.
    pub async fn read_request(&mut self) -> Result<bool> {
        let read = match &mut self.inner {
            Inner::H1(s) => s.read_request().await?.is_some(),
            Inner::H2(_) => true,
            // A subrequest runs inside its parent's task or in one of its own: it does not
            // replace the request a crash report names.
            Inner::Subrequest(s) => return Ok(s.read_request().await?.is_some()),
        };
        #[cfg(feature = "sentry")]
        if read {
            crate::reporting::set_request(self.req_header());
        }
        Ok(read)
    }

    /// The request head.
    ///
    /// # Panics
    /// Before [`Session::read_request`] returned `true`.
    pub fn req_header(&self) -> &RequestHeader {
        each!(self, s => s.req_header())
    }

    /// The request head, to modify.
    ///
    /// # Panics
    /// Before [`Session::read_request`] returned `true`.
    pub fn req_header_mut(&mut self) -> &mut RequestHeader {
        each!(mut self, s => s.req_header_mut())
    }

    /// The first value of the request header `name`.
    pub fn get_header<K: header::AsHeaderName>(&self, name: K) -> Option<&HeaderValue> {
        each!(self, s => s.get_header(name))
    }

    /// The first value of the request header `name` as bytes (empty if absent).
    pub fn get_header_bytes<K: header::AsHeaderName>(&self, name: K) -> &[u8] {
        each!(self, s => s.get_header_bytes(name))
    }

    /// Reads the next piece of the request body; `None` at its end.
    pub async fn read_request_body(&mut self) -> Result<Option<Bytes>> {
        each!(mut self, s => s.read_body_bytes().await)
    }

    /// Reads the next piece of the request body if one is expected, otherwise waits for the
    /// client to disconnect (an error) while a response is being produced.
    pub async fn read_body_or_idle(&mut self, no_body_expected: bool) -> Result<Option<Bytes>> {
        each!(mut self, s => s.read_body_or_idle(no_body_expected).await)
    }

    /// [`Session::read_body_or_idle`], and with `room_for` also room for more response body,
    /// up to that many bytes (see [`Session::response_room`]); only an HTTP/2 stream ever
    /// waits for room.
    pub async fn read_body_or_room(
        &mut self,
        no_body_expected: bool,
        room_for: Option<usize>,
    ) -> Result<ClientEvent> {
        match &mut self.inner {
            Inner::H2(s) => s.read_body_or_room(no_body_expected, room_for).await,
            Inner::H1(s) => s
                .read_body_or_idle(no_body_expected)
                .await
                .map(ClientEvent::Body),
            Inner::Subrequest(s) => s
                .read_body_or_idle(no_body_expected)
                .await
                .map(ClientEvent::Body),
        }
    }

    /// How many bytes of response body (up to `want`) can be written now without waiting,
    /// when that is bounded: on an HTTP/2 stream once its head is written, the client's window
    /// within the stream's send buffer and the connection's budget of queued bytes (see
    /// [`SessionV2::response_room`]). `None` when writes are bounded by the connection
    /// instead (HTTP/1 writes go straight to the socket) or no body can be written.
    pub fn response_room(&mut self, want: usize) -> Option<usize> {
        match &mut self.inner {
            Inner::H2(s) => s.response_room(want),
            Inner::H1(_) | Inner::Subrequest(_) => None,
        }
    }

    /// The request trailers, once the request body was read whole: the trailer section of a
    /// chunked HTTP/1 body, or the trailing `HEADERS` frame of an HTTP/2 stream. `None` if the
    /// request has none, or while its body is not read whole (nothing is waited for then).
    ///
    /// The trailers are kept once read: later calls return them again, so that a request sent
    /// upstream a second time (a retry) carries them too.
    ///
    /// # Errors
    /// An HTTP/2 stream that failed while its trailers were read.
    pub async fn read_request_trailers(&mut self) -> Result<Option<Box<HeaderMap>>> {
        if !self.request_trailers_read {
            if !self.is_body_done() {
                return Ok(None);
            }
            self.request_trailers = match &mut self.inner {
                Inner::H1(s) => s.take_request_trailers(),
                Inner::H2(s) => s.read_trailers().await?.map(Box::new),
                Inner::Subrequest(s) => s.take_request_trailers(),
            };
            self.request_trailers_read = true;
        }
        Ok(self.request_trailers.clone())
    }

    /// Reads and discards the rest of the request body.
    pub async fn drain_request_body(&mut self) -> Result<()> {
        each!(mut self, s => s.drain_request_body().await)
    }

    /// Whether the whole request body was read.
    pub fn is_body_done(&mut self) -> bool {
        each!(self, s => s.is_body_done())
    }

    /// Whether the request has no body.
    pub fn is_body_empty(&mut self) -> bool {
        each!(self, s => s.is_body_empty())
    }

    /// Writes the response head. See [`SessionV1::write_response_header`].
    ///
    /// On HTTP/2 a head that cannot be followed by a body (an answer to `HEAD`, 204, 304, or
    /// `Content-Length: 0`) ends the stream.
    pub async fn write_response_header(&mut self, resp: Box<ResponseHeader>) -> Result<()> {
        match &mut self.inner {
            Inner::H1(s) => s.write_response_header(resp).await,
            Inner::H2(s) => {
                let end = v2::response_has_no_body(&s.req_header().method, &resp);
                s.write_response_header(resp, end).await
            }
            Inner::Subrequest(s) => s.write_response_header(resp).await,
        }
    }

    /// Writes the response head from a borrowed value.
    pub async fn write_response_header_ref(&mut self, resp: &ResponseHeader) -> Result<()> {
        match &mut self.inner {
            Inner::H1(s) => s.write_response_header_ref(resp).await,
            Inner::H2(_) => self.write_response_header(Box::new(resp.clone())).await,
            Inner::Subrequest(s) => s.write_response_header_ref(resp).await,
        }
    }

    /// Writes a piece of response body; `end` finishes the body.
    pub async fn write_response_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        match &mut self.inner {
            Inner::H1(s) => {
                if !data.is_empty() {
                    s.write_body(&data).await?;
                }
                if end {
                    s.finish_body().await?;
                }
                Ok(())
            }
            Inner::H2(s) => {
                if data.is_empty() && !end {
                    return Ok(());
                }
                s.write_body(data, end).await
            }
            Inner::Subrequest(s) => {
                if !data.is_empty() {
                    s.write_body(data).await?;
                }
                if end {
                    s.finish().await?;
                }
                Ok(())
            }
        }
    }

    /// Ends the response with `trailers`. HTTP/1 sends them only with a chunked body.
    pub async fn write_response_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        match &mut self.inner {
            Inner::H1(s) => s
                .finish_body_with_trailers(Some(&trailers))
                .await
                .map(|_| ()),
            Inner::H2(s) => s.write_trailers(trailers).await,
            Inner::Subrequest(s) => s.write_trailers(Some(Box::new(trailers))).await,
        }
    }

    /// Writes a batch of response tasks. Returns whether the response ended.
    pub async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        each!(mut self, s => s.response_duplex_vec(tasks).await)
    }

    /// Ends the response body.
    pub async fn finish_body(&mut self) -> Result<()> {
        match &mut self.inner {
            Inner::H1(s) => s.finish_body().await.map(|_| ()),
            Inner::H2(s) => {
                if s.response_written().is_none() {
                    return Ok(());
                }
                s.finish().await
            }
            Inner::Subrequest(s) => s.finish().await.map(|_| ()),
        }
    }

    /// Ends the exchange. Returns the connection if it can serve another request; never for
    /// an HTTP/2 stream, whose connection serves other streams meanwhile, nor for a subrequest,
    /// which has none. A subrequest whose response did not end reports a failure to its handle.
    pub async fn finish(self) -> Result<Option<Stream>> {
        match self.inner {
            Inner::H1(mut s) => {
                if s.response_written().is_some() {
                    s.finish_body().await?;
                }
                s.reuse().await
            }
            Inner::H2(mut s) => {
                if s.response_written().is_some() {
                    s.finish().await?;
                }
                Ok(None)
            }
            Inner::Subrequest(mut s) => {
                s.finish().await?;
                Ok(None)
            }
        }
    }

    /// Tells whoever waits on this session that serving it failed with `e`, for cleanup other
    /// than [`Session::finish`]: a subrequest passes `e` to its handle; nothing to do for HTTP/1
    /// and HTTP/2, whose resources go with the session.
    pub fn on_proxy_failure(&mut self, e: BError) {
        if let Inner::Subrequest(s) = &mut self.inner {
            s.on_proxy_failure(e);
        }
    }

    /// Answers with an empty error response of status `code` (see
    /// [`error_resp::gen_error_response`]).
    pub async fn respond_error(&mut self, code: u16) -> Result<()> {
        self.respond_error_with_body(code, Bytes::new()).await
    }

    /// Answers with an error response of status `code` and `body`.
    pub async fn respond_error_with_body(&mut self, code: u16, body: Bytes) -> Result<()> {
        let mut resp = Self::generate_error(code);
        if !body.is_empty() {
            resp.set_content_length(body.len())?;
        }
        self.write_error_response(resp, body).await
    }

    /// Writes `resp` and `body` as the response, unless a final response head was already
    /// written. The connection is kept only if the whole request body was read.
    pub async fn write_error_response(&mut self, resp: ResponseHeader, body: Bytes) -> Result<()> {
        if self.response_written().is_some() {
            return Ok(());
        }
        if !self.is_body_done() {
            self.set_keepalive(None);
        }
        self.write_response_header(Box::new(resp)).await?;
        self.write_response_body(body, true).await
    }

    /// A ready-made error response of status `code`: no body, `Server`, and
    /// `Cache-Control: private, no-store`.
    pub fn generate_error(code: u16) -> ResponseHeader {
        error_resp::gen_error_response(code)
    }

    /// Whether the request carries `Expect: 100-continue` and a body.
    pub fn is_expect_continue_req(&self) -> bool {
        each!(self, s => s.is_expect_continue_req())
    }

    /// See [`SessionV1::set_keepalive`].
    pub fn set_keepalive(&mut self, duration: Option<u64>) {
        h1_only!(mut self, s => s.set_keepalive(duration), ())
    }

    /// See [`SessionV1::get_keepalive_timeout`].
    pub fn get_keepalive(&self) -> Option<u64> {
        h1_only!(self, s => s.get_keepalive_timeout(), None)
    }

    /// See [`SessionV1::set_keepalive_reuses_remaining`].
    pub fn set_keepalive_reuses_remaining(&mut self, reuses: Option<u32>) {
        h1_only!(mut self, s => s.set_keepalive_reuses_remaining(reuses), ())
    }

    /// See [`SessionV1::get_keepalive_reuses_remaining`].
    pub fn get_keepalive_reuses_remaining(&self) -> Option<u32> {
        h1_only!(self, s => s.get_keepalive_reuses_remaining(), None)
    }

    /// See [`SessionV1::set_read_timeout`].
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        each!(mut self, s => s.set_read_timeout(timeout))
    }

    /// See [`SessionV1::set_write_timeout`].
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        each!(mut self, s => s.set_write_timeout(timeout))
    }

    /// See [`SessionV1::set_total_drain_timeout`].
    pub fn set_total_drain_timeout(&mut self, timeout: Option<Duration>) {
        each!(mut self, s => s.set_total_drain_timeout(timeout))
    }

    /// See [`SessionV1::set_min_send_rate`].
    pub fn set_min_send_rate(&mut self, rate: Option<usize>) {
        h1_only!(mut self, s => s.set_min_send_rate(rate), ())
    }

    /// See [`SessionV1::set_ignore_info_resp`].
    pub fn set_ignore_info_resp(&mut self, ignore: bool) {
        h1_only!(mut self, s => s.set_ignore_info_resp(ignore), ())
    }

    /// See [`SessionV1::set_close_on_response_before_downstream_finish`].
    pub fn set_close_on_response_before_downstream_finish(&mut self, close: bool) {
        h1_only!(mut self, s => s.set_close_on_response_before_downstream_finish(close), ())
    }

    /// "METHOD path, Host: host", for logs.
    pub fn request_summary(&self) -> String {
        each!(self, s => s.request_summary())
    }

    /// The final response head written, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        each!(self, s => s.response_written())
    }

    /// Closes the connection (a subrequest's channels).
    pub async fn shutdown(&mut self) {
        match &mut self.inner {
            Inner::H1(s) => s.shutdown().await,
            Inner::H2(s) => s.shutdown().await,
            Inner::Subrequest(s) => s.shutdown(),
        }
    }

    /// The request head as received, in HTTP/1 wire form.
    pub fn to_h1_raw(&self) -> Bytes {
        match &self.inner {
            Inner::H1(s) => s.get_headers_raw_bytes(),
            Inner::H2(s) => s.pseudo_raw_h1_request_header(),
            Inner::Subrequest(s) => s.get_headers_raw_bytes(),
        }
    }

    /// Starts keeping the first 64 KiB of the request body for retries.
    pub fn enable_retry_buffering(&mut self) {
        each!(mut self, s => s.enable_retry_buffering())
    }

    /// The request body read so far, if it was kept whole.
    pub fn get_retry_buffer(&self) -> Option<Bytes> {
        each!(self, s => s.get_retry_buffer())
    }

    /// Whether the retry buffer lost part of the body.
    pub fn retry_buffer_truncated(&self) -> bool {
        each!(self, s => s.retry_buffer_truncated())
    }

    /// Sends `100 Continue` if nothing was sent yet.
    pub async fn write_continue_response(&mut self) -> Result<()> {
        each!(mut self, s => s.write_continue_response().await)
    }

    /// Whether the request asks to switch protocols.
    pub fn is_upgrade_req(&self) -> bool {
        each!(self, s => s.is_upgrade_req())
    }

    /// Whether the connection switched protocols (101) or became a tunnel.
    pub fn was_upgraded(&self) -> bool {
        match &self.inner {
            Inner::H1(s) => s.was_upgraded(),
            Inner::H2(_) => false,
            Inner::Subrequest(s) => s.was_upgraded(),
        }
    }

    /// Bytes of response body written.
    pub fn body_bytes_sent(&self) -> usize {
        each!(self, s => s.body_bytes_sent())
    }

    /// Bytes of request body read.
    pub fn body_bytes_read(&self) -> usize {
        each!(self, s => s.body_bytes_read())
    }

    /// Everything known about the connection (for a subrequest: its parent's).
    pub fn digest(&self) -> Option<&Digest> {
        match &self.inner {
            Inner::H1(s) => Some(s.digest()),
            Inner::H2(s) => Some(s.digest()),
            Inner::Subrequest(s) => s.digest(),
        }
    }

    /// Everything known about the connection, to modify.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        match &mut self.inner {
            Inner::H1(s) => Some(s.digest_mut()),
            Inner::H2(s) => s.digest_mut(),
            Inner::Subrequest(s) => s.digest_mut(),
        }
    }

    /// The client's address.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        each!(self, s => s.client_addr())
    }

    /// Our address the client connected to.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        each!(self, s => s.server_addr())
    }

    /// The connection, when the session owns one (HTTP/1).
    pub fn stream(&self) -> Option<&Stream> {
        h1_only!(self, s => Some(s.stream()), None)
    }
}

impl From<SessionV1> for Session {
    fn from(session: SessionV1) -> Self {
        Session::from_http1(session)
    }
}
