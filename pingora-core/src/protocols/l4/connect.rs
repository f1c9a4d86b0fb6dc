//! How L4 connections are made, as a peer asks for them: a custom connector ([`Connect`]) and
//! the local address to connect from ([`BindTo`]). The connectors use these; peers name them.

use std::fmt;
use std::net::SocketAddr as InetSocketAddr;

use async_trait::async_trait;
use pingora_error::{Error, ErrorType, Result};

use super::socket::SocketAddr;
use super::stream::Stream as L4Stream;

/// Establishes L4 connections in a custom way, in place of TCP or a Unix-domain socket: set as
/// a peer's [`custom_l4`](crate::upstreams::peer::PeerOptions::custom_l4).
#[async_trait]
pub trait Connect: fmt::Debug {
    /// Connects to `addr`.
    async fn connect(&self, addr: &SocketAddr) -> Result<L4Stream>;
}

/// The local address, and optionally the local port range, to connect from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindTo {
    /// The local address. A port of 0 lets the kernel choose one when connecting.
    pub addr: Option<InetSocketAddr>,
    port_range: Option<(u16, u16)>,
    fallback: bool,
}

// === impl BindTo ===

impl BindTo {
    /// Restricts the local port to `low..=high` (`IP_LOCAL_PORT_RANGE`, Linux 6.3 and later;
    /// ignored by older kernels). `None` or `Some((0, 0))` lifts the restriction.
    ///
    /// # Errors
    ///
    /// [`ErrorType::SocketError`] unless `0 < low < high`.
    pub fn set_port_range(&mut self, range: Option<(u16, u16)>) -> Result<()> {
        match range {
            None | Some((0, 0)) => self.port_range = None,
            Some((low, high)) if low > 0 && low < high => self.port_range = Some((low, high)),
            Some((low, high)) => {
                return Error::e_explain(
                    ErrorType::SocketError,
                    format!("invalid port range {low}-{high}"),
                )
            }
        }
        Ok(())
    }

    /// Whether to connect again without the port range when no port in it is free.
    pub fn set_fallback(&mut self, fallback: bool) {
        self.fallback = fallback;
    }

    /// The local port range.
    pub fn port_range(&self) -> Option<(u16, u16)> {
        self.port_range
    }

    /// Whether a connect that finds no free port in the range is tried again without it.
    pub fn will_fallback(&self) -> bool {
        self.fallback && self.port_range.is_some()
    }
}
