//! Weighted selection over any [`SelectionAlgorithm`].

use std::collections::BTreeSet;
use std::sync::Arc;

use super::algorithms::FnvHash;
use super::{BackendIter, BackendSelection, SelectionAlgorithm};
use crate::Backend;

/// Picks backends in proportion to their weights.
///
/// The first pick indexes a table where each backend appears `weight` times; the fallbacks
/// rehash the previous number over the plain list, so that they spread evenly.
#[derive(Debug)]
pub struct Weighted<H = FnvHash> {
    backends: Box<[Backend]>,
    /// Indexes into `backends`, each repeated by its weight.
    weighted: Box<[u16]>,
    algorithm: H,
}

impl<H: SelectionAlgorithm> BackendSelection for Weighted<H> {
    type Iter = WeightedIterator<H>;
    type Config = ();

    fn build(backends: &BTreeSet<Backend>) -> Self {
        assert!(
            backends.len() <= usize::from(u16::MAX),
            "weighted selection supports at most {} backends",
            u16::MAX
        );
        let backends: Box<[Backend]> = backends.iter().cloned().collect();
        let weighted = backends
            .iter()
            .enumerate()
            .flat_map(|(i, b)| std::iter::repeat_n(i as u16, b.weight))
            .collect();
        Weighted {
            backends,
            weighted,
            algorithm: H::new(),
        }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> WeightedIterator<H> {
        WeightedIterator {
            index: self.algorithm.next(key),
            selector: Arc::clone(self),
            first: true,
        }
    }
}

/// The backends a [`Weighted`] selector proposes for one key.
#[derive(Debug)]
pub struct WeightedIterator<H> {
    index: u64,
    selector: Arc<Weighted<H>>,
    first: bool,
}

impl<H: SelectionAlgorithm> BackendIter for WeightedIterator<H> {
    fn next(&mut self) -> Option<&Backend> {
        let selector = &*self.selector;
        if selector.backends.is_empty() {
            return None;
        }
        if self.first && !selector.weighted.is_empty() {
            self.first = false;
            let slot = (self.index % selector.weighted.len() as u64) as usize;
            return selector.backends.get(usize::from(selector.weighted[slot]));
        }
        self.first = false;
        self.index = selector.algorithm.next(&self.index.to_le_bytes());
        let slot = (self.index % selector.backends.len() as u64) as usize;
        selector.backends.get(slot)
    }
}
