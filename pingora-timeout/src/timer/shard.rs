//! One thread's timer entries.
//!
//! A [`Shard`] maps each 10 ms tick that has waiters to one *entry*: every timer of this thread
//! whose deadline rounds up to that tick shares it. An entry is a circular doubly linked list of
//! waiter nodes hanging off a sentinel node. The nodes live in one slab (`Vec<Node>` plus a free
//! list) and link to each other by index, so registering and cancelling a waiter are O(1), need
//! no allocation once the slab has warmed up, and need no `unsafe`.
//!
//! Only two threads ever touch a shard: the thread it belongs to (registering, re-polling and
//! cancelling its timers) and the clock thread (firing expired entries every tick). A task that
//! moved to another worker thread may also re-poll or cancel its waiter here; that is correct,
//! just not the common case. The mutex is therefore almost never contended.
//!
//! Wakers are never woken or dropped while the lock is held: a waker may run arbitrary executor
//! code, which could come back to this shard.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Waker;

/// A deadline, counted in 10 ms ticks since the owning manager was created.
pub(crate) type Tick = u64;

/// Marks "no node" in the free list.
const NIL: u32 = u32::MAX;

/// How many times the clock thread retries a busy shard before leaving it for the next tick.
const CLOCK_LOCK_ATTEMPTS: u32 = 1_000;

/// Identifies one registered waiter: its slot in the slab and the slot's generation when the
/// waiter was registered. Firing or cancelling a waiter bumps the generation, so a stale key is
/// recognised as "no longer registered".
///
/// Both halves live in one `u64` so that a key moves as a single word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key(u64);

impl Key {
    /// A key that matches no waiter, for filling arrays.
    pub(crate) const DANGLING: Key = Key::new(NIL, 0);

    const fn new(index: u32, generation: u32) -> Key {
        Key(((generation as u64) << 32) | index as u64)
    }

    fn index(self) -> u32 {
        self.0 as u32
    }

    fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

/// The outcome of [`Shard::register`].
#[derive(Debug)]
pub(crate) enum Registered {
    /// The deadline's tick has already been fired by the clock thread.
    AlreadyFired,
    /// The waiter was added to its tick's entry.
    Waiting(Key),
}

/// Wakers taken out of a shard under its lock, to be dropped once the lock is released: dropping
/// a waker may run executor code, which could come back to the shard.
pub(crate) type Garbage = Vec<Waker>;

/// The timer entries of one thread, behind a mutex shared with the clock thread.
#[derive(Debug, Default)]
pub(crate) struct Shard {
    inner: Mutex<ShardInner>,
    /// The first tick the clock thread has not fired yet. Written under the lock, read without
    /// it by [`Shard::may_adopt`].
    unfired: AtomicU64,
}

#[derive(Debug)]
struct Node {
    /// Bumped every time the slot is released, to invalidate outstanding [`Key`]s.
    generation: u32,
    prev: u32,
    /// The next node of the list, or the next free slot while the node is free.
    next: u32,
    /// The tick of the entry this node belongs to.
    tick: Tick,
    /// The waiter's waker; `None` for sentinels and free slots.
    waker: Option<Waker>,
}

#[derive(Debug)]
struct ShardInner {
    /// Tick -> sentinel node of the entry's waiter list.
    entries: BTreeMap<Tick, u32>,
    nodes: Vec<Node>,
    free: u32,
    /// Every tick up to and including this one has been fired by the clock thread.
    fired_through: Option<Tick>,
    /// The most recently used entry, `(tick, sentinel)`: consecutive timeouts of one thread
    /// usually share a deadline, and this skips the map lookup for them.
    recent: Option<(Tick, u32)>,
}

// === impl Shard ===

impl Shard {
    /// Adds a waiter for `tick`, woken through `waker` when the tick is fired.
    ///
    /// `cancelled` lists waiters of this shard whose stubs were dropped on this thread and whose
    /// removal was deferred until now (see [`super::deferred`]). They are removed under the
    /// same lock; one whose waker wakes the same task as `waker` is reused for the new waiter,
    /// which saves cloning a waker and dropping another. Wakers to drop are put in `garbage`,
    /// for the caller to drop after the lock is released.
    pub(crate) fn register(
        &self,
        tick: Tick,
        waker: &Waker,
        cancelled: &[Key],
        garbage: &mut Garbage,
    ) -> Registered {
        let mut inner = self.inner.lock();
        let mut reuse = None;
        for &key in cancelled {
            let Some(node) = inner.live_node_mut(key) else {
                continue;
            };
            let same_task = node.waker.as_ref().is_some_and(|w| w.will_wake(waker));
            if reuse.is_none() && same_task {
                reuse = Some(key);
            } else {
                garbage.extend(inner.remove_waiter(key.index()));
            }
        }
        if inner.fired_through.is_some_and(|fired| tick <= fired) {
            if let Some(key) = reuse {
                garbage.extend(inner.remove_waiter(key.index()));
            }
            return Registered::AlreadyFired;
        }
        let sentinel = inner.entry(tick);
        let key = match reuse {
            Some(key) => {
                inner.move_waiter(key.index(), sentinel, tick);
                key
            }
            None => {
                // Cloning a waker is a reference count increment for every real executor; it
                // is done under the lock only because whether it is needed is known only here.
                let index = inner.alloc(tick, Some(waker.clone()));
                inner.link_before(sentinel, index);
                let generation = inner.nodes[index as usize].generation;
                Key::new(index, generation)
            }
        };
        Registered::Waiting(key)
    }

    /// Whether a waiter of `tick` that was registered earlier may be adopted by a new timer of
    /// the same tick without taking the lock.
    ///
    /// Adoption needs no lock because the outcome is right either way: if the clock has not
    /// fired `tick`, the waiter is still registered; if it fires `tick` concurrently, the
    /// waiter's generation changes and the next poll reports the timer as expired, which it is,
    /// since both timers share the tick. What must not happen is adopting a waiter whose wake-up
    /// has already been delivered and consumed, which this check rules out: the clock publishes
    /// the fired tick before waking anyone, and a task sees everything that happened before it
    /// was woken.
    #[inline]
    pub(crate) fn may_adopt(&self, tick: Tick) -> bool {
        tick >= self.unfired.load(Ordering::Acquire)
    }

    /// Makes sure the waiter `key` will wake `waker`. Returns `false` if the waiter's tick has
    /// been fired in the meantime.
    pub(crate) fn refresh(&self, key: Key, waker: &Waker) -> bool {
        let mut inner = self.inner.lock();
        let Some(node) = inner.live_node_mut(key) else {
            return false;
        };
        let stale = match &node.waker {
            Some(current) => !current.will_wake(waker),
            None => true,
        };
        if stale {
            let old = node.waker.replace(waker.clone());
            drop(inner);
            drop(old);
        }
        true
    }

    /// Whether the waiter `key` is still waiting (its tick has not been fired).
    pub(crate) fn is_waiting(&self, key: Key) -> bool {
        self.inner.lock().live_node_mut(key).is_some()
    }

    /// Removes the waiter `key`, if its tick has not been fired yet.
    pub(crate) fn cancel(&self, key: Key) {
        let mut inner = self.inner.lock();
        if inner.live_node_mut(key).is_none() {
            return;
        }
        let waker = inner.remove_waiter(key.index());
        drop(inner);
        drop(waker);
    }

    /// Removes every waiter of `keys` that is still registered, putting their wakers in
    /// `garbage`.
    pub(crate) fn cancel_all(&self, keys: impl Iterator<Item = Key>, garbage: &mut Garbage) {
        let mut inner = self.inner.lock();
        for key in keys {
            if inner.live_node_mut(key).is_some() {
                garbage.extend(inner.remove_waiter(key.index()));
            }
        }
    }

    /// Fires every entry whose tick is `now` or earlier: removes the entries and moves the
    /// wakers of their waiters into `wakers`, for the caller to wake once the lock is released.
    ///
    /// Called by the clock thread. If the shard stays busy for a long time (its owner was
    /// preempted inside the lock, or the owner thread vanished in a `fork()` while holding it)
    /// the shard is skipped and `false` is returned; its timers fire on a later tick.
    pub(crate) fn fire_expired(&self, now: Tick, wakers: &mut Vec<Waker>) -> bool {
        let mut attempts = 0;
        let mut inner = loop {
            if let Some(inner) = self.inner.try_lock() {
                break inner;
            }
            attempts += 1;
            if attempts == CLOCK_LOCK_ATTEMPTS {
                return false;
            }
            std::hint::spin_loop();
        };
        inner.fire_through(now, wakers);
        // `fetch_max`: a replaced clock thread that resumes late must not move this back.
        self.unfired
            .fetch_max(now.saturating_add(1), Ordering::Release);
        true
    }

    /// Waits until no thread is inside this shard's lock.
    pub(crate) fn quiesce(&self) {
        drop(self.inner.lock());
    }

    /// The number of entries (distinct pending deadlines) in this shard.
    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// The number of slots in this shard's slab, free or not.
    #[cfg(test)]
    pub(crate) fn slot_count(&self) -> usize {
        self.inner.lock().nodes.len()
    }

    /// The number of registered waiters in this shard.
    #[cfg(test)]
    pub(crate) fn waiter_count(&self) -> usize {
        let inner = self.inner.lock();
        inner
            .nodes
            .iter()
            .filter(|node| node.waker.is_some())
            .count()
    }
}

// === impl ShardInner ===

impl Default for ShardInner {
    fn default() -> Self {
        ShardInner {
            entries: BTreeMap::new(),
            nodes: Vec::new(),
            free: NIL,
            fired_through: None,
            recent: None,
        }
    }
}

impl ShardInner {
    /// The sentinel of the entry for `tick`, creating the entry if needed.
    fn entry(&mut self, tick: Tick) -> u32 {
        if let Some((recent_tick, sentinel)) = self.recent {
            if recent_tick == tick {
                return sentinel;
            }
            // The previous entry is no longer the hot one: if all of its waiters are gone it
            // would only sit in the map until its deadline, so drop it now.
            if self.is_empty_list(sentinel) {
                self.entries.remove(&recent_tick);
                self.release(sentinel);
            }
        }
        let sentinel = match self.entries.get(&tick) {
            Some(&sentinel) => sentinel,
            None => {
                let sentinel = self.alloc(tick, None);
                self.entries.insert(tick, sentinel);
                sentinel
            }
        };
        self.recent = Some((tick, sentinel));
        sentinel
    }

    /// The node of a waiter that is still registered.
    fn live_node_mut(&mut self, key: Key) -> Option<&mut Node> {
        self.nodes
            .get_mut(key.index() as usize)
            .filter(|node| node.generation == key.generation() && node.waker.is_some())
    }

    /// Unlinks and frees a registered waiter, returning its waker.
    fn remove_waiter(&mut self, index: u32) -> Option<Waker> {
        self.unlink(index);
        self.release(index)
    }

    /// Moves a registered waiter, keeping its waker and key, to the entry of `tick`.
    fn move_waiter(&mut self, index: u32, sentinel: u32, tick: Tick) {
        if self.nodes[index as usize].tick == tick {
            return;
        }
        self.unlink(index);
        self.nodes[index as usize].tick = tick;
        self.link_before(sentinel, index);
    }

    /// Takes a waiter out of its entry's list. An entry emptied that way is removed right away,
    /// instead of lingering until its deadline, unless it is the hot one.
    fn unlink(&mut self, index: u32) {
        let (prev, next, tick) = {
            let node = &self.nodes[index as usize];
            (node.prev, node.next, node.tick)
        };
        self.nodes[prev as usize].next = next;
        self.nodes[next as usize].prev = prev;
        // `prev == next` means only the sentinel is left.
        if prev == next && self.recent.is_none_or(|(recent, _)| recent != tick) {
            self.entries.remove(&tick);
            self.release(prev);
        }
    }

    fn fire_through(&mut self, now: Tick, wakers: &mut Vec<Waker>) {
        while let Some(entry) = self.entries.first_entry() {
            if *entry.key() > now {
                break;
            }
            let sentinel = entry.remove();
            let mut index = self.nodes[sentinel as usize].next;
            while index != sentinel {
                let next = self.nodes[index as usize].next;
                wakers.extend(self.release(index));
                index = next;
            }
            self.release(sentinel);
            if self.recent.is_some_and(|(_, recent)| recent == sentinel) {
                self.recent = None;
            }
        }
        self.fired_through = Some(self.fired_through.map_or(now, |fired| fired.max(now)));
    }

    fn is_empty_list(&self, sentinel: u32) -> bool {
        self.nodes[sentinel as usize].next == sentinel
    }

    /// Takes a free slot (or grows the slab) and makes it a one-node circular list.
    fn alloc(&mut self, tick: Tick, waker: Option<Waker>) -> u32 {
        let index = if self.free == NIL {
            let index = u32::try_from(self.nodes.len()).expect("fewer than 2^32 timers per thread");
            self.nodes.push(Node {
                generation: 0,
                prev: index,
                next: index,
                tick,
                waker: None,
            });
            index
        } else {
            let index = self.free;
            self.free = self.nodes[index as usize].next;
            index
        };
        let node = &mut self.nodes[index as usize];
        node.prev = index;
        node.next = index;
        node.tick = tick;
        node.waker = waker;
        index
    }

    /// Returns a slot to the free list, invalidating keys to it, and hands back its waker.
    fn release(&mut self, index: u32) -> Option<Waker> {
        let free = self.free;
        let node = &mut self.nodes[index as usize];
        // Wrapping is harmless: a key would have to survive 2^32 reuses of its slot to alias.
        node.generation = node.generation.wrapping_add(1);
        node.next = free;
        self.free = index;
        node.waker.take()
    }

    /// Links the single node `index` at the tail of the list headed by `sentinel`.
    fn link_before(&mut self, sentinel: u32, index: u32) {
        let tail = self.nodes[sentinel as usize].prev;
        self.nodes[index as usize].prev = tail;
        self.nodes[index as usize].next = sentinel;
        self.nodes[tail as usize].next = index;
        self.nodes[sentinel as usize].prev = index;
    }
}
