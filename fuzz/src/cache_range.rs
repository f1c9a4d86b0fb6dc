//! `Range` parsing (`pingora_cache::range::parse_range_header`), checked against a plain
//! reading of RFC 9110 section 14, and the framing helpers for what it returns.
//!
//! Input: the body length (u16), the most ranges served as ranges (byte, 1 to 8), then the
//! `Range` value.

use pingora_cache::range::{content_range, parse_range_header, Multipart, RangeType};
use std::ops::Range;

use crate::Input;

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let len = u64::from(input.u16());
    let max = usize::from(input.byte() % 8) + 1;
    let value = input.rest();
    let got = parse_range_header(value, len, max);
    assert_eq!(
        got,
        plain(value, len, max),
        "{:?}",
        String::from_utf8_lossy(value)
    );
    match &got {
        RangeType::Single(r) => check_range(r, len),
        RangeType::Multi(ranges) => {
            assert!(ranges.len() >= 2 && ranges.len() <= max);
            for r in ranges {
                check_range(r, len);
            }
            let m = Multipart::new("B".into(), Some("text/plain".into()), len);
            let built: u64 = ranges
                .iter()
                .map(|r| m.part_header(r).len() as u64 + r.end - r.start)
                .sum::<u64>()
                + m.end().len() as u64;
            assert_eq!(m.body_length(ranges), built);
        }
        RangeType::Unsatisfiable => assert_eq!(content_range(None, len), format!("bytes */{len}")),
        RangeType::None => {}
    }
}

fn check_range(r: &Range<u64>, len: u64) {
    assert!(r.start < r.end && r.end <= len, "{r:?} of {len}");
    let header = content_range(Some(r), len);
    assert_eq!(header, format!("bytes {}-{}/{}", r.start, r.end - 1, len));
}

/// An independent reading: text only, every member `a-b`, `a-` or `-n` with digits.
fn plain(value: &[u8], len: u64, max: usize) -> RangeType {
    let Ok(text) = std::str::from_utf8(value) else {
        // Non-ASCII bytes can only be part of an invalid range-spec or unit.
        return RangeType::None;
    };
    let text = text.trim_matches([' ', '\t']);
    let Some((unit, set)) = text.split_once('=') else {
        return RangeType::None;
    };
    if !unit.trim_matches([' ', '\t']).eq_ignore_ascii_case("bytes") {
        return RangeType::None;
    }
    let digits = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(s.parse::<u64>().unwrap_or(u64::MAX))
    };
    let mut ranges = Vec::new();
    let mut members = 0;
    for member in set.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        members += 1;
        let Some((a, b)) = member.split_once('-') else {
            return RangeType::None;
        };
        let (a, b) = (a.trim_matches([' ', '\t']), b.trim_matches([' ', '\t']));
        let range = if a.is_empty() {
            let Some(n) = digits(b) else {
                return RangeType::None;
            };
            (n > 0 && len > 0).then(|| len.saturating_sub(n)..len)
        } else {
            let Some(first) = digits(a) else {
                return RangeType::None;
            };
            let last = if b.is_empty() {
                u64::MAX
            } else {
                match digits(b) {
                    Some(last) if last >= first => last,
                    _ => return RangeType::None,
                }
            };
            (first < len).then(|| first..last.saturating_add(1).min(len))
        };
        ranges.extend(range);
    }
    if members == 0 {
        return RangeType::None;
    }
    match ranges.len() {
        0 => RangeType::Unsatisfiable,
        1 => RangeType::Single(ranges[0].clone()),
        n if n > max => RangeType::None,
        _ => RangeType::Multi(ranges),
    }
}
