//! The timer wheel behind [`fast_timeout`](crate::fast_timeout::fast_timeout): cheap timers for
//! systems that start and cancel timeouts at a high rate.
//!
//! Most users never touch this module; [`timeout`](crate::timeout) and [`sleep`](crate::sleep)
//! use a process-wide [`TimerManager`].
//!
//! # How it works
//!
//! * Deadlines are rounded **up** to the next 10 ms tick. All timers of one thread whose
//!   deadlines round to the same tick share a single entry, so a burst of timeouts with the same
//!   duration costs one map insertion per 10 ms, not one per timeout.
//! * Each thread keeps its entries in its own shard: registering and cancelling a timer locks
//!   only the calling thread's shard, never a lock shared with other worker threads.
//! * One background clock thread wakes on every 10 ms boundary and fires the entries that are
//!   due in every thread's shard. It is started by the first registration and restarted by a
//!   later one if it stops ticking for two seconds.
//!
//! A timer fires at the first clock tick at or after its deadline: never early, and normally at
//! most 10 ms (plus the time the OS takes to wake the clock thread) late.
//!
//! # Cancellation
//!
//! Dropping a [`TimerStub`] cancels its timer. To keep cancellation off the lock, the removal
//! of its waiter is queued on the dropping thread (at most a few waiters per thread) and carried
//! out by that thread's next registration; a task that starts a new timer for the same tick
//! simply takes its old waiter over. Until then the cancelled waiter may still wake its task
//! once, which is harmless. An entry whose waiters are all gone is removed as soon as the thread
//! moves on to another deadline, and in any case when its tick passes, so cancelled timers
//! never accumulate.

mod clock;
mod deferred;
mod shard;

#[cfg(test)]
mod tests;

use clock::{ClockControl, STOPPED, TICK, TICK_NANOS};
use deferred::{Cancelled, TaskId};
use parking_lot::Mutex;
use shard::{Garbage, Key, Registered, Shard, Tick};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use thread_local::ThreadLocal;

/// Owns a set of timers and the clock thread that fires them.
///
/// [`register_timer`](Self::register_timer) returns a [`TimerStub`], a future that completes
/// when the timer expires. The clock thread is started by the first registration and stops
/// shortly after the manager is dropped; timers still pending at that point never fire.
///
/// ```
/// use pingora_timeout::timer::TimerManager;
/// use std::time::{Duration, Instant};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let timers = TimerManager::new();
/// let start = Instant::now();
/// timers.register_timer(Duration::from_millis(20)).await;
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// # }
/// ```
pub struct TimerManager {
    inner: Arc<Inner>,
}

/// The state shared between a manager, its clock thread and its stubs' shards.
pub(crate) struct Inner {
    /// One shard per thread that has registered a timer.
    shards: ThreadLocal<Arc<Shard>>,
    /// Tick 0.
    zero: Instant,
    /// The tick the clock thread last handled, or [`STOPPED`].
    watchdog: AtomicI64,
    /// The generation of the current clock thread; older threads exit.
    clock_generation: AtomicU64,
    /// Between `pause_for_fork` and `unpause`.
    paused: AtomicBool,
    clock: Mutex<ClockControl>,
    /// How many clock threads were started (observed by tests).
    clock_starts: AtomicU64,
}

/// A future that completes when its timer expires, returned by
/// [`TimerManager::register_timer`].
///
/// The deadline is fixed when the stub is created. The stub joins its tick's shared entry the
/// first time it is polled; dropping it before then costs nothing, and dropping it afterwards
/// cancels its waiter (see the [module documentation](self#cancellation)).
#[must_use = "futures do nothing unless you `.await` or poll them"]
pub struct TimerStub {
    state: StubState,
}

enum StubState {
    /// Due at `tick`; not registered with the shard yet.
    Armed { shard: ShardRef, tick: Tick },
    /// Registered with the shard, due at `tick`, last polled by `task`.
    Waiting {
        shard: ShardRef,
        key: Key,
        tick: Tick,
        task: TaskId,
    },
    /// Expired.
    Fired,
}

/// A stub's way back to its shard. The process-wide manager lives forever, so its stubs borrow
/// the shard and skip the reference count.
enum ShardRef {
    Static(&'static Shard),
    Shared(Arc<Shard>),
}

// === impl TimerManager ===

impl TimerManager {
    /// Creates a manager with no timers. Its clock thread starts with the first registration.
    pub fn new() -> Self {
        TimerManager {
            inner: Arc::new(Inner {
                shards: ThreadLocal::new(),
                zero: Instant::now(),
                watchdog: AtomicI64::new(STOPPED),
                clock_generation: AtomicU64::new(0),
                paused: AtomicBool::new(false),
                clock: Mutex::new(ClockControl::default()),
                clock_starts: AtomicU64::new(0),
            }),
        }
    }

    /// Starts a timer that expires `duration` from now, rounded up to the next 10 ms tick.
    ///
    /// While the manager is paused for `fork()` (see [`pause_for_fork`](Self::pause_for_fork))
    /// the returned stub is already expired.
    pub fn register_timer(&self, duration: Duration) -> TimerStub {
        match self.inner.arm(duration) {
            Some((shard, tick)) => TimerStub::armed(ShardRef::Shared(Arc::clone(shard)), tick),
            None => TimerStub::fired(),
        }
    }

    /// [`register_timer`](Self::register_timer) for a manager that lives forever, whose stubs
    /// can borrow their shard.
    #[inline]
    pub(crate) fn register_timer_static(&'static self, duration: Duration) -> TimerStub {
        match self.inner.arm(duration) {
            Some((shard, tick)) => TimerStub::armed(ShardRef::Static(shard), tick),
            None => TimerStub::fired(),
        }
    }

    /// Prepares for `fork()`: stops the clock thread and waits until no thread is inside the
    /// manager's locks, because a lock held across `fork()` stays locked forever in the child.
    ///
    /// Call it right before `fork()`, with no other thread starting timers. Until
    /// [`unpause`](Self::unpause), newly registered timers expire immediately; timers that
    /// were already pending keep waiting and fire after `unpause`.
    pub fn pause_for_fork(&self) {
        self.inner.pause();
    }

    /// Ends [`pause_for_fork`](Self::pause_for_fork). Call it right after `fork()`, in the
    /// parent and in the child: each starts a fresh clock thread if one was running before.
    pub fn unpause(&self) {
        self.inner.unpause();
    }

    #[cfg(test)]
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl Default for TimerManager {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for TimerManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerManager")
            .field("paused", &self.inner.paused.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

// === impl Inner ===

impl Inner {
    /// Computes the tick of a timer due `duration` from now and finds the calling thread's
    /// shard. `None` while paused for `fork()`.
    #[inline]
    fn arm(self: &Arc<Self>, duration: Duration) -> Option<(&Arc<Shard>, Tick)> {
        if self.paused.load(Ordering::Relaxed) {
            return None;
        }
        let now = self.now_nanos();
        let tick = deadline_tick(now, duration);
        self.ensure_clock(now / TICK_NANOS);
        Some((self.shards.get_or(Default::default), tick))
    }

    /// Nanoseconds since tick 0.
    #[inline]
    fn now_nanos(&self) -> u64 {
        duration_nanos(self.zero.elapsed())
    }

    /// The tick that is in progress now.
    fn now_tick(&self) -> Tick {
        self.now_nanos() / TICK_NANOS
    }

    /// The instant at which `tick` starts.
    fn tick_instant(&self, tick: Tick) -> Instant {
        let offset = Duration::from_nanos(tick.saturating_mul(TICK_NANOS));
        // Unreachable in practice: `u64` nanoseconds after `zero` are 584 years away.
        self.zero
            .checked_add(offset)
            .unwrap_or_else(|| Instant::now() + TICK)
    }

    /// Test hook: the number of entries across all shards.
    #[cfg(test)]
    pub(crate) fn entry_count(&self) -> usize {
        self.shards.iter().map(|shard| shard.entry_count()).sum()
    }

    /// Test hook: the number of registered waiters across all shards.
    #[cfg(test)]
    pub(crate) fn waiter_count(&self) -> usize {
        self.shards.iter().map(|shard| shard.waiter_count()).sum()
    }

    /// Test hook: the number of slab slots across all shards.
    #[cfg(test)]
    pub(crate) fn slot_count(&self) -> usize {
        self.shards.iter().map(|shard| shard.slot_count()).sum()
    }

    /// Test hook: how many clock threads were started.
    #[cfg(test)]
    pub(crate) fn clock_starts(&self) -> u64 {
        self.clock_starts.load(Ordering::Relaxed)
    }

    /// Test hook: whether a clock thread is currently started.
    #[cfg(test)]
    pub(crate) fn has_clock(&self) -> bool {
        self.watchdog.load(Ordering::Relaxed) != STOPPED
    }
}

/// The tick of a deadline `duration` after `now_nanos`: the deadline rounded up to a multiple
/// of 10 ms, so that the timer can never fire before it.
#[inline]
pub(crate) fn deadline_tick(now_nanos: u64, duration: Duration) -> Tick {
    now_nanos
        .saturating_add(duration_nanos(duration))
        .div_ceil(TICK_NANOS)
}

/// A duration in nanoseconds, saturating at `u64::MAX` (about 584 years).
#[inline]
fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

// === impl TimerStub ===

impl TimerStub {
    fn armed(shard: ShardRef, tick: Tick) -> Self {
        TimerStub {
            state: StubState::Armed { shard, tick },
        }
    }

    fn fired() -> Self {
        TimerStub {
            state: StubState::Fired,
        }
    }

    /// Waits for the timer to expire.
    ///
    /// Kept for compatibility with Pingora; awaiting the stub directly does the same.
    pub async fn poll(self) {
        self.await;
    }

    /// The tick the stub is due at, while it has not been polled.
    #[cfg(test)]
    pub(crate) fn armed_tick(&self) -> Option<Tick> {
        match &self.state {
            StubState::Armed { tick, .. } => Some(*tick),
            _ => None,
        }
    }
}

impl Future for TimerStub {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state = &mut self.state;
        match state {
            StubState::Armed { shard, tick } => {
                let tick = *tick;
                let key = match deferred::adopt(shard, tick, cx.waker()) {
                    Some(key) => key,
                    None => match register(shard, tick, cx.waker()) {
                        Some(key) => key,
                        None => {
                            *state = StubState::Fired;
                            return Poll::Ready(());
                        }
                    },
                };
                let StubState::Armed { shard, .. } = std::mem::replace(state, StubState::Fired)
                else {
                    unreachable!("matched as Armed above");
                };
                *state = StubState::Waiting {
                    shard,
                    key,
                    tick,
                    task: TaskId::of(cx.waker()),
                };
                Poll::Pending
            }
            StubState::Waiting {
                shard, key, task, ..
            } => {
                if shard.get().refresh(*key, cx.waker()) {
                    *task = TaskId::of(cx.waker());
                    Poll::Pending
                } else {
                    *state = StubState::Fired;
                    Poll::Ready(())
                }
            }
            StubState::Fired => Poll::Ready(()),
        }
    }
}

/// Registers a waiter under the shard's lock, carrying out this thread's queued cancellations
/// for the shard on the way. `None` if `tick` has already been fired.
#[inline(never)]
fn register(shard: &ShardRef, tick: Tick, waker: &Waker) -> Option<Key> {
    let cancelled = deferred::take(shard);
    let mut garbage = Garbage::new();
    let registered = shard
        .get()
        .register(tick, waker, cancelled.as_slice(), &mut garbage);
    drop(garbage);
    match registered {
        Registered::AlreadyFired => None,
        Registered::Waiting(key) => Some(key),
    }
}

impl Drop for TimerStub {
    fn drop(&mut self) {
        if let StubState::Waiting {
            shard,
            key,
            tick,
            task,
        } = std::mem::replace(&mut self.state, StubState::Fired)
        {
            deferred::cancel(Cancelled {
                shard,
                key,
                tick,
                task,
            });
        }
    }
}

impl fmt::Debug for TimerStub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            StubState::Armed { .. } => "armed",
            StubState::Waiting { shard, key, .. } if shard.get().is_waiting(*key) => "waiting",
            StubState::Waiting { .. } | StubState::Fired => "fired",
        };
        f.debug_struct("TimerStub").field("state", &state).finish()
    }
}

// === impl ShardRef ===

impl ShardRef {
    #[inline]
    fn get(&self) -> &Shard {
        match self {
            ShardRef::Static(shard) => shard,
            ShardRef::Shared(shard) => shard,
        }
    }

    fn ptr_eq(&self, other: &ShardRef) -> bool {
        std::ptr::eq(self.get(), other.get())
    }
}
