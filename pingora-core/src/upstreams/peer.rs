//! Peers: where to connect to, and how.
//!
//! A [`Peer`] tells the [connectors](crate::connectors) the address of a server, whether to
//! speak TLS, and the many options of a connection ([`PeerOptions`]). [`HttpPeer`] is the
//! peer of HTTP proxies and clients; [`BasicPeer`] is a plain TCP or TLS peer.
//!
//! # Connection reuse
//!
//! Idle connections are pooled under [`Peer::reuse_hash`]: a pooled connection is handed to
//! any peer with the same hash. The hash therefore covers everything that makes one connection
//! unfit for another peer:
//!
//! * the address, the scheme, the CONNECT proxy (next hop, target, headers and the
//!   [`extra_proxy_headers`](PeerOptions::extra_proxy_headers)) and the
//!   [`group_key`](HttpPeer::group_key);
//! * the explicitly requested source address ([`BindTo::addr`]): a connection made from
//!   another address would show the server the wrong source (Pingora leaves it out);
//! * `max_h2_streams`, which shapes a multiplexed connection;
//! * for TLS peers only: SNI, client certificate, `verify_cert`, `verify_hostname`,
//!   `alternative_cn`, the CA set (Pingora leaves it out; a connection verified against
//!   another CA set proves nothing to this peer), curves, `second_keyshare`, and a
//!   [custom ALPN](ALPN::Custom) protocol. The HTTP ALPN choices (`H1`, `H2`, `H2H1`) are left
//!   out, as in Pingora: the HTTP connector checks the protocol a connection negotiated, so
//!   they do not change which connections fit; a custom protocol is not HTTP at all.
//!
//! Socket tuning (timeouts, keepalive, buffer sizes, DSCP, TCP Fast Open) is left out: it does
//! not change what a connection is. Neither is a [`custom_l4`](PeerOptions::custom_l4)
//! connector; give peers that use different ones different `group_key`s.
//!
//! The hash is keyed with secrets drawn once per process: it is stable while the process
//! runs, and cannot be aimed at a collision from outside.

use std::collections::BTreeMap;
use std::fmt::{self, Display, Formatter};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr as InetSocketAddr, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::SocketAddr as UnixSocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::net::TcpSocket;

use crate::protocols::l4::connect::{BindTo, Connect as L4Connect};
use crate::protocols::l4::ext;
use crate::protocols::l4::socket::SocketAddr;
use crate::utils::process_hasher;
use crate::utils::tls::{CaType, CertKey};

pub use crate::protocols::{TcpKeepalive, ALPN};

pub use crate::protocols::raw_connect::ProxyDigestUserDataHook;

/// A hook run on every new upstream TCP socket before it connects, to set more socket options.
pub type TcpSockTweakHook = Arc<dyn Fn(&TcpSocket) -> Result<()> + Send + Sync + 'static>;

/// Follows the life of upstream connections.
pub trait Tracing: Send + Sync + fmt::Debug {
    /// Called when a connection to the server is established.
    fn on_connected(&self);
    /// Called when the connection is closed.
    fn on_disconnected(&self);
    /// A boxed copy of this tracer.
    fn boxed_clone(&self) -> Box<dyn Tracing>;
}

/// A cloneable [`Tracing`] object.
#[derive(Debug)]
pub struct Tracer(pub Box<dyn Tracing>);

impl Clone for Tracer {
    fn clone(&self) -> Self {
        Tracer(self.0.boxed_clone())
    }
}

/// Where to connect to and how: what the [connectors](crate::connectors) need to know about a
/// server.
///
/// Every option accessor reads [`get_peer_options`](Self::get_peer_options) by default, so an
/// implementation usually provides only the four required methods and the options.
pub trait Peer: Display + Clone {
    /// The address to connect to.
    fn address(&self) -> &SocketAddr;
    /// Whether to speak TLS.
    fn tls(&self) -> bool;
    /// The SNI to send when speaking TLS; empty for none.
    fn sni(&self) -> &str;
    /// Two peers may share connections if and only if their reuse hashes are equal: see the
    /// [module docs](self#connection-reuse) for what it must cover.
    fn reuse_hash(&self) -> u64;
    /// The CONNECT proxy to tunnel through, if any.
    fn get_proxy(&self) -> Option<&Proxy> {
        None
    }
    /// The connection options, if this peer has any.
    fn get_peer_options(&self) -> Option<&PeerOptions> {
        None
    }
    /// The connection options, to change them.
    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        None
    }
    /// Whether TLS verifies the server's certificate chain. `false` without options.
    fn verify_cert(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.verify_cert)
    }
    /// Whether TLS checks that the server's certificate matches the SNI. `false` without
    /// options.
    fn verify_hostname(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.verify_hostname)
    }
    /// Another name the server's certificate may match instead of the SNI.
    fn alternative_cn(&self) -> Option<&String> {
        self.get_peer_options()?.alternative_cn.as_ref()
    }
    /// The local address and ports to connect from.
    fn bind_to(&self) -> Option<&BindTo> {
        self.get_peer_options()?.bind_to.as_ref()
    }
    /// The limit on the L4 connect (see [`PeerOptions::connection_timeout`]).
    fn connection_timeout(&self) -> Option<Duration> {
        self.get_peer_options()?.connection_timeout
    }
    /// The limit on establishing the whole connection, TLS included.
    fn total_connection_timeout(&self) -> Option<Duration> {
        self.get_peer_options()?.total_connection_timeout
    }
    /// How long an idle connection to this peer is kept for reuse.
    fn idle_timeout(&self) -> Option<Duration> {
        self.get_peer_options()?.idle_timeout
    }
    /// The application protocols to offer with ALPN.
    fn get_alpn(&self) -> Option<&ALPN> {
        self.get_peer_options().map(|o| &o.alpn)
    }
    /// The CA certificates to verify the server with, instead of the default ones.
    fn get_ca(&self) -> Option<&Arc<CaType>> {
        self.get_peer_options()?.ca.as_ref()
    }
    /// The client certificate and key for mutual TLS.
    fn get_client_cert_key(&self) -> Option<&Arc<CertKey>> {
        None
    }
    /// TCP keepalive probing of the connection.
    fn tcp_keepalive(&self) -> Option<&TcpKeepalive> {
        self.get_peer_options()?.tcp_keepalive.as_ref()
    }
    /// How often an HTTP/2 connection is pinged.
    fn h2_ping_interval(&self) -> Option<Duration> {
        self.get_peer_options()?.h2_ping_interval
    }
    /// The TCP receive buffer size (`SO_RCVBUF`).
    fn tcp_recv_buf(&self) -> Option<usize> {
        self.get_peer_options()?.tcp_recv_buf
    }
    /// The DSCP value of outgoing packets ([RFC 2474](https://www.rfc-editor.org/rfc/rfc2474)).
    fn dscp(&self) -> Option<u8> {
        self.get_peer_options()?.dscp
    }
    /// Whether to use TCP Fast Open.
    fn tcp_fast_open(&self) -> bool {
        self.get_peer_options().is_some_and(|o| o.tcp_fast_open)
    }
    /// Whether the connected socket `fd` leads to this peer: its remote address is the peer's
    /// address (the proxy's next hop for a proxied peer). Checked before a pooled connection is
    /// reused.
    fn matches_fd<V: AsRawFd>(&self, fd: V) -> bool {
        ext::peer_addr(fd.as_raw_fd()).is_some_and(|remote| leads_to(self, &remote))
    }
    /// The tracer of connections to this peer.
    fn get_tracer(&self) -> Option<Tracer> {
        None
    }
    /// The hook run on new TCP sockets before they connect.
    fn upstream_tcp_sock_tweak_hook(&self) -> Option<&TcpSockTweakHook> {
        self.get_peer_options()?
            .upstream_tcp_sock_tweak_hook
            .as_ref()
    }
    /// The hook that attaches user data to CONNECT tunnels.
    fn proxy_digest_user_data_hook(&self) -> Option<&ProxyDigestUserDataHook> {
        self.get_peer_options()?
            .proxy_digest_user_data_hook
            .as_ref()
    }
}

/// Whether a connection whose remote end is `remote` leads to `peer`: to its address, or to
/// its proxy's next hop for a proxied peer.
pub(crate) fn leads_to<P: Peer>(peer: &P, remote: &SocketAddr) -> bool {
    match peer.get_proxy() {
        Some(proxy) => proxy.matches_addr(remote),
        None => remote == peer.address(),
    }
}

/// A TCP or TLS peer with nothing HTTP-specific. TLS is used if and only if `sni` is not
/// empty.
#[derive(Debug, Clone)]
pub struct BasicPeer {
    /// The address to connect to.
    pub _address: SocketAddr,
    /// The SNI; non-empty means TLS.
    pub sni: String,
    /// The connection options.
    pub options: PeerOptions,
}

// === impl BasicPeer ===

impl BasicPeer {
    /// A peer at `address`, an `ip:port` string.
    ///
    /// # Panics
    ///
    /// If `address` is not an `ip:port`; [`try_new`](Self::try_new) returns an error instead.
    pub fn new(address: &str) -> Self {
        Self::try_new(address).expect("BasicPeer::new needs an ip:port address")
    }

    /// A peer at `address`, an `ip:port` string.
    ///
    /// # Errors
    ///
    /// [`ErrorType::SocketError`] if `address` is not an `ip:port`.
    pub fn try_new(address: &str) -> Result<Self> {
        let addr: InetSocketAddr = address.parse().or_err_with(ErrorType::SocketError, || {
            format!("bad peer address {address}")
        })?;
        Ok(Self::from_sockaddr(SocketAddr::Inet(addr)))
    }

    /// A peer at the Unix-domain socket `path`.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] if `path` cannot be a socket address (too long).
    pub fn new_uds<P: AsRef<Path>>(path: P) -> Result<Self> {
        let addr = UnixSocketAddr::from_pathname(path.as_ref())
            .or_err(ErrorType::InternalError, "while creating BasicPeer")?;
        Ok(Self::from_sockaddr(SocketAddr::Unix(addr)))
    }

    fn from_sockaddr(address: SocketAddr) -> Self {
        BasicPeer {
            _address: address,
            sni: String::new(),
            options: PeerOptions::new(),
        }
    }
}

impl Display for BasicPeer {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "addr: {}", self._address)?;
        if !self.sni.is_empty() {
            write!(f, ", sni: {}", self.sni)?;
        }
        Ok(())
    }
}

impl Peer for BasicPeer {
    fn address(&self) -> &SocketAddr {
        &self._address
    }

    fn tls(&self) -> bool {
        !self.sni.is_empty()
    }

    fn sni(&self) -> &str {
        &self.sni
    }

    fn reuse_hash(&self) -> u64 {
        let mut hasher = process_hasher();
        self._address.hash(&mut hasher);
        let tls = self.tls();
        tls.hash(&mut hasher);
        hash_options(&self.options, tls, false, &mut hasher);
        if tls {
            self.sni.hash(&mut hasher);
        }
        hasher.finish()
    }

    fn get_peer_options(&self) -> Option<&PeerOptions> {
        Some(&self.options)
    }

    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        Some(&mut self.options)
    }

    fn get_tracer(&self) -> Option<Tracer> {
        self.options.tracer.clone()
    }
}

/// Whether to speak plain HTTP or HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plaintext.
    HTTP,
    /// TLS.
    HTTPS,
}

// === impl Scheme ===

impl Scheme {
    /// [`Scheme::HTTPS`] if `tls`, else [`Scheme::HTTP`].
    pub fn from_tls_bool(tls: bool) -> Self {
        if tls {
            Scheme::HTTPS
        } else {
            Scheme::HTTP
        }
    }
}

impl Display for Scheme {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scheme::HTTP => "HTTP",
            Scheme::HTTPS => "HTTPS",
        })
    }
}

/// How to connect to a server, beyond its address.
///
/// Start from [`PeerOptions::new`] (or `Default`) and set fields; the defaults are listed with
/// each field. Defaults may change between releases.
#[non_exhaustive]
#[derive(Clone)]
pub struct PeerOptions {
    /// The local address (and port range) to connect from. Default: none, or one of the
    /// connector's `bind_to_v4`/`bind_to_v6` addresses.
    pub bind_to: Option<BindTo>,
    /// The limit on the L4 connect: TCP, Unix-domain socket or custom connector (for a proxied
    /// peer, on each of the connect to the proxy and the CONNECT exchange). Default: none.
    pub connection_timeout: Option<Duration>,
    /// The limit on establishing the whole connection, TLS included. Default: none.
    pub total_connection_timeout: Option<Duration>,
    /// The limit on each read. Default: none.
    pub read_timeout: Option<Duration>,
    /// How long an idle connection is kept for reuse; zero disables reuse. Default: none (until
    /// the server closes it or the pool evicts it).
    pub idle_timeout: Option<Duration>,
    /// The limit on each write. Default: none.
    pub write_timeout: Option<Duration>,
    /// Whether to verify the server's certificate chain. Default `true`.
    pub verify_cert: bool,
    /// Whether to check that the server's certificate matches the SNI. Default `true`.
    pub verify_hostname: bool,
    /// Another name the server's certificate may match instead of the SNI. Default: none.
    pub alternative_cn: Option<String>,
    /// The protocols offered with ALPN. Default [`ALPN::H1`].
    pub alpn: ALPN,
    /// The CA certificates to verify the server with. Default: none (the connector's).
    pub ca: Option<Arc<CaType>>,
    /// TCP keepalive probing. Default: none (off).
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// The TCP receive buffer size. Default: none (the system's).
    pub tcp_recv_buf: Option<usize>,
    /// The DSCP value of outgoing packets. Default: none.
    pub dscp: Option<u8>,
    /// How often an idle HTTP/2 connection is pinged. Default: none.
    pub h2_ping_interval: Option<Duration>,
    /// How many concurrent streams one HTTP/2 connection may carry. Default 1.
    pub max_h2_streams: usize,
    /// The initial HTTP/2 stream receive window, in bytes. Default: none (the HTTP/2 engine's).
    pub h2_stream_window_size: Option<u32>,
    /// The initial HTTP/2 connection receive window, in bytes. Default: none.
    pub h2_connection_window_size: Option<u32>,
    /// Whether an HTTP/1 response with an invalid `Content-Length` is read until close
    /// instead of rejected. Unstable. Default `false`.
    pub allow_h1_response_invalid_content_length: bool,
    /// More headers for the CONNECT request of a proxied peer. Default: none.
    pub extra_proxy_headers: BTreeMap<String, Vec<u8>>,
    /// The TLS key-exchange groups to offer, in the backend's syntax. Default: none (the
    /// backend's).
    pub curves: Option<&'static str>,
    /// Whether TLS sends a second key share when post-quantum groups are offered. Default
    /// `true`.
    pub second_keyshare: bool,
    /// Whether to use TCP Fast Open. Default `false`.
    pub tcp_fast_open: bool,
    /// Follows the connections to this peer. Default: none.
    pub tracer: Option<Tracer>,
    /// Establishes the L4 connection instead of TCP or a Unix socket. Default: none.
    pub custom_l4: Option<Arc<dyn L4Connect + Send + Sync>>,
    /// Run on every new TCP socket before it connects. Default: none.
    pub upstream_tcp_sock_tweak_hook: Option<TcpSockTweakHook>,
    /// Attaches user data to CONNECT tunnels. Default: none.
    pub proxy_digest_user_data_hook: Option<ProxyDigestUserDataHook>,
}

// === impl PeerOptions ===

impl PeerOptions {
    /// The default options.
    pub fn new() -> Self {
        PeerOptions {
            bind_to: None,
            connection_timeout: None,
            total_connection_timeout: None,
            read_timeout: None,
            idle_timeout: None,
            write_timeout: None,
            verify_cert: true,
            verify_hostname: true,
            alternative_cn: None,
            alpn: ALPN::H1,
            ca: None,
            tcp_keepalive: None,
            tcp_recv_buf: None,
            dscp: None,
            h2_ping_interval: None,
            max_h2_streams: 1,
            h2_stream_window_size: None,
            h2_connection_window_size: None,
            allow_h1_response_invalid_content_length: false,
            extra_proxy_headers: BTreeMap::new(),
            curves: None,
            second_keyshare: true,
            tcp_fast_open: false,
            tracer: None,
            custom_l4: None,
            upstream_tcp_sock_tweak_hook: None,
            proxy_digest_user_data_hook: None,
        }
    }

    /// Offers the HTTP versions from `min` to `max` with ALPN: `(1, 1)` is [`ALPN::H1`],
    /// `(2, 2)` is [`ALPN::H2`], anything else [`ALPN::H2H1`].
    pub fn set_http_version(&mut self, max: u8, min: u8) {
        self.alpn = ALPN::new(max, min);
    }
}

impl Default for PeerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PeerOptions {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        // The hooks are closures, which cannot be shown.
        f.debug_struct("PeerOptions")
            .field("bind_to", &self.bind_to)
            .field("connection_timeout", &self.connection_timeout)
            .field("total_connection_timeout", &self.total_connection_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("verify_cert", &self.verify_cert)
            .field("verify_hostname", &self.verify_hostname)
            .field("alternative_cn", &self.alternative_cn)
            .field("alpn", &self.alpn)
            .field("ca", &self.ca.as_ref().map(|ca| ca.len()))
            .field("tcp_keepalive", &self.tcp_keepalive)
            .field("tcp_recv_buf", &self.tcp_recv_buf)
            .field("dscp", &self.dscp)
            .field("h2_ping_interval", &self.h2_ping_interval)
            .field("max_h2_streams", &self.max_h2_streams)
            .field("h2_stream_window_size", &self.h2_stream_window_size)
            .field("h2_connection_window_size", &self.h2_connection_window_size)
            .field(
                "allow_h1_response_invalid_content_length",
                &self.allow_h1_response_invalid_content_length,
            )
            .field("extra_proxy_headers", &self.extra_proxy_headers.len())
            .field("curves", &self.curves)
            .field("second_keyshare", &self.second_keyshare)
            .field("tcp_fast_open", &self.tcp_fast_open)
            .field("tracer", &self.tracer)
            .field("custom_l4", &self.custom_l4)
            .finish_non_exhaustive()
    }
}

impl Display for PeerOptions {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(bind_to) = &self.bind_to {
            write!(f, "bind_to: {bind_to:?},")?;
        }
        if let Some(t) = self.connection_timeout {
            write!(f, "conn_timeout: {t:?},")?;
        }
        if let Some(t) = self.total_connection_timeout {
            write!(f, "total_conn_timeout: {t:?},")?;
        }
        if self.verify_cert {
            f.write_str("verify_cert: true,")?;
        }
        if self.verify_hostname {
            f.write_str("verify_hostname: true,")?;
        }
        if let Some(cn) = &self.alternative_cn {
            write!(f, "alt_cn: {cn},")?;
        }
        write!(f, "alpn: {},", self.alpn)?;
        if let Some(ca) = &self.ca {
            write!(f, "CA: {} certificates,", ca.len())?;
        }
        if let Some(ka) = &self.tcp_keepalive {
            write!(f, "tcp_keepalive: {ka},")?;
        }
        if let Some(interval) = self.h2_ping_interval {
            write!(f, "h2_ping_interval: {interval:?},")?;
        }
        Ok(())
    }
}

/// Hashes what of `options` matters to connection reuse (see the module docs).
fn hash_options<H: Hasher>(options: &PeerOptions, tls: bool, proxied: bool, state: &mut H) {
    options.bind_to.as_ref().and_then(|b| b.addr).hash(state);
    options.max_h2_streams.hash(state);
    if proxied {
        options.extra_proxy_headers.hash(state);
    }
    if tls {
        options.verify_cert.hash(state);
        options.verify_hostname.hash(state);
        options.alternative_cn.hash(state);
        options.ca.hash(state);
        options.curves.hash(state);
        options.second_keyshare.hash(state);
        match &options.alpn {
            ALPN::Custom(custom) => Some(custom).hash(state),
            _ => None::<&crate::protocols::CustomALPN>.hash(state),
        }
    }
}

/// An HTTP server to connect to: the peer of HTTP proxies and clients.
#[derive(Debug, Clone)]
pub struct HttpPeer {
    /// The address to connect to (the tunnel's target for a proxied peer).
    pub _address: SocketAddr,
    /// HTTP or HTTPS.
    pub scheme: Scheme,
    /// The SNI to send with TLS; empty for none (which also turns verification off).
    pub sni: String,
    /// The CONNECT proxy to tunnel through.
    pub proxy: Option<Proxy>,
    /// The client certificate and key for mutual TLS.
    pub client_cert_key: Option<Arc<CertKey>>,
    /// Keeps connections apart: peers with different group keys never share connections.
    pub group_key: u64,
    /// The connection options.
    pub options: PeerOptions,
}

// === impl HttpPeer ===

impl HttpPeer {
    /// A peer at `address` (the first address it resolves to), with TLS if `tls`.
    ///
    /// # Panics
    ///
    /// If `address` resolves to no address; [`try_new`](Self::try_new) returns an error
    /// instead.
    pub fn new<A: ToSocketAddrs>(address: A, tls: bool, sni: String) -> Self {
        Self::try_new(address, tls, sni).expect("HttpPeer::new needs a resolvable address")
    }

    /// Like [`new`](Self::new), but fails instead of panicking.
    ///
    /// # Errors
    ///
    /// [`ErrorType::SocketError`] if `address` resolves to no address.
    pub fn try_new<A: ToSocketAddrs>(address: A, tls: bool, sni: String) -> Result<Self> {
        let addr = address
            .to_socket_addrs()
            .or_err(ErrorType::SocketError, "while resolving the peer address")?
            .next()
            .ok_or_else(|| {
                Error::explain(
                    ErrorType::SocketError,
                    "the peer address resolved to nothing",
                )
            })?;
        Ok(Self::from_sockaddr(SocketAddr::Inet(addr), tls, sni))
    }

    /// A peer at the Unix-domain socket `path`.
    ///
    /// # Errors
    ///
    /// [`ErrorType::SocketError`] if `path` cannot be a socket address (too long).
    pub fn new_uds(path: &str, tls: bool, sni: String) -> Result<Self> {
        let addr = UnixSocketAddr::from_pathname(Path::new(path))
            .or_err(ErrorType::SocketError, "invalid path")?;
        Ok(Self::from_sockaddr(SocketAddr::Unix(addr), tls, sni))
    }

    /// A peer at `ip_addr:port` reached through a CONNECT tunnel of the HTTP proxy listening on
    /// the Unix-domain socket `next_hop`; `headers` are added to the CONNECT request.
    pub fn new_proxy(
        next_hop: &str,
        ip_addr: IpAddr,
        port: u16,
        tls: bool,
        sni: &str,
        headers: BTreeMap<String, Vec<u8>>,
    ) -> Self {
        let mut peer = Self::from_sockaddr(
            SocketAddr::Inet(InetSocketAddr::new(ip_addr, port)),
            tls,
            sni.to_string(),
        );
        peer.proxy = Some(Proxy {
            next_hop: PathBuf::from(next_hop).into_boxed_path(),
            host: ip_addr.to_string(),
            port,
            headers,
        });
        peer
    }

    /// A TLS peer at `address` that authenticates itself with `client_cert_key`.
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub fn new_mtls<A: ToSocketAddrs>(
        address: A,
        sni: String,
        client_cert_key: Arc<CertKey>,
    ) -> Self {
        let mut peer = Self::new(address, true, sni);
        peer.client_cert_key = Some(client_cert_key);
        peer
    }

    /// Whether the scheme is HTTPS.
    pub fn is_tls(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    fn from_sockaddr(address: SocketAddr, tls: bool, sni: String) -> Self {
        HttpPeer {
            _address: address,
            scheme: Scheme::from_tls_bool(tls),
            sni,
            proxy: None,
            client_cert_key: None,
            group_key: 0,
            options: PeerOptions::new(),
        }
    }
}

impl Display for HttpPeer {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "addr: {}, scheme: {}", self._address, self.scheme)?;
        if !self.sni.is_empty() {
            write!(f, ", sni: {}", self.sni)?;
        }
        if let Some(proxy) = &self.proxy {
            write!(f, ", proxy: {proxy}")?;
        }
        if let Some(cert) = &self.client_cert_key {
            write!(f, ", client cert: {cert}")?;
        }
        Ok(())
    }
}

impl Peer for HttpPeer {
    fn address(&self) -> &SocketAddr {
        &self._address
    }

    fn tls(&self) -> bool {
        self.is_tls()
    }

    fn sni(&self) -> &str {
        &self.sni
    }

    fn reuse_hash(&self) -> u64 {
        let mut hasher = process_hasher();
        self._address.hash(&mut hasher);
        self.scheme.hash(&mut hasher);
        self.proxy.hash(&mut hasher);
        self.group_key.hash(&mut hasher);
        let tls = self.is_tls();
        hash_options(&self.options, tls, self.proxy.is_some(), &mut hasher);
        if tls {
            self.sni.hash(&mut hasher);
            self.client_cert_key.hash(&mut hasher);
        }
        hasher.finish()
    }

    fn get_proxy(&self) -> Option<&Proxy> {
        self.proxy.as_ref()
    }

    fn get_peer_options(&self) -> Option<&PeerOptions> {
        Some(&self.options)
    }

    fn get_mut_peer_options(&mut self) -> Option<&mut PeerOptions> {
        Some(&mut self.options)
    }

    fn get_client_cert_key(&self) -> Option<&Arc<CertKey>> {
        self.client_cert_key.as_ref()
    }

    fn get_tracer(&self) -> Option<Tracer> {
        self.options.tracer.clone()
    }
}

/// An HTTP proxy that tunnels to the peer with CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Proxy {
    /// The Unix-domain socket the proxy listens on.
    pub next_hop: Box<Path>,
    /// The host to tunnel to (an IP address or a name).
    pub host: String,
    /// The port to tunnel to.
    pub port: u16,
    /// Headers to add to the CONNECT request.
    pub headers: BTreeMap<String, Vec<u8>>,
}

// === impl Proxy ===

impl Proxy {
    /// Whether `remote`, the address a socket is connected to, is this proxy.
    fn matches_addr(&self, remote: &SocketAddr) -> bool {
        remote
            .as_unix()
            .and_then(UnixSocketAddr::as_pathname)
            .is_some_and(|path| path == &*self.next_hop)
    }
}

impl Display for Proxy {
    // The headers are left out: they may carry credentials.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "next_hop: {}, host: {}, port: {}",
            self.next_hop.display(),
            self.host,
            self.port
        )
    }
}

#[cfg(test)]
mod tests;

impl<P: Peer> crate::protocols::raw_connect::ConnectPeer for P {
    fn connect_user_data_hook(&self) -> Option<&ProxyDigestUserDataHook> {
        self.proxy_digest_user_data_hook()
    }
}
