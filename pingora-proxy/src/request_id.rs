//! Request ids: one per downstream request, taken from a trusted peer's header or generated,
//! carried upstream and back to the client in a header, and recorded on the request's span.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::header::HeaderName;
use pingora_error::{Error, ErrorType, Result};

/// The longest id taken from a client.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// The default header: `x-request-id`.
pub const DEFAULT_REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// A network of trusted peers: an address and the length of its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedNet {
    addr: IpAddr,
    prefix: u8,
}

impl TrustedNet {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` or a single address.
    pub fn parse(net: &str) -> Result<Self> {
        let (addr, prefix) = match net.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (net, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| {
            Error::explain(
                ErrorType::InvalidHTTPHeader,
                format!("not an address: {net}"),
            )
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| {
                    Error::explain(ErrorType::InvalidHTTPHeader, format!("bad prefix: {net}"))
                })?,
            None => max,
        };
        Ok(TrustedNet { addr, prefix })
    }

    /// Whether `peer` is in this network (an IPv4-mapped IPv6 peer counts as IPv4).
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, peer) {
            (IpAddr::V4(net), IpAddr::V4(peer)) => prefix_eq(
                u128::from(u32::from(net)) << 96,
                u128::from(u32::from(peer)) << 96,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(peer)) => {
                prefix_eq(u128::from(net), u128::from(peer), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let mask = u128::MAX << (128 - u32::from(prefix));
    a & mask == b & mask
}

/// How a proxy handles request ids.
#[derive(Debug, Clone)]
pub struct RequestIdOptions {
    /// The header carrying the id.
    pub header: HeaderName,
    /// Peers whose id (in `header`) is kept; any other peer's is replaced. Empty: none.
    pub trusted: Vec<TrustedNet>,
    /// Set the header on the request sent upstream.
    pub to_upstream: bool,
    /// Set the header on the response to the client.
    pub to_client: bool,
}

impl Default for RequestIdOptions {
    /// `x-request-id`, no trusted peers, sent upstream and to the client.
    fn default() -> Self {
        RequestIdOptions {
            header: DEFAULT_REQUEST_ID_HEADER,
            trusted: Vec::new(),
            to_upstream: true,
            to_client: true,
        }
    }
}

/// Whether `id` is a usable request id: 1 to [`MAX_REQUEST_ID_LEN`] token characters.
pub fn valid_request_id(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
}

/// A new id: 32 hex digits, a per-process random half and a counter, unique within the
/// process and unlikely to repeat across processes.
pub fn generate_request_id() -> String {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS; the time and pid vary it further per process.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(now.as_nanos());
        }
        hasher.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = String::with_capacity(32);
    let _ = write!(id, "{prefix:016x}{n:016x}");
    id
}
