//! Listening endpoints: where a service accepts connections.
//!
//! [`Listeners`] is the list of endpoints of a service, each a TCP address or a Unix-domain
//! socket path with its settings ([`ListenerConfig`]). The sockets are bound when the service
//! starts; [`Listeners::local_addrs`] tells the addresses they were bound to, which is how a
//! program (or a test) learns the port chosen for `127.0.0.1:0`.
//!
//! ```
//! use pingora_core::listeners::{ListenerConfig, Listeners, TcpSocketOptions};
//!
//! let mut listeners = Listeners::tcp("127.0.0.1:0");
//! let mut options = TcpSocketOptions::default();
//! options.so_reuseport = Some(true);
//! listeners.add_listener(ListenerConfig::tcp("[::1]:0").tcp_socket_options(options));
//! listeners.add_uds("/tmp/my_service.sock", None);
//! assert_eq!(listeners.addresses(), ["127.0.0.1:0", "[::1]:0", "/tmp/my_service.sock"]);
//! ```

pub mod connection_filter;
mod l4;
pub mod tls;
pub(crate) mod transfer_fd;

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;

use pingora_error::{Error, ErrorType, Result};
use tokio::sync::watch;

use crate::protocols::l4::listener::Listener;
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::l4::stream::Stream as L4Stream;
use crate::protocols::Stream;
use l4::ConnectionSettings;

pub use crate::protocols::l4::stream::L4BufferSettings;
pub use crate::protocols::TcpKeepalive;
pub use connection_filter::{AcceptAllFilter, ConnectionFilter};
pub use l4::{ServerAddress, TcpSocketOptions};
pub use tls::{TlsAccept, TlsAcceptCallbacks, TlsSettings};
pub use transfer_fd::Fds;

/// The shared table of listening sockets (see [`Fds`]).
pub type ListenFds = Arc<Mutex<Fds>>;

/// One listening endpoint: an address and its settings.
///
/// Settings that do not apply to the endpoint's kind (TCP options on a Unix socket,
/// permissions on a TCP address) are ignored with a warning.
///
/// ```
/// use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
/// use std::fs::Permissions;
/// use std::os::unix::fs::PermissionsExt;
///
/// let tcp = ListenerConfig::tcp("0.0.0.0:8080").l4_buffer(L4BufferSettings::default());
/// let uds = ListenerConfig::uds("/run/app.sock").permissions(Permissions::from_mode(0o600));
/// ```
#[derive(Debug)]
pub struct ListenerConfig {
    l4: ServerAddress,
    l4_buffer: Option<L4BufferSettings>,
    tls: Option<TlsSettings>,
}

/// The listening endpoints of a service.
#[derive(Debug)]
pub struct Listeners {
    endpoints: Vec<ListenerConfig>,
    local_addrs: watch::Sender<BindState>,
    filter: Option<Arc<dyn ConnectionFilter>>,
}

/// The addresses a [`Listeners`] was bound to, available once its service has started.
///
/// Get one from [`Listeners::local_addrs`] (or the listening service's `local_addrs`) before
/// the service is handed to the server.
#[derive(Debug, Clone)]
pub struct LocalAddrs {
    state: watch::Receiver<BindState>,
}

/// Where a [`Listeners`] stands with binding its endpoints.
#[derive(Debug, Clone)]
enum BindState {
    Pending,
    Bound(Vec<SocketAddr>),
    Failed(String),
}

/// A bound endpoint, shared by the tasks accepting on it.
#[derive(Clone, Debug)]
pub(crate) struct TransportStack {
    listener: Arc<Listener>,
    settings: Arc<ConnectionSettings>,
    tls: Option<Arc<tls::Acceptor>>,
    filter: Option<Arc<dyn ConnectionFilter>>,
}

/// A connection just accepted, before its per-connection setup (socket options now, the TLS
/// handshake once TLS is supported).
#[derive(Debug)]
pub(crate) struct UninitializedStream {
    l4: L4Stream,
    peer: SocketAddr,
    settings: Arc<ConnectionSettings>,
    tls: Option<Arc<tls::Acceptor>>,
    filter: Option<Arc<dyn ConnectionFilter>>,
}

// === impl ListenerConfig ===

impl ListenerConfig {
    /// A TCP endpoint at `addr`, such as `0.0.0.0:80`.
    pub fn tcp(addr: impl Into<String>) -> Self {
        ListenerConfig {
            l4: ServerAddress::Tcp(addr.into(), None),
            l4_buffer: None,
            tls: None,
        }
    }

    /// A Unix-domain socket endpoint at the path `addr`.
    pub fn uds(addr: impl Into<String>) -> Self {
        ListenerConfig {
            l4: ServerAddress::Uds(addr.into(), None),
            l4_buffer: None,
            tls: None,
        }
    }

    /// Sets the TCP socket options. Ignored, with a warning, for a Unix-domain endpoint.
    pub fn tcp_socket_options(mut self, options: TcpSocketOptions) -> Self {
        match &mut self.l4 {
            ServerAddress::Tcp(_, opt) => *opt = Some(options),
            ServerAddress::Uds(path, _) => {
                log::warn!("TCP socket options ignored for the Unix socket endpoint {path}");
            }
        }
        self
    }

    /// Sets the permissions of the socket file. Ignored, with a warning, for a TCP endpoint.
    pub fn permissions(mut self, permissions: Permissions) -> Self {
        match &mut self.l4 {
            ServerAddress::Uds(_, perm) => *perm = Some(permissions),
            ServerAddress::Tcp(addr, _) => {
                log::warn!("socket file permissions ignored for the TCP endpoint {addr}");
            }
        }
        self
    }

    /// Buffers the writes of accepted connections (see [`L4BufferSettings`]).
    ///
    /// Unset by default: connections write straight to the socket, and the protocol layers
    /// above (such as HTTP) gather their own writes.
    pub fn l4_buffer(mut self, settings: L4BufferSettings) -> Self {
        self.l4_buffer = Some(settings);
        self
    }

    /// Serves TLS on the endpoint: each accepted connection completes a TLS handshake before
    /// it reaches the service (see [`tls`]).
    pub fn tls(mut self, settings: TlsSettings) -> Self {
        self.tls = Some(settings);
        self
    }

    /// The address of the endpoint.
    pub fn address(&self) -> &ServerAddress {
        &self.l4
    }
}

impl From<ServerAddress> for ListenerConfig {
    fn from(l4: ServerAddress) -> Self {
        ListenerConfig {
            l4,
            l4_buffer: None,
            tls: None,
        }
    }
}

// === impl Listeners ===

impl Listeners {
    /// No endpoints.
    pub fn new() -> Self {
        Listeners {
            endpoints: Vec::new(),
            local_addrs: watch::Sender::new(BindState::Pending),
            filter: None,
        }
    }

    /// Sets the filter that decides, by the client's address, which connections of every
    /// endpoint (those added before and after this call) are served; see [`ConnectionFilter`].
    pub fn set_connection_filter(&mut self, filter: Arc<dyn ConnectionFilter>) {
        self.filter = Some(filter);
    }

    /// One TCP endpoint at `addr`.
    pub fn tcp(addr: &str) -> Self {
        let mut listeners = Listeners::new();
        listeners.add_tcp(addr);
        listeners
    }

    /// One Unix-domain socket endpoint at `addr`, with the permissions of its file (0o666 when
    /// `None`).
    pub fn uds(addr: &str, perm: Option<Permissions>) -> Self {
        let mut listeners = Listeners::new();
        listeners.add_uds(addr, perm);
        listeners
    }

    /// Adds a TCP endpoint at `addr`.
    pub fn add_tcp(&mut self, addr: &str) {
        self.add_listener(ListenerConfig::tcp(addr));
    }

    /// Adds a TCP endpoint at `addr` with socket options.
    pub fn add_tcp_with_settings(&mut self, addr: &str, sock_opt: TcpSocketOptions) {
        self.add_listener(ListenerConfig::tcp(addr).tcp_socket_options(sock_opt));
    }

    /// Adds a Unix-domain socket endpoint at `addr`, with the permissions of its file (0o666
    /// when `None`).
    pub fn add_uds(&mut self, addr: &str, perm: Option<Permissions>) {
        let config = ListenerConfig::uds(addr);
        self.add_listener(match perm {
            Some(perm) => config.permissions(perm),
            None => config,
        });
    }

    /// One TLS endpoint at `addr`, serving the PEM certificate chain at `cert_path` with the
    /// key at `key_path` ([`TlsSettings::intermediate`]).
    ///
    /// # Errors
    ///
    /// As [`TlsSettings::intermediate`].
    pub fn tls(addr: &str, cert_path: &str, key_path: &str) -> Result<Self> {
        let mut listeners = Listeners::new();
        listeners.add_tls(addr, cert_path, key_path)?;
        Ok(listeners)
    }

    /// Adds a TLS endpoint at `addr`, serving the PEM certificate chain at `cert_path` with
    /// the key at `key_path` ([`TlsSettings::intermediate`]).
    ///
    /// # Errors
    ///
    /// As [`TlsSettings::intermediate`]. A missing TLS backend is reported when the service
    /// starts.
    pub fn add_tls(&mut self, addr: &str, cert_path: &str, key_path: &str) -> Result<()> {
        let settings = TlsSettings::intermediate(cert_path, key_path)?;
        self.add_tls_with_settings(addr, None, settings);
        Ok(())
    }

    /// Adds a TLS endpoint at `addr` with TCP socket options and TLS settings.
    pub fn add_tls_with_settings(
        &mut self,
        addr: &str,
        sock_opt: Option<TcpSocketOptions>,
        settings: TlsSettings,
    ) {
        let config = ListenerConfig::tcp(addr).tls(settings);
        self.add_listener(match sock_opt {
            Some(opt) => config.tcp_socket_options(opt),
            None => config,
        });
    }

    /// Adds an endpoint at `addr`, serving TLS when `tls` is set.
    pub fn add_endpoint(&mut self, addr: ServerAddress, tls: Option<TlsSettings>) {
        let config = ListenerConfig::from(addr);
        self.add_listener(match tls {
            Some(tls) => config.tls(tls),
            None => config,
        });
    }

    /// Adds an endpoint at `addr`.
    pub fn add_address(&mut self, addr: ServerAddress) {
        self.add_listener(addr.into());
    }

    /// Adds an endpoint.
    pub fn add_listener(&mut self, config: ListenerConfig) {
        self.endpoints.push(config);
    }

    /// The configured addresses, as given (before binding).
    pub fn addresses(&self) -> Vec<String> {
        self.endpoints
            .iter()
            .map(|e| e.l4.as_ref().to_string())
            .collect()
    }

    /// A handle to the addresses the endpoints get bound to when the service starts, in the
    /// order the endpoints were added.
    pub fn local_addrs(&self) -> LocalAddrs {
        LocalAddrs {
            state: self.local_addrs.subscribe(),
        }
    }

    /// Binds every endpoint. Each bound socket is recorded in `fds`, when given, so it can be
    /// handed over in a graceful upgrade.
    pub(crate) async fn build(&mut self, fds: Option<ListenFds>) -> Result<Vec<TransportStack>> {
        match self.bind_all(fds).await {
            Ok(stacks) => {
                let addrs = stacks
                    .iter()
                    .filter_map(|s| s.listener.local_addr().ok())
                    .collect();
                self.local_addrs.send_replace(BindState::Bound(addrs));
                Ok(stacks)
            }
            Err(e) => {
                self.local_addrs
                    .send_replace(BindState::Failed(e.to_string()));
                Err(e)
            }
        }
    }

    async fn bind_all(&mut self, fds: Option<ListenFds>) -> Result<Vec<TransportStack>> {
        let mut stacks = Vec::with_capacity(self.endpoints.len());
        for endpoint in &mut self.endpoints {
            // Built before binding, so that bad TLS settings fail the start cleanly.
            let tls = match endpoint.tls.take() {
                Some(settings) => Some(Arc::new(settings.build().map_err(|e| {
                    e.more_context(format!("TLS settings of {}", endpoint.l4.as_ref()))
                })?)),
                None => None,
            };
            let key = endpoint.l4.as_ref();
            // During a graceful upgrade the old process's socket for this address is used
            // instead of binding a new one.
            let handed_over = fds.as_ref().and_then(|fds| fds.lock().take_received(key));
            let listener = match handed_over {
                Some(fd) => endpoint.l4.adopt(fd)?,
                None => endpoint.l4.bind().await?,
            };
            stacks.push(TransportStack {
                listener: Arc::new(listener),
                settings: Arc::new(ConnectionSettings {
                    addr: endpoint.l4.clone(),
                    l4_buffer: endpoint.l4_buffer,
                }),
                tls,
                filter: self.filter.clone(),
            });
        }
        // Recorded only once every endpoint is bound: the sockets of a failed start are
        // closed, and a later upgrade must not hand their numbers over.
        if let Some(fds) = &fds {
            use std::os::unix::io::AsRawFd;
            let mut fds = fds.lock();
            for stack in &stacks {
                fds.add(stack.as_str().to_string(), stack.listener.as_raw_fd());
            }
        }
        Ok(stacks)
    }
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners::new()
    }
}

// === impl LocalAddrs ===

impl LocalAddrs {
    /// The bound addresses, if the endpoints have been bound.
    pub fn get(&self) -> Option<Vec<SocketAddr>> {
        match &*self.state.borrow() {
            BindState::Bound(addrs) => Some(addrs.clone()),
            BindState::Pending | BindState::Failed(_) => None,
        }
    }

    /// Waits until the endpoints are bound and returns their addresses.
    ///
    /// # Errors
    ///
    /// A [`ErrorType::BindError`] if binding failed, or if the listeners were dropped without
    /// being bound (their service never started).
    pub async fn wait(&self) -> Result<Vec<SocketAddr>> {
        let mut state = self.state.clone();
        let outcome = state
            .wait_for(|s| !matches!(s, BindState::Pending))
            .await
            .map(|s| s.clone());
        match outcome {
            Ok(BindState::Bound(addrs)) => Ok(addrs),
            Ok(BindState::Failed(reason)) => Error::e_explain(ErrorType::BindError, reason),
            Ok(BindState::Pending) | Err(_) => Error::e_explain(
                ErrorType::BindError,
                "the listeners were dropped before being bound",
            ),
        }
    }
}

// === impl TransportStack ===

impl TransportStack {
    /// The address of the endpoint, as configured.
    pub(crate) fn as_str(&self) -> &str {
        self.settings.addr.as_ref()
    }

    /// Accepts a connection already queued, without waiting (see [`Listener::try_accept`]).
    pub(crate) fn try_accept(&self) -> io::Result<Option<UninitializedStream>> {
        Ok(self
            .listener
            .try_accept()?
            .map(|(l4, peer)| UninitializedStream {
                l4,
                peer,
                settings: Arc::clone(&self.settings),
                tls: self.tls.clone(),
                filter: self.filter.clone(),
            }))
    }

    /// Accepts the next connection.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, like [`Listener::accept`].
    pub(crate) async fn accept(&self) -> io::Result<UninitializedStream> {
        let (l4, peer) = self.listener.accept().await?;
        Ok(UninitializedStream {
            l4,
            peer,
            settings: Arc::clone(&self.settings),
            tls: self.tls.clone(),
            filter: self.filter.clone(),
        })
    }
}

// === impl UninitializedStream ===

impl UninitializedStream {
    /// Sets the connection up for its endpoint (TCP options, write buffer), then runs the
    /// TLS handshake if the endpoint serves TLS.
    pub(crate) async fn handshake(mut self) -> Result<Stream> {
        self.settings.apply(&mut self.l4)?;
        match self.tls {
            Some(acceptor) => {
                let span = match crate::utils::spans_wanted() {
                    true => tracing::info_span!("tls_accept"),
                    false => tracing::Span::none(),
                };
                let handshake = acceptor.handshake(Box::new(self.l4));
                if span.is_disabled() {
                    handshake.await
                } else {
                    tracing::Instrument::instrument(handshake, span).await
                }
            }
            None => Ok(Box::new(self.l4)),
        }
    }

    /// Whether the listener's [`ConnectionFilter`] (if any) lets the connection be served.
    pub(crate) async fn admitted(&self) -> bool {
        match &self.filter {
            Some(filter) => filter.should_accept(self.peer.as_inet()).await,
            None => true,
        }
    }

    /// The address of the peer.
    pub(crate) fn peer_addr(&self) -> &SocketAddr {
        &self.peer
    }
}

impl fmt::Display for LocalAddrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.state.borrow() {
            BindState::Pending => f.write_str("(not bound yet)"),
            BindState::Failed(reason) => write!(f, "(binding failed: {reason})"),
            BindState::Bound(addrs) => {
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                f.write_str(&addrs.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests;
