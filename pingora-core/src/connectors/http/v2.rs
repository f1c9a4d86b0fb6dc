//! HTTP/2 upstream connections: the handshake, the task driving each connection (with PING
//! keepalive and idle close), and the pool of connections shared by concurrent requests.
//!
//! # Pooling
//! An HTTP/2 connection carries up to `max_streams` requests at once (the lower of the peer's
//! [`max_h2_streams`](crate::upstreams::peer::PeerOptions::max_h2_streams) and the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS`). The pool (`pingora-pool`'s [`MultiplexPool`]) keeps
//! every open connection by reuse hash,
//! busy or idle: a request takes a stream on a connection that has room, a busy one first (so
//! idle ones can time out), and each stream gives its slot back when its session is dropped.
//! Connections that failed, received GOAWAY, missed a PING or timed out idle take no new
//! streams and leave the pool.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::Connection;
use h2::{Ping, PingPong};
use log::debug;
use pingora_error::{ErrorType, OrErr, Result};
use pingora_pool::{MultiplexPool, Multiplexed};

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

// === impl ConnectionRef: pooling ===

/// HTTP/2 connections are pooled in a [`MultiplexPool`]: a connection that takes no new
/// streams leaves it, unless it is the one that learned its peer wants HTTP/1.
impl Multiplexed for ConnectionRef {
    fn in_use(&self) -> usize {
        self.active_streams()
    }

    fn is_closed(&self) -> bool {
        ConnectionRef::is_closed(self)
    }

    fn close(&self) {
        self.mark_closed();
    }

    fn keep_closed(&self) -> bool {
        self.wants_h1()
    }
}

/// What looking in the pool found.
pub(crate) struct Found {
    /// A stream on a pooled connection.
    pub(crate) session: Option<Http2Session>,
    /// A retired connection of this peer said the server wants HTTP/1.
    pub(crate) wants_h1: bool,
}

/// A stream on a pooled connection of `key` with room, busy connections first.
pub(crate) fn find_stream(pool: &MultiplexPool<ConnectionRef>, key: u64) -> Found {
    let mut wants_h1 = false;
    let session = pool.find(
        key,
        |conn| wants_h1 |= conn.wants_h1(),
        ConnectionRef::spawn_stream,
    );
    Found { session, wants_h1 }
}

/// Ends `session`, whose stream slot goes back to its connection; the connection is closed
/// after `idle_timeout` without streams, or now if it would be one idle connection too many
/// for `key`.
pub(crate) fn release_stream(
    pool: &MultiplexPool<ConnectionRef>,
    key: u64,
    session: Http2Session,
    idle_timeout: Option<Duration>,
) {
    let conn = session.conn().clone();
    // An unfinished stream is reset; the connection itself stays usable.
    drop(session);
    if idle_timeout.is_some_and(|t| t.is_zero()) {
        conn.mark_closed();
        return;
    }
    conn.set_idle_timeout(idle_timeout);
    pool.release(key, &conn);
}
