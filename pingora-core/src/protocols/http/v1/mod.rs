//! HTTP/1.x (RFC 9112): head parsing, body framing and the client and server sessions.

pub mod client;
pub(crate) mod common;
pub(crate) mod decode;
pub(crate) mod encode;
pub(crate) mod head;
pub(crate) mod io;
pub mod server;

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
