//! HTTP/2 upstream connections: the handshake, the task driving each connection (with PING
//! keepalive and idle close), and the pool of connections shared by concurrent requests.
//!
//! # Pooling
//! An HTTP/2 connection carries up to `max_streams` requests at once (the lower of the peer's
//! [`max_h2_streams`](crate::upstreams::peer::PeerOptions::max_h2_streams) and the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`). The pool keeps every open connection by reuse hash,
//! busy or idle: a request takes a stream on a connection that has room, a busy one first (so
//! idle ones can time out), and each stream gives its slot back when its session is dropped.
//! Connections that failed, received GOAWAY, missed a PING or timed out idle take no new
//! streams and leave the pool.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::Connection;
use h2::{Ping, PingPong};
use parking_lot::Mutex;
use pingora_error::{ErrorType, OrErr, Result};
use tokio::sync::Notify;
use tracing::debug;

use crate::protocols::http::v2::client::Http2Session;
use crate::protocols::http::v2::connection_digest;
use crate::protocols::Stream;

pub use crate::protocols::http::v2::client::ConnectionRef;

/// How long a PING may go unanswered before the connection is declared dead.
const PONG_TIMEOUT: Duration = Duration::from_secs(5);

/// The default flow-control window of each stream: wide enough not to throttle a download
/// over a link with latency (1 MiB per round trip), small enough that a slow client costs
/// little buffered response. (Pingora uses 8 MiB.)
const DEFAULT_STREAM_WINDOW: u32 = 1 << 20;

/// The default flow-control window of the connection, shared by its streams.
const DEFAULT_CONNECTION_WINDOW: u32 = 8 << 20;

/// The largest frame payload we accept.
const MAX_FRAME_SIZE: u32 = 64 << 10;

/// The largest response head (or trailers) we accept, as for HTTP/1.
const MAX_HEADER_LIST_SIZE: u32 = 64 << 10;

/// How an HTTP/2 connection is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H2HandshakeSettings {
    /// The most concurrent streams we open (the server may allow fewer).
    pub max_streams: usize,
    /// Send a PING this often and close the connection if no answer comes within 5 s.
    pub ping_interval: Option<Duration>,
    /// The flow-control window of each stream (default 1 MiB; 1 to 2^31 - 1).
    pub stream_window_size: Option<u32>,
    /// The flow-control window of the connection (default 8 MiB; 1 to 2^31 - 1).
    pub connection_window_size: Option<u32>,
    /// The peer also accepts HTTP/1: a stream the server resets with `HTTP_1_1_REQUIRED` then
    /// makes the request retryable and marks the peer as wanting HTTP/1 (see
    /// [`ConnectionRef::wants_h1`]).
    pub downgradable: bool,
}

impl Default for H2HandshakeSettings {
    fn default() -> Self {
        H2HandshakeSettings {
            max_streams: 1,
            ping_interval: None,
            stream_window_size: None,
            connection_window_size: None,
            downgradable: false,
        }
    }
}

/// Clamps a window size to what HTTP/2 allows.
fn window(size: Option<u32>, default: u32) -> u32 {
    size.unwrap_or(default).clamp(1, (1 << 31) - 1)
}

/// Performs the client side of the HTTP/2 handshake over `stream` and starts the task that
/// drives the connection.
///
/// Server push is refused; windows and the stream limit come from `settings`.
///
/// # Errors
/// [`ErrorType::HandshakeError`] when the preface cannot be written.
pub async fn handshake(stream: Stream, settings: H2HandshakeSettings) -> Result<ConnectionRef> {
    let id = stream.id();
    let tls = stream.get_ssl_digest().is_some();
    let digest = Arc::new(connection_digest(&stream));
    let mut builder = h2::client::Builder::new();
    builder
        .enable_push(false)
        .initial_window_size(window(settings.stream_window_size, DEFAULT_STREAM_WINDOW))
        .initial_connection_window_size(window(
            settings.connection_window_size,
            DEFAULT_CONNECTION_WINDOW,
        ))
        .max_frame_size(MAX_FRAME_SIZE)
        .max_header_list_size(MAX_HEADER_LIST_SIZE);
    let (send_req, mut conn) = builder
        .handshake::<_, Bytes>(stream)
        .await
        .or_err(ErrorType::HandshakeError, "HTTP/2 handshake failed")?;
    let conn_ref = ConnectionRef::new(
        send_req,
        settings.max_streams,
        id,
        digest,
        tls,
        settings.downgradable,
    );
    let ping = settings
        .ping_interval
        .and_then(|interval| Some((conn.ping_pong()?, interval)));
    tokio::spawn(drive(conn, conn_ref.state(), ping));
    Ok(conn_ref)
}

/// Drives `conn` until it ends, it misses a PING, or it is closed while without streams (for
/// idleness, or because it takes no new streams).
async fn drive(
    conn: Connection<Stream, Bytes>,
    state: Arc<crate::protocols::http::v2::client::ConnState>,
    ping: Option<(PingPong, Duration)>,
) {
    let mut conn = pin!(conn);
    let keepalive = async {
        match ping {
            Some((pinger, interval)) => keepalive(pinger, interval).await,
            None => std::future::pending().await,
        }
    };
    let mut keepalive = pin!(keepalive);
    loop {
        let changed = state.changed();
        let mut changed = pin!(changed);
        changed.as_mut().enable();
        let idle = state.active_streams() == 0;
        if idle && state.is_closed() {
            debug!("HTTP/2 connection retired and without streams; closing it");
            return;
        }
        let idle_timeout = if idle { state.idle_timeout() } else { None };
        let idle_wait = async {
            match idle_timeout {
                Some(t) => pingora_timeout::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ended = &mut conn => {
                if let Err(e) = ended {
                    debug!("HTTP/2 upstream connection failed: {e}");
                }
                state.mark_closed();
                return;
            }
            () = &mut keepalive => {
                debug!("HTTP/2 upstream missed a PING; closing the connection");
                state.set_ping_timedout();
                return;
            }
            () = changed => {}
            () = idle_wait => {
                if state.close_if_idle() {
                    debug!("HTTP/2 upstream connection idle too long; closing it");
                    return;
                }
            }
        }
    }
}

/// Sends a PING every `interval`; returns when one is not answered within [`PONG_TIMEOUT`].
async fn keepalive(mut pinger: PingPong, interval: Duration) {
    loop {
        pingora_timeout::sleep(interval).await;
        match pingora_timeout::timeout(PONG_TIMEOUT, pinger.ping(Ping::opaque())).await {
            Ok(Ok(_pong)) => {}
            // The connection ended: the driver notices that by itself.
            Ok(Err(_)) => return std::future::pending().await,
            Err(_) => return,
        }
    }
}

/// Hashes a key that is already a hash (a reuse hash) by passing it through.
#[derive(Default)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The open HTTP/2 connections by reuse hash, busy and idle.
#[derive(Default)]
pub(crate) struct H2Pool {
    conns: Mutex<HashMap<u64, Vec<ConnectionRef>, BuildHasherDefault<KeyHasher>>>,
    /// The most idle connections kept per reuse hash.
    max_idle: usize,
}

impl std::fmt::Debug for H2Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let conns = self.conns.lock();
        f.debug_struct("H2Pool")
            .field("peers", &conns.len())
            .field("connections", &conns.values().map(Vec::len).sum::<usize>())
            .finish()
    }
}

/// What looking in the pool found.
pub(crate) struct Found {
    /// A stream on a pooled connection.
    pub(crate) session: Option<Http2Session>,
    /// A retired connection of this peer said the server wants HTTP/1.
    pub(crate) wants_h1: bool,
}

impl H2Pool {
    pub(crate) fn new(max_idle: usize) -> Self {
        H2Pool {
            conns: Mutex::default(),
            max_idle,
        }
    }

    /// A stream on a pooled connection of `key` with room, busy connections first. Retired
    /// connections are dropped on the way.
    pub(crate) fn get(&self, key: u64) -> Found {
        let mut wants_h1 = false;
        let mut conns = self.conns.lock();
        let Some(list) = conns.get_mut(&key) else {
            return Found {
                session: None,
                wants_h1,
            };
        };
        list.retain(|c| {
            wants_h1 |= c.wants_h1();
            !c.is_closed()
        });
        let busy_first = list
            .iter()
            .filter(|c| c.active_streams() > 0)
            .chain(list.iter().filter(|c| c.active_streams() == 0));
        let mut session = None;
        for conn in busy_first {
            if let Some(s) = conn.spawn_stream() {
                session = Some(s);
                break;
            }
        }
        if list.is_empty() {
            conns.remove(&key);
        }
        Found { session, wants_h1 }
    }

    /// Adds a new connection of `key`.
    ///
    /// Retired connections of every peer are dropped on the way (a retired connection still
    /// holds the `h2` stream state): new connections are rare next to requests, so this bounds
    /// what retired connections of peers no longer used keep at little cost. Those that tell a
    /// peer wants HTTP/1 stay until that peer's next request reads them.
    pub(crate) fn add(&self, key: u64, conn: ConnectionRef) {
        let mut conns = self.conns.lock();
        conns.retain(|_, list| {
            list.retain(|c| !c.is_closed() || c.wants_h1());
            !list.is_empty()
        });
        conns.entry(key).or_default().push(conn);
    }

    /// Ends `session`, whose stream slot goes back to its connection; the connection is
    /// closed after `idle_timeout` without streams, or now if it would be one idle connection
    /// too many for `key`.
    pub(crate) fn release(&self, key: u64, session: Http2Session, idle_timeout: Option<Duration>) {
        let conn = session.conn().clone();
        // An unfinished stream is reset; the connection itself stays usable.
        drop(session);
        if idle_timeout.is_some_and(|t| t.is_zero()) {
            conn.mark_closed();
            return;
        }
        conn.set_idle_timeout(idle_timeout);
        if conn.active_streams() > 0 {
            return;
        }
        let conns = self.conns.lock();
        let idle = conns.get(&key).map_or(0, |list| {
            list.iter()
                .filter(|c| !c.is_closed() && c.active_streams() == 0)
                .count()
        });
        drop(conns);
        if idle > self.max_idle {
            debug!("too many idle HTTP/2 connections to one peer; closing one");
            conn.mark_closed();
        }
    }

    /// How many open connections of `key` the pool holds.
    pub(crate) fn connections(&self, key: u64) -> usize {
        self.conns
            .lock()
            .get(&key)
            .map_or(0, |list| list.iter().filter(|c| !c.is_closed()).count())
    }
}

/// The peers a connection is being made to, so that requests arriving together at a cold pool
/// wait for one connection instead of each opening its own.
#[derive(Default)]
pub(crate) struct Connecting {
    peers: Mutex<HashMap<u64, Arc<Notify>, BuildHasherDefault<KeyHasher>>>,
}

impl std::fmt::Debug for Connecting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connecting")
            .field("peers", &self.peers.lock().len())
            .finish()
    }
}

/// What joining the connection attempts to a peer gave.
pub(crate) enum Joined<'a> {
    /// No one was connecting: the caller connects, and the others wait until the guard drops.
    First(ConnectingGuard<'a>),
    /// Another caller was connecting and finished (or gave up).
    Waited,
}

/// Marks a connection attempt in progress; dropping it wakes those waiting.
pub(crate) struct ConnectingGuard<'a> {
    connecting: &'a Connecting,
    key: u64,
    notify: Arc<Notify>,
}

impl Connecting {
    /// Waits for a connection attempt to `key` in progress, or becomes the one making it.
    ///
    /// Cancel-safe: a dropped first caller's guard wakes the waiters.
    pub(crate) async fn join(&self, key: u64) -> Joined<'_> {
        let notify = {
            let mut peers = self.peers.lock();
            match peers.get(&key) {
                Some(notify) => notify.clone(),
                None => {
                    let notify = Arc::new(Notify::new());
                    peers.insert(key, notify.clone());
                    return Joined::First(ConnectingGuard {
                        connecting: self,
                        key,
                        notify,
                    });
                }
            }
        };
        let notified = notify.notified();
        let mut notified = pin!(notified);
        notified.as_mut().enable();
        // The attempt may have ended between the lookup and `enable`.
        if self
            .peers
            .lock()
            .get(&key)
            .is_some_and(|current| Arc::ptr_eq(current, &notify))
        {
            notified.await;
        }
        Joined::Waited
    }
}

impl Drop for ConnectingGuard<'_> {
    fn drop(&mut self) {
        self.connecting.peers.lock().remove(&self.key);
        self.notify.notify_waiters();
    }
}
