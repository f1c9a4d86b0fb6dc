//! The admission and eviction policy of the front tier: a [`TinyUfo`] keyed by the combined
//! hash, weighing objects in units of 1 KiB.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use tinyufo::TinyUfo;

use crate::key::{CacheHashKey, CompactCacheKey};

/// The unit of the policy's weights.
const UNIT: usize = 1024;

/// What the policy keeps of a front object: its key, to purge it, and its size.
struct Entry {
    key: CompactCacheKey,
    size: usize,
}

/// The front's policy.
///
/// Hits ([`touch`](Self::touch)) are lock-free and never add an object. Admissions and
/// removals are serialized by a mutex, so that the byte count stays exact: they happen once
/// per write or promotion, not per hit.
pub(super) struct FrontPolicy {
    ufo: TinyUfo<u128, Arc<Entry>>,
    changes: Mutex<()>,
    bytes: AtomicUsize,
    items: AtomicUsize,
}

impl FrontPolicy {
    /// A policy holding up to `limit` bytes, sized for about `items` objects.
    pub(super) fn new(limit: usize, items: usize) -> Self {
        FrontPolicy {
            ufo: TinyUfo::new((limit / UNIT).max(1), items),
            changes: Mutex::new(()),
            bytes: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
        }
    }

    /// The bytes of the objects held.
    pub(super) fn bytes(&self) -> usize {
        self.bytes.load(Relaxed)
    }

    /// The number of objects held.
    pub(super) fn items(&self) -> usize {
        self.items.load(Relaxed)
    }

    /// Counts a hit on `key` if the policy holds it.
    pub(super) fn touch<K: CacheHashKey>(&self, key: &K) {
        let _ = self.ufo.get(&id(key));
    }

    /// Offers `key`, `size` bytes, and returns the keys that leave, `key` itself if it is
    /// turned away (TinyLFU: the one object it would push out was offered more often).
    pub(super) fn admit(&self, key: &CompactCacheKey, size: usize) -> Vec<CompactCacheKey> {
        let id = id(key);
        let weight = u16::try_from(size.div_ceil(UNIT).max(1)).unwrap_or(u16::MAX);
        let entry = Arc::new(Entry {
            key: key.clone(),
            size,
        });
        let _changes = self.changes.lock();
        self.forget(id);
        self.bytes.fetch_add(size, Relaxed);
        self.items.fetch_add(1, Relaxed);
        let left = self.ufo.put(id, entry, weight);
        left.into_iter()
            .map(|kv| {
                self.bytes.fetch_sub(kv.data.size, Relaxed);
                self.items.fetch_sub(1, Relaxed);
                kv.data.key.clone()
            })
            .collect()
    }

    /// Stops tracking `key`.
    pub(super) fn remove(&self, key: &CompactCacheKey) {
        let _changes = self.changes.lock();
        self.forget(id(key));
    }

    fn forget(&self, id: u128) {
        if let Some(old) = self.ufo.remove(&id) {
            self.bytes.fetch_sub(old.size, Relaxed);
            self.items.fetch_sub(1, Relaxed);
        }
    }
}

impl fmt::Debug for FrontPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrontPolicy")
            .field("bytes", &self.bytes())
            .field("items", &self.items())
            .finish_non_exhaustive()
    }
}

fn id<K: CacheHashKey>(key: &K) -> u128 {
    u128::from_be_bytes(key.combined_bin())
}
