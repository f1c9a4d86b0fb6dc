//! Tests of the public timeout API: `timeout`, `sleep`, `tokio_timeout` and `Timeout`.

use super::*;
use crate::timer::TimerStub;
use std::future::{pending, ready};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

/// Slack for scheduling delays on a busy machine, on top of the 10 ms tick.
const SLACK: Duration = Duration::from_millis(200);

/// A future that is pending `n` times (waking itself each time), then ready with `n`.
struct PendingTimes(usize);

impl Future for PendingTimes {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        if self.0 == 0 {
            return Poll::Ready(7);
        }
        self.0 -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

fn noop_waker() -> Waker {
    Waker::from(Arc::new(NoopWaker))
}

#[tokio::test]
async fn timeout_expires_after_the_deadline_and_not_before() {
    for millis in [1, 20, 45] {
        let duration = Duration::from_millis(millis);
        let start = Instant::now();
        let result = timeout(duration, pending::<()>()).await;
        let elapsed = start.elapsed();
        assert_eq!(result, Err(Elapsed));
        assert!(
            elapsed >= duration,
            "{millis} ms timeout fired after {elapsed:?}"
        );
        assert!(
            elapsed < duration + SLACK,
            "{millis} ms timeout fired after {elapsed:?}"
        );
    }
}

#[tokio::test]
async fn inner_future_that_finishes_first_wins() {
    assert_eq!(timeout(Duration::from_secs(1), ready(1)).await, Ok(1));
    let slow_but_in_time = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        2
    };
    assert_eq!(
        timeout(Duration::from_secs(10), slow_but_in_time).await,
        Ok(2)
    );
    assert_eq!(
        timeout(Duration::from_secs(1), PendingTimes(3)).await,
        Ok(7)
    );
}

#[tokio::test]
async fn a_ready_future_beats_an_expired_deadline() {
    // The inner future is polled first: with a zero deadline, a ready future still wins.
    assert_eq!(timeout(Duration::ZERO, ready(3)).await, Ok(3));
    assert_eq!(tokio_timeout(Duration::ZERO, ready(3)).await, Ok(3));
}

#[tokio::test]
async fn zero_and_huge_deadlines_work() {
    assert_eq!(timeout(Duration::ZERO, pending::<()>()).await, Err(Elapsed));
    assert_eq!(timeout(Duration::MAX, PendingTimes(2)).await, Ok(7));
    assert_eq!(
        timeout(Duration::MAX, sleep(Duration::from_millis(5))).await,
        Ok(())
    );
}

/// A timer type that counts how often it is started.
struct CountingTimer(Arc<AtomicUsize>);

static STARTS: std::sync::LazyLock<Arc<AtomicUsize>> = std::sync::LazyLock::new(Default::default);

impl ToTimeout for CountingTimer {
    fn timeout(&self) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(sealed::Sealed::delay(self))
    }

    fn create(_: Duration) -> Self {
        CountingTimer(STARTS.clone())
    }
}

impl sealed::Sealed for CountingTimer {
    type Delay = std::future::Pending<()>;

    fn delay(&self) -> Self::Delay {
        self.0.fetch_add(1, Ordering::SeqCst);
        pending()
    }
}

#[test]
fn the_timer_starts_only_at_the_first_pending_and_only_once() {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);

    let before = STARTS.load(Ordering::SeqCst);
    let mut ready_at_once = Timeout::<_, CountingTimer>::new_with_delay(ready(1), Duration::ZERO);
    assert_eq!(
        Pin::new(&mut ready_at_once).poll(&mut cx),
        Poll::Ready(Ok(1))
    );
    assert_eq!(
        STARTS.load(Ordering::SeqCst),
        before,
        "a ready future started a timer"
    );

    let mut slow = Timeout::<_, CountingTimer>::new_with_delay(PendingTimes(3), Duration::ZERO);
    let mut slow = Pin::new(&mut slow);
    for _ in 0..3 {
        assert!(slow.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(slow.as_mut().poll(&mut cx), Poll::Ready(Ok(7)));
    assert_eq!(
        STARTS.load(Ordering::SeqCst),
        before + 1,
        "the timer must start exactly once"
    );
}

#[test]
fn fast_timeout_needs_no_runtime() {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut to = timeout(Duration::from_secs(5), PendingTimes(1));
    assert!(Pin::new(&mut to).poll(&mut cx).is_pending());
    assert_eq!(Pin::new(&mut to).poll(&mut cx), Poll::Ready(Ok(7)));
    // Nor does a lazy Tokio timeout whose future is ready at once.
    let to = std::pin::pin!(tokio_timeout(Duration::from_secs(5), ready(9)));
    assert_eq!(to.poll(&mut cx), Poll::Ready(Ok(9)));
}

#[tokio::test]
async fn into_inner_returns_the_unfinished_future() {
    let waker = noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut to = timeout(Duration::from_millis(1), PendingTimes(2));
    assert!(Pin::new(&mut to).poll(&mut cx).is_pending());
    assert_eq!(to.get_ref().0, 1);
    to.get_mut().0 = 0;
    assert_eq!(to.into_inner().await, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_timeouts_all_fire() {
    let duration = Duration::from_millis(50);
    let tasks: Vec<_> = (0..10_000)
        .map(|i| {
            tokio::spawn(async move {
                let start = Instant::now();
                // Spread the deadlines over a few ticks, and half of the tasks through sleep.
                let duration = duration + Duration::from_millis(i % 30);
                let result = if i % 2 == 0 {
                    timeout(duration, pending::<()>()).await
                } else {
                    timeout(Duration::from_secs(60), sleep(duration)).await
                };
                (i % 2 == 0, result, start.elapsed() >= duration)
            })
        })
        .collect();
    for task in tasks {
        let (expect_elapsed, result, waited_long_enough) = task.await.unwrap();
        assert_eq!(result.is_err(), expect_elapsed);
        assert!(waited_long_enough, "a timer fired early");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_cancelled_in_flight_do_not_disturb_the_others() {
    let tasks: Vec<_> = (0..1_000)
        .map(|i| {
            tokio::spawn(async move {
                // Every other task finishes early and drops its timeout; the rest time out.
                let inner = async move {
                    if i % 2 == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    } else {
                        pending::<()>().await;
                    }
                };
                timeout(Duration::from_millis(40), inner).await
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap().is_ok(), i % 2 == 0);
    }
}

#[tokio::test]
async fn sleep_waits_at_least_its_duration() {
    let start = Instant::now();
    sleep(Duration::from_millis(30)).await;
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(30) + SLACK, "{elapsed:?}");
}

#[tokio::test]
async fn sleep_deadline_is_fixed_when_created() {
    let nap = sleep(Duration::from_millis(30));
    tokio::time::sleep(Duration::from_millis(40)).await;
    let start = Instant::now();
    nap.await;
    assert!(start.elapsed() < Duration::from_millis(20));
}

#[tokio::test]
async fn dropped_sleep_can_be_replaced() {
    let waker = noop_waker();
    let mut first = sleep(Duration::from_secs(30));
    assert!(Pin::new(&mut first)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    drop(first);
    let start = Instant::now();
    sleep(Duration::from_millis(10)).await;
    assert!(start.elapsed() >= Duration::from_millis(10));
}

#[tokio::test]
async fn tokio_timeout_expires_and_completes() {
    let start = Instant::now();
    assert_eq!(
        tokio_timeout(Duration::from_millis(20), pending::<()>()).await,
        Err(Elapsed)
    );
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        tokio_timeout(Duration::from_secs(5), PendingTimes(2)).await,
        Ok(7)
    );
}

#[tokio::test(start_paused = true)]
async fn tokio_timeout_follows_tokio_time() {
    // Under Tokio's paused clock, a one-hour tokio_timeout elapses instantly.
    let result = tokio_timeout(Duration::from_secs(3600), pending::<()>()).await;
    assert_eq!(result, Err(Elapsed));
}

#[tokio::test]
async fn boxed_timer_futures_from_to_timeout_work() {
    let start = Instant::now();
    fast_timeout::FastTimeout::create(Duration::from_millis(15))
        .timeout()
        .await;
    assert!(start.elapsed() >= Duration::from_millis(15));
    let start = Instant::now();
    TokioTimeout::create(Duration::from_millis(15))
        .timeout()
        .await;
    assert!(start.elapsed() >= Duration::from_millis(15));
}

#[test]
fn elapsed_is_a_std_error_that_says_timeout_elapsed() {
    let error: Box<dyn std::error::Error + Send + Sync> = Box::new(Elapsed);
    assert_eq!(error.to_string(), "Timeout Elapsed");
    assert_eq!(
        std::io::Error::from(Elapsed).kind(),
        std::io::ErrorKind::TimedOut
    );
}

#[test]
fn public_types_are_send_sync_unpin_where_expected() {
    fn send_sync<T: Send + Sync>() {}
    fn unpin<T: Unpin>() {}
    send_sync::<Timeout<std::future::Ready<()>, fast_timeout::FastTimeout>>();
    send_sync::<Timeout<std::future::Ready<()>, TokioTimeout>>();
    unpin::<Timeout<std::future::Ready<()>, fast_timeout::FastTimeout>>();
    send_sync::<TimerStub>();
    send_sync::<Elapsed>();
}

#[test]
fn debug_output_does_not_need_debug_futures() {
    struct Opaque;
    impl Future for Opaque {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            Poll::Ready(())
        }
    }
    let to = timeout(Duration::from_secs(1), Opaque);
    assert_eq!(format!("{to:?}"), "Timeout { started: false, .. }");
    assert!(format!("{:?}", sleep(Duration::from_secs(1))).contains("armed"));
}
