//! In-memory caches of computed values, for a proxy's own lookups (a DNS answer, an
//! authorisation decision, a routing table row):
//!
//! * [`MemoryCache`]: a bounded map with a time to live per value, on [`tinyufo::TinyUfo`]
//!   (S3-FIFO eviction, TinyLFU admission, lock-free reads). Expired values can still be
//!   read, with their age, through [`MemoryCache::get_stale`].
//! * [`RTCache`]: a read-through cache on top of it. On a miss it calls a [`Lookup`] that you
//!   write; concurrent misses for one key share a single lookup, and its result (or its
//!   error) reaches all of them. It can serve a stale value while refreshing it in the
//!   background ([`RTCache::get_stale_while_update`]).
//!
//! `docs/user_guide/memory_cache.md` explains when to use which, and shows an `RTCache`
//! inside a `ProxyHttp` callback.
//!
//! ```
//! use std::time::Duration;
//! use pingora_memory_cache::{CacheStatus, MemoryCache};
//!
//! let cache: MemoryCache<&str, u32> = MemoryCache::new(1_000);
//! cache.put("answer", 42, Some(Duration::from_secs(60)));
//! assert_eq!(cache.get("answer"), (Some(42), CacheStatus::Hit));
//! assert_eq!(cache.get("other"), (None, CacheStatus::Miss));
//! ```
//!
//! # Time
//!
//! Expiry is measured with [`tokio::time::Instant`], which is the system's monotonic clock
//! except in tests that pause tokio's clock, where TTLs then follow the paused time.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::time::Duration;

use foldhash::fast::RandomState;
use tinyufo::TinyUfo;
use tokio::time::Instant;

mod read_through;

pub use read_through::{Lookup, MultiLookup, RTCache};

/// How a value was found, returned next to it by every read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// The value was in the cache and fresh.
    Hit,
    /// The key was not in the cache.
    Miss,
    /// The key was in the cache but its value had expired.
    Expired,
    /// The key was missing, and another caller's lookup filled it while this one waited.
    LockHit,
    /// The value had expired this long ago, and was returned anyway.
    Stale(Duration),
}

// === impl CacheStatus ===

impl CacheStatus {
    /// A short lower-case name: `hit`, `miss`, `expired`, `lock_hit` or `stale`.
    pub fn as_str(&self) -> &'static str {
        match self {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Expired => "expired",
            CacheStatus::LockHit => "lock_hit",
            CacheStatus::Stale(_) => "stale",
        }
    }

    /// Whether a value came from the cache: [`Hit`](Self::Hit), [`LockHit`](Self::LockHit)
    /// or [`Stale`](Self::Stale).
    pub fn is_hit(&self) -> bool {
        matches!(
            self,
            CacheStatus::Hit | CacheStatus::LockHit | CacheStatus::Stale(_)
        )
    }

    /// How long ago the value expired, if it is [`Stale`](Self::Stale).
    pub fn stale(&self) -> Option<Duration> {
        match self {
            CacheStatus::Stale(age) => Some(*age),
            _ => None,
        }
    }
}

/// A value and when it stops being fresh.
#[derive(Clone)]
struct Node<T> {
    value: T,
    expires: Option<Instant>,
}

// === impl Node ===

impl<T> Node<T> {
    fn new(value: T, ttl: Option<Duration>) -> Self {
        // A TTL too long to represent never expires.
        let expires = ttl.and_then(|ttl| Instant::now().checked_add(ttl));
        Node { value, expires }
    }

    /// How long ago the value expired, or `None` while it is fresh.
    fn expired_for(&self, now: Instant) -> Option<Duration> {
        self.expires
            .filter(|&at| at <= now)
            .map(|at| now.duration_since(at))
    }
}

/// A bounded in-memory cache of `T` values by `K` keys, each with an optional time to live.
///
/// It holds up to `size` values (see [`MemoryCache::new`]); when full, [`tinyufo`] picks what
/// to evict. Keys are not stored: the cache keeps a 64-bit hash of each, seeded at random per
/// cache. Every method takes `&self`; share the cache between threads and tasks behind an
/// `Arc` or in a `static`.
pub struct MemoryCache<K: Hash, T: Clone> {
    store: TinyUfo<u64, Node<T>>,
    hasher: RandomState,
    _key: PhantomData<fn(&K)>,
}

// === impl MemoryCache ===

impl<K: Hash, T: Clone + Send + Sync + 'static> MemoryCache<K, T> {
    /// A cache for up to `size` values.
    pub fn new(size: usize) -> Self {
        MemoryCache {
            store: TinyUfo::new(size, size),
            hasher: RandomState::default(),
            _key: PhantomData,
        }
    }

    /// The value of `key`, if the cache has it and it has not expired, and how it was found:
    /// [`Hit`](CacheStatus::Hit), [`Miss`](CacheStatus::Miss) or
    /// [`Expired`](CacheStatus::Expired) (the value is there but not returned).
    pub fn get<Q>(&self, key: &Q) -> (Option<T>, CacheStatus)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        match self.store.get(&self.hash(key)) {
            None => (None, CacheStatus::Miss),
            Some(node) if node.expired_for(Instant::now()).is_some() => {
                (None, CacheStatus::Expired)
            }
            Some(node) => (Some(node.value), CacheStatus::Hit),
        }
    }

    /// Like [`MemoryCache::get`], but returns an expired value too, with
    /// [`Stale`](CacheStatus::Stale)`(how long ago it expired)`.
    pub fn get_stale<Q>(&self, key: &Q) -> (Option<T>, CacheStatus)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        match self.store.get(&self.hash(key)) {
            None => (None, CacheStatus::Miss),
            Some(node) => {
                let status = node
                    .expired_for(Instant::now())
                    .map_or(CacheStatus::Hit, CacheStatus::Stale);
                (Some(node.value), status)
            }
        }
    }

    /// Stores `value` under `key`, fresh for `ttl` (forever if `None`).
    ///
    /// A zero TTL stores nothing and removes the key's current value, which would otherwise
    /// outlive the newer one. The cache may turn a new key away when it is full and the key
    /// is less popular than what it would replace (see [`tinyufo`]).
    pub fn put<Q>(&self, key: &Q, value: T, ttl: Option<Duration>)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.store_node(key, value, ttl, false);
    }

    /// Like [`MemoryCache::put`] but always admits the value: used for values that callers
    /// are waiting for.
    pub(crate) fn force_put<Q>(&self, key: &Q, value: T, ttl: Option<Duration>)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.store_node(key, value, ttl, true);
    }

    fn store_node<Q>(&self, key: &Q, value: T, ttl: Option<Duration>, force: bool)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        let hash = self.hash(key);
        if ttl == Some(Duration::ZERO) {
            self.store.remove(&hash);
            return;
        }
        let node = Node::new(value, ttl);
        // Every value weighs 1: the size limit counts values.
        if force {
            self.store.force_put(hash, node, 1);
        } else {
            self.store.put(hash, node, 1);
        }
    }

    /// Removes `key` and its value.
    pub fn remove<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.store.remove(&self.hash(key));
    }

    /// [`MemoryCache::get`] for each key, in order.
    pub fn multi_get<'a, I, Q>(&self, keys: I) -> Vec<(Option<T>, CacheStatus)>
    where
        I: Iterator<Item = &'a Q>,
        Q: Hash + ?Sized + 'a,
        K: Borrow<Q> + 'a,
    {
        keys.map(|key| self.get(key)).collect()
    }

    /// Like [`MemoryCache::multi_get`], and also returns the keys that got no value (missing
    /// or expired), in order.
    pub fn multi_get_with_miss<'a, I, Q>(
        &self,
        keys: I,
    ) -> (Vec<(Option<T>, CacheStatus)>, Vec<&'a Q>)
    where
        I: Iterator<Item = &'a Q>,
        Q: Hash + ?Sized + 'a,
        K: Borrow<Q> + 'a,
    {
        let mut missed = Vec::new();
        let results = keys
            .map(|key| {
                let result = self.get(key);
                if result.0.is_none() {
                    missed.push(key);
                }
                result
            })
            .collect();
        (results, missed)
    }

    /// The hash that stands for `key` in the store.
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }
}

impl<K: Hash, T: Clone> fmt::Debug for MemoryCache<K, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCache").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
