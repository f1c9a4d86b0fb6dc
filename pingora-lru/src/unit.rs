//! [`LruUnit`]: one shard of the LRU, without locking.

use std::collections::{hash_map, HashMap};
use std::fmt;

use foldhash::fast::RandomState;

use crate::chain::{self, Chain};

/// A weighted LRU list of `u64`-keyed items, without locking: one shard of an
/// [`Lru`](crate::Lru).
///
/// A hash map finds a key's position in a doubly linked list kept in `Vec`s, like
/// [`linked_list::LinkedList`](crate::linked_list::LinkedList); the list holds the key, the
/// weight and the data, so an item costs one map entry (12 bytes plus the map's overhead), 8
/// bytes of links and its entry, with no allocation of its own. The front of the list is the
/// most recently used item.
///
/// Weights are taken as given here; [`Lru`](crate::Lru) is the one that raises a weight of
/// zero to one on admission.
pub struct LruUnit<T> {
    slots: HashMap<u64, u32, RandomState>,
    order: Chain<Entry<T>>,
    used_weight: usize,
}

/// A node's value: what the map points at.
struct Entry<T> {
    key: u64,
    weight: usize,
    data: T,
}

impl<T> LruUnit<T> {
    /// Creates an empty unit with room for `capacity` items before it allocates.
    pub fn with_capacity(capacity: usize) -> Self {
        LruUnit {
            slots: HashMap::with_capacity_and_hasher(capacity, RandomState::default()),
            order: Chain::with_capacity(capacity),
            used_weight: 0,
        }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the unit holds no item.
    pub fn is_empty(&self) -> bool {
        self.order.len() == 0
    }

    /// The sum of the weights of all items.
    pub fn used_weight(&self) -> usize {
        self.used_weight
    }

    fn entry(&self, key: u64) -> Option<&Entry<T>> {
        self.order.get(*self.slots.get(&key)?)
    }

    /// The data of `key`, without changing the order.
    pub fn peek(&self, key: u64) -> Option<&T> {
        self.entry(key).map(|entry| &entry.data)
    }

    /// The weight of `key`, without changing the order.
    pub fn peek_weight(&self, key: u64) -> Option<usize> {
        self.entry(key).map(|entry| entry.weight)
    }

    /// Puts `key` at the front with `data` and `weight`.
    ///
    /// If `key` was already present its data and weight are replaced, and the old ones are
    /// returned.
    pub fn admit(&mut self, key: u64, data: T, weight: usize) -> Option<(T, usize)> {
        // One lookup whether the key is new or not.
        match self.slots.entry(key) {
            hash_map::Entry::Occupied(slot) => {
                let at = *slot.get();
                self.order.move_to_front(at);
                let entry = self.order.get_mut(at)?;
                self.used_weight = self.used_weight - entry.weight + weight;
                let old_weight = std::mem::replace(&mut entry.weight, weight);
                let old_data = std::mem::replace(&mut entry.data, data);
                Some((old_data, old_weight))
            }
            hash_map::Entry::Vacant(slot) => {
                slot.insert(self.order.push_front(Entry { key, weight, data }));
                self.used_weight += weight;
                None
            }
        }
    }

    /// Adds `delta` to the weight of `key` and moves it to the front.
    ///
    /// With `max_weight`, the new weight is at most `max_weight`, even if that is below the old
    /// weight. Returns the old and the new weight, or `None` if `key` is absent.
    pub fn increment_weight(
        &mut self,
        key: u64,
        delta: usize,
        max_weight: Option<usize>,
    ) -> Option<(usize, usize)> {
        let at = *self.slots.get(&key)?;
        self.order.move_to_front(at);
        let entry = self.order.get_mut(at)?;
        let old_weight = entry.weight;
        let raised = old_weight.saturating_add(delta);
        let new_weight = max_weight.map_or(raised, |max| raised.min(max));
        entry.weight = new_weight;
        self.used_weight = self.used_weight - old_weight + new_weight;
        Some((old_weight, new_weight))
    }

    /// Moves `key` to the front. Returns `false` if it is absent.
    pub fn promote(&mut self, key: u64) -> bool {
        match self.slots.get(&key) {
            Some(&at) => self.order.move_to_front(at),
            None => false,
        }
    }

    /// Whether `key` is among the `n` most recently used items.
    ///
    /// This walks up to `n` nodes, so keep `n` small.
    pub fn is_in_top_n(&self, key: u64, n: usize) -> bool {
        self.order.any_in_front(n, |entry| entry.key == key)
    }

    /// Removes and returns the least recently used item and its weight.
    pub fn evict(&mut self) -> Option<(T, usize)> {
        let entry = self.order.pop_back()?;
        self.slots.remove(&entry.key);
        self.used_weight -= entry.weight;
        Some((entry.data, entry.weight))
    }

    /// The least recently used item and its weight, without removing it.
    pub fn peek_lru(&self) -> Option<(&T, usize)> {
        let entry = self.order.get(self.order.back()?)?;
        Some((&entry.data, entry.weight))
    }

    /// Removes `key` and returns its data and weight.
    pub fn remove(&mut self, key: u64) -> Option<(T, usize)> {
        let at = self.slots.remove(&key)?;
        let entry = self.order.remove(at)?;
        self.used_weight -= entry.weight;
        Some((entry.data, entry.weight))
    }

    /// Adds `key` at the back, as the least recently used item.
    ///
    /// Returns `false`, changing nothing, if `key` is already present. Adding items with this in
    /// most-to-least recently used order rebuilds a saved order.
    pub fn insert_tail(&mut self, key: u64, data: T, weight: usize) -> bool {
        let hash_map::Entry::Vacant(slot) = self.slots.entry(key) else {
            return false;
        };
        slot.insert(self.order.push_back(Entry { key, weight, data }));
        self.used_weight += weight;
        true
    }

    /// Iterates over the items and their weights from most to least recently used; `.rev()`
    /// goes the other way.
    pub fn iter(&self) -> LruUnitIter<'_, T> {
        LruUnitIter {
            inner: self.order.iter(),
        }
    }

    /// Iterates over the keys from most to least recently used.
    #[cfg(test)]
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.order.iter().map(|(_, entry)| entry.key)
    }
}

impl<T> fmt::Debug for LruUnit<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruUnit")
            .field("len", &self.len())
            .field("used_weight", &self.used_weight)
            .finish_non_exhaustive()
    }
}

/// An iterator over the items of an [`LruUnit`] and their weights, most recently used first,
/// returned by [`LruUnit::iter`].
pub struct LruUnitIter<'a, T> {
    inner: chain::Iter<'a, Entry<T>>,
}

impl<T> fmt::Debug for LruUnitIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LruUnitIter")
            .field("remaining", &self.inner.len())
            .finish()
    }
}

impl<'a, T> Iterator for LruUnitIter<'a, T> {
    type Item = (&'a T, usize);

    fn next(&mut self) -> Option<Self::Item> {
        self.inner
            .next()
            .map(|(_, entry)| (&entry.data, entry.weight))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl<T> DoubleEndedIterator for LruUnitIter<'_, T> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner
            .next_back()
            .map(|(_, entry)| (&entry.data, entry.weight))
    }
}

impl<T> ExactSizeIterator for LruUnitIter<'_, T> {}

#[cfg(test)]
mod tests;
