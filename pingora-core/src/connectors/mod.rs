//! Connecting to servers, and reusing the connections.
//!
//! [`TransportConnector`] makes L4 connections (TCP, Unix-domain sockets, CONNECT tunnels,
//! custom transports) to a [`Peer`] and keeps idle ones for reuse, keyed by
//! [`Peer::reuse_hash`].
//!
//! # Reuse
//!
//! [`release_stream`](TransportConnector::release_stream) checks that a connection is idle and
//! clean (no end of stream, no unread data, no error) and puts it in the pool, where a task
//! watches it: if the server closes it, sends anything, or it stays idle past its idle
//! timeout, it is closed and leaves the pool. The pool keeps at most
//! [`ConnectorOptions::keepalive_pool_size`] idle connections, evicting the least recently
//! released.
//!
//! [`reused_stream`](TransportConnector::reused_stream) takes an idle connection of the peer's
//! group and checks it again before handing it out: it must still lead to the peer (the remote
//! address recorded at connect time, or else [`Peer::matches_fd`], must be the peer's) and its
//! socket must be neither closed nor readable. The check reads the socket's
//! state from the kernel, so a close or stray data that reached the socket before the call
//! is always caught. Connections that fail are closed, and the next one is tried.
//!
//! Data found on an idle connection (at release, at reuse, or while watched) is a sign of a
//! misbehaving server or of a response that was not read to its end; such connections are
//! counted by [`unexpected_data_connection_count`](TransportConnector::unexpected_data_connection_count).
//!
//! # Cancel safety
//!
//! Dropping [`reused_stream`](TransportConnector::reused_stream) (or
//! [`get_stream`](TransportConnector::get_stream)) while it waits for a pooled connection
//! closes that connection; dropping a connect in progress abandons it. Neither leaves anything
//! behind in the pool.

pub mod http;
pub mod l4;
mod offload;
pub mod raw_connect;
mod sys;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr as InetSocketAddr};
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use parking_lot::RwLock;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_pool::{ConnectionMeta, ConnectionPool};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, Mutex, Notify};
use tracing::{debug, warn};

use crate::protocols::{Stream, ALPN};
use crate::server::configuration::ServerConf;
use crate::upstreams::peer::{self, Peer};
use l4::BindTo;
use offload::OffloadRuntime;

pub use l4::Connect as L4Connect;

/// The default [`ConnectorOptions::keepalive_pool_size`].
const DEFAULT_POOL_SIZE: usize = 128;

/// The most peers [`TransportConnector::prefer_h1`] remembers; the memory is cleared when full.
const MAX_PREFERENCES: usize = 64 * 1024;

/// How a [`TransportConnector`] connects and pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorOptions {
    /// The CA file upstream certificates are verified against. Default: none (the TLS
    /// backend's default trust store).
    pub ca_file: Option<String>,
    /// The client certificate and key files (PEM) used for mutual TLS when a peer has none of
    /// its own. Default: none.
    pub cert_key_file: Option<(String, String)>,
    /// Whether TLS secrets are written to the file named by `$SSLKEYLOGFILE`, to decrypt
    /// captured traffic while debugging. Default `false`.
    pub debug_ssl_keylog: bool,
    /// The most idle connections kept for reuse. Default 128.
    pub keepalive_pool_size: usize,
    /// Establish connections on `(pools, threads per pool)` dedicated runtimes, so that costly
    /// handshakes do not slow the threads serving traffic. A peer always uses the same pool.
    /// Default: none (on the caller's runtime).
    pub offload_threadpool: Option<(usize, usize)>,
    /// Source addresses for IPv4 connections, one picked at random per connection, unless
    /// the peer names its own. Default: none.
    pub bind_to_v4: Vec<InetSocketAddr>,
    /// Source addresses for IPv6 connections, as `bind_to_v4`. Default: none.
    pub bind_to_v6: Vec<InetSocketAddr>,
}

// === impl ConnectorOptions ===

impl ConnectorOptions {
    /// The options a server configuration asks for: `ca_file`, `upstream_debug_ssl_keylog`,
    /// `upstream_keepalive_pool_size`, the offload thread pools (when both numbers are set and
    /// not zero) and the `client_bind_to_ipv4`/`ipv6` addresses. Bind addresses that are not IP
    /// addresses of the right family are logged and skipped.
    pub fn from_server_conf(server_conf: &ServerConf) -> Self {
        let offload_threadpool = server_conf
            .upstream_connect_offload_threadpools
            .zip(server_conf.upstream_connect_offload_thread_per_pool)
            .filter(|&(pools, threads)| pools > 0 && threads > 0);
        ConnectorOptions {
            ca_file: server_conf.ca_file.clone(),
            cert_key_file: None,
            debug_ssl_keylog: server_conf.upstream_debug_ssl_keylog,
            keepalive_pool_size: server_conf.upstream_keepalive_pool_size,
            offload_threadpool,
            bind_to_v4: parse_bind_addrs(&server_conf.client_bind_to_ipv4, true),
            bind_to_v6: parse_bind_addrs(&server_conf.client_bind_to_ipv6, false),
        }
    }

    /// The default options, with a pool of `keepalive_pool_size` idle connections.
    pub fn new(keepalive_pool_size: usize) -> Self {
        ConnectorOptions {
            ca_file: None,
            cert_key_file: None,
            debug_ssl_keylog: false,
            keepalive_pool_size,
            offload_threadpool: None,
            bind_to_v4: vec![],
            bind_to_v6: vec![],
        }
    }
}

/// Parses configured source addresses: IPs (port 0, chosen when connecting) or `ip:port`s.
fn parse_bind_addrs(addrs: &[String], v4: bool) -> Vec<InetSocketAddr> {
    addrs
        .iter()
        .filter_map(|text| {
            let parsed = text
                .parse::<IpAddr>()
                .map(|ip| InetSocketAddr::new(ip, 0))
                .or_else(|_| text.parse::<InetSocketAddr>());
            match parsed {
                Ok(addr) if addr.is_ipv4() == v4 => Some(addr),
                Ok(_) => {
                    warn!("ignoring bind address {text}: wrong IP family");
                    None
                }
                Err(_) => {
                    warn!("ignoring bind address {text}: not an IP address");
                    None
                }
            }
        })
        .collect()
}

/// What an idle connection's watcher holds in the pool: the receiving end of the hand-over.
type Handoff = oneshot::Receiver<Stream>;

/// Connects to servers over TCP, Unix-domain sockets or CONNECT tunnels, and pools idle
/// connections for reuse. See the [module docs](self).
pub struct TransportConnector {
    pool: Arc<ConnectionPool<Handoff>>,
    offload: Option<OffloadRuntime>,
    bind_to_v4: Vec<InetSocketAddr>,
    bind_to_v6: Vec<InetSocketAddr>,
    preferred_http_version: PreferredHttpVersion,
    unexpected_data: Arc<AtomicUsize>,
}

// === impl TransportConnector ===

impl TransportConnector {
    /// A connector with `options`, or the defaults (a pool of 128).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        let options = options.unwrap_or_else(|| ConnectorOptions::new(DEFAULT_POOL_SIZE));
        TransportConnector {
            pool: Arc::new(ConnectionPool::new(options.keepalive_pool_size)),
            offload: options
                .offload_threadpool
                .map(|(pools, threads)| OffloadRuntime::new(pools, threads)),
            bind_to_v4: options.bind_to_v4,
            bind_to_v6: options.bind_to_v6,
            preferred_http_version: PreferredHttpVersion::default(),
            unexpected_data: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Makes a new connection to `peer`; never reuses one.
    ///
    /// # Errors
    ///
    /// [`ErrorType::ConnectRefused`], [`ErrorType::ConnectTimedout`] (the peer's
    /// `connection_timeout` or `total_connection_timeout`), [`ErrorType::ConnectNoRoute`],
    /// [`ErrorType::BindError`], [`ErrorType::ConnectError`] and, through a proxy, the errors
    /// of [`raw_connect::connect`]. A TLS peer is an [`ErrorType::InternalError`] until a TLS
    /// backend is built in.
    pub async fn new_stream<P: Peer + Send + Sync + 'static>(&self, peer: &P) -> Result<Stream> {
        let bind_to = l4::bind_to_random(peer, &self.bind_to_v4, &self.bind_to_v6);
        let alpn_override = self.preferred_http_version.get(peer);
        match self
            .offload
            .as_ref()
            .and_then(|o| o.handle(peer.reuse_hash()))
        {
            Some(runtime) => {
                let peer = peer.clone();
                runtime
                    .spawn(async move { do_connect(&peer, bind_to, alpn_override).await })
                    .await
                    .or_err(ErrorType::InternalError, "connect offload task failed")?
            }
            None => do_connect(peer, bind_to, alpn_override).await,
        }
    }

    /// Takes an idle connection to `peer` from the pool, if one is still usable. Connections
    /// found closed, readable or no longer leading to the peer are closed on the way.
    pub async fn reused_stream<P: Peer + Send + Sync>(&self, peer: &P) -> Option<Stream> {
        let key = peer.reuse_hash();
        while let Some(handoff) = self.pool.get(&key) {
            // The watcher hands the stream over once it has let go of it, or drops it if it
            // found it closed or dirty in the meantime.
            let Ok(mut stream) = handoff.await else {
                continue;
            };
            if !leads_to_peer(&stream, peer) {
                debug!("pooled connection does not lead to {peer}, closing it");
                continue;
            }
            if self.check_idle(&mut stream) {
                return Some(stream);
            }
        }
        None
    }

    /// Returns a connection to the pool for reuse by peers whose
    /// [`reuse_hash`](Peer::reuse_hash) is `key`, keeping it at most `idle_timeout` (`None`:
    /// until the server closes it or the pool evicts it; zero: not at all).
    ///
    /// The caller must only release connections whose protocol allows reuse and that are at
    /// a message boundary. A connection found closed or with unread data is closed instead,
    /// as is any connection released outside a Tokio runtime. Dropping a connection instead of
    /// releasing it closes it.
    pub fn release_stream(&self, mut stream: Stream, key: u64, idle_timeout: Option<Duration>) {
        if idle_timeout.is_some_and(|t| t.is_zero()) {
            debug!("idle timeout is zero, closing the connection");
            return;
        }
        if !self.check_idle(&mut stream) {
            return;
        }
        let Ok(runtime) = Handle::try_current() else {
            debug!("released outside a runtime, closing the connection");
            return;
        };
        let meta = ConnectionMeta::new(key, stream.id());
        let (handoff, receiver) = oneshot::channel();
        let (evicted, picked_up) = self.pool.put(&meta, receiver);
        let watch = IdleWatch {
            pool: Arc::clone(&self.pool),
            meta,
            idle_timeout,
            handoff,
            unexpected_data: Arc::clone(&self.unexpected_data),
        };
        runtime.spawn(watch.run(stream, evicted, picked_up));
    }

    /// A pooled connection to `peer` if there is a usable one (`true`), else a new one
    /// (`false`).
    ///
    /// # Errors
    ///
    /// As [`new_stream`](Self::new_stream).
    pub async fn get_stream<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(Stream, bool)> {
        if let Some(stream) = self.reused_stream(peer).await {
            return Ok((stream, true));
        }
        Ok((self.new_stream(peer).await?, false))
    }

    /// Remembers to offer only HTTP/1.1 with ALPN to `peer` from now on, such as after it
    /// failed to speak HTTP/2 properly.
    pub fn prefer_h1(&self, peer: &impl Peer) {
        self.preferred_http_version.add(peer, 1);
    }

    /// The ALPN to offer `peer` instead of its own, if [`prefer_h1`](Self::prefer_h1) was
    /// called for it.
    pub fn preferred_alpn(&self, peer: &impl Peer) -> Option<ALPN> {
        self.preferred_http_version.get(peer)
    }

    /// How many connections were closed because data arrived on them while idle.
    pub fn unexpected_data_connection_count(&self) -> usize {
        self.unexpected_data.load(Ordering::Relaxed)
    }

    /// Whether `stream` is fit to idle: see [`probe`]. Counts connections with unexpected data.
    fn check_idle(&self, stream: &mut Stream) -> bool {
        match probe(stream) {
            Idle::Clean => true,
            Idle::Data => {
                warn!("unexpected data on an idle upstream connection, closing it");
                self.unexpected_data.fetch_add(1, Ordering::Relaxed);
                false
            }
            Idle::Closed | Idle::Failed => {
                debug!("idle upstream connection closed or failed");
                false
            }
        }
    }
}

impl fmt::Debug for TransportConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportConnector")
            .field("pool", &self.pool)
            .field("offload", &self.offload)
            .field("bind_to_v4", &self.bind_to_v4)
            .field("bind_to_v6", &self.bind_to_v6)
            .finish_non_exhaustive()
    }
}

/// Whether `stream` still leads to `peer`: checked against the remote address recorded when
/// the connection was made, which spares a system call, or else with [`Peer::matches_fd`].
fn leads_to_peer<P: Peer>(stream: &Stream, peer: &P) -> bool {
    let digest = stream.get_socket_digest();
    match digest.as_deref().and_then(|d| d.peer_addr.get()) {
        Some(Some(remote)) => peer::leads_to(peer, remote),
        _ => peer.matches_fd(stream.id()),
    }
}

/// Connects to `peer` within its `total_connection_timeout`.
async fn do_connect<P: Peer + Send + Sync>(
    peer: &P,
    bind_to: Option<BindTo>,
    alpn_override: Option<ALPN>,
) -> Result<Stream> {
    let connect = async {
        let stream = l4::connect(peer, bind_to).await?;
        if peer.tls() {
            tls_connect(stream, peer, alpn_override)
        } else {
            Ok(stream)
        }
    };
    match peer.total_connection_timeout() {
        Some(limit) => pingora_timeout::timeout(limit, connect)
            .await
            .map_err(|_| {
                Error::explain(
                    ErrorType::ConnectTimedout,
                    format!("connecting to {peer} took longer than {limit:?} in total"),
                )
            })?,
        None => connect.await,
    }
}

/// The TLS handshake over `stream`, which needs a TLS backend.
fn tls_connect<P: Peer>(_stream: Stream, peer: &P, _alpn: Option<ALPN>) -> Result<Stream> {
    Error::e_explain(
        ErrorType::InternalError,
        format!("cannot speak TLS to {peer}: no TLS backend is built in"),
    )
}

/// The state of a connection that should be idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// Open, and nothing to read.
    Clean,
    /// The peer closed it.
    Closed,
    /// Data is waiting to be read.
    Data,
    /// Reading it fails.
    Failed,
}

/// Looks at a connection that should be idle, without waiting.
///
/// First one read is polled, which finds data buffered above the socket (TLS records already
/// decrypted, bytes pushed back in front of the stream) and consumes at most one byte, which
/// only happens to a connection that is discarded anyway. Then, since the stream's readiness is
/// only learned from the reactor some time after the fact, the socket itself is peeked at: a
/// close or data that reached it is seen at once. For TLS connections data on the socket is not
/// conclusive (it may be session housekeeping the TLS layer consumes) and only a close counts.
fn probe(stream: &mut Stream) -> Idle {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let polled = {
        let read = std::future::poll_fn(|cx| Pin::new(&mut **stream).poll_read(cx, &mut buf));
        // Unconstrained: a task out of its coop budget would see a readable stream as pending.
        let mut cx = Context::from_waker(&NOOP_WAKER);
        pin!(tokio::task::unconstrained(read)).poll(&mut cx)
    };
    match polled {
        Poll::Ready(Ok(())) if buf.filled().is_empty() => return Idle::Closed,
        Poll::Ready(Ok(())) => return Idle::Data,
        Poll::Ready(Err(_)) => return Idle::Failed,
        Poll::Pending => {}
    }
    let fd = stream.id();
    if fd < 0 {
        return Idle::Clean;
    }
    match sys::peek_byte(fd) {
        Ok(0) => Idle::Closed,
        Ok(_) if stream.get_ssl_digest().is_some() => Idle::Clean,
        Ok(_) => Idle::Data,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Idle::Clean,
        // Not a socket (a test double, a custom transport): nothing more to learn.
        Err(e) if e.raw_os_error() == Some(libc::ENOTSOCK) => Idle::Clean,
        Err(_) => Idle::Failed,
    }
}

/// A waker that does nothing, to poll once without a task.
static NOOP_WAKER: LazyLock<Waker> = LazyLock::new(|| Waker::from(Arc::new(NoopWake)));

struct NoopWake;

impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
    fn wake_by_ref(self: &Arc<Self>) {}
}

/// The watcher of one idle connection.
///
/// It runs the pool's [`idle_poll`](ConnectionPool::idle_poll) on the connection, which needs
/// the connection behind a lock of its own. When the connection is picked up, `idle_poll`
/// returns and releases the lock; only then does the watcher, now the sole owner, take the
/// connection out and send it through `handoff` to whoever took the receiving end from the
/// pool. Nothing can race for the connection, so the hand-over cannot fail. If the connection
/// was read from in the meantime (closed, failed, or unexpected data), it is dropped instead:
/// the taker sees the hand-over fail and tries the next one.
struct IdleWatch {
    pool: Arc<ConnectionPool<Handoff>>,
    meta: ConnectionMeta,
    idle_timeout: Option<Duration>,
    handoff: oneshot::Sender<Stream>,
    unexpected_data: Arc<AtomicUsize>,
}

// === impl IdleWatch ===

impl IdleWatch {
    async fn run(self, stream: Stream, evicted: Arc<Notify>, picked_up: oneshot::Receiver<bool>) {
        let shared = Arc::new(Mutex::new(Watched { stream, seen: None }));
        let lock = Arc::clone(&shared)
            .try_lock_owned()
            .expect("a new mutex is unlocked");
        self.pool
            .idle_poll(lock, &self.meta, self.idle_timeout, evicted, picked_up)
            .await;
        // `idle_poll` consumed the lock, so `shared` is the last reference.
        let Ok(watched) = Arc::try_unwrap(shared).map(Mutex::into_inner) else {
            debug!("idle connection still shared after its watch, closing it");
            return;
        };
        match watched.seen {
            // Whoever took it from the pool gets it; if nobody did (evicted, timed out), the
            // receiver is gone and the connection is dropped.
            None => drop(self.handoff.send(watched.stream)),
            Some(Idle::Data) => {
                self.unexpected_data.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {}
        }
    }
}

/// An idle connection that remembers whether a read on it completed.
struct Watched {
    stream: Stream,
    seen: Option<Idle>,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if let Poll::Ready(result) = &polled {
            this.seen = Some(match result {
                Ok(()) if buf.filled().len() == before => Idle::Closed,
                Ok(()) => Idle::Data,
                Err(_) => Idle::Failed,
            });
        }
        polled
    }
}

/// The HTTP versions peers were found to need, by reuse hash.
#[derive(Default)]
struct PreferredHttpVersion {
    versions: RwLock<HashMap<u64, u8>>,
}

// === impl PreferredHttpVersion ===

impl PreferredHttpVersion {
    fn add(&self, peer: &impl Peer, version: u8) {
        let key = peer.reuse_hash();
        let mut versions = self.versions.write();
        if versions.len() >= MAX_PREFERENCES && !versions.contains_key(&key) {
            versions.clear();
        }
        versions.insert(key, version);
    }

    fn get(&self, peer: &impl Peer) -> Option<ALPN> {
        let versions = self.versions.read();
        if versions.is_empty() {
            return None;
        }
        let version = *versions.get(&peer.reuse_hash())?;
        Some(if version == 1 { ALPN::H1 } else { ALPN::H2H1 })
    }
}

#[cfg(test)]
mod tests;
