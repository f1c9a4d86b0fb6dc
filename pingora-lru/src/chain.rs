//! The doubly linked list behind both [`LinkedList`](crate::linked_list::LinkedList) and
//! [`LruUnit`](crate::LruUnit): nodes live in `Vec`s and link to each other by position.
//!
//! The links and the values are kept apart, in two `Vec`s indexed alike: walking or relinking
//! the list (promotion, removal) touches only the 8-byte links, which pack densely, and a walk
//! steps from one link to the next with a shift rather than a multiply.
//!
//! Position 0 is a sentinel that closes the list into a ring: its `next` is the head and its
//! `prev` the tail, so linking and unlinking never branch on "first" or "last". Freed positions
//! hold no value and are chained through `next` into a free list that later pushes reuse, so a
//! list that has once held `n` values never allocates again while it holds at most `n`. The
//! `Vec`s never shrink.
//!
//! Positions are `u32`, so a list holds at most `u32::MAX - 1` values.

/// The sentinel's position, and "none" at the end of the free list.
const SENTINEL: u32 = 0;

/// Above this many positions the `Vec`s grow by an eighth instead of doubling, so a large
/// list wastes at most about 12% of its memory on spare capacity.
const GEOMETRIC_GROWTH_LIMIT: usize = 1 << 16;

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

/// A doubly linked list over `Vec`s, addressed by stable positions.
pub(crate) struct Chain<V> {
    links: Vec<Link>,
    /// `None` at the sentinel and at free positions.
    values: Vec<Option<V>>,
    /// First free position, or `SENTINEL` when none is free.
    free: u32,
    len: usize,
}

impl<V> Chain<V> {
    /// An empty list with room for `capacity` values before it allocates again.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut links = Vec::with_capacity(capacity.saturating_add(1));
        let mut values = Vec::with_capacity(capacity.saturating_add(1));
        links.push(Link {
            prev: SENTINEL,
            next: SENTINEL,
        });
        values.push(None);
        Chain {
            links,
            values,
            free: SENTINEL,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The number of positions allocated so far, used or free.
    #[cfg(test)]
    pub(crate) fn slots(&self) -> usize {
        self.links.len() - 1
    }

    fn link(&self, at: u32) -> Link {
        self.links[at as usize]
    }

    fn link_mut(&mut self, at: u32) -> &mut Link {
        &mut self.links[at as usize]
    }

    /// Whether `at` holds a value (the sentinel and free positions do not).
    pub(crate) fn contains(&self, at: u32) -> bool {
        self.get(at).is_some()
    }

    pub(crate) fn get(&self, at: u32) -> Option<&V> {
        self.values.get(at as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, at: u32) -> Option<&mut V> {
        self.values.get_mut(at as usize)?.as_mut()
    }

    /// The front position, if any.
    pub(crate) fn front(&self) -> Option<u32> {
        Some(self.link(SENTINEL).next).filter(|&at| at != SENTINEL)
    }

    /// The back position, if any.
    pub(crate) fn back(&self) -> Option<u32> {
        Some(self.link(SENTINEL).prev).filter(|&at| at != SENTINEL)
    }

    /// Takes a position for `value`: a free one if there is one, else a new one at the end.
    fn allocate(&mut self, value: V) -> u32 {
        if self.free != SENTINEL {
            let at = self.free;
            self.free = self.link(at).next;
            self.values[at as usize] = Some(value);
            return at;
        }
        let at = u32::try_from(self.links.len())
            .ok()
            .filter(|&at| at != u32::MAX)
            .expect("a linked list holds at most u32::MAX - 1 values");
        if self.links.len() == self.links.capacity() && self.links.len() > GEOMETRIC_GROWTH_LIMIT {
            let more = self.links.len() / 8;
            self.links.reserve_exact(more);
            self.values.reserve_exact(more);
        }
        self.links.push(Link {
            prev: SENTINEL,
            next: SENTINEL,
        });
        self.values.push(Some(value));
        at
    }

    /// Links the detached position `at` right after `after`.
    fn link_after(&mut self, at: u32, after: u32) {
        let next = self.link(after).next;
        self.link_mut(after).next = at;
        self.link_mut(next).prev = at;
        *self.link_mut(at) = Link { prev: after, next };
    }

    /// Detaches the linked position `at` from its neighbours.
    fn unlink(&mut self, at: u32) {
        let Link { prev, next } = self.link(at);
        self.link_mut(prev).next = next;
        self.link_mut(next).prev = prev;
    }

    pub(crate) fn push_front(&mut self, value: V) -> u32 {
        let at = self.allocate(value);
        self.link_after(at, SENTINEL);
        self.len += 1;
        at
    }

    pub(crate) fn push_back(&mut self, value: V) -> u32 {
        let at = self.allocate(value);
        let tail = self.link(SENTINEL).prev;
        self.link_after(at, tail);
        self.len += 1;
        at
    }

    /// Removes the value at `at`; `None` (and no change) if `at` holds none.
    pub(crate) fn remove(&mut self, at: u32) -> Option<V> {
        let value = self.values.get_mut(at as usize)?.take()?;
        self.unlink(at);
        *self.link_mut(at) = Link {
            prev: SENTINEL,
            next: self.free,
        };
        self.free = at;
        self.len -= 1;
        Some(value)
    }

    pub(crate) fn pop_back(&mut self) -> Option<V> {
        self.back().and_then(|at| self.remove(at))
    }

    /// Moves the value at `at` to the front; `false` if `at` holds none.
    pub(crate) fn move_to_front(&mut self, at: u32) -> bool {
        if !self.contains(at) {
            return false;
        }
        if self.link(SENTINEL).next != at {
            self.unlink(at);
            self.link_after(at, SENTINEL);
        }
        true
    }

    /// Whether one of the first `n` values from the front satisfies `pred`.
    pub(crate) fn any_in_front(&self, n: usize, mut pred: impl FnMut(&V) -> bool) -> bool {
        self.iter().take(n).any(|(_, value)| pred(value))
    }

    pub(crate) fn iter(&self) -> Iter<'_, V> {
        let sentinel = self.link(SENTINEL);
        Iter {
            chain: self,
            front: sentinel.next,
            back: sentinel.prev,
            remaining: self.len,
        }
    }
}

/// Walks a [`Chain`] from front to back (or back to front), yielding positions and values.
pub(crate) struct Iter<'a, V> {
    chain: &'a Chain<V>,
    /// Next position from the front and from the back; only meaningful while `remaining > 0`.
    front: u32,
    back: u32,
    remaining: usize,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = (u32, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let at = self.front;
        self.front = self.chain.link(at).next;
        self.remaining -= 1;
        self.chain.get(at).map(|value| (at, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<V> DoubleEndedIterator for Iter<'_, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let at = self.back;
        self.back = self.chain.link(at).prev;
        self.remaining -= 1;
        self.chain.get(at).map(|value| (at, value))
    }
}

impl<V> ExactSizeIterator for Iter<'_, V> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(chain: &Chain<u64>) -> Vec<u64> {
        chain.iter().map(|(_, v)| *v).collect()
    }

    #[test]
    fn push_remove_and_reuse_slots() {
        let mut chain = Chain::with_capacity(2);
        let a = chain.push_front(1);
        let b = chain.push_back(2);
        let c = chain.push_front(3);
        assert_eq!(values(&chain), [3, 1, 2]);
        assert_eq!((chain.front(), chain.back()), (Some(c), Some(b)));

        assert_eq!(chain.remove(a), Some(1));
        assert_eq!(chain.remove(a), None, "a freed slot holds nothing");
        assert!(!chain.contains(a));
        assert_eq!(values(&chain), [3, 2]);

        // The freed slot is reused before the Vec grows.
        let d = chain.push_back(4);
        assert_eq!(d, a);
        assert_eq!(chain.slots(), 3);
        assert_eq!(values(&chain), [3, 2, 4]);
        assert_eq!(chain.len(), 3);
    }

    #[test]
    fn sentinel_and_out_of_range_positions_are_not_values() {
        let mut chain = Chain::with_capacity(0);
        assert_eq!(chain.remove(SENTINEL), None);
        assert!(!chain.move_to_front(SENTINEL));
        assert!(!chain.move_to_front(99));
        assert_eq!(chain.get(99), None);
        assert_eq!(chain.pop_back(), None);
        chain.push_front(7);
        assert_eq!(chain.remove(SENTINEL), None);
        assert_eq!(values(&chain), [7]);
    }

    #[test]
    fn move_to_front_and_iterate_both_ways() {
        let mut chain = Chain::with_capacity(4);
        let at: Vec<u32> = (0..4).map(|v| chain.push_back(v)).collect();
        assert!(chain.move_to_front(at[2]));
        assert!(chain.move_to_front(at[2]), "already at the front");
        assert_eq!(values(&chain), [2, 0, 1, 3]);
        let back: Vec<u64> = chain.iter().rev().map(|(_, v)| *v).collect();
        assert_eq!(back, [3, 1, 0, 2]);

        let mut iter = chain.iter();
        assert_eq!(iter.len(), 4);
        assert_eq!(iter.next().map(|(_, v)| *v), Some(2));
        assert_eq!(iter.next_back().map(|(_, v)| *v), Some(3));
        assert_eq!(iter.next().map(|(_, v)| *v), Some(0));
        assert_eq!(iter.next_back().map(|(_, v)| *v), Some(1));
        assert_eq!(iter.next(), None);
        assert_eq!(iter.next_back(), None);

        assert!(chain.any_in_front(1, |v| *v == 2));
        assert!(!chain.any_in_front(3, |v| *v == 3));
        assert!(chain.any_in_front(4, |v| *v == 3));
        assert_eq!(chain.pop_back(), Some(3));
        assert_eq!(
            chain.get_mut(at[0]).map(|v| std::mem::replace(v, 9)),
            Some(0)
        );
        assert_eq!(values(&chain), [2, 9, 1]);
    }

    #[test]
    fn large_lists_grow_by_an_eighth() {
        let mut chain = Chain::with_capacity(GEOMETRIC_GROWTH_LIMIT + 10);
        for v in 0..GEOMETRIC_GROWTH_LIMIT as u64 + 11 {
            chain.push_back(v);
        }
        let capacity = chain.links.capacity();
        assert!(chain.values.capacity() < (GEOMETRIC_GROWTH_LIMIT + 11) * 5 / 4);
        assert!(
            capacity < (GEOMETRIC_GROWTH_LIMIT + 11) * 5 / 4,
            "{capacity}"
        );
    }
}
