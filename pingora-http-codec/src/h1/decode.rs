//! Decoding HTTP/1 message bodies (RFC 9112 sections 6 and 7): by length, chunked, or until
//! the connection closes.
//!
//! The decoder is sans-IO: it consumes bytes from a buffer and says what it found. The session
//! owning the socket reads more bytes when asked to. Any byte sequence is a valid input:
//! malformed framing gives an error, never a panic.

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use pingora_error::{Error, ErrorType, Result};

use super::{Framing, Limits};

/// What the decoder made of the bytes it was given.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A piece of the body.
    Data(Bytes),
    /// More bytes are needed.
    NeedMore,
    /// The body is complete.
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Reading the hex size; the value so far and the number of digits seen.
    Size { size: u64, digits: u8 },
    /// Skipping whitespace or extensions after the size, up to CRLF.
    Extension { size: u64 },
    /// Saw CR after the size line; expect LF.
    SizeLf { size: u64 },
    /// Inside chunk data, with this many bytes left.
    Data { remaining: u64 },
    /// After chunk data; expect CR.
    DataCr,
    /// After chunk data and CR; expect LF.
    DataLf,
    /// After the last chunk: reading the trailer section.
    Trailers,
    /// The body ended.
    End,
}

/// Decodes a body from a buffer, in place: body pieces are split off the front of the buffer
/// without copying.
#[derive(Debug)]
pub struct BodyDecoder {
    kind: Kind,
    /// Body bytes produced so far.
    decoded: u64,
    /// Bytes of framing (size lines, extensions) seen in the current chunk head.
    head_bytes: usize,
    trailers: Option<Box<HeaderMap>>,
}

#[derive(Debug)]
enum Kind {
    Length { remaining: u64 },
    Chunked(ChunkState),
    UntilClose { ended: bool },
    Done,
}

// === impl BodyDecoder ===

impl BodyDecoder {
    /// A decoder for a body delimited by `framing`.
    #[inline]
    pub fn new(framing: Framing) -> Self {
        let kind = match framing {
            Framing::Empty | Framing::Length(0) => Kind::Done,
            Framing::Length(n) => Kind::Length { remaining: n },
            Framing::Chunked => Kind::Chunked(ChunkState::Size { size: 0, digits: 0 }),
            Framing::UntilClose => Kind::UntilClose { ended: false },
        };
        BodyDecoder {
            kind,
            decoded: 0,
            head_bytes: 0,
            trailers: None,
        }
    }

    /// Whether the whole body has been decoded.
    #[inline]
    pub fn is_done(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    /// Body bytes produced so far.
    #[inline]
    pub fn decoded_bytes(&self) -> u64 {
        self.decoded
    }

    /// The trailers of a chunked body, once it is done.
    #[inline]
    pub fn take_trailers(&mut self) -> Option<Box<HeaderMap>> {
        self.trailers.take()
    }

    /// Bytes of body still to come, when the length is known (0 once done); `None` for a
    /// chunked or close-delimited body.
    #[inline]
    pub fn remaining(&self) -> Option<u64> {
        match self.kind {
            Kind::Length { remaining } => Some(remaining),
            Kind::Done => Some(0),
            Kind::Chunked(_) | Kind::UntilClose { .. } => None,
        }
    }

    /// Whether the body ends only when the connection closes.
    #[inline]
    pub fn is_until_close(&self) -> bool {
        matches!(self.kind, Kind::UntilClose { .. })
    }

    /// Consumes body bytes from `buf`. `eof` says the peer closed the connection and no more
    /// bytes will come after those in `buf`.
    ///
    /// # Errors
    /// [`ErrorType::InvalidHTTPHeader`] for malformed chunked framing or trailers, or limits
    /// exceeded; [`ErrorType::ConnectionClosed`] when `eof` comes before the end of a delimited
    /// body.
    pub fn decode(&mut self, buf: &mut BytesMut, eof: bool, limits: &Limits) -> Result<Decoded> {
        let result = match &mut self.kind {
            Kind::Done => return Ok(Decoded::Done),
            Kind::Length { remaining } => {
                if buf.is_empty() {
                    if eof {
                        return Error::e_explain(
                            ErrorType::ConnectionClosed,
                            format!("connection closed with {remaining} body bytes missing"),
                        );
                    }
                    return Ok(Decoded::NeedMore);
                }
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.kind = Kind::Done;
                }
                Ok(Decoded::Data(buf.split_to(n).freeze()))
            }
            Kind::UntilClose { ended } => {
                if !buf.is_empty() {
                    Ok(Decoded::Data(buf.split().freeze()))
                } else if eof || *ended {
                    *ended = true;
                    self.kind = Kind::Done;
                    Ok(Decoded::Done)
                } else {
                    Ok(Decoded::NeedMore)
                }
            }
            Kind::Chunked(_) => self.decode_chunked(buf, eof, limits),
        };
        if let Ok(Decoded::Data(data)) = &result {
            self.decoded += data.len() as u64;
        }
        result
    }

    fn decode_chunked(
        &mut self,
        buf: &mut BytesMut,
        eof: bool,
        limits: &Limits,
    ) -> Result<Decoded> {
        loop {
            let Kind::Chunked(state) = &mut self.kind else {
                return Ok(Decoded::Done);
            };
            if let ChunkState::Data { remaining } = state {
                if buf.is_empty() {
                    break;
                }
                let n = usize::try_from(*remaining)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                *remaining -= n as u64;
                if *remaining == 0 {
                    *state = ChunkState::DataCr;
                }
                return Ok(Decoded::Data(buf.split_to(n).freeze()));
            }
            if *state == ChunkState::Trailers {
                match parse_trailers(buf, limits)? {
                    Some(trailers) => {
                        self.trailers = trailers;
                        self.kind = Kind::Done;
                        return Ok(Decoded::Done);
                    }
                    None => break,
                }
            }
            if *state == ChunkState::End {
                self.kind = Kind::Done;
                return Ok(Decoded::Done);
            }
            let Some(&byte) = buf.first() else {
                break;
            };
            buf.advance(1);
            self.head_bytes += 1;
            if self.head_bytes > limits.max_chunk_head_bytes {
                return bad_chunk("chunk size line too long");
            }
            *state = next_chunk_state(*state, byte)?;
            match *state {
                ChunkState::Data { remaining: 0 } => {
                    // The last chunk: trailers follow.
                    *state = ChunkState::Trailers;
                    self.head_bytes = 0;
                }
                ChunkState::Data { .. } => self.head_bytes = 0,
                _ => {}
            }
        }
        if eof {
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                "connection closed in the middle of a chunked body",
            );
        }
        Ok(Decoded::NeedMore)
    }
}

fn bad_chunk<T>(why: &'static str) -> Result<T> {
    Error::e_explain(ErrorType::InvalidHTTPHeader, why)
}

/// Advances the chunk-head state machine by one byte (RFC 9112 section 7.1):
/// `chunk-size [ chunk-ext ] CRLF`, with `chunk-size = 1*HEXDIG`.
fn next_chunk_state(state: ChunkState, byte: u8) -> Result<ChunkState> {
    Ok(match state {
        ChunkState::Size { size, digits } => match byte {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                // Shifting in another digit must not lose the top bits.
                if size >> 60 != 0 {
                    return bad_chunk("chunk size overflows");
                }
                let value = (byte as char).to_digit(16).expect("matched a hex digit") as u64;
                ChunkState::Size {
                    size: (size << 4) | value,
                    digits: digits.saturating_add(1),
                }
            }
            _ if digits == 0 => return bad_chunk("chunk size is not a hex number"),
            b'\r' => ChunkState::SizeLf { size },
            b';' | b' ' | b'\t' => ChunkState::Extension { size },
            _ => return bad_chunk("invalid byte after chunk size"),
        },
        ChunkState::Extension { size } => match byte {
            b'\r' => ChunkState::SizeLf { size },
            b'\n' => return bad_chunk("bare LF in chunk size line"),
            // Extensions are ignored, but must not carry control characters.
            0..=8 | 0x0a..=0x1f | 0x7f => return bad_chunk("control character in chunk extension"),
            _ => ChunkState::Extension { size },
        },
        ChunkState::SizeLf { size } => match byte {
            b'\n' => ChunkState::Data { remaining: size },
            _ => return bad_chunk("chunk size line not ended by CRLF"),
        },
        ChunkState::DataCr => match byte {
            b'\r' => ChunkState::DataLf,
            _ => return bad_chunk("chunk data longer than its size"),
        },
        ChunkState::DataLf => match byte {
            b'\n' => ChunkState::Size { size: 0, digits: 0 },
            _ => return bad_chunk("chunk data not ended by CRLF"),
        },
        ChunkState::Data { .. } | ChunkState::Trailers | ChunkState::End => {
            unreachable!("handled by the caller before reading framing bytes")
        }
    })
}

/// Parses the trailer section after the last chunk, up to and including its empty line.
/// `Ok(None)` if more bytes are needed; `Ok(Some(None))` if there were no trailers.
#[allow(clippy::type_complexity)]
fn parse_trailers(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Option<Box<HeaderMap>>>> {
    if buf.len() >= 2 && &buf[..2] == b"\r\n" {
        buf.advance(2);
        return Ok(Some(None));
    }
    // The limit is on the trailer section; the empty line ending the body (at most 2 bytes)
    // comes on top. It holds however the bytes arrive, in one read or in several.
    let max_len = limits.max_trailer_bytes.saturating_add(2);
    let mut headers = [httparse::EMPTY_HEADER; 64];
    match httparse::parse_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete((len, parsed))) => {
            if len > max_len {
                return bad_chunk("trailer section too large");
            }
            if parsed.is_empty() {
                // An empty section ended by a bare LF: no trailers, as after CRLF.
                buf.advance(len);
                return Ok(Some(None));
            }
            let mut map = HeaderMap::with_capacity(parsed.len());
            for h in parsed {
                let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(h.name.as_bytes()),
                    http::HeaderValue::from_bytes(h.value),
                ) else {
                    return bad_chunk("invalid trailer field");
                };
                map.append(name, value);
            }
            buf.advance(len);
            Ok(Some(Some(Box::new(map))))
        }
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_len {
                return bad_chunk("trailer section too large");
            }
            Ok(None)
        }
        Err(_) => bad_chunk("invalid trailer section"),
    }
}

#[cfg(test)]
mod tests;
