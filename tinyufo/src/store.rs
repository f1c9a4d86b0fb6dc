//! Where the items live: a `papaya` hash map from key hash to [`Bucket`]. Lookups are
//! lock-free (an epoch guard, no lock, no write to shared memory but the use counter).
//!
//! Each operation is atomic in the map and reports exactly what it took out, so the caller can
//! keep the total weight exact under concurrency: whoever removes an item from the map (or
//! displaces it) subtracts its weight, once.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::KV;

/// Uses beyond this are not counted: an item in the main queue survives at most this many
/// passes, which bounds the work of one eviction.
const MAX_USES: u64 = 3;

/// Bits of [`Bucket::meta`]: the weight, then the use count, then the id.
const WEIGHT_BITS: u32 = 16;
const USES_SHIFT: u32 = WEIGHT_BITS;
const USES_BITS: u32 = 2;
const ID_SHIFT: u32 = USES_SHIFT + USES_BITS;
/// Ids are this many bits wide; the policy wraps its counter to fit.
pub(crate) const ID_BITS: u32 = u64::BITS - ID_SHIFT;

/// An item and its bookkeeping, packed in one word beside the value (8 bytes per item less
/// than separate fields with their padding).
pub(crate) struct Bucket<T> {
    pub(crate) data: T,
    /// The id (which tells this item apart from earlier and later items of the same key, so
    /// that a queue entry left behind by a removed item never acts on its successor), the
    /// reads since the item was put (capped at [`MAX_USES`]) and the weight. Only the use
    /// count changes after the item is stored.
    meta: AtomicU64,
}

// === impl Bucket ===

impl<T> Bucket<T> {
    pub(crate) fn new(data: T, id: u64, weight: u16, uses: u8) -> Self {
        let uses = u64::from(uses).min(MAX_USES);
        let id = id & ((1 << ID_BITS) - 1);
        Bucket {
            data,
            meta: AtomicU64::new((id << ID_SHIFT) | (uses << USES_SHIFT) | u64::from(weight)),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.meta.load(Relaxed) >> ID_SHIFT
    }

    pub(crate) fn weight(&self) -> u16 {
        // The low 16 bits are the weight.
        self.meta.load(Relaxed) as u16
    }

    pub(crate) fn uses(&self) -> u8 {
        uses_of(self.meta.load(Relaxed))
    }

    /// Counts one more use and returns the new count. Once at the cap, it only reads, so hot
    /// items do not bounce their cache line between readers.
    pub(crate) fn increment_uses(&self) -> u8 {
        let mut meta = self.meta.load(Relaxed);
        while u64::from(uses_of(meta)) < MAX_USES {
            match self
                .meta
                .compare_exchange_weak(meta, meta + (1 << USES_SHIFT), Relaxed, Relaxed)
            {
                Ok(_) => return uses_of(meta) + 1,
                Err(actual) => meta = actual,
            }
        }
        uses_of(meta)
    }

    /// Takes one use away and returns the count before, or 0 if there was none to take.
    pub(crate) fn decrement_uses(&self) -> u8 {
        let mut meta = self.meta.load(Relaxed);
        while uses_of(meta) > 0 {
            match self
                .meta
                .compare_exchange_weak(meta, meta - (1 << USES_SHIFT), Relaxed, Relaxed)
            {
                Ok(_) => return uses_of(meta),
                Err(actual) => meta = actual,
            }
        }
        0
    }
}

fn uses_of(meta: u64) -> u8 {
    ((meta >> USES_SHIFT) & ((1 << USES_BITS) - 1)) as u8
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
            .map_or(0, |old| usize::from(old.weight()))
    }

    /// Removes the item of `key` if it is the one numbered `id`.
    pub(crate) fn remove_if(&self, key: u64, id: u64) -> Option<KV<T>> {
        match self.0.pin().remove_if(&key, |_, b| b.id() == id) {
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

impl<T: Clone> Bucket<T> {
    fn to_kv(&self, key: u64) -> KV<T> {
        KV {
            key,
            data: self.data.clone(),
            weight: self.weight(),
        }
    }
}
