use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora_http::ResponseHeader;
use tokio::sync::mpsc;

use super::*;
use crate::key::hash_key;
use crate::storage::MissFinishType;

/// The stores the tests opened (leaked, as the cache API wants `&'static`), by directory.
static OPENED: std::sync::Mutex<Vec<(PathBuf, &'static DiskCache)>> =
    std::sync::Mutex::new(Vec::new());

/// Opens the store of `dir`. A store this test opened on `dir` before hands it over first
/// (`set_read_only`), as a process that stops would: a reopen is a restart.
async fn open_with(dir: &Path, options: DiskCacheOptions) -> (&'static DiskCache, RebuildStats) {
    let previous: Vec<&'static DiskCache> = {
        let mut opened = OPENED.lock().unwrap();
        let (same, other): (Vec<_>, Vec<_>) = opened.drain(..).partition(|(d, _)| d == dir);
        *opened = other;
        same.into_iter().map(|(_, cache)| cache).collect()
    };
    for cache in previous {
        cache.set_read_only();
    }
    let (cache, stats) = DiskCache::open(dir, options).await.unwrap();
    let cache: &'static DiskCache = Box::leak(Box::new(cache));
    OPENED.lock().unwrap().push((dir.to_path_buf(), cache));
    (cache, stats)
}

async fn open(dir: &Path) -> &'static DiskCache {
    open_with(dir, DiskCacheOptions::default()).await.0
}

fn meta(tag: &str) -> CacheMeta {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.insert_header("x-tag", tag).unwrap();
    CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, header)
}

fn key(primary: &str) -> CacheKey {
    CacheKey::new("ns", primary, "user")
}

fn variant(primary: &str, variance: &str) -> CacheKey {
    let mut key = key(primary);
    key.set_variance_key(hash_key(variance));
    key
}

fn tag_of(meta: &CacheMeta) -> String {
    let value = meta.headers().get("x-tag").unwrap();
    value.to_str().unwrap().to_owned()
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = hit.read_body().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

async fn put(cache: &'static DiskCache, key: &CacheKey, tag: &str, chunks: &[&[u8]]) -> usize {
    let trace = SpanHandle::default();
    let mut miss = cache
        .get_miss_handler(key, &meta(tag), &trace)
        .await
        .unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        let eof = i + 1 == chunks.len();
        miss.write_body(Bytes::copy_from_slice(chunk), eof)
            .await
            .unwrap();
    }
    match miss.finish().await.unwrap() {
        MissFinishType::Created(size) => size,
        other => panic!("unexpected {other:?}"),
    }
}

async fn body_of(cache: &'static DiskCache, key: &CacheKey) -> Option<Vec<u8>> {
    let (_, mut hit) = cache.lookup(key, &SpanHandle::default()).await.unwrap()?;
    Some(read_all(&mut hit).await.unwrap())
}

fn path_of(cache: &DiskCache, key: &CacheKey) -> PathBuf {
    cache.layout.object_path(hashes(key).1)
}

fn files_in(dir: &Path) -> usize {
    fs::read_dir(dir).unwrap().count()
}

#[tokio::test]
async fn write_then_hit_returns_body_and_meta() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/a");
    let trace = SpanHandle::default();
    assert!(cache.lookup(&k, &trace).await.unwrap().is_none());
    let size = put(cache, &k, "a", &[b"hello ", b"world"]).await;

    let (found, mut hit) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(tag_of(&found), "a");
    assert_eq!(found.fresh_until(), meta("a").fresh_until());
    assert_eq!(found.stale_while_revalidate_sec(), 5);
    assert_eq!(found.stale_if_error_sec(), 7);
    assert!(hit.can_seek() && hit.should_count_access());
    assert_eq!(hit.get_eviction_weight(), size);
    assert_eq!(read_all(&mut hit).await.unwrap(), b"hello world");
    hit.finish(cache, &k, &trace).await.unwrap();

    let path = path_of(cache, &k);
    assert_eq!(fs::metadata(&path).unwrap().len() as usize, size);
    assert!(path.starts_with(dir.path().join("objects")));
    assert_eq!(files_in(&dir.path().join("tmp")), 0);
    assert_eq!(cache.object_size(&k.to_compact()), Some(size));
    assert_eq!(cache.used_bytes(), size);
    assert_eq!(cache.len(), 1);
    assert_eq!(cache.entries(), vec![(k.to_compact(), size)]);
}

#[tokio::test]
async fn reader_follows_a_streaming_write_chunk_by_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/stream");
    let trace = SpanHandle::default();
    let mut miss = cache
        .get_miss_handler(&k, &meta("s"), &trace)
        .await
        .unwrap();
    let (found, mut hit) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(tag_of(&found), "s");
    assert!(!hit.can_seek() && !hit.should_count_access());
    assert!(hit.seek(0, None).is_err());

    let (chunks_tx, mut chunks_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(async move {
        while let Some(chunk) = hit.read_body().await.unwrap() {
            chunks_tx.send(chunk).unwrap();
        }
    });
    for chunk in ["one", "two", "three"] {
        miss.write_body(Bytes::from_static(chunk.as_bytes()), false)
            .await
            .unwrap();
        // The reader sees each chunk before the next one is written.
        assert_eq!(chunks_rx.recv().await.unwrap(), chunk);
    }
    miss.finish().await.unwrap();
    reader.await.unwrap();
    assert!(chunks_rx.recv().await.is_none());
    assert_eq!(body_of(cache, &k).await.unwrap(), b"onetwothree");
}

#[tokio::test]
async fn dropped_writer_fails_its_readers_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/dropped");
    let trace = SpanHandle::default();
    let mut miss = cache
        .get_miss_handler(&k, &meta("d"), &trace)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"partial"), false)
        .await
        .unwrap();
    let (_, mut early) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    let (_, mut waiting) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(early.read_body().await.unwrap().unwrap(), "partial");
    assert_eq!(waiting.read_body().await.unwrap().unwrap(), "partial");

    let blocked = tokio::spawn(async move { waiting.read_body().await });
    tokio::task::yield_now().await;
    drop(miss);
    assert!(
        blocked.await.unwrap().is_err(),
        "a waiting reader must not end cleanly"
    );
    assert!(early.read_body().await.is_err());
    assert!(cache.lookup(&k, &trace).await.unwrap().is_none());
    assert_eq!(cache.used_bytes(), 0);
    assert!(!path_of(cache, &k).exists());

    // Nothing comes back after a restart either (the temporary file, if its background
    // removal has not run yet, is deleted by the open).
    let (reopened, stats) = open_with(dir.path(), DiskCacheOptions::default()).await;
    assert_eq!((stats.kept, stats.discarded), (0, 0));
    assert!(reopened.lookup(&k, &trace).await.unwrap().is_none());
    assert_eq!(files_in(&dir.path().join("tmp")), 0);
}

#[tokio::test]
async fn a_cancelled_read_consumes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/cancel");
    let trace = SpanHandle::default();
    let mut miss = cache
        .get_miss_handler(&k, &meta("c"), &trace)
        .await
        .unwrap();
    let (_, mut hit) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    tokio::select! {
        biased;
        _ = hit.read_body() => panic!("nothing was written yet"),
        () = std::future::ready(()) => {}
    }
    miss.write_body(Bytes::from_static(b"x"), true)
        .await
        .unwrap();
    miss.finish().await.unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"x");
}

#[tokio::test]
async fn two_writers_the_later_finish_wins() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/twice");
    let trace = SpanHandle::default();
    let mut first = cache
        .get_miss_handler(&k, &meta("first"), &trace)
        .await
        .unwrap();
    let mut second = cache
        .get_miss_handler(&k, &meta("second"), &trace)
        .await
        .unwrap();
    first
        .write_body(Bytes::from_static(b"111"), true)
        .await
        .unwrap();
    second
        .write_body(Bytes::from_static(b"2"), true)
        .await
        .unwrap();

    // A plain lookup follows the newest write; a tagged one follows exactly its write.
    let (found, _) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(tag_of(&found), "second");
    let tag = first.streaming_write_tag().unwrap().to_vec();
    let (found, mut hit) = cache
        .lookup_streaming_write(&k, Some(&tag), &trace)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tag_of(&found), "first");
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "111");
    let bogus = cache
        .lookup_streaming_write(&k, Some(b"bad"), &trace)
        .await
        .unwrap();
    assert!(bogus.is_none());

    let MissFinishType::Created(second_size) = second.finish().await.unwrap() else {
        panic!("created expected");
    };
    let (found, mut following) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(tag_of(&found), "first");
    assert_eq!(following.read_body().await.unwrap().unwrap(), "111");
    let MissFinishType::Created(first_size) = first.finish().await.unwrap() else {
        panic!("created expected");
    };
    assert!(hit.read_body().await.unwrap().is_none());
    assert!(following.read_body().await.unwrap().is_none());
    let (found, mut hit) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(tag_of(&found), "first");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"111");
    assert_ne!(first_size, second_size);
    assert_eq!(cache.used_bytes(), first_size);
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn seek_single_and_multipart_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/seek");
    put(cache, &k, "r", &[b"012", b"3456", b"789"]).await;
    let (_, mut hit) = cache
        .lookup(&k, &SpanHandle::default())
        .await
        .unwrap()
        .unwrap();
    assert!(hit.can_seek_multipart());

    hit.seek(2, Some(8)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"234567");
    hit.seek_multipart(0, Some(2)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"01");
    hit.seek_multipart(8, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"89");
    hit.seek(4, Some(100)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"456789");
    hit.seek(5, Some(5)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"");

    assert!(hit.seek(10, None).is_err());
    assert!(hit.seek(6, Some(3)).is_err());
}

#[tokio::test]
async fn large_bodies_are_read_in_chunks_and_ranges_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/large");
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    put(cache, &k, "l", &[&body[..100_000], &body[100_000..]]).await;
    let (_, mut hit) = cache
        .lookup(&k, &SpanHandle::default())
        .await
        .unwrap()
        .unwrap();
    let first = hit.read_body().await.unwrap().unwrap();
    assert!(
        first.len() < body.len(),
        "bodies are read in bounded chunks"
    );
    let mut all = first.to_vec();
    all.extend(read_all(&mut hit).await.unwrap());
    assert_eq!(all, body);
    hit.seek(65_000, Some(200_001)).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), &body[65_000..200_001]);
}

#[tokio::test]
async fn purge_one_variant_or_a_primary_key_with_all_variants() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let primary = key("/v");
    let (gzip, br) = (variant("/v", "gzip"), variant("/v", "br"));
    let other = key("/other");
    for (k, tag) in [(&primary, "p"), (&gzip, "g"), (&br, "b"), (&other, "o")] {
        put(cache, k, tag, &[tag.as_bytes()]).await;
    }
    assert_eq!(body_of(cache, &gzip).await.unwrap(), b"g");

    let purge = |k: &CacheKey, kind| {
        let compact = k.to_compact();
        async move { cache.purge(&compact, kind, &SpanHandle::default()).await }
    };
    assert!(purge(&gzip, PurgeType::Invalidation).await.unwrap());
    assert!(!purge(&gzip, PurgeType::Invalidation).await.unwrap());
    assert!(body_of(cache, &gzip).await.is_none());
    assert!(!path_of(cache, &gzip).exists());
    assert_eq!(body_of(cache, &br).await.unwrap(), b"b");

    // Eviction of the primary object removes that object only.
    assert!(purge(&primary, PurgeType::Eviction).await.unwrap());
    assert_eq!(body_of(cache, &br).await.unwrap(), b"b");

    put(cache, &primary, "p", &[b"p"]).await;
    assert!(purge(&primary, PurgeType::Invalidation).await.unwrap());
    assert!(body_of(cache, &primary).await.is_none());
    assert!(body_of(cache, &br).await.is_none());
    assert!(!path_of(cache, &br).exists());
    assert!(!purge(&primary, PurgeType::Invalidation).await.unwrap());
    assert_eq!(body_of(cache, &other).await.unwrap(), b"o");
    assert_eq!(cache.len(), 1);
    assert_eq!(
        cache.used_bytes(),
        cache.object_size(&other.to_compact()).unwrap()
    );
}

#[tokio::test]
async fn purge_during_a_write_keeps_readers_but_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/purged");
    let trace = SpanHandle::default();
    let mut miss = cache
        .get_miss_handler(&k, &meta("x"), &trace)
        .await
        .unwrap();
    let (_, mut hit) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    miss.write_body(Bytes::from_static(b"ab"), false)
        .await
        .unwrap();
    assert!(cache
        .purge(&k.to_compact(), PurgeType::Invalidation, &trace)
        .await
        .unwrap());
    assert!(cache.lookup(&k, &trace).await.unwrap().is_none());
    miss.write_body(Bytes::from_static(b"cd"), true)
        .await
        .unwrap();
    assert!(miss.finish().await.is_err());
    assert_eq!(read_all(&mut hit).await.unwrap(), b"abcd");
    assert!(cache.lookup(&k, &trace).await.unwrap().is_none());
    assert_eq!(cache.used_bytes(), 0);
    assert!(!path_of(cache, &k).exists());
    assert_eq!(files_in(&dir.path().join("tmp")), 0);
}

#[tokio::test]
async fn update_meta_replaces_the_stored_header_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/meta");
    let trace = SpanHandle::default();
    assert!(!cache.update_meta(&k, &meta("new"), &trace).await.unwrap());
    let old_size = put(cache, &k, "old", &[b"body"]).await;
    let mut updated = meta("new");
    updated
        .response_header_mut()
        .insert_header("x-more", "a longer header value")
        .unwrap();
    assert!(cache.update_meta(&k, &updated, &trace).await.unwrap());
    let (found, mut hit) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(tag_of(&found), "new");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
    let size = cache.object_size(&k.to_compact()).unwrap();
    assert!(size > old_size);
    assert_eq!(
        fs::metadata(path_of(cache, &k)).unwrap().len() as usize,
        size
    );
    assert_eq!(cache.used_bytes(), size);
    assert_eq!(files_in(&dir.path().join("tmp")), 0);

    let (reopened, stats) = open_with(dir.path(), DiskCacheOptions::default()).await;
    assert_eq!((stats.kept, stats.discarded), (1, 0));
    let (found, mut hit) = reopened.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(
        found.headers().get("x-more").unwrap(),
        "a longer header value"
    );
    assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
}

#[tokio::test]
async fn total_and_object_limits_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let (probe, _) = open_with(dir.path(), DiskCacheOptions::default()).await;
    let head = put(probe, &key("/probe"), "c", &[b""]).await;
    let trace = SpanHandle::default();
    assert!(probe
        .purge(&key("/probe").to_compact(), PurgeType::Eviction, &trace)
        .await
        .unwrap());

    let options = DiskCacheOptions::default()
        .max_bytes(2 * head + 150)
        .max_object_bytes(head + 120);
    let (cache, _) = open_with(dir.path(), options).await;
    let body = vec![b'x'; 100];
    let size = put(cache, &key("/fits"), "c", &[&body]).await;
    assert_eq!(size, head + 100);

    // The second object does not fit in the total: its write fails, its reader errors.
    let big = key("/too-big");
    let mut miss = cache
        .get_miss_handler(&big, &meta("c"), &trace)
        .await
        .unwrap();
    let (_, mut hit) = cache.lookup(&big, &trace).await.unwrap().unwrap();
    let err = miss
        .write_body(Bytes::from(body.clone()), false)
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &STORAGE_FULL);
    assert!(miss
        .write_body(Bytes::from_static(b"more"), true)
        .await
        .is_err());
    assert!(hit.read_body().await.is_err());
    assert!(miss.finish().await.is_err());
    assert!(cache.lookup(&big, &trace).await.unwrap().is_none());
    assert_eq!(cache.used_bytes(), size);

    // Room again once the first is purged, but not for an object over the object limit.
    let first = key("/fits").to_compact();
    assert!(cache
        .purge(&first, PurgeType::Eviction, &trace)
        .await
        .unwrap());
    assert_eq!(cache.used_bytes(), 0);
    let mut miss = cache
        .get_miss_handler(&big, &meta("c"), &trace)
        .await
        .unwrap();
    let err = miss
        .write_body(Bytes::from(vec![b'y'; 121]), true)
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &OBJECT_TOO_LARGE);
    drop(miss);
    assert_eq!(cache.used_bytes(), 0);
    put(cache, &big, "c", &[&body]).await;
    assert_eq!(body_of(cache, &big).await.unwrap(), body);
}

#[tokio::test]
async fn a_file_removed_behind_the_store_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/gone");
    put(cache, &k, "g", &[b"body"]).await;
    fs::remove_file(path_of(cache, &k)).unwrap();
    assert!(cache
        .lookup(&k, &SpanHandle::default())
        .await
        .unwrap()
        .is_none());
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.used_bytes(), 0);
    assert_eq!(cache.object_size(&k.to_compact()), None);
}

#[tokio::test]
async fn a_failed_file_creation_fails_the_write_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    // A file where the temporary directory should be: it cannot be created again.
    fs::remove_dir(dir.path().join("tmp")).unwrap();
    fs::write(dir.path().join("tmp"), b"not a directory").unwrap();
    let trace = SpanHandle::default();
    let result = cache.get_miss_handler(&key("/x"), &meta("x"), &trace).await;
    assert!(result.is_err());
    assert_eq!(cache.used_bytes(), 0);
    assert!(cache.lookup(&key("/x"), &trace).await.unwrap().is_none());
}

#[tokio::test]
async fn reopen_after_clean_writes_serves_the_same_objects() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let (plain, gzip) = (key("/r"), variant("/r", "gzip"));
    let size = put(cache, &plain, "plain", &[b"plain body"]).await;
    put(cache, &gzip, "gzip", &[b"gz", b"ip"]).await;
    let used = cache.used_bytes();

    let (reopened, stats) = open_with(dir.path(), DiskCacheOptions::default()).await;
    assert_eq!(
        stats,
        RebuildStats {
            kept: 2,
            discarded: 0,
            temp_removed: 0,
            bytes: used
        }
    );
    assert_eq!(reopened.used_bytes(), used);
    assert_eq!(reopened.object_size(&plain.to_compact()), Some(size));
    let mut entries = reopened.entries();
    entries.sort();
    let mut expected = vec![(plain.to_compact(), size), (gzip.to_compact(), used - size)];
    expected.sort();
    assert_eq!(entries, expected);

    let trace = SpanHandle::default();
    let (found, mut hit) = reopened.lookup(&plain, &trace).await.unwrap().unwrap();
    let original = meta("plain");
    assert_eq!(tag_of(&found), "plain");
    assert_eq!(found.fresh_until(), original.fresh_until());
    assert_eq!(found.created(), original.created());
    assert_eq!(found.stale_if_error_sec(), 7);
    assert_eq!(read_all(&mut hit).await.unwrap(), b"plain body");
    assert_eq!(body_of(reopened, &gzip).await.unwrap(), b"gzip");

    // The variants index is rebuilt too.
    assert!(reopened
        .purge(&plain.to_compact(), PurgeType::Invalidation, &trace)
        .await
        .unwrap());
    assert!(reopened.lookup(&gzip, &trace).await.unwrap().is_none());
    assert!(reopened.is_empty());
}

/// Flips one bit of the file at `offset` (negative: from its end).
fn flip(path: &Path, offset: i64) {
    let mut bytes = fs::read(path).unwrap();
    let at = if offset < 0 {
        bytes.len() - offset.unsigned_abs() as usize
    } else {
        offset as usize
    };
    bytes[at] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_crash_never_leaves_an_object_served_as_complete() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let body = vec![b'b'; 1000];
    let names = ["/good", "/truncated", "/bad-meta", "/bad-body", "/good-too"];
    for name in names {
        put(cache, &key(name), "t", &[&body]).await;
    }
    // An interrupted write leaves its temporary file.
    let mut interrupted = cache
        .get_miss_handler(&key("/interrupted"), &meta("i"), &SpanHandle::default())
        .await
        .unwrap();
    interrupted
        .write_body(Bytes::from_static(b"half"), false)
        .await
        .unwrap();
    std::mem::forget(interrupted);
    assert_eq!(files_in(&dir.path().join("tmp")), 1);

    let truncated = path_of(cache, &key("/truncated"));
    let len = fs::metadata(&truncated).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&truncated)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    flip(&path_of(cache, &key("/bad-meta")), FIXED_LEN as i64 + 10);
    flip(&path_of(cache, &key("/bad-body")), -500);
    // A stray file in a shard directory is not ours.
    fs::write(dir.path().join("objects/00/stray"), b"?").unwrap();

    let (reopened, stats) = open_with(dir.path(), DiskCacheOptions::default()).await;
    assert_eq!((stats.kept, stats.discarded, stats.temp_removed), (3, 3, 1));
    assert_eq!(files_in(&dir.path().join("tmp")), 0);
    assert!(!truncated.exists());
    let trace = SpanHandle::default();
    for name in ["/truncated", "/bad-meta", "/interrupted"] {
        assert!(reopened.lookup(&key(name), &trace).await.unwrap().is_none());
    }
    for name in ["/good", "/good-too"] {
        assert_eq!(body_of(reopened, &key(name)).await.unwrap(), body);
    }

    // The corrupt body is only found by reading it: the read fails at its end, never ends
    // cleanly, and the object is purged.
    let bad = key("/bad-body");
    let (_, mut hit) = reopened.lookup(&bad, &trace).await.unwrap().unwrap();
    assert!(read_all(&mut hit).await.is_err());
    assert!(
        hit.read_body().await.is_err(),
        "no clean end after the error"
    );
    assert!(reopened.lookup(&bad, &trace).await.unwrap().is_none());
    assert!(!path_of(reopened, &bad).exists());
    assert_eq!(reopened.len(), 2);
    assert_eq!(
        reopened.used_bytes(),
        2 * reopened.object_size(&key("/good").to_compact()).unwrap()
    );
}

#[tokio::test]
async fn a_file_truncated_after_lookup_fails_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    let k = key("/shrinks");
    let body = vec![7u8; 200_000];
    put(cache, &k, "s", &[&body]).await;
    let (_, mut hit) = cache
        .lookup(&k, &SpanHandle::default())
        .await
        .unwrap()
        .unwrap();
    let path = path_of(cache, &k);
    let len = fs::metadata(&path).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - 100_000).unwrap();
    assert!(read_all(&mut hit).await.is_err());
    assert!(cache
        .lookup(&k, &SpanHandle::default())
        .await
        .unwrap()
        .is_none());
}

#[test]
fn handlers_and_cache_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<DiskCache>();
    send_sync::<DiskCacheOptions>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_from_several_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, _) = open_with(
        dir.path(),
        DiskCacheOptions::default()
            .fsync(FsyncPolicy::Never)
            .io_concurrency(2),
    )
    .await;
    let k = key("/many");
    let trace = SpanHandle::default();
    let mut miss = cache
        .get_miss_handler(&k, &meta("m"), &trace)
        .await
        .unwrap();
    let expected: Vec<u8> = (0..100u8).flat_map(|i| [i; 10]).collect();
    let mut readers = Vec::new();
    for _ in 0..8 {
        let (_, mut hit) = cache.lookup(&k, &trace).await.unwrap().unwrap();
        readers.push(tokio::spawn(
            async move { read_all(&mut hit).await.unwrap() },
        ));
    }
    for i in 0..100u8 {
        miss.write_body(Bytes::from(vec![i; 10]), i == 99)
            .await
            .unwrap();
    }
    miss.finish().await.unwrap();
    let mut late = Vec::new();
    for _ in 0..4 {
        late.push(tokio::spawn(async move {
            body_of(cache, &key("/many")).await.unwrap()
        }));
    }
    for reader in readers.into_iter().chain(late) {
        assert_eq!(reader.await.unwrap(), expected);
    }
}

/// Measures how long `DiskCache::open` takes to rebuild the index of 1,000 and 100,000
/// objects of 1 KiB (page cache warm: the files were just written). Run with
/// `cargo test --release -p pingora-cache --lib rebuild_time -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: writes 100,000 files"]
async fn rebuild_time_for_1k_and_100k_objects() {
    rebuild_and_report(&[1_000, 100_000]).await;
}

/// The 1k case of [`rebuild_time_for_1k_and_100k_objects`] on every test run (the time is
/// printed, not asserted: `--nocapture` shows it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_of_1k_objects_keeps_them_all() {
    rebuild_and_report(&[1_000]).await;
}

async fn rebuild_and_report(counts: &[usize]) {
    for &count in counts {
        let dir = tempfile::tempdir().unwrap();
        let options = DiskCacheOptions::default().fsync(FsyncPolicy::Never);
        let (cache, _) = open_with(dir.path(), options.clone()).await;
        let body = vec![b'x'; 1024];
        let started = std::time::Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..count {
            let body = body.clone();
            tasks.spawn(async move { put(cache, &key(&format!("/{i}")), "t", &[&body]).await });
            if tasks.len() >= 64 {
                tasks.join_next().await.unwrap().unwrap();
            }
        }
        tasks.join_all().await;
        let written = started.elapsed();
        let started = std::time::Instant::now();
        let (reopened, stats) = open_with(dir.path(), options).await;
        let rebuilt = started.elapsed();
        assert_eq!((stats.kept, stats.discarded), (count, 0));
        assert_eq!(reopened.len(), count);
        println!("{count} objects: written in {written:?}, index rebuilt in {rebuilt:?}");
    }
}

mod model;

#[tokio::test]
async fn one_store_per_directory_and_a_read_only_hand_over() {
    let dir = tempfile::tempdir().unwrap();
    let old = open(dir.path()).await;
    put(old, &key("/kept"), "k", &[b"kept body"]).await;
    // A second store (another process) cannot take the directory.
    let err = DiskCache::open(dir.path(), DiskCacheOptions::default())
        .await
        .unwrap_err();
    assert_eq!(*err.etype(), DISK_CACHE_LOCKED);

    // A write in progress when the old store hands over stores nothing; its reader still
    // gets the whole body.
    let trace = SpanHandle::default();
    let mut miss = old
        .get_miss_handler(&key("/in-flight"), &meta("f"), &trace)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"part"), false)
        .await
        .unwrap();
    let (_, mut follower) = old
        .lookup(&key("/in-flight"), &trace)
        .await
        .unwrap()
        .unwrap();

    // The new store waits for the directory while the old one still holds it.
    let waiting = tokio::spawn({
        let dir = dir.path().to_path_buf();
        async move {
            DiskCache::open_when_unlocked(
                &dir,
                DiskCacheOptions::default(),
                Duration::from_secs(10),
            )
            .await
        }
    });
    old.set_read_only();
    assert!(old.is_read_only());
    let (new, stats) = waiting.await.unwrap().unwrap();
    let new: &'static DiskCache = Box::leak(Box::new(new));
    assert_eq!(stats.kept, 1);

    miss.write_body(Bytes::from_static(b" end"), true)
        .await
        .unwrap();
    assert!(
        miss.finish().await.is_err(),
        "the handed-over store stores nothing"
    );
    assert_eq!(read_all(&mut follower).await.unwrap(), b"part end");
    assert!(body_of(new, &key("/in-flight")).await.is_none());

    // The old store serves hits read only: no new writes, purges touch nothing.
    assert_eq!(body_of(old, &key("/kept")).await.unwrap(), b"kept body");
    assert!(old
        .get_miss_handler(&key("/refused"), &meta("r"), &trace)
        .await
        .is_err());
    assert!(!old
        .purge(&key("/kept").to_compact(), PurgeType::Invalidation, &trace)
        .await
        .unwrap());
    assert_eq!(body_of(new, &key("/kept")).await.unwrap(), b"kept body");

    // Waiting has a bound.
    let err = DiskCache::open_when_unlocked(
        dir.path(),
        DiskCacheOptions::default(),
        Duration::from_millis(120),
    )
    .await
    .unwrap_err();
    assert_eq!(*err.etype(), DISK_CACHE_LOCKED);
}

#[tokio::test]
async fn directories_removed_behind_the_store_are_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let cache = open(dir.path()).await;
    put(cache, &key("/first"), "a", &[b"one"]).await;
    let shard_dir = path_of(cache, &key("/again"))
        .parent()
        .unwrap()
        .to_path_buf();
    fs::remove_dir_all(&shard_dir).unwrap();
    fs::remove_dir_all(dir.path().join("tmp")).unwrap();
    put(cache, &key("/again"), "b", &[b"two"]).await;
    assert_eq!(body_of(cache, &key("/again")).await.unwrap(), b"two");
    let reopened = open(dir.path()).await;
    assert_eq!(body_of(reopened, &key("/again")).await.unwrap(), b"two");
}
