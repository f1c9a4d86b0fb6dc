//! The writing side of [`HttpCache`]: admission of a new response, revalidation, variance,
//! the object size limit.

use log::warn;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;

use super::{CachePhase, HttpCache, MaxFileSize};
use crate::conditional;
use crate::key::HashBinary;
use crate::lock::{LockStatus, Locked};
use crate::meta::CacheMeta;
use crate::status::NoCacheReason;
use crate::storage::{MissFinishType, MissHandler, PurgeType};
use crate::trace::SpanHandle;

// === impl HttpCache: the object size limit ===

impl HttpCache {
    /// Refuses to store responses larger than `max_file_size_bytes` (by `Content-Length`, or
    /// counted while streaming). Allowed once the cache is enabled.
    pub fn set_max_file_size_bytes(&mut self, max_file_size_bytes: usize) {
        match self.inner.as_mut() {
            Some(inner) if !matches!(self.phase, CachePhase::Disabled(_)) => {
                inner.max_file_size = Some(MaxFileSize {
                    limit: max_file_size_bytes,
                    seen: 0,
                });
            }
            _ => self.misuse("set_max_file_size_bytes"),
        }
    }

    /// The object size limit, if set.
    pub fn max_file_size_bytes(&self) -> Option<usize> {
        self.inner
            .as_ref()
            .and_then(|i| i.max_file_size)
            .map(|m| m.limit)
    }

    /// Counts `bytes_len` more body bytes against the limit; returns whether the object is
    /// still within it (`true` without a limit).
    pub fn track_body_bytes_for_max_file_size(&mut self, bytes_len: usize) -> bool {
        match self.inner.as_mut().and_then(|i| i.max_file_size.as_mut()) {
            Some(tracker) => {
                tracker.seen = tracker.seen.saturating_add(bytes_len);
                tracker.seen <= tracker.limit
            }
            None => true,
        }
    }

    /// Whether the body counted so far exceeds the limit.
    pub fn exceeded_max_file_size(&self) -> bool {
        self.inner
            .as_ref()
            .and_then(|i| i.max_file_size)
            .is_some_and(|m| m.seen > m.limit)
    }
}

// === impl HttpCache: admission ===

impl HttpCache {
    /// Sets the metadata of the response about to be stored: on a miss, or on a stale hit
    /// the origin answered with a new response (the phase becomes [`CachePhase::Expired`]).
    pub fn set_cache_meta(&mut self, meta: CacheMeta) {
        match self.phase {
            CachePhase::Miss | CachePhase::Stale => {
                if let Some(enabled) = self.enabled_mut() {
                    enabled.meta = Some(meta);
                }
                if self.phase == CachePhase::Stale {
                    self.phase = CachePhase::Expired;
                }
            }
            _ => self.misuse("set_cache_meta"),
        }
    }

    /// Opens the storage's writer for the response whose metadata is set. With a storage
    /// that lets readers follow a write, the write lock is released now ([`LockStatus::Done`])
    /// so that waiting requests start streaming the body as it arrives.
    pub async fn set_miss_handler(&mut self) -> Result<()> {
        if !matches!(self.phase, CachePhase::Miss | CachePhase::Expired) {
            self.misuse("set_miss_handler");
            return Error::e_explain(ErrorType::InternalError, "set_miss_handler in wrong phase");
        }
        let Some(inner) = self.inner.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "cache not enabled");
        };
        let (Some(enabled), Some(key)) = (inner.enabled.as_mut(), inner.key.as_ref()) else {
            return Error::e_explain(ErrorType::InternalError, "cache not enabled");
        };
        if enabled.miss_handler.is_some() {
            return Error::e_explain(ErrorType::InternalError, "miss handler already set");
        }
        let Some(meta) = enabled.meta.as_ref() else {
            return Error::e_explain(ErrorType::InternalError, "miss handler without metadata");
        };
        let handler = enabled
            .storage
            .get_miss_handler(key, meta, &SpanHandle::default())
            .await?;
        enabled.miss_handler = Some(handler);
        if enabled.storage.support_streaming_partial_write() {
            if let Some(lock_ctx) = enabled.lock_ctx.as_mut() {
                if let Some(Locked::Write(permit)) = lock_ctx.lock.take() {
                    lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
                }
            }
        }
        Ok(())
    }

    /// The storage's writer, once set and until finished.
    pub fn miss_handler(&mut self) -> Option<&mut MissHandler> {
        match self.phase {
            CachePhase::Miss | CachePhase::Expired => {
                self.enabled_mut().and_then(|e| e.miss_handler.as_mut())
            }
            _ => None,
        }
    }

    /// Completes the admission: the storage makes the object visible, the write lock is
    /// released ([`LockStatus::Done`]), the eviction manager admits the object and what it
    /// evicts is purged (in a spawned task). May be called more than once.
    ///
    /// Dropping the cache without calling this abandons the write: nothing is stored.
    pub async fn finish_miss_handler(&mut self) -> Result<()> {
        if !matches!(self.phase, CachePhase::Miss | CachePhase::Expired) {
            return Ok(());
        }
        let Some(inner) = self.inner.as_mut() else {
            return Ok(());
        };
        let (Some(enabled), Some(key)) = (inner.enabled.as_mut(), inner.key.as_ref()) else {
            return Ok(());
        };
        let Some(handler) = enabled.miss_handler.take() else {
            return Ok(());
        };
        let finished = handler.finish().await;
        if let Some(lock_ctx) = enabled.lock_ctx.as_mut() {
            if let Some(Locked::Write(permit)) = lock_ctx.lock.take() {
                let status = if finished.is_ok() {
                    LockStatus::Done
                } else {
                    LockStatus::TransientError
                };
                lock_ctx.cache_lock.release(key, permit, status);
            }
        }
        let size = finished?;
        let (Some(eviction), Some(meta)) = (enabled.eviction, enabled.meta.as_ref()) else {
            return Ok(());
        };
        let compact = key.to_compact();
        let evicted = match size {
            MissFinishType::Created(size) => eviction.admit(compact, size, meta.fresh_until()),
            MissFinishType::Appended(size, max) => eviction.increment_weight(&compact, size, max),
        };
        if !evicted.is_empty() {
            let storage = enabled.storage;
            tokio::task::spawn(async move {
                for item in evicted {
                    let purged = storage
                        .purge(&item, PurgeType::Eviction, &SpanHandle::default())
                        .await;
                    if let Err(e) = purged {
                        warn!("failed to purge evicted {item}: {e}");
                    }
                }
            });
        }
        Ok(())
    }
}

// === impl HttpCache: revalidation and variance ===

impl HttpCache {
    /// After the origin answered a revalidation with 304 and the merged response may be
    /// stored: replaces the stored metadata with `meta` (keeping the original creation time
    /// and merging extensions), writes it to the storage and releases the write lock. The
    /// phase becomes [`CachePhase::Revalidated`]; returns whether the storage updated it.
    pub async fn revalidate_cache_meta(&mut self, mut meta: CacheMeta) -> Result<bool> {
        if self.phase != CachePhase::Stale {
            self.misuse("revalidate_cache_meta");
            return Error::e_explain(ErrorType::InternalError, "revalidation in wrong phase");
        }
        self.phase = CachePhase::Revalidated;
        let Some(inner) = self.inner.as_mut() else {
            return Ok(false);
        };
        let (Some(enabled), Some(key)) = (inner.enabled.as_mut(), inner.key.as_ref()) else {
            return Ok(false);
        };
        if let Some(old) = enabled.meta.take() {
            // The response's age restarts from the 304; its first storage time stays.
            let renewed = meta.created();
            meta.set_created(old.created());
            meta.set_updated(renewed);
            let mut extensions = old.into_extensions();
            extensions.extend(std::mem::take(meta.extensions_mut()));
            *meta.extensions_mut() = extensions;
        }
        let meta = enabled.meta.insert(meta);
        let updated = enabled
            .storage
            .update_meta(key, meta, &SpanHandle::default())
            .await;
        if let Some(lock_ctx) = enabled.lock_ctx.as_mut() {
            if let Some(Locked::Write(permit)) = lock_ctx.lock.take() {
                lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
            }
        }
        updated
    }

    /// The stored response header updated with the 304 `resp` (RFC 9111 section 4.3.4: see
    /// [`conditional::merge_not_modified`]). Only on a stale hit; elsewhere `resp` itself.
    pub fn revalidate_merge_header(&mut self, resp: &ResponseHeader) -> ResponseHeader {
        match (self.phase, self.maybe_cache_meta()) {
            (CachePhase::Stale, Some(meta)) => {
                conditional::merge_not_modified(meta.response_header(), resp)
            }
            _ => {
                self.misuse("revalidate_merge_header");
                resp.clone()
            }
        }
    }

    /// After a 304 whose merged header may not be stored: the stored body is served once
    /// with `header`, nothing is written, the write lock is released.
    pub fn revalidate_uncacheable(&mut self, header: ResponseHeader, reason: NoCacheReason) {
        if self.phase != CachePhase::Stale {
            return self.misuse("revalidate_uncacheable");
        }
        if let Some(meta) = self.enabled_mut().and_then(|e| e.meta.as_mut()) {
            *meta.response_header_mut() = header;
        }
        self.release_write_lock(reason);
        self.phase = CachePhase::RevalidatedNoCache(reason);
    }

    /// Sets the variance of the response being admitted. When the lookup went to a variant
    /// slot whose variance differs, the object is written to the primary slot instead (and
    /// the lock taken on the variant key is released).
    pub fn update_variance(&mut self, variance: Option<HashBinary>) {
        if !matches!(self.phase, CachePhase::Miss | CachePhase::Expired) {
            return self.misuse("update_variance");
        }
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        let (Some(enabled), Some(key)) = (inner.enabled.as_mut(), inner.key.as_mut()) else {
            return;
        };
        if let Some(meta) = enabled.meta.as_mut() {
            match variance {
                Some(variance) => meta.set_variance_key(variance),
                None => meta.remove_variance(),
            }
        }
        let Some(old) = key.variance_key().copied() else {
            return;
        };
        if Some(old) != variance {
            if let Some(lock_ctx) = enabled.lock_ctx.as_mut() {
                if let Some(Locked::Write(permit)) = lock_ctx.lock.take() {
                    lock_ctx.cache_lock.release(key, permit, LockStatus::Done);
                }
            }
            key.remove_variance_key();
        }
    }
}
