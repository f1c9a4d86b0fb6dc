//! [`HttpCache`]: the cache state of one request.

use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use log::{error, warn};
use pingora_error::{Error, ErrorType, Result};

use crate::eviction::EvictionManager;
use crate::key::{CacheKey, CompactCacheKey};
use crate::lock::{CacheKeyLockImpl, CacheOptionOverrides, LockStatus, Locked};
use crate::meta::CacheMeta;
use crate::predictor::CacheablePredictor;
use crate::status::NoCacheReason;
use crate::storage::{HitHandler, MissHandler, PurgeType, Storage};
use crate::trace::SpanHandle;

mod options;
mod read;
mod write;

pub use options::{HttpCacheOptions, DEFAULT_MAX_RANGES};

/// The storage type [`HttpCache::enable`] takes.
pub type StorageRef = &'static (dyn Storage + Sync);
/// The eviction manager type [`HttpCache::enable`] takes.
pub type EvictionRef = &'static (dyn EvictionManager + Sync);
/// The predictor type [`HttpCache::enable`] takes.
pub type PredictorRef = &'static (dyn CacheablePredictor + Sync);

/// Where a request is in its way through the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePhase {
    /// The cache is off for this request, for this reason.
    Disabled(NoCacheReason),
    /// Enabled; the key is not set yet.
    Uninit,
    /// Enabled, but this request neither reads nor writes the cache.
    Bypass,
    /// The key is set; nothing looked up yet.
    CacheKey,
    /// A fresh response was found.
    Hit,
    /// Nothing usable was found: the response comes from the origin (and may be stored).
    Miss,
    /// A stale response was found.
    Stale,
    /// A stale response is served while another request updates it.
    StaleUpdating,
    /// A stale response was replaced by the origin's new response.
    Expired,
    /// A stale response was revalidated (304) and is served.
    Revalidated,
    /// A stale response was revalidated, but the new headers forbid storing it: it is served
    /// once, not stored.
    RevalidatedNoCache(NoCacheReason),
}

// === impl CachePhase ===

impl CachePhase {
    /// The phase's name, for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            CachePhase::Disabled(_) => "disabled",
            CachePhase::Uninit => "uninitialized",
            CachePhase::Bypass => "bypass",
            CachePhase::CacheKey => "key",
            CachePhase::Hit => "hit",
            CachePhase::Miss => "miss",
            CachePhase::Stale => "stale",
            CachePhase::StaleUpdating => "stale-updating",
            CachePhase::Expired => "expired",
            CachePhase::Revalidated => "revalidated",
            CachePhase::RevalidatedNoCache(_) => "revalidated-nocache",
        }
    }
}

impl fmt::Display for CachePhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Timings of a request's cache work.
#[derive(Debug, Default, Clone, Copy)]
pub struct HttpCacheDigest {
    /// Time spent waiting on cache locks.
    pub lock_duration: Option<Duration>,
    /// Time spent looking up the storage.
    pub lookup_duration: Option<Duration>,
}

impl HttpCacheDigest {
    fn add_lookup_duration(&mut self, d: Duration) {
        self.lookup_duration = Some(self.lookup_duration.unwrap_or_default() + d);
    }

    fn add_lock_duration(&mut self, d: Duration) {
        self.lock_duration = Some(self.lock_duration.unwrap_or_default() + d);
    }
}

/// A request's cache lock: the lock it holds or waits on, and where it came from.
pub struct LockCtx {
    /// The lock held (writer) or waited on (reader), if any.
    pub lock: Option<Locked>,
    /// The lock implementation.
    pub cache_lock: &'static CacheKeyLockImpl,
    /// How long this request may wait as a reader.
    pub wait_timeout: Option<Duration>,
}

impl fmt::Debug for LockCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockCtx")
            .field("lock", &self.lock)
            .field("wait_timeout", &self.wait_timeout)
            .finish_non_exhaustive()
    }
}

/// Tracks the body size of a response being admitted against the size limit.
#[derive(Debug, Clone, Copy)]
struct MaxFileSize {
    limit: usize,
    seen: usize,
}

/// What only an enabled cache needs; dropped when the cache is disabled.
struct Enabled {
    meta: Option<CacheMeta>,
    /// Stored objects created before this time are not valid (set by a variance lookup: the
    /// primary object's creation is the tombstone of older variants).
    valid_after: Option<SystemTime>,
    miss_handler: Option<MissHandler>,
    body_reader: Option<HitHandler>,
    storage: StorageRef,
    eviction: Option<EvictionRef>,
    lock_ctx: Option<LockCtx>,
}

struct Inner {
    enabled: Option<Box<Enabled>>,
    key: Option<CacheKey>,
    max_file_size: Option<MaxFileSize>,
    predictor: Option<PredictorRef>,
}

/// The cache state of one request, moved through its [`CachePhase`]s by the proxy.
///
/// A request starts [`Disabled`](CachePhase::Disabled). The proxy's `request_cache_filter`
/// may [`enable`](HttpCache::enable) it (phase [`Uninit`](CachePhase::Uninit)); the key
/// callback then sets the key ([`CacheKey`](CachePhase::CacheKey)), the lookup finds a
/// [`Hit`](CachePhase::Hit), a [`Stale`](CachePhase::Stale) response or a
/// [`Miss`](CachePhase::Miss); a stale response is revalidated
/// ([`Revalidated`](CachePhase::Revalidated), [`Expired`](CachePhase::Expired) when the
/// origin sent a new one) or served while another request updates it
/// ([`StaleUpdating`](CachePhase::StaleUpdating)).
///
/// Unlike Pingora's, a call made in a phase where it makes no sense never panics: it is
/// logged and disables the cache for the request ([`NoCacheReason::InternalError`]), and
/// calls that return a value return an error or an empty one. A bug in a proxy's callbacks
/// then costs a cache miss, not the request.
pub struct HttpCache {
    phase: CachePhase,
    inner: Option<Box<Inner>>,
    digest: HttpCacheDigest,
    options: HttpCacheOptions,
    /// What [`hit_handler`](Self::hit_handler) hands out when there is no stored body.
    no_object: Option<HitHandler>,
}

impl fmt::Debug for HttpCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpCache")
            .field("phase", &self.phase)
            .field("key", &self.inner.as_ref().and_then(|i| i.key.as_ref()))
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl Default for HttpCache {
    fn default() -> Self {
        Self::new()
    }
}

/// The key [`HttpCache::cache_key`] returns when no key is set (a bug of the caller).
static NO_KEY: LazyLock<CacheKey> = LazyLock::new(|| CacheKey::new("", "", ""));

/// The metadata [`HttpCache::cache_meta`] returns when none is set (a bug of the caller): an
/// expired, uncacheable 500.
static NO_META: LazyLock<CacheMeta> = LazyLock::new(|| {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = http::StatusCode::INTERNAL_SERVER_ERROR;
    let header = pingora_http::ResponseHeader::from(parts);
    CacheMeta::new(SystemTime::UNIX_EPOCH, SystemTime::UNIX_EPOCH, 0, 0, header)
});

/// A stored-body reader for a request that has none: every read fails.
struct NoObject;

#[async_trait::async_trait]
impl crate::storage::HandleHit for NoObject {
    async fn read_body(&mut self) -> Result<Option<bytes::Bytes>> {
        Error::e_explain(
            ErrorType::InternalError,
            "no stored body in this cache phase",
        )
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn std::any::Any + Send + Sync) {
        self
    }
}

// === impl HttpCache: phases, enabling and disabling ===

impl HttpCache {
    /// A cache state for a new request: disabled until [`enable`](Self::enable)d.
    pub fn new() -> Self {
        HttpCache {
            phase: CachePhase::Disabled(NoCacheReason::NeverEnabled),
            inner: None,
            digest: HttpCacheDigest::default(),
            options: HttpCacheOptions::default(),
            no_object: None,
        }
    }

    /// Whether the cache is enabled (neither disabled nor bypassed).
    pub fn enabled(&self) -> bool {
        !matches!(self.phase, CachePhase::Disabled(_) | CachePhase::Bypass)
    }

    /// Whether the cache is bypassed.
    pub fn bypassing(&self) -> bool {
        matches!(self.phase, CachePhase::Bypass)
    }

    /// The current phase.
    pub fn phase(&self) -> CachePhase {
        self.phase
    }

    /// Whether the response came (or comes) from the origin.
    pub fn upstream_used(&self) -> bool {
        use CachePhase::*;
        match self.phase {
            Disabled(_) | Bypass | Miss | Expired | Revalidated | RevalidatedNoCache(_) => true,
            Hit | Stale | StaleUpdating | Uninit | CacheKey => false,
        }
    }

    /// Whether the storage is of type `T`.
    pub fn storage_type_is<T: 'static>(&self) -> bool {
        self.enabled_ref()
            .is_some_and(|e| e.storage.as_any().downcast_ref::<T>().is_some())
    }

    /// The storage and eviction manager the cache was enabled with (`None` when it never
    /// was, or was disabled).
    pub fn storage_and_eviction(&self) -> Option<(StorageRef, Option<EvictionRef>)> {
        self.enabled_ref().map(|e| (e.storage, e.eviction))
    }

    /// The options of this request's cache (defaults unless set).
    pub fn options(&self) -> &HttpCacheOptions {
        &self.options
    }

    /// The options of this request's cache, to change them (for example in
    /// `request_cache_filter`).
    pub fn options_mut(&mut self) -> &mut HttpCacheOptions {
        &mut self.options
    }

    /// Turns the cache on for this request.
    ///
    /// `storage` stores the responses; `eviction` (optional) decides what to evict when it is
    /// full; `predictor` (optional) remembers keys found uncacheable so that later requests
    /// skip the cache lock; `cache_lock` (optional) makes concurrent misses of one key wait
    /// for a single origin fetch; `option_overrides` sets this request's lock wait timeout.
    ///
    /// Only allowed while disabled; a second call is ignored (and logged).
    pub fn enable(
        &mut self,
        storage: StorageRef,
        eviction: Option<EvictionRef>,
        predictor: Option<PredictorRef>,
        cache_lock: Option<&'static CacheKeyLockImpl>,
        option_overrides: Option<CacheOptionOverrides>,
    ) {
        if !matches!(self.phase, CachePhase::Disabled(_)) {
            error!("HttpCache::enable called in phase {}: ignored", self.phase);
            return;
        }
        self.phase = CachePhase::Uninit;
        let lock_ctx = cache_lock.map(|cache_lock| LockCtx {
            lock: None,
            cache_lock,
            wait_timeout: option_overrides.and_then(|o| o.wait_timeout),
        });
        self.inner = Some(Box::new(Inner {
            enabled: Some(Box::new(Enabled {
                meta: None,
                valid_after: None,
                miss_handler: None,
                body_reader: None,
                storage,
                eviction,
                lock_ctx,
            })),
            key: None,
            max_file_size: None,
            predictor,
        }));
    }

    /// Sets (or removes) the cache lock, before any lock is taken: in the key callback or
    /// the hit filter.
    pub fn set_cache_lock(
        &mut self,
        cache_lock: Option<&'static CacheKeyLockImpl>,
        option_overrides: Option<CacheOptionOverrides>,
    ) {
        let allowed = matches!(
            self.phase,
            CachePhase::CacheKey | CachePhase::Stale | CachePhase::Hit | CachePhase::Uninit
        );
        let holds_lock = self
            .enabled_ref()
            .and_then(|e| e.lock_ctx.as_ref())
            .is_some_and(|l| l.lock.is_some());
        if !allowed || holds_lock {
            return self.misuse("set_cache_lock");
        }
        if let Some(enabled) = self.enabled_mut() {
            enabled.lock_ctx = cache_lock.map(|cache_lock| LockCtx {
                lock: None,
                cache_lock,
                wait_timeout: option_overrides.and_then(|o| o.wait_timeout),
            });
        }
    }

    /// Turns the cache off for the rest of the request, releasing a write lock it holds.
    /// `NeverEnabled` is not a reason one can give (it is ignored).
    pub fn disable(&mut self, reason: NoCacheReason) {
        if reason == NoCacheReason::NeverEnabled {
            warn!("HttpCache::disable with reason NeverEnabled: ignored");
            return;
        }
        match self.phase {
            CachePhase::Disabled(NoCacheReason::NeverEnabled) => {}
            CachePhase::Disabled(_) => self.phase = CachePhase::Disabled(reason),
            _ => {
                self.release_write_lock(reason);
                self.phase = CachePhase::Disabled(reason);
                if let Some(inner) = self.inner.as_mut() {
                    inner.enabled = None;
                }
            }
        }
    }

    /// Neither reads nor writes the cache for this request. Only before the lookup.
    pub fn bypass(&mut self) {
        match self.phase {
            CachePhase::CacheKey => self.phase = CachePhase::Bypass,
            _ => self.misuse("bypass"),
        }
    }

    /// Releases the write lock this request holds (if any), with the lock status matching
    /// `reason`, keeping the cache otherwise as it is (e.g. to serve stale).
    pub fn release_write_lock(&mut self, reason: NoCacheReason) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        let Some(lock_ctx) = inner.enabled.as_mut().and_then(|e| e.lock_ctx.as_mut()) else {
            return;
        };
        let Some(Locked::Write(permit)) = lock_ctx.lock.take() else {
            return;
        };
        let status = lock_status_for(reason, lock_ctx.cache_lock);
        match inner.key.as_ref() {
            Some(key) => lock_ctx.cache_lock.release(key, permit, status),
            None => drop(permit),
        }
    }

    /// Logs a call made in the wrong phase and disables the cache.
    fn misuse(&mut self, call: &str) {
        error!(
            "HttpCache::{call} called in phase {}: cache disabled for this request",
            self.phase
        );
        if !matches!(self.phase, CachePhase::Disabled(_)) {
            self.disable(NoCacheReason::InternalError);
        }
    }

    fn enabled_ref(&self) -> Option<&Enabled> {
        self.inner.as_ref().and_then(|i| i.enabled.as_deref())
    }

    fn enabled_mut(&mut self) -> Option<&mut Enabled> {
        self.inner.as_mut().and_then(|i| i.enabled.as_deref_mut())
    }
}

/// The lock status a writer releases with when the response is not cached for `reason`.
fn lock_status_for(reason: NoCacheReason, lock: &CacheKeyLockImpl) -> LockStatus {
    use NoCacheReason::*;
    match reason {
        // The next request may succeed: let it try.
        InternalError | StorageError | Deferred | UpstreamError | DeclinedToUpstream => {
            LockStatus::TransientError
        }
        OriginNotCache | ResponseTooLarge | PredictedResponseTooLarge => LockStatus::GiveUp,
        Custom(reason) => lock.custom_lock_status(reason),
        NeverEnabled | CacheLockGiveUp | CacheLockTimeout => LockStatus::TransientError,
    }
}

/// Removes `key` (and its variants) from `storage`, and from `eviction` when it was there.
pub async fn purge_key(
    storage: StorageRef,
    eviction: Option<EvictionRef>,
    key: &CompactCacheKey,
) -> Result<bool> {
    let purged = storage
        .purge(key, PurgeType::Invalidation, &SpanHandle::default())
        .await?;
    if purged {
        if let Some(eviction) = eviction {
            eviction.remove(key);
        }
    }
    Ok(purged)
}

#[cfg(test)]
mod tests;
