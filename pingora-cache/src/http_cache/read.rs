//! The reading side of [`HttpCache`]: the key, lookup and variants, hits, the cache lock,
//! stale serving, purge and the predictor.

use std::time::{Duration, Instant, SystemTime};

use log::{error, warn};
use pingora_error::{Error, ErrorType, Result};

use super::{purge_key, CachePhase, HttpCache, NoObject, NO_KEY, NO_META};
use crate::key::{CacheHashKey, CacheKey, CompactCacheKey, HashBinary};
use crate::lock::{CacheKeyLockImpl, LockStatus, Locked, WritePermit};
use crate::meta::CacheMeta;
use crate::status::{HitStatus, NoCacheReason};
use crate::storage::HitHandler;
use crate::trace::SpanHandle;

// === impl HttpCache: key and lookup ===

impl HttpCache {
    /// Sets the key; the phase becomes [`CachePhase::CacheKey`].
    pub fn set_cache_key(&mut self, key: CacheKey) {
        match self.phase {
            CachePhase::Uninit | CachePhase::CacheKey => {
                self.phase = CachePhase::CacheKey;
                if let Some(inner) = self.inner.as_mut() {
                    inner.key = Some(key);
                }
            }
            _ => self.misuse("set_cache_key"),
        }
    }

    /// The key. Without one (a bug of the caller: no key is set before the key phase) an
    /// empty key is returned and the misuse logged.
    pub fn cache_key(&self) -> &CacheKey {
        match self.maybe_cache_key() {
            Some(key) => key,
            None => {
                error!(
                    "HttpCache::cache_key called in phase {} without a key",
                    self.phase
                );
                &NO_KEY
            }
        }
    }

    /// The key, if one is set.
    pub fn maybe_cache_key(&self) -> Option<&CacheKey> {
        self.inner.as_ref().and_then(|i| i.key.as_ref())
    }

    /// Looks the key up in the storage. On a miss, takes the cache lock (as writer or
    /// reader) when one is set. Allowed in [`CachePhase::CacheKey`] and, after waiting on a
    /// lock, [`CachePhase::Stale`].
    pub async fn cache_lookup(&mut self) -> Result<Option<(CacheMeta, HitHandler)>> {
        if !matches!(self.phase, CachePhase::CacheKey | CachePhase::Stale) {
            self.misuse("cache_lookup");
            return Error::e_explain(ErrorType::InternalError, "cache lookup in wrong phase");
        }
        let Some(inner) = self.inner.as_mut() else {
            return Ok(None);
        };
        let (Some(enabled), Some(key)) = (inner.enabled.as_mut(), inner.key.as_ref()) else {
            return Ok(None);
        };
        let started = Instant::now();
        let valid_after = enabled.valid_after;
        let valid = |found: &(CacheMeta, HitHandler)| {
            valid_after.is_none_or(|valid_after| found.0.created() >= valid_after)
        };
        let mut found = enabled
            .storage
            .lookup(key, &SpanHandle::default())
            .await?
            .filter(valid);
        if found.is_none() {
            if let Some(lock_ctx) = enabled.lock_ctx.as_mut() {
                let lock = lock_ctx.cache_lock.lock(key, false);
                let writer = matches!(lock, Locked::Write(_));
                lock_ctx.lock = Some(lock);
                if writer {
                    // The writer before this request may have made its object visible and
                    // released the lock between the lookup and the lock: look again before
                    // going to the origin, or the fleet of waiters gets a second origin fetch.
                    found = enabled
                        .storage
                        .lookup(key, &SpanHandle::default())
                        .await?
                        .filter(valid);
                    if found.is_some() {
                        if let Some(Locked::Write(permit)) = lock_ctx.lock.take() {
                            lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
                        }
                    }
                }
            }
        }
        self.digest.add_lookup_duration(started.elapsed());
        Ok(found)
    }

    /// After a lookup found `meta` whose variance the caller computed as `variance`:
    /// records the variance in the key and says whether `meta` is that variant. When it is
    /// not, the caller looks up again (the key now names the variant).
    pub fn cache_vary_lookup(&mut self, variance: HashBinary, meta: &CacheMeta) -> bool {
        if !matches!(self.phase, CachePhase::CacheKey | CachePhase::Stale) {
            self.misuse("cache_vary_lookup");
            return false;
        }
        let Some(inner) = self.inner.as_mut() else {
            return false;
        };
        if let Some(enabled) = inner.enabled.as_mut() {
            // Variants older than the primary object were purged with it.
            enabled.valid_after = Some(meta.created());
        }
        let Some(key) = inner.key.as_mut() else {
            return false;
        };
        let first_lookup = key.variance_key().is_none();
        key.set_variance_key(variance);
        let matches = meta.variance() == key.variance_bin();
        if matches && first_lookup {
            // The object sits in the primary slot: address it by the primary key.
            key.remove_variance_key();
        }
        matches
    }

    /// Records what the lookup found: `hit_status` says whether it is served as fresh,
    /// stale, or treated as a miss. A stale response or one treated as a miss takes the
    /// cache lock (if set), the stale one as a "stale writer".
    pub fn cache_found(&mut self, meta: CacheMeta, hit_handler: HitHandler, hit_status: HitStatus) {
        if !matches!(self.phase, CachePhase::CacheKey | CachePhase::Stale) {
            return self.misuse("cache_found");
        }
        self.phase = match hit_status {
            HitStatus::Fresh | HitStatus::ForceFresh => CachePhase::Hit,
            HitStatus::Expired | HitStatus::ForceExpired => CachePhase::Stale,
            HitStatus::FailedHitFilter | HitStatus::ForceMiss => self.phase,
        };
        let stale = self.phase == CachePhase::Stale;
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        let (Some(enabled), Some(key)) = (inner.enabled.as_mut(), inner.key.as_ref()) else {
            return;
        };
        if stale || hit_status.is_treated_as_miss() {
            if let Some(lock_ctx) = enabled.lock_ctx.as_mut() {
                if lock_ctx.lock.is_none() {
                    lock_ctx.lock = Some(lock_ctx.cache_lock.lock(key, stale));
                }
            }
        }
        if hit_status.is_treated_as_miss() {
            enabled.body_reader = None;
            enabled.meta = None;
            return;
        }
        if let Some(eviction) = enabled.eviction {
            if hit_handler.should_count_access() {
                let weight = hit_handler.get_eviction_weight();
                eviction.access(&key.to_compact(), weight, meta.fresh_until());
            }
        }
        enabled.meta = Some(meta);
        enabled.body_reader = Some(hit_handler);
    }

    /// Marks the request a miss: the response will come from the origin. Allowed after the
    /// key is set, from [`CachePhase::Bypass`] (the response turned out cacheable) and from
    /// [`CachePhase::Stale`] (the object vanished while waiting on a lock).
    pub fn cache_miss(&mut self) {
        match self.phase {
            CachePhase::CacheKey | CachePhase::Bypass | CachePhase::Stale => {
                self.phase = CachePhase::Miss;
                if let Some(enabled) = self.enabled_mut() {
                    enabled.meta = None;
                }
            }
            _ => self.misuse("cache_miss"),
        }
    }

    /// The reader of the stored body, on a hit, a stale hit or after revalidation. In other
    /// phases (a bug of the caller; logged, and the cache disabled) a reader whose reads
    /// fail.
    pub fn hit_handler(&mut self) -> &mut HitHandler {
        use CachePhase::*;
        let has_reader = matches!(
            self.phase,
            Hit | Stale | StaleUpdating | Revalidated | RevalidatedNoCache(_)
        ) && self.enabled_ref().is_some_and(|e| e.body_reader.is_some());
        if !has_reader {
            self.misuse("hit_handler");
        }
        let reader = self
            .inner
            .as_mut()
            .and_then(|i| i.enabled.as_deref_mut())
            .and_then(|e| e.body_reader.as_mut());
        match reader {
            Some(reader) => reader,
            None => self.no_object.insert(Box::new(NoObject)),
        }
    }

    /// A reader of the body being admitted, decoupled from the upstream. This proxy serves
    /// the writer's client straight from the upstream, so this is always `None`.
    pub fn miss_body_reader(&mut self) -> Option<&mut HitHandler> {
        None
    }

    /// Whether the storage lets readers follow a write (`None` when the cache is disabled).
    pub fn support_streaming_partial_write(&self) -> Option<bool> {
        self.enabled_ref()
            .map(|e| e.storage.support_streaming_partial_write())
    }

    /// Ends the reading of the stored body (may be called more than once).
    pub async fn finish_hit_handler(&mut self) -> Result<()> {
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let (Some(enabled), Some(key)) = (inner.enabled.as_mut(), inner.key.as_ref()) else {
            return Ok(());
        };
        match enabled.body_reader.take() {
            Some(reader) => {
                reader
                    .finish(enabled.storage, key, &SpanHandle::default())
                    .await
            }
            None => Ok(()),
        }
    }

    /// The stored metadata of the response, where the phase has one. Elsewhere (a bug of the
    /// caller) an expired placeholder, and the misuse logged.
    pub fn cache_meta(&self) -> &CacheMeta {
        match self.maybe_cache_meta() {
            Some(meta) => meta,
            None => {
                error!(
                    "HttpCache::cache_meta called in phase {} without metadata",
                    self.phase
                );
                &NO_META
            }
        }
    }

    /// The metadata, if this phase has one.
    pub fn maybe_cache_meta(&self) -> Option<&CacheMeta> {
        self.enabled_ref().and_then(|e| e.meta.as_ref())
    }

    /// Whether this request waits on another request's fetch (holds a read lock).
    pub fn is_cache_locked(&self) -> bool {
        matches!(self.lock(), Some(Locked::Read(_)))
    }

    /// Whether this request fetches for the others (holds the write lock).
    pub fn is_cache_lock_writer(&self) -> bool {
        matches!(self.lock(), Some(Locked::Write(_)))
    }

    fn lock(&self) -> Option<&Locked> {
        self.enabled_ref()
            .and_then(|e| e.lock_ctx.as_ref())
            .and_then(|l| l.lock.as_ref())
    }

    /// Takes the write lock, to hand it to another request (a background revalidation).
    /// `None` when this request is not the writer.
    pub fn take_write_lock(&mut self) -> Option<(WritePermit, &'static CacheKeyLockImpl)> {
        let lock_ctx = self.enabled_mut()?.lock_ctx.as_mut()?;
        match lock_ctx.lock.take() {
            Some(Locked::Write(permit)) => Some((permit, lock_ctx.cache_lock)),
            other => {
                lock_ctx.lock = other;
                None
            }
        }
    }

    /// Makes this request the writer with a permit handed over by another request.
    pub fn set_write_lock(&mut self, write_lock: WritePermit) {
        if let Some(lock_ctx) = self.enabled_mut().and_then(|e| e.lock_ctx.as_mut()) {
            lock_ctx.lock = Some(Locked::Write(write_lock));
        }
    }

    /// Waits for the writer this request is behind; returns how its lock ended. Waits at
    /// most the rest of this request's wait timeout (counting earlier waits).
    pub async fn cache_lock_wait(&mut self) -> LockStatus {
        let waited = self.digest.lock_duration.unwrap_or_default();
        let Some(lock_ctx) = self.enabled_mut().and_then(|e| e.lock_ctx.as_mut()) else {
            self.misuse("cache_lock_wait");
            return LockStatus::TransientError;
        };
        let read = match lock_ctx.lock.take() {
            Some(Locked::Read(read)) => read,
            other => {
                lock_ctx.lock = other;
                self.misuse("cache_lock_wait");
                return LockStatus::TransientError;
            }
        };
        let remaining = lock_ctx.wait_timeout.map(|t| t.saturating_sub(waited));
        let started = Instant::now();
        let status = read.wait_with_timeout(remaining).await;
        self.digest.add_lock_duration(started.elapsed());
        status
    }

    /// How long this request waited on cache locks.
    pub fn lock_duration(&self) -> Option<Duration> {
        self.digest.lock_duration
    }

    /// How long this request spent looking up the storage.
    pub fn lookup_duration(&self) -> Option<Duration> {
        self.digest.lookup_duration
    }

    /// Whether a stale response was found and it may be served because of an error
    /// (`stale-if-error`).
    pub fn can_serve_stale_error(&self) -> bool {
        self.has_stale_object() && self.cache_meta().serve_stale_if_error(SystemTime::now())
    }

    /// Whether a stale response was found and it may be served while it is revalidated
    /// (`stale-while-revalidate`).
    pub fn can_serve_stale_updating(&self) -> bool {
        self.has_stale_object()
            && self
                .cache_meta()
                .serve_stale_while_revalidate(SystemTime::now())
    }

    fn has_stale_object(&self) -> bool {
        matches!(self.phase, CachePhase::Stale | CachePhase::StaleUpdating)
            && self.maybe_cache_meta().is_some()
    }

    /// Marks the stale response as being updated by another request while this one serves
    /// it.
    pub fn set_stale_updating(&mut self) {
        match self.phase {
            CachePhase::Stale => self.phase = CachePhase::StaleUpdating,
            _ => self.misuse("set_stale_updating"),
        }
    }

    /// Removes the object (every variant of it) from the storage and the eviction manager.
    /// Returns whether something was removed.
    pub async fn purge(&self) -> Result<bool> {
        let (Some(enabled), Some(key)) = (self.enabled_ref(), self.maybe_cache_key()) else {
            return Error::e_explain(ErrorType::InternalError, "purge without an enabled cache");
        };
        purge_key(enabled.storage, enabled.eviction, &key.to_compact()).await
    }

    /// Removes the object stored under `key` (every variant of it when `key` has no
    /// variance) from this request's storage, as [`purge`](Self::purge) does. Used to
    /// invalidate other URIs (RFC 9111 section 4.4).
    pub async fn purge_compact(&self, key: &CompactCacheKey) -> Result<bool> {
        let Some(enabled) = self.enabled_ref() else {
            return Error::e_explain(ErrorType::InternalError, "purge without an enabled cache");
        };
        purge_key(enabled.storage, enabled.eviction, key).await
    }

    /// [`purge`](Self::purge) in a spawned task; `context` is logged if it fails.
    pub fn spawn_async_purge(
        &self,
        context: &'static str,
    ) -> tokio::task::JoinHandle<Result<bool>> {
        let target = self
            .enabled_ref()
            .map(|e| (e.storage, e.eviction))
            .zip(self.maybe_cache_key().map(|k| k.to_compact()));
        tokio::task::spawn(async move {
            let Some(((storage, eviction), key)) = target else {
                return Error::e_explain(ErrorType::InternalError, "purge without a cache");
            };
            purge_key(storage, eviction, &key).await.inspect_err(|e| {
                warn!("failed to purge {key} ({context}): {e}");
            })
        })
    }

    /// Whether the predictor expects this key to be cacheable (`true` without a predictor).
    pub fn cacheable_prediction(&self) -> bool {
        match (
            self.inner.as_ref().and_then(|i| i.predictor),
            self.maybe_cache_key(),
        ) {
            (Some(predictor), Some(key)) => predictor.cacheable_prediction(key),
            _ => true,
        }
    }

    /// Tells the predictor that this key's response is cacheable after all.
    pub fn response_became_cacheable(&self) {
        if let (Some(predictor), Some(key)) = (
            self.inner.as_ref().and_then(|i| i.predictor),
            self.maybe_cache_key(),
        ) {
            predictor.mark_cacheable(key);
        }
    }

    /// Tells the predictor that this key's response is not cacheable, for `reason`.
    pub fn response_became_uncacheable(&self, reason: NoCacheReason) {
        if let (Some(predictor), Some(key)) = (
            self.inner.as_ref().and_then(|i| i.predictor),
            self.maybe_cache_key(),
        ) {
            predictor.mark_uncacheable(key, reason);
        }
    }
}
