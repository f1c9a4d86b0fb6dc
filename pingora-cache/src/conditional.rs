//! Conditional requests answered from the cache (RFC 9110 section 13; RFC 9111 section
//! 4.3.2), as pure functions of the request and the stored response header.
//!
//! * [`not_modified`]: whether a hit is answered with 304, from `If-None-Match` (weak
//!   comparison) or, only without it, `If-Modified-Since`;
//! * [`not_modified_response`]: the 304 header built from the stored one;
//! * [`if_range_matches`]: whether `If-Range` lets a range request be served as a range
//!   (strong validators only);
//! * [`EntityTag`] parsing and comparison;
//! * revalidation with the origin (RFC 9111 section 4.3.4): [`selected_for_update`] decides
//!   whether a 304 refers to the stored response, [`merge_not_modified`] applies it.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use pingora_http::ResponseHeader;
use std::time::SystemTime;

use crate::filters::parse_http_date;

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
    for line in lines {
        let mut rest = line.as_bytes().trim_ascii();
        if rest == b"*" {
            return true;
        }
        loop {
            rest = rest.trim_ascii_start();
            rest = rest.strip_prefix(b",").unwrap_or(rest).trim_ascii_start();
            if rest.is_empty() {
                break;
            }
            let Some((tag, after)) = parse_etag(rest) else {
                break;
            };
            if stored.is_some_and(|s| s.weak_eq(&tag)) {
                return true;
            }
            rest = after;
        }
    }
    false
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

/// Whether a 304 from the origin refers to the stored response, so that it may update it
/// (RFC 9111 section 4.3.4, for a cache holding one response for the key):
///
/// * a strong `ETag` in the 304 selects the stored response only if its `ETag` is the same
///   strong tag;
/// * else a weak `ETag` selects it if the tags match weakly, and a `Last-Modified` (without
///   any `ETag`) if the stored `Last-Modified` is the same date;
/// * else, with no validator in either, it is selected.
///
/// When it is not selected, nothing is updated and the request is sent again unconditionally.
pub fn selected_for_update(stored: &HeaderMap, not_modified: &HeaderMap) -> bool {
    let etag = |headers: &HeaderMap| headers.get(header::ETAG).cloned();
    let (new_etag, old_etag) = (etag(not_modified), etag(stored));
    let new_tag = new_etag
        .as_ref()
        .and_then(|v| EntityTag::parse(v.as_bytes()));
    let old_tag = old_etag
        .as_ref()
        .and_then(|v| EntityTag::parse(v.as_bytes()));
    if let Some(new_tag) = new_tag {
        return match old_tag {
            Some(old) if new_tag.weak => old.weak_eq(&new_tag),
            Some(old) => old.strong_eq(&new_tag),
            None => false,
        };
    }
    let new_lm = single_date(not_modified, &header::LAST_MODIFIED);
    if let Some(new_lm) = new_lm {
        return single_date(stored, &header::LAST_MODIFIED) == Some(new_lm);
    }
    old_tag.is_none() && !stored.contains_key(header::LAST_MODIFIED)
}

/// Fields of a 304 that never replace stored ones: the stored body's length and range, and
/// the fields a shared cache never stores.
fn kept_on_merge(name: &HeaderName) -> bool {
    *name == header::CONTENT_LENGTH
        || *name == header::CONTENT_RANGE
        || crate::filters::default_policy::UNSTORED_FIELDS.contains(&name.as_str())
}

/// The stored response header updated with a 304 (RFC 9111 section 4.3.4): every field the
/// 304 carries replaces all stored values of that field, except `Content-Length`,
/// `Content-Range`, the fields never stored and those the 304's `Connection` lists. The
/// 304's `Date` and `Age` thus restart the age calculation; a stored `Age` or `Date` the 304
/// lacks is removed (the age then counts from the 304's arrival). Status, version and the other
/// stored fields are kept, as are the 304's field-name spellings.
pub fn merge_not_modified(
    stored: &ResponseHeader,
    not_modified: &ResponseHeader,
) -> ResponseHeader {
    let connection_listed: Vec<HeaderName> = not_modified
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
        .collect();
    let fields: Vec<(Bytes, &HeaderValue)> = if not_modified.has_case() {
        not_modified
            .case_header_iter()
            .map(|(name, value)| (Bytes::copy_from_slice(name.as_slice()), value))
            .collect()
    } else {
        not_modified
            .headers
            .iter()
            .map(|(name, value)| (Bytes::copy_from_slice(name.as_str().as_bytes()), value))
            .collect()
    };
    let mut merged = stored.clone();
    let mut replaced: Vec<HeaderName> = Vec::new();
    for (spelling, value) in fields {
        let Ok(name) = HeaderName::from_bytes(&spelling) else {
            continue;
        };
        if kept_on_merge(&name) || connection_listed.contains(&name) {
            continue;
        }
        if !replaced.contains(&name) {
            merged.remove_header(&name);
            replaced.push(name);
        }
        // The name and value come from a header map, so appending them cannot fail.
        let _ = merged.append_header(spelling, value.clone());
    }
    // The age restarts from the 304: a stored `Age` or `Date` it does not replace is stale.
    for name in [header::AGE, header::DATE] {
        if !not_modified.headers.contains_key(&name) {
            merged.remove_header(&name);
        }
    }
    merged
}

#[cfg(test)]
mod tests;
