//! A client HTTP/2 connection as its streams, its driver and the connection pool share it.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use super::Http2Session;
use crate::protocols::digest::Digest;

/// Set in [`ConnState::streams`] once the connection takes no new streams.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// [`ConnState::idle_timeout`] when there is none.
const NO_IDLE_TIMEOUT: u64 = u64::MAX;

/// A handle on a client HTTP/2 connection: what its streams and the connection pool share.
///
/// The connection itself is driven by a task of its own (see
/// [`connectors::http::v2`](crate::connectors::http::v2)); this handle opens streams on it and
/// counts them. Cloning the handle is cheap. Once every handle and stream is gone, `h2` closes
/// the connection.
#[derive(Clone)]
pub struct ConnectionRef(Arc<Inner>);

struct Inner {
    send_req: SendRequest<Bytes>,
    state: Arc<ConnState>,
}

/// What the connection's driver shares with its handles. It holds no [`SendRequest`], so that
/// the driver does not keep the connection open by itself.
pub(crate) struct ConnState {
    /// The open streams, plus [`CLOSED`] once the connection takes no new ones.
    streams: AtomicUsize,
    max_streams: usize,
    id: i32,
    digest: Arc<Digest>,
    tls: bool,
    ping_timedout: AtomicBool,
    /// How long the connection may stay without streams before its driver closes it, in
    /// nanoseconds ([`NO_IDLE_TIMEOUT`]: no limit).
    idle_timeout: AtomicU64,
    /// Told when the stream count, the closed state or the idle timeout changes.
    changed: Notify,
    /// The peer also accepts HTTP/1.
    may_downgrade: bool,
    /// The connection failed in a way that says the server wants HTTP/1.
    wants_h1: AtomicBool,
}

impl std::fmt::Debug for ConnectionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRef")
            .field("id", &self.0.state.id)
            .field("streams", &self.active_streams())
            .field("max_streams", &self.0.state.max_streams)
            .field("closed", &self.is_closed())
            .finish()
    }
}

// === impl ConnectionRef ===

impl ConnectionRef {
    /// A handle on the connection `send_req` opens streams on, allowing at most `max_streams`
    /// of them at once (at least one). `id` identifies the connection (its file descriptor),
    /// `tls` tells the request scheme; `may_downgrade` says the peer also accepts HTTP/1, so a
    /// server asking for HTTP/1.1 can be obliged.
    pub fn new(
        send_req: SendRequest<Bytes>,
        max_streams: usize,
        id: i32,
        digest: Arc<Digest>,
        tls: bool,
        may_downgrade: bool,
    ) -> Self {
        let state = ConnState {
            streams: AtomicUsize::new(0),
            max_streams: max_streams.max(1),
            id,
            digest,
            tls,
            ping_timedout: AtomicBool::new(false),
            idle_timeout: AtomicU64::new(NO_IDLE_TIMEOUT),
            changed: Notify::new(),
            may_downgrade,
            wants_h1: AtomicBool::new(false),
        };
        ConnectionRef(Arc::new(Inner {
            send_req,
            state: Arc::new(state),
        }))
    }

    /// Opens a stream slot: a session for one request, or `None` if the connection is closed
    /// or has as many streams as it allows (the lower of our limit and the server's
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`).
    pub fn spawn_stream(&self) -> Option<Http2Session> {
        let limit = self.stream_limit();
        let state = &self.0.state;
        let acquired = state
            .streams
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n & CLOSED == 0 && n < limit).then_some(n + 1)
            });
        acquired.ok()?;
        // The connection may have received a GOAWAY (or failed) since it was last used; `h2`
        // says so without waiting. Such a connection is retired instead of failing a request.
        let mut send_req = self.0.send_req.clone();
        let mut cx = Context::from_waker(&NOOP_WAKER);
        if let Poll::Ready(Err(e)) = send_req.poll_ready(&mut cx) {
            log::debug!("HTTP/2 connection takes no new streams: {e}");
            state.mark_closed();
            self.release_stream();
            return None;
        }
        Some(Http2Session::new(send_req, self.clone()))
    }

    fn stream_limit(&self) -> usize {
        let server = self.0.send_req.current_max_send_streams();
        self.0.state.max_streams.min(server)
    }

    /// Gives a stream slot back.
    pub(super) fn release_stream(&self) {
        let state = &self.0.state;
        let before = state.streams.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before & !CLOSED > 0, "a stream slot released twice");
        let idle_timer = state.idle_timeout.load(Ordering::Relaxed) != NO_IDLE_TIMEOUT;
        if before & !CLOSED == 1 && (idle_timer || before & CLOSED != 0) {
            // Now without streams: the driver arms its idle timer, or closes a retired
            // connection. Opening a stream needs no wake-up: a timer firing on a busy
            // connection does nothing.
            state.changed.notify_waiters();
        }
    }

    /// How many streams are open.
    pub fn active_streams(&self) -> usize {
        self.0.state.active_streams()
    }

    /// The most streams this connection carries at once, as we limit it.
    pub fn max_streams(&self) -> usize {
        self.0.state.max_streams
    }

    /// Whether another stream could be opened now.
    pub fn more_streams_allowed(&self) -> bool {
        let n = self.0.state.streams.load(Ordering::Acquire);
        n & CLOSED == 0 && n < self.stream_limit()
    }

    /// Whether the connection takes no new streams (it failed, the server sent GOAWAY, it
    /// missed a PING, or it was closed for idleness).
    pub fn is_closed(&self) -> bool {
        self.0.state.is_closed()
    }

    /// Stops the connection from taking new streams; those open go on.
    pub fn mark_closed(&self) {
        self.0.state.mark_closed();
    }

    /// Sets how long the connection may stay without streams (`None`: until the server
    /// closes it).
    pub(crate) fn set_idle_timeout(&self, timeout: Option<Duration>) {
        let state = &self.0.state;
        let nanos = timeout.map_or(NO_IDLE_TIMEOUT, |t| {
            u64::try_from(t.as_nanos()).unwrap_or(NO_IDLE_TIMEOUT - 1)
        });
        if state.idle_timeout.swap(nanos, Ordering::Relaxed) != nanos {
            state.changed.notify_waiters();
        }
    }

    /// Whether the server did not answer a keepalive PING in time.
    pub fn ping_timedout(&self) -> bool {
        self.0.state.ping_timedout.load(Ordering::Acquire)
    }

    /// Whether the peer also accepts HTTP/1.
    pub(super) fn may_downgrade(&self) -> bool {
        self.0.state.may_downgrade
    }

    /// Records that the server wants HTTP/1, and closes.
    pub(super) fn set_wants_h1(&self) {
        self.0.state.wants_h1.store(true, Ordering::Release);
        self.mark_closed();
    }

    /// Whether the connection failed in a way that says the server wants HTTP/1.
    pub fn wants_h1(&self) -> bool {
        self.0.state.wants_h1.load(Ordering::Acquire)
    }

    /// The connection's identifier (its file descriptor).
    pub fn id(&self) -> i32 {
        self.0.state.id
    }

    /// Everything known about the connection.
    pub fn digest(&self) -> &Arc<Digest> {
        &self.0.state.digest
    }

    /// Whether the connection is TLS (requests go out as `https`).
    pub fn is_tls(&self) -> bool {
        self.0.state.tls
    }

    /// Whether `self` and `other` are handles on the same connection.
    pub fn same_connection(&self, other: &ConnectionRef) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The state the connection's driver watches.
    pub(crate) fn state(&self) -> Arc<ConnState> {
        self.0.state.clone()
    }
}

// === impl ConnState ===

impl ConnState {
    /// How many streams are open.
    pub(crate) fn active_streams(&self) -> usize {
        self.streams.load(Ordering::Acquire) & !CLOSED
    }

    /// Whether the connection takes no new streams.
    pub(crate) fn is_closed(&self) -> bool {
        self.streams.load(Ordering::Acquire) & CLOSED != 0
    }

    /// Stops the connection from taking new streams.
    pub(crate) fn mark_closed(&self) {
        self.streams.fetch_or(CLOSED, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// Closes the connection if it has no stream. Returns whether it is closed.
    pub(crate) fn close_if_idle(&self) -> bool {
        let _ = self
            .streams
            .compare_exchange(0, CLOSED, Ordering::AcqRel, Ordering::Acquire);
        self.is_closed()
    }

    /// How long the connection may stay without streams.
    pub(crate) fn idle_timeout(&self) -> Option<Duration> {
        match self.idle_timeout.load(Ordering::Relaxed) {
            NO_IDLE_TIMEOUT => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    /// Records that the server did not answer a keepalive PING in time, and closes.
    pub(crate) fn set_ping_timedout(&self) {
        self.ping_timedout.store(true, Ordering::Release);
        self.mark_closed();
    }

    /// A future resolving at the next change; enable it before looking at the state so that
    /// no change is missed.
    pub(crate) fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }
}

/// A waker that does nothing, to poll once without a task.
static NOOP_WAKER: LazyLock<Waker> = LazyLock::new(|| Waker::from(Arc::new(NoopWake)));

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
    fn wake_by_ref(self: &Arc<Self>) {}
}
