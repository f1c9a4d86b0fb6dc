//! [`MemCache`]: an in-memory [`Storage`], bounded by bytes, sharded, with streaming partial
//! writes.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use parking_lot::RwLock;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::ResponseHeader;
use tokio::sync::watch;

use crate::key::{CacheHashKey, CompactCacheKey, HashBinary};
use crate::storage::streaming_write::U64WriteId;
use crate::storage::{HitHandler, MissHandler, PurgeType, Storage};
use crate::trace::SpanHandle;
use crate::{CacheKey, CacheMeta};

mod handler;
#[cfg(test)]
mod tests;

use handler::{Body, Found, MemMissHandler, Progress};

/// The number of shards of a [`MemCache`].
const SHARDS: usize = 16;

/// The fixed part of the weight of a stored object: its metadata (the response header's maps
/// included), the slot and the index entries. Measured with `benches/memory.rs`: the weight
/// of a 1 KiB object with a 10-field head is within about 20% of the heap it holds.
const OBJECT_OVERHEAD: usize = 1024;

/// The weight of one header field beyond its name and value bytes (its entries in the
/// header map and in the case-preserving name list).
const FIELD_OVERHEAD: usize = 96;

/// The error type of a write refused because the cache is full.
const STORAGE_FULL: ErrorType = ErrorType::Custom("MemCacheFull");

/// An in-memory cache storage: sharded, bounded by bytes, with streaming partial writes and
/// seekable complete objects.
///
/// # Layout
///
/// Objects live in 16 shards, each behind its own `parking_lot` read-write lock. The
/// shard is chosen by the 128-bit *primary* hash of a key, and objects inside it are keyed by
/// the *combined* hash (primary and variance), so every variant of a primary key sits in the
/// same shard. Each shard keeps an index from a primary hash to its variants; purging a
/// primary key removes them all under one lock.
///
/// A slot (one combined hash) holds at most one complete object and any number of writes in
/// progress. A body is a list of [`Bytes`] chunks, kept as written: hits hand out slices
/// of them, never copies.
///
/// # Streaming partial writes
///
/// A write is visible to lookups from [`Storage::get_miss_handler`] on. Its readers follow
/// it through a `tokio::sync::watch` channel that carries the chunks written so far and the
/// state of the write. A reader ends cleanly only when the write finished; when the writer
/// fails (an error, or its handler dropped before [`HandleMiss::finish`]) every reader
/// gets an error, so a truncated body is never served as a whole one.
///
/// Reading a hit is cancel safe: a `read_body` future dropped before it completes has
/// consumed nothing, so the next call returns the same bytes.
///
/// # Memory bound
///
/// Every object is weighed as its body length plus an estimate of its metadata
/// ([`MemCache::object_size`]). Bytes are reserved as they are written, so writes in
/// progress count too and the total never exceeds the capacity: a write that would cross it
/// fails (nothing is stored). Eviction is not done here: an eviction manager, configured
/// with a limit below this capacity, admits the sizes returned by [`HandleMiss::finish`]
/// and purges what it evicts with [`PurgeType::Eviction`].
///
/// # Example
///
/// Storage methods take `&'static self`: keep the cache in a `static` or leak a box.
///
/// ```
/// use pingora_cache::MemCache;
///
/// let cache: &'static MemCache = Box::leak(Box::new(MemCache::with_capacity_bytes(64 << 20)));
/// assert_eq!(cache.used_bytes(), 0);
/// assert_eq!(cache.capacity_bytes(), 64 << 20);
/// ```
///
/// [`Bytes`]: bytes::Bytes
/// [`HandleMiss::finish`]: crate::storage::HandleMiss::finish
#[derive(Debug)]
pub struct MemCache {
    shards: Box<[RwLock<Shard>]>,
    used: AtomicUsize,
    capacity: usize,
    next_write_id: AtomicU64,
}

/// One shard: slots by combined hash, and the variants of each primary hash.
#[derive(Debug, Default)]
struct Shard {
    slots: HashMap<u128, Slot>,
    /// Primary hash -> combined hashes of its slots that have a variance.
    variants: HashMap<u128, Vec<u128>>,
}

/// What is stored under one combined hash.
#[derive(Debug, Default)]
struct Slot {
    complete: Option<Arc<Stored>>,
    /// Writes in progress, oldest first.
    writes: Vec<Arc<Write>>,
}

/// A complete object.
#[derive(Debug)]
struct Stored {
    meta: CacheMeta,
    body: Arc<Body>,
    weight: usize,
}

/// A write in progress, as lookups see it.
#[derive(Debug)]
struct Write {
    id: u64,
    meta: CacheMeta,
    progress: watch::Receiver<Progress>,
}

// === impl MemCache ===

impl MemCache {
    /// An in-memory cache without a byte limit, as Pingora's constructor.
    ///
    /// Without a limit, memory is bounded only by an eviction manager purging what it
    /// evicts; prefer [`with_capacity_bytes`](Self::with_capacity_bytes) as a backstop.
    pub fn new() -> Self {
        Self::with_capacity_bytes(usize::MAX)
    }

    /// An in-memory cache that never holds more than `capacity` bytes of objects, writes in
    /// progress included (see [`object_size`](Self::object_size) for how objects are
    /// weighed). A write that would exceed it fails.
    pub fn with_capacity_bytes(capacity: usize) -> Self {
        MemCache {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            used: AtomicUsize::new(0),
            capacity,
            next_write_id: AtomicU64::new(0),
        }
    }

    /// The byte limit (`usize::MAX` for [`new`](Self::new)).
    pub fn capacity_bytes(&self) -> usize {
        self.capacity
    }

    /// The bytes in use: complete objects and writes in progress.
    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    /// The number of complete objects.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| {
                shard
                    .read()
                    .slots
                    .values()
                    .filter(|slot| slot.complete.is_some())
                    .count()
            })
            .sum()
    }

    /// Whether there is no complete object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The weight of the complete object of `key`: its body length plus an estimate of its
    /// metadata (a fixed overhead and the bytes of its header fields). It is the size
    /// [`HandleMiss::finish`] reported for it (or its new weight after
    /// [`Storage::update_meta`]), the size an eviction manager tracks.
    ///
    /// [`HandleMiss::finish`]: crate::storage::HandleMiss::finish
    pub fn object_size(&self, key: &CompactCacheKey) -> Option<usize> {
        let (primary, combined) = hashes(key);
        let shard = self.shard(primary).read();
        let stored = shard.slots.get(&combined)?.complete.as_ref()?;
        Some(stored.weight)
    }

    /// Looks up the complete object of `key` only, ignoring writes in progress: the front tier
    /// of a [`TieredStorage`](crate::TieredStorage) serves complete objects, and its readers
    /// of a write in progress follow the back tier's write.
    pub(crate) fn lookup_complete(&self, key: &CacheKey) -> Option<(CacheMeta, HitHandler)> {
        let (primary, combined) = hashes(key);
        let stored = {
            let shard = self.shard(primary).read();
            shard.slots.get(&combined)?.complete.clone()?
        };
        Some(Found::Complete(stored).into_hit())
    }

    fn shard(&self, primary: u128) -> &RwLock<Shard> {
        // The hash is uniform, so its low bits pick a shard evenly.
        &self.shards[(primary % SHARDS as u128) as usize]
    }

    /// Takes `bytes` from the budget, or returns `false` if that would exceed the capacity.
    fn reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes)
                    .filter(|total| *total <= self.capacity)
            })
            .is_ok()
    }

    /// Gives `bytes` back to the budget.
    fn release(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// Removes the slot `combined` of `primary`, giving back the weight of its complete
    /// object. Writes in progress are detached: they go on for their readers, but their
    /// `finish` stores nothing. Returns whether the slot held anything.
    fn remove_slot(&self, shard: &mut Shard, primary: u128, combined: u128) -> bool {
        let Some(slot) = shard.remove_slot(primary, combined) else {
            return false;
        };
        if let Some(stored) = &slot.complete {
            self.release(stored.weight);
        }
        slot.complete.is_some() || !slot.writes.is_empty()
    }
}

impl Default for MemCache {
    fn default() -> Self {
        Self::new()
    }
}

// === impl Shard ===

impl Shard {
    fn slot_mut_or_insert(&mut self, primary: u128, combined: u128) -> &mut Slot {
        let variants = &mut self.variants;
        self.slots.entry(combined).or_insert_with(|| {
            if combined != primary {
                variants.entry(primary).or_default().push(combined);
            }
            Slot::default()
        })
    }

    fn remove_slot(&mut self, primary: u128, combined: u128) -> Option<Slot> {
        let slot = self.slots.remove(&combined)?;
        if combined != primary {
            if let Some(list) = self.variants.get_mut(&primary) {
                list.retain(|hash| *hash != combined);
                if list.is_empty() {
                    self.variants.remove(&primary);
                }
            }
        }
        Some(slot)
    }

    /// Removes the slot if it holds nothing any more.
    fn remove_if_empty(&mut self, primary: u128, combined: u128) {
        let empty = self
            .slots
            .get(&combined)
            .is_some_and(|slot| slot.complete.is_none() && slot.writes.is_empty());
        if empty {
            self.remove_slot(primary, combined);
        }
    }

    /// Takes the write `id` out of slot `combined`; `None` if it was purged.
    fn take_write(&mut self, primary: u128, combined: u128, id: u64) -> Option<Arc<Write>> {
        let slot = self.slots.get_mut(&combined)?;
        let index = slot.writes.iter().position(|write| write.id == id)?;
        let write = slot.writes.remove(index);
        self.remove_if_empty(primary, combined);
        Some(write)
    }
}

// === impl Storage for MemCache ===

#[async_trait]
impl Storage for MemCache {
    /// Prefers the newest write in progress over a complete object, so that a refreshed
    /// object is visible as soon as its write starts.
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let (primary, combined) = hashes(key);
        let found = {
            let shard = self.shard(primary).read();
            shard
                .slots
                .get(&combined)
                .and_then(|slot| match slot.writes.last() {
                    Some(write) => Some(Found::Writing(write.clone())),
                    None => slot.complete.clone().map(Found::Complete),
                })
        };
        Ok(found.map(Found::into_hit))
    }

    /// With a tag, returns only the write it names (`None` if that write is over or the tag
    /// is not one of ours).
    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(tag) = streaming_write_tag else {
            return self.lookup(key, trace).await;
        };
        let Ok(id) = U64WriteId::try_from(tag) else {
            return Ok(None);
        };
        let id = u64::from(id);
        let (primary, combined) = hashes(key);
        let write = {
            let shard = self.shard(primary).read();
            shard
                .slots
                .get(&combined)
                .and_then(|slot| slot.writes.iter().find(|write| write.id == id).cloned())
        };
        Ok(write.map(|write| Found::Writing(write).into_hit()))
    }

    /// # Errors
    ///
    /// `Custom("MemCacheFull")` when the metadata alone does not fit.
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let weight = meta_weight(meta);
        if !self.reserve(weight) {
            return Error::e_explain(STORAGE_FULL, "no room for the metadata of a new object");
        }
        let (primary, combined) = hashes(key);
        let id = self.next_write_id.fetch_add(1, Ordering::Relaxed);
        let (sender, progress) = watch::channel(Progress::default());
        let write = Arc::new(Write {
            id,
            meta: owned_copy(meta),
            progress,
        });
        self.shard(primary)
            .write()
            .slot_mut_or_insert(primary, combined)
            .writes
            .push(write);
        let handler = MemMissHandler::new(self, (primary, combined), id, sender, weight);
        Ok(Box::new(handler))
    }

    /// An [`Invalidation`](PurgeType::Invalidation) of a key without variance removes the
    /// primary slot and every variant of it; otherwise only the slot of the key is removed.
    /// Writes in progress are detached: their readers go on, but nothing is stored.
    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let (primary, combined) = hashes(key);
        let mut shard = self.shard(primary).write();
        let mut removed = self.remove_slot(&mut shard, primary, combined);
        if combined == primary && purge_type == PurgeType::Invalidation {
            for variant in shard.variants.get(&primary).cloned().unwrap_or_default() {
                removed |= self.remove_slot(&mut shard, primary, variant);
            }
        }
        Ok(removed)
    }

    /// Updates the complete object only; `false` when there is none.
    ///
    /// # Errors
    ///
    /// `Custom("MemCacheFull")` when the larger metadata does not fit.
    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let (primary, combined) = hashes(key);
        let mut shard = self.shard(primary).write();
        let Some(stored) = shard
            .slots
            .get_mut(&combined)
            .and_then(|s| s.complete.as_mut())
        else {
            return Ok(false);
        };
        let body_len = stored.body.len();
        let weight = body_len + meta_weight(meta);
        if weight > stored.weight && !self.reserve(weight - stored.weight) {
            return Error::e_explain(STORAGE_FULL, "no room for the updated metadata");
        }
        self.release(stored.weight.saturating_sub(weight));
        *stored = Arc::new(Stored {
            meta: owned_copy(meta),
            body: stored.body.clone(),
            weight,
        });
        Ok(true)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

// === helpers ===

/// The primary and combined hashes of a key, as integers.
pub(crate) fn hashes<K: CacheHashKey>(key: &K) -> (u128, u128) {
    let primary = key.primary_bin();
    let combined = match key.variance_bin() {
        None => primary,
        Some(_) => key.combined_bin(),
    };
    (to_u128(primary), to_u128(combined))
}

fn to_u128(hash: HashBinary) -> u128 {
    u128::from_be_bytes(hash)
}

/// The weight of an object's metadata (see [`MemCache::object_size`]).
fn meta_weight(meta: &CacheMeta) -> usize {
    let fields: usize = meta
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + FIELD_OVERHEAD)
        .sum();
    OBJECT_OVERHEAD + fields
}

/// A copy of what a storage keeps of `meta`: everything but its extensions, which are never
/// stored (as with [`CacheMeta::serialize`]). Header names and values share their bytes with
/// `meta`'s.
pub(crate) fn stored_copy(meta: &CacheMeta) -> CacheMeta {
    copy_with_header(meta, meta.response_header_copy())
}

/// [`stored_copy`] whose header owns its bytes: a header parsed from the wire holds slices
/// of the connection's read buffer, which a stored object must not keep alive.
pub(crate) fn owned_copy(meta: &CacheMeta) -> CacheMeta {
    let stored = meta.response_header();
    let fields = stored.headers.len();
    let header = ResponseHeader::build(stored.status, Some(fields)).map(|mut header| {
        header.set_version(stored.version);
        let _ = header.set_reason_phrase(stored.reason_phrase());
        for (name, value) in stored.case_header_iter() {
            let name = Bytes::copy_from_slice(name.as_slice());
            let value = HeaderValue::from_bytes(value.as_bytes());
            if let Ok(value) = value {
                // A name and value taken from a header map are valid again.
                let _ = header.append_header(name, value);
            }
        }
        header
    });
    copy_with_header(meta, header.unwrap_or_else(|_| meta.response_header_copy()))
}

fn copy_with_header(meta: &CacheMeta, header: ResponseHeader) -> CacheMeta {
    let mut copy = CacheMeta::new(
        meta.fresh_until(),
        meta.created(),
        meta.stale_while_revalidate_sec(),
        meta.stale_if_error_sec(),
        header,
    );
    copy.set_updated(meta.updated());
    if let Some(variance) = meta.variance() {
        copy.set_variance(variance);
    }
    if let Some(epoch) = meta.epoch_override() {
        copy.set_epoch_override(epoch);
    }
    copy
}
