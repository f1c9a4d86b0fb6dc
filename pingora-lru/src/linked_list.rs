//! A doubly linked list of `u64` values kept in one preallocated `Vec`.
//!
//! Each push returns the value's *index*, a handle that stays valid until that value is removed
//! and that makes [`promote`](LinkedList::promote) and [`remove`](LinkedList::remove) O(1)
//! without a search. Nodes are not allocated one by one: they sit side by side in a `Vec`, so the
//! list does not fragment the heap, and slots freed by removals are reused by later pushes. The
//! storage never shrinks.
//!
//! ```
//! use pingora_lru::linked_list::LinkedList;
//!
//! let mut list = LinkedList::with_capacity(4);
//! let first = list.push_head(1);
//! list.push_head(2);
//! list.push_tail(3);
//! assert_eq!(list.iter().copied().collect::<Vec<_>>(), [2, 1, 3]);
//!
//! list.promote(first);
//! assert_eq!(list.iter().copied().collect::<Vec<_>>(), [1, 2, 3]);
//! assert_eq!(list.pop_tail(), Some(3));
//! ```

use std::fmt;

use crate::chain::{self, Chain};

/// A doubly linked list of `u64` values stored in a preallocated `Vec` and addressed by
/// index.
///
/// The head is the front (most recently pushed or promoted with
/// [`push_head`](Self::push_head) / [`promote`](Self::promote)), the tail the back. An index
/// returned by a push stays valid until that value leaves the list; after that it may be handed
/// out again for another value. A list holds at most `u32::MAX - 1` values.
pub struct LinkedList {
    chain: Chain<u64>,
}

impl fmt::Debug for LinkedList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl LinkedList {
    /// Creates an empty list with room for `capacity` values before it allocates.
    pub fn with_capacity(capacity: usize) -> Self {
        LinkedList {
            chain: Chain::with_capacity(capacity),
        }
    }

    /// The number of values in the list.
    pub fn len(&self) -> usize {
        self.chain.len()
    }

    /// Whether the list holds no value.
    pub fn is_empty(&self) -> bool {
        self.chain.len() == 0
    }

    /// The value at `index`, or `None` if `index` holds no value (never returned by a push, or
    /// removed since).
    pub fn peek(&self, index: usize) -> Option<u64> {
        self.chain.get(position(index)?).copied()
    }

    /// Whether `value` is among the first `search_limit` values from the head.
    ///
    /// This walks up to `search_limit` nodes, so keep the limit small.
    pub fn exist_near_head(&self, value: u64, search_limit: usize) -> bool {
        self.chain.any_in_front(search_limit, |v| *v == value)
    }

    /// Adds `data` at the head and returns its index.
    ///
    /// # Panics
    ///
    /// If the list already holds `u32::MAX - 1` values.
    pub fn push_head(&mut self, data: u64) -> usize {
        self.chain.push_front(data) as usize
    }

    /// Adds `data` at the tail and returns its index.
    ///
    /// # Panics
    ///
    /// If the list already holds `u32::MAX - 1` values.
    pub fn push_tail(&mut self, data: u64) -> usize {
        self.chain.push_back(data) as usize
    }

    /// Removes and returns the value at `index`.
    ///
    /// # Panics
    ///
    /// If `index` holds no value. Use [`peek`](Self::peek) first when unsure.
    pub fn remove(&mut self, index: usize) -> u64 {
        position(index)
            .and_then(|at| self.chain.remove(at))
            .unwrap_or_else(|| panic!("LinkedList::remove: index {index} holds no value"))
    }

    /// Removes and returns the value at the tail, if any.
    pub fn pop_tail(&mut self) -> Option<u64> {
        self.chain.pop_back()
    }

    /// Moves the value at `index` to the head.
    ///
    /// # Panics
    ///
    /// If `index` holds no value.
    pub fn promote(&mut self, index: usize) {
        let moved = position(index).is_some_and(|at| self.chain.move_to_front(at));
        assert!(moved, "LinkedList::promote: index {index} holds no value");
    }

    /// The index of the head value, if any.
    pub fn head(&self) -> Option<usize> {
        self.chain.front().map(|at| at as usize)
    }

    /// The index of the tail value, if any.
    pub fn tail(&self) -> Option<usize> {
        self.chain.back().map(|at| at as usize)
    }

    /// Iterates over the values from head to tail; `.rev()` goes from tail to head.
    pub fn iter(&self) -> LinkedListIter<'_> {
        LinkedListIter {
            inner: self.chain.iter(),
        }
    }
}

/// Converts a public index to a chain position; indices beyond `u32` hold nothing.
fn position(index: usize) -> Option<u32> {
    u32::try_from(index).ok()
}

/// An iterator over the values of a [`LinkedList`], head to tail, returned by
/// [`LinkedList::iter`].
pub struct LinkedListIter<'a> {
    inner: chain::Iter<'a, u64>,
}

impl fmt::Debug for LinkedListIter<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkedListIter")
            .field("remaining", &self.inner.len())
            .finish()
    }
}

impl<'a> Iterator for LinkedListIter<'a> {
    type Item = &'a u64;

    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next().map(|(_, value)| value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

impl DoubleEndedIterator for LinkedListIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back().map(|(_, value)| value)
    }
}

impl ExactSizeIterator for LinkedListIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(list: &LinkedList) -> Vec<u64> {
        list.iter().copied().collect()
    }

    #[test]
    fn push_peek_head_tail() {
        let mut list = LinkedList::with_capacity(10);
        assert!(list.is_empty());
        assert_eq!((list.head(), list.tail()), (None, None));
        assert_eq!(list.peek(0), None, "the sentinel is not a value");
        assert_eq!(list.peek(usize::MAX), None);

        let two = list.push_head(2);
        let three = list.push_head(3);
        let four = list.push_tail(4);
        assert_eq!(list.len(), 3);
        assert_eq!((list.head(), list.tail()), (Some(three), Some(four)));
        assert_eq!(list.peek(two), Some(2));
        assert_eq!(values(&list), [3, 2, 4]);
        assert_eq!(list.iter().rev().copied().collect::<Vec<_>>(), [4, 2, 3]);
        assert_eq!(list.iter().len(), 3);
    }

    #[test]
    fn remove_pop_and_reuse() {
        let mut list = LinkedList::with_capacity(2);
        let a = list.push_tail(1);
        let b = list.push_tail(2);
        let c = list.push_tail(3);
        assert_eq!(list.remove(b), 2);
        assert_eq!(list.peek(b), None, "removed values are gone");
        assert_eq!(values(&list), [1, 3]);
        assert_eq!(list.pop_tail(), Some(3));
        assert_eq!(list.peek(c), None);
        let d = list.push_head(4);
        assert!(d == b || d == c, "a freed index is reused");
        assert_eq!(values(&list), [4, 1]);
        assert_eq!(list.pop_tail(), Some(1));
        assert_eq!(list.pop_tail(), Some(4));
        assert_eq!(list.pop_tail(), None);
        assert_eq!(list.peek(a), None);
        assert!(list.is_empty());
    }

    #[test]
    fn promote_moves_to_head() {
        let mut list = LinkedList::with_capacity(4);
        let idx: Vec<usize> = (0..4).map(|v| list.push_tail(v)).collect();
        list.promote(idx[3]);
        assert_eq!(values(&list), [3, 0, 1, 2]);
        list.promote(idx[3]);
        assert_eq!(values(&list), [3, 0, 1, 2]);
        list.promote(idx[1]);
        assert_eq!(values(&list), [1, 3, 0, 2]);
        assert_eq!(list.tail(), Some(idx[2]));
    }

    #[test]
    fn exist_near_head_searches_only_the_limit() {
        let mut list = LinkedList::with_capacity(4);
        for v in [1, 2, 3] {
            list.push_tail(v);
        }
        assert!(list.exist_near_head(1, 1));
        assert!(!list.exist_near_head(2, 1));
        assert!(list.exist_near_head(3, 3));
        assert!(list.exist_near_head(3, 100));
        assert!(!list.exist_near_head(9, 100));
        assert!(!list.exist_near_head(1, 0));
    }

    #[test]
    #[should_panic(expected = "holds no value")]
    fn remove_of_a_free_index_panics() {
        let mut list = LinkedList::with_capacity(1);
        let a = list.push_head(1);
        list.remove(a);
        list.remove(a);
    }

    #[test]
    #[should_panic(expected = "holds no value")]
    fn promote_of_an_unknown_index_panics() {
        let mut list = LinkedList::with_capacity(1);
        list.push_head(1);
        list.promote(5);
    }
}
