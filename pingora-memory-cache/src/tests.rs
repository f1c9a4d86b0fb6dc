//! `MemoryCache` on tokio's paused clock, so TTLs are exact and tests do not sleep.

use std::time::Duration;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

#[test]
fn put_get_remove() {
    let cache: MemoryCache<i32, i32> = MemoryCache::new(10);
    assert_eq!(cache.get(&1), (None, CacheStatus::Miss));
    cache.put(&1, 2, None);
    cache.put(&3, 4, None);
    assert_eq!(cache.get(&1), (Some(2), CacheStatus::Hit));
    cache.put(&1, 5, None);
    assert_eq!(cache.get(&1), (Some(5), CacheStatus::Hit));
    cache.remove(&1);
    assert_eq!(cache.get(&1), (None, CacheStatus::Miss));
    assert_eq!(cache.get(&3), (Some(4), CacheStatus::Hit));
}

#[test]
fn borrowed_keys() {
    let cache: MemoryCache<String, u8> = MemoryCache::new(10);
    cache.put("a", 1, None);
    assert_eq!(cache.get("a"), (Some(1), CacheStatus::Hit));
    assert_eq!(cache.get(&"a".to_string()), (Some(1), CacheStatus::Hit));
}

#[tokio::test(start_paused = true)]
async fn values_expire_after_their_ttl() {
    let cache: MemoryCache<i32, i32> = MemoryCache::new(10);
    cache.put(&1, 2, Some(SECOND));
    tokio::time::advance(SECOND - Duration::from_millis(1)).await;
    assert_eq!(cache.get(&1), (Some(2), CacheStatus::Hit));
    tokio::time::advance(Duration::from_millis(1)).await;
    assert_eq!(cache.get(&1), (None, CacheStatus::Expired));
    // A stale read still has it, with its age.
    tokio::time::advance(SECOND).await;
    assert_eq!(cache.get_stale(&1), (Some(2), CacheStatus::Stale(SECOND)));
    // A fresh value is a plain hit for a stale read too.
    cache.put(&1, 3, Some(SECOND));
    assert_eq!(cache.get_stale(&1), (Some(3), CacheStatus::Hit));
    assert_eq!(cache.get_stale(&9), (None, CacheStatus::Miss));
}

#[tokio::test(start_paused = true)]
async fn zero_ttl_stores_nothing_and_drops_the_old_value() {
    let cache: MemoryCache<i32, i32> = MemoryCache::new(10);
    cache.put(&1, 2, None);
    cache.put(&1, 3, Some(Duration::ZERO));
    assert_eq!(cache.get(&1), (None, CacheStatus::Miss));
    // A TTL too long to represent means no expiry.
    cache.put(&1, 4, Some(Duration::MAX));
    tokio::time::advance(Duration::from_secs(1_000_000)).await;
    assert_eq!(cache.get(&1), (Some(4), CacheStatus::Hit));
}

#[test]
fn size_bounds_the_number_of_values() {
    let cache: MemoryCache<i32, i32> = MemoryCache::new(2);
    cache.put(&1, 2, None);
    cache.put(&2, 4, None);
    cache.put(&3, 6, None);
    let resident = (1..=3).filter(|k| cache.get(k).0.is_some()).count();
    assert_eq!(resident, 2);
    // The oldest unread value made room, unless TinyLFU turned the newcomer away: the
    // sketch of so small a cache is 16 counters wide and its seed is random, so in about 1%
    // of runs keys 1 and 2 share all their counters and key 1 looks more frequent than 3.
    assert_eq!(cache.get(&2), (Some(4), CacheStatus::Hit));
    let one = cache.get(&1);
    let three = cache.get(&3);
    assert!(
        (one, three) == ((None, CacheStatus::Miss), (Some(6), CacheStatus::Hit))
            || (one, three) == ((Some(2), CacheStatus::Hit), (None, CacheStatus::Miss)),
        "key 1: {one:?}, key 3: {three:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn multi_get_reports_misses_in_order() {
    let cache: MemoryCache<i32, i32> = MemoryCache::new(10);
    cache.put(&1, 10, None);
    cache.put(&2, 20, Some(SECOND));
    cache.put(&3, 30, None);
    tokio::time::advance(SECOND).await;
    let keys = [1, 2, 3, 4];
    assert_eq!(
        cache.multi_get(keys.iter()),
        [
            (Some(10), CacheStatus::Hit),
            (None, CacheStatus::Expired),
            (Some(30), CacheStatus::Hit),
            (None, CacheStatus::Miss),
        ]
    );
    let (results, missed) = cache.multi_get_with_miss(keys.iter());
    assert_eq!(results.len(), 4);
    assert_eq!(missed, [&2, &4]);
}

#[test]
fn status_names() {
    let all = [
        (CacheStatus::Hit, "hit", true),
        (CacheStatus::Miss, "miss", false),
        (CacheStatus::Expired, "expired", false),
        (CacheStatus::LockHit, "lock_hit", true),
        (CacheStatus::Stale(SECOND), "stale", true),
    ];
    for (status, name, hit) in all {
        assert_eq!(status.as_str(), name);
        assert_eq!(status.is_hit(), hit, "{name}");
        assert_eq!(status.stale().is_some(), name == "stale");
    }
    assert_eq!(CacheStatus::Stale(SECOND).stale(), Some(SECOND));
}

#[test]
fn is_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<MemoryCache<String, Vec<u8>>>();
}
