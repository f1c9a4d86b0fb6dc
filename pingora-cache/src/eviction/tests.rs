use std::time::{Duration, SystemTime};

use super::*;

fn key(name: &str) -> CompactCacheKey {
    crate::CacheKey::new("ns", name, "user").to_compact()
}

fn names(keys: &[CompactCacheKey], known: &[&str]) -> Vec<String> {
    keys.iter()
        .map(|k| {
            known
                .iter()
                .find(|name| key(name) == *k)
                .map_or_else(|| format!("unknown {k}"), |name| name.to_string())
        })
        .collect()
}

fn later() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

/// Managers with a 100-byte limit and one exact LRU order.
fn exact_lrus(watermark: Option<usize>) -> Vec<Box<dyn EvictionManager>> {
    vec![
        Box::new(lru::Manager::<1>::with_capacity_and_watermark(
            100, 8, watermark,
        )),
        Box::new(simple_lru::Manager::new_with_watermark(100, watermark)),
    ]
}

#[test]
fn admission_beyond_the_limit_evicts_the_least_recently_used() {
    for manager in exact_lrus(None) {
        assert!(manager.admit(key("a"), 40, later()).is_empty());
        assert!(manager.admit(key("b"), 40, later()).is_empty());
        // A hit on `a` makes `b` the least recently used.
        assert!(manager.access(&key("a"), 40, later()));
        let evicted = manager.admit(key("c"), 40, later());
        assert_eq!(names(&evicted, &["a", "b", "c"]), ["b"]);
        assert_eq!((manager.total_size(), manager.total_items()), (80, 2));
        assert_eq!((manager.evicted_size(), manager.evicted_items()), (40, 1));
        assert!(manager.peek(&key("a")) && !manager.peek(&key("b")));
        // Re-admitting a key updates its size instead of adding an item.
        assert!(manager.admit(key("c"), 50, later()).is_empty());
        assert_eq!((manager.total_size(), manager.total_items()), (90, 2));
    }
}

#[test]
fn remove_is_not_an_eviction_and_access_readmits() {
    for manager in exact_lrus(None) {
        manager.admit(key("a"), 30, later());
        manager.remove(&key("a"));
        manager.remove(&key("never"));
        assert!(!manager.peek(&key("a")));
        assert_eq!((manager.total_size(), manager.total_items()), (0, 0));
        assert_eq!(manager.evicted_items(), 0);
        // A hit on an untracked object tracks it again.
        assert!(!manager.access(&key("a"), 30, later()));
        assert!(manager.peek(&key("a")));
        assert_eq!(manager.total_size(), 30);
    }
}

#[test]
fn item_watermark_evicts_by_count() {
    for manager in exact_lrus(Some(2)) {
        manager.admit(key("a"), 1, later());
        manager.admit(key("b"), 1, later());
        let evicted = manager.admit(key("c"), 1, later());
        assert_eq!(names(&evicted, &["a", "b", "c"]), ["a"]);
        assert_eq!(manager.total_items(), 2);
    }
}

#[test]
fn growing_objects_evict_others() {
    for manager in exact_lrus(None) {
        manager.admit(key("a"), 10, later());
        manager.admit(key("b"), 10, later());
        // `b` grows to 95: over the limit, the oldest (`a`) goes.
        let evicted = manager.increment_weight(&key("b"), 85, None);
        assert_eq!(names(&evicted, &["a", "b"]), ["a"]);
        assert_eq!(manager.total_size(), 95);
        // Capped by max_weight.
        assert!(manager.increment_weight(&key("b"), 50, Some(99)).is_empty());
        assert_eq!(manager.total_size(), 99);
        assert!(manager.increment_weight(&key("x"), 5, None).is_empty());
    }
}

/// Saves `manager` after admitting `a`, `b`, `c` and hitting `a` (MRU order a, c, b), loads it
/// into `fresh`, and checks sizes and the eviction order of the copy.
async fn check_round_trip(manager: &dyn EvictionManager, fresh: &dyn EvictionManager) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("state");
    let dir = dir.to_str().unwrap();
    manager.admit(key("a"), 10, later());
    let mut with_variance = crate::CacheKey::new("ns", "b", "tag b");
    with_variance.set_variance_key([3; 16]);
    manager.admit(with_variance.to_compact(), 20, later());
    manager.admit(key("c"), 30, later());
    manager.access(&key("a"), 10, later());
    manager.save(dir).await.unwrap();

    fresh.load(dir).await.unwrap();
    assert_eq!((fresh.total_size(), fresh.total_items()), (60, 3));
    assert!(fresh.peek(&with_variance.to_compact()));
    // 60 + 61 > 100: the least recently used go first, `b` then `c`.
    let evicted = fresh.admit(key("d"), 61, later());
    assert_eq!(evicted, [with_variance.to_compact(), key("c")]);
    assert!(fresh.peek(&key("a")));
}

#[tokio::test]
async fn lru_save_load_round_trip() {
    let manager = lru::Manager::<1>::with_capacity(100, 8);
    let fresh = lru::Manager::<1>::with_capacity(100, 8);
    check_round_trip(&manager, &fresh).await;
    assert_eq!((manager.shards(), manager.shard_len(0)), (1, 3));
    assert_eq!(manager.shard_weight(0), 60);
    assert_eq!((manager.shard_len(1), manager.shard_weight(1)), (0, 0));
    assert!(manager.serialize_shard(1).is_err());
    // `b` (the key with a variance and its own tag) is the least recently used.
    let lru = manager.peek_lru(0).unwrap();
    assert_eq!((&*lru.user_tag, lru.variance.is_some()), ("tag b", true));
    assert_eq!(fresh.peek_lru(0), Some(key("a")));
    assert_eq!(manager.peek_weight(&key("a")), Some(10));
    assert_eq!(manager.peek_weight(&key("zz")), None);
}

#[tokio::test]
async fn simple_lru_save_load_round_trip() {
    check_round_trip(
        &simple_lru::Manager::new(100),
        &simple_lru::Manager::new(100),
    )
    .await;
}

#[tokio::test]
async fn sharded_lru_round_trip_keeps_every_item() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    let manager = lru::Manager::<8>::with_capacity(1 << 20, 64);
    for n in 0..200 {
        let k = key(&n.to_string());
        manager.admit(k.clone(), n + 1, later());
        assert_eq!(manager.peek_weight(&k), Some(n + 1));
        let shard = manager.shard_for_key(&k);
        // The newest item of its shard is the last to go: it is not the LRU unless alone.
        assert!(manager.peek_lru(shard) != Some(k) || manager.shard_len(shard) == 1);
    }
    manager.save(dir).await.unwrap();
    let fresh = lru::Manager::<8>::with_capacity(1 << 20, 64);
    fresh.load(dir).await.unwrap();
    assert_eq!(fresh.total_items(), 200);
    assert_eq!(fresh.total_size(), manager.total_size());
    for shard in 0..8 {
        assert_eq!(fresh.shard_len(shard), manager.shard_len(shard));
        assert_eq!(
            fresh.serialize_shard(shard).unwrap(),
            manager.serialize_shard(shard).unwrap()
        );
    }
    // Loading again adds nothing: tracked items are skipped.
    fresh.load(dir).await.unwrap();
    assert_eq!(fresh.total_items(), 200);
}

#[tokio::test]
async fn bad_saved_state_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let manager = simple_lru::Manager::new(100);
    assert!(manager.load(path).await.is_err(), "missing file");

    manager.admit(key("a"), 10, later());
    let good = manager.serialize();
    let fresh = simple_lru::Manager::new(100);
    for cut in 0..good.len() {
        // Every truncation but the empty record list is refused.
        let result = fresh.deserialize(&good[..cut]);
        let magic_only = cut == persist::Writer::new().into_bytes().len();
        assert_eq!(result.is_ok(), magic_only, "cut at {cut}");
    }
    let mut bad_flag = good.clone();
    bad_flag[persist::Writer::new().into_bytes().len() + 8 + 16] = 7;
    assert!(fresh.deserialize(&bad_flag).is_err());
    assert!(lru::Manager::<2>::with_capacity(10, 1)
        .deserialize_shard(b"garbage")
        .is_err());
    fresh.deserialize(&good).unwrap();
    assert!(fresh.peek(&key("a")));
}

#[test]
fn tinyufo_tracks_sizes_and_evicts_within_the_limit() {
    // 10 units of 1 byte.
    let manager = tinyufo::Manager::with_weight_unit(10, 16, 1);
    assert!(manager.admit(key("a"), 4, later()).is_empty());
    assert!(manager.access(&key("a"), 4, later()));
    assert!(manager.peek(&key("a")));
    assert_eq!((manager.total_size(), manager.total_items()), (4, 1));
    manager.remove(&key("a"));
    assert!(!manager.peek(&key("a")));
    assert_eq!((manager.total_size(), manager.total_items()), (0, 0));
    assert_eq!(manager.evicted_items(), 0);

    let mut evicted = Vec::new();
    for n in 0..50 {
        let name = n.to_string();
        evicted.extend(manager.admit(key(&name), 3, later()));
        assert!(manager.total_size() <= 10, "after {n}");
    }
    assert_eq!(manager.total_items() + evicted.len(), 50);
    assert_eq!(manager.evicted_items(), evicted.len());
    assert_eq!(manager.evicted_size(), 3 * evicted.len());
    for gone in &evicted {
        assert!(!manager.peek(gone));
    }
}

#[test]
fn tinyufo_keeps_popular_objects_through_a_scan() {
    let manager = tinyufo::Manager::with_weight_unit(100, 128, 1);
    let popular: Vec<_> = (0..10).map(|n| key(&format!("hot{n}"))).collect();
    for _ in 0..5 {
        for k in &popular {
            manager.admit(k.clone(), 5, later());
            manager.access(k, 5, later());
        }
    }
    let mut refused = 0;
    for n in 0..500 {
        let once = key(&format!("once{n}"));
        let evicted = manager.admit(once.clone(), 5, later());
        refused += usize::from(evicted.contains(&once));
        for k in &popular {
            manager.access(k, 5, later());
        }
    }
    let kept = popular.iter().filter(|k| manager.peek(k)).count();
    assert!(kept >= 9, "kept {kept} of 10 popular objects");
    // Some one-off objects were turned away at admission.
    assert!(refused > 0);
    assert!(manager.total_size() <= 100);
}

#[test]
fn tinyufo_weighs_in_units_and_holds_back_hit_evictions() {
    // 4 units of 1 KiB: 3000 bytes weigh 3 units, 1500 weigh 2.
    let manager = tinyufo::Manager::new(4096, 16);
    assert!(manager.admit(key("a"), 3000, later()).is_empty());
    let evicted = manager.access(&key("b"), 1500, later());
    assert!(!evicted);
    // The eviction the hit caused comes with the next admission.
    let evicted = manager.admit(key("c"), 1, later());
    assert!(!evicted.is_empty());
    assert!(manager.total_items() <= 2);
    // Growth of a tracked object; an untracked one is ignored.
    let before = manager.total_size();
    if manager.peek(&key("c")) {
        manager.increment_weight(&key("c"), 9, Some(5));
        assert_eq!(manager.total_size(), before + 4);
    }
    assert!(manager.increment_weight(&key("zz"), 1, None).is_empty());
}

#[tokio::test]
async fn tinyufo_persists_nothing() {
    let manager = tinyufo::Manager::new(1 << 20, 16);
    manager.admit(key("a"), 1, later());
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().to_str().unwrap();
    manager.save(dir).await.unwrap();
    let fresh = tinyufo::Manager::new(1 << 20, 16);
    fresh.load(dir).await.unwrap();
    assert_eq!(fresh.total_items(), 0);
}

#[test]
fn managers_are_shared_as_trait_objects() {
    fn shared<T: EvictionManager + Send + Sync + 'static>(
        manager: T,
    ) -> &'static dyn EvictionManager {
        Box::leak(Box::new(manager))
    }
    let managers = [
        shared(lru::Manager::<4>::with_capacity(10, 1)),
        shared(simple_lru::Manager::new(10)),
        shared(tinyufo::Manager::new(10, 1)),
    ];
    for manager in managers {
        assert_eq!(manager.total_items(), 0);
    }
}

#[test]
fn tinyufo_concurrent_writers_of_one_key_count_it_once() {
    let manager = std::sync::Arc::new(tinyufo::Manager::with_weight_unit(1 << 20, 1024, 1));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let manager = manager.clone();
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    manager.admit(key("same"), 100, SystemTime::now());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(manager.total_items(), 1);
    assert_eq!(manager.total_size(), 100);
}
