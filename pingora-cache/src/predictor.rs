//! The cacheability predictor: remembers keys whose responses recently turned out not
//! cacheable, so later requests for them skip the cache (and its lock) and go straight to the
//! origin instead of queueing behind a writer that will not store anything.
//!
//! Only reasons that belong to the response are remembered ([`NoCacheReason::OriginNotCache`],
//! [`NoCacheReason::ResponseTooLarge`], custom reasons unless the user says to skip them):
//! storage or lock failures, upstream errors and the like say nothing about the next response
//! for the key. A key is forgotten when its response becomes cacheable again
//! ([`CacheablePredictor::mark_cacheable`]) or when newer keys push it out of the bounded LRU.
//!
//! The prediction is made before the lookup, when the variance is not known yet, so keys are
//! remembered by their primary hash: all variants of a key share one prediction.

use std::fmt;
use std::num::NonZeroUsize;

use lru::LruCache;
use parking_lot::RwLock;

use crate::key::{CacheHashKey, CacheKey};
use crate::NoCacheReason;

/// Decides whether a custom [`NoCacheReason::Custom`] reason should *not* be remembered
/// (`true`: skip it).
pub type CustomReasonPredicate = fn(&'static str) -> bool;

/// Predicts whether a request's response will be cacheable, from what earlier responses of
/// its key were.
pub trait CacheablePredictor {
    /// Whether the response for `key` is expected to be cacheable: `false` if the key was
    /// recently found uncacheable. Does not change the LRU order.
    fn cacheable_prediction(&self, key: &CacheKey) -> bool;

    /// Records that the response for `key` is cacheable. Returns `false` if the key had been
    /// remembered as uncacheable (and is now forgotten), `true` if there was nothing to do.
    fn mark_cacheable(&self, key: &CacheKey) -> bool;

    /// Records that the response for `key` is not cacheable, for `reason`. Returns `None` if
    /// the reason is not one to remember, else `Some(true)` if the key is newly remembered
    /// and `Some(false)` if it already was (it becomes the most recent).
    fn mark_uncacheable(&self, key: &CacheKey, reason: NoCacheReason) -> Option<bool>;
}

/// A [`CacheablePredictor`] keeping up to `shard_capacity` keys in each of `N_SHARDS`
/// LRU shards.
pub struct Predictor<const N_SHARDS: usize> {
    shards: [RwLock<LruCache<u128, ()>>; N_SHARDS],
    skip_custom_reasons_fn: Option<CustomReasonPredicate>,
}

// === impl Predictor ===

impl<const N_SHARDS: usize> Predictor<N_SHARDS> {
    /// A predictor remembering up to `shard_capacity` uncacheable keys per shard (at least
    /// one). `skip_custom_reasons_fn` picks the custom reasons not to remember; with `None`,
    /// every custom reason is remembered. `N_SHARDS` must be at least 1 (a compile-time check).
    pub fn new(
        shard_capacity: usize,
        skip_custom_reasons_fn: Option<CustomReasonPredicate>,
    ) -> Predictor<N_SHARDS> {
        const { assert!(N_SHARDS > 0, "a Predictor needs at least one shard") };
        let capacity = NonZeroUsize::new(shard_capacity).unwrap_or(NonZeroUsize::MIN);
        Predictor {
            shards: std::array::from_fn(|_| RwLock::new(LruCache::new(capacity))),
            skip_custom_reasons_fn,
        }
    }

    /// The number of keys remembered as uncacheable.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn shard(&self, key: u128) -> &RwLock<LruCache<u128, ()>> {
        &self.shards[(key % N_SHARDS as u128) as usize]
    }

    /// Whether `reason` says something about the next response for the key.
    fn remembers(&self, reason: NoCacheReason) -> bool {
        match reason {
            NoCacheReason::OriginNotCache | NoCacheReason::ResponseTooLarge => true,
            NoCacheReason::Custom(custom) => {
                !self.skip_custom_reasons_fn.is_some_and(|skip| skip(custom))
            }
            // Failures of this request (storage, lock, upstream), requests that never tried,
            // and a size that is only predicted: none of them is a property of the response.
            NoCacheReason::NeverEnabled
            | NoCacheReason::StorageError
            | NoCacheReason::InternalError
            | NoCacheReason::Deferred
            | NoCacheReason::DeclinedToUpstream
            | NoCacheReason::UpstreamError
            | NoCacheReason::PredictedResponseTooLarge
            | NoCacheReason::CacheLockGiveUp
            | NoCacheReason::CacheLockTimeout => false,
        }
    }
}

/// The key the predictor remembers: the primary hash (variance is unknown before lookup).
fn predictor_key(key: &CacheKey) -> u128 {
    u128::from_be_bytes(key.primary_bin())
}

impl<const N_SHARDS: usize> CacheablePredictor for Predictor<N_SHARDS> {
    fn cacheable_prediction(&self, key: &CacheKey) -> bool {
        let key = predictor_key(key);
        !self.shard(key).read().contains(&key)
    }

    fn mark_cacheable(&self, key: &CacheKey) -> bool {
        let key = predictor_key(key);
        let shard = self.shard(key);
        if !shard.read().contains(&key) {
            return true;
        }
        shard.write().pop(&key);
        false
    }

    fn mark_uncacheable(&self, key: &CacheKey, reason: NoCacheReason) -> Option<bool> {
        if !self.remembers(reason) {
            return None;
        }
        let key = predictor_key(key);
        Some(self.shard(key).write().put(key, ()).is_none())
    }
}

impl<const N_SHARDS: usize> fmt::Debug for Predictor<N_SHARDS> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Predictor")
            .field("shards", &N_SHARDS)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_uncacheable_keys_until_marked_cacheable() {
        let predictor = Predictor::<4>::new(10, None);
        let key = CacheKey::new("ns", "a", "u");
        assert!(predictor.cacheable_prediction(&key));
        assert!(predictor.mark_cacheable(&key));

        assert_eq!(
            predictor.mark_uncacheable(&key, NoCacheReason::OriginNotCache),
            Some(true)
        );
        assert!(!predictor.cacheable_prediction(&key));
        assert_eq!(
            predictor.mark_uncacheable(&key, NoCacheReason::ResponseTooLarge),
            Some(false)
        );
        // Variants share the prediction of their primary key.
        let mut variant = key.clone();
        variant.set_variance_key([1; 16]);
        assert!(!predictor.cacheable_prediction(&variant));

        assert!(!predictor.mark_cacheable(&key));
        assert!(predictor.cacheable_prediction(&key));
        assert!(predictor.is_empty());
    }

    #[test]
    fn failures_of_one_request_are_not_remembered() {
        let predictor = Predictor::<1>::new(10, None);
        let key = CacheKey::new("ns", "a", "u");
        for reason in [
            NoCacheReason::NeverEnabled,
            NoCacheReason::StorageError,
            NoCacheReason::InternalError,
            NoCacheReason::Deferred,
            NoCacheReason::DeclinedToUpstream,
            NoCacheReason::UpstreamError,
            NoCacheReason::PredictedResponseTooLarge,
            NoCacheReason::CacheLockGiveUp,
            NoCacheReason::CacheLockTimeout,
        ] {
            assert_eq!(predictor.mark_uncacheable(&key, reason), None, "{reason:?}");
        }
        assert!(predictor.cacheable_prediction(&key));
    }

    #[test]
    fn custom_reasons_are_remembered_unless_skipped() {
        let predictor = Predictor::<2>::new(10, Some(|reason| reason == "transient"));
        let key = CacheKey::new("ns", "a", "u");
        let skipped = NoCacheReason::Custom("transient");
        assert_eq!(predictor.mark_uncacheable(&key, skipped), None);
        assert!(predictor.cacheable_prediction(&key));
        let kept = NoCacheReason::Custom("set-cookie");
        assert_eq!(predictor.mark_uncacheable(&key, kept), Some(true));
        assert!(!predictor.cacheable_prediction(&key));
    }

    #[test]
    fn least_recently_marked_keys_are_forgotten_first() {
        let predictor = Predictor::<1>::new(2, None);
        let keys: Vec<_> = (0..3)
            .map(|n| CacheKey::new("ns", n.to_string(), "u"))
            .collect();
        predictor.mark_uncacheable(&keys[0], NoCacheReason::OriginNotCache);
        predictor.mark_uncacheable(&keys[1], NoCacheReason::OriginNotCache);
        // Marking again makes key 0 the most recent, so key 1 is pushed out by key 2.
        predictor.mark_uncacheable(&keys[0], NoCacheReason::OriginNotCache);
        predictor.mark_uncacheable(&keys[2], NoCacheReason::OriginNotCache);
        assert!(!predictor.cacheable_prediction(&keys[0]));
        assert!(predictor.cacheable_prediction(&keys[1]));
        assert!(!predictor.cacheable_prediction(&keys[2]));
        assert_eq!(predictor.len(), 2);
        // A zero capacity still remembers one key per shard.
        let tiny = Predictor::<1>::new(0, None);
        assert_eq!(
            tiny.mark_uncacheable(&keys[0], NoCacheReason::OriginNotCache),
            Some(true)
        );
        assert!(!tiny.cacheable_prediction(&keys[0]));
    }
}
