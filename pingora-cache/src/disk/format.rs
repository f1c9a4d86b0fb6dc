//! The object file format of [`DiskCache`](super::DiskCache), version 1.
//!
//! Every integer is little-endian. A file is a fixed header, three variable sections and the
//! body:
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `PGRCDISK` |
//! | 8 | 4 | format version (1) |
//! | 12 | 4 | flags: bit 0 set when the key has a variance |
//! | 16 | 16 | primary hash of the key |
//! | 32 | 16 | variance hash (zeros without variance) |
//! | 48 | 8 | stamp: a write id unique to this file |
//! | 56 | 4 | length of the user tag |
//! | 60 | 4 | length of the internal meta ([`CacheMeta::serialize`]'s first part) |
//! | 64 | 4 | length of the header meta (its second part) |
//! | 68 | 4 | CRC32 of the body |
//! | 72 | 8 | body length |
//! | 80 | 4 | CRC32 of bytes 0..80 followed by the three variable sections |
//! | 84 | 4 | reserved, zero |
//! | 88 | | user tag, internal meta, header meta, then the body |
//!
//! While an object is written (in `<dir>/tmp/`), its body length is [`WRITING`] and its body
//! CRC zero; the header is rewritten with the real values (and a new meta CRC) before the
//! file is renamed into place, so a final file always describes its whole body.
//!
//! [`CacheMeta::serialize`]: crate::CacheMeta::serialize

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The first bytes of every object file.
pub(super) const MAGIC: [u8; 8] = *b"PGRCDISK";

/// The format version this code writes and reads.
pub(super) const VERSION: u32 = 1;

/// The length of the fixed header.
pub(super) const FIXED_LEN: usize = 88;

/// The body length of a file still being written.
pub(super) const WRITING: u64 = u64::MAX;

/// The largest variable section accepted when reading (a corrupt length must not make the
/// reader allocate gigabytes).
const MAX_SECTION: u32 = 64 << 20;

const FLAG_VARIANCE: u32 = 1;

/// The decoded fixed header of an object file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fixed {
    pub(super) primary: [u8; 16],
    pub(super) variance: Option<[u8; 16]>,
    pub(super) stamp: u64,
    pub(super) tag_len: u32,
    pub(super) internal_len: u32,
    pub(super) header_len: u32,
    pub(super) body_crc: u32,
    pub(super) body_len: u64,
    pub(super) meta_crc: u32,
}

// === impl Fixed ===

impl Fixed {
    /// The length of the three variable sections.
    pub(super) fn variable_len(&self) -> usize {
        self.tag_len as usize + self.internal_len as usize + self.header_len as usize
    }

    /// Where the body starts.
    pub(super) fn body_start(&self) -> u64 {
        (FIXED_LEN + self.variable_len()) as u64
    }

    /// The length of the whole file (meaningless while [`WRITING`]).
    pub(super) fn file_len(&self) -> u64 {
        self.body_start().saturating_add(self.body_len)
    }

    /// The fixed header's bytes, with a meta CRC computed over them and `variable`.
    pub(super) fn encode(&mut self, variable: &[u8]) -> [u8; FIXED_LEN] {
        let mut out = [0u8; FIXED_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8..12].copy_from_slice(&VERSION.to_le_bytes());
        let flags = if self.variance.is_some() {
            FLAG_VARIANCE
        } else {
            0
        };
        out[12..16].copy_from_slice(&flags.to_le_bytes());
        out[16..32].copy_from_slice(&self.primary);
        out[32..48].copy_from_slice(&self.variance.unwrap_or_default());
        out[48..56].copy_from_slice(&self.stamp.to_le_bytes());
        out[56..60].copy_from_slice(&self.tag_len.to_le_bytes());
        out[60..64].copy_from_slice(&self.internal_len.to_le_bytes());
        out[64..68].copy_from_slice(&self.header_len.to_le_bytes());
        out[68..72].copy_from_slice(&self.body_crc.to_le_bytes());
        out[72..80].copy_from_slice(&self.body_len.to_le_bytes());
        self.meta_crc = meta_crc(&out, variable);
        out[80..84].copy_from_slice(&self.meta_crc.to_le_bytes());
        out
    }

    /// Decodes a fixed header; `None` when it is not one of ours (magic, version, flags,
    /// section lengths). The meta CRC is checked separately ([`Fixed::meta_matches`]), once
    /// the variable sections are read.
    pub(super) fn decode(bytes: &[u8]) -> Option<Fixed> {
        let bytes: &[u8; FIXED_LEN] = bytes.get(..FIXED_LEN)?.try_into().ok()?;
        if bytes[0..8] != MAGIC || u32_at(bytes, 8) != VERSION {
            return None;
        }
        let flags = u32_at(bytes, 12);
        if flags & !FLAG_VARIANCE != 0 || u32_at(bytes, 84) != 0 {
            return None;
        }
        let fixed = Fixed {
            primary: array_at(bytes, 16),
            variance: (flags & FLAG_VARIANCE != 0).then(|| array_at(bytes, 32)),
            stamp: u64_at(bytes, 48),
            tag_len: u32_at(bytes, 56),
            internal_len: u32_at(bytes, 60),
            header_len: u32_at(bytes, 64),
            body_crc: u32_at(bytes, 68),
            body_len: u64_at(bytes, 72),
            meta_crc: u32_at(bytes, 80),
        };
        let sections = [fixed.tag_len, fixed.internal_len, fixed.header_len];
        if sections.iter().any(|len| *len > MAX_SECTION) {
            return None;
        }
        Some(fixed)
    }

    /// Whether the stored meta CRC matches the fixed header `raw` and the variable sections.
    pub(super) fn meta_matches(&self, raw: &[u8], variable: &[u8]) -> bool {
        raw.len() >= FIXED_LEN
            && variable.len() == self.variable_len()
            && meta_crc(&raw[..FIXED_LEN], variable) == self.meta_crc
    }
}

/// The variable sections of a decoded file, borrowed from its bytes.
pub(super) struct Sections<'a> {
    pub(super) user_tag: &'a [u8],
    pub(super) internal: &'a [u8],
    pub(super) header: &'a [u8],
}

impl<'a> Sections<'a> {
    /// Splits `variable` (exactly [`Fixed::variable_len`] bytes) into its sections.
    pub(super) fn split(fixed: &Fixed, variable: &'a [u8]) -> Option<Self> {
        let (user_tag, rest) = variable.split_at_checked(fixed.tag_len as usize)?;
        let (internal, header) = rest.split_at_checked(fixed.internal_len as usize)?;
        (header.len() == fixed.header_len as usize).then_some(Sections {
            user_tag,
            internal,
            header,
        })
    }
}

/// A new stamp: the nanoseconds since the Unix epoch, made strictly increasing within the
/// process, so two files written by one process never share a stamp and files of two runs
/// share one only if the clock went back.
pub(super) fn next_stamp() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let previous = LAST
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
            Some(now.max(last.wrapping_add(1)))
        })
        .unwrap_or(now);
    now.max(previous.wrapping_add(1))
}

/// The CRC32 of the first 80 bytes of the fixed header and the variable sections.
fn meta_crc(fixed: &[u8], variable: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&fixed[..80]);
    hasher.update(variable);
    hasher.finalize()
}

fn u32_at(bytes: &[u8; FIXED_LEN], at: usize) -> u32 {
    u32::from_le_bytes(array_at(bytes, at))
}

fn u64_at(bytes: &[u8; FIXED_LEN], at: usize) -> u64 {
    u64::from_le_bytes(array_at(bytes, at))
}

fn array_at<const N: usize>(bytes: &[u8; FIXED_LEN], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Fixed {
        Fixed {
            primary: [1; 16],
            variance: Some([2; 16]),
            stamp: 42,
            tag_len: 3,
            internal_len: 4,
            header_len: 4,
            body_crc: 0xdead_beef,
            body_len: 1000,
            meta_crc: 0,
        }
    }

    #[test]
    fn fixed_header_round_trips_and_its_crc_covers_every_byte() {
        let variable = b"tagintehead";
        let mut fixed = sample();
        let raw = fixed.encode(variable);
        let decoded = Fixed::decode(&raw).unwrap();
        assert_eq!(decoded, fixed);
        assert!(decoded.meta_matches(&raw, variable));
        assert_eq!(decoded.body_start(), 88 + 11);
        assert_eq!(decoded.file_len(), 88 + 11 + 1000);
        let sections = Sections::split(&decoded, variable).unwrap();
        assert_eq!(sections.user_tag, b"tag");
        assert_eq!(sections.internal, b"inte");
        assert_eq!(sections.header, b"head");

        for at in 0..80 {
            let mut flipped = raw;
            flipped[at] ^= 0x10;
            let still_matches =
                Fixed::decode(&flipped).is_some_and(|f| f.meta_matches(&flipped, variable));
            assert!(!still_matches, "a flipped byte at {at} went unnoticed");
        }
        let mut other = *variable;
        other[5] ^= 1;
        assert!(!decoded.meta_matches(&raw, &other));
    }

    #[test]
    fn foreign_or_oversized_headers_are_refused() {
        let mut fixed = sample();
        let raw = fixed.encode(b"tagintehead");
        let mut version = raw;
        version[8] = 2;
        assert!(Fixed::decode(&version).is_none());
        assert!(Fixed::decode(&raw[..40]).is_none());
        let mut huge = sample();
        huge.header_len = u32::MAX;
        assert!(Fixed::decode(&huge.encode(b"")).is_none());
        let mut no_variance = sample();
        no_variance.variance = None;
        let decoded = Fixed::decode(&no_variance.encode(b"")).unwrap();
        assert_eq!(decoded.variance, None);
    }

    #[test]
    fn stamps_increase() {
        let a = next_stamp();
        let b = next_stamp();
        assert!(b > a);
    }
}
