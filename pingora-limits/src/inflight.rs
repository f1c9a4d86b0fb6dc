//! Counting what is in progress, per key, with counts that undo themselves.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

use crate::estimator::Estimator;

/// Rows of the sketch. Lookups cost one atomic operation per row.
const HASHES: usize = 4;
/// Counters per row: with `k` keys in flight, a key is over-counted with odds about
/// `(k / 8192)^4`, so a few thousand concurrent keys stay exact in practice (256 KiB in all).
const SLOTS: usize = 8192;

/// Counts in-progress work per key, such as open requests per client, for concurrency limits.
///
/// [`Inflight::incr`] adds to a key and returns a [`Guard`]; dropping the guard takes the
/// amount back, so early returns and panics cannot leak counts. Counts are estimates from an
/// [`Estimator`]: never too low, rarely too high.
///
/// ```
/// use pingora_limits::inflight::Inflight;
///
/// let inflight = Inflight::new();
/// let (first, count) = inflight.incr("client", 1);
/// assert_eq!(count, 1);
/// let (_second, count) = inflight.incr("client", 1);
/// assert_eq!(count, 2);
/// drop(first);
/// assert_eq!(inflight.incr("client", 0).1, 1);
/// ```
pub struct Inflight {
    estimator: Arc<Estimator>,
}

// === impl Inflight ===

impl Inflight {
    /// An empty counter.
    pub fn new() -> Self {
        Inflight {
            estimator: Arc::new(Estimator::new(HASHES, SLOTS)),
        }
    }

    /// Adds `value` to `key`. Returns the guard that will subtract it again and the key's new
    /// estimated count.
    pub fn incr<T: Hash>(&self, key: T, value: isize) -> (Guard, isize) {
        let id = self.estimator.hash(key);
        let count = self.estimator.incr_hashed(id, value);
        let guard = Guard {
            estimator: Arc::clone(&self.estimator),
            id,
            value,
            held: AtomicIsize::new(value),
        };
        (guard, count)
    }
}

impl Default for Inflight {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Inflight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inflight")
            .field("estimator", &self.estimator)
            .finish()
    }
}

/// What [`Inflight::incr`] added to a key; dropping it subtracts everything the guard added.
///
/// The guard keeps the key's hash rather than the key, and shares the counters with its
/// [`Inflight`], which it may outlive.
pub struct Guard {
    estimator: Arc<Estimator>,
    /// The key's hash.
    id: u64,
    /// The amount each [`Guard::incr`] adds.
    value: isize,
    /// Everything this guard has added, subtracted on drop.
    held: AtomicIsize,
}

// === impl Guard ===

impl Guard {
    /// Adds the guard's amount to its key once more and returns the key's new estimated count.
    /// Dropping the guard takes back every amount it added.
    pub fn incr(&self) -> isize {
        self.held.fetch_add(self.value, Ordering::Relaxed);
        self.estimator.incr_hashed(self.id, self.value)
    }

    /// The estimated count of the guard's key.
    pub fn get(&self) -> isize {
        self.estimator.get_hashed(self.id)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.estimator.decr_hashed(self.id, *self.held.get_mut());
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("id", &self.id)
            .field("value", &self.value)
            .field("held", &self.held.load(Ordering::Relaxed))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_guards_gives_counts_back() {
        let inflight = Inflight::new();
        let (g1, count) = inflight.incr("a", 1);
        assert_eq!(count, 1);
        let (g2, count) = inflight.incr("a", 2);
        assert_eq!(count, 3);
        let (other, count) = inflight.incr("b", 5);
        assert_eq!(count, 5);

        drop(g1);
        assert_eq!(g2.get(), 2);
        drop(g2);
        assert_eq!(other.get(), 5);
        assert_eq!(inflight.incr("a", 1).1, 1);
    }

    #[test]
    fn guard_incr_is_undone_on_drop() {
        let inflight = Inflight::new();
        let (guard, _) = inflight.incr("k", 2);
        assert_eq!(guard.incr(), 4);
        assert_eq!(guard.incr(), 6);
        assert_eq!(guard.get(), 6);
        drop(guard);
        let (probe, count) = inflight.incr("k", 0);
        assert_eq!(count, 0);
        assert_eq!(probe.get(), 0);
    }

    #[test]
    fn guard_outlives_its_inflight() {
        let inflight = Inflight::default();
        let (guard, _) = inflight.incr(42u64, 1);
        drop(inflight);
        assert_eq!(guard.get(), 1);
        assert!(format!("{guard:?}").contains("held: 1"));
    }

    #[test]
    fn guards_work_across_threads() {
        let inflight = Inflight::new();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            for _ in 0..4 {
                let tx = tx.clone();
                let inflight = &inflight;
                s.spawn(move || {
                    for _ in 0..100 {
                        let (guard, _) = inflight.incr("shared", 1);
                        tx.send(guard).expect("receiver alive");
                    }
                });
            }
        });
        drop(tx);
        let guards: Vec<Guard> = rx.iter().collect();
        assert_eq!(guards.len(), 400);
        assert_eq!(guards[0].get(), 400);
        drop(guards);
        assert_eq!(inflight.incr("shared", 0).1, 0);
    }

    #[test]
    fn a_panic_releases_the_guard() {
        let inflight = Inflight::new();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let (_guard, _) = inflight.incr("job", 1);
            panic!("worker failed");
        }));
        assert!(result.is_err());
        assert_eq!(inflight.incr("job", 0).1, 0);
    }
}
