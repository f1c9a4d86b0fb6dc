//! Connecting to servers, and reusing the connections.
//!
//! [`TransportConnector`] makes L4 connections (TCP, Unix-domain sockets, CONNECT tunnels,
//! custom transports) to a [`Peer`] and keeps idle ones for reuse, keyed by
//! [`Peer::reuse_hash`].
//!
//! # Reuse
//!
//! The pool is `pingora-pool`'s [`ConnectionPool`], in the mode where it looks after idle
//! connections by itself ([`ConnectionPool::release`]): releasing and taking a connection cost
//! no allocation, channel or task per connection.
//! [`release_stream`](TransportConnector::release_stream) checks that a connection is idle and
//! clean (no end of stream, no unread data, no error) and puts it in the pool. One sweeper
//! task per connector looks after the idle connections, closing those that the server closed
//! or wrote to, and those idle past their idle timeout (at their deadline; closes and data are
//! noticed within [`SWEEP_INTERVAL`](pingora_pool::SWEEP_INTERVAL)). The pool keeps at most
//! [`ConnectorOptions::keepalive_pool_size`] idle connections, evicting the least recently
//! released.
//!
//! [`reused_stream`](TransportConnector::reused_stream) takes an idle connection of the peer's
//! group and checks it again before handing it out: it must still lead to the peer (the
//! remote address recorded at connect time, or else [`Peer::matches_fd`], must be the
//! peer's), and be neither closed nor readable as far as the reactor knows. A connection idle
//! for [`THOROUGH_CHECK_AFTER`](pingora_pool::THOROUGH_CHECK_AFTER) (200 ms) or more is also
//! checked with the kernel, which sees a close the reactor has not reported yet (not a
//! [virtual](crate::protocols::l4::virt) one, which has no socket to ask). A connection closed by the server in the
//! instant before reuse can still be handed out: the request then fails before any response
//! byte, with an error marked retryable on reused connections
//! ([`RetryType::ReusedOnly`](pingora_error::RetryType::ReusedOnly)).
//!
//! Data found on an idle connection (at release, at reuse, or while pooled) is a sign of a
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
mod idle;
pub mod l4;
mod offload;
/// CONNECT tunnels (also at [`protocols::raw_connect`](crate::protocols::raw_connect), Pingora's
/// path).
pub use crate::protocols::raw_connect;
mod sys;
mod tls;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr as InetSocketAddr;
use std::sync::Arc;
use std::time::Duration;

use log::debug;
use parking_lot::RwLock;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_pool::{ConnectionMeta, ConnectionPool};

use crate::protocols::{Stream, ALPN};
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
    /// The most TLS client configurations the s2n backend keeps for reuse (one per distinct
    /// SNI, CA, client certificate, ALPN and verification choice, each with its session
    /// ticket); `0` keeps none. Other backends ignore it. Default: none (1024).
    pub s2n_config_cache_size: Option<usize>,
}

// === impl ConnectorOptions ===

impl ConnectorOptions {
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
            s2n_config_cache_size: None,
        }
    }
}

/// Connects to servers over TCP, Unix-domain sockets or CONNECT tunnels, and pools idle
/// connections for reuse. See the [module docs](self).
pub struct TransportConnector {
    pool: Arc<ConnectionPool<Stream>>,
    offload: Option<OffloadRuntime>,
    bind_to_v4: Vec<InetSocketAddr>,
    bind_to_v6: Vec<InetSocketAddr>,
    preferred_http_version: PreferredHttpVersion,
    tls: Arc<tls::TlsConnector>,
}

// === impl TransportConnector ===

impl TransportConnector {
    /// A connector with `options`, or the defaults (a pool of 128).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        let options = options.unwrap_or_else(|| ConnectorOptions::new(DEFAULT_POOL_SIZE));
        let pool = Arc::new(ConnectionPool::new(options.keepalive_pool_size));
        crate::metrics::track_pool(&pool);
        TransportConnector {
            tls: Arc::new(tls::TlsConnector::new(&options)),
            pool,
            offload: options
                .offload_threadpool
                .map(|(pools, threads)| OffloadRuntime::new(pools, threads)),
            bind_to_v4: options.bind_to_v4,
            bind_to_v6: options.bind_to_v6,
            preferred_http_version: PreferredHttpVersion::default(),
        }
    }

    /// Makes a new connection to `peer`; never reuses one.
    ///
    /// # Errors
    ///
    /// [`ErrorType::ConnectRefused`], [`ErrorType::ConnectTimedout`] (the peer's
    /// `connection_timeout` or `total_connection_timeout`), [`ErrorType::ConnectNoRoute`],
    /// [`ErrorType::BindError`], [`ErrorType::ConnectError`] and, through a proxy, the errors
    /// of [`raw_connect::connect`]. For TLS peers, [`ErrorType::InvalidCert`] (verification
    /// failed), [`ErrorType::TLSHandshakeFailure`], [`ErrorType::TLSHandshakeTimedout`], and
    /// [`ErrorType::InternalError`] when no TLS backend is available.
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
                let tls = Arc::clone(&self.tls);
                runtime
                    .spawn(async move { do_connect(&peer, bind_to, alpn_override, &tls).await })
                    .await
                    .or_err(ErrorType::InternalError, "connect offload task failed")?
            }
            None => do_connect(peer, bind_to, alpn_override, &self.tls).await,
        }
    }

    /// Takes an idle connection to `peer` from the pool, if one is still usable. Connections
    /// found closed, readable or no longer leading to the peer are closed on the way.
    pub async fn reused_stream<P: Peer + Send + Sync>(&self, peer: &P) -> Option<Stream> {
        self.reused_stream_keyed(peer, peer.reuse_hash())
    }

    /// [`reused_stream`](Self::reused_stream) for a caller that knows the peer's reuse hash
    /// already (computing it is a few hundred instructions, on every request).
    pub(crate) fn reused_stream_keyed<P: Peer + Send + Sync>(
        &self,
        peer: &P,
        key: u64,
    ) -> Option<Stream> {
        while let Some(stream) = self.pool.get_checked(&key) {
            if leads_to_peer(&stream, peer) {
                return Some(stream);
            }
            debug!("pooled connection does not lead to {peer}, closing it");
        }
        None
    }

    /// Returns a connection to the pool for reuse by peers whose
    /// [`reuse_hash`](Peer::reuse_hash) is `key`, keeping it at most `idle_timeout` (`None`:
    /// until the server closes it or the pool evicts it; zero: not at all).
    ///
    /// The caller must only release connections whose protocol allows reuse and that are at
    /// a message boundary. A connection found closed or with unread data is closed instead.
    /// Dropping a connection instead of releasing it closes it.
    pub fn release_stream(&self, stream: Stream, key: u64, idle_timeout: Option<Duration>) {
        let meta = ConnectionMeta::new(key, stream.id());
        self.pool.release(&meta, stream, idle_timeout);
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

    /// Speaks TLS through `provider` instead of the
    /// [default provider](crate::protocols::tls::default_provider).
    pub fn set_tls_provider(&self, provider: Arc<dyn crate::protocols::tls::TlsProvider>) {
        self.tls.set_provider(provider);
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
    pub fn unexpected_data_connection_count(&self) -> u64 {
        self.pool.unexpected_data_count()
    }

    /// The counter behind
    /// [`unexpected_data_connection_count`](Self::unexpected_data_connection_count).
    pub fn unexpected_data_connection_counter(
        &self,
    ) -> std::sync::Arc<std::sync::atomic::AtomicU64> {
        self.pool.unexpected_data_counter()
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
    tls: &tls::TlsConnector,
) -> Result<Stream> {
    let connect = async {
        let stream = l4::connect(peer, bind_to).await?;
        if peer.tls() {
            let span = match crate::utils::spans_wanted() {
                true => tracing::info_span!("tls_handshake", sni = peer.sni()),
                false => tracing::Span::none(),
            };
            if span.is_disabled() {
                tls.connect(stream, peer, alpn_override).await
            } else {
                tracing::Instrument::instrument(tls.connect(stream, peer, alpn_override), span)
                    .await
            }
        } else {
            Ok(stream)
        }
    };
    let started = crate::metrics::upstream_connect_started();
    let result = match peer.total_connection_timeout() {
        Some(limit) => match pingora_timeout::timeout(limit, connect).await {
            Ok(connected) => connected,
            Err(_) => Error::e_explain(
                ErrorType::ConnectTimedout,
                format!("connecting to {peer} took longer than {limit:?} in total"),
            ),
        },
        None => connect.await,
    };
    crate::metrics::upstream_connect_done(started, result)
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
