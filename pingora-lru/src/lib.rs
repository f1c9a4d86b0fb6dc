//! A sharded, weight-limited LRU for cache eviction, compact in memory.
//!
//! [`Lru<T, N>`](Lru) splits its items over `N` shards by key (`key % N`), each an [`LruUnit`]
//! behind its own read-write lock, so threads working on different shards do not wait for each
//! other. Keys are `u64`s, normally hashes of the real keys. Every item has a weight (its size
//! in bytes, say); the LRU does not evict on its own: [`admit`](Lru::admit) adds, and
//! [`evict_to_limit`](Lru::evict_to_limit) then removes least recently used items until the total
//! weight (and, optionally, the item count) is back within the limits, and returns them.
//!
//! Within a shard, items sit in a doubly linked list stored in one `Vec` (see
//! [`linked_list`]): no allocation per item, no heap fragmentation, and O(1) promotion.
//!
//! ```
//! use pingora_lru::Lru;
//!
//! // One shard (so the order is exact), at most 100 units of weight, room for 16 items.
//! let lru = Lru::<&str, 1>::with_capacity(100, 16);
//! lru.admit(1, "one", 60);
//! lru.admit(2, "two", 30);
//! lru.promote(1); // key 1 is now the most recently used
//! lru.admit(3, "three", 40); // 130 > 100
//!
//! let evicted = lru.evict_to_limit();
//! assert_eq!(evicted, [("two", 30)]);
//! assert_eq!((lru.len(), lru.weight()), (2, 100));
//! ```
//!
//! # Eviction order
//!
//! Each shard is an exact LRU. Across shards the order is approximate: each eviction takes the
//! least recently used item of the longer of two shards picked at random ("power of two
//! choices"), which keeps the shards about the same length.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod chain;
pub mod linked_list;
mod unit;

pub use unit::{LruUnit, LruUnitIter};

use std::cell::Cell;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use parking_lot::RwLock;

/// A sharded LRU of `u64`-keyed items of type `T` with a total weight limit, over `N` shards.
///
/// See the [crate documentation](crate) for an overview. All methods take `&self`; share the
/// LRU between threads with an `Arc`.
///
/// The figures are relaxed atomics. [`weight`](Self::weight), read on every
/// [`evict_to_limit`](Self::evict_to_limit), is a shared counter; everything else is counted per
/// shard, by the shard's lock holder without read-modify-writes, and the totals
/// ([`len`](Self::len), [`evicted_len`](Self::evicted_len),
/// [`evicted_weight`](Self::evicted_weight)) add up the `N` shards. Each figure is exact once
/// concurrent calls have returned; one read while other threads write may be older than
/// another.
pub struct Lru<T, const N: usize> {
    shards: [Shard<T>; N],
    totals: Totals,
    weight_limit: usize,
    len_watermark: Option<usize>,
}

/// The total weight, on a cache line of its own.
#[repr(align(128))]
#[derive(Default)]
struct Totals {
    weight: AtomicUsize,
}

// === impl Totals ===

impl Totals {
    /// Counts a change of a shard's weight from `old` to `new`. Called with the shard's lock
    /// held, so for any one key an addition is counted before the subtraction that undoes it
    /// and the total never wraps below zero.
    fn change(&self, old: usize, new: usize) {
        if new > old {
            self.weight.fetch_add(new - old, Relaxed);
        } else if old > new {
            self.weight.fetch_sub(old - new, Relaxed);
        }
    }
}

/// One shard and lock-free copies of its figures. Aligned so that shards used by different
/// threads do not share a cache line.
#[repr(align(128))]
struct Shard<T> {
    unit: RwLock<LruUnit<T>>,
    /// Copies of `unit.len()` and `unit.used_weight()`.
    len: AtomicUsize,
    weight: AtomicUsize,
    /// Items evicted from this shard so far, and their total weight.
    evicted_len: AtomicUsize,
    evicted_weight: AtomicUsize,
}

/// Stores `new` in a counter that only lock holders write, returning the old value: no
/// read-modify-write needed.
fn replace(counter: &AtomicUsize, new: usize) -> usize {
    let old = counter.load(Relaxed);
    counter.store(new, Relaxed);
    old
}

// === impl Shard ===

impl<T> Shard<T> {
    fn new(capacity: usize) -> Self {
        Shard {
            unit: RwLock::new(LruUnit::with_capacity(capacity)),
            len: AtomicUsize::new(0),
            weight: AtomicUsize::new(0),
            evicted_len: AtomicUsize::new(0),
            evicted_weight: AtomicUsize::new(0),
        }
    }

    /// Runs `f` on the unit under the write lock, then updates the copies of its figures
    /// and `totals`. Only writers holding the lock store to the copies, so plain stores
    /// suffice.
    fn write<R>(&self, totals: &Totals, f: impl FnOnce(&mut LruUnit<T>) -> R) -> R {
        let mut unit = self.unit.write();
        let result = f(&mut unit);
        replace(&self.len, unit.len());
        let weight = unit.used_weight();
        let old_weight = replace(&self.weight, weight);
        totals.change(old_weight, weight);
        result
    }

    /// Evicts the least recently used item and counts it.
    fn evict(&self, totals: &Totals) -> Option<(T, usize)> {
        self.write(totals, |unit| {
            let evicted = unit.evict();
            if let Some((_, weight)) = &evicted {
                // Only lock holders write these: no read-modify-write needed.
                let len = self.evicted_len.load(Relaxed);
                self.evicted_len.store(len + 1, Relaxed);
                let total = self.evicted_weight.load(Relaxed);
                self.evicted_weight.store(total + weight, Relaxed);
            }
            evicted
        })
    }
}

// === impl Lru ===

impl<T, const N: usize> Lru<T, N> {
    /// Creates an LRU that keeps the total weight within `weight_limit`, with room for
    /// `capacity` items *per shard* before the shards allocate. `N` must be at least 1 (a
    /// compile-time check).
    pub fn with_capacity(weight_limit: usize, capacity: usize) -> Self {
        Self::with_capacity_and_watermark(weight_limit, capacity, None)
    }

    /// Like [`with_capacity`](Self::with_capacity), and with `len_watermark`,
    /// [`evict_to_limit`](Self::evict_to_limit) also keeps the number of items within
    /// `len_watermark`.
    pub fn with_capacity_and_watermark(
        weight_limit: usize,
        capacity: usize,
        len_watermark: Option<usize>,
    ) -> Self {
        const { assert!(N > 0, "an Lru needs at least one shard") };
        Lru {
            shards: std::array::from_fn(|_| Shard::new(capacity)),
            totals: Totals::default(),
            weight_limit,
            len_watermark,
        }
    }

    fn shard_of(key: u64) -> usize {
        (key % N as u64) as usize
    }

    fn shard(&self, key: u64) -> &Shard<T> {
        &self.shards[Self::shard_of(key)]
    }

    fn sum(&self, figure: impl Fn(&Shard<T>) -> &AtomicUsize) -> usize {
        self.shards
            .iter()
            .map(|shard| figure(shard).load(Relaxed))
            .sum()
    }

    /// Adds `key` as the most recently used item, with `data` and `weight` (a weight of 0
    /// counts as 1, so every item takes part in eviction). If `key` is already present, its
    /// data and weight are replaced and it moves to the front.
    ///
    /// Returns the index of the shard holding `key`. This does not evict: call
    /// [`evict_to_limit`](Self::evict_to_limit) afterwards.
    pub fn admit(&self, key: u64, data: T, weight: usize) -> usize {
        let index = Self::shard_of(key);
        let replaced =
            self.shards[index].write(&self.totals, |unit| unit.admit(key, data, weight.max(1)));
        // Any replaced data is dropped here, after the lock is released.
        drop(replaced);
        index
    }

    /// Adds `delta` to the weight of `key`, at most up to `max_weight` (a weight already above
    /// `max_weight` is lowered to it), and moves `key` to the front.
    ///
    /// Returns the new weight, or 0 if `key` is absent.
    pub fn increment_weight(&self, key: u64, delta: usize, max_weight: Option<usize>) -> usize {
        self.shard(key)
            .write(&self.totals, |unit| {
                unit.increment_weight(key, delta, max_weight)
            })
            .map_or(0, |(_, new)| new)
    }

    /// Moves `key` to the front of its shard. Returns `false` if `key` is absent.
    pub fn promote(&self, key: u64) -> bool {
        self.shard(key).unit.write().promote(key)
    }

    /// Moves `key` to the front of its shard unless it already is among the `top` most recently
    /// used items there. Returns `false` if `key` is absent.
    ///
    /// The check takes only the read lock, so it saves the write lock when a few very hot keys
    /// are promoted over and over; but it walks up to `top` items. For large shards with many
    /// keys of similar heat, plain [`promote`](Self::promote) is usually faster.
    pub fn promote_top_n(&self, key: u64, top: usize) -> bool {
        let shard = self.shard(key);
        if shard.unit.read().is_in_top_n(key, top) {
            return true;
        }
        shard.unit.write().promote(key)
    }

    /// Evicts the least recently used item of the shard `shard % N` and returns it with its
    /// weight, or `None` if that shard is empty.
    pub fn evict_shard(&self, shard: u64) -> Option<(T, usize)> {
        self.evict_at(Self::shard_of(shard))
    }

    fn evict_at(&self, index: usize) -> Option<(T, usize)> {
        self.shards[index].evict(&self.totals)
    }

    /// Evicts least recently used items until the total weight is within the weight limit and
    /// the item count within the watermark (if one was set), and returns them with their
    /// weights, in the order they were evicted.
    ///
    /// Each item comes from the longer of two shards picked at random (if that shard turns out
    /// empty, the next non-empty one). A call evicts at most the excess it sees when it starts,
    /// so concurrent callers share the work instead of each evicting the whole excess.
    pub fn evict_to_limit(&self) -> Vec<(T, usize)> {
        self.evict_to_limit_with(next_random)
    }

    /// [`evict_to_limit`](Self::evict_to_limit) with the random source given.
    fn evict_to_limit_with(&self, mut random: impl FnMut() -> u64) -> Vec<(T, usize)> {
        let mut evicted = Vec::new();
        let watermark = self.len_watermark.unwrap_or(usize::MAX);
        let mut excess_weight = self.weight().saturating_sub(self.weight_limit);
        let mut excess_len = match self.len_watermark {
            Some(watermark) => self.len().saturating_sub(watermark),
            None => 0,
        };
        // The totals were just read; after that they are read again only while this call
        // still has some of the excess it saw to evict, to stop early if concurrent callers
        // evicted it already. The usual call, one eviction, reads them once.
        let mut fresh = true;
        while (excess_weight > 0 && (fresh || self.weight() > self.weight_limit))
            || (excess_len > 0 && (fresh || self.len() > watermark))
        {
            fresh = false;
            let Some((data, weight)) = self.evict_some_shard(&mut random) else {
                break;
            };
            excess_weight = excess_weight.saturating_sub(weight);
            excess_len = excess_len.saturating_sub(1);
            if evicted.capacity() == 0 {
                // Usually one item is evicted: allocate for exactly that, once.
                evicted.reserve_exact(1 + usize::from(excess_weight > 0 || excess_len > 0));
            }
            evicted.push((data, weight));
        }
        evicted
    }

    /// Evicts one item from the longer of two shards chosen by `random`, trying the following
    /// shards in turn if it is empty. `None` if every shard is empty.
    fn evict_some_shard(&self, random: &mut impl FnMut() -> u64) -> Option<(T, usize)> {
        if N == 1 {
            return self.evict_at(0);
        }
        let random = random();
        let first = (random as u32 as usize) % N;
        let second = ((random >> 32) as usize) % N;
        let start = if self.shard_len(second) > self.shard_len(first) {
            second
        } else {
            first
        };
        (0..N).find_map(|step| self.evict_at((start + step) % N))
    }

    /// Removes `key` and returns its data and weight. This is not counted as an eviction.
    pub fn remove(&self, key: u64) -> Option<(T, usize)> {
        self.shard(key).write(&self.totals, |unit| unit.remove(key))
    }

    /// Adds `key` as the least recently used item of its shard, with its weight as given (0
    /// included). Returns `false`, changing nothing, if `key` is already present.
    ///
    /// Adding the items of a saved LRU in most-to-least recently used order with this rebuilds
    /// its order.
    pub fn insert_tail(&self, key: u64, data: T, weight: usize) -> bool {
        self.shard(key)
            .write(&self.totals, |unit| unit.insert_tail(key, data, weight))
    }

    /// Whether `key` is present, without changing the order.
    pub fn peek(&self, key: u64) -> bool {
        self.shard(key).unit.read().peek(key).is_some()
    }

    /// The weight of `key`, without changing the order.
    pub fn peek_weight(&self, key: u64) -> Option<usize> {
        self.shard(key).unit.read().peek_weight(key)
    }

    /// A copy of the least recently used item of shard `shard` and its weight, without removing
    /// it; `None` if the shard is empty or `shard >= N`.
    pub fn peek_lru(&self, shard: usize) -> Option<(T, usize)>
    where
        T: Clone,
    {
        let unit = self.shards.get(shard)?.unit.read();
        unit.peek_lru().map(|(data, weight)| (data.clone(), weight))
    }

    /// The total weight of the items.
    pub fn weight(&self) -> usize {
        self.totals.weight.load(Relaxed)
    }

    /// The total weight of the items evicted so far.
    pub fn evicted_weight(&self) -> usize {
        self.sum(|shard| &shard.evicted_weight)
    }

    /// The number of items evicted so far.
    pub fn evicted_len(&self) -> usize {
        self.sum(|shard| &shard.evicted_len)
    }

    /// The number of items (the sum of the shards' counts).
    pub fn len(&self) -> usize {
        self.sum(|shard| &shard.len)
    }

    /// Whether the LRU holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` with each item of shard `shard` and its weight, from most to least recently
    /// used. The shard's read lock is held meanwhile, so `f` must not call back into this LRU's
    /// writing methods for that shard.
    ///
    /// # Panics
    ///
    /// If `shard >= N`.
    pub fn iter_for_each<F>(&self, shard: usize, f: F)
    where
        F: FnMut((&T, usize)),
    {
        self.shards[shard].unit.read().iter().for_each(f);
    }

    /// The number of shards, `N`.
    pub const fn shards(&self) -> usize {
        N
    }

    /// The number of items in shard `shard`.
    ///
    /// # Panics
    ///
    /// If `shard >= N`.
    pub fn shard_len(&self, shard: usize) -> usize {
        self.shards[shard].len.load(Relaxed)
    }

    /// The total weight of the items in shard `shard`.
    ///
    /// # Panics
    ///
    /// If `shard >= N`.
    pub fn shard_weight(&self, shard: usize) -> usize {
        self.shards[shard].weight.load(Relaxed)
    }
}

impl<T, const N: usize> fmt::Debug for Lru<T, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lru")
            .field("shards", &N)
            .field("len", &self.len())
            .field("weight", &self.weight())
            .field("weight_limit", &self.weight_limit)
            .field("len_watermark", &self.len_watermark)
            .finish_non_exhaustive()
    }
}

/// A per-thread pseudo-random number (SplitMix64), seeded once per thread from a random
/// hasher state. Good enough to spread evictions over shards; not for anything secret.
fn next_random() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::BuildHasher;
            foldhash::fast::RandomState::default().hash_one(std::thread::current().id())
        });
    }
    STATE.with(|state| {
        let s = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(s);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

#[cfg(test)]
mod tests;
