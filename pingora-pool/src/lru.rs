//! The global, size-capped record of idle connections in release order, and the claims that
//! decide each idle connection's fate.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::GroupKey;

/// The right to decide the fate of one idle connection: a slot of the [`IdleLru`]'s state
/// table and the generation that slot had when the connection became idle.
///
/// Exactly one [`IdleLru::claim`] of it succeeds: by `get` (picked up), by the LRU (evicted)
/// or by the idle watcher (closed). Slots are reused, but a reused slot has a new generation,
/// so an old claim can never succeed on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Claim {
    slot: u32,
    generation: u64,
}

/// An idle connection as the LRU knows it.
pub(crate) struct Record {
    pub(crate) claim: Claim,
    /// The group the connection was released to.
    pub(crate) key: GroupKey,
    /// Told when the connection is evicted, for connections watched by a task of their own.
    /// The record keeps this allocation alive, so its address (the connection's identity in
    /// its group, see [`slot_of`]) is not reused while the record exists.
    pub(crate) evicted: Option<Arc<Notify>>,
}

// === impl Record ===

impl Record {
    /// The identity of the record's connection in its group.
    pub(crate) fn slot(&self) -> u64 {
        slot_of(self.claim, self.evicted.as_ref())
    }
}

/// The idle connections of a pool, oldest release first, capped at `size`.
///
/// Records are pushed in release order and never moved, so the front is always the least
/// recently released. A connection taken out by [`ConnectionPool::get`] or closed by its idle
/// watcher is not looked up here: its claim just turns its record stale. Stale records are
/// skipped when evicting and swept in bulk once they make up half the queue, which keeps
/// every operation O(1) amortised and keeps `get` from taking this lock at all.
///
/// Claims live in a table of atomic words owned by the pool, one per slot: the slot's
/// generation, and whether the connection is still unclaimed. Claiming is one
/// compare-and-swap, with no per-connection allocation.
///
/// `idle` counts unclaimed connections, so it is exact whatever the number of stale records.
///
/// [`ConnectionPool::get`]: crate::ConnectionPool::get
pub(crate) struct IdleLru {
    size: usize,
    /// Written by every `get` and `put`: kept off the line of the `records` lock.
    idle: CachePadded<AtomicUsize>,
    states: StateTable,
    records: CachePadded<Mutex<Records>>,
}

struct Records {
    queue: VecDeque<Record>,
    /// Slots whose records are gone, ready for reuse.
    free: Vec<u32>,
    /// The next never-used slot.
    next_slot: u32,
    /// Sweep stale records when `queue` grows past this.
    sweep_at: usize,
}

/// Aligns a value to its own cache line (128 bytes covers adjacent-line prefetching), so
/// that writes to it do not slow down readers of its neighbours.
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

/// A growable array of slot states that never moves: chunk `k` holds `FIRST_CHUNK << k`
/// slots and is allocated on first use, so readers need no lock.
struct StateTable {
    chunks: [OnceLock<Box<[AtomicU64]>>; CHUNKS],
}

/// Slots in the first chunk of the state table.
const FIRST_CHUNK: usize = 64;

/// Chunks in the state table: room for more slots than a `u32` can number.
const CHUNKS: usize = 27;

/// The low bit of a slot state: set while the connection is idle and unclaimed.
const UNCLAIMED: u64 = 1;

/// The queue length below which stale records are never swept.
const MIN_SWEEP: usize = 64;

/// Marks identities made from a claim: no heap address has the top bit set.
const CLAIM_IDENTITY: u64 = 1 << 63;

/// The identity of an idle connection in its group, unique among the connections that can
/// be in the pool at once.
///
/// A connection with an eviction signal is known by that signal's address: its idle watcher
/// only has the signal to find it by. Others (checked by the sweeper) are known by their
/// claim: the slot and the low 31 bits of its generation, tagged so that they never equal an
/// address. A slot's generation would have to advance 2^31 times while one of its old
/// connections is still in its group for two identities to meet.
pub(crate) fn slot_of(claim: Claim, evicted: Option<&Arc<Notify>>) -> u64 {
    match evicted {
        Some(notify) => signal_identity(notify),
        None => CLAIM_IDENTITY | (claim.generation & 0x7fff_ffff) << 32 | u64::from(claim.slot),
    }
}

/// The identity of the connection whose eviction `notify` reports (see [`slot_of`]).
pub(crate) fn signal_identity(notify: &Arc<Notify>) -> u64 {
    Arc::as_ptr(notify) as usize as u64
}

// === impl IdleLru ===

impl IdleLru {
    pub(crate) fn new(size: usize) -> Self {
        Self {
            size,
            idle: CachePadded(AtomicUsize::new(0)),
            states: StateTable::new(),
            records: CachePadded(Mutex::new(Records {
                queue: VecDeque::new(),
                free: Vec::new(),
                next_slot: 0,
                sweep_at: MIN_SWEEP,
            })),
        }
    }

    /// Records a connection that is becoming idle, and claims the least recently released
    /// connections while more than `size` are idle.
    ///
    /// Returns the new connection's claim and the evicted records: their connections must be
    /// notified and removed from their groups. The new connection may be among them.
    pub(crate) fn push(
        &self,
        key: GroupKey,
        evicted: Option<&Arc<Notify>>,
    ) -> (Claim, Vec<Record>) {
        let mut victims = Vec::new();
        let mut records = self.records.lock();
        let claim = records.new_claim(&self.states);
        self.idle.fetch_add(1, Ordering::Relaxed);
        records.queue.push_back(Record {
            claim,
            key,
            evicted: evicted.cloned(),
        });
        while self.idle.load(Ordering::Relaxed) > self.size {
            // Never empty here: every unclaimed connection has a record.
            let Some(oldest) = records.queue.pop_front() else {
                break;
            };
            records.free.push(oldest.claim.slot);
            if self.claim(oldest.claim) {
                victims.push(oldest);
            }
        }
        if records.queue.len() > records.sweep_at {
            let Records { queue, free, .. } = &mut *records;
            queue.retain(|record| {
                let live = self.is_unclaimed(record.claim);
                if !live {
                    free.push(record.claim.slot);
                }
                live
            });
            records.sweep_at = MIN_SWEEP.max(2 * records.queue.len());
        }
        (claim, victims)
    }

    /// Claims a connection. Returns `true` for exactly one caller per claim.
    pub(crate) fn claim(&self, claim: Claim) -> bool {
        let unclaimed = (claim.generation << 1) | UNCLAIMED;
        let won = self
            .states
            .get(claim.slot)
            .compare_exchange(
                unclaimed,
                claim.generation << 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if won {
            self.idle.fetch_sub(1, Ordering::Relaxed);
        }
        won
    }

    /// Whether nobody has claimed the connection yet.
    pub(crate) fn is_unclaimed(&self, claim: Claim) -> bool {
        self.states.get(claim.slot).load(Ordering::Acquire) == (claim.generation << 1) | UNCLAIMED
    }

    /// The number of idle (unclaimed) connections.
    pub(crate) fn idle(&self) -> usize {
        self.idle.load(Ordering::Relaxed)
    }

    /// The number of records, stale ones included.
    #[cfg(test)]
    pub(crate) fn records(&self) -> usize {
        self.records.lock().queue.len()
    }
}

impl fmt::Debug for IdleLru {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleLru")
            .field("size", &self.size)
            .field("idle", &self.idle())
            .finish_non_exhaustive()
    }
}

// === impl Records ===

impl Records {
    /// Takes a free slot and starts a new, unclaimed generation in it.
    fn new_claim(&mut self, states: &StateTable) -> Claim {
        let slot = self.free.pop().unwrap_or_else(|| {
            let slot = self.next_slot;
            // 2^32 slots would need 2^31 idle connections first.
            self.next_slot = slot
                .checked_add(1)
                .expect("fewer than 2^32 idle connections");
            states.ensure(slot);
            slot
        });
        let state = states.get(slot);
        // Only this lock's holder writes a slot that has no record, so this cannot race.
        let generation = (state.load(Ordering::Relaxed) >> 1) + 1;
        state.store((generation << 1) | UNCLAIMED, Ordering::Release);
        Claim { slot, generation }
    }
}

// === impl StateTable ===

impl StateTable {
    fn new() -> Self {
        Self {
            chunks: std::array::from_fn(|_| OnceLock::new()),
        }
    }

    /// Where slot `slot` lives: chunk `k` starts at `FIRST_CHUNK * (2^k - 1)`.
    fn locate(slot: u32) -> (usize, usize) {
        let slot = slot as usize;
        let k = (slot / FIRST_CHUNK + 1).ilog2() as usize;
        (k, slot - FIRST_CHUNK * ((1 << k) - 1))
    }

    /// Allocates the chunk of `slot` if needed.
    fn ensure(&self, slot: u32) {
        let (k, _) = Self::locate(slot);
        self.chunks[k].get_or_init(|| (0..FIRST_CHUNK << k).map(|_| AtomicU64::new(0)).collect());
    }

    fn get(&self, slot: u32) -> &AtomicU64 {
        let (k, offset) = Self::locate(slot);
        &self.chunks[k]
            .get()
            .expect("a slot's chunk is allocated before any claim on it exists")[offset]
    }
}

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(lru: &IdleLru, key: GroupKey) -> (Claim, Vec<GroupKey>) {
        let (claim, victims) = lru.push(key, Some(&Arc::new(Notify::new())));
        (claim, victims.iter().map(|r| r.key).collect())
    }

    #[test]
    fn evicts_least_recently_released_skipping_claimed() {
        let lru = IdleLru::new(2);
        let (c0, v) = add(&lru, 0);
        assert!(v.is_empty());
        let (c1, v) = add(&lru, 1);
        assert!(v.is_empty());
        let (c2, v) = add(&lru, 2);
        assert_eq!(v, vec![0]);
        assert!(!lru.is_unclaimed(c0));
        // Connection 1 is taken by a `get`: the next eviction skips it.
        assert!(lru.claim(c1));
        let (c3, v) = add(&lru, 3);
        assert!(v.is_empty(), "2 idle: 2 and 3");
        let (c4, v) = add(&lru, 4);
        assert_eq!(v, vec![2]);
        assert_eq!(lru.idle(), 2);
        assert!(!lru.is_unclaimed(c2));
        assert!(lru.is_unclaimed(c3) && lru.is_unclaimed(c4));
    }

    #[test]
    fn size_zero_evicts_immediately() {
        let lru = IdleLru::new(0);
        let (claim, victims) = add(&lru, 7);
        assert_eq!(victims, vec![7]);
        assert_eq!(lru.idle(), 0);
        assert!(!lru.claim(claim), "already claimed by eviction");
    }

    #[test]
    fn stale_records_are_swept_and_slots_reused() {
        let lru = IdleLru::new(1_000);
        for key in 0..10_000 {
            let (claim, _) = add(&lru, key);
            assert!(lru.claim(claim));
        }
        assert_eq!(lru.idle(), 0);
        assert!(lru.records() <= MIN_SWEEP + 1, "{} records", lru.records());
        assert!(
            lru.records.lock().next_slot as usize <= MIN_SWEEP + 1,
            "slots are reused"
        );
    }

    #[test]
    fn a_reused_slot_rejects_old_claims() {
        let lru = IdleLru::new(0);
        let (old, _) = add(&lru, 1); // evicted at once: its slot is free again
        let (new, _) = lru.push(2, None);
        assert_eq!(old.slot, new.slot);
        assert_ne!(old.generation, new.generation);
        assert!(!lru.claim(old));
        assert!(!lru.is_unclaimed(old));
    }

    #[test]
    fn claim_is_exclusive() {
        let lru = IdleLru::new(10);
        let (claim, _) = add(&lru, 1);
        assert!(lru.is_unclaimed(claim));
        assert!(lru.claim(claim));
        assert!(!lru.claim(claim));
        assert_eq!(lru.idle(), 0);
    }

    #[test]
    fn state_table_chunks_tile_the_slot_space() {
        assert_eq!(StateTable::locate(0), (0, 0));
        assert_eq!(StateTable::locate(63), (0, 63));
        assert_eq!(StateTable::locate(64), (1, 0));
        assert_eq!(StateTable::locate(191), (1, 127));
        assert_eq!(StateTable::locate(192), (2, 0));
        let (k, offset) = StateTable::locate(u32::MAX);
        assert!(k < CHUNKS && offset < FIRST_CHUNK << k);
        let table = StateTable::new();
        for slot in [0, 63, 64, 191, 192, 10_000] {
            table.ensure(slot);
            table.get(slot).store(u64::from(slot), Ordering::Relaxed);
        }
        assert_eq!(table.get(10_000).load(Ordering::Relaxed), 10_000);
    }
}
