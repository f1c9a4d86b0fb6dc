//! HTTP/2 (RFC 9113), with framing, HPACK and flow control from the `h2` crate.

pub mod client;
pub mod server;
