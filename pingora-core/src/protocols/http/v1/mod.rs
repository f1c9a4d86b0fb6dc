//! HTTP/1.x (RFC 9112): the client and server sessions.
//!
//! The sessions own the connection (reads, writes, timeouts, keepalive); parsing heads, framing
//! and decoding bodies is `pingora-http-codec`'s [`h1`](pingora_http_codec::h1), which works on
//! byte buffers without IO.

pub mod client;
pub(crate) mod io;
pub mod server;

pub use pingora_http_codec::h1::Limits;
