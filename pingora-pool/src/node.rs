//! A group of interchangeable items: a small lock-free hot queue in front of a locked overflow.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_queue::ArrayQueue;
use lru::LruCache;
use parking_lot::Mutex;

use crate::ID;

/// Slots in each hot queue. Small, because removing an item from the queue is O(slots).
pub(crate) const HOT_QUEUE_SIZE: usize = 16;

/// Interchangeable items, each under a unique key.
///
/// Inserts go to a lock-free [`ArrayQueue`] of [`HOT_QUEUE_SIZE`] slots and spill into a
/// mutex-protected overflow when it is full. Takes pop from the hot queue (oldest first), then
/// from the overflow (newest first). So a group that cycles through up to 16 items never takes
/// a lock, and in a larger group the items that went cold sit in the overflow, where they are
/// the first to age out.
///
/// Removal by key is rare (eviction, idle close). It is serialised by `remove_lock`, so while
/// one remover rotates the hot queue no other remover can miss an item that rotation has in
/// hand. A concurrent [`pop`](Self::pop) may miss such an item and report the group empty:
/// callers treat that as "no idle item", never as an error.
pub(crate) struct Node<K, T> {
    hot: ArrayQueue<(K, T)>,
    overflow: Mutex<LruCache<K, T>>,
    /// Mirror of `overflow.len()`, written under its lock, so `pop` can skip the lock.
    overflow_len: AtomicUsize,
    remove_lock: Mutex<()>,
}

/// A pool of interchangeable items, such as the HTTP/2 connections to one peer.
///
/// [`insert`](Self::insert) and [`get_any`](Self::get_any) are lock-free while the pool holds
/// at most 16 items; beyond that the extra items live in a locked overflow map.
/// [`remove`](Self::remove) takes a specific item out by its ID.
///
/// IDs are expected to be unique within one pool: inserting an ID that is already in the
/// overflow map replaces (drops) the older item.
///
/// ```
/// use pingora_pool::PoolNode;
///
/// let pool = PoolNode::new();
/// pool.insert(1, "a");
/// pool.insert(2, "b");
/// assert_eq!(pool.remove(2), Some("b"));
/// assert_eq!(pool.get_any(), Some((1, "a")));
/// assert!(pool.is_empty());
/// ```
pub struct PoolNode<T> {
    inner: Node<ID, T>,
}

// === impl Node ===

impl<K: Copy + Eq + Hash, T> Node<K, T> {
    pub(crate) fn new() -> Self {
        Self {
            hot: ArrayQueue::new(HOT_QUEUE_SIZE),
            overflow: Mutex::new(LruCache::unbounded()),
            overflow_len: AtomicUsize::new(0),
            remove_lock: Mutex::new(()),
        }
    }

    /// Adds an item, in the hot queue if it has room.
    pub(crate) fn insert(&self, key: K, value: T) {
        if let Err((key, value)) = self.hot.push((key, value)) {
            let mut overflow = self.overflow.lock();
            // A replaced value (duplicate key) is dropped after the lock is released.
            let _replaced = overflow.push(key, value);
            self.overflow_len.store(overflow.len(), Ordering::Relaxed);
        }
    }

    /// Takes any item: the oldest of the hot queue, else the newest of the overflow.
    pub(crate) fn pop(&self) -> Option<(K, T)> {
        if let Some(item) = self.hot.pop() {
            return Some(item);
        }
        if self.overflow_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut overflow = self.overflow.lock();
        let item = overflow.pop_mru();
        self.overflow_len.store(overflow.len(), Ordering::Relaxed);
        item
    }

    /// Takes the item stored under `key`, if it is still here.
    pub(crate) fn remove(&self, key: &K) -> Option<T> {
        self.remove_with(|overflow| overflow.pop(key), |k, _| k == key)
    }

    /// Takes the first item for which `matches` holds. Scans the whole overflow: for rare
    /// paths only.
    pub(crate) fn remove_by(&self, matches: impl Fn(&K, &T) -> bool) -> Option<T> {
        self.remove_with(
            |overflow| {
                let key = overflow
                    .iter()
                    .find(|(k, v)| matches(k, v))
                    .map(|(k, _)| *k)?;
                overflow.pop(&key)
            },
            &matches,
        )
    }

    /// Takes out every item for which `keep` says no, into `removed`.
    ///
    /// Serialised with the other removals. Like them it rotates the hot queue, so concurrent
    /// [`pop`](Self::pop)s may miss its items meanwhile.
    pub(crate) fn retain(&self, mut keep: impl FnMut(&mut T) -> bool, removed: &mut Vec<T>) {
        let _serial = self.remove_lock.lock();
        if self.overflow_len.load(Ordering::Relaxed) > 0 {
            let mut overflow = self.overflow.lock();
            let doomed: Vec<K> = overflow
                .iter_mut()
                .filter_map(|(key, value)| (!keep(value)).then_some(*key))
                .collect();
            removed.extend(doomed.iter().filter_map(|key| overflow.pop(key)));
            self.overflow_len.store(overflow.len(), Ordering::Relaxed);
        }
        for _ in 0..self.hot.len() {
            let Some((key, mut value)) = self.hot.pop() else {
                break;
            };
            if keep(&mut value) {
                self.insert(key, value);
            } else {
                removed.push(value);
            }
        }
    }

    /// Whether no item is stored (items held by a concurrent remover count as stored).
    pub(crate) fn is_empty(&self) -> bool {
        self.hot.is_empty() && self.overflow_len.load(Ordering::Relaxed) == 0
    }

    /// The number of stored items, approximate under concurrency.
    pub(crate) fn len(&self) -> usize {
        self.hot.len() + self.overflow_len.load(Ordering::Relaxed)
    }

    /// Removes an item found by `in_overflow` in the overflow, else by `matches` in the hot
    /// queue.
    fn remove_with(
        &self,
        in_overflow: impl FnOnce(&mut LruCache<K, T>) -> Option<T>,
        matches: impl Fn(&K, &T) -> bool,
    ) -> Option<T> {
        let _serial = self.remove_lock.lock();
        if self.overflow_len.load(Ordering::Relaxed) > 0 {
            let mut overflow = self.overflow.lock();
            let found = in_overflow(&mut overflow);
            self.overflow_len.store(overflow.len(), Ordering::Relaxed);
            if found.is_some() {
                return found;
            }
        }
        // Rotate the hot queue once: pop each item and put the others back at the end. The
        // target is at most `len` pops from the front, as concurrent pushes only add behind
        // it; a concurrent `pop` taking it first means it is no longer ours to remove.
        for _ in 0..self.hot.len() {
            let (key, value) = self.hot.pop()?;
            if matches(&key, &value) {
                return Some(value);
            }
            self.insert(key, value);
        }
        None
    }
}

// === impl PoolNode ===

impl<T> PoolNode<T> {
    /// Creates an empty pool.
    pub fn new() -> Self {
        Self { inner: Node::new() }
    }

    /// Takes any item out of the pool, with its ID.
    pub fn get_any(&self) -> Option<(ID, T)> {
        self.inner.pop()
    }

    /// Adds an item under a unique `id`.
    pub fn insert(&self, id: ID, conn: T) {
        self.inner.insert(id, conn);
    }

    /// Takes out the item with this `id`, if it is in the pool.
    ///
    /// This is O(16) in the hot queue and briefly hides the hot queue's other items from
    /// concurrent [`get_any`](Self::get_any) calls, so keep it off hot paths.
    pub fn remove(&self, id: ID) -> Option<T> {
        self.inner.remove(&id)
    }

    /// Whether the pool holds no item.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<T> Default for PoolNode<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for PoolNode<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolNode")
            .field("len", &self.inner.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn hot_queue_is_fifo_then_overflow_is_newest_first() {
        let node = PoolNode::new();
        for id in 0..20 {
            node.insert(id, id * 10);
        }
        assert_eq!(node.inner.hot.len(), HOT_QUEUE_SIZE);
        assert_eq!(node.inner.overflow_len.load(Ordering::Relaxed), 4);
        let order: Vec<_> = std::iter::from_fn(|| node.get_any().map(|(id, _)| id)).collect();
        let mut expected: Vec<_> = (0..16).collect();
        expected.extend([19, 18, 17, 16]);
        assert_eq!(order, expected);
        assert!(node.is_empty());
    }

    #[test]
    fn remove_finds_items_in_both_tiers() {
        let node = PoolNode::new();
        for id in 0..20 {
            node.insert(id, id);
        }
        assert_eq!(node.remove(18), Some(18), "overflow item");
        assert_eq!(node.remove(5), Some(5), "hot queue item");
        assert_eq!(node.remove(5), None, "already removed");
        assert_eq!(node.remove(99), None, "never inserted");
        let rest: HashSet<_> = std::iter::from_fn(|| node.get_any().map(|(id, _)| id)).collect();
        let expected: HashSet<_> = (0..20).filter(|id| ![5, 18].contains(id)).collect();
        assert_eq!(rest, expected);
    }

    #[test]
    fn remove_by_predicate() {
        let node: Node<u8, &str> = Node::new();
        for (k, v) in [(1, "a"), (2, "b")] {
            node.insert(k, v);
        }
        assert_eq!(node.remove_by(|_, v| *v == "b"), Some("b"));
        assert_eq!(node.remove_by(|_, v| *v == "b"), None);
        assert_eq!(node.len(), 1);
    }

    #[test]
    fn duplicate_id_in_overflow_replaces() {
        let node = PoolNode::new();
        for id in 0..16 {
            node.insert(id, "hot");
        }
        node.insert(100, "old");
        node.insert(100, "new");
        assert_eq!(node.remove(100), Some("new"));
        assert_eq!(node.remove(100), None);
    }

    #[test]
    fn concurrent_insert_get_remove_loses_nothing() {
        const THREADS: i32 = 4;
        const PER_THREAD: i32 = 2_000;
        let node = Arc::new(PoolNode::new());
        let taken: Vec<Vec<i32>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let node = Arc::clone(&node);
                    s.spawn(move || {
                        let mut taken = Vec::new();
                        for i in 0..PER_THREAD {
                            let id = t * PER_THREAD + i;
                            node.insert(id, id);
                            if i % 3 == 0 {
                                taken.extend(node.remove(id));
                            } else if let Some((id, value)) = node.get_any() {
                                assert_eq!(id, value);
                                taken.push(id);
                            }
                        }
                        taken
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut all: Vec<_> = taken.into_iter().flatten().collect();
        all.extend(std::iter::from_fn(|| node.get_any().map(|(id, _)| id)));
        let total = all.len();
        let unique: HashSet<_> = all.into_iter().collect();
        assert_eq!(total, unique.len(), "an item was taken twice");
        assert_eq!(
            unique.len(),
            (THREADS * PER_THREAD) as usize,
            "an item was lost"
        );
    }
}
