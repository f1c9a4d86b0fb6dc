//! Cheap timeouts for Tokio programs that start and cancel a great many of them.
//!
//! [`timeout`] has the shape of [`tokio::time::timeout`]: it wraps a future and resolves to
//! `Ok(output)`, or to `Err(`[`Elapsed`]`)` if the deadline passes first. It is built for
//! servers that put a deadline on nearly every read and write, where almost every timeout is
//! cancelled long before it fires:
//!
//! * **Lazy:** the timer starts only the first time the inner future is pending. A read that
//!   finds data already buffered never touches a timer.
//! * **Shared:** deadlines are rounded up to the next 10 ms tick, and all timeouts of one thread
//!   that end on the same tick share one timer entry.
//! * **No global lock:** each thread keeps its timers in its own shard. Starting and cancelling
//!   a timeout locks only the calling thread's shard.
//!
//! A single background clock thread fires the timers, ticking every 10 ms. The crate's
//! `BENCHMARKS.md` compares the cost with Tokio's timeouts.
//!
//! # Which one to use
//!
//! | function | timer | use it for |
//! |---|---|---|
//! | [`timeout`] / [`fast_timeout::fast_timeout`] | shared 10 ms ticks, clock thread | deadlines on hot I/O paths, started often (more than ~100 per second) |
//! | [`sleep`] / [`fast_timeout::fast_sleep`] | same | coarse delays in the same programs |
//! | [`tokio_timeout`] | Tokio's timer, started lazily | rare timeouts, or when 10 ms granularity is too coarse |
//! | [`tokio::time::timeout`] | Tokio's timer | everything else, and code that uses Tokio's paused test clock |
//!
//! The fast timers run on the real clock: Tokio's `time::pause()` does not affect them.
//!
//! # Accuracy
//!
//! A fast timer never fires before its deadline. It fires at the first clock tick at or after
//! the deadline, so normally up to 10 ms late, plus however long the operating system takes to
//! wake the clock thread (longer on an overloaded machine).
//!
//! # Cancellation
//!
//! Dropping a [`Timeout`] drops the inner future and cancels its timer; dropping a
//! [`TimerStub`](timer::TimerStub) returned by [`sleep`] cancels that timer. Cancellation takes
//! no lock and never disturbs other timeouts that share the same timer entry. A cancelled timer
//! may still wake its task once, shortly after, which is harmless (futures must tolerate
//! spurious wake-ups); it never holds on to its task beyond its deadline.
//! [`Timeout::into_inner`] takes the inner future back without dropping it.
//!
//! # `fork()`
//!
//! The clock thread and the timer wheel's locks do not survive `fork()`. Call
//! [`fast_timeout::pause_for_fork`] right before forking and [`fast_timeout::unpause`] right
//! after, in both processes. Between the two, new fast timers expire immediately.
//!
//! # Example
//!
//! ```
//! use pingora_timeout::{sleep, timeout, Elapsed};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let answer = timeout(Duration::from_secs(1), async { 42 }).await;
//! assert_eq!(answer, Ok(42));
//!
//! let too_slow = timeout(Duration::from_millis(10), sleep(Duration::from_secs(10))).await;
//! assert_eq!(too_slow, Err(Elapsed));
//! # }
//! ```
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod error;
pub mod fast_timeout;
mod future;
pub mod timer;

#[cfg(test)]
mod tests;

pub use error::Elapsed;
pub use fast_timeout::fast_sleep as sleep;
pub use fast_timeout::fast_timeout as timeout;
pub use future::Timeout;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How a [`Timeout`] starts its timer: implemented by [`FastTimeout`](fast_timeout::FastTimeout)
/// and [`TokioTimeout`].
///
/// This trait is sealed: it cannot be implemented outside this crate. [`Timeout`] does not go
/// through [`timeout`](Self::timeout) (and its allocation); it polls the timer in place.
pub trait ToTimeout: sealed::Sealed {
    /// Starts the timer, returning a future that completes when it expires.
    fn timeout(&self) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>>;

    /// A timer of `duration`, not yet started.
    fn create(duration: Duration) -> Self;
}

pub(crate) mod sealed {
    use std::future::Future;

    /// The part of [`ToTimeout`](super::ToTimeout) that [`Timeout`](super::Timeout) uses: the
    /// concrete timer future, so it needs no allocation.
    pub trait Sealed {
        /// The timer future.
        type Delay: Future<Output = ()>;

        /// Starts the timer.
        fn delay(&self) -> Self::Delay;
    }
}

/// The timer of a [`tokio_timeout`]: Tokio's [`sleep`](tokio::time::sleep), started the first
/// time the inner future is pending.
///
/// Users don't need to interact with this type beyond naming it in `Timeout<T, TokioTimeout>`.
pub struct TokioTimeout(Duration);

// === impl TokioTimeout ===

impl ToTimeout for TokioTimeout {
    fn timeout(&self) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        Box::pin(sealed::Sealed::delay(self))
    }

    fn create(duration: Duration) -> Self {
        TokioTimeout(duration)
    }
}

impl sealed::Sealed for TokioTimeout {
    type Delay = tokio::time::Sleep;

    fn delay(&self) -> tokio::time::Sleep {
        tokio::time::sleep(self.0)
    }
}

impl fmt::Debug for TokioTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TokioTimeout").field(&self.0).finish()
    }
}

/// [`tokio::time::timeout`] with a lazily started timer.
///
/// Tokio's timer is created only the first time `future` is pending, so the deadline counts from
/// then, and a future that is ready at once costs nothing. Prefer [`timeout`] when timeouts are
/// frequent and 10 ms granularity is fine.
///
/// # Panics
///
/// Polling panics, as Tokio's timers do, if the timer has to be started outside a Tokio runtime
/// with the time driver enabled.
///
/// # Cancellation
///
/// Dropping the returned [`Timeout`] drops `future` and Tokio's timer; see [`Timeout`].
///
/// ```
/// use pingora_timeout::tokio_timeout;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let slow = std::future::pending::<()>();
/// assert!(tokio_timeout(Duration::from_millis(1), slow).await.is_err());
/// # }
/// ```
pub fn tokio_timeout<T>(duration: Duration, future: T) -> Timeout<T, TokioTimeout>
where
    T: Future,
{
    Timeout::new_with_delay(future, duration)
}
