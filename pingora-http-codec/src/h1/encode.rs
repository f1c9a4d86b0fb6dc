//! Framing HTTP/1 message bodies for the wire (RFC 9112 sections 6 and 7).
//!
//! Like the decoder, the encoder is sans-IO: it says what bytes go around each piece of body,
//! and the session writes them.

use bytes::BufMut;
use http::HeaderMap;
use pingora_error::{Error, ErrorType, Result};

use super::Framing;

/// The framing around one piece of body: `prefix`, then the body bytes, then `suffix`.
#[derive(Debug, Default)]
pub struct Frame {
    prefix: [u8; 18],
    prefix_len: u8,
    /// How many of the given body bytes to write (fewer than given only for bodies that must
    /// not have one, which drop everything).
    pub data_len: usize,
    /// What goes after the body bytes (CRLF for a chunk).
    pub suffix: &'static [u8],
}

// === impl Frame ===

impl Frame {
    /// What goes before the body bytes (the chunk size line for a chunk).
    #[inline]
    pub fn prefix(&self) -> &[u8] {
        &self.prefix[..usize::from(self.prefix_len)]
    }

    /// Total bytes on the wire for this frame.
    #[inline]
    pub fn wire_len(&self) -> usize {
        usize::from(self.prefix_len) + self.data_len + self.suffix.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No body may be sent (HEAD, 1xx, 204, 304): body bytes are dropped.
    Empty,
    Length {
        remaining: u64,
    },
    Chunked,
    UntilClose,
}

/// Frames a body as it is written.
#[derive(Debug)]
pub struct BodyEncoder {
    kind: Kind,
    finished: bool,
    written: u64,
}

// === impl BodyEncoder ===

impl BodyEncoder {
    /// An encoder for a body delimited by `framing`; [`Framing::Empty`] drops body bytes.
    #[inline]
    pub fn new(framing: Framing) -> Self {
        let kind = match framing {
            Framing::Empty => Kind::Empty,
            Framing::Length(n) => Kind::Length { remaining: n },
            Framing::Chunked => Kind::Chunked,
            Framing::UntilClose => Kind::UntilClose,
        };
        BodyEncoder {
            kind,
            finished: false,
            written: 0,
        }
    }

    /// Whether the end of the body has been written.
    #[inline]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Body bytes accepted so far (framing not counted).
    #[inline]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether the body is complete once `finish` is called with no further writes: true for
    /// length-delimited bodies whose bytes were all written.
    #[inline]
    pub fn is_length_complete(&self) -> bool {
        matches!(self.kind, Kind::Length { remaining: 0 } | Kind::Empty)
    }

    /// Whether this body is delimited by closing the connection.
    #[inline]
    pub fn is_until_close(&self) -> bool {
        self.kind == Kind::UntilClose
    }

    /// The framing for writing `len` more body bytes.
    ///
    /// # Errors
    /// Writing after the end, or more bytes than the `Content-Length` announced.
    pub fn encode(&mut self, len: usize) -> Result<Frame> {
        if self.finished {
            return Error::e_explain(ErrorType::InternalError, "body written after its end");
        }
        let mut frame = Frame {
            data_len: len,
            ..Frame::default()
        };
        match &mut self.kind {
            Kind::Empty => frame.data_len = 0,
            Kind::Length { remaining } => {
                if len as u64 > *remaining {
                    return Error::e_explain(
                        ErrorType::InternalError,
                        format!(
                            "body longer than its Content-Length: {} more bytes than announced",
                            len as u64 - *remaining
                        ),
                    );
                }
                *remaining -= len as u64;
            }
            Kind::Chunked => {
                // A zero-length chunk would end the body: write nothing instead.
                if len > 0 {
                    let mut prefix = &mut frame.prefix[..];
                    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4) as usize;
                    for i in (0..digits).rev() {
                        prefix.put_u8(b"0123456789abcdef"[(len >> (i * 4)) & 0xf]);
                    }
                    prefix.put_slice(b"\r\n");
                    frame.prefix_len = (digits + 2) as u8;
                    frame.suffix = b"\r\n";
                }
            }
            Kind::UntilClose => {}
        }
        self.written += frame.data_len as u64;
        Ok(frame)
    }

    /// The bytes that end the body, with `trailers` for a chunked body, appended to `out`.
    ///
    /// # Errors
    /// A length-delimited body that is still short: the message cannot be completed, and the
    /// connection must not be reused.
    pub fn finish(&mut self, trailers: Option<&HeaderMap>, out: &mut Vec<u8>) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        match self.kind {
            Kind::Length { remaining } if remaining > 0 => Error::e_explain(
                ErrorType::InternalError,
                format!("body ended {remaining} bytes short of its Content-Length"),
            ),
            Kind::Chunked => {
                out.extend_from_slice(b"0\r\n");
                if let Some(trailers) = trailers {
                    for (name, value) in trailers {
                        out.extend_from_slice(name.as_str().as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(value.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                }
                out.extend_from_slice(b"\r\n");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(enc: &mut BodyEncoder, data: &[u8]) -> Vec<u8> {
        let frame = enc.encode(data.len()).unwrap();
        let mut out = frame.prefix().to_vec();
        out.extend_from_slice(&data[..frame.data_len]);
        out.extend_from_slice(frame.suffix);
        assert_eq!(out.len(), frame.wire_len());
        out
    }

    #[test]
    fn chunked() {
        let mut enc = BodyEncoder::new(Framing::Chunked);
        assert_eq!(wire(&mut enc, b"hello"), b"5\r\nhello\r\n");
        assert_eq!(wire(&mut enc, &[b'x'; 26])[..4], *b"1a\r\n");
        assert_eq!(wire(&mut enc, b""), b"");
        let big = vec![0u8; 0x12345];
        assert_eq!(wire(&mut enc, &big)[..7], *b"12345\r\n");
        let mut end = Vec::new();
        enc.finish(None, &mut end).unwrap();
        assert_eq!(end, b"0\r\n\r\n");
        assert!(enc.is_finished());
        assert!(enc.encode(1).is_err());
    }

    #[test]
    fn chunked_trailers() {
        let mut enc = BodyEncoder::new(Framing::Chunked);
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let mut end = Vec::new();
        enc.finish(Some(&trailers), &mut end).unwrap();
        assert_eq!(end, b"0\r\ngrpc-status: 0\r\n\r\n");
    }

    #[test]
    fn length() {
        let mut enc = BodyEncoder::new(Framing::Length(5));
        assert_eq!(wire(&mut enc, b"hel"), b"hel");
        assert!(!enc.is_length_complete());
        assert!(enc.encode(3).is_err(), "longer than Content-Length");
        assert_eq!(wire(&mut enc, b"lo"), b"lo");
        assert!(enc.is_length_complete());
        enc.finish(None, &mut Vec::new()).unwrap();

        let mut short = BodyEncoder::new(Framing::Length(5));
        wire(&mut short, b"hi");
        assert!(short.finish(None, &mut Vec::new()).is_err());
    }

    #[test]
    fn empty_drops_body() {
        let mut enc = BodyEncoder::new(Framing::Empty);
        assert_eq!(wire(&mut enc, b"ignored"), b"");
        assert_eq!(enc.written(), 0);
    }
}
