//! Connecting to HTTP upstreams: an [`HttpSession`] over a new or pooled connection, HTTP/1 or
//! HTTP/2 as the peer's [`ALPN`] and the connection allow.
//!
//! # Choosing the version
//! * A peer whose ALPN allows only HTTP/1 ([`ALPN::H1`], the default) always gets HTTP/1.
//! * Otherwise a stream on a pooled HTTP/2 connection with room is used first; then, if the
//!   peer accepts HTTP/1 too, a pooled HTTP/1 connection; then a new connection.
//! * On a new connection, the protocol the TLS handshake negotiated decides (see
//!   [`Stream::selected_alpn_proto`](crate::protocols::Ssl::selected_alpn_proto)); when TLS
//!   negotiated none, HTTP/1.1 unless the peer allows only HTTP/2. Without TLS, as in Pingora,
//!   HTTP/2 is spoken with prior knowledge ("h2c") only to peers whose ALPN is [`ALPN::H2`];
//!   an [`ALPN::H2H1`] peer without TLS gets HTTP/1.1, since nothing would tell us it speaks
//!   HTTP/2.
//! * Requests that arrive together for a peer allowing several HTTP/2 streams per connection
//!   (`max_h2_streams` above 1) and find no connection with room wait for the one connection
//!   the first of them opens, rather than each opening its own.
//! * A peer that accepts both versions and answered a stream with `HTTP_1_1_REQUIRED` is
//!   remembered as preferring HTTP/1 ([`Connector::prefer_h1`]), so later connections offer
//!   only `http/1.1` in ALPN; the failed request is marked retryable.

pub mod v2;

use std::time::Duration;

use pingora_error::{Error, ErrorType, Result};

use super::{ConnectorOptions, TransportConnector, DEFAULT_POOL_SIZE};
use crate::protocols::http::client::HttpSession;
use crate::protocols::http::v1::client::HttpSession as Http1Session;
use crate::protocols::http::v2::client::Http2Session;
use crate::protocols::{Stream, ALPN};
use crate::upstreams::peer::Peer;
use pingora_pool::{ConnectGate, Joined, MultiplexPool};
use v2::{ConnectionRef, H2HandshakeSettings};

/// Hands out HTTP sessions to upstream peers, reusing idle HTTP/1 connections and sharing
/// HTTP/2 connections.
#[derive(Debug)]
pub struct Connector {
    transport: TransportConnector,
    h2: MultiplexPool<ConnectionRef>,
    connecting: ConnectGate,
}

impl Connector {
    /// A connector with `options` (the defaults when `None`).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        let pool_size = options
            .as_ref()
            .map_or(DEFAULT_POOL_SIZE, |o| o.keepalive_pool_size);
        Connector {
            transport: TransportConnector::new(options),
            h2: MultiplexPool::new(pool_size),
            connecting: ConnectGate::default(),
        }
    }

    /// The connector of the underlying connections.
    pub fn transport(&self) -> &TransportConnector {
        &self.transport
    }

    /// A session to `peer`: a stream on a shared HTTP/2 connection or a pooled HTTP/1
    /// connection (then `true`), or a new connection (see the [module docs](self)).
    ///
    /// The peer's read and write timeouts are applied to the session.
    ///
    /// # Errors
    /// Connecting failed (see [`TransportConnector::new_stream`]), or the HTTP/2 handshake.
    pub async fn get_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(HttpSession, bool)> {
        crate::metrics::upstream_session(self.session(peer).await)
    }

    /// [`get_http_session`](Self::get_http_session), before it is counted.
    async fn session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(HttpSession, bool)> {
        let alpn = self.alpn(peer);
        let key = peer.reuse_hash();
        let h2_possible = may_speak_h2(peer, &alpn);
        if h2_possible {
            let found = v2::find_stream(&self.h2, key);
            if found.wants_h1 && alpn.get_min_http_version() == 1 {
                self.transport.prefer_h1(peer);
                return self.get_http_session_h1(peer).await;
            }
            if let Some(session) = found.session {
                return Ok((HttpSession::H2(with_peer_timeouts(session, peer)), true));
            }
        }
        if alpn.get_min_http_version() == 1 {
            if let Some(stream) = self.transport.reused_stream_keyed(peer, key) {
                let session = Http1Session::new_with_options(stream, peer);
                return Ok((HttpSession::H1(session), true));
            }
        }
        let _connecting = if h2_possible && max_h2_streams(peer) > 1 {
            // Requests arriving together at a cold pool wait for one connection rather than
            // each opening its own.
            match self.connecting.join(key).await {
                Joined::First(guard) => Some(guard),
                Joined::Waited => {
                    if let Some(session) = v2::find_stream(&self.h2, key).session {
                        return Ok((HttpSession::H2(with_peer_timeouts(session, peer)), true));
                    }
                    None
                }
            }
        } else {
            None
        };
        let stream = self.transport.new_stream(peer).await?;
        let h2 = match stream.selected_alpn_proto() {
            Some(ALPN::H2) => true,
            Some(_) => false,
            // Nothing negotiated (no TLS, or a TLS server without ALPN): HTTP/2 with prior
            // knowledge only when the peer allows nothing else.
            None => alpn.get_min_http_version() == 2,
        };
        if !h2 {
            return Ok((
                HttpSession::H1(Http1Session::new_with_options(stream, peer)),
                false,
            ));
        }
        // A peer that accepts HTTP/1 too may ask for it (`HTTP_1_1_REQUIRED`).
        let accepts_h1 = alpn.get_min_http_version() == 1;
        let session = self.new_h2_session(stream, peer, accepts_h1).await?;
        Ok((HttpSession::H2(session), false))
    }

    /// A new HTTP/1 session to `peer`, over a pooled connection if one is idle.
    async fn get_http_session_h1<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(HttpSession, bool)> {
        let (stream, reused) = self.transport.get_stream(peer).await?;
        let session = Http1Session::new_with_options(stream, peer);
        Ok((HttpSession::H1(session), reused))
    }

    /// Starts HTTP/2 on `stream`, pools the connection and opens its first stream.
    async fn new_h2_session<P: Peer>(
        &self,
        stream: Stream,
        peer: &P,
        may_downgrade: bool,
    ) -> Result<Http2Session> {
        let options = peer.get_peer_options();
        let settings = H2HandshakeSettings {
            max_streams: max_h2_streams(peer),
            ping_interval: peer.h2_ping_interval(),
            stream_window_size: options.and_then(|o| o.h2_stream_window_size),
            connection_window_size: options.and_then(|o| o.h2_connection_window_size),
            downgradable: may_downgrade,
        };
        let conn = v2::handshake(stream, settings).await?;
        let Some(session) = conn.spawn_stream() else {
            return Error::e_explain(
                ErrorType::InternalError,
                "a new HTTP/2 connection refused its first stream",
            );
        };
        self.h2.add(peer.reuse_hash(), conn);
        Ok(with_peer_timeouts(session, peer))
    }

    /// Ends `session`. An HTTP/1 connection goes back to the pool if the exchange allows it
    /// (see [`Http1Session::reuse`]); an HTTP/2 stream gives its slot back to its connection.
    /// Either connection is closed after `idle_timeout` of idleness.
    pub async fn release_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        session: HttpSession,
        peer: &P,
        idle_timeout: Option<Duration>,
    ) {
        match session {
            HttpSession::H1(mut h1) => {
                h1.respect_keepalive();
                // The upstream's own keepalive timeout, when it said one, bounds ours; keep a
                // margin so that a reuse does not race the upstream's own close.
                let theirs = h1
                    .get_keepalive_timeout()
                    .map(|t| t - (t / 10).min(Duration::from_secs(1)));
                let idle_timeout = match (idle_timeout, theirs) {
                    (Some(ours), Some(theirs)) => Some(ours.min(theirs)),
                    (ours, theirs) => ours.or(theirs),
                };
                match h1.into_reusable() {
                    Ok(stream) => {
                        self.transport
                            .release_stream(stream, peer.reuse_hash(), idle_timeout);
                    }
                    // Boxed: closing is the rare path, and its future would otherwise sit in
                    // every request's future, which is moved at each `.await`.
                    Err(mut h1) => Box::pin(h1.shutdown()).await,
                }
            }
            HttpSession::H2(h2) => {
                v2::release_stream(&self.h2, peer.reuse_hash(), h2, idle_timeout);
            }
        }
    }

    /// Remembers that `peer` should be spoken to over HTTP/1.
    pub fn prefer_h1(&self, peer: &impl Peer) {
        self.transport.prefer_h1(peer);
    }

    /// How many HTTP/2 connections to `peer` are open and pooled.
    pub fn h2_connection_count(&self, peer: &impl Peer) -> usize {
        self.h2.connections(peer.reuse_hash())
    }

    /// The HTTP versions to offer `peer`: its own choice, unless it was found to prefer
    /// HTTP/1 and accepts it.
    fn alpn<P: Peer>(&self, peer: &P) -> ALPN {
        let own = peer.get_alpn().cloned().unwrap_or(ALPN::H1);
        if own.get_min_http_version() == 1 && self.transport.preferred_alpn(peer).is_some() {
            return ALPN::H1;
        }
        own
    }
}

// === impl Http1Session ===

// Defined here rather than next to the session: HTTP/1 sessions know nothing of peers, the
// layer that connects to them does.
impl Http1Session {
    /// A session over `stream` with the settings of `peer`: its read and write timeouts, and
    /// whether responses with an invalid `Content-Length` are tolerated.
    pub fn new_with_options<P: Peer>(stream: Stream, peer: &P) -> Self {
        let mut session = Self::new(stream);
        if let Some(options) = peer.get_peer_options() {
            session.read_timeout = options.read_timeout;
            session.write_timeout = options.write_timeout;
            session.set_allow_h1_response_invalid_content_length(
                options.allow_h1_response_invalid_content_length,
            );
        }
        session
    }
}

/// Whether a session to `peer` may be HTTP/2: over TLS when its ALPN offers `h2`, without TLS
/// only when HTTP/2 is all it allows.
fn may_speak_h2<P: Peer>(peer: &P, alpn: &ALPN) -> bool {
    if peer.tls() {
        alpn.get_max_http_version() == 2
    } else {
        alpn.get_min_http_version() == 2
    }
}

/// The most streams `peer` wants on one HTTP/2 connection.
fn max_h2_streams<P: Peer>(peer: &P) -> usize {
    peer.get_peer_options().map_or(1, |o| o.max_h2_streams)
}

/// Applies `peer`'s read and write timeouts to `session`.
fn with_peer_timeouts<P: Peer>(mut session: Http2Session, peer: &P) -> Http2Session {
    if let Some(options) = peer.get_peer_options() {
        session.read_timeout = options.read_timeout;
        session.write_timeout = options.write_timeout;
    }
    session
}
