//! Selection algorithms: which backend serves a request.
//!
//! A selector is built from the set of backends each time it changes, and shared by all
//! requests ([`BackendSelection`]). For each request it yields backends in the order to try
//! them ([`BackendIter`]): the first is the algorithm's choice, the following ones the
//! fallbacks when the first is unhealthy or refused.

pub mod algorithms;
pub mod consistent;
pub mod weighted;

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::Backend;

pub use weighted::Weighted;

/// A selector built from a set of backends.
pub trait BackendSelection: Sized {
    /// The iterator [`BackendSelection::iter`] returns.
    type Iter;
    /// What the selector is configured with (`()` for most;
    /// [`KetamaConfig`](consistent::KetamaConfig) for ketama).
    type Config: Send + Sync;

    /// A selector over `backends`, configured with `config`. By default the configuration
    /// is ignored: [`build`](Self::build).
    fn build_with_config(backends: &BTreeSet<Backend>, _config: &Self::Config) -> Self {
        Self::build(backends)
    }

    /// A selector over `backends` with the default configuration.
    fn build(backends: &BTreeSet<Backend>) -> Self;

    /// The backends to try for `key`, best first.
    fn iter(self: &Arc<Self>, key: &[u8]) -> Self::Iter
    where
        Self::Iter: BackendIter;
}

/// The backends to try for one request, in order.
pub trait BackendIter {
    /// The next backend to try; `None` when there are no more.
    fn next(&mut self) -> Option<&Backend>;
}

/// Turns a key into a number that picks a backend.
pub trait SelectionAlgorithm {
    /// A new instance (an algorithm may keep state, such as a counter).
    fn new() -> Self;
    /// The number for `key`.
    fn next(&self, key: &[u8]) -> u64;
}

/// Round robin, weighted.
pub type RoundRobin = Weighted<algorithms::RoundRobin>;
/// Random choice, weighted.
pub type Random = Weighted<algorithms::Random>;
/// FNV-1a hash of the key, weighted: the same key goes to the same backend while the set of
/// backends does not change.
pub type FNVHash = Weighted<algorithms::FnvHash>;
/// The misspelt name of [`FNVHash`] older code uses.
pub type FVNHash = FNVHash;
/// Ketama consistent hashing, compatible with nginx's `hash ... consistent`: when a backend
/// comes or goes, only the keys it served move.
pub type Consistent = consistent::KetamaHashing;

/// Yields the backends of an iterator once each, trying at most `max_iterations` of them.
#[derive(Debug)]
pub struct UniqueIterator<I: BackendIter> {
    iter: I,
    /// The key of the first backend returned: most selections stop there, so it is kept
    /// apart from `seen`, which then allocates nothing.
    first: Option<u64>,
    /// The keys of the others.
    seen: Vec<u64>,
    steps: usize,
    max_iterations: usize,
}

impl<I: BackendIter> UniqueIterator<I> {
    /// Wraps `iter`, looking at most at `max_iterations` of its items.
    pub fn new(iter: I, max_iterations: usize) -> Self {
        UniqueIterator {
            iter,
            first: None,
            seen: Vec::new(),
            steps: 0,
            max_iterations,
        }
    }

    /// The next backend not yet returned.
    pub fn get_next(&mut self) -> Option<Backend> {
        self.next_with_key().map(|(backend, _)| backend)
    }

    /// The next backend not yet returned, with its [`Backend::hash_key`].
    pub(crate) fn next_with_key(&mut self) -> Option<(Backend, u64)> {
        while self.steps < self.max_iterations {
            self.steps += 1;
            let backend = self.iter.next()?;
            let key = backend.hash_key();
            match self.first {
                None => self.first = Some(key),
                Some(first) if first == key || self.seen.contains(&key) => continue,
                Some(_) => self.seen.push(key),
            }
            return Some((backend.clone(), key));
        }
        None
    }
}

#[cfg(test)]
mod tests;
