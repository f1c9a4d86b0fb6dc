//! The cache lock: when many requests miss the same key at once, one of them (the *writer*)
//! fetches the response from the origin while the others (the *readers*) wait for it.
//!
//! [`CacheKeyLock::lock`] hands out the lock of a key: a [`WritePermit`] to the first
//! request, a [`ReadLock`] to every request that comes while the permit is held. The writer
//! ends the lock with [`CacheKeyLock::release`] (or [`WritePermit::unlock`]) and a
//! [`LockStatus`] that tells the readers what to do next:
//!
//! | status | the readers |
//! | --- | --- |
//! | [`Done`](LockStatus::Done) | look the key up again: the response is (being) stored |
//! | [`TransientError`](LockStatus::TransientError) | compete for the lock again |
//! | [`GiveUp`](LockStatus::GiveUp) | go to the origin without the cache |
//! | [`Dangling`](LockStatus::Dangling) | compete again: the writer vanished without a word |
//! | [`AgeTimeout`](LockStatus::AgeTimeout) | compete again: the writer held the lock too long |
//! | [`WaitTimeout`](LockStatus::WaitTimeout) | go to the origin: this reader waited too long |
//!
//! Nothing waits forever: a writer may hold its lock for at most the *age timeout* given to
//! [`CacheLock::new`], after which readers stop waiting and the next request becomes the new
//! writer; each request may also bound its own wait ([`CacheOptionOverrides::wait_timeout`],
//! [`ReadLock::wait_with_timeout`]).
//!
//! Time is tokio's ([`tokio::time::Instant`]), so tests can pause it.
//!
//! ```
//! use std::time::Duration;
//! use pingora_cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked};
//! use pingora_cache::CacheKey;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let lock = CacheLock::new(Duration::from_secs(5));
//! let key = CacheKey::new("", "/index.html", "");
//! let Locked::Write(permit) = lock.lock(&key, false) else { unreachable!() };
//! let Locked::Read(reader) = lock.lock(&key, false) else { unreachable!() };
//! // ... the writer fetches and stores the response, then:
//! lock.release(&key, permit, LockStatus::Done);
//! assert_eq!(reader.wait().await, LockStatus::Done);
//! assert!(lock.is_empty());
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Extensions;
use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::key::{CacheHashKey, CacheKey};

/// The lock type the cache stores: any [`CacheKeyLock`] that can be shared between threads.
pub type CacheKeyLockImpl = dyn CacheKeyLock + Send + Sync;

/// Per-request options that override the cache's defaults. Build it from
/// [`Default`] and set the fields (more may be added).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheOptionOverrides {
    /// How long this request may wait as a cache-lock reader before it gives up and goes to
    /// the origin itself ([`LockStatus::WaitTimeout`]). `None`: only the writer's age timeout
    /// bounds the wait.
    pub wait_timeout: Option<Duration>,
}

/// Hands out per-key locks so that one request fetches a missing response while the others
/// wait for it.
pub trait CacheKeyLock {
    /// Takes the lock of `key`: a [`Locked::Write`] permit if nobody holds it (or its holder
    /// vanished or timed out), else a [`Locked::Read`] lock to wait on.
    ///
    /// `stale_writer` records that the writer revalidates a stale response which the readers
    /// may serve meanwhile ([`WritePermit::stale_writer`]).
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked;

    /// Ends the writer's lock of `key` and wakes its readers with `reason`.
    fn release(&self, key: &CacheKey, permit: WritePermit, reason: LockStatus);

    /// The status a writer should release its lock with when the response is not cached for
    /// the custom reason `custom_no_cache`. By default [`LockStatus::GiveUp`], as for a
    /// response the origin does not let us store.
    fn custom_lock_status(&self, _custom_no_cache: &'static str) -> LockStatus {
        LockStatus::GiveUp
    }
}

/// What [`CacheKeyLock::lock`] hands out.
#[derive(Debug)]
pub enum Locked {
    /// This request is the writer: it fetches the response, then releases the permit.
    Write(WritePermit),
    /// Another request is the writer: wait on this lock.
    Read(ReadLock),
}

// === impl Locked ===

impl Locked {
    /// Whether this is the writer's permit.
    pub fn is_write(&self) -> bool {
        matches!(self, Locked::Write(_))
    }
}

/// The state of a lock, as its readers see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LockStatus {
    /// The writer still holds the lock.
    Waiting = 0,
    /// The writer finished: look the key up again.
    Done = 1,
    /// The writer failed in a way the next try may not: compete for the lock again.
    TransientError = 2,
    /// The response is not cacheable: go to the origin without the cache.
    GiveUp = 3,
    /// The writer's permit was dropped without being released: compete again.
    Dangling = 4,
    /// This reader waited longer than its own wait timeout. Never stored in a lock: only
    /// returned to the reader that timed out.
    WaitTimeout = 5,
    /// The writer held the lock longer than the age timeout: compete again.
    AgeTimeout = 6,
}

// === impl LockStatus ===

impl LockStatus {
    /// The status's name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            LockStatus::Waiting => "Waiting",
            LockStatus::Done => "Done",
            LockStatus::TransientError => "TransientError",
            LockStatus::GiveUp => "GiveUp",
            LockStatus::Dangling => "Dangling",
            LockStatus::WaitTimeout => "WaitTimeout",
            LockStatus::AgeTimeout => "AgeTimeout",
        }
    }
}

impl From<LockStatus> for &'static str {
    fn from(status: LockStatus) -> Self {
        status.as_str()
    }
}

impl From<LockStatus> for u8 {
    fn from(status: LockStatus) -> u8 {
        status as u8
    }
}

impl From<u8> for LockStatus {
    /// The status of a number; an unknown number reads as [`LockStatus::GiveUp`], the safe
    /// choice (go to the origin).
    fn from(value: u8) -> Self {
        match value {
            0 => LockStatus::Waiting,
            1 => LockStatus::Done,
            2 => LockStatus::TransientError,
            4 => LockStatus::Dangling,
            5 => LockStatus::WaitTimeout,
            6 => LockStatus::AgeTimeout,
            _ => LockStatus::GiveUp,
        }
    }
}

impl fmt::Display for LockStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state one writer shares with its readers.
#[derive(Debug)]
pub struct LockCore {
    /// When the writer took the lock.
    pub lock_start: Instant,
    /// How long the writer may hold it.
    pub age_timeout: Duration,
    // The sender lives as long as the core, so readers never see it closed; the writer sets
    // the final status through it.
    status: watch::Sender<LockStatus>,
    stale_writer: bool,
    extensions: Extensions,
}

// === impl LockCore ===

impl LockCore {
    /// A new core in the [`Waiting`](LockStatus::Waiting) state, started now.
    pub fn new_arc(age_timeout: Duration, stale_writer: bool, extensions: Extensions) -> Arc<Self> {
        Arc::new(LockCore {
            lock_start: Instant::now(),
            age_timeout,
            status: watch::Sender::new(LockStatus::Waiting),
            stale_writer,
            extensions,
        })
    }

    /// Whether the writer still holds the lock (it may have held it too long).
    pub fn locked(&self) -> bool {
        *self.status.borrow() == LockStatus::Waiting
    }

    /// Sets the final status and wakes every reader. [`LockStatus::WaitTimeout`] concerns one
    /// reader, not the lock, and is stored as [`LockStatus::GiveUp`].
    pub fn unlock(&self, reason: LockStatus) {
        let reason = match reason {
            LockStatus::WaitTimeout => LockStatus::GiveUp,
            other => other,
        };
        self.status.send_replace(reason);
    }

    /// The stored status, or [`LockStatus::AgeTimeout`] for a lock still held past its age
    /// timeout.
    pub fn lock_status(&self) -> LockStatus {
        let status = *self.status.borrow();
        if status == LockStatus::Waiting && self.expired() {
            LockStatus::AgeTimeout
        } else {
            status
        }
    }

    /// Whether the writer has held the lock for its whole age timeout (whatever the status).
    pub fn expired(&self) -> bool {
        self.lock_start.elapsed() >= self.age_timeout
    }

    /// Whether the writer revalidates a stale response.
    pub fn stale_writer(&self) -> bool {
        self.stale_writer
    }

    /// Data the lock implementation attached to the lock.
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Whether a new request should replace this lock rather than wait on it.
    fn replaceable(&self) -> bool {
        matches!(
            self.lock_status(),
            LockStatus::Dangling | LockStatus::AgeTimeout
        )
    }
}

/// A reader's handle on a lock held by another request.
#[derive(Debug)]
pub struct ReadLock(Arc<LockCore>);

// === impl ReadLock ===

impl ReadLock {
    /// Waits until the writer releases the lock or its age timeout passes, and returns the
    /// final status ([`LockStatus::AgeTimeout`] if the writer took too long).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future changes nothing.
    pub async fn wait(&self) -> LockStatus {
        self.wait_with_timeout(None).await
    }

    /// Like [`wait`](Self::wait), also giving up after `wait_timeout` (from now) with
    /// [`LockStatus::WaitTimeout`], whichever comes first.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future changes nothing.
    pub async fn wait_with_timeout(&self, wait_timeout: Option<Duration>) -> LockStatus {
        let core = &self.0;
        let age_deadline = core.lock_start + core.age_timeout;
        let (deadline, on_timeout) = match wait_timeout.map(|wait| Instant::now() + wait) {
            Some(wait_deadline) if wait_deadline < age_deadline => {
                (wait_deadline, LockStatus::WaitTimeout)
            }
            _ => (age_deadline, LockStatus::AgeTimeout),
        };
        let mut receiver = core.status.subscribe();
        let released = async {
            let result = receiver.wait_for(|status| *status != LockStatus::Waiting);
            result.await.map(|status| *status)
        };
        match tokio::time::timeout_at(deadline, released).await {
            Ok(Ok(status)) => status,
            // The sender lives in the core this reader holds: it cannot be closed.
            Ok(Err(_)) => core.lock_status(),
            Err(_elapsed) => match core.lock_status() {
                // Released just as the deadline passed: the release wins.
                LockStatus::Waiting => on_timeout,
                status => status,
            },
        }
    }

    /// Whether the writer still holds the lock.
    pub fn locked(&self) -> bool {
        self.0.locked()
    }

    /// Whether the writer has held the lock past its age timeout.
    pub fn expired(&self) -> bool {
        self.0.expired()
    }

    /// The lock's status now, without waiting ([`LockStatus::AgeTimeout`] once the writer
    /// has held it too long).
    pub fn lock_status(&self) -> LockStatus {
        self.0.lock_status()
    }

    /// Data the lock implementation attached to the lock.
    pub fn extensions(&self) -> &Extensions {
        self.0.extensions()
    }
}

/// The writer's permit. Release it with [`CacheKeyLock::release`] (or
/// [`unlock`](Self::unlock)); a permit dropped without that wakes its readers with
/// [`LockStatus::Dangling`], and its table entry goes away with it.
pub struct WritePermit {
    lock: Arc<LockCore>,
    finished: bool,
    // The table entry to remove when the permit ends, for permits a `CacheLock` handed out.
    entry: Option<(Arc<LockTable>, u128)>,
}

// === impl WritePermit ===

impl WritePermit {
    /// A permit on a new lock and the stub to make its read locks from, for lock
    /// implementations other than [`CacheLock`].
    pub fn new(
        age_timeout: Duration,
        stale_writer: bool,
        extensions: Extensions,
    ) -> (WritePermit, LockStub) {
        let lock = LockCore::new_arc(age_timeout, stale_writer, extensions);
        let stub = LockStub(lock.clone());
        let permit = WritePermit {
            lock,
            finished: false,
            entry: None,
        };
        (permit, stub)
    }

    /// Whether the writer revalidates a stale response.
    pub fn stale_writer(&self) -> bool {
        self.lock.stale_writer()
    }

    /// Ends the lock and wakes the readers with `reason`.
    pub fn unlock(&mut self, reason: LockStatus) {
        self.finished = true;
        // Out of the table first, so that a request arriving now starts afresh rather than
        // reading a lock that is already over.
        if let Some((table, key)) = self.entry.take() {
            table.remove_if_same(key, &self.lock);
        }
        self.lock.unlock(reason);
    }

    /// The lock's status now.
    pub fn lock_status(&self) -> LockStatus {
        self.lock.lock_status()
    }

    /// Data the lock implementation attached to the lock.
    pub fn extensions(&self) -> &Extensions {
        self.lock.extensions()
    }
}

impl Drop for WritePermit {
    fn drop(&mut self) {
        if !self.finished {
            self.unlock(LockStatus::Dangling);
        }
    }
}

impl fmt::Debug for WritePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WritePermit")
            .field("lock", &self.lock)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

/// What a lock table keeps per locked key: read locks are made from it.
#[derive(Debug)]
pub struct LockStub(pub Arc<LockCore>);

// === impl LockStub ===

impl LockStub {
    /// A read lock on this lock.
    pub fn read_lock(&self) -> ReadLock {
        ReadLock(self.0.clone())
    }

    /// Data the lock implementation attached to the lock.
    pub fn extensions(&self) -> &Extensions {
        self.0.extensions()
    }
}

/// The number of shards of a [`CacheLock`]'s table.
const N_SHARDS: usize = 16;

/// The locked keys, sharded by their 128-bit hash.
#[derive(Debug)]
struct LockTable {
    shards: [RwLock<HashMap<u128, Arc<LockCore>>>; N_SHARDS],
}

// === impl LockTable ===

impl LockTable {
    fn new() -> Self {
        LockTable {
            shards: std::array::from_fn(|_| RwLock::new(HashMap::new())),
        }
    }

    fn shard(&self, key: u128) -> &RwLock<HashMap<u128, Arc<LockCore>>> {
        // The key is a cryptographic hash: any of its bits spread keys evenly.
        &self.shards[(key % N_SHARDS as u128) as usize]
    }

    /// Removes `key` if it still maps to `core`: a writer that timed out must not remove its
    /// successor's lock.
    fn remove_if_same(&self, key: u128, core: &Arc<LockCore>) {
        let mut shard = self.shard(key).write();
        if shard.get(&key).is_some_and(|held| Arc::ptr_eq(held, core)) {
            shard.remove(&key);
        }
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().len()).sum()
    }
}

/// The cache lock: a sharded table of the keys being fetched, keyed by the combined hash of
/// the cache key (so each variant has its own lock).
#[derive(Debug)]
pub struct CacheLock {
    table: Arc<LockTable>,
    age_timeout: Duration,
}

// === impl CacheLock ===

impl CacheLock {
    /// A boxed cache lock whose writers may hold a lock for at most `age_timeout`.
    pub fn new_boxed(age_timeout: Duration) -> Box<Self> {
        Box::new(Self::new(age_timeout))
    }

    /// A cache lock whose writers may hold a lock for at most `age_timeout`.
    pub fn new(age_timeout: Duration) -> Self {
        CacheLock {
            table: Arc::new(LockTable::new()),
            age_timeout,
        }
    }

    /// The number of keys locked now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is locked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn table_key(key: &CacheKey) -> u128 {
        u128::from_be_bytes(key.combined_bin())
    }
}

impl CacheKeyLock for CacheLock {
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked {
        let table_key = Self::table_key(key);
        let shard = self.table.shard(table_key);
        if let Some(core) = shard.read().get(&table_key) {
            if !core.replaceable() {
                return Locked::Read(ReadLock(core.clone()));
            }
        }
        let mut shard = shard.write();
        // Another request may have taken the lock between the two locks of the shard.
        if let Some(core) = shard.get(&table_key) {
            if !core.replaceable() {
                return Locked::Read(ReadLock(core.clone()));
            }
        }
        let core = LockCore::new_arc(self.age_timeout, stale_writer, Extensions::new());
        shard.insert(table_key, core.clone());
        Locked::Write(WritePermit {
            lock: core,
            finished: false,
            entry: Some((self.table.clone(), table_key)),
        })
    }

    fn release(&self, key: &CacheKey, mut permit: WritePermit, reason: LockStatus) {
        // A permit from this table removes its own entry; one from elsewhere (or whose entry
        // is gone) is looked up by key, and only its own entry is removed.
        if permit.entry.is_none() {
            self.table
                .remove_if_same(Self::table_key(key), &permit.lock);
        }
        permit.unlock(reason);
    }
}

#[cfg(test)]
mod tests;
