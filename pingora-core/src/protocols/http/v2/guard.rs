//! Abuse limits of HTTP/2 server connections that the `h2` crate does not enforce itself.
//!
//! The `h2` crate bounds rapid reset (`max_pending_accept_reset_streams`), CONTINUATION floods
//! and oversized header lists (from `max_header_list_size`), and queues at most one PING or
//! SETTINGS acknowledgement (it reads no further frame until the answer is written). It does
//! not bound how many frames that carry no request a client may send as long as it reads the
//! answers (PING, SETTINGS, PRIORITY, empty DATA: CVE-2019-9512, -9515, -9518), nor how long a
//! client may leave the server waiting for flow-control window or for the socket to drain.
//! [`FrameGuard`] watches the bytes of the connection for both; the connection's driver
//! (`apps::h2_conn`) acts on its [`Alarm`]s.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, Semaphore};

use crate::protocols::{Peek, Stream};

/// Limits of an HTTP/2 server connection against abuse, beyond the protocol settings of
/// [`H2Options`](super::server::H2Options). Part of
/// [`HttpServerOptions`](crate::apps::HttpServerOptions).
///
/// The defaults may change between releases.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub struct H2Limits {
    /// Most frames that carry no request a client may send per
    /// [`control_frame_window`](Self::control_frame_window): SETTINGS, PING (not
    /// acknowledgements), PRIORITY, and DATA frames that are empty and do not end their
    /// stream. One more ends the connection with `GOAWAY(ENHANCE_YOUR_CALM)`. Default 10,000
    /// (1,000 a second on average); 0 turns the budget off.
    pub max_control_frames: u32,
    /// The time window of [`max_control_frames`](Self::max_control_frames). Default 10 s.
    pub control_frame_window: Duration,
    /// How long the server waits for the client to make room for the response: a stream's
    /// write waiting for flow-control window (the client keeps a zero window) or for the
    /// connection to drain (the client stops reading the socket). Past it the connection is
    /// ended, with `GOAWAY(ENHANCE_YOUR_CALM)` when the socket still takes it, closed at once
    /// when it does not. Default 60 s; `None` for no bound.
    pub send_stall_timeout: Option<Duration>,
    /// Most bytes of response body the connection's streams may hold queued for the client
    /// when the response is read from an upstream by the proxy: past it a stream reads no more
    /// of its upstream's response until the client has taken some of what is queued, so a
    /// client slower than the upstreams costs this much memory, not the sum of its responses.
    /// The bytes a stream queues are also bounded by its flow-control window and by
    /// [`max_send_buffer_size`](super::server::H2Options::max_send_buffer_size). Default
    /// 512 KiB; `None` for no bound.
    pub max_queued_response_bytes: Option<usize>,
}

impl Default for H2Limits {
    fn default() -> Self {
        H2Limits {
            max_control_frames: 10_000,
            control_frame_window: Duration::from_secs(10),
            send_stall_timeout: Some(Duration::from_secs(60)),
            max_queued_response_bytes: Some(512 << 10),
        }
    }
}

/// What a [`Guard`] found wrong with its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alarm {
    /// Too many frames that carry no request: end the connection with GOAWAY.
    Flood,
    /// A stream waited too long for flow-control window: end the connection with GOAWAY.
    WindowStall,
    /// Writes to the socket made no progress for too long: drop the connection.
    WriteStall,
}

/// The state a [`FrameGuard`] shares with the connection's driver and its streams.
#[derive(Debug)]
pub(crate) struct Guard {
    limits: H2Limits,
    flood: AtomicBool,
    window_stall: AtomicBool,
    /// Milliseconds after `epoch` (plus one) since which writes have been blocked; 0 if they
    /// are not.
    write_blocked_since: AtomicU64,
    epoch: Instant,
    notify: Notify,
    /// The bytes of response body the streams may still queue, as permits (one per byte).
    response_budget: Option<Arc<Semaphore>>,
}

impl Guard {
    /// The connection's budget of queued response bytes, if bounded.
    pub(crate) fn response_budget(&self) -> Option<&Arc<Semaphore>> {
        self.response_budget.as_ref()
    }

    /// The stall timeout, for the streams' writes.
    pub(crate) fn send_stall_timeout(&self) -> Option<Duration> {
        self.limits.send_stall_timeout
    }

    /// A stream waited for window longer than the stall timeout.
    pub(crate) fn window_stalled(&self) {
        self.window_stall.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// Resolves with the next alarm. [`Alarm::Flood`] and [`Alarm::WindowStall`] are given
    /// once each; [`Alarm::WriteStall`] as long as it lasts.
    pub(crate) async fn alarm(&self) -> Alarm {
        loop {
            if self.flood.swap(false, Ordering::Relaxed) {
                return Alarm::Flood;
            }
            if self.window_stall.swap(false, Ordering::Relaxed) {
                return Alarm::WindowStall;
            }
            let Some(timeout) = self.limits.send_stall_timeout else {
                self.notify.notified().await;
                continue;
            };
            let wait = match self.write_blocked_since.load(Ordering::Relaxed) {
                0 => timeout,
                since => {
                    let blocked = self.epoch.elapsed().saturating_sub(millis(since - 1));
                    if blocked >= timeout {
                        return Alarm::WriteStall;
                    }
                    timeout - blocked
                }
            };
            tokio::select! {
                _ = self.notify.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn note_write(&self, blocked: bool) {
        let since = self.write_blocked_since.load(Ordering::Relaxed);
        if blocked && since == 0 {
            let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
            self.write_blocked_since.store(now + 1, Ordering::Relaxed);
        } else if !blocked && since != 0 {
            self.write_blocked_since.store(0, Ordering::Relaxed);
        }
    }
}

fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Where the reader is in the client's byte stream.
#[derive(Debug)]
enum ReadState {
    /// Within the connection preface: this many bytes of it are left.
    Preface(usize),
    /// Within a frame head: the bytes of it read so far.
    Head { head: [u8; 9], filled: usize },
    /// Within a frame payload: this many bytes of it are left.
    Payload(usize),
}

/// The counted frames of the current window.
#[derive(Debug)]
struct Budget {
    window_start: Instant,
    spent: u32,
}

/// A [`Stream`] that watches the HTTP/2 frames read through it and the progress of writes,
/// raising the [`Alarm`]s of its [`Guard`].
#[derive(Debug)]
pub(crate) struct FrameGuard {
    inner: Stream,
    guard: Arc<Guard>,
    state: ReadState,
    budget: Budget,
    tripped: bool,
}

impl FrameGuard {
    /// Wraps `inner` (whose next bytes are the client's connection preface).
    pub(crate) fn wrap(inner: Stream, limits: H2Limits) -> (Stream, Arc<Guard>) {
        let (stream, guard) = Self::new(inner, limits);
        (Box::new(stream), guard)
    }

    fn new(inner: Stream, limits: H2Limits) -> (Self, Arc<Guard>) {
        let response_budget = limits
            .max_queued_response_bytes
            .map(|bytes| Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))));
        let guard = Arc::new(Guard {
            limits,
            response_budget,
            flood: AtomicBool::new(false),
            window_stall: AtomicBool::new(false),
            write_blocked_since: AtomicU64::new(0),
            epoch: Instant::now(),
            notify: Notify::new(),
        });
        let stream = FrameGuard {
            inner,
            guard: guard.clone(),
            state: ReadState::Preface(24),
            budget: Budget {
                window_start: Instant::now(),
                spent: 0,
            },
            tripped: false,
        };
        (stream, guard)
    }

    /// Follows the frames in `bytes`; returns `true` when the budget ran out within them.
    fn scan(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            match &mut self.state {
                ReadState::Preface(left) | ReadState::Payload(left) => {
                    let n = (*left).min(bytes.len());
                    *left -= n;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        self.state = ReadState::Head {
                            head: [0; 9],
                            filled: 0,
                        };
                    }
                }
                ReadState::Head { head, filled } => {
                    let n = (9 - *filled).min(bytes.len());
                    head[*filled..*filled + n].copy_from_slice(&bytes[..n]);
                    *filled += n;
                    bytes = &bytes[n..];
                    if *filled == 9 {
                        let head = *head;
                        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
                        self.state = ReadState::Payload(len);
                        if len == 0 {
                            self.state = ReadState::Head {
                                head: [0; 9],
                                filled: 0,
                            };
                        }
                        if is_control(head[3], head[4], len) && self.spend() {
                            return true;
                        }
                    }
                }
            }
        }
        false
    }

    /// Counts one frame against the budget; `true` once it is overspent.
    fn spend(&mut self) -> bool {
        let limits = &self.guard.limits;
        if limits.max_control_frames == 0 {
            return false;
        }
        self.budget.spent += 1;
        if self.budget.spent > limits.max_control_frames {
            let now = Instant::now();
            if now.duration_since(self.budget.window_start) >= limits.control_frame_window {
                self.budget = Budget {
                    window_start: now,
                    spent: 1,
                };
                return false;
            }
            return true;
        }
        false
    }
}

/// Whether a frame of `kind` with `flags` and a payload of `len` bytes carries no request:
/// SETTINGS, PING (not an ACK), PRIORITY, or DATA that is empty and does not end its stream.
fn is_control(kind: u8, flags: u8, len: usize) -> bool {
    const DATA: u8 = 0;
    const PRIORITY: u8 = 2;
    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    const ACK_OR_END_STREAM: u8 = 0x1;
    match kind {
        DATA => len == 0 && flags & ACK_OR_END_STREAM == 0,
        PRIORITY | SETTINGS => true,
        PING => flags & ACK_OR_END_STREAM == 0,
        _ => false,
    }
}

// === impl FrameGuard: I/O ===

impl AsyncRead for FrameGuard {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.tripped {
            // Nothing more is read from a flooding client; the driver ends the connection.
            return Poll::Pending;
        }
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            if this.scan(&buf.filled()[before..]) {
                this.tripped = true;
                this.guard.flood.store(true, Ordering::Relaxed);
                this.guard.notify.notify_one();
            }
        }
        result
    }
}

impl AsyncWrite for FrameGuard {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.guard.note_write(result.is_pending());
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.guard.note_write(result.is_pending());
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

// === impl FrameGuard: what the connection knows about itself ===

crate::protocols::forward_stream_facts!(FrameGuard, inner);

#[async_trait]
impl Peek for FrameGuard {}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(limits: H2Limits) -> FrameGuard {
        FrameGuard::new(Box::new(tokio::io::duplex(64).0), limits).0
    }

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut out = len.to_be_bytes()[1..].to_vec();
        out.extend_from_slice(&[kind, flags, 0, 0, 0, 1]);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn counts_only_frames_that_carry_no_request_across_split_reads() {
        let limits = H2Limits {
            max_control_frames: 3,
            control_frame_window: Duration::from_secs(60),
            ..H2Limits::default()
        };
        let mut g = guard(limits);
        let mut bytes = vec![b'P'; 24];
        bytes.extend(frame(1, 0x4, &[0x82; 100])); // HEADERS: not counted
        bytes.extend(frame(0, 0x1, &[])); // empty DATA ending its stream: not counted
        bytes.extend(frame(0, 0, b"data")); // DATA with payload: not counted
        bytes.extend(frame(6, 0x1, &[0; 8])); // PING ACK: not counted
        bytes.extend(frame(6, 0, &[0; 8])); // PING: 1
        bytes.extend(frame(4, 0, &[])); // SETTINGS: 2
        bytes.extend(frame(0, 0, &[])); // empty DATA: 3
                                        // Byte by byte, so heads and payloads are split across reads.
        for b in &bytes {
            assert!(!g.scan(&[*b]));
        }
        assert!(
            g.scan(&frame(2, 0, &[0; 5])),
            "PRIORITY: 4, over the budget"
        );
    }

    #[test]
    fn the_budget_renews_with_each_window_and_zero_turns_it_off() {
        let limits = H2Limits {
            max_control_frames: 2,
            control_frame_window: Duration::ZERO,
            ..H2Limits::default()
        };
        let mut g = guard(limits);
        let mut bytes = vec![b'P'; 24];
        for _ in 0..10 {
            bytes.extend(frame(6, 0, &[0; 8]));
        }
        assert!(!g.scan(&bytes), "a zero window renews at once");

        let off = H2Limits {
            max_control_frames: 0,
            ..H2Limits::default()
        };
        let mut g = guard(off);
        assert!(!g.scan(&bytes));
    }
}
