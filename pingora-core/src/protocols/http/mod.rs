//! HTTP: version-neutral sessions and tasks, HTTP/1 and HTTP/2 engines, shared helpers.

pub mod body_buffer;
pub mod bridge;
pub mod client;
pub mod compression;
pub mod conditional_filter;
pub mod date;
pub mod error_resp;
pub mod server;
pub mod subrequest;
pub mod v1;
pub mod v2;

use bytes::Bytes;
use http::HeaderMap;
use pingora_error::BError;
use pingora_http::ResponseHeader;

pub use server::Session as ServerSession;

/// The name this server gives itself in `Server` headers.
pub const SERVER_NAME: &[u8; 7] = b"Pingora";

/// What the client side of an exchange gave first: see
/// [`ServerSession::read_body_or_room`].
#[derive(Debug)]
pub enum ClientEvent {
    /// A piece of request body, or `None` at its end.
    Body(Option<Bytes>),
    /// The response can take this many more bytes of body without waiting.
    ResponseRoom(usize),
}

/// One step of a response as it flows from the upstream half of a proxy to the downstream half.
#[derive(Debug)]
pub enum HttpTask {
    /// The response header; `true` if no body follows.
    Header(Box<ResponseHeader>, bool),
    /// A piece of the body; `true` if it is the last.
    Body(Option<Bytes>, bool),
    /// A piece of an upgraded (for example WebSocket) connection's byte stream; `true` if the
    /// stream ended.
    UpgradedBody(Option<Bytes>, bool),
    /// The trailers, which end the response.
    Trailer(Option<Box<HeaderMap>>),
    /// The response is complete.
    Done,
    /// The response failed.
    Failed(BError),
}

impl HttpTask {
    /// Whether this task ends the response.
    pub fn is_end(&self) -> bool {
        match self {
            HttpTask::Header(_, end) | HttpTask::Body(_, end) | HttpTask::UpgradedBody(_, end) => {
                *end
            }
            HttpTask::Trailer(_) | HttpTask::Done | HttpTask::Failed(_) => true,
        }
    }

    /// The kind of task, for logs.
    pub fn type_str(&self) -> &'static str {
        match self {
            HttpTask::Header(..) => "Header",
            HttpTask::Body(..) => "Body",
            HttpTask::UpgradedBody(..) => "UpgradedBody",
            HttpTask::Trailer(_) => "Trailer",
            HttpTask::Done => "Done",
            HttpTask::Failed(_) => "Failed",
        }
    }
}
