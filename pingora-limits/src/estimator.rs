//! A lock-free count–min sketch.

use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicIsize, Ordering};

use foldhash::quality::RandomState;

/// Estimates how often each key was seen, in fixed memory, without locks.
///
/// The sketch is a table of `hashes` rows of `slots` atomic counters. A key adds to one counter
/// per row, and its estimate is the smallest of those counters. As long as only positive values
/// are added, an estimate is never below the true count; it is above it only when, in every
/// row, the key shares its counter with other keys. The chance of that for a given key is about
/// `(k / slots)^hashes` with `k` keys live, so a few rows and many slots keep estimates exact in
/// practice.
///
/// A key is hashed once per call; each row then takes its counter from that 64-bit hash with its
/// own random multiplier, so the rows behave as independent hash functions.
///
/// [Count–min sketch on Wikipedia](https://en.wikipedia.org/wiki/Count%E2%80%93min_sketch).
pub struct Estimator {
    /// `rows × slots` counters, row after row.
    counters: Box<[AtomicIsize]>,
    /// One odd multiplier per row.
    multipliers: Box<[u64]>,
    slots: usize,
    hasher: RandomState,
}

// === impl Estimator ===

impl Estimator {
    /// A sketch of `hashes` rows of `slots` counters each. Zero is treated as one for either,
    /// so every sketch can count.
    ///
    /// Memory is `hashes × slots × 8` bytes on 64-bit targets.
    pub fn new(hashes: usize, slots: usize) -> Self {
        let hasher = RandomState::default();
        let rows = hashes.max(1);
        let multipliers = (0..rows).map(|row| hasher.hash_one(row) | 1).collect();
        Self::with_hashing(hasher, multipliers, slots.max(1))
    }

    /// An empty sketch of the same shape that hashes keys exactly as `self` does, so a key
    /// hashed once can be used with both.
    pub(crate) fn empty_twin(&self) -> Self {
        Self::with_hashing(self.hasher.clone(), self.multipliers.clone(), self.slots)
    }

    fn with_hashing(hasher: RandomState, multipliers: Box<[u64]>, slots: usize) -> Self {
        let counters = (0..multipliers.len() * slots)
            .map(|_| AtomicIsize::new(0))
            .collect();
        Estimator {
            counters,
            multipliers,
            slots,
            hasher,
        }
    }

    /// Adds `value` to `key` and returns the key's new estimate.
    ///
    /// Counters wrap on overflow instead of panicking; an estimate that went negative after
    /// only positive additions means a counter overflowed.
    pub fn incr<T: Hash>(&self, key: T, value: isize) -> isize {
        self.incr_hashed(self.hash(key), value)
    }

    /// Subtracts `value` from `key`, undoing an earlier [`Estimator::incr`].
    pub fn decr<T: Hash>(&self, key: T, value: isize) {
        self.decr_hashed(self.hash(key), value)
    }

    /// The estimated count of `key`.
    pub fn get<T: Hash>(&self, key: T) -> isize {
        self.get_hashed(self.hash(key))
    }

    /// Sets every counter back to zero. Adds that race with a reset may survive it or not.
    pub fn reset(&self) {
        for counter in self.counters.iter() {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// The 64-bit hash every other `*_hashed` method takes.
    #[inline]
    pub(crate) fn hash<T: Hash>(&self, key: T) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    pub(crate) fn incr_hashed(&self, hash: u64, value: isize) -> isize {
        self.cells(hash)
            .map(|c| c.fetch_add(value, Ordering::Relaxed).wrapping_add(value))
            .min()
            .unwrap_or(0)
    }

    #[inline]
    pub(crate) fn decr_hashed(&self, hash: u64, value: isize) {
        for cell in self.cells(hash) {
            cell.fetch_sub(value, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn get_hashed(&self, hash: u64) -> isize {
        self.cells(hash)
            .map(|c| c.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// The counter of `hash` in each row.
    #[inline]
    fn cells(&self, hash: u64) -> impl Iterator<Item = &AtomicIsize> + '_ {
        let slots = self.slots;
        self.multipliers
            .iter()
            .enumerate()
            .map(move |(row, multiplier)| {
                // Multiply-shift gives 32 well-mixed bits per row; the multiply-high maps them
                // onto `0..slots` without a division.
                let mixed = hash.wrapping_mul(*multiplier) >> 32;
                let slot = ((mixed * slots as u64) >> 32) as usize;
                &self.counters[row * slots + slot]
            })
    }
}

impl fmt::Debug for Estimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Estimator")
            .field("hashes", &self.multipliers.len())
            .field("slots", &self.slots)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn counts_one_key_exactly() {
        let est = Estimator::new(4, 8);
        assert_eq!(est.get("a"), 0);
        assert_eq!(est.incr("a", 1), 1);
        assert_eq!(est.incr("a", 2), 3);
        est.decr("a", 1);
        assert_eq!(est.get("a"), 2);
        assert_eq!(est.incr("a", -2), 0);
    }

    #[test]
    fn is_exact_when_keys_do_not_collide() {
        // 100 keys over 4 rows of 65536 slots: a key sharing its counter in all four rows has
        // odds below 1e-15, so every estimate is exact.
        let est = Estimator::new(4, 1 << 16);
        for key in 0..100u64 {
            for _ in 0..=key {
                est.incr(key, 1);
            }
        }
        for key in 0..100u64 {
            assert_eq!(est.get(key), key as isize + 1, "key {key}");
        }
    }

    #[test]
    fn never_under_counts() {
        // 20,000 keys in 4 × 256 counters: heavy collisions, so estimates are often high.
        let est = Estimator::new(4, 256);
        let mut truth = HashMap::new();
        for i in 0..20_000u64 {
            let key = format!("client-{}", i % 5000);
            let value = (i % 7) as isize + 1;
            let estimate = est.incr(&key, value);
            let exact = truth.entry(key).or_insert(0);
            *exact += value;
            assert!(estimate >= *exact);
        }
        let mut over = 0;
        for (key, exact) in &truth {
            let estimate = est.get(key);
            assert!(estimate >= *exact, "{key}: {estimate} < {exact}");
            over += usize::from(estimate > *exact);
        }
        assert!(over > 0, "collisions were expected with so few slots");
    }

    #[test]
    fn rows_hash_independently() {
        // Keys that share key 0's counter in row 0 should share its row-1 counter only by
        // chance (1 in 64), not because the rows use the same function.
        let est = Estimator::new(2, 64);
        let cells = |key: u32| -> Vec<*const AtomicIsize> {
            est.cells(est.hash(key)).map(|c| c as *const _).collect()
        };
        let origin = cells(0);
        let same_row0: Vec<_> = (1..20_000u32)
            .map(cells)
            .filter(|c| c[0] == origin[0])
            .collect();
        assert!(same_row0.len() > 150, "row 0 spreads keys evenly");
        let also_row1 = same_row0.iter().filter(|c| c[1] == origin[1]).count();
        assert!(
            also_row1 * 10 < same_row0.len(),
            "{also_row1} of {} also share row 1",
            same_row0.len()
        );
    }

    #[test]
    fn reset_clears_everything() {
        let est = Estimator::new(3, 16);
        for key in 0..50 {
            est.incr(key, 5);
        }
        est.reset();
        assert!((0..50).all(|key| est.get(key) == 0));
        assert_eq!(est.incr(7, 1), 1);
    }

    #[test]
    fn zero_shape_is_clamped() {
        let est = Estimator::new(0, 0);
        assert_eq!(est.incr("x", 3), 3);
        assert_eq!(est.incr("y", 1), 4); // one counter: everything collides
        assert_eq!(format!("{est:?}"), "Estimator { hashes: 1, slots: 1, .. }");
    }

    #[test]
    fn overflow_wraps_instead_of_panicking() {
        let est = Estimator::new(2, 4);
        est.incr("big", isize::MAX);
        assert_eq!(est.incr("big", 1), isize::MIN);
    }

    #[test]
    fn twins_hash_alike_and_count_apart() {
        let est = Estimator::new(4, 128);
        let twin = est.empty_twin();
        let hash = est.hash("k");
        assert_eq!(hash, twin.hash("k"));
        est.incr_hashed(hash, 2);
        assert_eq!(est.get("k"), 2);
        assert_eq!(twin.get("k"), 0);
        twin.incr("k", 5);
        assert_eq!(twin.get_hashed(hash), 5);
    }

    #[test]
    fn concurrent_increments_add_up() {
        let est = Arc::new(Estimator::new(4, 1024));
        let threads = 4;
        let per_thread = 20_000;
        std::thread::scope(|s| {
            for t in 0..threads {
                let est = &est;
                s.spawn(move || {
                    for i in 0..per_thread {
                        est.incr("shared", 1);
                        est.incr((t, i % 10), 1);
                    }
                });
            }
        });
        assert_eq!(est.get("shared"), threads * per_thread);
        for t in 0..threads {
            // Each (thread, i) key is bumped per_thread / 10 times; estimates never fall short.
            assert!(est.get((t, 3)) >= per_thread / 10);
        }
    }
}
