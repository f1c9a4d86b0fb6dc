use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora_http::ResponseHeader;

use super::*;
use crate::lock::CacheLock;
use crate::memory::MemCache;
use crate::status::HitStatus;

fn storage() -> StorageRef {
    Box::leak(Box::new(MemCache::new()))
}

fn lock() -> &'static CacheKeyLockImpl {
    Box::leak(Box::new(CacheLock::new(Duration::from_secs(5))))
}

fn meta(fresh_for: Duration, etag: &str) -> CacheMeta {
    let now = SystemTime::now();
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.insert_header("etag", etag).unwrap();
    header.insert_header("x-kept", "old").unwrap();
    CacheMeta::new(now + fresh_for, now, 0, 0, header)
}

fn enabled(storage: StorageRef, lock: Option<&'static CacheKeyLockImpl>) -> HttpCache {
    let mut cache = HttpCache::new();
    cache.enable(storage, None, None, lock, None);
    cache.set_cache_key(CacheKey::new("", "/a", ""));
    cache
}

async fn admit(cache: &mut HttpCache, meta: CacheMeta, body: &'static [u8]) {
    cache.cache_miss();
    cache.set_cache_meta(meta);
    cache.set_miss_handler().await.unwrap();
    let handler = cache.miss_handler().unwrap();
    handler
        .write_body(Bytes::from_static(body), true)
        .await
        .unwrap();
    cache.finish_miss_handler().await.unwrap();
}

async fn read_all(handler: &mut HitHandler) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(chunk) = handler.read_body().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    body
}

#[tokio::test]
async fn miss_then_hit() {
    let storage = storage();
    let mut first = enabled(storage, None);
    assert_eq!(first.phase(), CachePhase::CacheKey);
    assert!(first.cache_lookup().await.unwrap().is_none());
    admit(&mut first, meta(Duration::from_secs(60), "\"a\""), b"body").await;
    assert_eq!(first.phase(), CachePhase::Miss);
    assert!(first.upstream_used());

    let mut second = enabled(storage, None);
    let (found, handler) = second.cache_lookup().await.unwrap().unwrap();
    second.cache_found(found, handler, HitStatus::Fresh);
    assert_eq!(second.phase(), CachePhase::Hit);
    assert!(!second.upstream_used());
    assert_eq!(read_all(second.hit_handler()).await, b"body");
    second.finish_hit_handler().await.unwrap();
}

#[tokio::test]
async fn wrong_phase_calls_disable_instead_of_panicking() {
    let mut cache = HttpCache::new();
    cache.cache_miss();
    assert_eq!(
        cache.phase(),
        CachePhase::Disabled(NoCacheReason::NeverEnabled)
    );
    assert!(cache.cache_lookup().await.is_err());
    assert!(cache.hit_handler().read_body().await.is_err());
    assert_eq!(cache.cache_key().primary_key(), b"");
    assert!(!cache.cache_meta().is_fresh(SystemTime::now()));

    let mut cache = enabled(storage(), None);
    cache.set_cache_meta(meta(Duration::from_secs(1), "\"x\""));
    assert_eq!(
        cache.phase(),
        CachePhase::Disabled(NoCacheReason::InternalError)
    );
    cache.disable(NoCacheReason::NeverEnabled);
    assert_eq!(
        cache.phase(),
        CachePhase::Disabled(NoCacheReason::InternalError)
    );

    let mut cache = enabled(storage(), None);
    cache.enable(storage(), None, None, None, None);
    assert_eq!(
        cache.phase(),
        CachePhase::CacheKey,
        "a second enable is ignored"
    );
}

#[tokio::test]
async fn concurrent_misses_share_one_writer_and_readers_follow_the_write() {
    let (storage, lock) = (storage(), lock());
    let mut writer = enabled(storage, Some(lock));
    assert!(writer.cache_lookup().await.unwrap().is_none());
    assert!(writer.is_cache_lock_writer());

    let mut reader = enabled(storage, Some(lock));
    assert!(reader.cache_lookup().await.unwrap().is_none());
    assert!(reader.is_cache_locked());
    let waiting = tokio::spawn(async move {
        let status = reader.cache_lock_wait().await;
        (reader, status)
    });

    writer.cache_miss();
    writer.set_cache_meta(meta(Duration::from_secs(60), "\"w\""));
    writer.set_miss_handler().await.unwrap();
    // The write lock is released as soon as the write starts: the reader streams along.
    let (mut reader, status) = waiting.await.unwrap();
    assert_eq!(status, LockStatus::Done);
    assert!(reader.lock_duration().is_some());
    let (found, mut handler) = reader.cache_lookup().await.unwrap().unwrap();
    let handler_write = writer.miss_handler().unwrap();
    handler_write
        .write_body(Bytes::from_static(b"part1"), false)
        .await
        .unwrap();
    assert_eq!(handler.read_body().await.unwrap().unwrap(), "part1");
    drop(found);
    // The writer fails: the streaming reader gets an error, never a clean end.
    drop(writer);
    assert!(handler.read_body().await.is_err());
}

#[tokio::test]
async fn wait_timeout_bounds_the_wait_on_a_stuck_writer() {
    let (storage, lock) = (storage(), lock());
    let mut writer = enabled(storage, Some(lock));
    assert!(writer.cache_lookup().await.unwrap().is_none());

    let mut reader = HttpCache::new();
    let overrides = CacheOptionOverrides {
        wait_timeout: Some(Duration::from_millis(50)),
        ..Default::default()
    };
    reader.enable(storage, None, None, Some(lock), Some(overrides));
    reader.set_cache_key(CacheKey::new("", "/a", ""));
    assert!(reader.cache_lookup().await.unwrap().is_none());
    assert_eq!(reader.cache_lock_wait().await, LockStatus::WaitTimeout);
    writer.disable(NoCacheReason::UpstreamError);
}

#[tokio::test]
async fn stale_hit_revalidated_by_a_304_keeps_the_body_and_merges_headers() {
    let storage = storage();
    let mut first = enabled(storage, None);
    assert!(first.cache_lookup().await.unwrap().is_none());
    admit(&mut first, meta(Duration::ZERO, "\"v1\""), b"stored").await;

    let mut second = enabled(storage, Some(lock()));
    let (found, handler) = second.cache_lookup().await.unwrap().unwrap();
    assert!(!found.is_fresh(SystemTime::now()));
    second.cache_found(found, handler, HitStatus::Expired);
    assert_eq!(second.phase(), CachePhase::Stale);
    assert!(second.is_cache_lock_writer(), "a stale hit takes the lock");

    let mut not_modified = ResponseHeader::build(304, None).unwrap();
    not_modified.insert_header("etag", "\"v1\"").unwrap();
    not_modified.insert_header("x-kept", "new").unwrap();
    let merged = second.revalidate_merge_header(&not_modified);
    assert_eq!(merged.status, 200);
    assert_eq!(merged.headers["x-kept"], "new");
    let mut renewed = meta(Duration::from_secs(60), "\"v1\"");
    *renewed.response_header_mut() = merged;
    assert!(second.revalidate_cache_meta(renewed).await.unwrap());
    assert_eq!(second.phase(), CachePhase::Revalidated);
    assert!(!second.is_cache_lock_writer());
    assert_eq!(read_all(second.hit_handler()).await, b"stored");

    let mut third = enabled(storage, None);
    let (found, _) = third.cache_lookup().await.unwrap().unwrap();
    assert!(found.is_fresh(SystemTime::now()));
    assert_eq!(found.response_header().headers["x-kept"], "new");
}

#[tokio::test]
async fn variants_share_a_primary_key_and_purge_removes_them_all() {
    let storage = storage();
    let variance = |v: &str| crate::key::hash_key(v);
    let mut first = enabled(storage, None);
    assert!(first.cache_lookup().await.unwrap().is_none());
    first.cache_miss();
    first.set_cache_meta(meta(Duration::from_secs(60), "\"gz\""));
    first.update_variance(Some(variance("gzip")));
    first.set_miss_handler().await.unwrap();
    let handler = first.miss_handler().unwrap();
    handler
        .write_body(Bytes::from_static(b"gz"), true)
        .await
        .unwrap();
    first.finish_miss_handler().await.unwrap();

    // Another request varies differently: it misses the variant.
    let mut second = enabled(storage, None);
    let (found, _) = second.cache_lookup().await.unwrap().unwrap();
    assert!(!second.cache_vary_lookup(variance("br"), &found));
    assert!(second.cache_lookup().await.unwrap().is_none());

    // The same variance hits the primary slot.
    let mut third = enabled(storage, None);
    let (found, _) = third.cache_lookup().await.unwrap().unwrap();
    assert!(third.cache_vary_lookup(variance("gzip"), &found));

    let purger = enabled(storage, None);
    assert!(purger.purge().await.unwrap());
    assert!(!purger.spawn_async_purge("test").await.unwrap().unwrap());
    let mut after = enabled(storage, None);
    assert!(after.cache_lookup().await.unwrap().is_none());
}

#[tokio::test]
async fn max_file_size_is_tracked_while_streaming() {
    let mut cache = enabled(storage(), None);
    assert_eq!(cache.max_file_size_bytes(), None);
    assert!(cache.track_body_bytes_for_max_file_size(1 << 30));
    cache.set_max_file_size_bytes(10);
    assert!(cache.track_body_bytes_for_max_file_size(6));
    assert!(!cache.exceeded_max_file_size());
    assert!(!cache.track_body_bytes_for_max_file_size(6));
    assert!(cache.exceeded_max_file_size());
}

/// A storage whose next miss, before it returns, lets a parked writer store its object and
/// release the cache lock: the interleaving where a request's lookup misses just before
/// another request's write becomes visible.
struct RacingStorage {
    inner: &'static MemCache,
    parked_writer: std::sync::Mutex<Option<HttpCache>>,
}

#[async_trait::async_trait]
impl Storage for RacingStorage {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let found = self.inner.lookup(key, trace).await?;
        let parked = self.parked_writer.lock().unwrap().take();
        if let (None, Some(mut writer)) = (&found, parked) {
            admit(
                &mut writer,
                meta(Duration::from_secs(60), "\"r\""),
                b"raced",
            )
            .await;
        }
        Ok(found)
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<MissHandler> {
        self.inner.get_miss_handler(key, meta, trace).await
    }

    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &SpanHandle,
    ) -> Result<bool> {
        self.inner.purge(key, purge_type, trace).await
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<bool> {
        self.inner.update_meta(key, meta, trace).await
    }

    fn support_streaming_partial_write(&self) -> bool {
        self.inner.support_streaming_partial_write()
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync + 'static) {
        self
    }
}

#[tokio::test]
async fn a_miss_that_takes_the_lock_after_the_write_ended_finds_the_object() {
    let racing: &'static RacingStorage = Box::leak(Box::new(RacingStorage {
        inner: Box::leak(Box::new(MemCache::new())),
        parked_writer: std::sync::Mutex::new(None),
    }));
    let lock = lock();
    let mut writer = enabled(racing, Some(lock));
    assert!(writer.cache_lookup().await.unwrap().is_none());
    assert!(writer.is_cache_lock_writer());
    *racing.parked_writer.lock().unwrap() = Some(writer);

    // This lookup misses; before it returns, the writer stores the object and releases the
    // lock, so this request gets the write lock: it must look again, not fetch again.
    let mut late = enabled(racing, Some(lock));
    let (found, mut handler) = late
        .cache_lookup()
        .await
        .unwrap()
        .expect("the object stored meanwhile");
    assert!(!late.is_cache_lock_writer() && !late.is_cache_locked());
    assert_eq!(read_all(&mut handler).await, b"raced");
    drop(found);

    // The lock is free again: the next miss of the key would write.
    let mut next = enabled(racing, Some(lock));
    next.set_cache_key(CacheKey::new("", "/a", ""));
    assert!(next.cache_lookup().await.unwrap().is_some());
}
