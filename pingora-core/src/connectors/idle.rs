//! The pool of idle upstream connections.
//!
//! Releasing and taking a connection are the hot path of every proxied request, so they cost
//! one short lock and no allocation in the steady state: no task, channel or timer per
//! connection. Idle connections are looked after by one sweeper task per pool instead, which
//! wakes at the earliest idle deadline (and at least every [`SWEEP_EVERY`]) and closes the
//! connections that timed out, that the server closed, or that received data.
//!
//! Taking a connection checks it once more (see [`probe`]); connections idle for a while are
//! also checked against the kernel, which sees a close before the reactor reports it.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Weak};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::io::ReadBuf;
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tracing::{debug, warn};

use super::sys;
use crate::protocols::Stream;

/// The longest the sweeper sleeps.
pub(super) const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A connection idle at least this long is also checked with a system call when taken: a
/// server closing an idle connection usually does so after seconds of silence, and the
/// reactor may not have reported it yet. Fresher ones are checked for free (see [`probe`]).
pub(super) const KERNEL_CHECK_AFTER: Duration = Duration::from_millis(200);

/// What a look at an idle connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Idle {
    /// Nothing: the connection can be reused.
    Clean,
    /// The server closed it.
    Closed,
    /// The server sent something unasked.
    Data,
    /// An error.
    Failed,
}

struct Entry {
    stream: Stream,
    released: Instant,
    deadline: Option<Instant>,
    seq: u64,
}

/// Hashes a key that is already a hash (a reuse hash) by passing it through.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `u64` keys; fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type ByKey<V> = HashMap<u64, V, std::hash::BuildHasherDefault<KeyHasher>>;

#[derive(Default)]
struct Inner {
    /// Idle connections by reuse hash; the most recently released last.
    by_key: ByKey<Vec<Entry>>,
    /// (reuse hash, sequence number) in release order, for evicting the oldest. Entries of
    /// connections taken since are skipped when met.
    order: VecDeque<(u64, u64)>,
    len: usize,
    next_seq: u64,
}

/// Idle connections, at most `capacity`, by reuse hash.
pub(super) struct IdlePool {
    inner: Mutex<Inner>,
    capacity: usize,
    unexpected_data: Arc<AtomicUsize>,
    /// Wakes the sweeper early (a connection with an earlier deadline arrived).
    wake_sweeper: Notify,
    sweeper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for IdlePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdlePool")
            .field("idle", &self.inner.lock().len)
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl IdlePool {
    pub(super) fn new(capacity: usize, unexpected_data: Arc<AtomicUsize>) -> Arc<Self> {
        Arc::new(IdlePool {
            inner: Mutex::new(Inner::default()),
            capacity,
            unexpected_data,
            wake_sweeper: Notify::new(),
            sweeper: Mutex::new(None),
        })
    }

    /// Keeps `stream` for reuse under `key`, for at most `idle_timeout`.
    pub(super) fn put(self: &Arc<Self>, key: u64, stream: Stream, idle_timeout: Option<Duration>) {
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let deadline = idle_timeout.map(|t| now + t);
        let mut evicted = Vec::new();
        {
            let mut inner = self.inner.lock();
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.by_key.entry(key).or_default().push(Entry {
                stream,
                released: now,
                deadline,
                seq,
            });
            inner.order.push_back((key, seq));
            inner.len += 1;
            while inner.len > self.capacity {
                match inner.pop_oldest() {
                    Some(entry) => evicted.push(entry),
                    None => break,
                }
            }
            if inner.order.len() > 2 * self.capacity + 16 {
                inner.compact_order();
            }
        }
        // Closing happens outside the lock.
        drop(evicted);
        self.ensure_sweeper();
        if deadline.is_some() {
            self.wake_sweeper.notify_one();
        }
    }

    /// The most recently released idle connection of `key` that is still usable.
    pub(super) fn take(&self, key: u64) -> Option<Stream> {
        loop {
            let entry = {
                let mut inner = self.inner.lock();
                let list = inner.by_key.get_mut(&key)?;
                let entry = list.pop();
                if list.is_empty() {
                    inner.by_key.remove(&key);
                }
                let entry = entry?;
                inner.len -= 1;
                entry
            };
            let mut stream = entry.stream;
            let now = Instant::now();
            if entry.deadline.is_some_and(|d| d <= now) {
                continue;
            }
            let deep = now.duration_since(entry.released) >= KERNEL_CHECK_AFTER;
            match probe(&mut stream, deep) {
                Idle::Clean => return Some(stream),
                Idle::Data => {
                    warn!("unexpected data on an idle upstream connection, closing it");
                    self.unexpected_data.fetch_add(1, Ordering::Relaxed);
                }
                Idle::Closed | Idle::Failed => debug!("idle upstream connection gone"),
            }
        }
    }

    /// Starts the sweeper on the current runtime if it is not running.
    fn ensure_sweeper(self: &Arc<Self>) {
        let mut sweeper = self.sweeper.lock();
        if sweeper.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        let pool = Arc::downgrade(self);
        *sweeper = Some(runtime.spawn(sweep(pool)));
    }

    /// Closes the connections that timed out or that the server closed or wrote to. Returns
    /// the earliest deadline among those kept.
    fn sweep_once(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut dropped = Vec::new();
        let mut earliest: Option<Instant> = None;
        let mut inner = self.inner.lock();
        let mut removed = 0;
        for list in inner.by_key.values_mut() {
            let mut i = 0;
            while i < list.len() {
                let entry = &mut list[i];
                let expired = entry.deadline.is_some_and(|d| d <= now);
                let state = if expired {
                    Idle::Closed
                } else {
                    probe(&mut entry.stream, false)
                };
                if state == Idle::Clean {
                    if let Some(d) = entry.deadline {
                        earliest = Some(earliest.map_or(d, |e| e.min(d)));
                    }
                    i += 1;
                    continue;
                }
                if state == Idle::Data {
                    self.unexpected_data.fetch_add(1, Ordering::Relaxed);
                }
                dropped.push(list.swap_remove(i));
                removed += 1;
            }
        }
        inner.by_key.retain(|_, list| !list.is_empty());
        inner.len -= removed;
        drop(inner);
        drop(dropped);
        earliest
    }
}

impl Inner {
    fn pop_oldest(&mut self) -> Option<Entry> {
        while let Some((key, seq)) = self.order.pop_front() {
            let Some(list) = self.by_key.get_mut(&key) else {
                continue;
            };
            let Some(pos) = list.iter().position(|e| e.seq == seq) else {
                continue;
            };
            let entry = list.remove(pos);
            if list.is_empty() {
                self.by_key.remove(&key);
            }
            self.len -= 1;
            return Some(entry);
        }
        None
    }

    /// Drops the order entries of connections no longer in the pool.
    fn compact_order(&mut self) {
        let by_key = &self.by_key;
        self.order.retain(|(key, seq)| {
            by_key
                .get(key)
                .is_some_and(|list| list.iter().any(|e| e.seq == *seq))
        });
    }
}

/// The sweeper: runs until the pool is dropped.
async fn sweep(pool: Weak<IdlePool>) {
    loop {
        let (earliest, pool_alive) = match pool.upgrade() {
            Some(pool) => (pool.sweep_once(), pool),
            None => return,
        };
        let now = Instant::now();
        let wake_at = earliest.map_or(now + SWEEP_EVERY, |e| e.min(now + SWEEP_EVERY));
        // The pool stays alive while the sweeper sleeps (at most SWEEP_EVERY); once its
        // connector is gone, the next round finds it dropped.
        tokio::select! {
            _ = pool_alive.wake_sweeper.notified() => {}
            _ = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
}

/// Looks at an idle connection without waiting.
///
/// First a read is polled once with a waker that does nothing: it finds anything buffered
/// above the socket, and anything the reactor has already reported (a close, data); when the
/// reactor reported nothing it costs no system call. It consumes at most one byte, which only
/// happens to a connection that is discarded anyway. With `deep`, the socket itself is then
/// peeked at, which sees a close or data that reached it before the reactor noticed. For TLS
/// connections data on the socket is not conclusive (it may be session housekeeping the TLS
/// layer consumes) and only a close counts.
pub(super) fn probe(stream: &mut Stream, deep: bool) -> Idle {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let polled = {
        let read = std::future::poll_fn(|cx| Pin::new(&mut **stream).poll_read(cx, &mut buf));
        // Unconstrained: a task out of its coop budget would see a readable stream as pending.
        let mut cx = Context::from_waker(&NOOP_WAKER);
        pin!(tokio::task::unconstrained(read)).poll(&mut cx)
    };
    match polled {
        Poll::Ready(Ok(())) if buf.filled().is_empty() => return Idle::Closed,
        Poll::Ready(Ok(())) => return Idle::Data,
        Poll::Ready(Err(_)) => return Idle::Failed,
        Poll::Pending => {}
    }
    let fd = stream.id();
    if !deep || fd < 0 {
        return Idle::Clean;
    }
    match sys::peek_byte(fd) {
        Ok(0) => Idle::Closed,
        Ok(_) if stream.get_ssl_digest().is_some() => Idle::Clean,
        Ok(_) => Idle::Data,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Idle::Clean,
        // Not a socket (a test double, a custom transport): nothing more to learn.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => Idle::Clean,
        Err(_) => Idle::Failed,
    }
}

/// A waker that does nothing, to poll once without a task.
static NOOP_WAKER: LazyLock<Waker> = LazyLock::new(|| Waker::from(Arc::new(NoopWake)));

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
    fn wake_by_ref(self: &Arc<Self>) {}
}
