//! TinyLFU's memory of popularity: a count–min sketch of small saturating counters that is
//! halved at regular intervals, so that what was popular long ago fades away.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::Relaxed};

/// Counters per key: one in each row of the sketch.
const ROWS: usize = 4;
/// Counters saturate here. Four bits are enough to tell "seen a few times" from "seen often",
/// which is all admission needs, and a low ceiling lets the halving forget quickly.
const MAX_COUNT: u8 = 15;
/// Increments between two halvings, as a multiple of the sketch's width.
const WINDOW_PER_SLOT: usize = 8;
/// The narrowest sketch; below this, collisions would swamp the counts of a tiny cache.
const MIN_WIDTH: usize = 16;

/// A frequency sketch shared by all threads. Increments and reads use relaxed atomics: a lost
/// increment under contention only makes an estimate slightly low, which admission tolerates.
pub(crate) struct FrequencySketch {
    /// `ROWS` rows of `mask + 1` counters each, one after the other.
    counters: Box<[AtomicU8]>,
    mask: usize,
    seed: u64,
    /// Increments since the last halving.
    additions: AtomicUsize,
    /// Increments that trigger the next halving.
    window: usize,
}

// === impl FrequencySketch ===

impl FrequencySketch {
    /// A sketch for about `items` distinct keys with one counter per key and row (a quarter of
    /// that when `compact`), rounded up to a power of two.
    pub(crate) fn new(items: usize, compact: bool, seed: u64) -> Self {
        let wanted = if compact { items / 4 } else { items };
        let width = wanted.max(MIN_WIDTH).next_power_of_two();
        let counters = (0..ROWS * width).map(|_| AtomicU8::new(0)).collect();
        FrequencySketch {
            counters,
            mask: width - 1,
            seed,
            additions: AtomicUsize::new(0),
            window: width.saturating_mul(WINDOW_PER_SLOT),
        }
    }

    /// Counts one more sighting of `key` and returns its new estimate.
    pub(crate) fn increment(&self, key: u64) -> u8 {
        // Exactly one thread sees the count reach the window, so only one halves the sketch.
        if self.additions.fetch_add(1, Relaxed) + 1 == self.window {
            self.additions.store(0, Relaxed);
            self.halve();
        }
        let mut estimate = u8::MAX;
        for index in self.indexes(key) {
            let counter = &self.counters[index];
            let count = counter.load(Relaxed);
            let count = if count < MAX_COUNT {
                counter.store(count + 1, Relaxed);
                count + 1
            } else {
                count
            };
            estimate = estimate.min(count);
        }
        estimate
    }

    /// How often `key` was seen recently, never less than the truth (lost increments aside).
    pub(crate) fn estimate(&self, key: u64) -> u8 {
        self.indexes(key)
            .into_iter()
            .map(|index| self.counters[index].load(Relaxed))
            .min()
            .unwrap_or(0)
    }

    /// Halves every counter. Increments racing with it may be lost, which is harmless here.
    fn halve(&self) {
        for counter in self.counters.iter() {
            counter.store(counter.load(Relaxed) >> 1, Relaxed);
        }
    }

    /// The counter of `key` in each row. The key is already a well-mixed hash; one more mix
    /// with the seed gives two independent halves, combined as in double hashing.
    fn indexes(&self, key: u64) -> [usize; ROWS] {
        let mixed = mix(key ^ self.seed);
        let first = mixed as usize;
        let step = ((mixed >> 32) as usize) | 1;
        let width = self.mask + 1;
        std::array::from_fn(|row| {
            (first.wrapping_add(row.wrapping_mul(step)) & self.mask) + row * width
        })
    }

    /// Bytes of counters, for the memory accounting in tests and benches.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.counters.len()
    }
}

/// A 64-bit finaliser (from SplitMix64) so that keys that differ in a few bits land far apart.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_saturates() {
        let sketch = FrequencySketch::new(100, false, 7);
        assert_eq!(sketch.estimate(1), 0);
        assert_eq!(sketch.increment(1), 1);
        assert_eq!(sketch.increment(1), 2);
        assert_eq!(sketch.estimate(1), 2);
        for _ in 0..100 {
            sketch.increment(2);
        }
        assert_eq!(sketch.estimate(2), MAX_COUNT);
    }

    #[test]
    fn never_under_counts_without_contention() {
        let sketch = FrequencySketch::new(64, false, 1);
        // Fewer increments than the window, so no halving happens.
        for key in 0..200u64 {
            for _ in 0..(key % 5) {
                sketch.increment(key);
            }
        }
        for key in 0..200u64 {
            assert!(sketch.estimate(key) >= (key % 5) as u8, "key {key}");
        }
    }

    #[test]
    fn halves_after_the_window() {
        let sketch = FrequencySketch::new(16, false, 3);
        assert_eq!(sketch.len(), ROWS * 16);
        for _ in 0..10 {
            sketch.increment(42);
        }
        assert_eq!(sketch.estimate(42), 10);
        // Another key pushes the increment count up to the window of 16 * 8.
        for _ in 0..(16 * WINDOW_PER_SLOT - 10) {
            sketch.increment(7);
        }
        assert_eq!(sketch.estimate(42), 5);
        // The increment that reached the window counted after the halving.
        assert_eq!(sketch.estimate(7), MAX_COUNT / 2 + 1);
    }

    #[test]
    fn compact_is_smaller() {
        let full = FrequencySketch::new(4096, false, 0);
        let compact = FrequencySketch::new(4096, true, 0);
        assert_eq!(full.len(), 4 * compact.len());
    }
}
