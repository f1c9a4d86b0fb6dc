//! The replacement policy: S3-FIFO's two queues decide what leaves the cache, TinyLFU's sketch
//! decides whether a newcomer may take its place.
//!
//! New items enter the *small* queue, which holds about a tenth of the weight. When room is
//! needed and the small queue is over its share, its oldest entry leaves: to the *main* queue
//! if the item was read while it waited, out of the cache otherwise. Most items are never
//! read again, and they go quickly. The main queue is a FIFO with second chances:
//! its oldest item goes back to the end while it has uses left, losing one each time, and
//! leaves when it has none. Neither queue is ever reordered by a read, which is why reads need
//! no lock: a read only bumps the item's use counter.
//!
//! S3-FIFO remembers recently evicted keys in a ghost queue; here the frequency sketch plays
//! that part. When a put of a new key evicts exactly one item, the two are compared by how
//! often their keys were put recently, and the less popular one stays out.

use std::sync::atomic::{
    AtomicIsize, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Relaxed},
};

use crossbeam_queue::SegQueue;

use crate::sketch::FrequencySketch;
use crate::store::{Bucket, Store, ID_BITS};
use crate::KV;

/// An item leaves the small queue for the main one once it has more uses than this: one read
/// while it waited is enough (requiring two cost 1-2 points of hit ratio in the zipf bench).
const PROMOTE_AFTER_USES: u8 = 0;

/// A queue entry: the key hash, and the item's id and weight packed in one word.
#[derive(Clone, Copy)]
struct Entry {
    key: u64,
    tag: u64,
}

// === impl Entry ===

impl Entry {
    fn new(key: u64, id: u64, weight: u16) -> Self {
        Entry {
            key,
            tag: (id << 16) | u64::from(weight),
        }
    }

    fn id(self) -> u64 {
        self.tag >> 16
    }

    fn weight(self) -> usize {
        (self.tag & 0xffff) as usize
    }
}

/// The queues, the weights and the sketch.
pub(crate) struct Policy {
    /// The most weight the store may hold once a put returns.
    limit: usize,
    /// The small queue's share of `limit`.
    small_limit: usize,
    small: SegQueue<Entry>,
    main: SegQueue<Entry>,
    /// The weight of the entries in the small queue (removed items count until their entry is
    /// popped): it only steers which queue to evict from.
    small_weight: AtomicUsize,
    /// The weight of the items in the store, kept exact by charging each change of the store
    /// to the thread that made it. Signed, because a removal may be counted just before the
    /// insertion it undoes.
    weight: AtomicIsize,
    /// Ids for new items, of [`ID_BITS`] bits: wrapping after 2^46 puts would at worst let a
    /// very old queue entry act on a newer item of the same key.
    next_id: AtomicU64,
    pub(crate) sketch: FrequencySketch,
}

// === impl Policy ===

impl Policy {
    pub(crate) fn new(limit: usize, sketch: FrequencySketch) -> Self {
        Policy {
            limit,
            small_limit: (limit / 10).max(1),
            small: SegQueue::new(),
            main: SegQueue::new(),
            small_weight: AtomicUsize::new(0),
            weight: AtomicIsize::new(0),
            next_id: AtomicU64::new(0),
            sketch,
        }
    }

    /// The weight of the items in the cache.
    pub(crate) fn weight(&self) -> usize {
        usize::try_from(self.weight.load(Relaxed)).unwrap_or(0)
    }

    /// Puts an item and returns what left the cache for it, possibly the item itself.
    /// `force` skips the admission test.
    pub(crate) fn admit<T>(
        &self,
        store: &Store<T>,
        key: u64,
        data: T,
        weight: u16,
        force: bool,
    ) -> Vec<KV<T>>
    where
        T: Clone + Send + Sync + 'static,
    {
        let weight = weight.max(1);
        let frequency = self.sketch.increment(key);
        if usize::from(weight) > self.limit {
            // It can never fit; whatever the key held before is out of date now.
            let mut out: Vec<KV<T>> = self.remove(store, key).into_iter().collect();
            out.push(KV { key, data, weight });
            return out;
        }
        if let Some(uses) = store.with(key, |b| b.increment_uses()) {
            // A new value for a resident key: it keeps its uses but queues again as new.
            self.insert(store, key, data, weight, uses);
            return self.evict_to_limit(store, 0);
        }
        let mut evicted = self.evict_to_limit(store, usize::from(weight));
        let rejected =
            !force && evicted.len() == 1 && self.sketch.estimate(evicted[0].key) > frequency;
        if rejected {
            // The victim was wanted more than the newcomer: it goes back, the newcomer out.
            let victim = std::mem::replace(&mut evicted[0], KV { key, data, weight });
            self.insert(store, victim.key, victim.data, victim.weight, 0);
        } else {
            self.insert(store, key, data, weight, 0);
        }
        evicted
    }

    /// Removes the item of `key` and returns it.
    pub(crate) fn remove<T>(&self, store: &Store<T>, key: u64) -> Option<KV<T>>
    where
        T: Clone + Send + Sync + 'static,
    {
        // Its queue entry stays behind and is dropped when it reaches the head.
        let removed = store.remove(key)?;
        self.add_weight(0, usize::from(removed.weight));
        Some(removed)
    }

    /// Stores a new item at the end of the small queue.
    fn insert<T>(&self, store: &Store<T>, key: u64, data: T, weight: u16, uses: u8)
    where
        T: Clone + Send + Sync + 'static,
    {
        let id = self.next_id.fetch_add(1, Relaxed) & ((1 << ID_BITS) - 1);
        let bucket = Bucket::new(data, id, weight, uses);
        let displaced = store.replace(key, bucket);
        self.add_weight(usize::from(weight), displaced);
        // The entry goes in after the item, so an evictor that pops it finds the item.
        self.small.push(Entry::new(key, id, weight));
        self.small_weight.fetch_add(usize::from(weight), Relaxed);
    }

    fn add_weight(&self, added: usize, removed: usize) {
        let delta = to_isize(added) - to_isize(removed);
        self.weight.fetch_add(delta, AcqRel);
    }

    /// Evicts until `extra` more weight fits under the limit, or nothing is left to evict.
    fn evict_to_limit<T>(&self, store: &Store<T>, extra: usize) -> Vec<KV<T>>
    where
        T: Clone + Send + Sync + 'static,
    {
        let mut evicted = Vec::new();
        while self.weight() + extra > self.limit {
            match self.evict_one(store) {
                Some(kv) => {
                    self.add_weight(0, usize::from(kv.weight));
                    evicted.push(kv);
                }
                None => break,
            }
        }
        evicted
    }

    fn evict_one<T>(&self, store: &Store<T>) -> Option<KV<T>>
    where
        T: Clone + Send + Sync + 'static,
    {
        if self.small_weight.load(Relaxed) >= self.small_limit {
            if let Some(kv) = self.evict_from_small(store) {
                return Some(kv);
            }
        }
        // The small queue is within its share, or promoted everything it had.
        self.evict_from_main(store)
            .or_else(|| self.evict_from_small(store))
    }

    fn evict_from_small<T>(&self, store: &Store<T>) -> Option<KV<T>>
    where
        T: Clone + Send + Sync + 'static,
    {
        while let Some(entry) = self.small.pop() {
            self.small_weight.fetch_sub(entry.weight(), Relaxed);
            let uses = store.with(entry.key, |b| (b.id() == entry.id()).then(|| b.uses()));
            match uses.flatten() {
                // Gone, or replaced by a newer item with an entry of its own.
                None => continue,
                Some(uses) if uses > PROMOTE_AFTER_USES => self.main.push(entry),
                Some(_) => {
                    if let Some(kv) = store.remove_if(entry.key, entry.id()) {
                        return Some(kv);
                    }
                }
            }
        }
        None
    }

    fn evict_from_main<T>(&self, store: &Store<T>) -> Option<KV<T>>
    where
        T: Clone + Send + Sync + 'static,
    {
        while let Some(entry) = self.main.pop() {
            let used = store.with(entry.key, |b| {
                (b.id() == entry.id()).then(|| b.decrement_uses() > 0)
            });
            match used.flatten() {
                None => continue,
                // A second chance, paid for with one use.
                Some(true) => self.main.push(entry),
                Some(false) => {
                    if let Some(kv) = store.remove_if(entry.key, entry.id()) {
                        return Some(kv);
                    }
                }
            }
        }
        None
    }
}

fn to_isize(weight: usize) -> isize {
    isize::try_from(weight).unwrap_or(isize::MAX)
}
