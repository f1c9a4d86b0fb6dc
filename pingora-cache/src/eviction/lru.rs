//! A sharded LRU eviction manager on [`pingora_lru`].

use std::fmt;
use std::time::SystemTime;

use async_trait::async_trait;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_lru::Lru;

use super::{persist, u64key, EvictionManager};
use crate::key::CompactCacheKey;

/// An LRU eviction manager split over `N` shards, each behind its own lock.
///
/// Each shard is an exact LRU; across shards eviction is approximate (see
/// [`pingora_lru`]). Persistence writes one file per shard (`lru.data.<shard>`), so saving
/// holds each shard's lock only while that shard is copied.
pub struct Manager<const N: usize>(Lru<CompactCacheKey, N>);

// === impl Manager ===

impl<const N: usize> Manager<N> {
    /// A manager keeping the total size within `limit` bytes, with room for `capacity` items
    /// per shard before the shards allocate.
    pub fn with_capacity(limit: usize, capacity: usize) -> Self {
        Manager(Lru::with_capacity(limit, capacity))
    }

    /// Like [`with_capacity`](Self::with_capacity), also keeping the number of items within
    /// `watermark` when given.
    pub fn with_capacity_and_watermark(
        limit: usize,
        capacity: usize,
        watermark: Option<usize>,
    ) -> Self {
        Manager(Lru::with_capacity_and_watermark(limit, capacity, watermark))
    }

    /// The number of shards, `N`.
    pub fn shards(&self) -> usize {
        N
    }

    /// The total size of the items in shard `shard` (0 if `shard >= N`).
    pub fn shard_weight(&self, shard: usize) -> usize {
        if shard < N {
            self.0.shard_weight(shard)
        } else {
            0
        }
    }

    /// The number of items in shard `shard` (0 if `shard >= N`).
    pub fn shard_len(&self, shard: usize) -> usize {
        if shard < N {
            self.0.shard_len(shard)
        } else {
            0
        }
    }

    /// The shard that holds `key`.
    pub fn shard_for_key(&self, key: &CompactCacheKey) -> usize {
        (u64key(key) % N as u64) as usize
    }

    /// The shard that holds `key` (Pingora's name).
    #[deprecated(note = "use `shard_for_key`")]
    pub fn get_shard_for_key(&self, key: &CompactCacheKey) -> usize {
        self.shard_for_key(key)
    }

    /// The least recently used key of shard `shard`, without removing it.
    pub fn peek_lru(&self, shard: usize) -> Option<CompactCacheKey> {
        self.0.peek_lru(shard).map(|(key, _weight)| key)
    }

    /// The tracked size of `item`, without counting a use.
    pub fn peek_weight(&self, item: &CompactCacheKey) -> Option<usize> {
        self.0.peek_weight(u64key(item))
    }

    /// The saved form of shard `shard`, most recently used first.
    ///
    /// # Errors
    ///
    /// When `shard >= N`.
    pub fn serialize_shard(&self, shard: usize) -> Result<Vec<u8>> {
        if shard >= N {
            return Error::e_explain(
                ErrorType::InternalError,
                format!("shard {shard} of an LRU with {N} shards"),
            );
        }
        let mut writer = persist::Writer::new();
        self.0
            .iter_for_each(shard, |(key, weight)| writer.push(key, weight));
        Ok(writer.into_bytes())
    }

    /// Adds the items of a saved shard (from [`serialize_shard`](Self::serialize_shard))
    /// after the tracked ones, keeping their order; each item goes to the shard of its key,
    /// so a state saved with another shard count loads too. Items already tracked are
    /// skipped.
    ///
    /// # Errors
    ///
    /// When `buf` is not a saved shard.
    pub fn deserialize_shard(&self, buf: &[u8]) -> Result<()> {
        for (key, weight) in persist::decode(buf)? {
            self.0.insert_tail(u64key(&key), key, weight);
        }
        Ok(())
    }

    fn evict(&self) -> Vec<CompactCacheKey> {
        self.0
            .evict_to_limit()
            .into_iter()
            .map(|(key, _weight)| key)
            .collect()
    }

    fn file_name(shard: usize) -> String {
        format!("lru.data.{shard}")
    }
}

#[async_trait]
impl<const N: usize> EvictionManager for Manager<N> {
    fn total_size(&self) -> usize {
        self.0.weight()
    }

    fn total_items(&self) -> usize {
        self.0.len()
    }

    fn evicted_size(&self) -> usize {
        self.0.evicted_weight()
    }

    fn evicted_items(&self) -> usize {
        self.0.evicted_len()
    }

    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        _fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey> {
        self.0.admit(u64key(&item), item, size);
        self.evict()
    }

    fn increment_weight(
        &self,
        item: &CompactCacheKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CompactCacheKey> {
        self.0.increment_weight(u64key(item), delta, max_weight);
        self.evict()
    }

    fn remove(&self, item: &CompactCacheKey) {
        self.0.remove(u64key(item));
    }

    fn access(&self, item: &CompactCacheKey, size: usize, _fresh_until: SystemTime) -> bool {
        let key = u64key(item);
        if self.0.promote(key) {
            return true;
        }
        self.0.admit(key, item.clone(), size);
        false
    }

    fn peek(&self, item: &CompactCacheKey) -> bool {
        self.0.peek(u64key(item))
    }

    async fn save(&self, dir_path: &str) -> Result<()> {
        for shard in 0..N {
            let data = self.serialize_shard(shard)?;
            persist::write_file(dir_path, &Self::file_name(shard), data).await?;
        }
        Ok(())
    }

    async fn load(&self, dir_path: &str) -> Result<()> {
        for shard in 0..N {
            let path = std::path::Path::new(dir_path).join(Self::file_name(shard));
            let data = tokio::fs::read(&path)
                .await
                .or_err(ErrorType::FileReadError, "reading the eviction state")?;
            self.deserialize_shard(&data)?;
        }
        Ok(())
    }
}

impl<const N: usize> fmt::Debug for Manager<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Manager").field(&self.0).finish()
    }
}
