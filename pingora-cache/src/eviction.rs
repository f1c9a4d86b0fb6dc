//! Eviction: which stored objects to drop when the cache is full.
//!
//! An [`EvictionManager`] tracks the keys of the stored objects and their sizes. Storage tells
//! it about new objects ([`admit`](EvictionManager::admit)), hits
//! ([`access`](EvictionManager::access)) and removals, and purges the keys it returns.
//!
//! Three managers:
//!
//! * [`lru::Manager`]: a sharded LRU on `pingora-lru`, for large caches and many threads;
//! * [`simple_lru::Manager`]: one LRU behind one lock, on the `lru` crate, for small caches;
//! * [`tinyufo::Manager`]: TinyUFO (S3-FIFO with TinyLFU admission), which keeps more of the
//!   popular objects than an LRU when most keys are seen once, but may turn a new object
//!   away at admission.
//!
//! The LRU managers can save their state to a directory and load it back
//! ([`save`](EvictionManager::save), [`load`](EvictionManager::load)), so a restarted
//! process with a persistent storage keeps its eviction order.
//!
//! ```
//! use std::time::SystemTime;
//! use pingora_cache::eviction::{lru, EvictionManager};
//! use pingora_cache::CacheKey;
//!
//! // 1,000 bytes at most, in one shard (an exact LRU) of up to 16 items before it allocates.
//! let manager = lru::Manager::<1>::with_capacity(1_000, 16);
//! let key = CacheKey::new("", "/big", "").to_compact();
//! assert!(manager.admit(key.clone(), 600, SystemTime::now()).is_empty());
//! let other = CacheKey::new("", "/bigger", "").to_compact();
//! // Over the limit: the least recently used object is returned for purging.
//! assert_eq!(manager.admit(other, 700, SystemTime::now()), [key]);
//! ```

use std::time::SystemTime;

use async_trait::async_trait;
use pingora_error::{Error, ErrorType, OrErr, Result};

use crate::key::{CacheHashKey, CompactCacheKey, HashBinary};

pub mod lru;
pub mod simple_lru;
pub mod tinyufo;

/// Tracks stored objects and decides which to evict.
///
/// The `fresh_until` arguments are the objects' freshness deadlines; the managers here do
/// not use them (a manager that prefers to evict stale objects could).
#[async_trait]
pub trait EvictionManager: Send + Sync {
    /// The total size of the tracked objects.
    fn total_size(&self) -> usize;

    /// The number of tracked objects.
    fn total_items(&self) -> usize;

    /// The total size of the objects evicted so far.
    fn evicted_size(&self) -> usize;

    /// The number of objects evicted so far.
    fn evicted_items(&self) -> usize;

    /// Tracks a new object (or updates one) of `size` bytes, and returns the keys to evict
    /// (the caller purges them from storage).
    fn admit(
        &self,
        item: CompactCacheKey,
        size: usize,
        fresh_until: SystemTime,
    ) -> Vec<CompactCacheKey>;

    /// Adds `delta` to the size of `item` (an object that grows while it is written), up to
    /// `max_weight` if given, and returns the keys to evict.
    fn increment_weight(
        &self,
        item: &CompactCacheKey,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Vec<CompactCacheKey>;

    /// Stops tracking `item` (purged or replaced); not counted as an eviction.
    fn remove(&self, item: &CompactCacheKey);

    /// Records a hit on `item`. Returns `true` if it was tracked; an untracked item (a stored
    /// object the manager lost track of, for example after a restart) is admitted and
    /// `false` returned.
    fn access(&self, item: &CompactCacheKey, size: usize, fresh_until: SystemTime) -> bool;

    /// Whether `item` is tracked, without counting a use.
    fn peek(&self, item: &CompactCacheKey) -> bool;

    /// Saves the state to files in the directory `dir_path` (created if missing).
    ///
    /// # Errors
    ///
    /// When the directory or a file cannot be written.
    async fn save(&self, dir_path: &str) -> Result<()>;

    /// Loads the state saved by [`save`](Self::save) in `dir_path`, adding the saved items
    /// after the tracked ones (nothing is evicted until the next admission).
    ///
    /// # Errors
    ///
    /// When a file cannot be read or is not a valid saved state.
    async fn load(&self, dir_path: &str) -> Result<()>;
}

/// The 64-bit key a manager files an item under: the first 8 bytes of its combined hash.
fn u64key(key: &CompactCacheKey) -> u64 {
    let hash = key.combined_bin();
    let mut first = [0; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first)
}

/// The saved state of a manager: a magic line, then one record per item, most recently used
/// first. A record is the weight (u64, little endian), the primary hash, a variance flag (one
/// byte, zero or one) and the variance hash if present, and the user tag's length (u32, little
/// endian) and bytes. Saved files are untrusted on load: every length is checked.
mod persist {
    use super::*;

    const MAGIC: &[u8] = b"pingora-cache eviction v1\n";

    /// The encoder of one saved file.
    pub(super) struct Writer(Vec<u8>);

    impl Writer {
        pub(super) fn new() -> Self {
            Writer(MAGIC.to_vec())
        }

        pub(super) fn push(&mut self, key: &CompactCacheKey, weight: usize) {
            let out = &mut self.0;
            out.extend_from_slice(&(weight as u64).to_le_bytes());
            out.extend_from_slice(&key.primary);
            match &key.variance {
                Some(variance) => {
                    out.push(1);
                    out.extend_from_slice(&variance[..]);
                }
                None => out.push(0),
            }
            let tag = key.user_tag.as_bytes();
            // A tag longer than 4 GiB cannot exist in practice; it would be cut, not panic.
            let len = u32::try_from(tag.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&tag[..len as usize]);
        }

        pub(super) fn into_bytes(self) -> Vec<u8> {
            self.0
        }
    }

    /// Decodes a saved file into its records, most recently used first.
    pub(super) fn decode(data: &[u8]) -> Result<Vec<(CompactCacheKey, usize)>> {
        let mut rest = data
            .strip_prefix(MAGIC)
            .ok_or_else(|| invalid("not a saved eviction state"))?;
        let mut records = Vec::new();
        while !rest.is_empty() {
            let weight = u64::from_le_bytes(take_array(&mut rest)?);
            let weight = usize::try_from(weight).map_err(|_| invalid("weight too large"))?;
            let primary: HashBinary = take_array(&mut rest)?;
            let variance = match take_array::<1>(&mut rest)? {
                [0] => None,
                [1] => Some(Box::new(take_array(&mut rest)?)),
                _ => return Err(invalid("bad variance flag")),
            };
            let len = u32::from_le_bytes(take_array(&mut rest)?) as usize;
            if rest.len() < len {
                return Err(invalid("truncated user tag"));
            }
            let (tag, tail) = rest.split_at(len);
            rest = tail;
            let user_tag = std::str::from_utf8(tag)
                .map_err(|_| invalid("user tag not UTF-8"))?
                .into();
            let key = CompactCacheKey {
                primary,
                variance,
                user_tag,
            };
            records.push((key, weight));
        }
        Ok(records)
    }

    fn take_array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N]> {
        let Some((head, tail)) = rest.split_first_chunk::<N>() else {
            return Err(invalid("truncated record"));
        };
        *rest = tail;
        Ok(*head)
    }

    fn invalid(what: &'static str) -> Box<Error> {
        Error::explain(ErrorType::FileReadError, what)
    }

    /// Writes `data` to `dir/name` through a temporary file, so a crash never leaves a half
    /// written state under the real name.
    pub(super) async fn write_file(dir: &str, name: &str, data: Vec<u8>) -> Result<()> {
        tokio::fs::create_dir_all(dir).await.or_err(
            ErrorType::FileWriteError,
            "creating the eviction state directory",
        )?;
        let path = std::path::Path::new(dir).join(name);
        let temp = path.with_extension("tmp");
        tokio::fs::write(&temp, data)
            .await
            .or_err(ErrorType::FileWriteError, "writing the eviction state")?;
        tokio::fs::rename(&temp, &path)
            .await
            .or_err(ErrorType::FileWriteError, "renaming the eviction state")
    }

    /// Reads and decodes `dir/name`.
    pub(super) async fn read_file(dir: &str, name: &str) -> Result<Vec<(CompactCacheKey, usize)>> {
        let path = std::path::Path::new(dir).join(name);
        let data = tokio::fs::read(&path)
            .await
            .or_err(ErrorType::FileReadError, "reading the eviction state")?;
        decode(&data)
    }
}

#[cfg(test)]
mod tests;
