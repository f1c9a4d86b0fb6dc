//! `Cache-Control` parsing (RFC 9111 section 5.2) and its reading by a shared cache.
//!
//! [`CacheControl`] parses every field line of `Cache-Control` (or of another field with the
//! same syntax, such as `CDN-Cache-Control`) into directives, keeping every occurrence in
//! order. [`InterpretCacheControl`] turns them into decisions: may the response be stored,
//! for how long is it fresh, how long may it be served stale.
//!
//! The parser never fails and never panics: it is lenient in what it accepts (`;` as well as
//! `,` between directives, octets outside visible ASCII, quoted numbers, directives that should
//! have no value given one) and conservative in what it concludes:
//!
//! * a delta-seconds value that overflows is clamped to 2^31 - 1 (section 1.2.2);
//! * `max-age` or `s-maxage` given several times, without a value or with an invalid one makes
//!   the response stale (freshness lifetime 0, section 4.2.1), never fresh forever;
//! * bare `private` or `no-cache` anywhere wins over a field-name form of the same directive.
//!
//! Targeted fields such as `CDN-Cache-Control` (RFC 9213) must be valid Structured Field
//! Dictionaries to count: [`targeted_cache_control`] picks the first valid one.
//!
//! ```
//! use pingora_cache::cache_control::{CacheControl, InterpretCacheControl};
//! use pingora_http::ResponseHeader;
//! use std::time::Duration;
//!
//! let mut resp = ResponseHeader::build(200, None)?;
//! resp.append_header("Cache-Control", "public, max-age=60")?;
//! resp.append_header("Cache-Control", "private=\"Set-Cookie, X-Token\"")?;
//! let cc = CacheControl::from_resp_headers(&resp).expect("the field is present");
//! assert!(cc.public() && !cc.private());
//! assert_eq!(cc.max_age()?, Some(60));
//! assert_eq!(cc.fresh_duration(), Some(Duration::from_secs(60)));
//! let names: Vec<&[u8]> = cc.private_field_names().expect("listed").collect();
//! assert_eq!(names, [&b"Set-Cookie"[..], b"X-Token"]);
//! # Ok::<(), pingora_error::BError>(())
//! ```

use std::time::Duration;

use http::header::{HeaderMap, HeaderName};
use http::{request, response};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;

mod targeted;
pub use targeted::{is_sf_dictionary, targeted_cache_control};

/// The largest delta-seconds value: larger values are clamped to it (RFC 9111 section 1.2.2).
pub const DELTA_SECONDS_OVERFLOW_VALUE: u32 = i32::MAX as u32;

/// [`DELTA_SECONDS_OVERFLOW_VALUE`] as a duration.
pub const DELTA_SECONDS_OVERFLOW_DURATION: Duration =
    Duration::from_secs(DELTA_SECONDS_OVERFLOW_VALUE as u64);

/// A directive name, lower-cased.
pub type DirectiveKey = String;

/// A directive's value, without the quotes and escapes of a quoted string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveValue(pub Vec<u8>);

// === impl DirectiveValue ===

impl AsRef<[u8]> for DirectiveValue {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl DirectiveValue {
    /// The value's bytes (quotes were already removed while parsing).
    pub fn parse_as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The value as UTF-8.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] if the value is not UTF-8.
    pub fn parse_as_str(&self) -> Result<&str> {
        std::str::from_utf8(&self.0)
            .or_else(|e| Error::e_because(ErrorType::InternalError, "directive is not UTF-8", e))
    }

    /// The value as delta-seconds (`1*DIGIT`), clamped to [`DELTA_SECONDS_OVERFLOW_VALUE`].
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] if the value is empty or not all digits (a sign, a
    /// fraction or spaces make it invalid).
    pub fn parse_as_delta_seconds(&self) -> Result<u32> {
        parse_delta_seconds(&self.0).ok_or_else(|| {
            Error::explain(ErrorType::InternalError, "directive is not delta-seconds")
        })
    }
}

/// Parses `1*DIGIT`, clamping to [`DELTA_SECONDS_OVERFLOW_VALUE`].
pub(crate) fn parse_delta_seconds(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u32 = 0;
    for digit in bytes {
        value = value
            .saturating_mul(10)
            .saturating_add(u32::from(digit - b'0'))
            .min(DELTA_SECONDS_OVERFLOW_VALUE);
    }
    Some(value)
}

/// Whether a stored response may be cached, as far as `Cache-Control` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cacheable {
    /// Explicitly cacheable: `public`, `max-age` or `s-maxage`.
    Yes,
    /// Explicitly not cacheable: `no-store` or bare `private`.
    No,
    /// No directive decides; the cache's defaults do.
    Default,
}

/// The field names listed by `private="..."` or `no-cache="..."`, trimmed, in order, across
/// every occurrence of the directive.
#[derive(Debug, Clone)]
pub struct ListValueIter<'a> {
    values: std::slice::Iter<'a, (DirectiveKey, Option<DirectiveValue>)>,
    key: &'a str,
    current: std::slice::Split<'a, u8, fn(&u8) -> bool>,
}

impl<'a> Iterator for ListValueIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            for item in self.current.by_ref() {
                let item = trim_ows(item);
                if !item.is_empty() {
                    return Some(item);
                }
            }
            let value = self.values.find_map(|(key, value)| match value {
                Some(value) if key == self.key => Some(value),
                _ => None,
            })?;
            self.current = value.0.split(is_comma as fn(&u8) -> bool);
        }
    }
}

fn is_comma(b: &u8) -> bool {
    *b == b','
}

fn is_ows(b: &u8) -> bool {
    matches!(b, b' ' | b'\t')
}

fn trim_ows(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// Parsed `Cache-Control` directives.
#[derive(Debug, Clone, Default)]
pub struct CacheControl {
    /// Every directive in field order, duplicates included, with lower-cased names.
    directives: Vec<(DirectiveKey, Option<DirectiveValue>)>,
}

// === impl CacheControl ===

impl CacheControl {
    /// Parses the directives of every field line named `header_name` in `headers`.
    ///
    /// Returns `None` when there is no such field.
    pub fn from_headers_named(header_name: &str, headers: &HeaderMap) -> Option<Self> {
        let mut lines = headers.get_all(header_name).iter().peekable();
        lines.peek()?;
        let mut cc = CacheControl::default();
        for line in lines {
            cc.parse_line(line.as_bytes());
        }
        Some(cc)
    }

    /// Parses `header_name` of a request.
    pub fn from_req_headers_named(header_name: &str, req_header: &request::Parts) -> Option<Self> {
        Self::from_headers_named(header_name, &req_header.headers)
    }

    /// Parses `Cache-Control` of a request.
    pub fn from_req_headers(req_header: &request::Parts) -> Option<Self> {
        Self::from_req_headers_named("cache-control", req_header)
    }

    /// Parses `header_name` of a response (for example `cdn-cache-control`).
    pub fn from_resp_headers_named(
        header_name: &str,
        resp_header: &response::Parts,
    ) -> Option<Self> {
        Self::from_headers_named(header_name, &resp_header.headers)
    }

    /// Parses `Cache-Control` of a response.
    pub fn from_resp_headers(resp_header: &response::Parts) -> Option<Self> {
        Self::from_resp_headers_named("cache-control", resp_header)
    }

    /// Parses one field line: `#( token [ "=" ( token / quoted-string ) ] )`.
    fn parse_line(&mut self, mut line: &[u8]) {
        loop {
            let start = line.iter().position(|b| !is_ows(b) && !is_delimiter(*b));
            let Some(start) = start else { return };
            line = &line[start..];
            let key_end = line
                .iter()
                .position(|&b| b == b'=' || is_delimiter(b))
                .unwrap_or(line.len());
            let key = trim_ows(&line[..key_end]);
            line = &line[key_end..];
            let mut value = None;
            if let Some(rest) = line.strip_prefix(b"=") {
                let (parsed, rest) = parse_value(rest);
                value = Some(DirectiveValue(parsed));
                line = rest;
            }
            // Names are case-insensitive tokens; an empty one, or one that is not UTF-8,
            // names nothing we know.
            match std::str::from_utf8(key) {
                Ok(key) if !key.is_empty() => {
                    self.directives.push((key.to_ascii_lowercase(), value));
                }
                _ => {}
            }
        }
    }

    /// Every directive in field order, duplicates included, with lower-cased names.
    pub fn directives(&self) -> impl Iterator<Item = (&str, Option<&DirectiveValue>)> + '_ {
        self.directives
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_ref()))
    }

    /// The first occurrence of `key` (lower-case): `Some(None)` when it has no value.
    pub fn directive(&self, key: &str) -> Option<Option<&DirectiveValue>> {
        self.directives
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, value)| value.as_ref())
    }

    /// How many times `key` (lower-case) occurs.
    pub fn count(&self, key: &str) -> usize {
        self.directives.iter().filter(|(k, _)| k == key).count()
    }

    /// Whether directive `key` (lower-case) is present, with or without a value.
    pub fn has_key(&self, key: &str) -> bool {
        self.directives.iter().any(|(k, _)| k == key)
    }

    fn has_key_without_value(&self, key: &str) -> bool {
        self.directives.iter().any(|(k, v)| k == key && v.is_none())
    }

    fn field_names(&self, key: &'static str) -> Option<ListValueIter<'_>> {
        if self.has_key_without_value(key)
            || !self.directives.iter().any(|(k, v)| k == key && v.is_some())
        {
            return None;
        }
        Some(ListValueIter {
            values: self.directives.iter(),
            key,
            current: [].split(is_comma as fn(&u8) -> bool),
        })
    }

    /// `public`.
    pub fn public(&self) -> bool {
        self.has_key("public")
    }

    /// Bare `private` (the whole response is private). `private="..."` lists fields instead,
    /// see [`private_field_names`](Self::private_field_names).
    pub fn private(&self) -> bool {
        self.has_key_without_value("private")
    }

    /// The field names of `private="..."`, unless bare `private` is also present.
    pub fn private_field_names(&self) -> Option<ListValueIter<'_>> {
        self.field_names("private")
    }

    /// Bare `no-cache` (revalidate before every reuse).
    pub fn no_cache(&self) -> bool {
        self.has_key_without_value("no-cache")
    }

    /// The field names of `no-cache="..."`, unless bare `no-cache` is also present.
    pub fn no_cache_field_names(&self) -> Option<ListValueIter<'_>> {
        self.field_names("no-cache")
    }

    /// `no-store`.
    pub fn no_store(&self) -> bool {
        self.has_key("no-store")
    }

    /// The delta-seconds value of `key`: `Ok(None)` when absent.
    ///
    /// # Errors
    ///
    /// When the directive has no value, an invalid one, or occurs more than once.
    fn delta_seconds(&self, key: &str) -> Result<Option<u32>> {
        let mut found = None;
        for (k, value) in &self.directives {
            if k != key {
                continue;
            }
            if found.is_some() {
                return Error::e_explain(
                    ErrorType::InternalError,
                    "directive occurs more than once",
                );
            }
            let Some(value) = value else {
                return Error::e_explain(ErrorType::InternalError, "directive needs a value");
            };
            found = Some(value.parse_as_delta_seconds()?);
        }
        Ok(found)
    }

    /// `max-age`, in seconds.
    ///
    /// # Errors
    ///
    /// When `max-age` has no value, an invalid one, or occurs more than once.
    pub fn max_age(&self) -> Result<Option<u32>> {
        self.delta_seconds("max-age")
    }

    /// `s-maxage`, in seconds.
    ///
    /// # Errors
    ///
    /// As for [`max_age`](Self::max_age).
    pub fn s_maxage(&self) -> Result<Option<u32>> {
        self.delta_seconds("s-maxage")
    }

    /// `stale-while-revalidate`, in seconds (RFC 5861).
    ///
    /// # Errors
    ///
    /// As for [`max_age`](Self::max_age).
    pub fn stale_while_revalidate(&self) -> Result<Option<u32>> {
        self.delta_seconds("stale-while-revalidate")
    }

    /// `stale-if-error`, in seconds (RFC 5861).
    ///
    /// # Errors
    ///
    /// As for [`max_age`](Self::max_age).
    pub fn stale_if_error(&self) -> Result<Option<u32>> {
        self.delta_seconds("stale-if-error")
    }

    /// The request directive `min-fresh`, in seconds.
    ///
    /// # Errors
    ///
    /// As for [`max_age`](Self::max_age).
    pub fn min_fresh(&self) -> Result<Option<u32>> {
        self.delta_seconds("min-fresh")
    }

    /// The request directive `max-stale`: `Some(None)` without a value (any staleness is
    /// acceptable), `Some(Some(n))` with one.
    ///
    /// # Errors
    ///
    /// When the value is invalid or the directive occurs more than once.
    pub fn max_stale(&self) -> Result<Option<Option<u32>>> {
        if self.count("max-stale") > 1 {
            return Error::e_explain(ErrorType::InternalError, "directive occurs more than once");
        }
        match self.directive("max-stale") {
            None => Ok(None),
            Some(None) => Ok(Some(None)),
            Some(Some(value)) => Ok(Some(Some(value.parse_as_delta_seconds()?))),
        }
    }

    /// `must-revalidate`.
    pub fn must_revalidate(&self) -> bool {
        self.has_key("must-revalidate")
    }

    /// `proxy-revalidate`.
    pub fn proxy_revalidate(&self) -> bool {
        self.has_key("proxy-revalidate")
    }

    /// `must-understand` (RFC 9111 section 5.2.2.3).
    pub fn must_understand(&self) -> bool {
        self.has_key("must-understand")
    }

    /// The request directive `only-if-cached`.
    pub fn only_if_cached(&self) -> bool {
        self.has_key("only-if-cached")
    }

    /// The freshness lifetime `key` gives: its value, 0 when present but invalid or repeated
    /// (RFC 9111 section 4.2.1: such a response is stale), `None` when absent.
    fn lifetime(&self, key: &str) -> Option<Duration> {
        if !self.has_key(key) {
            return None;
        }
        let secs = self.delta_seconds(key).ok().flatten().unwrap_or(0);
        Some(Duration::from_secs(u64::from(secs)))
    }

    /// How long stale serving is allowed by `key`, where nothing forbids it.
    fn stale_duration(&self, key: &str) -> Option<Duration> {
        if self.forbids_stale() {
            return Some(Duration::ZERO);
        }
        let secs = self.delta_seconds(key).ok().flatten()?;
        Some(Duration::from_secs(u64::from(secs)))
    }

    /// Whether a stale copy may never be served without revalidation (RFC 9111 section
    /// 4.2.4): `must-revalidate`, `proxy-revalidate`, `s-maxage` or bare `no-cache`.
    pub fn forbids_stale(&self) -> bool {
        self.must_revalidate()
            || self.proxy_revalidate()
            || self.has_key("s-maxage")
            || self.no_cache()
    }
}

fn is_delimiter(b: u8) -> bool {
    b == b',' || b == b';'
}

/// Parses a directive value after `=`: a quoted string (unescaped; an unterminated one runs to
/// the end of the line) or a token (up to the next delimiter, trimmed). Returns the value and
/// the rest of the line after it.
fn parse_value(line: &[u8]) -> (Vec<u8>, &[u8]) {
    let line = &line[line.iter().position(|b| !is_ows(b)).unwrap_or(line.len())..];
    let Some(quoted) = line.strip_prefix(b"\"") else {
        let end = line
            .iter()
            .position(|&b| is_delimiter(b))
            .unwrap_or(line.len());
        return (trim_ows(&line[..end]).to_vec(), &line[end..]);
    };
    let mut value = Vec::with_capacity(quoted.len());
    let mut bytes = quoted.iter().enumerate();
    while let Some((i, &b)) = bytes.next() {
        match b {
            b'"' => {
                // Whatever follows the closing quote up to the next delimiter is ignored.
                let rest = &quoted[i + 1..];
                let end = rest
                    .iter()
                    .position(|&b| is_delimiter(b))
                    .unwrap_or(rest.len());
                return (value, &rest[end..]);
            }
            b'\\' => {
                if let Some((_, &escaped)) = bytes.next() {
                    value.push(escaped);
                }
            }
            _ => value.push(b),
        }
    }
    (value, &[])
}

/// The reading of parsed directives by a cache: cacheability, freshness and stale serving.
///
/// [`CacheControl`] implements it for a shared cache (RFC 9111). Implement it yourself to read
/// directives differently, for example as a private cache.
pub trait InterpretCacheControl {
    /// Whether the directives make the response cacheable. A cache must also check the
    /// request's `Authorization` against
    /// [`allow_caching_authorized_req`](Self::allow_caching_authorized_req).
    fn is_cacheable(&self) -> Cacheable;

    /// Whether a response to a request with `Authorization` may be stored (RFC 9111 section
    /// 3.5: `public`, `s-maxage` or `must-revalidate`).
    fn allow_caching_authorized_req(&self) -> bool;

    /// The freshness lifetime the directives give: `s-maxage` for a shared cache, else
    /// `max-age`; zero for bare `no-cache` (always revalidate) and for an invalid or repeated
    /// value; `None` when no directive gives one.
    fn fresh_duration(&self) -> Option<Duration>;

    /// How long after going stale the response may be served while it is revalidated: zero
    /// when a directive forbids serving stale, `None` when no directive says.
    fn serve_stale_while_revalidate_duration(&self) -> Option<Duration>;

    /// How long after going stale the response may be served when revalidation fails: zero
    /// when a directive forbids serving stale, `None` when no directive says.
    fn serve_stale_if_error_duration(&self) -> Option<Duration>;

    /// Removes the fields named by `private="..."` and `no-cache="..."` from a response
    /// about to be stored.
    fn strip_private_headers(&self, resp_header: &mut ResponseHeader);
}

impl InterpretCacheControl for CacheControl {
    fn is_cacheable(&self) -> Cacheable {
        if self.no_store() || self.private() {
            Cacheable::No
        } else if self.has_key("s-maxage") || self.has_key("max-age") || self.public() {
            Cacheable::Yes
        } else {
            Cacheable::Default
        }
    }

    fn allow_caching_authorized_req(&self) -> bool {
        self.public() || self.has_key("s-maxage") || self.must_revalidate()
    }

    fn fresh_duration(&self) -> Option<Duration> {
        if self.no_cache() {
            return Some(Duration::ZERO);
        }
        self.lifetime("s-maxage")
            .or_else(|| self.lifetime("max-age"))
    }

    fn serve_stale_while_revalidate_duration(&self) -> Option<Duration> {
        self.stale_duration("stale-while-revalidate")
    }

    fn serve_stale_if_error_duration(&self) -> Option<Duration> {
        self.stale_duration("stale-if-error")
    }

    fn strip_private_headers(&self, resp_header: &mut ResponseHeader) {
        let names = self
            .private_field_names()
            .into_iter()
            .flatten()
            .chain(self.no_cache_field_names().into_iter().flatten());
        for name in names {
            if let Ok(name) = HeaderName::from_bytes(name) {
                resp_header.remove_header(&name);
            }
        }
    }
}

#[cfg(test)]
mod tests;
