//! Event rates per key over fixed time windows.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::estimator::Estimator;

/// Default rows of each window's sketch.
const HASHES: usize = 4;
/// Default counters per row. Fewer suffice when few keys are seen per window.
const SLOTS: usize = 1024;

/// What [`Rate::rate_with`] hands to its closure.
///
/// If the interval is 10 s and the call comes 2 s into the current window,
/// `current_interval_fraction` is 0.2.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct RateComponents {
    /// Events of the key in the previous, complete window (0 if that window is older than
    /// one interval ago, that is, if no event was observed in it).
    pub prev_samples: isize,
    /// Events of the key so far in the current window.
    pub curr_samples: isize,
    /// The window length.
    pub interval: Duration,
    /// How much of the current window has passed, in `[0, 1)`.
    pub current_interval_fraction: f64,
}

/// Events per second over the last `interval`, interpolating between the previous and current
/// windows: the previous window counts for the part of it that is still within one interval of
/// now. This is the sliding-window estimate described in
/// <https://blog.cloudflare.com/counting-things-a-lot-of-different-things/>.
pub static PROPORTIONAL_RATE_ESTIMATE_CALC_FN: fn(RateComponents) -> f64 = |c| {
    let prev = c.prev_samples as f64;
    let curr = c.curr_samples as f64;
    (prev * (1.0 - c.current_interval_fraction) + curr) / c.interval.as_secs_f64()
};

/// Counts events per key in consecutive windows of `interval` and reports rates from them.
///
/// Time is cut into windows of exactly `interval`, counted from the creation of the `Rate`.
/// Two sketches ([`Estimator`]s) take turns: one counts the current window, the other holds
/// the previous one. The first observation in a new window clears the older sketch and makes
/// it current; this swap is lock-free, and reads never clear anything.
///
/// [`Rate::rate`] is the previous complete window's count divided by the interval;
/// [`Rate::rate_with`] lets the caller combine both windows (see
/// [`PROPORTIONAL_RATE_ESTIMATE_CALC_FN`]).
///
/// Observations racing with a swap, at the very edge of a window, may be counted in the
/// window before; observations racing with the swap after an idle gap of two windows or more
/// may be lost.
pub struct Rate {
    /// Sketch `w % 2` counts window `w`; both hash keys alike.
    sketches: [Estimator; 2],
    /// `window << 1 | swapping`: the current window, and whether a thread is clearing the
    /// sketch of a newer one.
    state: AtomicU64,
    start: Instant,
    interval_nanos: u64,
    interval: Duration,
}

// === impl Rate ===

impl Rate {
    /// Rates over windows of `interval`, with sketches of 4 rows × 1024 counters. An interval
    /// below one nanosecond counts as one nanosecond.
    pub fn new(interval: Duration) -> Self {
        Rate::new_with_estimator_config(interval, HASHES, SLOTS)
    }

    /// Rates over windows of `interval`, with sketches of `hashes` rows × `slots` counters (see
    /// [`Estimator::new`]).
    pub fn new_with_estimator_config(interval: Duration, hashes: usize, slots: usize) -> Self {
        let current = Estimator::new(hashes, slots);
        let previous = current.empty_twin();
        let interval_nanos = u64::try_from(interval.as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Rate {
            sketches: [current, previous],
            state: AtomicU64::new(0),
            start: Instant::now(),
            interval_nanos,
            interval: Duration::from_nanos(interval_nanos),
        }
    }

    /// Adds `events` to `key` in the current window and returns the key's count in that
    /// window so far.
    pub fn observe<T: Hash>(&self, key: &T, events: isize) -> isize {
        let (now, _) = self.now();
        let window = self.advance(now);
        let sketch = &self.sketches[parity(window)];
        sketch.incr_hashed(sketch.hash(key), events)
    }

    /// Events per second of `key` in the previous complete window: 0 until one window has
    /// passed, and 0 again once a whole window passes without any observation.
    pub fn rate<T: Hash>(&self, key: &T) -> f64 {
        self.rate_with(key, |c| c.prev_samples as f64 / c.interval.as_secs_f64())
    }

    /// Computes a rate for `key` with `rate_calc_fn` from the counts of the previous and current
    /// windows, the interval, and how far into the current window we are.
    pub fn rate_with<F, T, K>(&self, key: &K, mut rate_calc_fn: F) -> T
    where
        F: FnMut(RateComponents) -> T,
        K: Hash,
    {
        // Read the state before the clock, so `now` is never behind the published window.
        let published = self.state.load(Ordering::Acquire) >> 1;
        let (now, into_window) = self.now();
        let hash = self.sketches[0].hash(key);
        let (prev_samples, curr_samples) = match now.saturating_sub(published) {
            0 => (
                self.sketches[parity(published + 1)].get_hashed(hash),
                self.sketches[parity(published)].get_hashed(hash),
            ),
            // Nothing observed yet in this window: the published one has become the previous.
            1 => (self.sketches[parity(published)].get_hashed(hash), 0),
            _ => (0, 0),
        };
        rate_calc_fn(RateComponents {
            prev_samples,
            curr_samples,
            interval: self.interval,
            current_interval_fraction: into_window as f64 / self.interval_nanos as f64,
        })
    }

    /// The current window number and how many nanoseconds into it we are.
    fn now(&self) -> (u64, u64) {
        let elapsed = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        (elapsed / self.interval_nanos, elapsed % self.interval_nanos)
    }

    /// Makes `now` the current window if it is newer than the published one, and returns the
    /// window to count in. One thread clears the sketches and publishes; the others keep using
    /// the published window meanwhile.
    fn advance(&self, now: u64) -> u64 {
        let state = self.state.load(Ordering::Acquire);
        let published = state >> 1;
        if now <= published || state & 1 == 1 {
            return published;
        }
        if self
            .state
            .compare_exchange(state, state | 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return published;
        }
        // This thread won the swap. The sketch of `now` last counted `now - 2` (or earlier):
        // clear it before anyone counts in it. After a gap, the previous window saw nothing,
        // so clear that sketch too.
        self.sketches[parity(now)].reset();
        if now - published >= 2 {
            self.sketches[parity(now + 1)].reset();
        }
        self.state.store(now << 1, Ordering::Release);
        now
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rate")
            .field("interval", &self.interval)
            .field("window", &(self.state.load(Ordering::Relaxed) >> 1))
            .field("sketch", &self.sketches[0])
            .finish()
    }
}

/// Which of the two sketches counts `window`.
fn parity(window: u64) -> usize {
    (window & 1) as usize
}

#[cfg(test)]
mod tests;
