//! The client side of an HTTP connection, whatever its version.

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use super::v1::client::HttpSession as Http1Session;
use super::v2::client::{request_has_no_body, Http2Session};
use super::HttpTask;
use crate::protocols::digest::Digest;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::Stream;

/// One request and its response, sent to an upstream over HTTP/1 or HTTP/2.
#[derive(Debug)]
pub enum HttpSession {
    /// An HTTP/1 exchange.
    H1(Http1Session),
    /// An HTTP/2 exchange: one stream of a shared connection.
    H2(Http2Session),
}

impl HttpSession {
    /// The HTTP/1 session, if this is one.
    pub fn as_http1(&self) -> Option<&Http1Session> {
        match self {
            HttpSession::H1(s) => Some(s),
            HttpSession::H2(_) => None,
        }
    }

    /// The HTTP/1 session, mutably, if this is one.
    pub fn as_http1_mut(&mut self) -> Option<&mut Http1Session> {
        match self {
            HttpSession::H1(s) => Some(s),
            HttpSession::H2(_) => None,
        }
    }

    /// The HTTP/2 session, if this is one.
    pub fn as_http2(&self) -> Option<&Http2Session> {
        match self {
            HttpSession::H2(s) => Some(s),
            HttpSession::H1(_) => None,
        }
    }

    /// The HTTP/2 session, mutably, if this is one.
    pub fn as_http2_mut(&mut self) -> Option<&mut Http2Session> {
        match self {
            HttpSession::H2(s) => Some(s),
            HttpSession::H1(_) => None,
        }
    }

    /// The HTTP version spoken: 1 or 2.
    pub fn http_version(&self) -> u8 {
        match self {
            HttpSession::H1(_) => 1,
            HttpSession::H2(_) => 2,
        }
    }

    /// Writes the request head. A head without `Content-Length` (or with 0) and without
    /// `Transfer-Encoding` says that no body follows, as in HTTP/1; over HTTP/2 it then ends
    /// the stream itself.
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.write_request_header(req).await.map(|_| ()),
            HttpSession::H2(s) => {
                let end = request_has_no_body(&req);
                s.write_request_header(req, end).await
            }
        }
    }

    /// Writes a piece of request body; `end` finishes the body.
    pub async fn write_request_body(&mut self, data: Bytes, end: bool) -> Result<()> {
        match self {
            HttpSession::H1(s) => {
                s.write_body(&data).await?;
                if end {
                    s.finish_body().await?;
                }
                Ok(())
            }
            HttpSession::H2(s) => s.write_request_body(data, end).await,
        }
    }

    /// Queues a piece of request body without waiting for it to be written; it is written
    /// while the response is read. See [`Http1Session::queue_body`] and
    /// [`Http2Session::queue_request_body`].
    pub fn queue_request_body(&mut self, data: &Bytes, end: bool) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.queue_body(data, end),
            HttpSession::H2(s) => s.queue_request_body(data.clone(), end),
        }
    }

    /// Queues the end of the request body with `trailers`, after every piece of body queued
    /// before: the request ends here, as with [`queue_request_body`](Self::queue_request_body)
    /// and `end`, and nothing is queued if it ended already.
    ///
    /// Over HTTP/2 they go in a `HEADERS` frame with `END_STREAM`. Over HTTP/1 they end a
    /// chunked body (`0\r\nName: value\r\n\r\n`); a body framed by `Content-Length` cannot
    /// carry them and they are dropped (RFC 9110 section 6.5 lets an intermediary discard
    /// trailers). Fields that must not be trailers (framing, routing, hop-by-hop ones) are the
    /// caller's to remove.
    ///
    /// # Errors
    /// Before the request head; an HTTP/1 body shorter than its `Content-Length`.
    pub fn queue_request_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.queue_trailers(&trailers),
            HttpSession::H2(s) => s.queue_request_trailers(trailers),
        }
    }

    /// Ends the request body with `trailers` and writes what is still queued. See
    /// [`queue_request_trailers`](Self::queue_request_trailers).
    ///
    /// # Errors
    /// As [`queue_request_trailers`](Self::queue_request_trailers), and a failed write.
    pub async fn write_request_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.write_trailers(&trailers).await,
            HttpSession::H2(s) => s.write_request_trailers(trailers).await,
        }
    }

    /// Bytes of request body queued and not written yet.
    pub fn queued_request_body_len(&self) -> usize {
        match self {
            HttpSession::H1(s) => s.queued_len(),
            HttpSession::H2(s) => s.queued_request_body_len(),
        }
    }

    /// A notification given once the queued request body is down to `len` bytes or fewer.
    /// See [`Http1Session::notify_queue_below`].
    pub fn notify_queue_below(&mut self, len: usize) -> std::sync::Arc<tokio::sync::Notify> {
        match self {
            HttpSession::H1(s) => s.notify_queue_below(len),
            HttpSession::H2(s) => s.notify_queue_below(len),
        }
    }

    /// Ends the request body.
    pub async fn finish_request_body(&mut self) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.finish_body().await.map(|_| ()),
            HttpSession::H2(s) => s.finish_request_body().await,
        }
    }

    /// Bounds each read of the response.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            HttpSession::H1(s) => s.read_timeout = timeout,
            HttpSession::H2(s) => s.read_timeout = timeout,
        }
    }

    /// Bounds each write of the request.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            HttpSession::H1(s) => s.write_timeout = timeout,
            HttpSession::H2(s) => s.write_timeout = timeout,
        }
    }

    /// Reads the response head (an informational one included).
    pub async fn read_response_header(&mut self) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.read_response().await.map(|_| ()),
            HttpSession::H2(s) => s.read_response_header().await,
        }
    }

    /// Reads the next piece of the response body; `None` at its end.
    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            HttpSession::H1(s) => s.read_body_bytes().await,
            HttpSession::H2(s) => s.read_response_body().await,
        }
    }

    /// Reads what comes next of the response, as a task.
    pub async fn read_response_task(&mut self) -> Result<HttpTask> {
        match self {
            HttpSession::H1(s) => s.read_response_task().await,
            HttpSession::H2(s) => s.read_response_task().await,
        }
    }

    /// Bytes of response body still to come, when known: the rest of a body of announced
    /// length (0 once it ended). `None` for a chunked or close-delimited body, one of
    /// unannounced length, or before the head.
    pub fn response_body_left(&self) -> Option<usize> {
        match self {
            HttpSession::H1(s) => s.response_body_left(),
            HttpSession::H2(s) => s.response_body_left(),
        }
    }

    /// [`HttpSession::read_response_task`], taking at most about `limit` bytes of body off the
    /// connection. An HTTP/2 upstream's body arrives in frames its flow-control window
    /// already bounds: the limit applies to HTTP/1 only.
    pub async fn read_response_task_at_most(&mut self, limit: usize) -> Result<HttpTask> {
        match self {
            HttpSession::H1(s) => s.read_response_task_at_most(limit).await,
            HttpSession::H2(s) => s.read_response_task().await,
        }
    }

    /// Whether the response has been read to its end.
    pub fn response_done(&mut self) -> bool {
        match self {
            HttpSession::H1(s) => s.is_body_done(),
            HttpSession::H2(s) => s.response_finished(),
        }
    }

    /// Closes the connection.
    pub async fn shutdown(&mut self) {
        match self {
            HttpSession::H1(s) => s.shutdown().await,
            HttpSession::H2(s) => s.shutdown().await,
        }
    }

    /// The response head read, if any.
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        match self {
            HttpSession::H1(s) => s.resp_header(),
            HttpSession::H2(s) => s.response_header(),
        }
    }

    /// Everything known about the connection.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            HttpSession::H1(s) => Some(s.digest()),
            HttpSession::H2(s) => Some(s.digest()),
        }
    }

    /// Everything known about the connection, to modify.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        match self {
            HttpSession::H1(s) => s.digest_mut(),
            // Shared by the connection's streams.
            HttpSession::H2(_) => None,
        }
    }

    /// The upstream's address.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        match self {
            HttpSession::H1(s) => s.server_addr(),
            HttpSession::H2(s) => s.server_addr(),
        }
    }

    /// Our end of the connection.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        match self {
            HttpSession::H1(s) => s.client_addr(),
            HttpSession::H2(s) => s.client_addr(),
        }
    }

    /// The connection, for HTTP/1 (an HTTP/2 connection belongs to its driver task).
    pub fn stream(&self) -> Option<&Stream> {
        match self {
            HttpSession::H1(s) => Some(s.stream()),
            HttpSession::H2(_) => None,
        }
    }

    /// The connection's identifier (its file descriptor).
    pub fn fd(&self) -> i32 {
        match self {
            HttpSession::H1(s) => s.id(),
            HttpSession::H2(s) => s.fd(),
        }
    }
}
