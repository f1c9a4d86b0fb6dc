use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora_http::ResponseHeader;

use super::*;
use crate::storage::MissFinishType;

// === helpers ===

fn mem(capacity: usize) -> &'static MemCache {
    Box::leak(Box::new(MemCache::with_capacity_bytes(capacity)))
}

fn tiered(
    front: &'static MemCache,
    back: &'static MemCache,
    options: TieredOptions,
) -> &'static TieredStorage {
    Box::leak(Box::new(TieredStorage::new(front, back, options)))
}

/// Two unbounded tiers with a front bound of 1 MiB.
fn roomy() -> &'static TieredStorage {
    let options = TieredOptions::new(1 << 20).max_front_object_bytes(1 << 20);
    tiered(mem(usize::MAX), mem(usize::MAX), options)
}

fn meta(tag: &str) -> CacheMeta {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut header = ResponseHeader::build(200, None).unwrap();
    header.insert_header("x-tag", tag).unwrap();
    CacheMeta::new(now + Duration::from_secs(60), now, 5, 7, header)
}

fn tag_of(meta: &CacheMeta) -> String {
    meta.headers()
        .get("x-tag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn key(name: &str) -> CacheKey {
    CacheKey::new("ns", name, "user")
}

fn trace() -> SpanHandle {
    SpanHandle::default()
}

fn tier_of(hit: &HitHandler) -> Tier {
    hit.as_any()
        .downcast_ref::<TieredHitHandler>()
        .unwrap()
        .tier()
}

fn is_promoting(hit: &HitHandler) -> bool {
    hit.as_any()
        .downcast_ref::<TieredHitHandler>()
        .unwrap()
        .is_promoting()
}

async fn read_all(hit: &mut HitHandler) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = hit.read_body().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Writes `body` in chunks of `chunk` bytes into `storage`.
async fn write(
    storage: &'static (dyn Storage + Sync),
    key: &CacheKey,
    tag: &str,
    body: &[u8],
    chunk: usize,
) -> Result<MissFinishType> {
    let mut miss = storage.get_miss_handler(key, &meta(tag), &trace()).await?;
    let chunks: Vec<&[u8]> = body.chunks(chunk).collect();
    for (i, piece) in chunks.iter().enumerate() {
        let eof = i + 1 == chunks.len();
        miss.write_body(Bytes::copy_from_slice(piece), eof).await?;
    }
    miss.finish().await
}

async fn lookup(
    storage: &'static TieredStorage,
    key: &CacheKey,
) -> Option<(CacheMeta, HitHandler)> {
    storage.lookup(key, &trace()).await.unwrap()
}

/// The tier and whole body of a hit of `key`.
async fn read_hit(storage: &'static TieredStorage, key: &CacheKey) -> Option<(Tier, Vec<u8>)> {
    let (_, mut hit) = lookup(storage, key).await?;
    let tier = tier_of(&hit);
    let body = read_all(&mut hit).await.unwrap();
    hit.finish(storage, key, &trace()).await.unwrap();
    Some((tier, body))
}

fn in_front(storage: &TieredStorage, key: &CacheKey) -> bool {
    storage.front().lookup_complete(key).is_some()
}

async fn in_back(storage: &TieredStorage, key: &CacheKey) -> bool {
    storage
        .back()
        .lookup(key, &trace())
        .await
        .unwrap()
        .is_some()
}

fn body(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add(i as u8)).collect()
}

// === write-through and lookups ===

#[tokio::test]
async fn miss_writes_both_tiers_and_hits_come_from_the_front() {
    let storage = roomy();
    let k = key("/a");
    assert!(lookup(storage, &k).await.is_none());
    let finished = write(storage, &k, "a", b"hello world", 4).await.unwrap();

    // The size reported is the back store's.
    assert_eq!(
        finished,
        MissFinishType::Created(
            storage
                .back()
                .lookup(&k, &trace())
                .await
                .unwrap()
                .unwrap()
                .1
                .get_eviction_weight()
        )
    );
    assert!(in_front(storage, &k) && in_back(storage, &k).await);
    assert_eq!(storage.front_items(), 1);
    assert_eq!(
        storage.front_bytes(),
        storage.front().object_size(&k.to_compact()).unwrap()
    );

    let (found, mut hit) = lookup(storage, &k).await.unwrap();
    assert_eq!(tag_of(&found), "a");
    assert_eq!(tier_of(&hit), Tier::Front);
    assert!(!is_promoting(&hit) && hit.can_seek());
    hit.seek(6, None).unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"world");
    hit.finish(storage, &k, &trace()).await.unwrap();

    let stats = storage.stats();
    assert_eq!((stats.front_hits, stats.back_hits), (1, 0));
    assert_eq!((stats.front_writes, stats.promotions), (1, 0));
}

#[tokio::test]
async fn the_front_never_takes_an_object_over_its_size_limit() {
    let options = TieredOptions::new(1 << 20).max_front_object_bytes(100);
    let storage = tiered(mem(usize::MAX), mem(usize::MAX), options);
    let k = key("/big");
    write(storage, &k, "big", &body(300, 1), 64).await.unwrap();
    assert!(!in_front(storage, &k) && in_back(storage, &k).await);
    assert_eq!(storage.front().used_bytes(), 0);
    // Nor does a hit promote it.
    assert_eq!(
        read_hit(storage, &k).await,
        Some((Tier::Back, body(300, 1)))
    );
    assert!(!in_front(storage, &k));
    assert_eq!(storage.front().used_bytes(), 0);
}

#[tokio::test]
async fn an_evicted_object_is_served_by_the_back_and_promoted_after_enough_hits() {
    // Objects of 2000 body bytes weigh about 3.1 KB (4 units of 1 KiB): the front holds one.
    // A wide sketch: two keys sharing all their counters would make the count of one the
    // count of both (1 in 2,048 at the default width for so small a front).
    let options = TieredOptions::new(6 << 10)
        .max_front_object_bytes(4 << 10)
        .estimated_items(1 << 16);
    let storage = tiered(mem(usize::MAX), mem(usize::MAX), options);
    let (popular, newcomer) = (key("/popular"), key("/newcomer"));

    // Four writes make the popular key four times as frequent for the admission policy.
    for _ in 0..4 {
        write(storage, &popular, "p", &body(2000, 1), 500)
            .await
            .unwrap();
    }
    assert!(in_front(storage, &popular));

    // A one-off newcomer does not push it out: stored in the back only.
    write(storage, &newcomer, "n", &body(2000, 2), 500)
        .await
        .unwrap();
    assert!(!in_front(storage, &newcomer) && in_back(storage, &newcomer).await);
    assert!(in_front(storage, &popular));
    assert_eq!(storage.stats().turned_away, 1);

    // Each whole read of the newcomer from the back is an offer; it wins after a few.
    let mut back_hits = 0;
    while !in_front(storage, &newcomer) {
        let (tier, read) = read_hit(storage, &newcomer).await.unwrap();
        assert_eq!((tier, read), (Tier::Back, body(2000, 2)));
        back_hits += 1;
        assert!(back_hits < 10, "never promoted");
    }
    assert!(back_hits >= 2, "promoted after {back_hits} back hit(s)");
    assert_eq!(storage.stats().promotions, 1);
    assert_eq!(storage.stats().turned_away, back_hits);

    // The popular object was demoted: dropped from the front, served by the back.
    assert!(!in_front(storage, &popular));
    assert_eq!(
        read_hit(storage, &newcomer).await,
        Some((Tier::Front, body(2000, 2)))
    );
    let (tier, read) = read_hit(storage, &popular).await.unwrap();
    assert_eq!((tier, read), (Tier::Back, body(2000, 1)));
    assert!(storage.front_bytes() <= 6 << 10);
    assert!(storage.front().used_bytes() <= 6 << 10);
}

#[tokio::test]
async fn a_partial_read_or_a_seek_of_a_back_hit_promotes_nothing() {
    let storage = roomy();
    let k = key("/cold");
    // An object only the back store has (written before a restart, say).
    write(storage.back(), &k, "cold", b"aaaabbbbcccc", 4)
        .await
        .unwrap();

    let (_, mut hit) = lookup(storage, &k).await.unwrap();
    assert_eq!(tier_of(&hit), Tier::Back);
    assert!(is_promoting(&hit));
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "aaaa");
    hit.finish(storage, &k, &trace()).await.unwrap();
    assert!(!in_front(storage, &k));
    assert_eq!(
        storage.front().used_bytes(),
        0,
        "the copy in progress is dropped"
    );

    let (_, mut hit) = lookup(storage, &k).await.unwrap();
    hit.seek(4, None).unwrap();
    assert!(!is_promoting(&hit));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"bbbbcccc");
    drop(hit);
    assert!(!in_front(storage, &k));
    assert_eq!(storage.front().used_bytes(), 0);

    // A whole read promotes it.
    assert_eq!(
        read_hit(storage, &k).await,
        Some((Tier::Back, b"aaaabbbbcccc".to_vec()))
    );
    assert!(in_front(storage, &k));
    assert_eq!(
        read_hit(storage, &k).await,
        Some((Tier::Front, b"aaaabbbbcccc".to_vec()))
    );
    assert_eq!(storage.stats().promotions, 1);
}

#[tokio::test]
async fn without_promotion_back_hits_stay_in_the_back() {
    let options = TieredOptions::new(1 << 20).promote_hits(false);
    assert!(!options.promotes_hits());
    let storage = tiered(mem(usize::MAX), mem(usize::MAX), options);
    let k = key("/cold");
    write(storage.back(), &k, "cold", b"body", 4).await.unwrap();
    for _ in 0..3 {
        assert_eq!(
            read_hit(storage, &k).await,
            Some((Tier::Back, b"body".to_vec()))
        );
    }
    assert!(!in_front(storage, &k));
}

// === failures ===

#[tokio::test]
async fn a_failed_back_write_fails_its_readers_and_stores_nothing() {
    // The back store takes the metadata (about 1.1 KB) but not a 2000-byte body.
    let storage = tiered(mem(usize::MAX), mem(1500), TieredOptions::new(1 << 20));
    let k = key("/fails");
    let mut miss = storage
        .get_miss_handler(&k, &meta("f"), &trace())
        .await
        .unwrap();
    let (_, mut reader) = lookup(storage, &k).await.unwrap();
    assert_eq!(
        tier_of(&reader),
        Tier::Back,
        "readers follow the back store's write"
    );

    let err = miss
        .write_body(Bytes::from(body(2000, 3)), true)
        .await
        .unwrap_err();
    assert_eq!(
        err.etype(),
        &pingora_error::ErrorType::Custom("MemCacheFull")
    );
    assert!(reader.read_body().await.is_err());
    drop(miss);

    assert!(lookup(storage, &k).await.is_none());
    assert_eq!(storage.front().used_bytes(), 0);
    assert_eq!(storage.front_items(), 0);
}

#[tokio::test]
async fn a_failed_front_write_still_stores_the_object_in_the_back() {
    // The front takes the metadata but not the body.
    let storage = tiered(mem(1500), mem(usize::MAX), TieredOptions::new(1 << 20));
    let k = key("/front-full");
    let mut miss = storage
        .get_miss_handler(&k, &meta("ff"), &trace())
        .await
        .unwrap();
    let (_, mut reader) = lookup(storage, &k).await.unwrap();
    let follower = tokio::spawn(async move { read_all(&mut reader).await.unwrap() });
    miss.write_body(Bytes::from(body(1000, 4)), false)
        .await
        .unwrap();
    miss.write_body(Bytes::from(body(1000, 5)), true)
        .await
        .unwrap();
    assert!(matches!(
        miss.finish().await.unwrap(),
        MissFinishType::Created(_)
    ));

    let mut expected = body(1000, 4);
    expected.extend(body(1000, 5));
    assert_eq!(follower.await.unwrap(), expected);
    assert!(!in_front(storage, &k));
    assert_eq!(storage.front().used_bytes(), 0);
    assert_eq!(storage.stats().front_writes, 0);
    // Served by the back; promotions fail the same way, harmlessly.
    assert_eq!(read_hit(storage, &k).await, Some((Tier::Back, expected)));
    assert_eq!(storage.front().used_bytes(), 0);
}

// === purge and metadata ===

#[tokio::test]
async fn purge_removes_the_object_from_both_tiers() {
    let storage = roomy();
    for (name, purge_type) in [
        ("/p1", PurgeType::Invalidation),
        ("/p2", PurgeType::Eviction),
    ] {
        let k = key(name);
        write(storage, &k, name, b"body", 2).await.unwrap();
        assert!(in_front(storage, &k) && in_back(storage, &k).await);
        let compact = k.to_compact();
        assert!(storage.purge(&compact, purge_type, &trace()).await.unwrap());
        assert!(!in_front(storage, &k) && !in_back(storage, &k).await);
        assert!(lookup(storage, &k).await.is_none());
        assert!(!storage.purge(&compact, purge_type, &trace()).await.unwrap());
    }
    assert_eq!(storage.front_bytes(), 0);
    assert_eq!(storage.front().used_bytes(), 0);
}

#[tokio::test]
async fn update_meta_updates_both_tiers() {
    let storage = roomy();
    let k = key("/meta");
    write(storage, &k, "v1", b"body", 4).await.unwrap();
    assert!(storage
        .update_meta(&k, &meta("v2"), &trace())
        .await
        .unwrap());

    let (front_meta, _) = storage.front().lookup_complete(&k).unwrap();
    let (back_meta, _) = storage.back().lookup(&k, &trace()).await.unwrap().unwrap();
    assert_eq!(
        (tag_of(&front_meta), tag_of(&back_meta)),
        ("v2".into(), "v2".into())
    );
    let (found, hit) = lookup(storage, &k).await.unwrap();
    assert_eq!((tag_of(&found), tier_of(&hit)), ("v2".into(), Tier::Front));

    assert!(!storage
        .update_meta(&key("/none"), &meta("x"), &trace())
        .await
        .unwrap());
}

// === consistency between the tiers ===

#[tokio::test]
async fn a_change_during_a_promotion_stops_it() {
    let storage = roomy();
    let k = key("/changing");

    // A purge while a back hit is read: the front must not get the purged object.
    write(storage.back(), &k, "old", b"aaaabbbb", 4)
        .await
        .unwrap();
    let (_, mut hit) = lookup(storage, &k).await.unwrap();
    assert!(is_promoting(&hit));
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "aaaa");
    assert!(storage
        .purge(&k.to_compact(), PurgeType::Invalidation, &trace())
        .await
        .unwrap());
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "bbbb");
    assert!(hit.read_body().await.unwrap().is_none());
    assert!(!in_front(storage, &k));
    assert!(lookup(storage, &k).await.is_none());

    // A new version written while the old one is read: the front keeps the new one.
    write(storage.back(), &k, "old", b"oldold", 3)
        .await
        .unwrap();
    let (_, mut hit) = lookup(storage, &k).await.unwrap();
    assert!(is_promoting(&hit));
    write(storage, &k, "new", b"newnew", 3).await.unwrap();
    assert_eq!(read_all(&mut hit).await.unwrap(), b"oldold");
    let (found, mut hit) = lookup(storage, &k).await.unwrap();
    assert_eq!((tag_of(&found), tier_of(&hit)), ("new".into(), Tier::Front));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"newnew");
}

#[tokio::test]
async fn readers_follow_a_write_in_progress_through_the_back_store() {
    let storage = roomy();
    let k = key("/stream");
    write(storage, &k, "v1", b"old body", 4).await.unwrap();

    let mut miss = storage
        .get_miss_handler(&k, &meta("v2"), &trace())
        .await
        .unwrap();
    // The new version is visible at once, though the front has the complete old one.
    let (found, mut hit) = lookup(storage, &k).await.unwrap();
    assert_eq!((tag_of(&found), tier_of(&hit)), ("v2".into(), Tier::Back));
    assert!(!is_promoting(&hit) && !hit.can_seek());
    let tag = miss.streaming_write_tag().unwrap().to_vec();
    let (_, own) = storage
        .lookup_streaming_write(&k, Some(&tag), &trace())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tier_of(&own), Tier::Back);

    miss.write_body(Bytes::from_static(b"new "), false)
        .await
        .unwrap();
    assert_eq!(hit.read_body().await.unwrap().unwrap(), "new ");
    let next = tokio::spawn(async move {
        let chunk = hit.read_body().await.unwrap();
        (chunk, hit)
    });
    miss.write_body(Bytes::from_static(b"body"), true)
        .await
        .unwrap();
    let (chunk, mut hit) = next.await.unwrap();
    assert_eq!(chunk.unwrap(), "body");
    miss.finish().await.unwrap();
    assert!(hit.read_body().await.unwrap().is_none());

    // Once finished, the new version is served by the front.
    let (found, mut hit) = lookup(storage, &k).await.unwrap();
    assert_eq!((tag_of(&found), tier_of(&hit)), ("v2".into(), Tier::Front));
    assert_eq!(read_all(&mut hit).await.unwrap(), b"new body");
    assert!(storage
        .lookup_streaming_write(&k, Some(&tag), &trace())
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_reads_and_purges_keep_the_tiers_consistent() {
    const KEYS: usize = 12;
    const FRONT: usize = 16 << 10;
    let options = TieredOptions::new(FRONT).max_front_object_bytes(FRONT);
    let storage = tiered(mem(usize::MAX), mem(usize::MAX), options);
    let expected = |i: usize| body(1500 + i * 100, i as u8);

    let tasks: Vec<_> = (0..8)
        .map(|task| {
            tokio::spawn(async move {
                for round in 0..200 {
                    let i = (round * 7 + task * 3) % KEYS;
                    let k = key(&format!("/k{i}"));
                    match (round + task) % 6 {
                        0 => {
                            // Concurrent writes of a key may fail (purged meanwhile): fine.
                            let _ = write(storage, &k, "c", &expected(i), 512).await;
                        }
                        5 => {
                            let compact = k.to_compact();
                            let trace = trace();
                            let purge = storage.purge(&compact, PurgeType::Invalidation, &trace);
                            purge.await.unwrap();
                        }
                        _ => {
                            if let Some((_, mut hit)) = lookup(storage, &k).await {
                                // A read may fail when the write it follows fails; it never
                                // returns a wrong or truncated body.
                                if let Ok(read) = read_all(&mut hit).await {
                                    assert_eq!(read, expected(i));
                                }
                            }
                        }
                    }
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    assert!(
        storage.front_bytes() <= FRONT && storage.front().used_bytes() <= FRONT,
        "policy {} ({} items), front {} ({} items)",
        storage.front_bytes(),
        storage.front_items(),
        storage.front().used_bytes(),
        storage.front().len()
    );
    for i in 0..KEYS {
        let k = key(&format!("/k{i}"));
        if let Some((_, mut front)) = storage.front().lookup_complete(&k) {
            let (_, mut back) = storage.back().lookup(&k, &trace()).await.unwrap().unwrap();
            assert_eq!(read_all(&mut front).await.unwrap(), expected(i));
            assert_eq!(read_all(&mut back).await.unwrap(), expected(i));
        }
        if let Some((tier, read)) = read_hit(storage, &k).await {
            assert_eq!(read, expected(i), "{tier:?}");
        }
    }
    let stats = storage.stats();
    assert!(stats.front_hits > 0 && stats.back_hits > 0, "{stats:?}");
}

// === with HttpCache ===

#[tokio::test]
async fn http_cache_misses_and_hits_through_both_tiers() {
    use crate::{HitStatus, HttpCache};

    let storage = roomy();
    let fresh = || {
        let now = SystemTime::now();
        let header = ResponseHeader::build(200, None).unwrap();
        CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header)
    };
    let request = || {
        let mut cache = HttpCache::new();
        cache.enable(storage, None, None, None, None);
        cache.set_cache_key(key("/http"));
        cache
    };

    let mut miss = request();
    assert!(miss.cache_lookup().await.unwrap().is_none());
    miss.cache_miss();
    miss.set_cache_meta(fresh());
    miss.set_miss_handler().await.unwrap();
    let handler = miss.miss_handler().unwrap();
    handler
        .write_body(Bytes::from_static(b"cached body"), true)
        .await
        .unwrap();
    miss.finish_miss_handler().await.unwrap();

    // A hit from the front, then one from the back once the front lost its copy.
    for expected in [Tier::Front, Tier::Back] {
        let mut hit = request();
        let (found, handler) = hit.cache_lookup().await.unwrap().unwrap();
        assert_eq!(tier_of(&handler), expected);
        hit.cache_found(found, handler, HitStatus::Fresh);
        assert_eq!(read_all(hit.hit_handler()).await.unwrap(), b"cached body");
        hit.finish_hit_handler().await.unwrap();
        let compact = key("/http").to_compact();
        storage.drop_front(&compact, &trace()).await;
    }
}
