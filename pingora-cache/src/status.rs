//! The outcomes the cache reports: why a response is not cached, how a hit was judged.

use crate::meta::CacheMeta;

/// Why a request or response is not (or no longer) cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoCacheReason {
    /// Caching was never enabled for the request.
    NeverEnabled,
    /// The origin's response may not be stored.
    OriginNotCache,
    /// The response is larger than the maximum object size.
    ResponseTooLarge,
    /// The body size is unknown and this key was too large before: caching waits until the
    /// final size is known.
    PredictedResponseTooLarge,
    /// Storage failed.
    StorageError,
    /// Another internal failure.
    InternalError,
    /// The response turned out cacheable after the predictor said it would not be; admission
    /// is skipped this time.
    Deferred,
    /// The `proxy_upstream_filter` declined to go upstream.
    DeclinedToUpstream,
    /// The upstream failed while the response was proxied.
    UpstreamError,
    /// The cache-lock writer found the response uncacheable, so waiters go upstream.
    CacheLockGiveUp,
    /// The request waited too long for the cache-lock writer and went upstream uncached.
    CacheLockTimeout,
    /// A reason of the user's (or of a default policy, e.g. `"set-cookie"`).
    Custom(&'static str),
}

impl NoCacheReason {
    /// The reason's name, for logs and metrics (the variant name, or the custom string).
    pub fn as_str(&self) -> &'static str {
        match self {
            NoCacheReason::NeverEnabled => "NeverEnabled",
            NoCacheReason::OriginNotCache => "OriginNotCache",
            NoCacheReason::ResponseTooLarge => "ResponseTooLarge",
            NoCacheReason::PredictedResponseTooLarge => "PredictedResponseTooLarge",
            NoCacheReason::StorageError => "StorageError",
            NoCacheReason::InternalError => "InternalError",
            NoCacheReason::Deferred => "Deferred",
            NoCacheReason::DeclinedToUpstream => "DeclinedToUpstream",
            NoCacheReason::UpstreamError => "UpstreamError",
            NoCacheReason::CacheLockGiveUp => "CacheLockGiveUp",
            NoCacheReason::CacheLockTimeout => "CacheLockTimeout",
            NoCacheReason::Custom(reason) => reason,
        }
    }
}

/// Whether a response may be stored, with its metadata when it may.
#[derive(Debug)]
pub enum RespCacheable {
    /// Store it with this metadata.
    Cacheable(CacheMeta),
    /// Do not store it, for this reason.
    Uncacheable(NoCacheReason),
}

impl RespCacheable {
    /// Whether the response may be stored.
    #[inline]
    pub fn is_cacheable(&self) -> bool {
        matches!(self, RespCacheable::Cacheable(_))
    }

    /// The metadata, or the reason the response is not cacheable.
    ///
    /// # Errors
    ///
    /// The [`NoCacheReason`] of an uncacheable response.
    pub fn into_meta(self) -> Result<CacheMeta, NoCacheReason> {
        match self {
            RespCacheable::Cacheable(meta) => Ok(meta),
            RespCacheable::Uncacheable(reason) => Err(reason),
        }
    }

    /// The metadata of a cacheable response.
    ///
    /// # Panics
    ///
    /// When the response is uncacheable; [`into_meta`](Self::into_meta) does not panic.
    pub fn unwrap_meta(self) -> CacheMeta {
        match self {
            RespCacheable::Cacheable(meta) => meta,
            RespCacheable::Uncacheable(reason) => {
                panic!("expected a cacheable response, not {}", reason.as_str())
            }
        }
    }
}

/// A freshness decision a user callback forces on a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedFreshness {
    /// Treat the hit as expired: revalidate it.
    ForceExpired,
    /// Treat the hit as a miss: fetch and overwrite it.
    ForceMiss,
    /// Treat the hit as fresh even if it is not.
    ForceFresh,
}

/// How a cache hit was judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitStatus {
    /// Stale: past its freshness lifetime.
    Expired,
    /// Forced to be treated as expired.
    ForceExpired,
    /// Forced to be treated as a miss.
    ForceMiss,
    /// The hit filter failed, so the hit is treated as a miss.
    FailedHitFilter,
    /// Fresh.
    Fresh,
    /// Forced to be treated as fresh.
    ForceFresh,
}

impl HitStatus {
    /// The status in snake case, for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            HitStatus::Expired => "expired",
            HitStatus::ForceExpired => "force_expired",
            HitStatus::ForceMiss => "force_miss",
            HitStatus::FailedHitFilter => "failed_hit_filter",
            HitStatus::Fresh => "fresh",
            HitStatus::ForceFresh => "force_fresh",
        }
    }

    /// Whether the hit may be served as it is.
    pub fn is_fresh(&self) -> bool {
        matches!(self, HitStatus::Fresh | HitStatus::ForceFresh)
    }

    /// Whether the hit is handled as a miss.
    pub fn is_treated_as_miss(self) -> bool {
        matches!(self, HitStatus::ForceMiss | HitStatus::FailedHitFilter)
    }
}

impl From<ForcedFreshness> for HitStatus {
    fn from(forced: ForcedFreshness) -> Self {
        match forced {
            ForcedFreshness::ForceExpired => HitStatus::ForceExpired,
            ForcedFreshness::ForceMiss => HitStatus::ForceMiss,
            ForcedFreshness::ForceFresh => HitStatus::ForceFresh,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(NoCacheReason::OriginNotCache.as_str(), "OriginNotCache");
        assert_eq!(NoCacheReason::CacheLockTimeout.as_str(), "CacheLockTimeout");
        assert_eq!(NoCacheReason::Custom("set-cookie").as_str(), "set-cookie");
        assert_eq!(HitStatus::FailedHitFilter.as_str(), "failed_hit_filter");
        assert_eq!(HitStatus::ForceFresh.as_str(), "force_fresh");
    }

    #[test]
    fn hit_status_classes() {
        let table = [
            (HitStatus::Expired, false, false),
            (HitStatus::ForceExpired, false, false),
            (HitStatus::ForceMiss, false, true),
            (HitStatus::FailedHitFilter, false, true),
            (HitStatus::Fresh, true, false),
            (HitStatus::ForceFresh, true, false),
        ];
        for (status, fresh, miss) in table {
            assert_eq!(status.is_fresh(), fresh, "{status:?}");
            assert_eq!(status.is_treated_as_miss(), miss, "{status:?}");
        }
        assert_eq!(
            HitStatus::from(ForcedFreshness::ForceMiss),
            HitStatus::ForceMiss
        );
    }

    #[test]
    fn resp_cacheable_accessors() {
        let uncacheable = RespCacheable::Uncacheable(NoCacheReason::OriginNotCache);
        assert!(!uncacheable.is_cacheable());
        assert_eq!(
            uncacheable.into_meta().err(),
            Some(NoCacheReason::OriginNotCache)
        );
        let header = pingora_http::ResponseHeader::build(200, None).unwrap();
        let now = std::time::SystemTime::now();
        let meta = CacheMeta::new(now, now, 0, 0, header);
        let cacheable = RespCacheable::Cacheable(meta);
        assert!(cacheable.is_cacheable());
        assert_eq!(cacheable.unwrap_meta().created(), now);
    }

    #[test]
    #[should_panic(expected = "expected a cacheable response, not StorageError")]
    fn unwrap_meta_panics_on_uncacheable() {
        RespCacheable::Uncacheable(NoCacheReason::StorageError).unwrap_meta();
    }
}
