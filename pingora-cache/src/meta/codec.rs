//! The stored form of a [`CacheMeta`]'s internal part: a small versioned binary. (The
//! header is stored by `pingora-header-serde`.)
//!
//! Stored data is untrusted input: decoding checks every length, version and value and
//! returns an error, never panics.
//!
//! Internal part, version 1, big-endian:
//!
//! ```text
//! version u8 = 1 | flags u8 (bit 0: variance, bit 1: epoch override)
//! fresh_until, created, updated: time (i64 seconds from the Unix epoch, u32 nanoseconds)
//! stale_while_revalidate_sec u32 | stale_if_error_sec u32
//! [variance: 16 bytes] [epoch_override: time]
//! ```

use std::time::{Duration, SystemTime};

use pingora_error::{Error, ErrorType, Result};

use super::Internal;

const VERSION: u8 = 1;
const HAS_VARIANCE: u8 = 1;
const HAS_EPOCH_OVERRIDE: u8 = 2;

fn invalid(why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::InternalError, why)
}

/// Writes a time as signed seconds and nanoseconds from the Unix epoch.
fn put_time(out: &mut Vec<u8>, time: SystemTime) {
    let (secs, nanos) = match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => (
            i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            after.subsec_nanos(),
        ),
        Err(before) => {
            // Seconds are floored, so the nanoseconds count forwards. The earliest time a
            // platform represents may be i64::MIN seconds, whose magnitude i64 cannot hold
            // as a positive number: compute in i128.
            let before = before.duration();
            let (secs, nanos) = match before.subsec_nanos() {
                0 => (-i128::from(before.as_secs()), 0),
                n => (-i128::from(before.as_secs()) - 1, 1_000_000_000 - n),
            };
            (i64::try_from(secs).unwrap_or(i64::MIN), nanos)
        }
    };
    out.extend_from_slice(&secs.to_be_bytes());
    out.extend_from_slice(&nanos.to_be_bytes());
}

/// Encodes the internal part.
pub(super) fn encode_internal(internal: &Internal) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 3 * 12 + 8 + 16 + 12);
    let mut flags = 0;
    if internal.variance.is_some() {
        flags |= HAS_VARIANCE;
    }
    if internal.epoch_override.is_some() {
        flags |= HAS_EPOCH_OVERRIDE;
    }
    out.extend_from_slice(&[VERSION, flags]);
    put_time(&mut out, internal.fresh_until);
    put_time(&mut out, internal.created);
    put_time(&mut out, internal.updated);
    out.extend_from_slice(&internal.stale_while_revalidate_sec.to_be_bytes());
    out.extend_from_slice(&internal.stale_if_error_sec.to_be_bytes());
    if let Some(variance) = &internal.variance {
        out.extend_from_slice(variance);
    }
    if let Some(epoch) = internal.epoch_override {
        put_time(&mut out, epoch);
    }
    out
}

/// A cursor over the internal part.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let (head, rest) = self
            .0
            .split_first_chunk::<N>()
            .ok_or_else(|| invalid("cache meta is truncated"))?;
        self.0 = rest;
        Ok(*head)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(self.take()?))
    }

    fn time(&mut self) -> Result<SystemTime> {
        let secs = i64::from_be_bytes(self.take()?);
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(invalid("cache meta time has too many nanoseconds"));
        }
        let time = if secs >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs.unsigned_abs(), nanos))
        } else {
            SystemTime::UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs.unsigned_abs()))
                .and_then(|t| t.checked_add(Duration::from_nanos(u64::from(nanos))))
        };
        time.ok_or_else(|| invalid("cache meta time is out of range"))
    }
}

/// Decodes the internal part.
pub(super) fn decode_internal(buf: &[u8]) -> Result<Internal> {
    let mut reader = Reader(buf);
    let [version, flags] = reader.take()?;
    if version != VERSION {
        return Err(invalid("unknown cache meta version"));
    }
    if flags & !(HAS_VARIANCE | HAS_EPOCH_OVERRIDE) != 0 {
        return Err(invalid("unknown cache meta flags"));
    }
    let internal = Internal {
        fresh_until: reader.time()?,
        created: reader.time()?,
        updated: reader.time()?,
        stale_while_revalidate_sec: reader.u32()?,
        stale_if_error_sec: reader.u32()?,
        variance: match flags & HAS_VARIANCE {
            0 => None,
            _ => Some(reader.take()?),
        },
        epoch_override: match flags & HAS_EPOCH_OVERRIDE {
            0 => None,
            _ => Some(reader.time()?),
        },
    };
    if !reader.0.is_empty() {
        return Err(invalid("trailing bytes after cache meta"));
    }
    Ok(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn internal() -> Internal {
        Internal {
            fresh_until: at(1_000_060),
            created: at(1_000_000),
            updated: at(1_000_010) + Duration::from_nanos(5),
            stale_while_revalidate_sec: 7,
            stale_if_error_sec: u32::MAX,
            variance: None,
            epoch_override: None,
        }
    }

    #[test]
    fn internal_round_trips() {
        let mut meta = internal();
        let encoded = encode_internal(&meta);
        assert_eq!(encoded.len(), 2 + 36 + 8);
        assert_eq!(decode_internal(&encoded).unwrap(), meta);

        meta.variance = Some([9; 16]);
        meta.epoch_override = Some(at(5));
        // Before the Unix epoch, with and without a fraction of a second.
        meta.fresh_until = SystemTime::UNIX_EPOCH - Duration::from_millis(1_500);
        meta.created = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        let encoded = encode_internal(&meta);
        assert_eq!(encoded.len(), 2 + 36 + 8 + 16 + 12);
        assert_eq!(decode_internal(&encoded).unwrap(), meta);
    }

    #[test]
    fn internal_rejects_bad_input() {
        let good = encode_internal(&internal());
        // Every truncation.
        for len in 0..good.len() {
            assert!(decode_internal(&good[..len]).is_err(), "{len}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode_internal(&trailing).is_err());
        let mut version = good.clone();
        version[0] = 2;
        assert!(decode_internal(&version).is_err());
        let mut flags = good.clone();
        flags[1] = 4;
        assert!(decode_internal(&flags).is_err());
        let mut nanos = good.clone();
        nanos[10..14].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert!(decode_internal(&nanos).is_err());
        let mut huge = good;
        huge[2..10].copy_from_slice(&i64::MAX.to_be_bytes());
        huge[10..14].copy_from_slice(&999_999_999u32.to_be_bytes());
        // Either representable on this platform or an error; never a panic.
        let _ = decode_internal(&huge);
    }

    #[test]
    fn extreme_times_round_trip() {
        // Found by the `cache_meta` fuzz target: i64::MIN seconds decoded, but encoded back
        // as -i64::MAX. Whatever time decodes must encode to the same bytes.
        for secs in [i64::MIN, i64::MIN + 1, -1, 0, 1, i64::MAX] {
            for nanos in [0u32, 1, 999_999_999] {
                let mut bytes = encode_internal(&internal());
                bytes[26..34].copy_from_slice(&secs.to_be_bytes());
                bytes[34..38].copy_from_slice(&nanos.to_be_bytes());
                if let Ok(decoded) = decode_internal(&bytes) {
                    assert_eq!(encode_internal(&decoded), bytes, "{secs} {nanos}");
                }
            }
        }
    }
}
