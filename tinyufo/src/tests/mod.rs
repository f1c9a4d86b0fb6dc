//! Unit tests of the cache as a whole; `model.rs` checks it against a model with proptest.

use std::collections::HashSet;
use std::sync::Arc;

use foldhash::fast::SeedableRandomState;
use foldhash::SharedSeed;

use super::*;

mod model;

/// Both kinds (`new` and `new_compact`), with fixed seeds so that the sketch's collisions are the same on every run.
fn layouts<T: Clone + Send + Sync + 'static>(limit: usize, size: usize) -> [TinyUfo<u64, T>; 2] {
    let hasher = || SeedableRandomState::with_seed(5, SharedSeed::global_fixed());
    [
        TinyUfo::build(
            limit,
            Store::new(size),
            FrequencySketch::new(size, false, 11),
            hasher(),
        ),
        TinyUfo::build(
            limit,
            Store::new(size),
            FrequencySketch::new(size, true, 11),
            hasher(),
        ),
    ]
}

impl<K: Hash, T: Clone + Send + Sync + 'static> TinyUfo<K, T> {
    /// The user key among `keys` that an evicted item's hash came from.
    fn key_of<'a>(&self, kv: &KV<T>, keys: &'a [K]) -> &'a K {
        keys.iter()
            .find(|k| self.hasher.hash_one(k) == kv.key)
            .expect("the hash of one of the keys")
    }

    fn evicted_keys(&self, evicted: &[KV<T>], keys: &[K]) -> Vec<K>
    where
        K: Clone,
    {
        evicted
            .iter()
            .map(|kv| self.key_of(kv, keys).clone())
            .collect()
    }
}

const KEYS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

/// Limit 5, filled with 1 (weight 1), 2 (weight 2) and 3 (weight 2), all in the small queue.
fn filled() -> [TinyUfo<u64, u64>; 2] {
    let caches = layouts(5, 5);
    for cache in &caches {
        assert!(cache.put(1, 10, 1).is_empty());
        assert!(cache.put(2, 20, 2).is_empty());
        assert!(cache.put(3, 30, 2).is_empty());
        assert_eq!(cache.policy.weight(), 5);
    }
    caches
}

#[test]
fn small_queue_evicts_in_arrival_order() {
    for cache in filled() {
        let evicted = cache.put(4, 40, 3);
        assert_eq!(cache.evicted_keys(&evicted, &KEYS), [1, 2]);
        assert_eq!(evicted[0].data, 10);
        assert_eq!(evicted[1].weight, 2);
        assert_eq!(cache.get(&3), Some(30));
        assert_eq!(cache.get(&4), Some(40));
        assert_eq!(cache.policy.weight(), 5);
    }
}

#[test]
fn items_read_while_waiting_move_to_main_and_stay() {
    for cache in filled() {
        cache.get(&1);
        let evicted = cache.put(4, 40, 2);
        // 1 was read and moved to the main queue; 2 was next in line.
        assert_eq!(cache.evicted_keys(&evicted, &KEYS), [2]);
        // More new items pass through the small queue and leave; 1 stays.
        for key in 5..=8 {
            cache.put(key, key * 10, 1);
        }
        assert_eq!(cache.get(&1), Some(10));
        assert_eq!(cache.get(&2), None);
        assert!(cache.policy.weight() <= 5);
    }
}

#[test]
fn main_queue_gives_second_chances_per_use() {
    for cache in filled() {
        for key in [1, 2, 3] {
            cache.get(&key);
            cache.get(&key);
        }
        // All three move to main with 2 uses each; each pass takes one, 1 runs out first.
        let evicted = cache.put(4, 40, 1);
        assert_eq!(cache.evicted_keys(&evicted, &KEYS), [1]);
        // 4 waits in the small queue, unread: it goes before the main items when 1 returns.
        let evicted = cache.put(1, 10, 1);
        assert_eq!(cache.evicted_keys(&evicted, &KEYS), [4]);
        assert_eq!(cache.get(&1), Some(10));
        assert_eq!(cache.get(&2), Some(20));
        assert_eq!(cache.get(&3), Some(30));
    }
}

#[test]
fn admission_turns_away_a_less_popular_key() {
    for cache in filled() {
        // Putting them again makes their keys more popular than a new one.
        cache.put(1, 11, 1);
        cache.put(2, 21, 2);
        cache.put(3, 31, 2);
        let evicted = cache.put(4, 40, 1);
        // The victim (1) went back; the newcomer is what comes out.
        assert_eq!(
            evicted,
            [KV {
                key: evicted[0].key,
                data: 40,
                weight: 1
            }]
        );
        assert_eq!(cache.evicted_keys(&evicted, &KEYS), [4]);
        assert_eq!(cache.get(&4), None);
        assert_eq!(cache.get(&1), Some(11));
        assert_eq!(cache.policy.weight(), 5);
    }
}

#[test]
fn force_put_skips_admission() {
    for cache in filled() {
        cache.put(1, 11, 1);
        cache.put(2, 21, 2);
        cache.put(3, 31, 2);
        let evicted = cache.force_put(4, 40, 1);
        assert_eq!(cache.evicted_keys(&evicted, &KEYS), [1]);
        assert_eq!(evicted[0].data, 11);
        assert_eq!(cache.get(&4), Some(40));
        assert_eq!(cache.get(&1), None);
    }
}

#[test]
fn put_replaces_the_value_and_weight() {
    for cache in filled() {
        assert!(cache.put(2, 22, 1).is_empty());
        assert_eq!(cache.get(&2), Some(22));
        assert_eq!(cache.policy.weight(), 4);
        // Growing 3 to weight 4 needs room: the oldest small entries go.
        let evicted = cache.put(3, 33, 4);
        assert_eq!(cache.evicted_keys(&evicted, &KEYS), [1]);
        assert_eq!(cache.policy.weight(), 5);
        assert_eq!(cache.get(&3), Some(33));
    }
}

#[test]
fn weights_at_the_edges() {
    for cache in filled() {
        // Too heavy to ever fit: it is handed back, and the old value of its key goes too.
        let evicted = cache.put(2, 99, 6);
        assert_eq!(evicted.len(), 2);
        assert_eq!((evicted[0].data, evicted[1].data), (20, 99));
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.policy.weight(), 3);
        // Weight 0 counts as 1.
        assert!(cache.put(5, 50, 0).is_empty());
        assert_eq!(cache.policy.weight(), 4);
    }
    let [fast, compact] = layouts::<u64>(0, 0);
    for cache in [fast, compact] {
        assert_eq!(cache.put(1, 1, 1).len(), 1, "a zero limit holds nothing");
        assert_eq!(cache.get(&1), None);
    }
}

#[test]
fn remove_takes_out_value_and_weight() {
    for cache in filled() {
        assert_eq!(cache.remove(&1), Some(10));
        assert_eq!(cache.remove(&1), None);
        assert_eq!(cache.remove(&3), Some(30));
        assert_eq!(cache.get(&1), None);
        assert_eq!(cache.policy.weight(), 2);
        // The removed items' queue entries linger; they must not act on later items.
        assert!(cache.put(1, 12, 1).is_empty());
        assert!(cache.put(5, 50, 2).is_empty());
        let evicted = cache.put(6, 60, 2);
        assert_eq!(cache.evicted_keys(&evicted, &KEYS), [2]);
        assert_eq!(cache.get(&1), Some(12));
        assert_eq!(cache.policy.weight(), 5);
        assert_eq!(cache.store.len(), 3);
    }
}

#[test]
fn popular_keys_stay_while_one_off_keys_pass_through() {
    for cache in layouts::<u64>(100, 100) {
        let mut evicted = 0;
        // Every other request is for one of 50 popular keys, the rest for keys seen once.
        // A miss puts the key, as a read-through user would.
        for i in 0..20_000u64 {
            let key = if i % 2 == 0 { (i / 2) % 50 } else { 1_000 + i };
            if cache.get(&key).is_none() {
                evicted += cache.put(key, key, 1).len();
            }
        }
        assert_eq!(cache.policy.weight(), 100);
        assert_eq!(cache.store.len(), 100);
        assert!(evicted >= 9_000, "{evicted}");
        let resident = (0..50).filter(|k| cache.get(k).is_some()).count();
        assert!(resident >= 45, "{resident} of the 50 popular keys");
    }
}

#[test]
fn concurrent_reads_and_writes() {
    for cache in layouts::<u64>(500, 500) {
        let cache = Arc::new(cache);
        let threads: Vec<_> = (0..4u64)
            .map(|t| {
                let cache = cache.clone();
                std::thread::spawn(move || {
                    let mut seen = HashSet::new();
                    for i in 0..20_000u64 {
                        let key = (i * 7 + t * 13) % 2_000;
                        match cache.get(&key) {
                            // Every value put for a key is derived from it.
                            Some(value) => {
                                assert_eq!(value % 2_000, key);
                                seen.insert(key);
                            }
                            None => {
                                cache.put(key, key + 2_000 * t, 1);
                            }
                        }
                        if i % 97 == 0 {
                            cache.remove(&((key + 1) % 2_000));
                        }
                    }
                    seen.len()
                })
            })
            .collect();
        for thread in threads {
            assert!(thread.join().unwrap() > 0, "some reads hit");
        }
        // Quiet now: the accounting matches the store exactly.
        assert_eq!(cache.policy.weight(), cache.store.len(), "{cache:?}");
        // Puts racing at the very end may each have found room for one item.
        assert!(cache.policy.weight() <= 500 + 4);
    }
}

#[test]
fn bucket_packs_id_uses_and_weight() {
    let bucket = store::Bucket::new((), (1 << store::ID_BITS) - 1, u16::MAX, 0);
    assert_eq!(bucket.decrement_uses(), 0);
    assert_eq!(bucket.increment_uses(), 1);
    for _ in 0..10 {
        bucket.increment_uses();
    }
    assert_eq!(bucket.uses(), 3);
    assert_eq!(bucket.decrement_uses(), 3);
    assert_eq!(bucket.uses(), 2);
    // The use count never spills into its neighbours.
    assert_eq!(bucket.id(), (1 << store::ID_BITS) - 1);
    assert_eq!(bucket.weight(), u16::MAX);
    assert_eq!(store::Bucket::new((), 5, 1, 9).uses(), 3);
    assert_eq!(std::mem::size_of::<store::Bucket<u64>>(), 16);
}

#[test]
fn is_send_sync_and_debug() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TinyUfo<String, Vec<u8>>>();
    send_sync::<KV<Vec<u8>>>();
    let cache: TinyUfo<u64, u64> = TinyUfo::new_compact(10, 10);
    cache.put(1, 1, 3);
    assert_eq!(format!("{cache:?}"), "TinyUfo { weight: 3, .. }");
}
