//! A simple LRU eviction manager: one exact LRU behind one lock, on the `lru` crate.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::SystemTime;

use async_trait::async_trait;
use lru::LruCache;
use parking_lot::RwLock;
use pingora_error::Result;

use super::{persist, u64key, EvictionManager};
use crate::key::CompactCacheKey;

/// The name of the saved state's file.
const FILE_NAME: &str = "simple_lru.data";

struct Node {
    key: CompactCacheKey,
    size: usize,
}

/// An exact LRU eviction manager behind one lock: simple and precise, for caches that see
/// little contention (every hit takes the write lock). For many threads, prefer
/// [`lru::Manager`](super::lru::Manager).
pub struct Manager {
    lru: RwLock<LruCache<u64, Node>>,
    limit: usize,
    items_watermark: Option<usize>,
    used: AtomicUsize,
    items: AtomicUsize,
    evicted_size: AtomicUsize,
    evicted_items: AtomicUsize,
}

// === impl Manager ===

impl Manager {
    /// A manager keeping the total size within `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self::new_with_watermark(limit, None)
    }

    /// A manager keeping the total size within `limit` bytes and, when given, the number of
    /// items within `items_watermark`.
    pub fn new_with_watermark(limit: usize, items_watermark: Option<usize>) -> Self {
        Manager {
            lru: RwLock::new(LruCache::unbounded()),
            limit,
            items_watermark,
            used: AtomicUsize::new(0),
            items: AtomicUsize::new(0),
            evicted_size: AtomicUsize::new(0),
            evicted_items: AtomicUsize::new(0),
        }
    }

    /// Adds or replaces `key` as the most recently used item (or the least, with `at_tail`,
    /// when loading a saved state; an item already tracked is then left alone).
    fn insert(&self, key: CompactCacheKey, size: usize, at_tail: bool) {
        let id = u64key(&key);
        let node = Node { key, size };
        let mut lru = self.lru.write();
        if at_tail {
            if lru.contains(&id) {
                return;
            }
            lru.push(id, node);
            lru.demote(&id);
        } else if let Some((_, old)) = lru.push(id, node) {
            // `push` hands back the replaced node of the same key (or an evicted one, which
            // an unbounded cache never has).
            self.used.fetch_sub(old.size, Relaxed);
            self.items.fetch_sub(1, Relaxed);
        }
        self.used.fetch_add(size, Relaxed);
        self.items.fetch_add(1, Relaxed);
    }

    fn over_limit(&self) -> bool {
        self.used.load(Relaxed) > self.limit
            || self
                .items_watermark
                .is_some_and(|watermark| self.items.load(Relaxed) > watermark)
    }

    /// Evicts least recently used items until within the limits.
    fn evict(&self) -> Vec<CompactCacheKey> {
        let mut evicted = Vec::new();
        if !self.over_limit() {
            return evicted;
        }
        let mut lru = self.lru.write();
        while self.over_limit() {
            let Some((_, node)) = lru.pop_lru() else {
                break;
            };
            self.used.fetch_sub(node.size, Relaxed);
            self.items.fetch_sub(1, Relaxed);
            self.evicted_size.fetch_add(node.size, Relaxed);
            self.evicted_items.fetch_add(1, Relaxed);
            evicted.push(node.key);
        }
        evicted
    }

    /// The saved form of the state, most recently used first.
    pub fn serialize(&self) -> Vec<u8> {
        let mut writer = persist::Writer::new();
        for (_, node) in self.lru.read().iter() {
            writer.push(&node.key, node.size);
        }
        writer.into_bytes()
    }

    /// Adds the items of a saved state (from [`serialize`](Self::serialize)) after the
    /// tracked ones, keeping their order. Items already tracked are skipped.
    ///
    /// # Errors
    ///
    /// When `data` is not a saved state.
    pub fn deserialize(&self, data: &[u8]) -> Result<()> {
        for (key, size) in persist::decode(data)? {
            self.insert(key, size, true);
        }
        Ok(())
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
        self.insert(item, size, false);
        self.evict()
    }

    fn increment_weight(
        &self,
        item: &CompactCacheKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CompactCacheKey> {
        {
            let mut lru = self.lru.write();
            if let Some(node) = lru.get_mut(&u64key(item)) {
                let new = node
                    .size
                    .saturating_add(delta)
                    .min(max_weight.unwrap_or(usize::MAX));
                // `new` may be below the old size when `max_weight` is.
                self.used.fetch_add(new, Relaxed);
                self.used.fetch_sub(node.size, Relaxed);
                node.size = new;
            }
        }
        self.evict()
    }

    fn remove(&self, item: &CompactCacheKey) {
        if let Some(node) = self.lru.write().pop(&u64key(item)) {
            self.used.fetch_sub(node.size, Relaxed);
            self.items.fetch_sub(1, Relaxed);
        }
    }

    fn access(&self, item: &CompactCacheKey, size: usize, _fresh_until: SystemTime) -> bool {
        if self.lru.write().get(&u64key(item)).is_some() {
            return true;
        }
        self.insert(item.clone(), size, false);
        false
    }

    fn peek(&self, item: &CompactCacheKey) -> bool {
        self.lru.read().contains(&u64key(item))
    }

    async fn save(&self, dir_path: &str) -> Result<()> {
        persist::write_file(dir_path, FILE_NAME, self.serialize()).await
    }

    async fn load(&self, dir_path: &str) -> Result<()> {
        for (key, size) in persist::read_file(dir_path, FILE_NAME).await? {
            self.insert(key, size, true);
        }
        Ok(())
    }
}

impl fmt::Debug for Manager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Manager")
            .field("limit", &self.limit)
            .field("items_watermark", &self.items_watermark)
            .field("used", &self.used)
            .field("items", &self.items)
            .finish_non_exhaustive()
    }
}
