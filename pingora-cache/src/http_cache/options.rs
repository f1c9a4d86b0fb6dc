//! [`HttpCacheOptions`]: how the proxy's cache phases behave for a request.

use std::borrow::Cow;

use crate::filters::default_policy::PolicyOptions;

/// The most ranges of one request answered from the cache; more get the whole response.
pub const DEFAULT_MAX_RANGES: usize = 200;

/// How the proxy's cache phases behave for one request. Every request starts with the
/// defaults; a proxy changes them in `request_cache_filter` through
/// [`HttpCache::options_mut`](super::HttpCache::options_mut).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpCacheOptions {
    /// The storing and freshness rules of the default `response_cache_filter`.
    pub policy: PolicyOptions,
    /// The cache's name in the `Cache-Status` field (RFC 9211); `None` sends no field.
    /// Default `"pingora"`.
    pub cache_status_name: Option<Cow<'static, str>>,
    /// Whether the client's `Cache-Control` (`max-age`, `min-fresh`, `max-stale`,
    /// `no-cache`, `no-store`, `only-if-cached`) is honoured. Default true.
    pub honor_request_directives: bool,
    /// Targeted cache-control fields (RFC 9213), most specific first, e.g.
    /// `["CDN-Cache-Control"]` for a CDN cache: the first valid one replaces `Cache-Control`
    /// and `Expires` for this cache's decisions. Default none (a plain shared cache).
    pub targeted_cache_control: &'static [&'static str],
    /// Whether an unsafe method's success also invalidates the same-origin `Location` and
    /// `Content-Location` URIs (RFC 9111 section 4.4, a MAY). Default true.
    pub invalidate_locations: bool,
    /// The most ranges of one request served from the cache. Default
    /// [`DEFAULT_MAX_RANGES`].
    pub max_ranges: usize,
}

impl Default for HttpCacheOptions {
    fn default() -> Self {
        HttpCacheOptions {
            policy: PolicyOptions::default(),
            cache_status_name: Some(Cow::Borrowed("pingora")),
            honor_request_directives: true,
            targeted_cache_control: &[],
            invalidate_locations: true,
            max_ranges: DEFAULT_MAX_RANGES,
        }
    }
}
