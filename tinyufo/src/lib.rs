//! A concurrent in-memory cache with a high hit ratio: [S3-FIFO](https://s3fifo.com/) decides
//! what to evict and [TinyLFU](https://arxiv.org/abs/1512.00727) decides what to admit.
//!
//! [`TinyUfo`] holds values up to a total *weight* (each put says how much an item weighs; use
//! 1 everywhere to bound the number of items). Reads take no lock and never move anything: a
//! read finds the item in a lock-free hash map and bumps a small use counter on it. Writes are
//! lock-free as well; they push to and pop from two lock-free queues.
//!
//! How it chooses (see the crate README for the figures):
//!
//! * a new item waits in a *small* FIFO queue that holds about a tenth of the weight; if it is
//!   read at least once before it reaches the head, it moves to the *main* queue, otherwise it
//!   is evicted. Most keys of a real workload are seen once, and they leave quickly;
//! * the main queue gives each item a second chance per use (up to three) before evicting it;
//! * a count–min sketch remembers how often each key was put recently. When a new key would
//!   push out a single item whose key has been put more often, the new key is turned away
//!   instead ([`TinyUfo::force_put`] skips this test).
//!
//! ```
//! use tinyufo::TinyUfo;
//!
//! // Up to 100 weight units; the sketch is sized for about 100 items.
//! let cache = TinyUfo::new(100, 100);
//! assert!(cache.put("key", "value", 1).is_empty()); // nothing had to leave
//! assert_eq!(cache.get(&"key"), Some("value"));
//! assert_eq!(cache.remove(&"key"), Some("value"));
//! assert_eq!(cache.get(&"key"), None);
//! ```
//!
//! Keys are not stored: the cache keeps a 64-bit hash of each (seeded at random per cache), so
//! two keys whose hashes collide share a slot, and evicted items report the hash ([`KV::key`]).
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use foldhash::fast::SeedableRandomState;

mod policy;
mod sketch;
mod store;
#[cfg(test)]
mod tests;

use policy::Policy;
use sketch::FrequencySketch;
use store::Store;

/// Estimates above this (a billion items) are taken as this: the map grows past it as needed,
/// and sizing structures for absurd estimates would only fail.
const MAX_PRESIZED: usize = 1 << 30;

/// An item that left the cache (or was turned away), as returned by [`TinyUfo::put`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KV<T> {
    /// The hash of the item's key: keys themselves are not stored.
    pub key: u64,
    /// The value.
    pub data: T,
    /// The weight it was put with.
    pub weight: u16,
}

/// A cache of `T` values by `K` keys, bounded by total weight. See the [crate docs](crate).
///
/// It is `Send` and `Sync` when `T` is: share it between threads behind an `Arc` or a
/// `static`, every method takes `&self`.
pub struct TinyUfo<K, T> {
    policy: Policy,
    store: Store<T>,
    hasher: SeedableRandomState,
    // The cache holds no `K`, it only hashes them.
    _key: PhantomData<fn(&K)>,
}

// === impl TinyUfo ===

impl<K: Hash, T: Clone + Send + Sync + 'static> TinyUfo<K, T> {
    /// A cache that holds up to `total_weight_limit` of weight, with room prepared for about
    /// `estimated_size` items (which also sizes the frequency sketch; when all weights are
    /// 1, pass the limit).
    pub fn new(total_weight_limit: usize, estimated_size: usize) -> Self {
        Self::build(
            total_weight_limit,
            Store::new(estimated_size.min(MAX_PRESIZED)),
            FrequencySketch::new(estimated_size.min(MAX_PRESIZED), false, rand_seed()),
            SeedableRandomState::random(),
        )
    }

    /// Like [`TinyUfo::new`] but with a frequency sketch a quarter of the size: 1 byte per
    /// estimated item instead of 4, for a fraction of a point of hit ratio.
    ///
    /// Reads are as fast as with [`TinyUfo::new`]. (Pingora's compact layout used sharded skip
    /// lists; here a skip-list node measured larger than an entry of the hash map, see the
    /// crate README.)
    pub fn new_compact(total_weight_limit: usize, estimated_size: usize) -> Self {
        Self::build(
            total_weight_limit,
            Store::new(estimated_size.min(MAX_PRESIZED)),
            FrequencySketch::new(estimated_size.min(MAX_PRESIZED), true, rand_seed()),
            SeedableRandomState::random(),
        )
    }

    fn build(
        limit: usize,
        store: Store<T>,
        sketch: FrequencySketch,
        hasher: SeedableRandomState,
    ) -> Self {
        TinyUfo {
            policy: Policy::new(limit, sketch),
            store,
            hasher,
            _key: PhantomData,
        }
    }

    /// The value of `key`, if the cache has it. Counts as a use of the item.
    pub fn get(&self, key: &K) -> Option<T> {
        let key = self.hasher.hash_one(key);
        self.store.with(key, |bucket| {
            bucket.increment_uses();
            bucket.data.clone()
        })
    }

    /// The value of `key`, if the cache has it, without counting a use (unlike
    /// [`get`](Self::get), this never changes what is evicted next).
    ///
    /// ```
    /// let cache = tinyufo::TinyUfo::new(10, 10);
    /// cache.put(1, "one", 1);
    /// assert_eq!(cache.peek(&1), Some("one"));
    /// assert_eq!(cache.peek(&2), None);
    /// ```
    pub fn peek(&self, key: &K) -> Option<T> {
        let key = self.hasher.hash_one(key);
        self.store.with(key, |bucket| bucket.data.clone())
    }

    /// Puts `data` under `key` with the given weight (0 counts as 1) and returns the items
    /// that left the cache to make room.
    ///
    /// The returned list may hold the new item itself: when its key is less popular than the
    /// one it would replace (the TinyLFU test), or when its weight alone is over the limit.
    /// A put on a key the cache has replaces the value.
    pub fn put(&self, key: K, data: T, weight: u16) -> Vec<KV<T>> {
        let key = self.hasher.hash_one(&key);
        self.policy.admit(&self.store, key, data, weight, false)
    }

    /// Like [`TinyUfo::put`], but the new item is admitted even when its key is less popular
    /// than the item it replaces.
    ///
    /// This is for a value that readers are waiting for (they missed, and one of them looked
    /// it up): turning it away would send them all to look it up again. The price is a
    /// slightly lower hit ratio (about half a percentage point on zipf workloads) when every
    /// put is forced.
    pub fn force_put(&self, key: K, data: T, weight: u16) -> Vec<KV<T>> {
        let key = self.hasher.hash_one(&key);
        self.policy.admit(&self.store, key, data, weight, true)
    }

    /// Removes `key` and returns its value, if the cache had it.
    pub fn remove(&self, key: &K) -> Option<T> {
        let key = self.hasher.hash_one(key);
        self.policy.remove(&self.store, key).map(|kv| kv.data)
    }
}

impl<K, T> fmt::Debug for TinyUfo<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TinyUfo")
            .field("weight", &self.policy.weight())
            .finish_non_exhaustive()
    }
}

/// A random seed for the sketch, drawn from the standard library's per-process randomness.
fn rand_seed() -> u64 {
    std::collections::hash_map::RandomState::new().hash_one(0u64)
}
