//! HTTP/1.x (RFC 9112) without IO: message heads, body framing, body codecs.
//!
//! A session reading from a peer keeps one buffer: it calls [`head::parse_request`] (or
//! [`head::parse_response`]) until a head is complete, builds a [`decode::BodyDecoder`] from
//! the head's [`Framing`], and feeds it the same buffer until the body is done; bytes after the
//! body (a pipelined request) stay in the buffer. A session writing to a peer writes a head
//! with [`head::write_request_head`] or [`head::write_response_head`] and frames each piece of
//! body with a [`encode::BodyEncoder`] made from [`head::outgoing_framing`].
//!
//! Errors are [`pingora_error::Error`]s: [`ErrorType::HTTPStatus`] with the status to answer
//! for a bad request, [`ErrorType::InvalidHTTPHeader`] for a bad response or body framing,
//! [`ErrorType::ConnectionClosed`] for a body cut short.
//!
//! [`ErrorType::HTTPStatus`]: pingora_error::ErrorType::HTTPStatus
//! [`ErrorType::InvalidHTTPHeader`]: pingora_error::ErrorType::InvalidHTTPHeader
//! [`ErrorType::ConnectionClosed`]: pingora_error::ErrorType::ConnectionClosed

pub mod decode;
pub mod encode;
pub mod fields;
pub mod head;

/// How the body of a message is delimited (RFC 9112 section 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body at all.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Everything until the peer closes (responses, and upgraded connections).
    UntilClose,
}

/// Limits on what an HTTP/1 peer may send. Exceeding one is an error, answered with the
/// appropriate 4xx status on the server side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most header fields in a message head (default 256). More: 431.
    pub max_headers: usize,
    /// Most bytes in a message head, request line included (default 64 KiB). More: 431, or
    /// 414 when the request line alone is longer.
    pub max_header_bytes: usize,
    /// Most bytes in one chunk size line, extensions included (default 8 KiB).
    pub max_chunk_head_bytes: usize,
    /// Most bytes in the trailer section of a chunked body (default 64 KiB).
    pub max_trailer_bytes: usize,
}

// === impl Limits ===

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: 256,
            max_header_bytes: 64 * 1024,
            max_chunk_head_bytes: 8 * 1024,
            max_trailer_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_headers`].
    pub fn max_headers(mut self, n: usize) -> Self {
        self.max_headers = n;
        self
    }

    /// Sets [`Limits::max_header_bytes`].
    pub fn max_header_bytes(mut self, n: usize) -> Self {
        self.max_header_bytes = n;
        self
    }

    /// Sets [`Limits::max_chunk_head_bytes`].
    pub fn max_chunk_head_bytes(mut self, n: usize) -> Self {
        self.max_chunk_head_bytes = n;
        self
    }

    /// Sets [`Limits::max_trailer_bytes`].
    pub fn max_trailer_bytes(mut self, n: usize) -> Self {
        self.max_trailer_bytes = n;
        self
    }
}
