//! [`TieredStorage`]: a [`MemCache`] in front of a durable [`Storage`], so that popular
//! objects are served from memory and every object survives in the back store.
//!
//! # Policy
//!
//! * **Write-through.** A miss writes the body to the back store and, while it fits, to the
//!   front as well: one [`HandleMiss`](crate::storage::HandleMiss) tees each chunk to both. The
//!   object is complete when the back store finishes it. A failure of the back write fails
//!   the write (its readers get an error); a failure of the front write (the memory is full,
//!   the object is too large for the front) only drops the front copy. Once the back store has
//!   finished the object, the front copy is offered to the admission policy, which may
//!   turn it away.
//! * **Lookup.** The front first, then the back. A back hit is *promoted*: its body is teed
//!   into the front while the client reads it, and when the whole body has been read the copy
//!   is offered to the admission policy. A hit that is read partially, seeks (a range
//!   request), or fails leaves nothing in the front.
//! * **Admission and eviction of the front.** The front is bounded by
//!   [`TieredOptions::front_bytes`] through a [`TinyUfo`](tinyufo::TinyUfo) keyed by the
//!   combined hash, weighing objects in units of 1 KiB. Its TinyLFU test counts every offer
//!   of a key (each write-through and each fully read back hit), and turns a newcomer away
//!   when the one object it would push out was offered more often: a key read once from the
//!   back does not push a more popular object out, and after enough back hits it wins its
//!   place. Front hits count as uses for S3-FIFO, so the objects pushed out are the ones not
//!   read lately. A `TinyUfo` is used, rather than its frequency sketch alone (private to the
//!   `tinyufo` crate), because it gives both halves: admission and the choice of victims. It
//!   is not the crate's TinyUFO eviction manager because that one re-admits an object it does
//!   not know when it is hit, which here would re-track a copy just evicted and not yet
//!   dropped; the front's policy counts hits on known objects only, and serializes its
//!   admissions so that its byte count stays exact.
//! * **Demotion is free.** The back store holds every object (write-through), so an object
//!   pushed out of the front is dropped from memory and nothing is written anywhere.
//! * **Purge and `update_meta`** apply to both tiers. A failed update of the front drops its
//!   copy.
//! * **Writes in progress.** A reader of an object being written follows the *back* store's
//!   write, the one whose failure fails the object, so it ends with an error exactly when the
//!   object is not stored. The front's copy in progress is never served: front hits are
//!   complete objects. [`support_streaming_partial_write`] is the back store's.
//! * **Seek** is the seek of the tier that serves the hit.
//!
//! # Consistency
//!
//! The front never holds an object the back store does not, and never an older version of
//! it: the front copy of a write is committed after the back store finished it, and every
//! change of a key (a finished write, a purge, a metadata update) is made in both tiers under
//! a per-key lock (one of 256 stripes chosen by the primary hash) that also bumps a
//! generation. A promotion remembers the generation it started at and commits only if it has
//! not changed. The back store's `finish`, `purge` and `update_meta` run under that lock, so a
//! slow one delays the other changes of its stripe (not lookups or reads). This holds as
//! long as the back store changes objects only through this
//! storage: a back store that drops objects by itself (its own eviction) should be given an
//! eviction manager that purges through the `TieredStorage` instead.
//!
//! The admission policy may briefly track a key whose front copy is gone (an invalidation of
//! a primary key removes every variant from the front but only the key's own entry from the
//! policy); such entries cost only their weight until the policy evicts them.
//!
//! [`support_streaming_partial_write`]: Storage::support_streaming_partial_write

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::Result;

use crate::key::{CacheHashKey, CompactCacheKey};
use crate::storage::{HitHandler, MissHandler, PurgeType, Storage};
use crate::trace::SpanHandle;
use crate::{CacheKey, CacheMeta, MemCache};

mod handler;
mod policy;
#[cfg(test)]
mod tests;

use handler::{Promotion, TeeMissHandler};
pub use handler::{Tier, TieredHitHandler};
use policy::FrontPolicy;

/// The number of key stripes: locks and generations shared by the keys whose primary hashes
/// fall in them.
const STRIPES: usize = 256;

/// The largest object the front's policy weighs exactly (65,535 units of 1 KiB).
const MAX_POLICY_OBJECT: usize = (u16::MAX as usize) << 10;

/// The options of a [`TieredStorage`].
///
/// ```
/// use pingora_cache::TieredOptions;
///
/// let options = TieredOptions::new(256 << 20)
///     .max_front_object_bytes(4 << 20)
///     .estimated_items(50_000);
/// assert_eq!(options.front_bytes(), 256 << 20);
/// assert!(options.promotes_hits());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TieredOptions {
    front_bytes: usize,
    estimated_items: usize,
    max_front_object_bytes: usize,
    promote_hits: bool,
}

impl TieredOptions {
    /// Options for a front holding up to `front_bytes` bytes of objects (as
    /// [`MemCache::object_size`] weighs them). The defaults: about one item per 16 KiB for
    /// the policy's sketch (at least 64), objects up to an eighth of the front (at most 64
    /// MiB) copied to it, back hits promoted.
    pub fn new(front_bytes: usize) -> Self {
        TieredOptions {
            front_bytes,
            estimated_items: (front_bytes >> 14).max(64),
            max_front_object_bytes: (front_bytes / 8).min(MAX_POLICY_OBJECT),
            promote_hits: true,
        }
    }

    /// Sizes the admission policy for about `items` objects in the front.
    pub fn estimated_items(mut self, items: usize) -> Self {
        self.estimated_items = items.max(1);
        self
    }

    /// Objects with a body larger than `bytes` are kept in the back store only. Values
    /// above 64 MiB are lowered to it: the policy cannot weigh larger objects exactly.
    pub fn max_front_object_bytes(mut self, bytes: usize) -> Self {
        self.max_front_object_bytes = bytes.min(MAX_POLICY_OBJECT);
        self
    }

    /// Whether back hits are offered to the front (`true` by default). Without promotion the
    /// front holds only what write-through put there.
    pub fn promote_hits(mut self, promote: bool) -> Self {
        self.promote_hits = promote;
        self
    }

    /// The byte bound of the front.
    pub fn front_bytes(&self) -> usize {
        self.front_bytes
    }

    /// The number of objects the policy is sized for.
    pub fn items(&self) -> usize {
        self.estimated_items
    }

    /// The largest body copied to the front.
    pub fn front_object_limit(&self) -> usize {
        self.max_front_object_bytes
    }

    /// Whether back hits are promoted.
    pub fn promotes_hits(&self) -> bool {
        self.promote_hits
    }
}

/// Counters of a [`TieredStorage`], since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TieredStats {
    /// Lookups served by the front.
    pub front_hits: u64,
    /// Lookups served by the back store.
    pub back_hits: u64,
    /// Write-through copies admitted to the front.
    pub front_writes: u64,
    /// Back hits copied to the front and admitted.
    pub promotions: u64,
    /// Complete front copies (of writes or promotions) the admission policy turned away.
    pub turned_away: u64,
}

#[derive(Debug, Default)]
struct Counters {
    front_hits: AtomicU64,
    back_hits: AtomicU64,
    front_writes: AtomicU64,
    promotions: AtomicU64,
    turned_away: AtomicU64,
}

/// The lock, generation and writes in progress of the keys of one stripe.
#[derive(Debug, Default)]
struct Stripe {
    /// Held while a change of a key is made in both tiers.
    lock: tokio::sync::Mutex<()>,
    /// Bumped, under `lock`, after each change.
    generation: AtomicU64,
    /// The number of entries in `writing`, read without its lock.
    writers: AtomicUsize,
    /// The combined hashes of the write-throughs in progress.
    writing: Mutex<Vec<u128>>,
}

/// A write-through in progress, registered in its stripe until dropped.
#[derive(Debug)]
struct Writing {
    stripe: &'static Stripe,
    combined: u128,
}

impl Writing {
    fn start(stripe: &'static Stripe, key: &CacheKey) -> Self {
        let combined = u128::from_be_bytes(key.combined_bin());
        stripe.writing.lock().push(combined);
        stripe.writers.fetch_add(1, Ordering::AcqRel);
        Writing { stripe, combined }
    }
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut writing = self.stripe.writing.lock();
        if let Some(index) = writing.iter().position(|hash| *hash == self.combined) {
            writing.swap_remove(index);
            self.stripe.writers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A two-tier cache storage: a [`MemCache`] front bounded by an admission policy, in front
/// of any back [`Storage`] (typically a disk one) that holds every object. See the
/// [module docs](self) for the policy.
///
/// The back store is a `&'static (dyn Storage + Sync)`, as [`HttpCache::enable`] takes its
/// storage, so any storage fits behind it without a type parameter; the front is a concrete
/// [`MemCache`] because the tiered store reads only its complete objects.
///
/// Give the front `MemCache` a capacity above [`TieredOptions::front_bytes`] (or none): the
/// policy bounds the complete objects, and the copies being written need room on top.
///
/// ```
/// use pingora_cache::{MemCache, Storage, TieredOptions, TieredStorage};
///
/// let front: &'static MemCache = Box::leak(Box::new(MemCache::new()));
/// // Any storage can be the back store; a disk storage is the usual one.
/// let back: &'static MemCache = Box::leak(Box::new(MemCache::new()));
/// let tiered = TieredStorage::new(front, back, TieredOptions::new(64 << 20));
/// assert!(tiered.support_streaming_partial_write());
/// assert_eq!(tiered.front_bytes(), 0);
/// ```
///
/// [`HttpCache::enable`]: crate::HttpCache::enable
pub struct TieredStorage {
    front: &'static MemCache,
    back: &'static (dyn Storage + Sync),
    policy: FrontPolicy,
    options: TieredOptions,
    stripes: Box<[Stripe]>,
    counters: Counters,
}

// === impl TieredStorage ===

impl TieredStorage {
    /// A tiered storage of `front` before `back`, with the front bounded by `options`.
    pub fn new(
        front: &'static MemCache,
        back: &'static (dyn Storage + Sync),
        options: TieredOptions,
    ) -> Self {
        if front.capacity_bytes() <= options.front_bytes {
            log::warn!(
                "the front MemCache's capacity ({} bytes) leaves no room for writes above the \
                 front bound ({} bytes)",
                front.capacity_bytes(),
                options.front_bytes
            );
        }
        TieredStorage {
            front,
            back,
            policy: FrontPolicy::new(options.front_bytes, options.estimated_items),
            options,
            stripes: (0..STRIPES).map(|_| Stripe::default()).collect(),
            counters: Counters::default(),
        }
    }

    /// The front (memory) tier.
    pub fn front(&self) -> &'static MemCache {
        self.front
    }

    /// The back (durable) tier.
    pub fn back(&self) -> &'static (dyn Storage + Sync) {
        self.back
    }

    /// The options given to [`new`](Self::new).
    pub fn options(&self) -> &TieredOptions {
        &self.options
    }

    /// The bytes of the objects the front's policy holds (at most
    /// [`TieredOptions::front_bytes`]).
    pub fn front_bytes(&self) -> usize {
        self.policy.bytes()
    }

    /// The number of objects the front's policy holds.
    pub fn front_items(&self) -> usize {
        self.policy.items()
    }

    /// The counters since creation.
    pub fn stats(&self) -> TieredStats {
        let c = &self.counters;
        TieredStats {
            front_hits: c.front_hits.load(Ordering::Relaxed),
            back_hits: c.back_hits.load(Ordering::Relaxed),
            front_writes: c.front_writes.load(Ordering::Relaxed),
            promotions: c.promotions.load(Ordering::Relaxed),
            turned_away: c.turned_away.load(Ordering::Relaxed),
        }
    }

    fn stripe(&self, primary: u128) -> &Stripe {
        &self.stripes[(primary % STRIPES as u128) as usize]
    }

    fn stripe_of<K: CacheHashKey>(&self, key: &K) -> &Stripe {
        self.stripe(u128::from_be_bytes(key.primary_bin()))
    }

    /// Whether a write-through of the combined hash `combined` is in progress in `stripe`.
    fn is_being_written(stripe: &Stripe, combined: u128) -> bool {
        stripe.writers.load(Ordering::Acquire) > 0 && stripe.writing.lock().contains(&combined)
    }

    /// A back hit, with the promotion of its body to the front started if it may be one.
    async fn back_hit(
        &'static self,
        key: &CacheKey,
        (meta, hit): (CacheMeta, HitHandler),
        generation: Option<u64>,
        trace: &SpanHandle,
    ) -> (CacheMeta, HitHandler) {
        self.counters.back_hits.fetch_add(1, Ordering::Relaxed);
        let promotion = match generation {
            // Only complete objects are promoted: a hit that does not count as an access
            // follows a write, whose own front copy is under way.
            Some(generation)
                if self.options.promote_hits
                    && hit.should_count_access()
                    && hit.get_eviction_weight() <= self.options.max_front_object_bytes =>
            {
                match self.front.get_miss_handler(key, &meta, trace).await {
                    Ok(miss) => Some(Promotion::new(key, miss, generation, &self.options)),
                    Err(_) => None,
                }
            }
            _ => None,
        };
        let handler = TieredHitHandler::new(self, Tier::Back, hit, promotion);
        (meta, Box::new(handler))
    }

    /// Offers the front copy of `key`, `size` bytes, to the admission policy and drops from
    /// the front what the policy evicts. Returns whether the copy stays. Called with the
    /// key's stripe locked.
    async fn admit_front(&self, key: &CompactCacheKey, size: usize, trace: &SpanHandle) -> bool {
        let mut kept = true;
        for victim in self.policy.admit(key, size) {
            kept &= victim != *key;
            // Demotion: the back store has the object (write-through), so the front copy
            // is dropped and nothing is written. A purge of a MemCache cannot fail.
            let _ = self.front.purge(&victim, PurgeType::Eviction, trace).await;
        }
        if !kept {
            self.counters.turned_away.fetch_add(1, Ordering::Relaxed);
        }
        kept
    }

    /// Drops the front copy of `key` and its entry in the policy.
    async fn drop_front(&self, key: &CompactCacheKey, trace: &SpanHandle) {
        let _ = self.front.purge(key, PurgeType::Eviction, trace).await;
        self.policy.remove(key);
    }

    /// Commits a promotion whose body was read whole: the front copy is finished and offered
    /// to the policy, unless the object changed since the promotion started.
    async fn commit_promotion(&self, promotion: Promotion, trace: &SpanHandle) {
        let stripe = self.stripe_of(&promotion.key);
        let _changes = stripe.lock.lock().await;
        if stripe.generation.load(Ordering::Acquire) != promotion.generation {
            // Dropping the front write discards the copy.
            return;
        }
        let key = promotion.key.clone();
        if let Some(size) = promotion.finish().await {
            if self.admit_front(&key, size, trace).await {
                self.counters.promotions.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Finishes a write-through: the back store first; the front copy only if the back store
    /// finished the object. Returns what the back store reports.
    async fn finish_write(
        &self,
        key: &CompactCacheKey,
        back: MissHandler,
        front: Option<MissHandler>,
    ) -> Result<crate::storage::MissFinishType> {
        let stripe = self.stripe_of(key);
        let changes = stripe.lock.lock().await;
        let result = back.finish().await;
        if let (Ok(_), Some(front)) = (&result, front) {
            if let Ok(finished) = front.finish().await {
                let trace = SpanHandle::default();
                let size = handler::finished_size(finished);
                if self.admit_front(key, size, &trace).await {
                    self.counters.front_writes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        stripe.generation.fetch_add(1, Ordering::AcqRel);
        drop(changes);
        result
    }
}

impl fmt::Debug for TieredStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredStorage")
            .field("front", &self.front)
            .field("options", &self.options)
            .field("policy", &self.policy)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

// === impl Storage for TieredStorage ===

#[async_trait]
impl Storage for TieredStorage {
    /// The front's complete object, else the back store's hit (promoted if the front takes
    /// it). While a write of `key` goes on and the back store streams partial writes, the
    /// back store's write is returned, so that readers follow the newest version.
    async fn lookup(
        &'static self,
        key: &CacheKey,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let stripe = self.stripe_of(key);
        let combined = u128::from_be_bytes(key.combined_bin());
        if self.back.support_streaming_partial_write() && Self::is_being_written(stripe, combined) {
            if let Some(found) = self.back.lookup(key, trace).await? {
                return Ok(Some(self.back_hit(key, found, None, trace).await));
            }
        }
        if let Some((meta, hit)) = self.front.lookup_complete(key) {
            self.counters.front_hits.fetch_add(1, Ordering::Relaxed);
            self.policy.touch(key);
            let handler = TieredHitHandler::new(self, Tier::Front, hit, None);
            return Ok(Some((meta, Box::new(handler))));
        }
        // Read before the back store is: a change after this point stops the promotion.
        let generation = stripe.generation.load(Ordering::Acquire);
        match self.back.lookup(key, trace).await? {
            Some(found) => Ok(Some(
                self.back_hit(key, found, Some(generation), trace).await,
            )),
            None => Ok(None),
        }
    }

    /// With a tag, the back store's write it names (the tag is the back store's).
    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        if streaming_write_tag.is_none() {
            return self.lookup(key, trace).await;
        }
        let found = self
            .back
            .lookup_streaming_write(key, streaming_write_tag, trace)
            .await?;
        match found {
            Some(found) => Ok(Some(self.back_hit(key, found, None, trace).await)),
            None => Ok(None),
        }
    }

    /// A write to the back store, teed to the front while the front takes it.
    ///
    /// # Errors
    ///
    /// When the back store refuses the object; a front that refuses it is not an error.
    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let back = self.back.get_miss_handler(key, meta, trace).await?;
        let front = self.front.get_miss_handler(key, meta, trace).await.ok();
        let writing = Writing::start(self.stripe_of(key), key);
        let handler = TeeMissHandler::new(self, key, writing, back, front);
        Ok(Box::new(handler))
    }

    /// Purges both tiers; returns whether either had the object.
    ///
    /// # Errors
    ///
    /// The back store's error; the front copy is dropped all the same.
    async fn purge(
        &'static self,
        key: &CompactCacheKey,
        purge_type: PurgeType,
        trace: &SpanHandle,
    ) -> Result<bool> {
        let stripe = self.stripe_of(key);
        let changes = stripe.lock.lock().await;
        let back = self.back.purge(key, purge_type, trace).await;
        let front = self.front.purge(key, purge_type, trace).await;
        self.policy.remove(key);
        stripe.generation.fetch_add(1, Ordering::AcqRel);
        drop(changes);
        Ok(back? | front.unwrap_or(false))
    }

    /// Updates both tiers; returns the back store's answer. A front copy that cannot be
    /// updated, or whose back object is gone, is dropped.
    ///
    /// # Errors
    ///
    /// The back store's error.
    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        trace: &SpanHandle,
    ) -> Result<bool> {
        let stripe = self.stripe_of(key);
        let changes = stripe.lock.lock().await;
        let back = self.back.update_meta(key, meta, trace).await;
        let front_updated =
            matches!(back, Ok(true)) && self.front.update_meta(key, meta, trace).await.is_ok();
        if !front_updated {
            self.drop_front(&key.to_compact(), trace).await;
        }
        stripe.generation.fetch_add(1, Ordering::AcqRel);
        drop(changes);
        back
    }

    /// The back store's: readers of a write follow the back store's write.
    fn support_streaming_partial_write(&self) -> bool {
        self.back.support_streaming_partial_write()
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
