//! Sharded tables keyed by 128-bit hashes (such as a [`CacheKey`](crate::CacheKey)'s): a
//! hash map and an LRU, each split into `N` shards behind their own lock so that threads
//! working on different keys rarely wait for each other.
//!
//! The shard of a key is `key % N`: the keys are hashes already, evenly spread.

use std::collections::HashMap;
use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

fn shard_of(key: u128, shards: usize) -> usize {
    // `shards` is at least 1 (a table of 0 shards cannot be built), and the remainder is
    // below it, so it fits in a usize.
    (key % shards.max(1) as u128) as usize
}

/// A hash map of `V` keyed by `u128` hashes, in `N` locked shards.
#[derive(Debug)]
pub struct ConcurrentHashTable<V, const N: usize> {
    shards: [RwLock<HashMap<u128, V>>; N],
}

impl<V, const N: usize> ConcurrentHashTable<V, N> {
    /// An empty table.
    pub fn new() -> Self {
        ConcurrentHashTable {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        }
    }

    /// The shard holding `key`.
    pub fn get(&self, key: u128) -> &RwLock<HashMap<u128, V>> {
        &self.shards[shard_of(key, N)]
    }

    /// The shard at `idx`, if there is one.
    pub fn get_shard_at_idx(&self, idx: usize) -> Option<&RwLock<HashMap<u128, V>>> {
        self.shards.get(idx)
    }

    /// The shard holding `key`, locked for reading.
    pub fn read(&self, key: u128) -> RwLockReadGuard<'_, HashMap<u128, V>> {
        self.get(key).read()
    }

    /// The shard holding `key`, locked for writing.
    pub fn write(&self, key: u128) -> RwLockWriteGuard<'_, HashMap<u128, V>> {
        self.get(key).write()
    }

    /// Calls `f` on every entry, one shard (read-locked) at a time.
    pub fn for_each<F: FnMut(&u128, &V)>(&self, mut f: F) {
        for shard in &self.shards {
            for (key, value) in shard.read().iter() {
                f(key, value);
            }
        }
    }
}

impl<V, const N: usize> Default for ConcurrentHashTable<V, N> {
    fn default() -> Self {
        Self::new()
    }
}

/// An LRU of `V` keyed by `u128` hashes, in `N` locked shards of a fixed capacity each.
#[derive(Debug)]
pub struct ConcurrentLruCache<V, const N: usize> {
    shards: [RwLock<LruCache<u128, V>>; N],
}

impl<V, const N: usize> ConcurrentLruCache<V, N> {
    /// An empty cache whose shards hold at most `shard_capacity` entries each (at least 1).
    pub fn new(shard_capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(shard_capacity).unwrap_or(NonZeroUsize::MIN);
        ConcurrentLruCache {
            shards: std::array::from_fn(|_| RwLock::new(LruCache::new(capacity))),
        }
    }

    /// The shard holding `key`.
    pub fn get(&self, key: u128) -> &RwLock<LruCache<u128, V>> {
        &self.shards[shard_of(key, N)]
    }

    /// The shard holding `key`, locked for reading (an LRU read that updates the order,
    /// such as `LruCache::get`, needs [`write`](Self::write)).
    pub fn read(&self, key: u128) -> RwLockReadGuard<'_, LruCache<u128, V>> {
        self.get(key).read()
    }

    /// The shard holding `key`, locked for writing.
    pub fn write(&self, key: u128) -> RwLockWriteGuard<'_, LruCache<u128, V>> {
        self.get(key).write()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_land_in_their_shard() {
        let table: ConcurrentHashTable<&str, 4> = ConcurrentHashTable::new();
        table.write(1).insert(1, "one");
        table.write(6).insert(6, "six");
        assert_eq!(table.read(1).get(&1), Some(&"one"));
        assert_eq!(
            table.get_shard_at_idx(2).unwrap().read().get(&6),
            Some(&"six")
        );
        assert!(table.get_shard_at_idx(4).is_none());
        let mut seen = Vec::new();
        table.for_each(|k, v| seen.push((*k, *v)));
        seen.sort();
        assert_eq!(seen, [(1, "one"), (6, "six")]);
    }

    #[test]
    fn lru_shards_evict_their_oldest() {
        let cache: ConcurrentLruCache<u8, 2> = ConcurrentLruCache::new(2);
        for key in [0u128, 2, 4] {
            cache.write(key).put(key, key as u8);
        }
        // 0, 2 and 4 share shard 0 of capacity 2: 0 went.
        assert!(cache.read(0).peek(&0).is_none());
        assert_eq!(cache.write(4).get(&4), Some(&4));
        assert_eq!(ConcurrentLruCache::<u8, 1>::new(0).read(9).cap().get(), 1);
    }
}
