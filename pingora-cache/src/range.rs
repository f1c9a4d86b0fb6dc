//! Range requests served from the cache (RFC 9110 section 14), as pure functions.
//!
//! [`parse_range_header`] reads a `Range` value against the length of the stored body;
//! [`range_for_hit`] adds the rules of when a range applies at all (GET, a stored 200,
//! `If-Range`). [`content_range`] and [`Multipart`] build what a 206 or 416 response needs.
//!
//! ```
//! use pingora_cache::range::{parse_range_header, RangeType};
//!
//! assert_eq!(parse_range_header(b"bytes=0-99", 1000, 10), RangeType::Single(0..100));
//! assert_eq!(parse_range_header(b"bytes=-100", 1000, 10), RangeType::Single(900..1000));
//! assert_eq!(parse_range_header(b"bytes=2000-", 1000, 10), RangeType::Unsatisfiable);
//! assert_eq!(parse_range_header(b"bytes=9-1", 1000, 10), RangeType::None); // invalid: ignored
//! ```

use std::ops::Range;

use http::header::{self, HeaderMap};
use http::{Method, StatusCode};

use crate::conditional::if_range_matches;

/// What a `Range` request gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeType {
    /// The full response (no `Range`, an invalid or ignored one, or too many ranges).
    None,
    /// One range: 206 with `Content-Range`.
    Single(Range<u64>),
    /// Several ranges, in request order: 206 `multipart/byteranges`.
    Multi(Vec<Range<u64>>),
    /// No range is satisfiable: 416 with `Content-Range: bytes */length`.
    Unsatisfiable,
}

/// One range-spec: `first-last`, `first-` or `-suffix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    From(u64, Option<u64>),
    Suffix(u64),
}

/// `bytes` without leading and trailing optional whitespace (SP, HTAB).
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Parses decimal digits, saturating at `u64::MAX` (a huge position is unsatisfiable or
/// clamped, not invalid).
fn parse_pos(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

fn parse_spec(spec: &[u8]) -> Option<Spec> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (trim_ows(&spec[..dash]), trim_ows(&spec[dash + 1..]));
    if first.is_empty() {
        return Some(Spec::Suffix(parse_pos(last)?));
    }
    let first = parse_pos(first)?;
    if last.is_empty() {
        return Some(Spec::From(first, None));
    }
    let last = parse_pos(last)?;
    // A range whose last position is before its first is invalid (RFC 9110 section 14.1.1).
    (last >= first).then_some(Spec::From(first, Some(last)))
}

/// The bytes `spec` selects from a body of `len` bytes, `None` if unsatisfiable.
fn resolve(spec: Spec, len: u64) -> Option<Range<u64>> {
    match spec {
        Spec::From(first, last) => {
            if first >= len {
                return None;
            }
            let end = last.map_or(len, |last| last.saturating_add(1).min(len));
            Some(first..end)
        }
        Spec::Suffix(n) => (n > 0 && len > 0).then(|| len - n.min(len)..len),
    }
}

/// Reads a `Range` value for a body of `content_length` bytes.
///
/// The unit must be `bytes` (case-insensitive) and every member a valid range-spec, else the
/// header is ignored ([`RangeType::None`]). Unsatisfiable members are dropped; if none is
/// left the answer is [`RangeType::Unsatisfiable`]. More than `max_ranges` satisfiable
/// ranges are not served as ranges (a defence against many small or overlapping ranges,
/// RFC 9110 section 14.2): the full response is.
pub fn parse_range_header(value: &[u8], content_length: u64, max_ranges: usize) -> RangeType {
    let value = trim_ows(value);
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeType::None;
    };
    if !trim_ows(&value[..eq]).eq_ignore_ascii_case(b"bytes") {
        return RangeType::None;
    }
    let mut specs = Vec::new();
    for member in value[eq + 1..].split(|&b| b == b',') {
        let member = trim_ows(member);
        if member.is_empty() {
            continue;
        }
        match parse_spec(member) {
            Some(spec) => specs.push(spec),
            None => return RangeType::None,
        }
    }
    if specs.is_empty() {
        return RangeType::None;
    }
    let mut ranges: Vec<Range<u64>> = specs
        .into_iter()
        .filter_map(|spec| resolve(spec, content_length))
        .collect();
    match ranges.len() {
        0 => RangeType::Unsatisfiable,
        1 => RangeType::Single(ranges.remove(0)),
        n if n > max_ranges => RangeType::None,
        _ => RangeType::Multi(ranges),
    }
}

/// The range answer to a request hitting a stored response: a range applies only to GET, on
/// a stored 200 whose body length is known, and only when `If-Range` (if present) matches.
pub fn range_for_hit(
    method: &Method,
    req_headers: &HeaderMap,
    stored_status: StatusCode,
    stored_headers: &HeaderMap,
    content_length: u64,
    max_ranges: usize,
) -> RangeType {
    if *method != Method::GET || stored_status != StatusCode::OK {
        return RangeType::None;
    }
    let mut ranges = req_headers.get_all(header::RANGE).iter();
    let (Some(range), None) = (ranges.next(), ranges.next()) else {
        return RangeType::None;
    };
    if let Some(if_range) = req_headers.get(header::IF_RANGE) {
        if !if_range_matches(if_range, stored_headers) {
            return RangeType::None;
        }
    }
    parse_range_header(range.as_bytes(), content_length, max_ranges)
}

/// The `Content-Range` value of a 206 part (`bytes first-last/length`) or, with `None`, of a
/// 416 (`bytes */length`). An empty range has no `first-last` form and is written as `*`.
pub fn content_range(range: Option<&Range<u64>>, content_length: u64) -> String {
    match range {
        Some(r) if r.end > r.start => {
            format!("bytes {}-{}/{content_length}", r.start, r.end - 1)
        }
        _ => format!("bytes */{content_length}"),
    }
}

/// The framing of a `multipart/byteranges` body (RFC 9110 section 14.6): the boundary,
/// each part's header, the closing delimiter, and the total length.
#[derive(Debug, Clone)]
pub struct Multipart {
    boundary: String,
    content_type: Option<String>,
    content_length: u64,
}

// === impl Multipart ===

impl Multipart {
    /// Framing for the parts of a body of `content_length` bytes with `content_type` (the
    /// stored `Content-Type`, repeated in each part), separated by `boundary` (1 to 70
    /// characters that the body is unlikely to contain; the caller picks it, e.g. at random).
    pub fn new(boundary: String, content_type: Option<String>, content_length: u64) -> Self {
        Multipart {
            boundary,
            content_type,
            content_length,
        }
    }

    /// The response's `Content-Type`.
    pub fn content_type_value(&self) -> String {
        format!("multipart/byteranges; boundary={}", self.boundary)
    }

    /// What precedes the bytes of `range`: the delimiter and the part's header.
    pub fn part_header(&self, range: &Range<u64>) -> String {
        let mut out = format!("\r\n--{}\r\n", self.boundary);
        if let Some(content_type) = &self.content_type {
            out.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        let range = content_range(Some(range), self.content_length);
        out.push_str(&format!("Content-Range: {range}\r\n\r\n"));
        out
    }

    /// The closing delimiter, after the last part.
    pub fn end(&self) -> String {
        format!("\r\n--{}--\r\n", self.boundary)
    }

    /// The length of the whole multipart body for `ranges`.
    pub fn body_length(&self, ranges: &[Range<u64>]) -> u64 {
        let parts: u64 = ranges
            .iter()
            .map(|r| self.part_header(r).len() as u64 + (r.end - r.start))
            .sum();
        parts + self.end().len() as u64
    }
}

#[cfg(test)]
mod tests;
