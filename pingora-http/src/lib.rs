//! HTTP request and response headers that keep header-name case and raw request paths.
//!
//! HTTP field names are case-insensitive (RFC 9110 section 5.1), and [`http::HeaderMap`]
//! stores them in lowercase. A proxy should still forward what it received byte for byte:
//! some peers do care, and a changed spelling is a fingerprint. [`RequestHeader`] and
//! [`ResponseHeader`] wrap [`http::request::Parts`] and [`http::response::Parts`] and also
//! record how every name was spelled, so [`RequestHeader::header_to_h1_wire`] writes
//! `X-Request-ID: 1` back exactly as it came in. [`RequestHeader`] also keeps request paths
//! that are not valid UTF-8, which [`http::Uri`] cannot hold.
//!
//! ```
//! use bytes::BytesMut;
//! use pingora_http::RequestHeader;
//!
//! let mut req = RequestHeader::build("GET", b"/index.html", None)?;
//! req.append_header("Host", "example.com")?;
//! req.append_header("x-REQUEST-id", "42")?;
//! assert_eq!(req.headers["x-request-id"], "42"); // reads go through `http::HeaderMap`
//!
//! let mut wire = BytesMut::new();
//! req.header_to_h1_wire(&mut wire);
//! assert_eq!(&wire[..], b"Host: example.com\r\nx-REQUEST-id: 42\r\n");
//! # Ok::<(), pingora_error::BError>(())
//! ```
//!
//! # The header map is the source of truth
//!
//! Both types dereference to their `Parts`, mutably too, because Pingora 0.8 code reads and
//! edits `req.headers`, `req.uri` and the rest directly. Editing `headers` that way cannot
//! update the recorded spellings, so they are never trusted to list the headers: the head
//! is written from the header map, in its order, and each name takes the recorded spelling
//! for that name (the `k`-th value of a name takes its `k`-th recorded spelling). A header
//! added through `DerefMut` is therefore written with its [`default_spelling`], and one
//! removed through `DerefMut` is not written. The next `append_header`, `insert_header` or
//! `remove_header` drops the spellings of headers that are gone. Prefer those methods: they
//! record the spelling, validate the name and value, and never panic.
//!
//! ```
//! use pingora_http::RequestHeader;
//!
//! let mut req = RequestHeader::build("GET", b"/", None)?;
//! req.append_header("HOST", "example.com")?;
//! req.append_header("X-Old", "1")?;
//! req.headers.remove("x-old"); // through DerefMut: no spelling is updated
//! req.headers.insert("content-length", 0.into());
//!
//! let mut wire = Vec::new();
//! req.header_to_h1_wire(&mut wire);
//! assert_eq!(wire, b"HOST: example.com\r\nContent-Length: 0\r\n");
//! # Ok::<(), pingora_error::BError>(())
//! ```
//!
//! # Validation
//!
//! Names must be valid field names (RFC 9110 section 5.1) and values valid
//! [`HeaderValue`](http::HeaderValue)s, which exclude CR, LF and NUL, so no header set
//! through this crate can inject a line into the head. Request targets are checked the same
//! way, and reason phrases must be `*( HTAB / SP / VCHAR / obs-text )` (RFC 9112 section 4).
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod case_header_name;
mod case_map;
pub mod conditional;
mod request;
mod response;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub use case_header_name::{default_spelling, CaseHeaderName, IntoCaseHeaderName};
#[doc(no_inline)]
pub use http::method::Method;
#[doc(no_inline)]
pub use http::status::StatusCode;
#[doc(no_inline)]
pub use http::version::Version;
#[doc(no_inline)]
pub use http::HeaderMap as HMap;
pub use request::RequestHeader;
pub use response::ResponseHeader;

/// The types most code needs: `use pingora_http::prelude::*;`.
pub mod prelude {
    pub use crate::{RequestHeader, ResponseHeader};
}

/// A header name as it is written on the wire: what [`RequestHeader::case_header_iter`] and
/// [`RequestHeader::map`] report for each header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderNameVariant<'a> {
    /// The spelling recorded when the header was added.
    Case(&'a CaseHeaderName),
    /// No spelling of its own is kept: the name's [`default_spelling`], or its lowercase
    /// form when that is how it was given (both need no storage).
    Titled(&'a str),
}

// === impl HeaderNameVariant ===

impl<'a> HeaderNameVariant<'a> {
    /// The name as written on the wire.
    #[inline]
    pub fn as_slice(&self) -> &'a [u8] {
        match *self {
            HeaderNameVariant::Case(name) => name.as_slice(),
            HeaderNameVariant::Titled(name) => name.as_bytes(),
        }
    }
}

/// The most headers a size hint reserves room for. `http` panics past 32,768 entries and
/// grows its tables by a third, so hints are capped well below that; more headers than this
/// can still be added.
const MAX_HEADER_CAPACITY: usize = 4096;

/// Room reserved when no size hint is given.
const DEFAULT_HEADER_CAPACITY: usize = 8;

/// How many headers to reserve room for, given a caller's hint.
fn header_capacity(size_hint: Option<usize>) -> usize {
    size_hint
        .unwrap_or(DEFAULT_HEADER_CAPACITY)
        .min(MAX_HEADER_CAPACITY)
}
