//! The fast timeout: timers from a process-wide [`TimerManager`], shared per 10 ms tick and per
//! thread, fired by one background clock thread.
//!
//! [`fast_timeout`] and [`fast_sleep`] are re-exported at the crate root as
//! [`timeout`](crate::timeout) and [`sleep`](crate::sleep). The crate documentation explains
//! when to prefer them over [`tokio_timeout`](crate::tokio_timeout).
//!
//! The clock thread is started by the first timer and wakes every 10 ms for as long as the
//! process lives, which is why this is worth it only for programs that start timeouts often
//! (as a rule of thumb, more than about a hundred per second).

use crate::sealed::Sealed;
use crate::timer::{TimerManager, TimerStub};
use crate::{Timeout, ToTimeout};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::time::Duration;

/// The manager behind every fast timeout and fast sleep of the process.
static TIMER_MANAGER: LazyLock<TimerManager> = LazyLock::new(TimerManager::new);

/// The timer of a [`fast_timeout`]: a duration waiting to be turned into a shared timer entry
/// the first time the inner future is pending.
///
/// Users don't need to interact with this type beyond naming it in `Timeout<T, FastTimeout>`.
pub struct FastTimeout(Duration);

// === impl FastTimeout ===

impl ToTimeout for FastTimeout {
    fn timeout(&self) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(self.delay())
    }

    fn create(duration: Duration) -> Self {
        FastTimeout(duration)
    }
}

impl Sealed for FastTimeout {
    type Delay = TimerStub;

    #[inline]
    fn delay(&self) -> TimerStub {
        TIMER_MANAGER.register_timer_static(self.0)
    }
}

impl fmt::Debug for FastTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FastTimeout").field(&self.0).finish()
    }
}

/// Runs `future` with a deadline of `duration`, like [`tokio::time::timeout`] but much cheaper
/// when timeouts are started and cancelled at a high rate.
///
/// The deadline is rounded up to the next 10 ms tick and counted from the first time `future`
/// is pending (a future that is ready at once never starts a timer). It needs no Tokio
/// runtime: the timer is fired by this crate's clock thread, and any executor can poll it.
///
/// # Cancellation
///
/// Dropping the returned [`Timeout`] drops `future` and cancels the timer; see [`Timeout`].
///
/// ```
/// use pingora_timeout::fast_timeout::fast_timeout;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slow = std::future::pending::<()>();
/// assert!(fast_timeout(Duration::from_millis(10), slow).await.is_err());
///
/// let quick = async { 42 };
/// assert_eq!(fast_timeout(Duration::from_secs(1), quick).await, Ok(42));
/// # }
/// ```
pub fn fast_timeout<T>(duration: Duration, future: T) -> Timeout<T, FastTimeout>
where
    T: Future,
{
    Timeout::new_with_delay(future, duration)
}

/// Waits for `duration`, rounded up to the next 10 ms tick: a cheaper
/// [`tokio::time::sleep`].
///
/// The deadline is fixed when `fast_sleep` is called, as with Tokio's `sleep`. The returned
/// [`TimerStub`] is an ordinary, `Unpin` future.
///
/// ```
/// use pingora_timeout::fast_timeout::fast_sleep;
/// use std::time::{Duration, Instant};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let start = Instant::now();
/// fast_sleep(Duration::from_millis(15)).await;
/// assert!(start.elapsed() >= Duration::from_millis(15));
/// # }
/// ```
pub fn fast_sleep(duration: Duration) -> TimerStub {
    TIMER_MANAGER.register_timer_static(duration)
}

/// Prepares the fast timers for `fork()`; call it right before forking.
///
/// A lock held by another thread at the moment of `fork()` stays locked forever in the child,
/// so this stops the clock thread and waits until no thread is inside the timer wheel's locks.
/// Until [`unpause`] is called, new fast timeouts and sleeps **expire immediately**; timers
/// that were already pending keep waiting and fire after `unpause`.
pub fn pause_for_fork() {
    TIMER_MANAGER.pause_for_fork();
}

/// Ends [`pause_for_fork`]; call it right after `fork()`, in the parent and in the child.
///
/// A new clock thread is started if one was running before the pause.
pub fn unpause() {
    TIMER_MANAGER.unpause();
}
