//! An eviction manager on [`tinyufo`]: S3-FIFO eviction with TinyLFU admission.
//!
//! # How it differs from the LRU managers
//!
//! * **Admission may refuse.** A new object whose key has been admitted less often (by the
//!   frequency sketch) than the object it would push out is turned away: [`admit`] then
//!   returns the new key itself among the keys to evict, and storage drops the object it just
//!   wrote. Keys seen once leave quickly, so a scan of one-off objects does not flush the
//!   popular ones.
//! * **Hits do not reorder.** [`access`] bumps a small use counter on the object, lock-free;
//!   an object that was used survives eviction rounds (up to three), one that was not goes.
//! * **Weights are coarse.** TinyUFO weighs items with a `u16`, so sizes are counted in
//!   *units* (1 KiB by default, [`Manager::with_weight_unit`]), rounded up; an object above
//!   65,535 units (64 MiB by default) weighs 65,535 units in the policy. The sizes reported
//!   ([`total_size`](EvictionManager::total_size)) are the exact byte sizes.
//! * **Evictions caused by a hit wait.** [`access`] on an untracked object admits it, which
//!   may evict others, but it cannot return them: they are returned by the next [`admit`] or
//!   [`increment_weight`](EvictionManager::increment_weight).
//! * **No persistence.** TinyUFO's state (queues, sketch) is not saved: [`save`] writes
//!   nothing and [`load`] loads nothing. Use an LRU manager for a persistent cache.
//!
//! [`admit`]: EvictionManager::admit
//! [`access`]: EvictionManager::access
//! [`save`]: EvictionManager::save
//! [`load`]: EvictionManager::load

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::Result;
use tinyufo::{TinyUfo, KV};

use super::EvictionManager;
use crate::key::{CacheHashKey, CompactCacheKey};

/// The default size unit of the policy's weights.
pub const DEFAULT_WEIGHT_UNIT: usize = 1024;

#[derive(Clone)]
struct Entry {
    key: CompactCacheKey,
    size: usize,
}

/// A TinyUFO eviction manager. See the [module docs](self) for how it differs from an LRU.
pub struct Manager {
    cache: TinyUfo<u128, Arc<Entry>>,
    unit: usize,
    used: AtomicUsize,
    items: AtomicUsize,
    evicted_size: AtomicUsize,
    evicted_items: AtomicUsize,
    // Keys evicted by `access`, which cannot return them.
    pending: Mutex<Vec<CompactCacheKey>>,
    // Replacing a key's entry (forget the old one, put the new one) happens under the key's
    // stripe, so two writers of one key never both count it.
    stripes: Box<[Mutex<()>]>,
}

/// The number of stripes serializing the writers of one key.
const STRIPES: usize = 64;

// === impl Manager ===

impl Manager {
    /// A manager keeping the total size within about `limit` bytes, prepared for about
    /// `estimated_items` objects, with weights in units of [`DEFAULT_WEIGHT_UNIT`] bytes.
    pub fn new(limit: usize, estimated_items: usize) -> Self {
        Self::with_weight_unit(limit, estimated_items, DEFAULT_WEIGHT_UNIT)
    }

    /// Like [`new`](Self::new), with weights in units of `unit` bytes (at least 1). A
    /// smaller unit counts small objects more precisely; a larger one lets larger objects be
    /// weighed exactly (up to 65,535 units).
    pub fn with_weight_unit(limit: usize, estimated_items: usize, unit: usize) -> Self {
        let unit = unit.max(1);
        Manager {
            cache: TinyUfo::new((limit / unit).max(1), estimated_items),
            unit,
            used: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
            evicted_size: AtomicUsize::new(0),
            evicted_items: AtomicUsize::new(0),
            pending: Mutex::new(Vec::new()),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn weight(&self, size: usize) -> u16 {
        u16::try_from(size.div_ceil(self.unit).max(1)).unwrap_or(u16::MAX)
    }

    fn id(key: &CompactCacheKey) -> u128 {
        u128::from_be_bytes(key.combined_bin())
    }

    fn stripe(&self, id: u128) -> &Mutex<()> {
        // The remainder is below STRIPES: it fits a usize.
        &self.stripes[(id % STRIPES as u128) as usize]
    }

    /// Forgets the tracked entry of `id`, if any, and returns it.
    fn forget(&self, id: u128) -> Option<Arc<Entry>> {
        let old = self.cache.remove(&id)?;
        self.used.fetch_sub(old.size, Relaxed);
        self.items.fetch_sub(1, Relaxed);
        Some(old)
    }

    /// Puts `entry` (replacing any entry of its key) and returns the keys that left.
    fn put(&self, entry: Entry, force: bool) -> Vec<CompactCacheKey> {
        let id = Self::id(&entry.key);
        let _writer = self.stripe(id).lock();
        self.forget(id);
        let weight = self.weight(entry.size);
        self.used.fetch_add(entry.size, Relaxed);
        self.items.fetch_add(1, Relaxed);
        let entry = Arc::new(entry);
        let left = if force {
            self.cache.force_put(id, entry, weight)
        } else {
            self.cache.put(id, entry, weight)
        };
        left.into_iter().map(|kv| self.evicted(kv)).collect()
    }

    fn evicted(&self, kv: KV<Arc<Entry>>) -> CompactCacheKey {
        let size = kv.data.size;
        self.used.fetch_sub(size, Relaxed);
        self.items.fetch_sub(1, Relaxed);
        self.evicted_size.fetch_add(size, Relaxed);
        self.evicted_items.fetch_add(1, Relaxed);
        kv.data.key.clone()
    }

    /// `evicted` plus the evictions held back by earlier hits.
    fn with_pending(&self, mut evicted: Vec<CompactCacheKey>) -> Vec<CompactCacheKey> {
        let mut pending = self.pending.lock();
        if !pending.is_empty() {
            evicted.append(&mut pending);
        }
        evicted
    }
}

#[async_trait]
impl EvictionManager for Manager {
    fn total_size(&self) -> usize {
        self.used.load(Relaxed)
    }

    fn total_items(&self) -> usize {
        self.items.load(Relaxed)
    }

    fn evicted_size(&self) -> usize {
        self.evicted_size.load(Relaxed)
    }

    fn evicted_items(&self) -> usize {
        self.evicted_items.load(Relaxed)
    }

    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        _fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey> {
        let evicted = self.put(Entry { key: item, size }, false);
        self.with_pending(evicted)
    }

    fn increment_weight(
        &self,
        item: &CompactCacheKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CompactCacheKey> {
        let evicted = match self.cache.peek(&Self::id(item)) {
            Some(entry) => {
                let size = entry
                    .size
                    .saturating_add(delta)
                    .min(max_weight.unwrap_or(usize::MAX));
                // The object is being written and already admitted: do not turn it away.
                let grown = Entry {
                    key: entry.key.clone(),
                    size,
                };
                self.put(grown, true)
            }
            None => Vec::new(),
        };
        self.with_pending(evicted)
    }

    fn remove(&self, item: &CompactCacheKey) {
        let id = Self::id(item);
        let _writer = self.stripe(id).lock();
        self.forget(id);
    }

    fn access(&self, item: &CompactCacheKey, size: usize, _fresh_until: SystemTime) -> bool {
        if self.cache.get(&Self::id(item)).is_some() {
            return true;
        }
        // A stored object the manager lost track of: track it again (it is stored already,
        // so it is not turned away).
        let key = item.clone();
        let evicted = self.put(Entry { key, size }, true);
        if !evicted.is_empty() {
            self.pending.lock().extend(evicted);
        }
        false
    }

    fn peek(&self, item: &CompactCacheKey) -> bool {
        self.cache.peek(&Self::id(item)).is_some()
    }

    async fn save(&self, _dir_path: &str) -> Result<()> {
        Ok(())
    }

    async fn load(&self, _dir_path: &str) -> Result<()> {
        Ok(())
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("unit", &self.unit)
            .field("used", &self.used)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}
