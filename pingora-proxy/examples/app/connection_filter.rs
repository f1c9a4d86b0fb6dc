//! A connection filter admitting clients from an allow list of networks, and a proxy to put
//! behind it.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use pingora_core::listeners::ConnectionFilter;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

/// An IP network: an address and how many of its leading bits are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network. IPv4 addresses mapped into IPv6 (as a dual-stack
    /// listener reports IPv4 clients) count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same_prefix(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                same_prefix(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of the `width` low bits of `a` and `b` are equal.
fn same_prefix(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    let ignored = u32::from(width - prefix.min(width));
    a.checked_shr(ignored).unwrap_or(0) == b.checked_shr(ignored).unwrap_or(0)
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Network {
    type Err = String;

    /// `10.0.0.0/8`, `::1/128`, or a single address such as `127.0.0.1`.
    fn from_str(text: &str) -> std::result::Result<Network, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|e| format!("{text:?}: not an IP address: {e}"))?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= width => prefix,
                _ => return Err(format!("{text:?}: the prefix must be 0 to {width}")),
            },
        };
        Ok(Network { addr, prefix })
    }
}

/// Admits clients whose address is in one of its networks, and connections without an IP
/// address (Unix sockets, which the file permissions guard); closes every other connection
/// at once, before any byte is read from it.
#[derive(Debug)]
pub struct AllowList {
    networks: Vec<Network>,
    refused: AtomicU64,
}

impl AllowList {
    /// Admits clients of `networks`.
    pub fn new(networks: Vec<Network>) -> Self {
        AllowList {
            networks,
            refused: AtomicU64::new(0),
        }
    }

    /// Whether a client at `ip` is admitted.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(ip))
    }

    /// How many connections were refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl ConnectionFilter for AllowList {
    async fn should_accept(&self, addr: Option<&SocketAddr>) -> bool {
        let Some(addr) = addr else {
            return true;
        };
        if self.allows(addr.ip()) {
            return true;
        }
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        log::info!("refused a connection from {addr} ({refused} so far)");
        false
    }
}

/// Sends every request to one origin.
#[derive(Debug)]
pub struct ToOrigin(pub SocketAddr);

#[async_trait]
impl ProxyHttp for ToOrigin {
    type CTX = ();

    fn new_ctx(&self) -> Self::CTX {}

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}
