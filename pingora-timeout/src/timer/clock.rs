//! The clock thread: wakes on every 10 ms boundary and fires the expired entries of every
//! thread's shard.
//!
//! The thread is started lazily by the first timer registration. It stamps a watchdog with the
//! tick it last handled; a registration that finds the stamp more than [`STALL_TICKS`] old (or
//! no clock at all) starts a new thread. Every thread carries a generation number, and a thread
//! whose generation is no longer the current one exits, so a stalled thread that comes back
//! after being replaced does not keep running next to its successor.

use super::shard::Tick;
use super::Inner;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The clock's resolution, in nanoseconds.
pub(crate) const TICK_NANOS: u64 = 10_000_000;

/// The clock's resolution.
pub(crate) const TICK: Duration = Duration::from_nanos(TICK_NANOS);

/// A clock whose watchdog is this many ticks old (2 s) is considered dead and is replaced.
pub(crate) const STALL_TICKS: i64 = 200;

/// The watchdog value meaning "no clock thread": infinitely stale.
pub(crate) const STOPPED: i64 = i64::MIN;

/// The part of a manager that starts and stops its clock thread.
#[derive(Debug, Default)]
pub(crate) struct ClockControl {
    /// The current clock thread, if one was started.
    handle: Option<JoinHandle<()>>,
    /// Whether `pause_for_fork` stopped a running clock, so `unpause` should start it again.
    restart_on_unpause: bool,
}

// === impl Inner (clock) ===

impl Inner {
    /// Starts a clock thread unless a live one exists. Called on every timer registration, so
    /// the common case is one relaxed load.
    #[inline]
    pub(crate) fn ensure_clock(self: &Arc<Self>, now: Tick) {
        let seen = self.watchdog.load(Ordering::Relaxed);
        if tick_as_i64(now).saturating_sub(seen) < STALL_TICKS {
            return;
        }
        self.restart_clock(seen, now);
    }

    #[cold]
    fn restart_clock(self: &Arc<Self>, seen: i64, now: Tick) {
        // Only the caller that moves the watchdog forward starts a thread; the others see a
        // fresh watchdog from then on.
        if self
            .watchdog
            .compare_exchange(seen, tick_as_i64(now), Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        let mut control = self.clock.lock();
        // `pause_for_fork` sets `paused` before taking this lock, so a clock can never be
        // started after it has stopped the old one.
        if self.paused.load(Ordering::SeqCst) {
            self.watchdog.store(STOPPED, Ordering::Relaxed);
            return;
        }
        self.spawn_clock(&mut control);
    }

    /// Starts a new clock thread, retiring any previous one.
    fn spawn_clock(self: &Arc<Self>, control: &mut ClockControl) {
        let generation = self.clock_generation.fetch_add(1, Ordering::AcqRel) + 1;
        let weak = Arc::downgrade(self);
        let spawned = thread::Builder::new()
            .name("pingora-timer".into())
            .spawn(move || run(&weak, generation));
        match spawned {
            Ok(handle) => {
                self.clock_starts.fetch_add(1, Ordering::Relaxed);
                // The previous thread, if any, exits on its own once it sees the new generation.
                control.handle = Some(handle);
            }
            // The system is out of threads. Leave the watchdog stale so that a later
            // registration tries again; until then timers cannot fire.
            Err(_) => self.watchdog.store(STOPPED, Ordering::Relaxed),
        }
    }

    /// Stops the clock thread and waits for it to exit. Returns whether one was running.
    pub(crate) fn stop_clock(&self) -> bool {
        let mut control = self.clock.lock();
        let was_running = control.handle.is_some();
        self.retire_clock(&mut control);
        self.watchdog.store(STOPPED, Ordering::Relaxed);
        was_running
    }

    /// Makes the current clock thread exit and waits for it.
    fn retire_clock(&self, control: &mut ClockControl) {
        self.clock_generation.fetch_add(1, Ordering::AcqRel);
        if let Some(handle) = control.handle.take() {
            handle.thread().unpark();
            // A waker run by the clock thread could, in theory, call `pause_for_fork`; it must
            // not wait for itself.
            if handle.thread().id() != thread::current().id() {
                // The clock thread never panics on its own; if a waker panicked it, there is
                // nothing more to clean up.
                let _ = handle.join();
            }
        }
    }

    /// Stops the clock for `pause_for_fork`, remembering whether to restart it.
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        let was_running = self.stop_clock();
        let mut control = self.clock.lock();
        control.restart_on_unpause |= was_running;
        drop(control);
        // Wait for every thread that got past the `paused` check to leave its shard's lock.
        for shard in self.shards.iter() {
            shard.quiesce();
        }
    }

    /// Lifts `pause`, restarting the clock if `pause` stopped one.
    pub(crate) fn unpause(self: &Arc<Self>) {
        let mut control = self.clock.lock();
        self.paused.store(false, Ordering::SeqCst);
        if std::mem::take(&mut control.restart_on_unpause) {
            self.watchdog
                .store(tick_as_i64(self.now_tick()), Ordering::Relaxed);
            self.spawn_clock(&mut control);
        }
    }

    /// Test hook: makes the clock thread exit *without* marking it stopped, and back-dates the
    /// watchdog, exactly as if the thread had hung for longer than [`STALL_TICKS`].
    #[cfg(test)]
    pub(crate) fn simulate_stall(&self) {
        let mut control = self.clock.lock();
        self.retire_clock(&mut control);
        let stale = tick_as_i64(self.now_tick()) - STALL_TICKS - 1;
        self.watchdog.store(stale, Ordering::Relaxed);
    }

    /// One pass of the clock: fire everything due at `now` in every shard.
    fn tick(&self, now: Tick, wakers: &mut Vec<Waker>) {
        // `fetch_max`: a replaced clock thread that resumes late must not make the watchdog
        // look stale again.
        self.watchdog.fetch_max(tick_as_i64(now), Ordering::Relaxed);
        for shard in self.shards.iter() {
            shard.fire_expired(now, wakers);
            // Waking happens outside the shard lock, shard by shard, so a large batch on one
            // thread does not delay the others' wake-ups more than necessary.
            for waker in wakers.drain(..) {
                waker.wake();
            }
        }
    }

    fn is_current_clock(&self, generation: u64) -> bool {
        self.clock_generation.load(Ordering::Acquire) == generation
    }
}

/// The clock thread's body. It holds only a weak reference, so dropping the manager ends it.
fn run(inner: &Weak<Inner>, generation: u64) {
    let mut wakers = Vec::new();
    loop {
        let Some(manager) = inner.upgrade() else {
            return;
        };
        if !manager.is_current_clock(generation) {
            return;
        }
        let now = manager.now_tick();
        manager.tick(now, &mut wakers);
        // Sleep until the next tick boundary, so that a timer due at tick `t` fires as soon
        // after `t` as the OS wakes us.
        let next = manager.tick_instant(now + 1);
        loop {
            let now = Instant::now();
            if now >= next || !manager.is_current_clock(generation) {
                break;
            }
            thread::park_timeout(next - now);
        }
    }
}

/// Ticks are far below `i64::MAX` (that is ~2.9 billion years of 10 ms ticks).
fn tick_as_i64(tick: Tick) -> i64 {
    i64::try_from(tick).unwrap_or(i64::MAX)
}
