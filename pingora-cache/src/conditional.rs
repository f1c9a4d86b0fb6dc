//! Conditional requests answered from the cache, and revalidation with the origin.
//!
//! The request side (RFC 9110 section 13: [`EntityTag`], [`not_modified`],
//! [`not_modified_response`], [`if_range_matches`]) lives in pingora-http
//! ([`pingora_http::conditional`]) and is re-exported here; revalidation
//! (RFC 9111 section 4.3.4) is the cache's own: [`selected_for_update`] decides whether a 304
//! refers to the stored response, [`merge_not_modified`] applies it.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use pingora_http::ResponseHeader;
use std::time::SystemTime;

pub use pingora_http::conditional::*;

/// The single value of `name` as an HTTP date; `None` if absent, repeated or invalid.
fn single_date(headers: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_http_date(value)
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
