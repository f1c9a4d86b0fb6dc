//! Pools of connections that carry several requests at once, such as HTTP/2 connections:
//! [`MultiplexPool`], and [`ConnectGate`], which lets requests arriving together at a cold
//! pool wait for one new connection instead of each opening its own.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;
use std::pin::pin;
use std::sync::Arc;

use log::debug;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::GroupKey;

/// A connection that carries several requests at once.
pub trait Multiplexed {
    /// How many requests the connection carries now.
    fn in_use(&self) -> usize;
    /// Whether the connection takes no new requests (it failed, was told to go away, or was
    /// closed for idleness). A closed connection leaves the pool.
    fn is_closed(&self) -> bool;
    /// Stops the connection from taking new requests; it ends once its requests are done.
    fn close(&self);
    /// Whether a closed connection should stay in the pool anyway, for what it tells about
    /// its peer to the next [`MultiplexPool::find`] of its group (which then drops it).
    fn keep_closed(&self) -> bool {
        false
    }
}

/// Passes a [`GroupKey`], already a hash, through.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByKey<V> = HashMap<GroupKey, V, BuildHasherDefault<KeyHasher>>;

/// The open connections of each group, busy and idle, for connections that carry several
/// requests at once.
///
/// A request takes a slot on a connection of its group that has room, a busy one first (so
/// that idle ones can time out); a connection is kept in the pool, busy or idle, until it
/// closes. At most `max_idle` idle connections are kept per group: one more going idle is
/// closed ([`release`](Self::release)).
///
/// ```
/// use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
/// use pingora_pool::{MultiplexPool, Multiplexed};
///
/// #[derive(Default)]
/// struct Conn { streams: AtomicUsize, closed: AtomicBool }
///
/// impl Multiplexed for Conn {
///     fn in_use(&self) -> usize { self.streams.load(Ordering::SeqCst) }
///     fn is_closed(&self) -> bool { self.closed.load(Ordering::SeqCst) }
///     fn close(&self) { self.closed.store(true, Ordering::SeqCst) }
/// }
///
/// let pool = MultiplexPool::new(1);
/// pool.add(7, Conn::default());
/// // Take a slot on a connection of group 7 with fewer than 2 requests.
/// let slot = pool.find(7, |_| {}, |conn| {
///     (conn.in_use() < 2).then(|| conn.streams.fetch_add(1, Ordering::SeqCst))
/// });
/// assert_eq!(slot, Some(0));
/// assert_eq!(pool.connections(7), 1);
/// ```
pub struct MultiplexPool<C> {
    groups: Mutex<ByKey<Vec<C>>>,
    max_idle: usize,
}

// === impl MultiplexPool ===

impl<C: Multiplexed> MultiplexPool<C> {
    /// A pool that keeps at most `max_idle` idle connections per group.
    pub fn new(max_idle: usize) -> Self {
        Self {
            groups: Mutex::new(ByKey::default()),
            max_idle,
        }
    }

    /// Takes a slot on a connection of group `key`: `take` is offered the group's open
    /// connections, busy ones first, until it returns something.
    ///
    /// `inspect` sees every connection of the group first, closed ones included; closed
    /// connections are then dropped from the pool.
    pub fn find<T>(
        &self,
        key: GroupKey,
        mut inspect: impl FnMut(&C),
        mut take: impl FnMut(&C) -> Option<T>,
    ) -> Option<T> {
        let mut groups = self.groups.lock();
        let list = groups.get_mut(&key)?;
        list.retain(|conn| {
            inspect(conn);
            !conn.is_closed()
        });
        let busy_first = list
            .iter()
            .filter(|c| c.in_use() > 0)
            .chain(list.iter().filter(|c| c.in_use() == 0));
        let mut found = None;
        for conn in busy_first {
            found = take(conn);
            if found.is_some() {
                break;
            }
        }
        if list.is_empty() {
            groups.remove(&key);
        }
        found
    }

    /// Adds a new connection to group `key`.
    ///
    /// Closed connections of every group are dropped on the way, but those that
    /// [`keep_closed`](Multiplexed::keep_closed): new connections are rare next to requests,
    /// so this bounds what the closed connections of groups no longer used keep, at little
    /// cost.
    pub fn add(&self, key: GroupKey, conn: C) {
        let mut groups = self.groups.lock();
        groups.retain(|_, list| {
            list.retain(|c| !c.is_closed() || c.keep_closed());
            !list.is_empty()
        });
        groups.entry(key).or_default().push(conn);
    }

    /// Tells the pool that `conn`, of group `key`, may have become idle: if it carries no
    /// request and its group has more than `max_idle` idle connections, it is closed.
    pub fn release(&self, key: GroupKey, conn: &C) {
        if conn.in_use() > 0 {
            return;
        }
        let idle = self.groups.lock().get(&key).map_or(0, |list| {
            list.iter()
                .filter(|c| !c.is_closed() && c.in_use() == 0)
                .count()
        });
        if idle > self.max_idle {
            debug!("too many idle connections in the group; closing one (key={key})");
            conn.close();
        }
    }

    /// How many open connections group `key` has.
    pub fn connections(&self, key: GroupKey) -> usize {
        self.groups
            .lock()
            .get(&key)
            .map_or(0, |list| list.iter().filter(|c| !c.is_closed()).count())
    }
}

impl<C> fmt::Debug for MultiplexPool<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let groups = self.groups.lock();
        f.debug_struct("MultiplexPool")
            .field("groups", &groups.len())
            .field("connections", &groups.values().map(Vec::len).sum::<usize>())
            .field("max_idle", &self.max_idle)
            .finish()
    }
}

/// The groups a connection is being made to, so that requests arriving together at a cold
/// pool wait for one connection instead of each opening its own.
#[derive(Default)]
pub struct ConnectGate {
    groups: Mutex<ByKey<Arc<Notify>>>,
}

/// What [`ConnectGate::join`] gave.
#[derive(Debug)]
pub enum Joined<'a> {
    /// No one was connecting: the caller connects, and the others wait until the guard is
    /// dropped.
    First(ConnectingGuard<'a>),
    /// Another caller was connecting, and finished (or gave up).
    Waited,
}

/// Marks a connection attempt in progress; dropping it wakes those waiting.
#[derive(Debug)]
pub struct ConnectingGuard<'a> {
    gate: &'a ConnectGate,
    key: GroupKey,
    notify: Arc<Notify>,
}

// === impl ConnectGate ===

impl ConnectGate {
    /// Waits for a connection attempt to group `key` in progress, or becomes the one making
    /// it.
    ///
    /// Cancel-safe: a dropped first caller's guard wakes the waiters.
    pub async fn join(&self, key: GroupKey) -> Joined<'_> {
        let notify = {
            let mut groups = self.groups.lock();
            match groups.get(&key) {
                Some(notify) => Arc::clone(notify),
                None => {
                    let notify = Arc::new(Notify::new());
                    groups.insert(key, Arc::clone(&notify));
                    return Joined::First(ConnectingGuard {
                        gate: self,
                        key,
                        notify,
                    });
                }
            }
        };
        let notified = notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        // The attempt may have ended between the lookup and `enable`.
        if self
            .groups
            .lock()
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &notify))
        {
            notified.await;
        }
        Joined::Waited
    }
}

impl fmt::Debug for ConnectGate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectGate")
            .field("connecting", &self.groups.lock().len())
            .finish()
    }
}

impl Drop for ConnectingGuard<'_> {
    fn drop(&mut self) {
        self.gate.groups.lock().remove(&self.key);
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests;
