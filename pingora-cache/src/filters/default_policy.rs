//! The default caching policy: what the proxy stores, for how long, and when a stored
//! response may answer a request, once a user enables the cache (RFC 9111, shared cache).
//!
//! Pingora's own default `response_cache_filter` caches nothing, and its
//! [`filters::resp_cacheable`](super::resp_cacheable) leaves most rules to the user. This
//! policy keeps them, and every part of it is a function a user callback can call, replace
//! or skip:
//!
//! * [`storable`]: methods, statuses, `no-store`, `private`, `Authorization`,
//!   `must-understand`, and explicit or heuristic cacheability (section 3).
//! * [`refuse_set_cookie`]: responses with `Set-Cookie` are not stored, as nginx, Varnish
//!   and CDNs do by default. RFC 9111 allows storing them; a user policy may opt in.
//! * [`freshness_lifetime`]: `s-maxage` > `max-age` > `Expires - Date` > heuristic
//!   (section 4.2.1), with [`HeuristicFreshness`] (section 4.2.2).
//! * [`strip_unstored_fields`]: hop-by-hop fields and the fields named by `private="..."` and
//!   `no-cache="..."` are never stored (section 3.1).
//! * [`request_allows_reuse`]: the request directives `no-cache`, `max-age`, `min-fresh` and
//!   `max-stale` (section 5.2.1).
//! * [`is_stale_if_error_status`]: origin answers that let `stale-if-error` apply (RFC 5861).
//! * [`invalidates`] and [`invalidation_targets`]: what an unsafe request's response
//!   invalidates (section 4.4).
//! * [`resp_cacheable`]: all of the above, giving the [`CacheMeta`] to store. Its
//!   [`created`](CacheMeta::created) time is when the response was "born" (its arrival minus
//!   its initial age, section 4.2.3), so that [`CacheMeta::age_at`] is the response's
//!   current age, the value of the `Age` field when it is served.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::uri::{PathAndQuery, Uri};
use http::{response, Method, StatusCode};
use pingora_http::ResponseHeader;

use super::age;
use crate::cache_control::{CacheControl, InterpretCacheControl};
use crate::meta::{CacheMeta, CacheMetaDefaults};
use crate::status::{NoCacheReason, RespCacheable};

/// Statuses cacheable by default without explicit freshness (RFC 9110 section 15.1).
pub const HEURISTICALLY_CACHEABLE: [u16; 12] =
    [200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501];

/// Statuses whose caching semantics this cache implements, for `must-understand` (RFC 9111
/// section 5.2.2.3). 206 is left out until range storage exists.
pub const UNDERSTOOD_STATUSES: [u16; 14] = [
    200, 203, 204, 300, 301, 302, 303, 307, 308, 404, 405, 410, 414, 501,
];

/// Fields never stored: hop-by-hop fields and proxy authentication (RFC 9111 section 3.1);
/// the fields `Connection` lists are removed too.
pub const UNSTORED_FIELDS: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authentication-info",
];

/// Why the default policy refuses a response with `Set-Cookie`.
pub const SET_COOKIE: NoCacheReason = NoCacheReason::Custom("set-cookie");
/// Why the default policy refuses a request method other than GET and HEAD.
pub const METHOD: NoCacheReason = NoCacheReason::Custom("method");
/// Why the default policy refuses an interim, 304 or 206 response, or a status
/// `must-understand` names that this cache does not implement.
pub const STATUS: NoCacheReason = NoCacheReason::Custom("status");
/// Why the default policy refuses a response to a request with `no-store`.
pub const REQUEST_NO_STORE: NoCacheReason = NoCacheReason::Custom("request-no-store");
/// Why the default policy refuses a response with `Vary: *`, which never matches a request.
pub const VARY_STAR: NoCacheReason = NoCacheReason::Custom("vary-star");

/// Heuristic freshness (RFC 9111 section 4.2.2): a fraction of the time since the response
/// was last modified, capped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeuristicFreshness {
    percent: u32,
    cap: Duration,
}

// === impl HeuristicFreshness ===

impl Default for HeuristicFreshness {
    /// 10% of `Date - Last-Modified`, at most one day.
    fn default() -> Self {
        HeuristicFreshness {
            percent: 10,
            cap: Duration::from_secs(24 * 60 * 60),
        }
    }
}

impl HeuristicFreshness {
    /// `percent`% of `Date - Last-Modified`, at most `cap`. `percent` 0 turns heuristics off.
    pub const fn new(percent: u32, cap: Duration) -> Self {
        HeuristicFreshness { percent, cap }
    }

    /// The percentage.
    pub fn percent(&self) -> u32 {
        self.percent
    }

    /// The cap.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The heuristic lifetime of a response dated `date` and last modified at
    /// `last_modified`: 0 without a `Last-Modified`, or when it is not before `date`.
    pub fn lifetime(&self, date: SystemTime, last_modified: Option<SystemTime>) -> Duration {
        let Some(since) = last_modified.and_then(|lm| date.duration_since(lm).ok()) else {
            return Duration::ZERO;
        };
        let secs = since.as_secs().saturating_mul(u64::from(self.percent)) / 100;
        Duration::from_secs(secs).min(self.cap)
    }
}

/// Options of the default policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyOptions {
    heuristic: HeuristicFreshness,
    refuse_set_cookie: bool,
}

// === impl PolicyOptions ===

impl Default for PolicyOptions {
    /// [`HeuristicFreshness::default`], and `Set-Cookie` responses refused.
    fn default() -> Self {
        PolicyOptions {
            heuristic: HeuristicFreshness::default(),
            refuse_set_cookie: true,
        }
    }
}

impl PolicyOptions {
    /// Sets the heuristic freshness.
    pub fn heuristic(mut self, heuristic: HeuristicFreshness) -> Self {
        self.heuristic = heuristic;
        self
    }

    /// Whether to refuse responses with `Set-Cookie` (default true). When they are stored,
    /// `private="Set-Cookie"` or `no-cache="Set-Cookie"` still strip the field.
    pub fn refuse_set_cookie(mut self, refuse: bool) -> Self {
        self.refuse_set_cookie = refuse;
        self
    }

    /// The heuristic freshness.
    pub fn heuristic_freshness(&self) -> HeuristicFreshness {
        self.heuristic
    }

    /// Whether responses with `Set-Cookie` are refused.
    pub fn refuses_set_cookie(&self) -> bool {
        self.refuse_set_cookie
    }
}

/// What the policy needs to know about the request a response answers.
#[derive(Debug, Clone, Copy)]
pub struct Exchange<'a> {
    /// The request method (of the client's request, before HEAD became GET upstream).
    pub method: &'a Method,
    /// The request's parsed `Cache-Control`.
    pub request_cache_control: Option<&'a CacheControl>,
    /// Whether the request had `Authorization`.
    pub authorization_present: bool,
    /// When the request was sent upstream.
    pub request_time: SystemTime,
    /// When the response head arrived.
    pub response_time: SystemTime,
}

/// Whether `status` is cacheable by default (see [`HEURISTICALLY_CACHEABLE`]).
pub fn is_heuristically_cacheable(status: StatusCode) -> bool {
    HEURISTICALLY_CACHEABLE.contains(&status.as_u16())
}

/// Whether the response gives its freshness explicitly: `Expires`, `max-age` or `s-maxage`.
pub fn has_explicit_freshness(resp: &response::Parts, cc: Option<&CacheControl>) -> bool {
    resp.headers.contains_key(header::EXPIRES)
        || cc.is_some_and(|cc| cc.has_key("max-age") || cc.has_key("s-maxage"))
}

/// Whether a shared cache may store this response (RFC 9111 section 3), apart from
/// `Set-Cookie` (see [`refuse_set_cookie`]).
///
/// # Errors
///
/// The reason it may not: [`METHOD`] unless GET or HEAD; [`STATUS`] for an interim status,
/// 304, 206, or a status `must-understand` covers that this cache does not implement;
/// [`REQUEST_NO_STORE`]; [`NoCacheReason::OriginNotCache`] for `no-store` (unless
/// `must-understand` applies), bare `private`, `Authorization` without `public`, `s-maxage`
/// or `must-revalidate`, and a status that is not cacheable by default without explicit
/// freshness or `public`.
pub fn storable(
    method: &Method,
    request_cc: Option<&CacheControl>,
    authorization_present: bool,
    resp: &response::Parts,
    cc: Option<&CacheControl>,
) -> Result<(), NoCacheReason> {
    if !matches!(*method, Method::GET | Method::HEAD) {
        return Err(METHOD);
    }
    let status = resp.status;
    if status.is_informational() || matches!(status.as_u16(), 206 | 304) {
        return Err(STATUS);
    }
    if request_cc.is_some_and(CacheControl::no_store) {
        return Err(REQUEST_NO_STORE);
    }
    let must_understand = cc.is_some_and(CacheControl::must_understand);
    if must_understand && !UNDERSTOOD_STATUSES.contains(&status.as_u16()) {
        return Err(STATUS);
    }
    let Some(cc) = cc else {
        return cacheable_without_directives(status, authorization_present, resp);
    };
    if (cc.no_store() && !must_understand) || cc.private() {
        return Err(NoCacheReason::OriginNotCache);
    }
    if authorization_present && !cc.allow_caching_authorized_req() {
        return Err(NoCacheReason::OriginNotCache);
    }
    if has_explicit_freshness(resp, Some(cc)) || cc.public() || is_heuristically_cacheable(status) {
        Ok(())
    } else {
        Err(NoCacheReason::OriginNotCache)
    }
}

fn cacheable_without_directives(
    status: StatusCode,
    authorization_present: bool,
    resp: &response::Parts,
) -> Result<(), NoCacheReason> {
    if authorization_present {
        return Err(NoCacheReason::OriginNotCache);
    }
    if has_explicit_freshness(resp, None) || is_heuristically_cacheable(status) {
        Ok(())
    } else {
        Err(NoCacheReason::OriginNotCache)
    }
}

/// Refuses a response that sets cookies.
///
/// # Errors
///
/// [`SET_COOKIE`] when the response has a `Set-Cookie` field.
pub fn refuse_set_cookie(resp: &response::Parts) -> Result<(), NoCacheReason> {
    if resp.headers.contains_key(header::SET_COOKIE) {
        Err(SET_COOKIE)
    } else {
        Ok(())
    }
}

/// Whether the response's `Vary` lists `*` (it then never matches a request).
pub fn vary_star(resp: &response::Parts) -> bool {
    crate::variance::vary_field_names(&resp.headers).is_none()
}

/// The freshness lifetime of a response (RFC 9111 section 4.2.1), in the order: bare
/// `no-cache` (0: always revalidate), `s-maxage`, `max-age` (an invalid or repeated value
/// gives 0), `Expires - Date` (several `Expires` or an invalid date give 0; without a valid
/// `Date` the response time stands in), then the heuristic, for statuses cacheable by
/// default and `public` responses only. Without any of these the lifetime is 0.
pub fn freshness_lifetime(
    resp: &response::Parts,
    cc: Option<&CacheControl>,
    heuristic: &HeuristicFreshness,
    response_time: SystemTime,
) -> Duration {
    if let Some(lifetime) = cc.and_then(|cc| cc.fresh_duration()) {
        return lifetime;
    }
    let date = age::date_value(&resp.headers).unwrap_or(response_time);
    let mut expires = resp.headers.get_all(header::EXPIRES).iter();
    if let Some(first) = expires.next() {
        if expires.next().is_some() {
            return Duration::ZERO;
        }
        return super::parse_http_date(first)
            .and_then(|expires| expires.duration_since(date).ok())
            .unwrap_or(Duration::ZERO);
    }
    if is_heuristically_cacheable(resp.status) || cc.is_some_and(CacheControl::public) {
        let last_modified = resp
            .headers
            .get(header::LAST_MODIFIED)
            .and_then(super::parse_http_date);
        return heuristic.lifetime(date, last_modified);
    }
    Duration::ZERO
}

/// Removes the fields a shared cache never stores: [`UNSTORED_FIELDS`], the fields
/// `Connection` lists, and the fields named by `private="..."` and `no-cache="..."`.
pub fn strip_unstored_fields(resp: &mut ResponseHeader, cc: Option<&CacheControl>) {
    let listed: Vec<HeaderName> = resp
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|line| line.as_bytes().split(|&b| b == b','))
        .filter_map(|token| HeaderName::from_bytes(token.trim_ascii()).ok())
        .collect();
    for name in listed {
        resp.remove_header(&name);
    }
    for name in UNSTORED_FIELDS {
        resp.remove_header(name);
    }
    if let Some(cc) = cc {
        cc.strip_private_headers(resp);
    }
}

/// Whether a stored response may answer a request without revalidation, given the
/// request's directives (RFC 9111 section 5.2.1): not with bare `no-cache`; not older than
/// its `max-age` (an invalid one counts as 0); fresh for at least `min-fresh` more; and, once
/// stale, only within `max-stale` and only when the response does not forbid serving stale
/// (`must-revalidate`, `proxy-revalidate`, `s-maxage`, `no-cache`).
pub fn request_allows_reuse(
    request_cc: Option<&CacheControl>,
    current_age: Duration,
    freshness_lifetime: Duration,
    stale_forbidden: bool,
) -> bool {
    let fresh = freshness_lifetime > current_age;
    let Some(cc) = request_cc else {
        return fresh;
    };
    if cc.no_cache() {
        return false;
    }
    if cc.has_key("max-age") {
        let max_age = cc.max_age().ok().flatten().unwrap_or(0);
        if current_age.as_secs() > u64::from(max_age) {
            return false;
        }
    }
    if cc.has_key("min-fresh") {
        let min_fresh = Duration::from_secs(u64::from(cc.min_fresh().ok().flatten().unwrap_or(0)));
        if freshness_lifetime < current_age.saturating_add(min_fresh) {
            return false;
        }
    }
    if fresh {
        return true;
    }
    if stale_forbidden {
        return false;
    }
    let staleness = current_age.saturating_sub(freshness_lifetime);
    match cc.max_stale() {
        Ok(Some(None)) => true,
        Ok(Some(Some(limit))) => staleness.as_secs() <= u64::from(limit),
        _ => false,
    }
}

/// Whether an origin's status lets a stale response be served under `stale-if-error`
/// (RFC 5861 section 4): 500, 502, 503 and 504. Connect and timeout failures allow it too.
/// Either way the stale window must still be open ([`CacheMeta::serve_stale_if_error`]).
pub fn is_stale_if_error_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// Whether the response to a request invalidates the stored responses for its target
/// (RFC 9111 section 4.4): a 2xx or 3xx answer to an unsafe method (anything but GET, HEAD,
/// OPTIONS and TRACE, unknown methods included).
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    !safe && (status.is_success() || status.is_redirection())
}

/// The other targets such a response invalidates: the paths of its `Location` and
/// `Content-Location` when they are an absolute path, or an absolute URI with the request's
/// origin (`scheme` and `authority`; host case-insensitive, default port elided). Relative
/// references of other forms are skipped (invalidating them is optional).
pub fn invalidation_targets(scheme: &str, authority: &str, resp: &HeaderMap) -> Vec<PathAndQuery> {
    let origin = normalized_origin(scheme, authority);
    let mut targets: Vec<PathAndQuery> = Vec::new();
    let values = [header::LOCATION, header::CONTENT_LOCATION]
        .into_iter()
        .filter_map(|name| resp.get(name))
        .filter_map(|value| value.to_str().ok());
    for value in values {
        let Ok(uri) = value.trim().parse::<Uri>() else {
            continue;
        };
        let same_origin = match (uri.scheme_str(), uri.authority()) {
            // An absolute path; `//host/...` is a network-path reference, skipped.
            (None, None) => value.trim().starts_with('/') && !value.trim().starts_with("//"),
            (Some(s), Some(a)) => origin.is_some() && normalized_origin(s, a.as_str()) == origin,
            _ => false,
        };
        if let (true, Some(path)) = (same_origin, uri.path_and_query()) {
            if !targets.contains(path) {
                targets.push(path.clone());
            }
        }
    }
    targets
}

/// `scheme://host:port` lower-cased, with the scheme's default port.
fn normalized_origin(scheme: &str, authority: &str) -> Option<(String, String, u16)> {
    let scheme = scheme.to_ascii_lowercase();
    let authority: http::uri::Authority = authority.parse().ok()?;
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let port = authority.port_u16().unwrap_or(default_port);
    Some((scheme, authority.host().to_ascii_lowercase(), port))
}

/// The default policy's decision on a response, with the metadata to store.
///
/// Applies [`storable`], [`refuse_set_cookie`] (if the options say so) and refuses
/// `Vary: *`; then computes the [`freshness_lifetime`] and the response's initial age, strips
/// the [unstored fields](strip_unstored_fields), adds `Date` when the response has none (the
/// response time), and takes the stale-serving windows from the directives or `defaults`.
/// The metadata's `created` time is the response's birth: `response_time` minus its
/// corrected initial age. The stored header keeps the upstream's `Age` as received; a
/// response served from the cache replaces it with [`CacheMeta::age_at`] the time of serving.
pub fn resp_cacheable(
    exchange: &Exchange<'_>,
    cc: Option<&CacheControl>,
    mut resp: ResponseHeader,
    options: &PolicyOptions,
    defaults: &CacheMetaDefaults,
) -> RespCacheable {
    let verdict = storable(
        exchange.method,
        exchange.request_cache_control,
        exchange.authorization_present,
        &resp,
        cc,
    )
    .and_then(|()| {
        if options.refuse_set_cookie {
            refuse_set_cookie(&resp)
        } else {
            Ok(())
        }
    })
    .and_then(|()| {
        if vary_star(&resp) {
            Err(VARY_STAR)
        } else {
            Ok(())
        }
    });
    if let Err(reason) = verdict {
        return RespCacheable::Uncacheable(reason);
    }

    let lifetime = freshness_lifetime(&resp, cc, &options.heuristic, exchange.response_time);
    let initial_age = age::corrected_initial_age(
        age::age_value(&resp.headers),
        age::date_value(&resp.headers),
        exchange.request_time,
        exchange.response_time,
    );
    let born = exchange
        .response_time
        .checked_sub(initial_age)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let fresh_until = born.checked_add(lifetime).unwrap_or(born);
    let (swr, sie) = super::calculate_serve_stale_durations(cc, defaults);

    strip_unstored_fields(&mut resp, cc);
    if !resp.headers.contains_key(header::DATE) {
        let date = httpdate::fmt_http_date(exchange.response_time);
        // A formatted HTTP date is always a valid field value.
        let _ = resp.insert_header(header::DATE, date);
    }
    RespCacheable::Cacheable(CacheMeta::new(fresh_until, born, swr, sie, resp))
}

#[cfg(test)]
mod tests;
