//! The client side of an HTTP connection, whatever its version.

use std::time::Duration;

use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use super::v1::client::HttpSession as Http1Session;
use super::HttpTask;
use crate::protocols::digest::Digest;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::Stream;

/// One request and its response, sent to an upstream over HTTP/1 (HTTP/2 arrives later as a
/// second variant).
#[derive(Debug)]
pub enum HttpSession {
    /// An HTTP/1 exchange.
    H1(Http1Session),
}

impl HttpSession {
    /// The HTTP/1 session, if this is one.
    pub fn as_http1(&self) -> Option<&Http1Session> {
        match self {
            HttpSession::H1(s) => Some(s),
        }
    }

    /// The HTTP/1 session, mutably, if this is one.
    pub fn as_http1_mut(&mut self) -> Option<&mut Http1Session> {
        match self {
            HttpSession::H1(s) => Some(s),
        }
    }

    /// Writes the request head.
    pub async fn write_request_header(&mut self, req: Box<RequestHeader>) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.write_request_header(req).await.map(|_| ()),
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
        }
    }

    /// Queues a piece of request body without waiting for it to be written; it is written
    /// while the response is read. See [`Http1Session::queue_body`].
    pub fn queue_request_body(&mut self, data: &[u8], end: bool) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.queue_body(data, end),
        }
    }

    /// Bytes of request body queued and not written yet.
    pub fn queued_request_body_len(&self) -> usize {
        match self {
            HttpSession::H1(s) => s.queued_len(),
        }
    }

    /// A notification given once the queued request body is down to `len` bytes or fewer.
    /// See [`Http1Session::notify_queue_below`].
    pub fn notify_queue_below(&mut self, len: usize) -> std::sync::Arc<tokio::sync::Notify> {
        match self {
            HttpSession::H1(s) => s.notify_queue_below(len),
        }
    }

    /// Ends the request body.
    pub async fn finish_request_body(&mut self) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.finish_body().await.map(|_| ()),
        }
    }

    /// Bounds each read of the response.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            HttpSession::H1(s) => s.read_timeout = timeout,
        }
    }

    /// Bounds each write of the request.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        match self {
            HttpSession::H1(s) => s.write_timeout = timeout,
        }
    }

    /// Reads the response head (an informational one included).
    pub async fn read_response_header(&mut self) -> Result<()> {
        match self {
            HttpSession::H1(s) => s.read_response().await.map(|_| ()),
        }
    }

    /// Reads the next piece of the response body; `None` at its end.
    pub async fn read_response_body(&mut self) -> Result<Option<Bytes>> {
        match self {
            HttpSession::H1(s) => s.read_body_bytes().await,
        }
    }

    /// Reads what comes next of the response, as a task.
    pub async fn read_response_task(&mut self) -> Result<HttpTask> {
        match self {
            HttpSession::H1(s) => s.read_response_task().await,
        }
    }

    /// Whether the response has been read to its end.
    pub fn response_done(&mut self) -> bool {
        match self {
            HttpSession::H1(s) => s.is_body_done(),
        }
    }

    /// Closes the connection.
    pub async fn shutdown(&mut self) {
        match self {
            HttpSession::H1(s) => s.shutdown().await,
        }
    }

    /// The response head read, if any.
    pub fn response_header(&self) -> Option<&ResponseHeader> {
        match self {
            HttpSession::H1(s) => s.resp_header(),
        }
    }

    /// Everything known about the connection.
    pub fn digest(&self) -> Option<&Digest> {
        match self {
            HttpSession::H1(s) => Some(s.digest()),
        }
    }

    /// Everything known about the connection, to modify.
    pub fn digest_mut(&mut self) -> Option<&mut Digest> {
        match self {
            HttpSession::H1(s) => s.digest_mut(),
        }
    }

    /// The upstream's address.
    pub fn server_addr(&self) -> Option<&SocketAddr> {
        match self {
            HttpSession::H1(s) => s.server_addr(),
        }
    }

    /// Our end of the connection.
    pub fn client_addr(&self) -> Option<&SocketAddr> {
        match self {
            HttpSession::H1(s) => s.client_addr(),
        }
    }

    /// The connection, for HTTP/1.
    pub fn stream(&self) -> Option<&Stream> {
        match self {
            HttpSession::H1(s) => Some(s.stream()),
        }
    }
}
