//! Connecting to HTTP upstreams: an [`HttpSession`] over a new or pooled connection.
//!
//! Only HTTP/1 is spoken to upstreams for now; a peer that asks for HTTP/2 gets HTTP/1 until
//! HTTP/2 support lands, which [`Connector::prefer_h1`] will then also steer.

use std::time::Duration;

use pingora_error::Result;

use super::{ConnectorOptions, TransportConnector};
use crate::protocols::http::client::HttpSession;
use crate::protocols::http::v1::client::HttpSession as Http1Session;
use crate::upstreams::peer::Peer;

/// Hands out HTTP sessions to upstream peers, reusing idle connections.
#[derive(Debug)]
pub struct Connector {
    transport: TransportConnector,
}

impl Connector {
    /// A connector with `options` (the defaults when `None`).
    pub fn new(options: Option<ConnectorOptions>) -> Self {
        Connector {
            transport: TransportConnector::new(options),
        }
    }

    /// The connector of the underlying connections.
    pub fn transport(&self) -> &TransportConnector {
        &self.transport
    }

    /// A session to `peer`, over a pooled connection if one is idle (then `true`) or a new one.
    ///
    /// The peer's read and write timeouts are applied to the session.
    ///
    /// # Errors
    /// Connecting failed; see [`TransportConnector::new_stream`].
    pub async fn get_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        peer: &P,
    ) -> Result<(HttpSession, bool)> {
        let (stream, reused) = self.transport.get_stream(peer).await?;
        let session = Http1Session::new_with_options(stream, peer);
        Ok((HttpSession::H1(session), reused))
    }

    /// Ends `session`: its connection goes back to the pool if the exchange allows it (see
    /// [`Http1Session::reuse`]), to be closed after `idle_timeout` of idleness.
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
                if let Some(stream) = h1.reuse().await {
                    self.transport
                        .release_stream(stream, peer.reuse_hash(), idle_timeout);
                }
            }
        }
    }

    /// Remembers that `peer` should be spoken to over HTTP/1.
    pub fn prefer_h1(&self, peer: &impl Peer) {
        self.transport.prefer_h1(peer);
    }
}
