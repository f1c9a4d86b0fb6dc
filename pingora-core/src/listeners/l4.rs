//! L4 endpoints: listen addresses, TCP socket options, binding and per-connection settings.

use std::fs::Permissions;
use std::io;
use std::net::SocketAddr as InetSocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::time::Duration;

use pingora_error::{Error, ErrorType, OrErr, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::protocols::l4::ext::{set_dscp, set_recv_buf, set_snd_buf, set_tcp_fastopen_backlog};
use crate::protocols::l4::listener::Listener;
use crate::protocols::l4::stream::{L4BufferSettings, Stream};
use crate::protocols::TcpKeepalive;

/// The accept queue length asked of the kernel (capped by `net.core.somaxconn`).
const LISTENER_BACKLOG: i32 = 65535;

/// How long a TCP bind keeps retrying while its address is in use, as during a restart while
/// the old process still holds the port.
pub(crate) const TCP_BIND_RETRY: BindRetry = BindRetry {
    attempts: 30,
    interval: Duration::from_secs(1),
};

/// The address of a listening endpoint.
#[derive(Clone, Debug)]
pub enum ServerAddress {
    /// A TCP address such as `0.0.0.0:80` or `[::1]:8080` (host names are resolved, the first
    /// result is used), with its socket options.
    Tcp(String, Option<TcpSocketOptions>),
    /// The path of a Unix-domain socket, with the permissions of the socket file (0o666 when
    /// `None`).
    Uds(String, Option<Permissions>),
}

/// Options of a listening TCP socket and of the connections it accepts.
///
/// ```
/// use pingora_core::listeners::TcpSocketOptions;
///
/// let mut options = TcpSocketOptions::default();
/// options.tcp_fastopen = Some(10);
/// options.so_reuseport = Some(true);
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpSocketOptions {
    /// `IPV6_V6ONLY`: whether an IPv6 socket accepts IPv6 connections only. Binding `[::]`
    /// accepts IPv4 as well on most systems unless this is `true`. Ignored for IPv4 addresses.
    pub ipv6_only: Option<bool>,
    /// Accept TCP Fast Open, with this many pending fast opens queued (`TCP_FASTOPEN`).
    pub tcp_fastopen: Option<usize>,
    /// Probe idle accepted connections with TCP keepalive.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// The DSCP value of outgoing packets (RFC 2474), on the listener and accepted connections.
    pub dscp: Option<u8>,
    /// `SO_REUSEPORT`: let several sockets bind the same address and port, the kernel spreading
    /// connections between them.
    pub so_reuseport: Option<bool>,
    /// The send buffer size (`SO_SNDBUF`) of accepted connections. Set on the listening
    /// socket, whose connections inherit it.
    pub tcp_snd_buf: Option<usize>,
    /// The receive buffer size (`SO_RCVBUF`) of accepted connections. Set on the listening
    /// socket before it listens, so the TCP window scale matches it.
    pub tcp_recv_buf: Option<usize>,
}

/// How often a TCP bind is retried while its address is in use.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BindRetry {
    /// Attempts in total, the first included.
    pub(crate) attempts: usize,
    /// The pause between attempts.
    pub(crate) interval: Duration,
}

/// The settings applied to each connection an endpoint accepts.
#[derive(Debug)]
pub(crate) struct ConnectionSettings {
    pub(crate) addr: ServerAddress,
    /// The L4 write buffer; `None` leaves the stream unbuffered.
    pub(crate) l4_buffer: Option<L4BufferSettings>,
}

// === impl ServerAddress ===

impl AsRef<str> for ServerAddress {
    fn as_ref(&self) -> &str {
        match self {
            ServerAddress::Tcp(addr, _) | ServerAddress::Uds(addr, _) => addr,
        }
    }
}

impl ServerAddress {
    /// The TCP socket options, if this is a TCP address that has some.
    pub(crate) fn tcp_sock_opts(&self) -> Option<&TcpSocketOptions> {
        match self {
            ServerAddress::Tcp(_, opt) => opt.as_ref(),
            ServerAddress::Uds(..) => None,
        }
    }

    /// Makes a listener of a socket already listening on this address, handed over by the
    /// previous server process during a graceful upgrade.
    ///
    /// # Errors
    ///
    /// A [`ErrorType::BindError`] if the socket is not a listening socket of this address's
    /// kind (TCP or Unix-domain).
    pub(crate) fn adopt(&self, fd: OwnedFd) -> Result<Listener> {
        let addr = self.as_ref();
        let socket = Socket::from(fd);
        let adopt_err =
            |what: &str| format!("cannot use the socket handed over for {addr}: {what}");
        let local = socket
            .local_addr()
            .or_err_with(ErrorType::BindError, || adopt_err("getsockname() failed"))?;
        let listening = socket
            .is_listener()
            .or_err_with(ErrorType::BindError, || adopt_err("getsockopt() failed"))?;
        let kind_matches = match self {
            ServerAddress::Tcp(..) => local.is_ipv4() || local.is_ipv6(),
            ServerAddress::Uds(..) => local.is_unix(),
        };
        if !kind_matches || !listening {
            return Error::e_explain(
                ErrorType::BindError,
                adopt_err("it is not a listening socket of the expected kind"),
            );
        }
        socket
            .set_nonblocking(true)
            .or_err_with(ErrorType::BindError, || {
                adopt_err("cannot make it non-blocking")
            })?;
        let listener: Listener = match self {
            ServerAddress::Tcp(..) => tokio::net::TcpListener::from_std(socket.into())
                .or_err_with(ErrorType::BindError, || {
                    adopt_err("cannot register it with the runtime")
                })?
                .into(),
            ServerAddress::Uds(..) => {
                let std_listener: std::os::unix::net::UnixListener = socket.into();
                tokio::net::UnixListener::from_std(std_listener)
                    .or_err_with(ErrorType::BindError, || {
                        adopt_err("cannot register it with the runtime")
                    })?
                    .into()
            }
        };
        log::info!("took over the listening socket of {addr} from the old process");
        Ok(listener)
    }

    /// Binds a listening socket on this address.
    pub(crate) async fn bind(&self) -> Result<Listener> {
        match self {
            ServerAddress::Tcp(addr, opt) => bind_tcp(addr, opt.as_ref(), TCP_BIND_RETRY).await,
            ServerAddress::Uds(path, perm) => bind_uds(path, perm.as_ref()),
        }
    }
}

// === impl ConnectionSettings ===

impl ConnectionSettings {
    /// Applies the endpoint's settings to a connection it accepted: `TCP_NODELAY` always (for
    /// TCP), then keepalive, DSCP and the L4 write buffer when configured.
    pub(crate) fn apply(&self, stream: &mut Stream) -> Result<()> {
        stream.set_nodelay()?;
        if let Some(opt) = self.addr.tcp_sock_opts() {
            if let Some(ka) = &opt.tcp_keepalive {
                stream.set_keepalive(ka)?;
            }
            if let Some(dscp) = opt.dscp {
                set_dscp(stream.as_raw_fd(), dscp)?;
            }
        }
        if let Some(buffer) = self.l4_buffer {
            stream.set_buffer(buffer);
        }
        Ok(())
    }
}

/// Binds a TCP listener on `addr`, retrying per `retry` while the address is in use.
pub(crate) async fn bind_tcp(
    addr: &str,
    opt: Option<&TcpSocketOptions>,
    retry: BindRetry,
) -> Result<Listener> {
    let sock_addr = tokio::net::lookup_host(addr)
        .await
        .or_err_with(ErrorType::BindError, || {
            format!("invalid listen address {addr}")
        })?
        .next()
        .ok_or_else(|| {
            Error::explain(
                ErrorType::BindError,
                format!("listen address {addr} resolves to no address"),
            )
        })?;
    let mut attempt = 1;
    loop {
        let socket = new_tcp_socket(sock_addr, opt)
            .map_err(|e| e.more_context(format!("while binding {addr}")))?;
        match socket.bind(&sock_addr.into()) {
            Ok(()) => return listen_tcp(socket, opt, addr),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && attempt < retry.attempts => {
                log::warn!(
                    "{addr} is in use, trying again in {:?} (attempt {attempt} of {})",
                    retry.interval,
                    retry.attempts
                );
                attempt += 1;
                tokio::time::sleep(retry.interval).await;
            }
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                return Err(e).or_err_with(ErrorType::BindError, || {
                    format!("cannot bind {addr}: still in use after {attempt} attempts")
                });
            }
            Err(e) => {
                return Err(e).or_err_with(ErrorType::BindError, || format!("cannot bind {addr}"));
            }
        }
    }
}

/// A TCP socket for `addr` with the options that must be set before `bind`.
fn new_tcp_socket(addr: InetSocketAddr, opt: Option<&TcpSocketOptions>) -> Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .or_err(ErrorType::BindError, "cannot create a TCP socket")?;
    // Like `std::net::TcpListener::bind`: lets a restarted server bind while connections of
    // the previous one linger in TIME_WAIT.
    socket
        .set_reuse_address(true)
        .or_err(ErrorType::BindError, "cannot set SO_REUSEADDR")?;
    let Some(opt) = opt else {
        return Ok(socket);
    };
    if let Some(v6_only) = opt.ipv6_only {
        if addr.is_ipv6() {
            socket
                .set_only_v6(v6_only)
                .or_err(ErrorType::BindError, "cannot set IPV6_V6ONLY")?;
        } else {
            log::warn!("ipv6_only ignored for the IPv4 listen address {addr}");
        }
    }
    if let Some(reuse_port) = opt.so_reuseport {
        socket
            .set_reuse_port(reuse_port)
            .or_err(ErrorType::BindError, "cannot set SO_REUSEPORT")?;
    }
    // Accepted connections inherit the buffer sizes; the receive buffer must be set before
    // `listen` for the window scale to match it.
    if let Some(size) = opt.tcp_recv_buf {
        set_recv_buf(socket.as_raw_fd(), size)?;
    }
    if let Some(size) = opt.tcp_snd_buf {
        set_snd_buf(socket.as_raw_fd(), size)?;
    }
    Ok(socket)
}

/// Finishes a bound TCP socket: TCP Fast Open, DSCP, `listen`, and hands it to Tokio.
fn listen_tcp(socket: Socket, opt: Option<&TcpSocketOptions>, addr: &str) -> Result<Listener> {
    if let Some(opt) = opt {
        if let Some(backlog) = opt.tcp_fastopen {
            set_tcp_fastopen_backlog(socket.as_raw_fd(), backlog)?;
        }
        if let Some(dscp) = opt.dscp {
            set_dscp(socket.as_raw_fd(), dscp)?;
        }
    }
    socket
        .listen(LISTENER_BACKLOG)
        .or_err_with(ErrorType::BindError, || {
            format!("listen() failed on {addr}")
        })?;
    socket.set_nonblocking(true).or_err(
        ErrorType::BindError,
        "cannot make the listener non-blocking",
    )?;
    let listener = tokio::net::TcpListener::from_std(socket.into()).or_err(
        ErrorType::BindError,
        "cannot register the listener with the runtime",
    )?;
    Ok(listener.into())
}

/// Binds a Unix-domain listener at `path`, replacing any stale socket file there, and sets the
/// file's permissions (0o666 by default).
pub(crate) fn bind_uds(path: &str, perm: Option<&Permissions>) -> Result<Listener> {
    // A socket file left by an earlier process would make `bind` fail.
    match std::fs::remove_file(path) {
        Ok(()) => log::debug!("removed the old socket file {path}"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => log::warn!("cannot remove the old socket file {path}: {e}"),
    }
    let bind_err = |what: &str| format!("cannot bind {path}: {what}");
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)
        .or_err_with(ErrorType::BindError, || bind_err("cannot create a socket"))?;
    let sock_addr =
        SockAddr::unix(path).or_err_with(ErrorType::BindError, || bind_err("invalid path"))?;
    socket
        .bind(&sock_addr)
        .or_err_with(ErrorType::BindError, || bind_err("bind() failed"))?;
    // Set before `listen`, so nobody connects while the permissions are still the umask's.
    let perm = perm
        .cloned()
        .unwrap_or_else(|| Permissions::from_mode(0o666));
    if let Err(e) = std::fs::set_permissions(path, perm) {
        let _ = std::fs::remove_file(path);
        return Error::e_because(ErrorType::BindError, bind_err("cannot set permissions"), e);
    }
    socket
        .listen(LISTENER_BACKLOG)
        .or_err_with(ErrorType::BindError, || bind_err("listen() failed"))?;
    socket
        .set_nonblocking(true)
        .or_err_with(ErrorType::BindError, || {
            bind_err("cannot make it non-blocking")
        })?;
    let std_listener: std::os::unix::net::UnixListener = socket.into();
    let listener = tokio::net::UnixListener::from_std(std_listener)
        .or_err_with(ErrorType::BindError, || {
            bind_err("cannot register with the runtime")
        })?;
    Ok(listener.into())
}

#[cfg(test)]
mod tests;
