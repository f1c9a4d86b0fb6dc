//! Decisions on requests and responses as pure functions: may this be cached, for how long,
//! how long may it be served stale.
//!
//! Two layers live here:
//!
//! * The functions at the top of this module are Pingora's: [`resp_cacheable`] and
//!   [`calculate_fresh_until`] read `Cache-Control`, `Expires` and [`CacheMetaDefaults`], as
//!   Pingora does, for users who write their own `response_cache_filter`.
//! * [`default_policy`] is the stricter policy the proxy applies once a user enables the
//!   cache: the storing rules of RFC 9111 section 3 by status and directive, the freshness
//!   lifetime with heuristics, the age of a response (section 4.2.3), request directives, and
//!   the fields never stored. [`age`] has the age arithmetic.

use std::time::{Duration, SystemTime};

use http::header;
use http::{request, response, Method};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::cache_control::{
    CacheControl, Cacheable, InterpretCacheControl, DELTA_SECONDS_OVERFLOW_VALUE,
};
use crate::meta::{CacheMeta, CacheMetaDefaults};
use crate::status::{NoCacheReason, RespCacheable};

pub mod age;
pub mod default_policy;

/// Whether a request may be answered from or stored in the cache: GET and HEAD only.
pub fn request_cacheable(req_header: &request::Parts) -> bool {
    matches!(req_header.method, Method::GET | Method::HEAD)
}

/// Whether a response may be stored, read as Pingora does (see [`calculate_fresh_until`]),
/// with its metadata created now: the fields named by `private="..."` and `no-cache="..."`
/// are removed from the stored header.
///
/// `cache_control` is the response's parsed `Cache-Control`, passed separately so that the
/// caller may change or ignore it. This does not refuse `Set-Cookie` responses nor apply
/// heuristic freshness; [`default_policy::resp_cacheable`] does.
pub fn resp_cacheable(
    cache_control: Option<&CacheControl>,
    resp_header: ResponseHeader,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
) -> RespCacheable {
    resp_cacheable_at(
        SystemTime::now(),
        cache_control,
        resp_header,
        authorization_present,
        defaults,
    )
}

/// [`resp_cacheable`] at the time `now`.
pub fn resp_cacheable_at(
    now: SystemTime,
    cache_control: Option<&CacheControl>,
    mut resp_header: ResponseHeader,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
) -> RespCacheable {
    let fresh_until = calculate_fresh_until(
        now,
        cache_control,
        &resp_header,
        authorization_present,
        defaults,
    );
    let Some(fresh_until) = fresh_until else {
        return RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
    };
    let (swr, sie) = calculate_serve_stale_durations(cache_control, defaults);
    if let Some(cc) = cache_control {
        cc.strip_private_headers(&mut resp_header);
    }
    RespCacheable::Cacheable(CacheMeta::new(fresh_until, now, swr, sie, resp_header))
}

/// When a response stored at `now` stops being fresh, or `None` if it may not be stored.
///
/// A response to a request with `Authorization` needs `public`, `s-maxage` or
/// `must-revalidate`; `no-store` and bare `private` forbid storing. The lifetime is the
/// first of: `s-maxage`, `max-age` (bare `no-cache`, or an invalid or repeated value, give
/// 0), a single `Expires` (an invalid date means already expired), the default for the
/// status. A zero lifetime is stored as "expired one second ago".
pub fn calculate_fresh_until(
    now: SystemTime,
    cache_control: Option<&CacheControl>,
    resp_header: &response::Parts,
    authorization_present: bool,
    defaults: &CacheMetaDefaults,
) -> Option<SystemTime> {
    fn until(now: SystemTime, lifetime: Duration) -> Option<SystemTime> {
        if lifetime.is_zero() {
            now.checked_sub(Duration::from_secs(1))
        } else {
            now.checked_add(lifetime)
        }
    }

    if authorization_present && !cache_control.is_some_and(|cc| cc.allow_caching_authorized_req()) {
        return None;
    }
    if cache_control.is_some_and(|cc| cc.is_cacheable() == Cacheable::No) {
        return None;
    }
    cache_control
        .and_then(|cc| cc.fresh_duration())
        .and_then(|lifetime| until(now, lifetime))
        .or_else(|| calculate_expires_header_time(resp_header))
        .or_else(|| {
            defaults
                .fresh_sec(resp_header.status)
                .and_then(|lifetime| until(now, lifetime))
        })
}

/// The time `Expires` gives: `None` without exactly one `Expires` field, the Unix epoch
/// (already expired) when its value is not a valid HTTP date (RFC 9111 section 5.3).
pub fn calculate_expires_header_time(resp_header: &response::Parts) -> Option<SystemTime> {
    let mut values = resp_header.headers.get_all(header::EXPIRES).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    Some(parse_http_date(value).unwrap_or(SystemTime::UNIX_EPOCH))
}

pub(crate) use pingora_http::conditional::parse_http_date;

/// The stale-while-revalidate and stale-if-error windows, in seconds: from the directives
/// where they say (zero where `must-revalidate`, `proxy-revalidate`, `s-maxage` or bare
/// `no-cache` forbid serving stale), else from `defaults`.
pub fn calculate_serve_stale_durations(
    cache_control: Option<&impl InterpretCacheControl>,
    defaults: &CacheMetaDefaults,
) -> (u32, u32) {
    fn secs(duration: Duration) -> u32 {
        u32::try_from(duration.as_secs()).unwrap_or(DELTA_SECONDS_OVERFLOW_VALUE)
    }
    let swr = cache_control
        .and_then(|cc| cc.serve_stale_while_revalidate_duration())
        .map_or(defaults.serve_stale_while_revalidate_sec(), secs);
    let sie = cache_control
        .and_then(|cc| cc.serve_stale_if_error_duration())
        .map_or(defaults.serve_stale_if_error_sec(), secs);
    (swr, sie)
}

/// Changes to the request sent upstream for a cacheable request.
pub mod upstream {
    use super::*;

    /// Prepares a cacheable request for the upstream, so that the full response comes back
    /// to be stored: HEAD becomes GET, and the client's preconditions (`If-*`) and `Range`
    /// are removed. With `meta` (a stale stored response), adds the validators for
    /// revalidation: `If-None-Match` from `ETag`, and `If-Modified-Since` from
    /// `Last-Modified` when it is a valid date (RFC 9111 section 4.3.1).
    pub fn request_filter(req: &mut RequestHeader, meta: Option<&CacheMeta>) {
        if req.method == Method::HEAD {
            req.set_method(Method::GET);
        }
        for name in [
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
            header::RANGE,
        ] {
            req.remove_header(&name);
        }
        let Some(meta) = meta else { return };
        let headers = meta.headers();
        if let Some(last_modified) = headers.get(header::LAST_MODIFIED) {
            if parse_http_date(last_modified).is_some() {
                // The names are valid and the value came from a header map: this cannot fail.
                let _ = req.insert_header(header::IF_MODIFIED_SINCE, last_modified.clone());
            }
        }
        if let Some(etag) = headers.get(header::ETAG) {
            let _ = req.insert_header(header::IF_NONE_MATCH, etag.clone());
        }
    }
}

#[cfg(test)]
mod tests;
