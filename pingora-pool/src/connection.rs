//! The connection pool: idle connections grouped by key, capped by a global LRU, and watched
//! while idle.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use log::debug;
use parking_lot::RwLock;
use tokio::sync::{oneshot, Notify};

use crate::lru::{slot_of, CachePadded, Claim, IdleLru};
use crate::node::Node;
use crate::sweep::Sweeper;
use crate::{ConnectionMeta, GroupKey, ID};

/// Number of independently locked shards of the group map.
const SHARDS: usize = 16;

/// A shard never sweeps out empty groups while it has fewer than this many.
const MIN_SWEEP: usize = 32;

/// A pool of idle, reusable connections.
///
/// A connection is released to the pool with [`put`](Self::put) under a [`ConnectionMeta`];
/// [`get`](Self::get) hands out an idle connection with the same [`GroupKey`]. Connections of
/// one key are interchangeable. At most `size` connections are kept idle: releasing one more
/// evicts the least recently released idle connection, of whatever group.
///
/// Idle connections are looked after in one of two ways, chosen per connection:
///
/// * [`put`](Self::put) returns two signals for the connection's *idle watcher*, a task that
///   should run [`idle_poll`](Self::idle_poll) (or [`idle_timeout`](Self::idle_timeout))
///   while the connection is idle: the watcher ends when the connection is picked up or
///   evicted, and it closes the connection and removes it from the pool when the peer closes
///   it, sends unexpected data, or the idle timeout passes. This is Pingora's API.
/// * [`release`](Self::release) needs no task, channel or allocation per connection: the
///   connection type says how to look at an idle connection without waiting
///   ([`IdleCheck`](crate::IdleCheck)), one sweeper task per pool closes the connections
///   that went bad or timed out, and [`get_checked`](Self::get_checked) checks a connection
///   once more as it hands it out. This is what `pingora-core`'s connectors use.
///
/// ```
/// use pingora_pool::{ConnectionMeta, ConnectionPool};
///
/// let pool = ConnectionPool::new(2);
/// let (_evicted, _picked_up) = pool.put(&ConnectionMeta::new(1, 10), "conn-10");
/// pool.put(&ConnectionMeta::new(2, 20), "conn-20");
/// pool.put(&ConnectionMeta::new(1, 30), "conn-30"); // over capacity: evicts conn-10
///
/// assert_eq!(pool.get(&1), Some("conn-30"));
/// assert_eq!(pool.get(&1), None);
/// assert_eq!(pool.get(&2), Some("conn-20"));
/// ```
///
/// # Guarantees
///
/// Under any interleaving of `get`, `put`, evictions and idle watchers:
///
/// * no connection is handed out twice, and a connection handed out by `get` is never closed
///   by the pool or by its idle watcher;
/// * an evicted or closed connection is dropped promptly and never handed out;
/// * an idle watcher only ever removes its own connection, even if a newer connection with the
///   same [`ID`](crate::ID) is in the pool by then;
/// * once every `put` has returned, at most `size` connections are idle.
//
// How: every idle connection has one `Claim`, held by its entry in the group and by its LRU
// record. Whoever wins the claim decides the connection's fate, and only one party can: `get`
// (picked up), the LRU (evicted) or the idle watcher (closed). Independently, whoever
// physically takes the entry out of its group holds the connection value; it drops the value
// unless it is a `get` that won the claim. An evictor that cannot find its victim therefore
// knows someone else holds it and will drop it: a `get` that lost the claim, or the `put` that
// is still inserting it and checks its claim right after. Entries are found by the address of
// their eviction `Notify`: the LRU record and the watcher each keep that allocation alive, so
// the address cannot be reused while they might look for it.
pub struct ConnectionPool<S> {
    shards: Box<[CachePadded<RwLock<Shard<S>>>]>,
    pub(crate) lru: IdleLru,
    /// Looks after the connections given with [`release`](Self::release).
    pub(crate) sweeper: Sweeper,
    /// Connections closed because data arrived on them while idle.
    pub(crate) unexpected_data: Arc<AtomicU64>,
}

/// One lock's worth of the group map.
struct Shard<S> {
    groups: HashMap<GroupKey, Box<Node<u64, Entry<S>>>, KeyHasher>,
    /// Remove empty groups when a new group would grow the map past this.
    sweep_at: usize,
}

/// An idle connection as stored in its group.
pub(crate) struct Entry<S> {
    pub(crate) claim: Claim,
    id: ID,
    pub(crate) conn: S,
    pub(crate) watch: Watch,
}

/// Who looks after an idle connection.
pub(crate) enum Watch {
    /// A task of its own (see [`ConnectionPool::idle_poll`]), told here when the connection
    /// is picked up.
    Task(oneshot::Sender<bool>),
    /// The pool's sweeper.
    Swept {
        /// When the connection was released.
        released: Instant,
        /// When its idle timeout passes.
        deadline: Option<Instant>,
    },
}

/// Hashes [`GroupKey`]s for the group map: a folded multiply keyed with per-map random
/// seeds. Much cheaper than SipHash for one `u64`, and with secret seeds an outsider cannot
/// aim many keys at one bucket.
#[derive(Clone, Copy)]
struct KeyHasher {
    seed: [u64; 2],
}

/// The [`Hasher`](std::hash::Hasher) of one key.
struct KeyHash {
    seed: [u64; 2],
    hash: u64,
}

// === impl ConnectionPool ===

impl<S> ConnectionPool<S> {
    /// Creates a pool that keeps at most `size` idle connections.
    pub fn new(size: usize) -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|_| {
                    CachePadded(RwLock::new(Shard {
                        groups: HashMap::with_hasher(KeyHasher::new()),
                        sweep_at: MIN_SWEEP,
                    }))
                })
                .collect(),
            lru: IdleLru::new(size),
            sweeper: Sweeper::default(),
            unexpected_data: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Takes an idle connection of group `key` out of the pool, if there is one.
    ///
    /// Its idle watcher is told (through the receiver [`put`](Self::put) returned) that the
    /// connection was picked up. The connection is not checked for liveness: a caller that
    /// shares it with its watcher (say `Arc<tokio::sync::Mutex<_>>`) should wait for the
    /// watcher to let go and then check it.
    pub fn get(&self, key: &GroupKey) -> Option<S> {
        let Entry { conn, watch, .. } = self.take_entry(key)?;
        if let Watch::Task(picked_up) = watch {
            // An error means the watcher is gone already: nothing to tell.
            let _ = picked_up.send(true);
        }
        Some(conn)
    }

    /// Takes an idle entry of group `key` whose claim this call won.
    pub(crate) fn take_entry(&self, key: &GroupKey) -> Option<Entry<S>> {
        // Entries evicted or closed a moment ago, by someone who could not find them because
        // we held them: dropping them is what closes them. Dropped after the lock is released,
        // as a connection's drop may run arbitrary code.
        let mut dead = Vec::new();
        let found = {
            let shard = self.shard(*key).read();
            let group = shard.groups.get(key)?;
            loop {
                match group.pop() {
                    Some((_, entry)) if self.lru.claim(entry.claim) => break Some(entry),
                    Some((_, entry)) => dead.push(entry),
                    None => break None,
                }
            }
        };
        drop(dead);
        found
    }

    /// Releases `connection` to the pool, as idle, under `meta.key`.
    ///
    /// Returns the signals for the connection's idle watcher: the [`Notify`] fires if the
    /// connection is evicted, the receiver resolves when it is picked up by
    /// [`get`](Self::get) (or dropped by the pool for any reason).
    ///
    /// If this makes more than `size` connections idle, the least recently released ones are
    /// evicted: taken out of the pool, dropped, and their watchers notified. With `size` 0
    /// that is this connection.
    pub fn put(
        &self,
        meta: &ConnectionMeta,
        connection: S,
    ) -> (Arc<Notify>, oneshot::Receiver<bool>) {
        let evicted = Arc::new(Notify::new());
        let (picked_up, watch_use) = oneshot::channel();
        self.add(meta, connection, Watch::Task(picked_up), Some(&evicted));
        (evicted, watch_use)
    }

    /// Adds an idle connection to its group and to the LRU, and evicts what goes over the
    /// capacity.
    pub(crate) fn add(
        &self,
        meta: &ConnectionMeta,
        connection: S,
        watch: Watch,
        evicted: Option<&Arc<Notify>>,
    ) {
        let (claim, victims) = self.lru.push(meta.key, evicted);
        let slot = slot_of(claim, evicted);
        let entry = Entry {
            claim,
            id: meta.id,
            conn: connection,
            watch,
        };
        self.insert(meta.key, slot, entry);
        if !self.lru.is_unclaimed(claim) {
            // Evicted before it was in its group, where the evictor could not find it.
            drop(self.remove_slot(meta.key, slot));
        }
        for victim in victims {
            debug!("evicting idle connection (key={})", victim.key);
            if let Some(notify) = &victim.evicted {
                // `notify_one` stores a permit, so a watcher not waiting yet still sees it.
                notify.notify_one();
            }
            // None: a `get`, or the `put` still inserting it, holds the entry and drops it.
            drop(self.remove_slot(victim.key, victim.slot()));
        }
    }

    /// Removes the idle connection with `meta.id` from group `meta.key`, if any, and drops it.
    ///
    /// Idle watchers do this by themselves; this is for callers that learn by other means
    /// that a pooled connection is dead. It scans the group, and it cannot tell apart two
    /// idle connections of one group that share an ID.
    pub fn pop_closed(&self, meta: &ConnectionMeta) {
        let removed = {
            let shard = self.shard(meta.key).read();
            shard
                .groups
                .get(&meta.key)
                .and_then(|group| group.remove_by(|_, entry| entry.id == meta.id))
        };
        if let Some(entry) = removed {
            self.close_entry(entry);
        }
    }

    /// The number of idle connections in the pool.
    pub fn idle_count(&self) -> usize {
        self.lru.idle()
    }

    /// Drops an entry taken out of its group for closing.
    pub(crate) fn close_entry(&self, entry: Entry<S>) {
        // A lost claim means it was evicted a moment ago; the evictor could not find it since
        // we held it. Either way it is ours to drop.
        let _ = self.lru.claim(entry.claim);
        drop(entry);
    }

    /// Takes the entry with identity `slot` out of group `key`.
    pub(crate) fn remove_slot(&self, key: GroupKey, slot: u64) -> Option<Entry<S>> {
        let shard = self.shard(key).read();
        shard.groups.get(&key)?.remove(&slot)
    }

    /// Stores an entry in its group, creating the group if needed.
    fn insert(&self, key: GroupKey, slot: u64, entry: Entry<S>) {
        let lock = self.shard(key);
        {
            let shard = lock.read();
            if let Some(group) = shard.groups.get(&key) {
                group.insert(slot, entry);
                return;
            }
        }
        lock.write().group(key).insert(slot, entry);
    }

    /// Takes out of every group the entries for which `keep` says no, into `removed`.
    pub(crate) fn retain_all(
        &self,
        mut keep: impl FnMut(&mut Entry<S>) -> bool,
        removed: &mut Vec<Entry<S>>,
    ) {
        for shard in self.shards.iter() {
            let shard = shard.read();
            for group in shard.groups.values() {
                group.retain(&mut keep, removed);
            }
        }
    }

    fn shard(&self, key: GroupKey) -> &RwLock<Shard<S>> {
        // Fold the high bits in: keys are usually hashes, but tests and users pass small ints.
        let mixed = (key ^ (key >> 29) ^ (key >> 47)) as usize;
        &self.shards[mixed % SHARDS]
    }
}

impl<S> fmt::Debug for ConnectionPool<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("lru", &self.lru)
            .finish_non_exhaustive()
    }
}

// === impl KeyHasher ===

impl KeyHasher {
    fn new() -> Self {
        let random = std::hash::RandomState::new();
        Self {
            seed: [random.hash_one(1u8), random.hash_one(2u8) | 1],
        }
    }
}

impl BuildHasher for KeyHasher {
    type Hasher = KeyHash;

    fn build_hasher(&self) -> KeyHash {
        KeyHash {
            seed: self.seed,
            hash: 0,
        }
    }
}

impl Hasher for KeyHash {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `GroupKey`s; this keeps other input correct, if slower.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        let product = u128::from(value ^ self.hash ^ self.seed[0]) * u128::from(self.seed[1]);
        self.hash = (product as u64) ^ ((product >> 64) as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

// === impl Shard ===

impl<S> Shard<S> {
    /// Returns group `key`, creating it. Creating a group may first sweep out empty ones, so
    /// that the map stays proportional to the groups in use; a sweep is O(groups), and the
    /// threshold doubles with the survivors, so it is O(1) amortised per created group.
    fn group(&mut self, key: GroupKey) -> &Node<u64, Entry<S>> {
        if !self.groups.contains_key(&key) && self.groups.len() >= self.sweep_at {
            // Every insert and removal holds this shard's lock, so `is_empty` is exact here.
            self.groups.retain(|_, group| !group.is_empty());
            self.sweep_at = MIN_SWEEP.max(2 * self.groups.len());
        }
        self.groups
            .entry(key)
            .or_insert_with(|| Box::new(Node::new()))
    }
}

#[cfg(test)]
mod tests;
