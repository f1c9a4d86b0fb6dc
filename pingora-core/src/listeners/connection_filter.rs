//! Connection filters: accept or refuse a client connection by its address, before anything
//! else happens on it (no TLS handshake, no read, no application).
//!
//! ```
//! use std::net::SocketAddr;
//! use std::sync::Arc;
//!
//! use async_trait::async_trait;
//! use pingora_core::listeners::{ConnectionFilter, Listeners};
//!
//! /// Refuses one network.
//! #[derive(Debug)]
//! struct NotFromTen;
//!
//! #[async_trait]
//! impl ConnectionFilter for NotFromTen {
//!     async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
//!         !matches!(addr, Some(SocketAddr::V4(a)) if a.ip().octets()[0] == 10)
//!     }
//! }
//!
//! let mut listeners = Listeners::tcp("127.0.0.1:0");
//! listeners.set_connection_filter(Arc::new(NotFromTen));
//! ```

use std::fmt::Debug;
use std::net::SocketAddr;

use async_trait::async_trait;

/// Decides whether a newly accepted client connection is served.
///
/// It runs in the connection's own task, before the TLS handshake: a refused connection is
/// closed at once and costs no handshake. A slow filter delays only its connection, never the
/// accepting of others.
#[async_trait]
pub trait ConnectionFilter: Debug + Send + Sync {
    /// Whether to serve the connection from `addr`: the client's IP address and port, or
    /// `None` for a connection without one (a Unix-domain socket). By default, every one.
    async fn should_accept(&self, _addr: Option<&SocketAddr>) -> bool {
        true
    }
}

/// Accepts every connection (the filter of a listener without one).
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAllFilter;

#[async_trait]
impl ConnectionFilter for AcceptAllFilter {}
