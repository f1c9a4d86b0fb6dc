//! Tests of the timer wheel: sharing, rounding, cancellation, the clock thread and pausing.

use super::clock::{STALL_TICKS, TICK_NANOS};
use super::*;
use std::sync::atomic::AtomicUsize;
use std::task::{Wake, Waker};

/// A waker that counts how often it was woken.
#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker::default());
    (counter.clone(), Waker::from(counter))
}

/// Polls `stub` once with `waker`.
fn poll_with(stub: &mut TimerStub, waker: &Waker) -> Poll<()> {
    Pin::new(stub).poll(&mut Context::from_waker(waker))
}

#[test]
fn deadline_tick_rounds_up_never_down() {
    let ms = |n: u64| n * 1_000_000;
    // On a boundary: that very tick.
    assert_eq!(deadline_tick(0, Duration::from_millis(30)), 3);
    assert_eq!(deadline_tick(ms(10), Duration::from_millis(20)), 3);
    // One nanosecond past a boundary: the next tick.
    assert_eq!(deadline_tick(1, Duration::from_millis(30)), 4);
    assert_eq!(deadline_tick(ms(128), Duration::ZERO), 13);
    assert_eq!(deadline_tick(ms(129), Duration::from_millis(1)), 13);
    assert_eq!(deadline_tick(ms(130), Duration::from_nanos(1)), 14);
    // Every result is at or after the deadline, and less than one tick after it.
    for now in [0, 1, ms(5), ms(9) + 999_999, ms(12_345) + 17] {
        for duration in [0, 1, 9_999_999, 10_000_000, 10_000_001, 2_500_000_000] {
            let deadline = now + duration;
            let tick = deadline_tick(now, Duration::from_nanos(duration));
            assert!(tick * TICK_NANOS >= deadline);
            assert!(tick * TICK_NANOS < deadline + TICK_NANOS);
        }
    }
}

#[test]
fn deadline_tick_saturates_instead_of_overflowing() {
    assert_eq!(
        deadline_tick(5, Duration::MAX),
        u64::MAX.div_ceil(TICK_NANOS)
    );
    assert_eq!(
        deadline_tick(u64::MAX, Duration::from_secs(1)),
        u64::MAX.div_ceil(TICK_NANOS)
    );
}

#[tokio::test]
async fn timer_fires_after_its_deadline_and_not_before() {
    let timers = TimerManager::new();
    for millis in [0, 1, 25, 40] {
        let duration = Duration::from_millis(millis);
        let start = Instant::now();
        timers.register_timer(duration).await;
        let elapsed = start.elapsed();
        assert!(
            elapsed >= duration,
            "{millis} ms timer fired after {elapsed:?}"
        );
        // 10 ms of rounding plus generous room for a busy machine.
        assert!(
            elapsed < duration + Duration::from_millis(200),
            "{elapsed:?}"
        );
    }
}

#[test]
fn timers_in_the_same_tick_share_one_entry() {
    let timers = TimerManager::new();
    let (_, waker) = counting_waker();
    // Two timers registered 1 ms apart share an entry when their deadlines round to the same
    // tick, which is the case unless a tick boundary falls between them; retry until it is.
    let mut shared = false;
    for _ in 0..50 {
        let mut first = timers.register_timer(Duration::from_millis(500));
        std::thread::sleep(Duration::from_millis(1));
        let mut second = timers.register_timer(Duration::from_millis(500));
        let same_tick = first.armed_tick().expect("armed") == second.armed_tick().expect("armed");
        assert!(poll_with(&mut first, &waker).is_pending());
        assert!(poll_with(&mut second, &waker).is_pending());
        let entries = timers.inner().entry_count();
        drop((first, second));
        if same_tick {
            assert_eq!(
                entries, 1,
                "timers due on the same tick must share an entry"
            );
            shared = true;
            break;
        }
        assert_eq!(
            entries, 2,
            "timers due on different ticks must not share an entry"
        );
    }
    assert!(shared, "never registered two timers within one tick");
}

#[test]
fn same_tick_timers_are_woken_together() {
    let timers = TimerManager::new();
    let (counter, waker) = counting_waker();
    let mut stubs: Vec<_> = (0..100)
        .map(|_| timers.register_timer(Duration::from_millis(20)))
        .collect();
    for stub in &mut stubs {
        assert!(poll_with(stub, &waker).is_pending());
    }
    assert!(timers.inner().entry_count() <= 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while counter.0.load(Ordering::SeqCst) < 100 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(counter.0.load(Ordering::SeqCst), 100);
    for stub in &mut stubs {
        assert!(poll_with(stub, &waker).is_ready());
    }
    assert_eq!(timers.inner().entry_count(), 0);
    assert_eq!(timers.inner().waiter_count(), 0);
}

#[test]
fn cancelled_timers_leave_no_entry_behind() {
    let timers = TimerManager::new();
    let (counter, waker) = counting_waker();
    let mut stubs = Vec::new();
    for millis in [30, 40, 50, 60] {
        for _ in 0..10 {
            let mut stub = timers.register_timer(Duration::from_millis(millis));
            assert!(poll_with(&mut stub, &waker).is_pending());
            stubs.push(stub);
        }
    }
    assert_eq!(timers.inner().waiter_count(), 40);
    assert!(timers.inner().entry_count() >= 4);
    drop(stubs);
    // At most a few cancellations are still queued on this thread; carrying them out removes
    // every waiter, and every emptied entry except the most recent one.
    assert!(timers.inner().waiter_count() <= 16);
    deferred::flush_current_thread();
    assert_eq!(timers.inner().waiter_count(), 0);
    assert!(timers.inner().entry_count() <= 1);
    // That one goes when its tick passes.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(timers.inner().entry_count(), 0);
    assert_eq!(
        counter.0.load(Ordering::SeqCst),
        0,
        "a cancelled timer woke its task"
    );
}

#[test]
fn queued_cancellations_expire_with_their_tick() {
    let timers = TimerManager::new();
    let (counter, waker) = counting_waker();
    let mut stub = timers.register_timer(Duration::from_millis(20));
    assert!(poll_with(&mut stub, &waker).is_pending());
    drop(stub);
    // The cancellation stays queued, as this thread registers nothing else. The clock still
    // removes the entry when its tick passes; the task gets one harmless spurious wake-up.
    assert_eq!(timers.inner().waiter_count(), 1);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(timers.inner().entry_count(), 0);
    assert_eq!(timers.inner().waiter_count(), 0);
    assert_eq!(counter.0.load(Ordering::SeqCst), 1);
    // Carrying out the stale cancellation later is a no-op.
    deferred::flush_current_thread();
    assert_eq!(timers.inner().waiter_count(), 0);
}

#[test]
fn a_task_restarting_timeouts_reuses_one_slot() {
    let timers = TimerManager::new();
    let (counter, waker) = counting_waker();
    for i in 0..1_000u64 {
        // Two deadlines, so the waiter also moves between entries.
        let mut stub = timers.register_timer(Duration::from_millis(200 + (i % 2) * 100));
        assert!(poll_with(&mut stub, &waker).is_pending());
        assert_eq!(timers.inner().waiter_count(), 1);
        drop(stub);
    }
    // One waiter slot plus the sentinels of at most a few live entries.
    assert!(
        timers.inner().slot_count() <= 6,
        "{} slots",
        timers.inner().slot_count()
    );
    assert!(timers.inner().entry_count() <= 2);
    deferred::flush_current_thread();
    assert_eq!(timers.inner().waiter_count(), 0);
    assert_eq!(counter.0.load(Ordering::SeqCst), 0);
}

#[test]
fn another_tasks_queued_cancellation_is_removed_not_reused() {
    let timers = TimerManager::new();
    let (first_counter, first_waker) = counting_waker();
    let (second_counter, second_waker) = counting_waker();
    let mut first = timers.register_timer(Duration::from_millis(20));
    assert!(poll_with(&mut first, &first_waker).is_pending());
    drop(first);
    let mut second = timers.register_timer(Duration::from_millis(20));
    assert!(poll_with(&mut second, &second_waker).is_pending());
    assert_eq!(timers.inner().waiter_count(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while second_counter.0.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(first_counter.0.load(Ordering::SeqCst), 0);
    assert!(poll_with(&mut second, &second_waker).is_ready());
}

#[test]
fn expired_entries_are_removed_even_if_nobody_polls_again() {
    let timers = TimerManager::new();
    let (counter, waker) = counting_waker();
    let mut stubs: Vec<_> = (0..10)
        .map(|i| timers.register_timer(Duration::from_millis(10 + 10 * i)))
        .collect();
    for stub in &mut stubs {
        assert!(poll_with(stub, &waker).is_pending());
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(timers.inner().entry_count(), 0);
    assert_eq!(timers.inner().waiter_count(), 0);
    assert_eq!(counter.0.load(Ordering::SeqCst), 10);
    // The stubs are still alive and report the expiry.
    for stub in &mut stubs {
        assert!(poll_with(stub, &waker).is_ready());
    }
}

#[test]
fn a_stub_never_polled_registers_nothing() {
    let timers = TimerManager::new();
    let stubs: Vec<_> = (0..10)
        .map(|_| timers.register_timer(Duration::from_millis(10)))
        .collect();
    assert_eq!(timers.inner().entry_count(), 0);
    drop(stubs);
    assert_eq!(timers.inner().waiter_count(), 0);
}

#[test]
fn repolling_with_a_new_waker_wakes_the_new_one() {
    let timers = TimerManager::new();
    let (old_counter, old_waker) = counting_waker();
    let (new_counter, new_waker) = counting_waker();
    let mut stub = timers.register_timer(Duration::from_millis(20));
    assert!(poll_with(&mut stub, &old_waker).is_pending());
    assert!(poll_with(&mut stub, &new_waker).is_pending());
    let deadline = Instant::now() + Duration::from_secs(5);
    while new_counter.0.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(new_counter.0.load(Ordering::SeqCst), 1);
    assert_eq!(old_counter.0.load(Ordering::SeqCst), 0);
    assert!(poll_with(&mut stub, &new_waker).is_ready());
}

#[tokio::test]
async fn a_stub_polled_after_its_tick_passed_is_ready_at_once() {
    let timers = TimerManager::new();
    // Start the clock, then let it fire past the stub's tick before the stub is first polled.
    timers.register_timer(Duration::ZERO).await;
    let mut stub = timers.register_timer(Duration::from_millis(10));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, waker) = counting_waker();
    assert!(poll_with(&mut stub, &waker).is_ready());
    assert_eq!(timers.inner().entry_count(), 0);
}

#[tokio::test]
async fn compat_poll_method_waits_for_expiry() {
    let timers = TimerManager::new();
    let start = Instant::now();
    timers
        .register_timer(Duration::from_millis(20))
        .poll()
        .await;
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn clock_starts_once_however_many_threads_race() {
    let timers = Arc::new(TimerManager::new());
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let timers = timers.clone();
            std::thread::spawn(move || {
                for _ in 0..100 {
                    drop(timers.register_timer(Duration::from_secs(1)));
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
    assert_eq!(timers.inner().clock_starts(), 1);
}

#[tokio::test]
async fn a_stalled_clock_is_replaced() {
    let timers = TimerManager::new();
    timers.register_timer(Duration::from_millis(10)).await;
    assert_eq!(timers.inner().clock_starts(), 1);

    // The clock thread stops ticking without saying so; a timer registered now is only fired
    // because the registration notices the stale watchdog and starts a new clock.
    timers.inner().simulate_stall();
    let start = Instant::now();
    timers.register_timer(Duration::from_millis(20)).await;
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(timers.inner().clock_starts(), 2);

    // A fresh clock is not replaced again.
    timers.register_timer(Duration::from_millis(10)).await;
    assert_eq!(timers.inner().clock_starts(), 2);
}

#[test]
fn stall_threshold_is_two_seconds() {
    assert_eq!(STALL_TICKS as u64 * TICK_NANOS, 2_000_000_000);
}

#[tokio::test]
async fn paused_manager_expires_new_timers_at_once_and_recovers_on_unpause() {
    let timers = TimerManager::new();
    let (counter, waker) = counting_waker();
    // A timer pending across the pause.
    let mut before = timers.register_timer(Duration::from_millis(80));
    assert!(poll_with(&mut before, &waker).is_pending());
    let started = Instant::now();
    assert!(timers.inner().has_clock());

    timers.pause_for_fork();
    assert!(
        !timers.inner().has_clock(),
        "the clock thread must be stopped"
    );
    let start = Instant::now();
    timers.register_timer(Duration::from_secs(100)).await;
    assert!(start.elapsed() < Duration::from_millis(50));
    assert_eq!(
        timers.inner().clock_starts(),
        1,
        "no clock may start while paused"
    );

    timers.unpause();
    assert!(timers.inner().has_clock());
    // The timer from before the pause fires on time, not early.
    while counter.0.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(80));
    assert!(poll_with(&mut before, &waker).is_ready());

    // And new timers wait again.
    let start = Instant::now();
    timers.register_timer(Duration::from_millis(30)).await;
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn unpause_without_a_running_clock_starts_none() {
    let timers = TimerManager::new();
    timers.pause_for_fork();
    timers.unpause();
    assert!(!timers.inner().has_clock());
    assert_eq!(timers.inner().clock_starts(), 0);
}

#[test]
fn dropping_the_manager_ends_its_clock_thread() {
    let timers = TimerManager::new();
    drop(timers.register_timer(Duration::from_secs(1)));
    let weak = Arc::downgrade(timers.inner());
    drop(timers);
    let deadline = Instant::now() + Duration::from_secs(5);
    while weak.strong_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the clock thread kept the manager alive"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn stubs_from_many_threads_fire() {
    let timers = Arc::new(TimerManager::new());
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let timers = timers.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    let start = Instant::now();
                    timers.register_timer(Duration::from_millis(30)).await;
                    start.elapsed()
                })
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.join().unwrap() >= Duration::from_millis(30));
    }
    assert_eq!(timers.inner().entry_count(), 0);
}

#[test]
fn public_types_are_send_sync_unpin() {
    fn check<T: Send + Sync + Unpin>() {}
    check::<TimerManager>();
    check::<TimerStub>();
}

#[test]
fn tick_instants_never_overflow() {
    let timers = TimerManager::new();
    let inner = timers.inner();
    assert_eq!(inner.tick_instant(0), inner.zero);
    assert_eq!(
        inner.tick_instant(3) - inner.zero,
        Duration::from_millis(30)
    );
    // Far beyond `u32` ticks (497 days) and at the very end of the range.
    let later = inner.tick_instant(u64::from(u32::MAX) + 10) - inner.zero;
    assert_eq!(
        later,
        Duration::from_millis(10 * (u64::from(u32::MAX) + 10))
    );
    assert!(inner.tick_instant(u64::MAX) > Instant::now());
}
