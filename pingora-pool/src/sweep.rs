//! Idle connections looked after by the pool itself: [`ConnectionPool::release`],
//! [`ConnectionPool::get_checked`] and the sweeper.
//!
//! Releasing and taking a connection are on the path of every proxied request, so in this
//! mode they cost no task, channel, timer or allocation per connection. One sweeper task per
//! pool wakes at the earliest idle deadline (and at least every [`SWEEP_INTERVAL`]) and
//! closes the connections that timed out, that the peer closed, or that received data.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use log::{debug, warn};
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::connection::{ConnectionPool, Entry, Watch};
use crate::{ConnectionMeta, GroupKey};

/// The longest the sweeper sleeps: a connection the peer closed while idle is closed on our
/// side within this.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A connection idle at least this long gets a thorough check when handed out by
/// [`ConnectionPool::get_checked`]: a peer closing an idle connection usually does so after
/// a silence, and the runtime may not have reported it yet. Fresher ones get the cheap check.
pub const THOROUGH_CHECK_AFTER: Duration = Duration::from_millis(200);

/// What a look at an idle connection found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleState {
    /// Nothing: the connection can be reused.
    Clean,
    /// The peer closed it.
    Closed,
    /// The peer sent something unasked.
    Data,
    /// An error.
    Failed,
}

/// A connection that the pool can look at without waiting, for
/// [`ConnectionPool::release`] and [`ConnectionPool::get_checked`].
pub trait IdleCheck {
    /// Looks at the idle connection without blocking or yielding.
    ///
    /// The cheap check should learn what is already known without a system call (what the
    /// runtime has reported, what is buffered); with `thorough`, it may also ask the operating
    /// system, which sees a close or data before the runtime reports it. Consuming input is
    /// allowed only when the answer is not [`IdleState::Clean`]: such a connection is closed.
    fn check_idle(&mut self, thorough: bool) -> IdleState;
}

/// The sweeper's state, shared with its task.
pub(crate) struct Sweeper {
    shared: Arc<Shared>,
}

struct Shared {
    /// Wakes the sweeper before its time: a connection with an earlier deadline arrived.
    wake: Notify,
    /// Whether a sweeper task is alive.
    running: AtomicBool,
    /// When the sleeping sweeper wakes, in milliseconds after `epoch` plus one; [`SWEEPING`]
    /// while it sweeps.
    next_wake: AtomicU64,
    epoch: Instant,
}

/// `next_wake` while the sweeper is not asleep: any deadline should wake it again.
const SWEEPING: u64 = 0;

/// Resets `running` when the sweeper task ends, including when its runtime drops it.
struct Running(Arc<Shared>);

// === impl ConnectionPool ===

impl<S: IdleCheck + Send + Sync + 'static> ConnectionPool<S> {
    /// Releases `connection` to the pool, as idle, under `meta.key`, for the pool to look
    /// after: it is kept at most `idle_timeout` (`None`: until it is evicted or goes bad;
    /// zero: not at all), and closed early if the peer closes it or sends data.
    ///
    /// The connection is checked first ([`IdleCheck`]); a closed or readable one is dropped
    /// instead. The caller must only release connections that are at a message boundary.
    /// The pool's sweeper runs on the Tokio runtime of the first caller that has one.
    pub fn release(
        self: &Arc<Self>,
        meta: &ConnectionMeta,
        mut connection: S,
        idle_timeout: Option<Duration>,
    ) {
        if idle_timeout.is_some_and(|t| t.is_zero()) {
            debug!("idle timeout is zero, closing the connection (meta={meta:?})");
            return;
        }
        if !self.usable(&mut connection, false) {
            return;
        }
        let released = Instant::now();
        let deadline = idle_timeout.and_then(|t| released.checked_add(t));
        self.add(meta, connection, Watch::Swept { released, deadline }, None);
        self.sweeper.watch(self, deadline);
    }

    /// Takes an idle connection of group `key` out of the pool that is still usable, if
    /// there is one, in the order [`get`](Self::get) takes them.
    ///
    /// Connections given with [`release`](Self::release) are checked on the way: those past
    /// their idle timeout, closed or readable are closed and skipped (thoroughly for those
    /// idle [`THOROUGH_CHECK_AFTER`] or more). Connections given with [`put`](Self::put)
    /// are handed out as `get` does.
    pub fn get_checked(&self, key: &GroupKey) -> Option<S> {
        loop {
            let Entry {
                mut conn, watch, ..
            } = self.take_entry(key)?;
            match watch {
                Watch::Task(picked_up) => {
                    // An error means the watcher is gone already: nothing to tell.
                    let _ = picked_up.send(true);
                    return Some(conn);
                }
                Watch::Swept { released, deadline } => {
                    let now = Instant::now();
                    if deadline.is_some_and(|d| d <= now) {
                        debug!("idle connection timed out (key={key})");
                        continue;
                    }
                    let idle_for = now.saturating_duration_since(released);
                    if self.usable(&mut conn, idle_for >= THOROUGH_CHECK_AFTER) {
                        return Some(conn);
                    }
                }
            }
        }
    }

    /// Closes the released connections that timed out or went bad, now. Returns the
    /// earliest idle deadline among those kept.
    ///
    /// The sweeper calls this by itself; it is public for callers without a Tokio runtime.
    pub fn sweep(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut earliest: Option<Instant> = None;
        let mut removed = Vec::new();
        self.retain_all(
            |entry| {
                let Watch::Swept { deadline, .. } = entry.watch else {
                    return true;
                };
                if deadline.is_some_and(|d| d <= now) || !self.usable(&mut entry.conn, false) {
                    return false;
                }
                if let Some(d) = deadline {
                    earliest = Some(earliest.map_or(d, |e| e.min(d)));
                }
                true
            },
            &mut removed,
        );
        for entry in removed {
            self.close_entry(entry);
        }
        earliest
    }

    /// Whether `conn` can stay in or leave the pool; counts and logs why not.
    fn usable(&self, conn: &mut S, thorough: bool) -> bool {
        match conn.check_idle(thorough) {
            IdleState::Clean => true,
            IdleState::Data => {
                warn!("unexpected data on an idle connection, closing it");
                self.unexpected_data.fetch_add(1, Ordering::Relaxed);
                false
            }
            IdleState::Closed | IdleState::Failed => {
                debug!("idle connection closed or failed");
                false
            }
        }
    }
}

impl<S> ConnectionPool<S> {
    /// How many connections were closed because data arrived on them while idle, as found by
    /// [`release`](Self::release), [`get_checked`](Self::get_checked) and the sweeper.
    pub fn unexpected_data_count(&self) -> u64 {
        self.unexpected_data.load(Ordering::Relaxed)
    }

    /// The counter behind [`unexpected_data_count`](Self::unexpected_data_count), to read it
    /// without the pool (from a metrics exporter, say).
    pub fn unexpected_data_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.unexpected_data)
    }
}

// === impl Sweeper ===

impl Default for Sweeper {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                wake: Notify::new(),
                running: AtomicBool::new(false),
                next_wake: AtomicU64::new(SWEEPING),
                epoch: Instant::now(),
            }),
        }
    }
}

impl Sweeper {
    /// Makes sure a sweeper looks after `pool`, and that it wakes by `deadline`.
    fn watch<S: IdleCheck + Send + Sync + 'static>(
        &self,
        pool: &Arc<ConnectionPool<S>>,
        deadline: Option<Instant>,
    ) {
        let shared = &self.shared;
        if !shared.running.load(Ordering::Acquire) {
            self.start(pool);
        }
        if let Some(deadline) = deadline {
            let next = shared.next_wake.load(Ordering::Acquire);
            if next == SWEEPING || shared.millis(deadline) < next {
                shared.wake.notify_one();
            }
        }
    }

    /// Starts the sweeper on the current runtime, unless it runs or there is no runtime.
    fn start<S: IdleCheck + Send + Sync + 'static>(&self, pool: &Arc<ConnectionPool<S>>) {
        let Ok(runtime) = Handle::try_current() else {
            return;
        };
        if self.shared.running.swap(true, Ordering::AcqRel) {
            return;
        }
        let running = Running(Arc::clone(&self.shared));
        runtime.spawn(sweep_until_dropped(Arc::downgrade(pool), running));
    }
}

// === impl Shared ===

impl Shared {
    /// `at` as stored in `next_wake`: never [`SWEEPING`].
    fn millis(&self, at: Instant) -> u64 {
        let millis = at.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(millis).unwrap_or(u64::MAX - 1) + 1
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.store(false, Ordering::Release);
    }
}

/// The sweeper task: sweeps at the earliest deadline and at least every [`SWEEP_INTERVAL`],
/// until the pool is dropped. It holds the pool only while sweeping.
async fn sweep_until_dropped<S: IdleCheck + Send + Sync + 'static>(
    pool: Weak<ConnectionPool<S>>,
    running: Running,
) {
    let shared = &running.0;
    loop {
        shared.next_wake.store(SWEEPING, Ordering::Release);
        let earliest = match pool.upgrade() {
            Some(pool) => pool.sweep(),
            None => return,
        };
        let now = Instant::now();
        let wake_at = earliest.map_or(now + SWEEP_INTERVAL, |e| e.min(now + SWEEP_INTERVAL));
        // A deadline that arrived during the sweep left a permit: the wait ends at once.
        let woken = shared.wake.notified();
        shared
            .next_wake
            .store(shared.millis(wake_at), Ordering::Release);
        tokio::select! {
            () = woken => {}
            () = tokio::time::sleep_until(wake_at.into()) => {}
        }
    }
}

#[cfg(test)]
mod tests;
