//! Where the items live: a `papaya` hash map from key hash to [`Bucket`]. Lookups are
//! lock-free (an epoch guard, no lock, no write to shared memory but the use counter).
//!
//! Each operation is atomic in the map and reports exactly what it took out, so the caller can
//! keep the total weight exact under concurrency: whoever removes an item from the map (or
//! displaces it) subtracts its weight, once.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

use crate::KV;

/// Uses beyond this are not counted: an item in the main queue survives at most this many
/// passes, which bounds the work of one eviction.
const MAX_USES: u8 = 3;

/// An item and its bookkeeping.
pub(crate) struct Bucket<T> {
    pub(crate) data: T,
    /// Tells this item apart from earlier and later items of the same key, so that a queue
    /// entry left behind by a removed item never acts on its successor.
    pub(crate) id: u64,
    pub(crate) weight: u16,
    /// Reads since the item was put, capped at [`MAX_USES`].
    pub(crate) uses: Uses,
}

/// A use counter that saturates at [`MAX_USES`].
pub(crate) struct Uses(AtomicU8);

// === impl Uses ===

impl Uses {
    pub(crate) fn new(uses: u8) -> Self {
        Uses(AtomicU8::new(uses.min(MAX_USES)))
    }

    pub(crate) fn get(&self) -> u8 {
        self.0.load(Relaxed)
    }

    /// Counts one more use and returns the new count. A plain load first keeps hot items from
    /// bouncing their cache line between readers once they are at the cap.
    pub(crate) fn increment(&self) -> u8 {
        let mut current = self.0.load(Relaxed);
        while current < MAX_USES {
            match self
                .0
                .compare_exchange_weak(current, current + 1, Relaxed, Relaxed)
            {
                Ok(_) => return current + 1,
                Err(actual) => current = actual,
            }
        }
        current
    }

    /// Takes one use away and returns the count before, or 0 if there was none to take.
    pub(crate) fn decrement(&self) -> u8 {
        let mut current = self.0.load(Relaxed);
        while current > 0 {
            match self
                .0
                .compare_exchange_weak(current, current - 1, Relaxed, Relaxed)
            {
                Ok(_) => return current,
                Err(actual) => current = actual,
            }
        }
        0
    }
}

/// Keys are hashes already: the map uses their bits as they are.
#[derive(Clone, Copy, Default)]
pub(crate) struct PassThrough;

/// The hasher of [`PassThrough`]: it keeps the last `u64` written.
#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys reach this map; mix any other input in rather than drop it.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// The map.
pub(crate) struct Store<T>(papaya::HashMap<u64, Bucket<T>, PassThrough>);

// === impl Store ===

impl<T: Clone + Send + Sync + 'static> Store<T> {
    /// A map with room for `items` before it grows.
    pub(crate) fn new(items: usize) -> Self {
        Store(papaya::HashMap::with_capacity_and_hasher(
            items,
            PassThrough,
        ))
    }

    /// Applies `f` to the item of `key`, if there is one, without taking any lock.
    pub(crate) fn with<V>(&self, key: u64, f: impl FnOnce(&Bucket<T>) -> V) -> Option<V> {
        self.0.pin().get(&key).map(f)
    }

    /// Puts `bucket` under `key` and returns the weight of the item it displaced (0 if the key
    /// was free).
    pub(crate) fn replace(&self, key: u64, bucket: Bucket<T>) -> usize {
        self.0
            .pin()
            .insert(key, bucket)
            .map_or(0, |old| usize::from(old.weight))
    }

    /// Removes the item of `key` if it is the one numbered `id`.
    pub(crate) fn remove_if(&self, key: u64, id: u64) -> Option<KV<T>> {
        match self.0.pin().remove_if(&key, |_, b| b.id == id) {
            Ok(Some((_, b))) => Some(b.to_kv(key)),
            _ => None,
        }
    }

    /// Removes whatever item `key` has.
    pub(crate) fn remove(&self, key: u64) -> Option<KV<T>> {
        self.0.pin().remove(&key).map(|b| b.to_kv(key))
    }

    /// The number of items.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

// === impl Bucket ===

impl<T: Clone> Bucket<T> {
    fn to_kv(&self, key: u64) -> KV<T> {
        KV {
            key,
            data: self.data.clone(),
            weight: self.weight,
        }
    }
}
