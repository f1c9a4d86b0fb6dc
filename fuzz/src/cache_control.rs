//! `Cache-Control` parsing (`pingora_cache::cache_control`), checked for consistency: field
//! lines parse the same as one combined line, names are lower-case, the accessors agree
//! with the directive list, delta-seconds agree with a plain reading of the rule, and a
//! targeted field (RFC 9213) is used only when it is a valid Structured Field Dictionary.
//!
//! Input: the field lines, separated by `\n` (lines that are not valid field values are
//! skipped).

use http::{HeaderMap, HeaderValue};
use pingora_cache::cache_control::{
    is_sf_dictionary, targeted_cache_control, CacheControl, InterpretCacheControl,
};
use pingora_http::ResponseHeader;
use std::time::Duration;

const MAX_DELTA: u64 = (1 << 31) - 1;

/// The fuzz check.
pub fn check(data: &[u8]) {
    let lines: Vec<HeaderValue> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| HeaderValue::from_bytes(line).ok())
        .collect();
    if lines.is_empty() {
        return;
    }
    let mut headers = HeaderMap::new();
    for line in &lines {
        headers.append("cache-control", line.clone());
    }
    let cc = CacheControl::from_headers_named("cache-control", &headers).expect("present");
    check_directives(&cc);
    check_lines_combine(&cc, &lines);
    check_strip(&cc, &headers);
    check_targeted(&headers);
}

/// A targeted field counts only when all its lines form a valid, non-empty Structured Field
/// Dictionary, and then its directives are those of the lenient parser (at least one).
fn check_targeted(headers: &HeaderMap) {
    let joined = headers
        .get_all("cache-control")
        .iter()
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b", "[..]);
    let valid = is_sf_dictionary(&joined);
    match targeted_cache_control(headers, &["cdn-cache-control", "cache-control"]) {
        Some(cc) => {
            assert!(valid);
            assert!(cc.directives().count() >= 1);
        }
        None => assert!(!valid),
    }
}

fn check_directives(cc: &CacheControl) {
    for (key, _) in cc.directives() {
        assert_eq!(key, key.to_ascii_lowercase(), "names are lower-cased");
        assert!(
            !key.contains([',', ';', '=']),
            "a delimiter in name {key:?}"
        );
    }
    if cc.private() {
        assert!(cc.private_field_names().is_none());
    }
    if cc.no_cache() {
        assert!(cc.no_cache_field_names().is_none());
        assert_eq!(cc.fresh_duration(), Some(Duration::ZERO));
    }
    for names in [cc.private_field_names(), cc.no_cache_field_names()]
        .into_iter()
        .flatten()
    {
        for name in names {
            assert!(!name.is_empty() && !name.contains(&b','));
            assert_eq!(name.trim_ascii(), name);
        }
    }
    // max-age: valid only when it occurs once with 1*DIGIT, clamped to 2^31 - 1.
    let occurrences: Vec<_> = cc.directives().filter(|(k, _)| *k == "max-age").collect();
    let expected = match occurrences.as_slice() {
        [] => Some(None),
        [(_, Some(value))] => plain_delta_seconds(value.as_ref()).map(Some),
        _ => None,
    };
    assert_eq!(cc.max_age().ok(), expected);
    if !cc.no_cache() && !cc.has_key("s-maxage") {
        let lifetime = match expected {
            Some(None) => None,
            Some(Some(secs)) => Some(Duration::from_secs(u64::from(secs))),
            None => Some(Duration::ZERO),
        };
        assert_eq!(cc.fresh_duration(), lifetime);
    }
    if cc.must_revalidate() || cc.has_key("s-maxage") {
        assert_eq!(cc.serve_stale_if_error_duration(), Some(Duration::ZERO));
        assert_eq!(
            cc.serve_stale_while_revalidate_duration(),
            Some(Duration::ZERO)
        );
    }
}

fn plain_delta_seconds(value: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(value).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = text.trim_start_matches('0');
    if digits.len() > 10 {
        return Some(MAX_DELTA as u32);
    }
    let n: u64 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    Some(n.min(MAX_DELTA) as u32)
}

/// Several field lines mean the same as one line joining them with commas (RFC 9110
/// section 5.3), as long as no quoted string is left open at the end of a line.
fn check_lines_combine(cc: &CacheControl, lines: &[HeaderValue]) {
    if lines.iter().any(|l| l.as_bytes().contains(&b'"')) {
        return;
    }
    let joined = lines
        .iter()
        .map(HeaderValue::as_bytes)
        .collect::<Vec<_>>()
        .join(&b", "[..]);
    let Ok(joined) = HeaderValue::from_bytes(&joined) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.append("cache-control", joined);
    let once = CacheControl::from_headers_named("cache-control", &headers).expect("present");
    let a: Vec<_> = cc.directives().collect();
    let b: Vec<_> = once.directives().collect();
    assert_eq!(a, b);
}

/// Stripping removes every listed field that is a valid name and nothing else.
fn check_strip(cc: &CacheControl, headers: &HeaderMap) {
    let mut resp = ResponseHeader::build(200, None).expect("valid status");
    for value in headers.get_all("cache-control") {
        resp.append_header("cache-control", value.clone())
            .expect("valid");
    }
    let listed: Vec<http::HeaderName> = cc
        .private_field_names()
        .into_iter()
        .flatten()
        .chain(cc.no_cache_field_names().into_iter().flatten())
        .filter_map(|n| http::HeaderName::from_bytes(n).ok())
        .collect();
    for name in &listed {
        resp.append_header(name.clone(), "x").expect("valid");
    }
    resp.append_header("x-fuzz-kept", "1").expect("valid");
    cc.strip_private_headers(&mut resp);
    for name in &listed {
        assert!(!resp.headers.contains_key(name), "{name} kept");
    }
    let kept = listed.iter().all(|n| n.as_str() != "x-fuzz-kept");
    assert_eq!(resp.headers.contains_key("x-fuzz-kept"), kept);
    let cc_kept = listed.iter().all(|n| n.as_str() != "cache-control");
    assert_eq!(resp.headers.contains_key("cache-control"), cc_kept);
}
