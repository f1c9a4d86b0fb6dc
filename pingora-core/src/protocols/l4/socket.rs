//! A socket address that is either an internet or a Unix-domain address.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr as InetSocketAddr;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::Path;

/// The address of a TCP or Unix-domain socket.
#[derive(Debug, Clone)]
pub enum SocketAddr {
    /// An IPv4 or IPv6 address and port.
    Inet(InetSocketAddr),
    /// A Unix-domain socket address (a path, or unnamed).
    Unix(UnixSocketAddr),
}

impl SocketAddr {
    /// The internet address, if this is one.
    pub fn as_inet(&self) -> Option<&InetSocketAddr> {
        match self {
            SocketAddr::Inet(addr) => Some(addr),
            SocketAddr::Unix(_) => None,
        }
    }

    /// The Unix-domain address, if this is one.
    pub fn as_unix(&self) -> Option<&UnixSocketAddr> {
        match self {
            SocketAddr::Unix(addr) => Some(addr),
            SocketAddr::Inet(_) => None,
        }
    }

    /// Changes the port of an internet address; does nothing to a Unix-domain address.
    pub fn set_port(&mut self, port: u16) {
        if let SocketAddr::Inet(addr) = self {
            addr.set_port(port);
        }
    }

    /// The path of a Unix-domain address, if it has one.
    fn unix_path(&self) -> Option<&Path> {
        self.as_unix().and_then(UnixSocketAddr::as_pathname)
    }
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketAddr::Inet(addr) => addr.fmt(f),
            SocketAddr::Unix(addr) => match addr.as_pathname() {
                Some(path) => write!(f, "unix:{}", path.display()),
                None => f.write_str("unix:(unnamed)"),
            },
        }
    }
}

impl PartialEq for SocketAddr {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (SocketAddr::Inet(a), SocketAddr::Inet(b)) => a == b,
            (SocketAddr::Unix(_), SocketAddr::Unix(_)) => self.unix_path() == other.unix_path(),
            _ => false,
        }
    }
}

impl Eq for SocketAddr {}

/// An Internet address resolves to itself; a Unix-domain address is an error.
impl std::net::ToSocketAddrs for SocketAddr {
    type Iter = std::iter::Once<InetSocketAddr>;

    fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
        match self {
            SocketAddr::Inet(addr) => Ok(std::iter::once(*addr)),
            SocketAddr::Unix(_) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "a Unix-domain socket address is not an Internet address",
            )),
        }
    }
}

/// Internet addresses sort before Unix-domain ones; Unix-domain ones sort by path.
impl Ord for SocketAddr {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self, other) {
            (SocketAddr::Inet(a), SocketAddr::Inet(b)) => a.cmp(b),
            (SocketAddr::Inet(_), SocketAddr::Unix(_)) => std::cmp::Ordering::Less,
            (SocketAddr::Unix(_), SocketAddr::Inet(_)) => std::cmp::Ordering::Greater,
            (SocketAddr::Unix(_), SocketAddr::Unix(_)) => self.unix_path().cmp(&other.unix_path()),
        }
    }
}

impl PartialOrd for SocketAddr {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Hash for SocketAddr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            SocketAddr::Inet(addr) => addr.hash(state),
            SocketAddr::Unix(_) => self.unix_path().hash(state),
        }
    }
}

impl From<InetSocketAddr> for SocketAddr {
    fn from(addr: InetSocketAddr) -> Self {
        SocketAddr::Inet(addr)
    }
}

impl From<UnixSocketAddr> for SocketAddr {
    fn from(addr: UnixSocketAddr) -> Self {
        SocketAddr::Unix(addr)
    }
}

impl std::str::FromStr for SocketAddr {
    type Err = pingora_error::BError;

    /// Parses `ip:port`, or `unix:/path` for a Unix-domain socket.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use pingora_error::{ErrorType, OrErr};
        if let Some(path) = s.strip_prefix("unix:") {
            let addr = UnixSocketAddr::from_pathname(path)
                .or_err_with(ErrorType::SocketError, || {
                    format!("bad unix socket path {path}")
                })?;
            return Ok(SocketAddr::Unix(addr));
        }
        s.parse::<InetSocketAddr>()
            .map(SocketAddr::Inet)
            .or_err_with(ErrorType::SocketError, || format!("bad socket address {s}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let inet: SocketAddr = "127.0.0.1:80".parse().unwrap();
        assert_eq!(inet.to_string(), "127.0.0.1:80");
        assert!(inet.as_inet().is_some());
        let unix: SocketAddr = "unix:/tmp/x.sock".parse().unwrap();
        assert_eq!(unix.to_string(), "unix:/tmp/x.sock");
        assert_eq!(unix, "unix:/tmp/x.sock".parse().unwrap());
        assert_ne!(unix, inet);
        assert!("nonsense".parse::<SocketAddr>().is_err());
        let mut inet = inet;
        inet.set_port(81);
        assert_eq!(inet.as_inet().unwrap().port(), 81);
    }
}
