//! Streaming base64 for `application/grpc-web-text` bodies.
//!
//! A text body is standard base64 (RFC 4648 section 4) of the binary gRPC-web body, cut into
//! pieces wherever the network cut it: a piece need not hold a whole number of 4-character
//! groups, so each direction carries the unfinished group over to the next piece. Memory is
//! bounded by that group (at most 3 characters or 2 bytes) plus the piece being converted.
//!
//! The gRPC-web protocol lets a sender flush (and pad) in the middle of a stream, so the decoder
//! accepts a padded group anywhere, not only at the end.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use bytes::Bytes;

/// Standard alphabet; padding written, and optional when read (a final group may come without).
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Characters in one base64 group.
const GROUP: usize = 4;

/// Bytes one base64 group carries.
const GROUP_BYTES: usize = 3;

/// The input was not base64.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct InvalidBase64;

// === impl Decoder ===

/// Decodes a base64 stream piece by piece.
#[derive(Debug, Default)]
pub(super) struct Decoder {
    /// The characters of an unfinished group.
    carry: [u8; GROUP],
    carry_len: usize,
}

impl Decoder {
    /// Decodes `input`, the next piece of the stream; `end` if it is the last. The characters of
    /// an unfinished group wait for the next piece.
    pub(super) fn decode(&mut self, mut input: &[u8], end: bool) -> Result<Bytes, InvalidBase64> {
        let mut out = Vec::with_capacity((self.carry_len + input.len()) / GROUP * GROUP_BYTES + 3);
        if self.carry_len > 0 {
            let take = (GROUP - self.carry_len).min(input.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&input[..take]);
            self.carry_len += take;
            input = &input[take..];
            if self.carry_len == GROUP {
                decode_groups(&self.carry, &mut out)?;
                self.carry_len = 0;
            }
        }
        let whole = input.len() - input.len() % GROUP;
        decode_groups(&input[..whole], &mut out)?;
        let rest = &input[whole..];
        self.carry[self.carry_len..self.carry_len + rest.len()].copy_from_slice(rest);
        self.carry_len += rest.len();
        if end && self.carry_len > 0 {
            // A last group without its padding.
            let carry = self.carry;
            let len = std::mem::take(&mut self.carry_len);
            ENGINE
                .decode_vec(&carry[..len], &mut out)
                .map_err(|_| InvalidBase64)?;
        }
        Ok(out.into())
    }
}

/// Decodes whole groups, some of which may be padded (a flush in the middle of the stream).
fn decode_groups(mut groups: &[u8], out: &mut Vec<u8>) -> Result<(), InvalidBase64> {
    while !groups.is_empty() {
        // Up to and including the first padded group: padding may only end what is decoded.
        let end = groups
            .iter()
            .position(|&c| c == b'=')
            .map_or(groups.len(), |pad| (pad / GROUP + 1) * GROUP);
        ENGINE
            .decode_vec(&groups[..end], out)
            .map_err(|_| InvalidBase64)?;
        groups = &groups[end..];
    }
    Ok(())
}

// === impl Encoder ===

/// Encodes a byte stream as base64 piece by piece, padding only at the end.
#[derive(Debug, Default)]
pub(super) struct Encoder {
    /// The bytes of an unfinished group.
    carry: [u8; GROUP_BYTES],
    carry_len: usize,
}

impl Encoder {
    /// Encodes `input`, the next piece of the stream; `end` if it is the last, which flushes
    /// (and pads) what is left. Otherwise the bytes of an unfinished group wait for the next
    /// piece, so that no padding appears in the middle of the stream.
    pub(super) fn encode(&mut self, mut input: &[u8], end: bool) -> Bytes {
        let mut out =
            String::with_capacity((self.carry_len + input.len()) / GROUP_BYTES * GROUP + 4);
        if self.carry_len > 0 {
            let take = (GROUP_BYTES - self.carry_len).min(input.len());
            self.carry[self.carry_len..self.carry_len + take].copy_from_slice(&input[..take]);
            self.carry_len += take;
            input = &input[take..];
            if self.carry_len == GROUP_BYTES || end {
                ENGINE.encode_string(&self.carry[..self.carry_len], &mut out);
                self.carry_len = 0;
            }
        }
        let whole = if end {
            input.len()
        } else {
            input.len() - input.len() % GROUP_BYTES
        };
        ENGINE.encode_string(&input[..whole], &mut out);
        let rest = &input[whole..];
        self.carry[self.carry_len..self.carry_len + rest.len()].copy_from_slice(rest);
        self.carry_len += rest.len();
        out.into()
    }
}
