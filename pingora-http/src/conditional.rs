//! Conditional requests (RFC 9110 section 13; RFC 9111 section 4.3.2), as pure functions of
//! the request and the (stored) response header. The cache answers from them
//! (`pingora_cache::conditional`), and pingora-core's `protocols::http::conditional_filter`
//! gives them Pingora's names.
//!
//! * [`not_modified`]: whether a hit is answered with 304, from `If-None-Match` (weak
//!   comparison) or, only without it, `If-Modified-Since`;
//! * [`not_modified_response`]: the 304 header built from the stored one;
//! * [`if_range_matches`]: whether `If-Range` lets a range request be served as a range
//!   (strong validators only);
//! * [`EntityTag`] parsing and comparison;
//!
//! Revalidation with the origin (a 304 merged into a stored response) is the cache's:
//! `pingora_cache::conditional`.

use crate::ResponseHeader;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};
use std::time::SystemTime;

/// An entity tag (RFC 9110 section 8.8.3): `"opaque"` or `W/"opaque"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityTag<'a> {
    /// Whether the tag is weak (`W/`).
    pub weak: bool,
    /// The opaque tag, without its quotes.
    pub opaque: &'a [u8],
}

// === impl EntityTag ===

impl<'a> EntityTag<'a> {
    /// Parses one entity tag that makes up all of `value` (surrounding whitespace allowed).
    pub fn parse(value: &'a [u8]) -> Option<Self> {
        match parse_etag(value.trim_ascii())? {
            (tag, []) => Some(tag),
            _ => None,
        }
    }

    /// Strong comparison: both strong and the same opaque tag.
    pub fn strong_eq(&self, other: &EntityTag<'_>) -> bool {
        !self.weak && !other.weak && self.opaque == other.opaque
    }

    /// Weak comparison: the same opaque tag, weak or not.
    pub fn weak_eq(&self, other: &EntityTag<'_>) -> bool {
        self.opaque == other.opaque
    }
}

/// Parses an entity tag at the start of `input`, returning it and the rest.
fn parse_etag(input: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, rest) = match input.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    let opaque = &rest[..end];
    // etagc: %x21 / %x23-7E / obs-text
    if !opaque.iter().all(|&b| b == 0x21 || b >= 0x23 && b != 0x7f) {
        return None;
    }
    Some((EntityTag { weak, opaque }, &rest[end + 1..]))
}

/// Whether any member of an `If-None-Match` field (all its lines) weakly matches `etag`; `*`
/// matches any stored representation. Reading a line stops at its first member that is not
/// an entity tag, so an invalid line matches only through the members before it.
fn none_match_matches(lines: header::GetAll<'_, HeaderValue>, etag: Option<&HeaderValue>) -> bool {
    let stored = etag.and_then(|v| EntityTag::parse(v.as_bytes()));
    lines
        .into_iter()
        .any(|line| none_match_line_matches(line.as_bytes(), stored.as_ref()))
}

/// Whether one `If-None-Match` field line (a comma-separated list of entity tags, or `*`)
/// weakly matches `stored`. Reading stops at the first member that is not an entity tag.
pub fn none_match_line_matches(line: &[u8], stored: Option<&EntityTag<'_>>) -> bool {
    let mut rest = line.trim_ascii();
    if rest == b"*" {
        return true;
    }
    loop {
        rest = rest.trim_ascii_start();
        rest = rest.strip_prefix(b",").unwrap_or(rest).trim_ascii_start();
        if rest.is_empty() {
            return false;
        }
        let Some((tag, after)) = parse_etag(rest) else {
            return false;
        };
        if stored.is_some_and(|s| s.weak_eq(&tag)) {
            return true;
        }
        rest = after;
    }
}

/// Whether a request for a stored response is answered with 304 Not Modified (RFC 9110
/// section 13.2.2), judged only when the stored status is 200 and the method GET or HEAD:
///
/// * with `If-None-Match`: when a member weakly matches the stored `ETag` (or is `*`);
///   `If-Modified-Since` is then ignored;
/// * else with `If-Modified-Since` holding a valid date: when the stored `Last-Modified` (or,
///   without a valid one, the stored `Date`) is not later than it.
pub fn not_modified(method: &Method, req_headers: &HeaderMap, stored: &ResponseHeader) -> bool {
    if stored.status != StatusCode::OK || !matches!(*method, Method::GET | Method::HEAD) {
        return false;
    }
    if req_headers.contains_key(header::IF_NONE_MATCH) {
        let lines = req_headers.get_all(header::IF_NONE_MATCH);
        return none_match_matches(lines, stored.headers.get(header::ETAG));
    }
    let Some(since) = single_date(req_headers, &header::IF_MODIFIED_SINCE) else {
        return false;
    };
    let modified = single_date(&stored.headers, &header::LAST_MODIFIED)
        .or_else(|| single_date(&stored.headers, &header::DATE));
    modified.is_some_and(|modified| modified <= since)
}

/// Parses an HTTP date (any of the three formats of RFC 9110 section 5.6.7).
pub fn parse_http_date(value: &HeaderValue) -> Option<SystemTime> {
    let text = value.to_str().ok()?;
    httpdate::parse_http_date(text.trim()).ok()
}

fn single_date(headers: &HeaderMap, name: &header::HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date(value)
}

/// The fields a 304 carries from the stored response (RFC 9110 section 15.4.5); the
/// caller adds `Age` and `Cache-Status`.
pub const NOT_MODIFIED_FIELDS: [header::HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LOCATION,
    header::DATE,
    header::ETAG,
    header::EXPIRES,
    header::VARY,
];

/// A 304 response header for a stored response: its version and the
/// [`NOT_MODIFIED_FIELDS`], nothing else.
pub fn not_modified_response(stored: &ResponseHeader) -> ResponseHeader {
    let mut resp = ResponseHeader::build(StatusCode::NOT_MODIFIED, Some(NOT_MODIFIED_FIELDS.len()))
        .expect("304 is a valid status code");
    resp.set_version(stored.version);
    for name in NOT_MODIFIED_FIELDS {
        for value in stored.headers.get_all(&name) {
            // Appending a value taken from a header map under a valid name cannot fail.
            let _ = resp.append_header(name.clone(), value.clone());
        }
    }
    resp
}

/// Whether `If-Range` (RFC 9110 section 13.1.5) matches the stored response, so the range
/// is served; otherwise the full response is. An entity tag matches only strongly (a weak
/// tag on either side never matches). A date matches only when it equals the stored
/// `Last-Modified` and that is strong: at least one second before the stored `Date`.
pub fn if_range_matches(if_range: &HeaderValue, stored: &HeaderMap) -> bool {
    let value = if_range.as_bytes().trim_ascii();
    if value.starts_with(b"\"") || value.starts_with(b"W/") {
        let Some(tag) = EntityTag::parse(value) else {
            return false;
        };
        let stored = stored
            .get(header::ETAG)
            .and_then(|v| EntityTag::parse(v.as_bytes()));
        return stored.is_some_and(|s| s.strong_eq(&tag));
    }
    let Some(date) = parse_http_date(if_range) else {
        return false;
    };
    let last_modified = single_date(stored, &header::LAST_MODIFIED);
    let served = single_date(stored, &header::DATE);
    match (last_modified, served) {
        (Some(lm), Some(served)) => {
            lm == date && served.duration_since(lm).is_ok_and(|d| d.as_secs() >= 1)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
