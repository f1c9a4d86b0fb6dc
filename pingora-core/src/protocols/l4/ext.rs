//! Socket options and lookups that tokio and socket2 do not offer: `TCP_INFO`, buffer sizes,
//! TCP Fast Open, DSCP, `SO_ORIGINAL_DST`, keepalive timings and connecting with a bound source
//! address.
#![allow(unsafe_code)]

use std::io;
use std::mem::{self, ManuallyDrop};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr as InetSocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::path::Path;
use std::time::Duration;

use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::net::{TcpSocket, TcpStream, UnixStream};

use super::socket::SocketAddr;

/// Keepalive probing of an idle TCP connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe.
    pub idle: Duration,
    /// Time between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub count: usize,
    /// How long sent data may stay unacknowledged before the connection is dropped
    /// (`TCP_USER_TIMEOUT`, Linux only; zero leaves the system default).
    pub user_timeout: Duration,
}

impl std::fmt::Display for TcpKeepalive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?}/{:?}/{}/{:?}",
            self.idle, self.interval, self.count, self.user_timeout
        )
    }
}

/// The kernel's `struct tcp_info` (Linux), as far as its fields have been stable since 4.x.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
#[allow(non_camel_case_types, missing_docs)]
pub struct TCP_INFO {
    pub tcpi_state: u8,
    pub tcpi_ca_state: u8,
    pub tcpi_retransmits: u8,
    pub tcpi_probes: u8,
    pub tcpi_backoff: u8,
    pub tcpi_options: u8,
    pub tcpi_snd_wscale_rcv_wscale: u8,
    pub tcpi_delivery_rate_app_limited: u8,
    pub tcpi_rto: u32,
    pub tcpi_ato: u32,
    pub tcpi_snd_mss: u32,
    pub tcpi_rcv_mss: u32,
    pub tcpi_unacked: u32,
    pub tcpi_sacked: u32,
    pub tcpi_lost: u32,
    pub tcpi_retrans: u32,
    pub tcpi_fackets: u32,
    pub tcpi_last_data_sent: u32,
    pub tcpi_last_ack_sent: u32,
    pub tcpi_last_data_recv: u32,
    pub tcpi_last_ack_recv: u32,
    pub tcpi_pmtu: u32,
    pub tcpi_rcv_ssthresh: u32,
    /// Smoothed round-trip time, in microseconds.
    pub tcpi_rtt: u32,
    pub tcpi_rttvar: u32,
    pub tcpi_snd_ssthresh: u32,
    pub tcpi_snd_cwnd: u32,
    pub tcpi_advmss: u32,
    pub tcpi_reordering: u32,
    pub tcpi_rcv_rtt: u32,
    pub tcpi_rcv_space: u32,
    pub tcpi_total_retrans: u32,
    pub tcpi_pacing_rate: u64,
    pub tcpi_max_pacing_rate: u64,
    pub tcpi_bytes_acked: u64,
    pub tcpi_bytes_received: u64,
    pub tcpi_segs_out: u32,
    pub tcpi_segs_in: u32,
    pub tcpi_notsent_bytes: u32,
    pub tcpi_min_rtt: u32,
    pub tcpi_data_segs_in: u32,
    pub tcpi_data_segs_out: u32,
    pub tcpi_delivery_rate: u64,
}

fn getsockopt<T: Copy + Default>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value = T::default();
    let mut len = mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `value` is a valid, writable `T` of `len` bytes for the kernel to fill; the kernel
    // never writes more than `len` bytes.
    let ret = unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut T).cast(), &mut len) };
    if ret == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

fn setsockopt<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    // SAFETY: `value` is a valid `T` that the kernel reads `size_of::<T>()` bytes from.
    let ret = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The kernel's TCP statistics of a socket.
pub fn get_tcp_info(fd: RawFd) -> io::Result<TCP_INFO> {
    getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO)
}

/// Sets the receive buffer size (`SO_RCVBUF`).
pub fn set_recv_buf(fd: RawFd, size: usize) -> Result<()> {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size)
        .or_err(ErrorType::SocketError, "failed to set SO_RCVBUF")
}

/// The receive buffer size (`SO_RCVBUF`).
pub fn get_recv_buf(fd: RawFd) -> io::Result<usize> {
    getsockopt::<libc::c_int>(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).map(|v| v.max(0) as usize)
}

/// Sets the send buffer size (`SO_SNDBUF`).
pub fn set_snd_buf(fd: RawFd, size: usize) -> Result<()> {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF, size)
        .or_err(ErrorType::SocketError, "failed to set SO_SNDBUF")
}

/// The send buffer size (`SO_SNDBUF`).
pub fn get_snd_buf(fd: RawFd) -> io::Result<usize> {
    getsockopt::<libc::c_int>(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).map(|v| v.max(0) as usize)
}

/// Lets `connect` send data in the SYN (TCP Fast Open, client side).
pub fn set_tcp_fastopen_connect(fd: RawFd) -> Result<()> {
    setsockopt::<libc::c_int>(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT, 1)
        .or_err(ErrorType::SocketError, "failed to set TCP_FASTOPEN_CONNECT")
}

/// Accepts TCP Fast Open on a listening socket, with a queue of `backlog` pending opens.
pub fn set_tcp_fastopen_backlog(fd: RawFd, backlog: usize) -> Result<()> {
    let backlog = libc::c_int::try_from(backlog).unwrap_or(libc::c_int::MAX);
    setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_FASTOPEN, backlog)
        .or_err(ErrorType::SocketError, "failed to set TCP_FASTOPEN")
}

/// Sets the DSCP bits of outgoing packets (`IP_TOS` or `IPV6_TCLASS`).
pub fn set_dscp(fd: RawFd, dscp: u8) -> Result<()> {
    let tos = libc::c_int::from(dscp) << 2;
    let is_v6 = matches!(
        local_addr(fd),
        Some(SocketAddr::Inet(InetSocketAddr::V6(_)))
    );
    let result = if is_v6 {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, tos)
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_TOS, tos)
    };
    result.or_err(ErrorType::SocketError, "failed to set DSCP")
}

/// The kernel's unique cookie of a socket (`SO_COOKIE`).
pub fn get_socket_cookie(fd: RawFd) -> io::Result<u64> {
    getsockopt(fd, libc::SOL_SOCKET, libc::SO_COOKIE)
}

/// `IP6T_SO_ORIGINAL_DST` from `linux/netfilter_ipv6/ip6_tables.h`.
const IP6T_SO_ORIGINAL_DST: libc::c_int = 80;

/// The address a client connected to before an iptables redirect (`SO_ORIGINAL_DST`).
/// `Ok(None)` when the socket was not redirected or the lookup is not supported.
pub fn get_original_dest(fd: RawFd) -> io::Result<Option<InetSocketAddr>> {
    match local_addr(fd) {
        Some(SocketAddr::Inet(InetSocketAddr::V4(_))) => {
            match getsockopt::<SockaddrIn>(fd, libc::SOL_IP, libc::SO_ORIGINAL_DST) {
                Ok(raw) => Ok(Some(raw.to_std())),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(None),
                Err(e) => Err(e),
            }
        }
        Some(SocketAddr::Inet(InetSocketAddr::V6(_))) => {
            match getsockopt::<SockaddrIn6>(fd, libc::SOL_IPV6, IP6T_SO_ORIGINAL_DST) {
                Ok(raw) => Ok(Some(raw.to_std())),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
                Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(None),
                Err(e) => Err(e),
            }
        }
        _ => Ok(None),
    }
}

/// `sockaddr_in` with `Default`, for `getsockopt`.
#[repr(transparent)]
#[derive(Clone, Copy)]
struct SockaddrIn(libc::sockaddr_in);

impl Default for SockaddrIn {
    fn default() -> Self {
        // SAFETY: `sockaddr_in` is plain old data; all zeroes is a valid value.
        SockaddrIn(unsafe { mem::zeroed() })
    }
}

impl SockaddrIn {
    fn to_std(self) -> InetSocketAddr {
        let ip = Ipv4Addr::from(u32::from_be(self.0.sin_addr.s_addr));
        InetSocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(self.0.sin_port)))
    }
}

/// `sockaddr_in6` with `Default`, for `getsockopt`.
#[repr(transparent)]
#[derive(Clone, Copy)]
struct SockaddrIn6(libc::sockaddr_in6);

impl Default for SockaddrIn6 {
    fn default() -> Self {
        // SAFETY: `sockaddr_in6` is plain old data; all zeroes is a valid value.
        SockaddrIn6(unsafe { mem::zeroed() })
    }
}

impl SockaddrIn6 {
    fn to_std(self) -> InetSocketAddr {
        let ip = Ipv6Addr::from(self.0.sin6_addr.s6_addr);
        InetSocketAddr::V6(SocketAddrV6::new(
            ip,
            u16::from_be(self.0.sin6_port),
            self.0.sin6_flowinfo,
            self.0.sin6_scope_id,
        ))
    }
}

/// Turns keepalive probing on with the given timings.
pub fn set_tcp_keepalive(stream: &TcpStream, ka: &TcpKeepalive) -> Result<()> {
    let fd = stream.as_raw_fd();
    let secs = |d: Duration| libc::c_int::try_from(d.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    let count = libc::c_int::try_from(ka.count.max(1)).unwrap_or(libc::c_int::MAX);
    let apply = || -> io::Result<()> {
        setsockopt::<libc::c_int>(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs(ka.idle))?;
        setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_KEEPINTVL,
            secs(ka.interval),
        )?;
        setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, count)?;
        if !ka.user_timeout.is_zero() {
            let ms =
                libc::c_uint::try_from(ka.user_timeout.as_millis()).unwrap_or(libc::c_uint::MAX);
            setsockopt(fd, libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms)?;
        }
        Ok(())
    };
    apply().or_err(ErrorType::SocketError, "failed to set TCP keepalive")
}

/// The address of the other end of a socket.
pub fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    addr_of(fd, true)
}

/// The address of our end of a socket.
pub fn local_addr(fd: RawFd) -> Option<SocketAddr> {
    addr_of(fd, false)
}

fn addr_of(fd: RawFd, peer: bool) -> Option<SocketAddr> {
    if fd < 0 {
        return None;
    }
    let mut storage: libc::sockaddr_storage =
        // SAFETY: `sockaddr_storage` is plain old data; all zeroes is a valid value.
        unsafe { mem::zeroed() };
    let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let storage_ptr = (&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
    // SAFETY: `storage` is large enough for any socket address and `len` says so.
    let ret = unsafe {
        if peer {
            libc::getpeername(fd, storage_ptr, &mut len)
        } else {
            libc::getsockname(fd, storage_ptr, &mut len)
        }
    };
    if ret != 0 {
        return None;
    }
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a `sockaddr_in`.
            let raw = unsafe { *(storage_ptr as *const libc::sockaddr_in) };
            Some(SocketAddr::Inet(SockaddrIn(raw).to_std()))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a `sockaddr_in6`.
            let raw = unsafe { *(storage_ptr as *const libc::sockaddr_in6) };
            Some(SocketAddr::Inet(SockaddrIn6(raw).to_std()))
        }
        libc::AF_UNIX => {
            // std builds Unix addresses (named or not) only from a socket, so borrow the fd as
            // one without taking ownership.
            // SAFETY: the fd is a valid Unix socket for the duration of this call and the
            // ManuallyDrop keeps it from being closed.
            let sock =
                ManuallyDrop::new(unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) });
            let addr = if peer {
                sock.peer_addr()
            } else {
                sock.local_addr()
            };
            addr.ok().map(SocketAddr::Unix)
        }
        _ => None,
    }
}

/// Connects to `addr` over TCP, binding the source address to `bind_to` first when given.
///
/// A bound source address uses `IP_BIND_ADDRESS_NO_PORT`, so the port is chosen at connect time
/// and the 4-tuple rather than the source port alone needs to be unique. Errors are mapped to
/// [`ErrorType::ConnectRefused`], [`ErrorType::ConnectTimedout`],
/// [`ErrorType::ConnectNoRoute`], [`ErrorType::BindError`] or [`ErrorType::ConnectError`].
pub async fn connect(addr: &InetSocketAddr, bind_to: Option<&InetSocketAddr>) -> Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .or_err(ErrorType::SocketError, "failed to create socket")?;
    if let Some(bind_to) = bind_to {
        let _ = setsockopt::<libc::c_int>(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            1,
        );
        socket
            .bind(*bind_to)
            .or_err_with(ErrorType::BindError, || {
                format!("failed to bind to {bind_to}")
            })?;
    }
    socket
        .connect(*addr)
        .await
        .map_err(|e| map_connect_error(e, &addr.to_string()))
}

/// Connects to the Unix-domain socket at `path`.
pub async fn connect_uds(path: &Path) -> Result<UnixStream> {
    UnixStream::connect(path)
        .await
        .map_err(|e| map_connect_error(e, &path.display().to_string()))
}

/// Classifies an OS error from `connect`.
pub(crate) fn map_connect_error(e: io::Error, target: &str) -> pingora_error::BError {
    let etype = match e.kind() {
        io::ErrorKind::ConnectionRefused => ErrorType::ConnectRefused,
        io::ErrorKind::TimedOut => ErrorType::ConnectTimedout,
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::AddrInUse => ErrorType::BindError,
        _ => match e.raw_os_error() {
            Some(libc::ENETUNREACH) | Some(libc::EHOSTUNREACH) => ErrorType::ConnectNoRoute,
            Some(libc::ENOENT) => ErrorType::ConnectRefused,
            _ => ErrorType::ConnectError,
        },
    };
    Error::because(etype, format!("while connecting to {target}"), e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn addresses_and_info() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = connect(&addr, None).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let fd = client.as_raw_fd();
        assert_eq!(peer_addr(fd), Some(SocketAddr::Inet(addr)));
        assert_eq!(local_addr(server.as_raw_fd()), Some(SocketAddr::Inet(addr)));
        let info = get_tcp_info(fd).unwrap();
        assert_eq!(info.tcpi_state, 1, "TCP_ESTABLISHED");
        set_recv_buf(fd, 65536).unwrap();
        assert!(get_recv_buf(fd).unwrap() >= 65536);
        set_snd_buf(fd, 65536).unwrap();
        assert!(get_snd_buf(fd).unwrap() >= 65536);
        set_dscp(fd, 46).unwrap();
        assert!(get_socket_cookie(fd).unwrap() > 0);
        assert_eq!(get_original_dest(server.as_raw_fd()).unwrap(), None);
        let ka = TcpKeepalive {
            idle: Duration::from_secs(60),
            interval: Duration::from_secs(5),
            count: 5,
            user_timeout: Duration::from_secs(85),
        };
        set_tcp_keepalive(&client, &ka).unwrap();
        let idle: libc::c_int = getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE).unwrap();
        assert_eq!(idle, 60);
    }

    #[tokio::test]
    async fn connect_errors_are_classified() {
        // Bind then drop a listener to find a port with nothing listening.
        let addr = {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            listener.local_addr().unwrap()
        };
        let err = connect(&addr, None).await.unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ConnectRefused);

        let bad_bind: InetSocketAddr = "192.0.2.1:0".parse().unwrap();
        let err = connect(&addr, Some(&bad_bind)).await.unwrap_err();
        assert_eq!(err.etype(), &ErrorType::BindError);

        let err = connect_uds(Path::new("/nonexistent/sock"))
            .await
            .unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ConnectRefused);
    }

    #[tokio::test]
    async fn unix_addresses() {
        let dir = std::env::temp_dir().join(format!("pingora-ext-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let client = connect_uds(&path).await.unwrap();
        let (_server, _) = listener.accept().await.unwrap();
        let peer = peer_addr(client.as_raw_fd()).unwrap();
        assert_eq!(peer.to_string(), format!("unix:{}", path.display()));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
