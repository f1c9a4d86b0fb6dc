//! Sans-IO HTTP message framing for Pingora.
//!
//! This crate turns bytes into HTTP message heads and bodies and back, without doing any IO:
//! every function works on a byte buffer the caller filled (or will write out) and says what it
//! found, or that it needs more bytes. `pingora-core`'s HTTP/1 and HTTP/2 sessions own the
//! sockets, the timeouts and the connection state, and call into this crate for the protocol
//! rules. Because nothing here is async or touches a socket, each rule can be tested, fuzzed
//! and benchmarked on byte slices alone.
//!
//! * [`h1`]: HTTP/1.x (RFC 9112). Parsing request and response heads
//!   ([`h1::head::parse_request`], [`h1::head::parse_response`]) with the checks a proxy needs on
//!   top of `httparse` (one framing, one `Host`, no conflicting lengths: the request-smuggling
//!   defences); deciding how a body is framed ([`h1::Framing`]); decoding bodies by length,
//!   chunked or until close ([`h1::decode::BodyDecoder`]); framing bodies for the wire
//!   ([`h1::encode::BodyEncoder`]); writing heads; and the `Connection`, `Content-Length`,
//!   `Transfer-Encoding` and `Keep-Alive` field rules ([`h1::fields`]).
//! * [`h2`]: the header side of HTTP/2 (RFC 9113 section 8) as it meets HTTP/1 heads: the
//!   `http` request an HTTP/1-style [`RequestHeader`](pingora_http::RequestHeader) becomes
//!   (pseudo-headers, connection-specific fields removed), the request head an HTTP/2 request
//!   gives (`Host` from `:authority`, cookies joined), and the body rules both versions share.
//!
//! # What it is not
//!
//! * Not a connection: there is no reading, writing, buffering policy, timeout, keepalive
//!   bookkeeping or pooling here. Those are `pingora-core`'s sessions
//!   (`pingora_core::protocols::http::v1::{client, server}`, `...::v2`).
//! * Not an HTTP/2 implementation: frames, HPACK, streams and flow control come from the `h2`
//!   crate, which this crate does not depend on.
//! * Not header storage: [`RequestHeader`](pingora_http::RequestHeader) and
//!   [`ResponseHeader`](pingora_http::ResponseHeader), which keep header-name case and raw
//!   paths, are `pingora-http`'s.
//!
//! # Example
//!
//! Parsing a request head and then its chunked body from one buffer:
//!
//! ```
//! use bytes::BytesMut;
//! use pingora_http_codec::h1::decode::{BodyDecoder, Decoded};
//! use pingora_http_codec::h1::{head, Framing, Limits};
//!
//! let limits = Limits::default();
//! let mut buf = BytesMut::from(
//!     &b"POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n\
//!        5\r\nhello\r\n0\r\n\r\n"[..],
//! );
//! let request = head::parse_request(&mut buf, &limits)?.expect("the head is complete");
//! assert_eq!(request.header.raw_path(), b"/upload");
//! assert_eq!(request.framing, Framing::Chunked);
//!
//! let mut body = BodyDecoder::new(request.framing);
//! let mut data = Vec::new();
//! loop {
//!     match body.decode(&mut buf, false, &limits)? {
//!         Decoded::Data(piece) => data.extend_from_slice(&piece),
//!         Decoded::Done => break,
//!         Decoded::NeedMore => unreachable!("the whole body is in the buffer"),
//!     }
//! }
//! assert_eq!(data, b"hello");
//! # Ok::<(), Box<pingora_error::Error>>(())
//! ```
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod h1;
pub mod h2;
