//! The [`Timeout`] future.

use crate::error::Elapsed;
use crate::ToTimeout;
use pin_project_lite::pin_project;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

pin_project! {
    /// A future that runs `T` with a deadline, returned by [`timeout`](crate::timeout),
    /// [`fast_timeout`](crate::fast_timeout::fast_timeout) and
    /// [`tokio_timeout`](crate::tokio_timeout).
    ///
    /// It resolves to `Ok(output)` if `T` completes first and to `Err(`[`Elapsed`]`)` if the
    /// deadline passes first. `F` selects the timer: [`FastTimeout`](crate::fast_timeout::FastTimeout)
    /// or [`TokioTimeout`](crate::TokioTimeout).
    ///
    /// The inner future is always polled before the timer, so a future that is ready when
    /// polled completes even if its deadline has passed. The timer is only started the first
    /// time the inner future returns `Pending`: a future that is ready on its first poll never
    /// touches a timer at all.
    ///
    /// # Cancellation
    ///
    /// Dropping a `Timeout` drops the inner future and cancels the timer. Nothing else is
    /// affected: other timeouts sharing the same timer entry keep waiting, and an entry left
    /// without waiters is cleaned up by the timer wheel. Use
    /// [`into_inner`](Self::into_inner) to take the inner future back instead of dropping it.
    #[must_use = "futures do nothing unless you `.await` or poll them"]
    pub struct Timeout<T, F: ToTimeout> {
        #[pin]
        value: T,
        #[pin]
        delay: Option<F::Delay>,
        timer: F,
    }
}

// === impl Timeout ===

impl<T, F: ToTimeout> Timeout<T, F> {
    /// A timeout of `duration` around `value`; the clock starts at the first `Pending`.
    pub(crate) fn new_with_delay(value: T, duration: Duration) -> Self {
        Timeout {
            value,
            delay: None,
            timer: F::create(duration),
        }
    }

    /// A reference to the inner future.
    pub fn get_ref(&self) -> &T {
        &self.value
    }

    /// A mutable reference to the inner future.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.value
    }

    /// Takes the inner future out, cancelling the timeout.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T: Future, F: ToTimeout> Future for Timeout<T, F> {
    type Output = Result<T::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut me = self.project();
        if let Poll::Ready(output) = me.value.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        if me.delay.is_none() {
            me.delay.set(Some(me.timer.delay()));
        }
        let delay = me
            .delay
            .as_pin_mut()
            .expect("the timer was started just above");
        delay.poll(cx).map(|()| Err(Elapsed))
    }
}

impl<T, F: ToTimeout> fmt::Debug for Timeout<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timeout")
            .field("started", &self.delay.is_some())
            .finish_non_exhaustive()
    }
}
