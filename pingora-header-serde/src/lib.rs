//! Compact serialization of HTTP response headers, for storing them next to cached bodies.
//!
//! [`HeaderSerde`] writes a [`ResponseHeader`] in its HTTP/1 wire form, header names spelled as
//! they were received, and compresses that with [zstd](https://facebook.github.io/zstd/).
//! Response heads are small and repetitive across responses (the same names, servers, date
//! formats and cache directives), which is what a zstd *dictionary* trained on sample heads
//! captures: with one ([`dict::train`], or the `trainer` binary), a typical head takes a
//! fraction of its wire size; without one, zstd alone saves much less on inputs this short.
//!
//! ```
//! use pingora_header_serde::HeaderSerde;
//! use pingora_http::ResponseHeader;
//!
//! let serde = HeaderSerde::new(None);
//! let mut resp = ResponseHeader::build(200, None)?;
//! resp.append_header("Content-Type", "text/html")?;
//! resp.append_header("x-CUSTOM", "kept as spelled")?;
//!
//! let stored = serde.serialize(&resp)?;
//! let back = serde.deserialize(&stored)?;
//! assert_eq!(back.status, 200);
//! assert_eq!(back.headers, resp.headers);
//!
//! let mut wire = Vec::new();
//! back.header_to_h1_wire(&mut wire);
//! assert_eq!(wire, b"Content-Type: text/html\r\nx-CUSTOM: kept as spelled\r\n");
//! # Ok::<(), pingora_error::BError>(())
//! ```
//!
//! # What survives a round trip
//!
//! The status code, the reason phrase, the HTTP version (0.9 to 3), every header value byte
//! for byte (including bytes that are not UTF-8 and surrounding whitespace), the order of the
//! headers as the map keeps it, and the spelling of every name. Extensions do not.
//!
//! # Format
//!
//! One zstd frame (with its content size) holding the head as HTTP/1 text; see the `wire`
//! notes in the source. Frames written by Pingora 0.8's `pingora-header-serde` read back the
//! same, given the same dictionary.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod codec;
pub mod dict;
mod wire;

use std::fmt;

use bytes::Bytes;
use pingora_error::Result;
use pingora_http::ResponseHeader;

use codec::Codec;

/// The zstd level: on inputs of a few hundred bytes higher levels gain next to nothing and
/// cost time.
const COMPRESSION_LEVEL: i32 = 3;

/// Serializes and deserializes [`ResponseHeader`]s to and from compact bytes.
///
/// Share one instance between threads: each thread gets its own zstd contexts and buffers on
/// first use, kept for the life of the instance. Data serialized with a dictionary can only be
/// read with the same dictionary.
pub struct HeaderSerde {
    codec: Codec,
}

impl HeaderSerde {
    /// Creates a serializer, with a zstd dictionary if `dict` is given (see [`dict`]).
    ///
    /// Bytes that are not a trained dictionary are used as a raw-content dictionary; any
    /// problem with the dictionary shows as an error from the first
    /// [`serialize`](Self::serialize) or [`deserialize`](Self::deserialize).
    pub fn new(dict: Option<Vec<u8>>) -> Self {
        HeaderSerde {
            codec: Codec::new(COMPRESSION_LEVEL, dict),
        }
    }

    /// Serializes `header` to a compressed buffer of exactly the needed size.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`](pingora_error::ErrorType::InternalError) if zstd fails
    /// (it does not on valid input unless memory runs out).
    pub fn serialize(&self, header: &ResponseHeader) -> Result<Vec<u8>> {
        self.codec.compress(|buf| wire::encode(header, buf))
    }

    /// Reads back a header written by [`serialize`](Self::serialize).
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`](pingora_error::ErrorType::InternalError) if `data` is not
    /// a zstd frame this serializer can decompress (corrupt, truncated, made with another
    /// dictionary, or larger than 1 MiB uncompressed);
    /// [`ErrorType::InvalidHTTPHeader`](pingora_error::ErrorType::InvalidHTTPHeader) if what
    /// it holds is not a valid response head. Never panics, whatever `data` holds.
    pub fn deserialize(&self, data: &[u8]) -> Result<ResponseHeader> {
        let head = self.codec.decompress(data)?;
        wire::decode(Bytes::from(head))
    }
}

impl fmt::Debug for HeaderSerde {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeaderSerde")
            .field("dictionary", &self.codec.has_dict())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
