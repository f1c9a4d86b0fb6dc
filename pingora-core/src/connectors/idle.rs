//! How the connection pool looks at an idle upstream connection: [`IdleCheck`] for
//! [`Stream`]. The pool itself is `pingora-pool`'s [`ConnectionPool`](pingora_pool::ConnectionPool).

use std::future::Future;
use std::pin::{pin, Pin};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake, Waker};

use pingora_pool::{IdleCheck, IdleState};
use tokio::io::ReadBuf;

use super::sys;
use crate::protocols::Stream;

impl IdleCheck for Stream {
    fn check_idle(&mut self, thorough: bool) -> IdleState {
        probe(self, thorough)
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
fn probe(stream: &mut Stream, deep: bool) -> IdleState {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let polled = {
        let read = std::future::poll_fn(|cx| Pin::new(&mut **stream).poll_read(cx, &mut buf));
        // Unconstrained: a task out of its coop budget would see a readable stream as pending.
        let mut cx = Context::from_waker(&NOOP_WAKER);
        pin!(tokio::task::unconstrained(read)).poll(&mut cx)
    };
    match polled {
        Poll::Ready(Ok(())) if buf.filled().is_empty() => return IdleState::Closed,
        Poll::Ready(Ok(())) => return IdleState::Data,
        Poll::Ready(Err(_)) => return IdleState::Failed,
        Poll::Pending => {}
    }
    let fd = stream.id();
    if !deep || fd < 0 {
        return IdleState::Clean;
    }
    match sys::peek_byte(fd) {
        Ok(0) => IdleState::Closed,
        Ok(_) if stream.get_ssl_digest().is_some() => IdleState::Clean,
        Ok(_) => IdleState::Data,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => IdleState::Clean,
        // Not a socket (a test double, a custom transport): nothing more to learn.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => IdleState::Clean,
        Err(_) => IdleState::Failed,
    }
}

/// A waker that does nothing, to poll once without a task.
static NOOP_WAKER: LazyLock<Waker> = LazyLock::new(|| Waker::from(Arc::new(NoopWake)));

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
    fn wake_by_ref(self: &Arc<Self>) {}
}
