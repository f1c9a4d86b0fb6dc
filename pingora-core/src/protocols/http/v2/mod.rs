//! HTTP/2 (RFC 9113), with framing, HPACK and flow control from the `h2` crate.

pub mod client;
pub(crate) mod guard;
mod room;
pub mod server;

use crate::protocols::digest::Digest;
use crate::protocols::Stream;

/// What is known about the connection under `stream`, shared by all its HTTP/2 streams.
pub fn connection_digest(stream: &Stream) -> Digest {
    Digest {
        ssl_digest: stream.get_ssl_digest(),
        timing_digest: stream.get_timing_digest(),
        proxy_digest: stream.get_proxy_digest(),
        socket_digest: stream.get_socket_digest(),
    }
}
