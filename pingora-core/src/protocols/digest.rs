//! Digests: what is known about a connection, gathered for logging and decisions.

use std::any::Any;
use std::os::unix::io::RawFd;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use pingora_http::ResponseHeader;

use super::l4::ext;
use super::l4::socket::SocketAddr;

/// Everything known about a connection.
#[derive(Debug, Clone, Default)]
pub struct Digest {
    /// TLS parameters, if the connection is TLS.
    pub ssl_digest: Option<Arc<SslDigest>>,
    /// When each layer of the connection (TCP, then TLS, ...) was established.
    pub timing_digest: Vec<Option<TimingDigest>>,
    /// The CONNECT proxy the connection goes through, if any.
    pub proxy_digest: Option<Arc<ProxyDigest>>,
    /// The socket under the connection.
    pub socket_digest: Option<Arc<SocketDigest>>,
}

/// When a layer of a connection was established.
#[derive(Debug, Clone)]
pub struct TimingDigest {
    /// The time the layer finished its handshake.
    pub established_ts: SystemTime,
}

impl Default for TimingDigest {
    fn default() -> Self {
        TimingDigest {
            established_ts: SystemTime::UNIX_EPOCH,
        }
    }
}

/// What a CONNECT proxy answered when the tunnel was opened.
#[derive(Debug)]
pub struct ProxyDigest {
    /// The proxy's response to the CONNECT request.
    pub response: Box<ResponseHeader>,
    /// Data a user hook attached to the tunnel.
    pub user_data: Option<Box<dyn Any + Send + Sync>>,
}

impl ProxyDigest {
    /// A digest for a tunnel opened with `response`.
    pub fn new(response: Box<ResponseHeader>) -> Self {
        ProxyDigest {
            response,
            user_data: None,
        }
    }
}

/// TLS parameters of a connection.
#[derive(Debug, Clone, Default)]
pub struct SslDigest {
    /// The negotiated cipher suite.
    pub cipher: &'static str,
    /// The negotiated protocol version, such as `TLSv1.3`.
    pub version: &'static str,
    /// The organization of the peer's certificate.
    pub organization: Option<String>,
    /// The serial number of the peer's certificate, in hex.
    pub serial_number: Option<String>,
    /// The SHA-256 digest of the peer's certificate.
    pub cert_digest: Vec<u8>,
    /// A value attached by the `handshake_complete_callback` of the TLS acceptor.
    pub extension: SslDigestExtension,
}

/// A value attached to a TLS connection by user code.
#[derive(Debug, Clone, Default)]
pub struct SslDigestExtension {
    value: Option<Arc<dyn Any + Send + Sync>>,
}

impl SslDigestExtension {
    /// Attaches `value`.
    pub fn set(&mut self, value: Arc<dyn Any + Send + Sync>) {
        self.value = Some(value);
    }

    /// The attached value, if it has type `T`.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.value.as_deref()?.downcast_ref()
    }
}

/// Facts about the socket under a connection, looked up from the kernel when first asked.
#[derive(Debug)]
pub struct SocketDigest {
    raw_fd: RawFd,
    /// The address of the other end.
    pub peer_addr: OnceLock<Option<SocketAddr>>,
    /// The address of our end.
    pub local_addr: OnceLock<Option<SocketAddr>>,
    /// The address the client originally connected to, before a NAT redirect.
    pub original_dst: OnceLock<Option<SocketAddr>>,
}

impl SocketDigest {
    /// A digest of the socket `raw_fd`. Nothing is looked up yet.
    pub fn from_raw_fd(raw_fd: RawFd) -> SocketDigest {
        SocketDigest {
            raw_fd,
            peer_addr: OnceLock::new(),
            local_addr: OnceLock::new(),
            original_dst: OnceLock::new(),
        }
    }

    /// The address of the other end.
    pub fn peer_addr(&self) -> Option<&SocketAddr> {
        self.peer_addr
            .get_or_init(|| ext::peer_addr(self.raw_fd))
            .as_ref()
    }

    /// The address of our end.
    pub fn local_addr(&self) -> Option<&SocketAddr> {
        self.local_addr
            .get_or_init(|| ext::local_addr(self.raw_fd))
            .as_ref()
    }

    /// The address the client connected to before an iptables REDIRECT/DNAT (`SO_ORIGINAL_DST`).
    pub fn original_dst(&self) -> Option<&SocketAddr> {
        self.original_dst
            .get_or_init(|| {
                ext::get_original_dest(self.raw_fd)
                    .ok()
                    .flatten()
                    .map(SocketAddr::Inet)
            })
            .as_ref()
    }

    /// The kernel's TCP statistics for the socket (Linux `TCP_INFO`).
    pub fn tcp_info(&self) -> Option<ext::TCP_INFO> {
        ext::get_tcp_info(self.raw_fd).ok()
    }

    /// The receive buffer size of the socket.
    pub fn get_recv_buf(&self) -> Option<usize> {
        ext::get_recv_buf(self.raw_fd).ok()
    }

    /// The send buffer size of the socket.
    pub fn get_snd_buf(&self) -> Option<usize> {
        ext::get_snd_buf(self.raw_fd).ok()
    }

    /// The raw file descriptor of the socket.
    pub fn raw_fd(&self) -> RawFd {
        self.raw_fd
    }
}

/// Gives the [`TimingDigest`]s of a connection.
pub trait GetTimingDigest {
    /// When each layer of the connection was established, innermost first.
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>>;

    /// The time spent waiting for reads to become ready.
    fn get_read_pending_time(&self) -> Duration {
        Duration::ZERO
    }

    /// The time spent waiting for writes to become ready.
    fn get_write_pending_time(&self) -> Duration {
        Duration::ZERO
    }
}

/// Gives the [`ProxyDigest`] of a connection.
pub trait GetProxyDigest {
    /// The CONNECT proxy the connection goes through, if any.
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }

    /// Records the CONNECT proxy the connection goes through.
    fn set_proxy_digest(&mut self, _digest: ProxyDigest) {}
}

/// Gives the [`SocketDigest`] of a connection.
pub trait GetSocketDigest {
    /// The socket under the connection, if it has one.
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        None
    }

    /// Records the socket under the connection.
    fn set_socket_digest(&mut self, _socket_digest: SocketDigest) {}
}
