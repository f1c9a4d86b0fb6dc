use std::time::{Duration, SystemTime};

use pingora_http::ResponseHeader;
use tokio::sync::mpsc;

use bytes::Bytes;

use super::*;
use crate::key::hash_key;
use crate::storage::MissFinishType;

fn cache(capacity: usize) -> &'static MemCache {
    Box::leak(Box::new(MemCache::with_capacity_bytes(capacity)))
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

async fn put(cache: &'static MemCache, key: &CacheKey, tag: &str, chunks: &[&str]) -> usize {
    let trace = SpanHandle::default();
    let mut miss = cache
        .get_miss_handler(key, &meta(tag), &trace)
        .await
        .unwrap();
    for (i, chunk) in chunks.iter().enumerate() {
        let eof = i + 1 == chunks.len();
        miss.write_body(Bytes::copy_from_slice(chunk.as_bytes()), eof)
            .await
            .unwrap();
    }
    match miss.finish().await.unwrap() {
        MissFinishType::Created(size) => size,
        other => panic!("unexpected {other:?}"),
    }
}

async fn body_of(cache: &'static MemCache, key: &CacheKey) -> Option<Vec<u8>> {
    let (_, mut hit) = cache.lookup(key, &SpanHandle::default()).await.unwrap()?;
    Some(read_all(&mut hit).await.unwrap())
}

#[tokio::test]
async fn write_then_hit_returns_body_and_meta() {
    let cache = cache(1 << 20);
    let k = key("/a");
    assert!(cache
        .lookup(&k, &SpanHandle::default())
        .await
        .unwrap()
        .is_none());
    let size = put(cache, &k, "a", &["hello ", "world"]).await;

    let (found, mut hit) = cache
        .lookup(&k, &SpanHandle::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tag_of(&found), "a");
    let stored = meta("a");
    assert_eq!(found.fresh_until(), stored.fresh_until());
    assert_eq!(found.stale_while_revalidate_sec(), 5);
    assert_eq!(found.stale_if_error_sec(), 7);
    assert!(hit.can_seek() && hit.should_count_access());
    assert_eq!(hit.get_eviction_weight(), size);
    assert_eq!(read_all(&mut hit).await.unwrap(), b"hello world");
    hit.finish(cache, &k, &SpanHandle::default()).await.unwrap();

    assert_eq!(size, 11 + meta_weight(&stored));
    assert_eq!(cache.object_size(&k.to_compact()), Some(size));
    assert_eq!(cache.used_bytes(), size);
    assert_eq!(cache.len(), 1);
}

#[tokio::test]
async fn reader_follows_a_streaming_write_chunk_by_chunk() {
    let cache = cache(1 << 20);
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
    let cache = cache(1 << 20);
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
}

#[tokio::test]
async fn a_cancelled_read_consumes_nothing() {
    let cache = cache(1 << 20);
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
    let cache = cache(1 << 20);
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
    // The first write, still in progress, is preferred over the complete second object.
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
    let cache = cache(1 << 20);
    let k = key("/seek");
    put(cache, &k, "r", &["012", "3456", "789"]).await;
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
async fn purge_one_variant_or_a_primary_key_with_all_variants() {
    let cache = cache(1 << 20);
    let primary = key("/v");
    let (gzip, br) = (variant("/v", "gzip"), variant("/v", "br"));
    let other = key("/other");
    for (k, tag) in [(&primary, "p"), (&gzip, "g"), (&br, "b"), (&other, "o")] {
        put(cache, k, tag, &[tag]).await;
    }
    assert_eq!(body_of(cache, &gzip).await.unwrap(), b"g");

    let purge = |k: &CacheKey, kind| {
        let compact = k.to_compact();
        async move { cache.purge(&compact, kind, &SpanHandle::default()).await }
    };
    assert!(purge(&gzip, PurgeType::Invalidation).await.unwrap());
    assert!(!purge(&gzip, PurgeType::Invalidation).await.unwrap());
    assert!(body_of(cache, &gzip).await.is_none());
    assert_eq!(body_of(cache, &br).await.unwrap(), b"b");

    // Eviction of the primary slot removes that object only.
    assert!(purge(&primary, PurgeType::Eviction).await.unwrap());
    assert_eq!(body_of(cache, &br).await.unwrap(), b"b");

    put(cache, &primary, "p", &["p"]).await;
    assert!(purge(&primary, PurgeType::Invalidation).await.unwrap());
    assert!(body_of(cache, &primary).await.is_none());
    assert!(body_of(cache, &br).await.is_none());
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
    let cache = cache(1 << 20);
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
}

#[tokio::test]
async fn update_meta_replaces_the_stored_header() {
    let cache = cache(1 << 20);
    let k = key("/meta");
    let trace = SpanHandle::default();
    assert!(!cache.update_meta(&k, &meta("new"), &trace).await.unwrap());
    put(cache, &k, "old", &["body"]).await;
    let mut updated = meta("new");
    updated
        .response_header_mut()
        .insert_header("x-more", "a longer header value")
        .unwrap();
    assert!(cache.update_meta(&k, &updated, &trace).await.unwrap());
    let (found, mut hit) = cache.lookup(&k, &trace).await.unwrap().unwrap();
    assert_eq!(tag_of(&found), "new");
    assert_eq!(read_all(&mut hit).await.unwrap(), b"body");
    let size = 4 + meta_weight(&updated);
    assert_eq!(cache.object_size(&k.to_compact()), Some(size));
    assert_eq!(cache.used_bytes(), size);
}

#[tokio::test]
async fn capacity_bounds_stored_and_in_progress_bytes() {
    let weight = meta_weight(&meta("c"));
    let cache = cache(2 * weight + 150);
    let trace = SpanHandle::default();
    let body = "x".repeat(100);
    let size = put(cache, &key("/fits"), "c", &[&body]).await;
    assert_eq!(size, weight + 100);

    // The second object does not fit: its write fails, its reader errors, nothing is kept.
    let big = key("/too-big");
    let mut miss = cache
        .get_miss_handler(&big, &meta("c"), &trace)
        .await
        .unwrap();
    let (_, mut hit) = cache.lookup(&big, &trace).await.unwrap().unwrap();
    miss.write_body(Bytes::from(body.clone()), false)
        .await
        .unwrap_err();
    assert!(miss
        .write_body(Bytes::from_static(b"more"), true)
        .await
        .is_err());
    assert!(hit.read_body().await.is_err());
    assert!(miss.finish().await.is_err());
    assert!(cache.lookup(&big, &trace).await.unwrap().is_none());
    assert_eq!(cache.used_bytes(), size);
    assert!(cache.used_bytes() <= cache.capacity_bytes());

    // Once the first is purged there is room again.
    let first = key("/fits").to_compact();
    assert!(cache
        .purge(&first, PurgeType::Eviction, &trace)
        .await
        .unwrap());
    assert_eq!(cache.used_bytes(), 0);
    put(cache, &big, "c", &[&body]).await;
    assert_eq!(body_of(cache, &big).await.unwrap(), body.as_bytes());

    let tiny = cache_with_no_room();
    assert!(tiny
        .get_miss_handler(&big, &meta("c"), &trace)
        .await
        .is_err());
}

fn cache_with_no_room() -> &'static MemCache {
    cache(10)
}

#[test]
fn handlers_and_cache_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MemCache>();
    send_sync::<HitHandler>();
    send_sync::<MissHandler>();
    let _: &'static (dyn Storage + Send + Sync) = cache(1);
}

#[tokio::test]
async fn writes_after_the_end_of_the_body_fail() {
    let cache = cache(1 << 20);
    let k = key("/eof");
    let trace = SpanHandle::default();
    let mut miss = cache
        .get_miss_handler(&k, &meta("e"), &trace)
        .await
        .unwrap();
    miss.write_body(Bytes::from_static(b"done"), true)
        .await
        .unwrap();
    assert!(miss
        .write_body(Bytes::from_static(b"more"), false)
        .await
        .is_err());
    miss.finish().await.unwrap();
    assert_eq!(body_of(cache, &k).await.unwrap(), b"done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_from_several_tasks() {
    let cache = cache(1 << 20);
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
        if i % 10 == 0 {
            tokio::task::yield_now().await;
        }
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

mod model {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Op {
        Put {
            primary: u8,
            variance: Option<u8>,
            len: usize,
            abort: bool,
        },
        Lookup {
            primary: u8,
            variance: Option<u8>,
        },
        Purge {
            primary: u8,
            variance: Option<u8>,
            eviction: bool,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let target = (0..3u8, proptest::option::of(0..2u8));
        prop_oneof![
            (target.clone(), 0..40usize, proptest::bool::weighted(0.2)).prop_map(
                |((primary, variance), len, abort)| Op::Put {
                    primary,
                    variance,
                    len,
                    abort
                }
            ),
            target
                .clone()
                .prop_map(|(primary, variance)| Op::Lookup { primary, variance }),
            (target, any::<bool>()).prop_map(|((primary, variance), eviction)| Op::Purge {
                primary,
                variance,
                eviction
            }),
        ]
    }

    fn key_of(primary: u8, variance: Option<u8>) -> CacheKey {
        match variance {
            Some(v) => variant(&primary.to_string(), &v.to_string()),
            None => key(&primary.to_string()),
        }
    }

    async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
        let cache = cache(usize::MAX);
        let trace = SpanHandle::default();
        let mut model: HashMap<(u8, Option<u8>), Vec<u8>> = HashMap::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Put {
                    primary,
                    variance,
                    len,
                    abort,
                } => {
                    let body = vec![step as u8; len];
                    let k = key_of(primary, variance);
                    let mut miss = cache
                        .get_miss_handler(&k, &meta("p"), &trace)
                        .await
                        .unwrap();
                    if abort {
                        // A failed write hides nothing once it is gone: the previous
                        // object, if any, is visible again.
                        miss.write_body(Bytes::from(body), false).await.unwrap();
                        drop(miss);
                    } else {
                        miss.write_body(Bytes::from(body.clone()), true)
                            .await
                            .unwrap();
                        miss.finish().await.unwrap();
                        model.insert((primary, variance), body);
                    }
                }
                Op::Lookup { primary, variance } => {
                    let found = body_of(cache, &key_of(primary, variance)).await;
                    prop_assert_eq!(found.as_ref(), model.get(&(primary, variance)));
                }
                Op::Purge {
                    primary,
                    variance,
                    eviction,
                } => {
                    let kind = if eviction {
                        PurgeType::Eviction
                    } else {
                        PurgeType::Invalidation
                    };
                    let k = key_of(primary, variance).to_compact();
                    let removed = cache.purge(&k, kind, &trace).await.unwrap();
                    let before = model.len();
                    if variance.is_none() && !eviction {
                        model.retain(|(p, _), _| *p != primary);
                    } else {
                        model.remove(&(primary, variance));
                    }
                    prop_assert_eq!(removed, model.len() != before);
                }
            }
            prop_assert_eq!(cache.len(), model.len());
        }
        let sizes: usize = model
            .keys()
            .map(|(p, v)| cache.object_size(&key_of(*p, *v).to_compact()).unwrap())
            .sum();
        prop_assert_eq!(cache.used_bytes(), sizes);
        Ok(())
    }

    proptest! {
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec(op(), 1..40)) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(run(ops))?;
        }
    }
}
