//! Establishing L4 connections: TCP, Unix-domain sockets, custom transports and CONNECT
//! tunnels.

use std::hash::BuildHasher;
use std::net::SocketAddr as InetSocketAddr;
use std::os::unix::io::AsRawFd;

use log::debug;
use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::net::{TcpSocket, TcpStream};

use super::{raw_connect, sys};
use crate::protocols::l4::ext::{
    self, connect_uds, set_dscp, set_recv_buf, set_tcp_fastopen_connect,
};
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::l4::stream::Stream as L4Stream;
use crate::protocols::{GetSocketDigest, SocketDigest, Stream};
use crate::upstreams::peer::Peer;

pub use crate::protocols::l4::connect::{BindTo, Connect};

/// `IP_LOCAL_PORT_RANGE` (Linux 6.3+), from `linux/in.h`.
const IP_LOCAL_PORT_RANGE: libc::c_int = 51;

/// Connects to `peer` at L4: through its CONNECT proxy, with its custom connector, or over
/// TCP (from `bind_to`) or a Unix-domain socket. Applies the peer's socket options and records
/// the socket digest. Bounded by the peer's `connection_timeout`.
pub(crate) async fn connect<P>(peer: &P, bind_to: Option<BindTo>) -> Result<Stream>
where
    P: Peer + Send + Sync,
{
    if peer.get_proxy().is_some() {
        return proxy_connect(peer)
            .await
            .map_err(|e| e.more_context(format!("while tunnelling through the proxy of {peer}")));
    }
    let address = peer.address();
    let mut stream =
        if let Some(custom) = peer.get_peer_options().and_then(|o| o.custom_l4.as_ref()) {
            with_timeout(peer, custom.connect(address)).await?
        } else {
            match address {
                SocketAddr::Inet(addr) => {
                    let tcp = with_timeout(peer, tcp_connect(peer, addr, bind_to.as_ref())).await?;
                    L4Stream::from(tcp)
                }
                SocketAddr::Unix(addr) => {
                    let path = addr.as_pathname().ok_or_else(|| {
                        Error::explain(
                            ErrorType::InternalError,
                            "cannot connect to an unnamed socket",
                        )
                    })?;
                    L4Stream::from(with_timeout(peer, connect_uds(path)).await?)
                }
            }
        };
    finish(&mut stream, peer, address)?;
    debug!("connected to {peer}");
    Ok(Box::new(stream))
}

/// Applies `peer`'s settings to a new connection and records its socket digest, whose remote
/// address is known already. A virtual stream gets its options as
/// [`VirtualSockOpt`](crate::protocols::l4::virt::VirtualSockOpt)s and a digest with no file
/// descriptor (`-1`), which knows only the remote address; the pool checks reuse against it.
fn finish<P: Peer>(stream: &mut L4Stream, peer: &P, remote: &SocketAddr) -> Result<()> {
    if let Some(ka) = peer.tcp_keepalive() {
        stream.set_keepalive(ka)?;
    }
    stream.set_nodelay()?;
    let digest = SocketDigest::from_raw_fd(stream.as_raw_fd());
    let _ = digest.peer_addr.set(Some(remote.clone()));
    stream.set_socket_digest(digest);
    if let Some(tracer) = peer.get_tracer() {
        tracer.0.on_connected();
    }
    Ok(())
}

/// Runs `connect` within the peer's `connection_timeout`.
async fn with_timeout<P, F, T>(peer: &P, connect: F) -> Result<T>
where
    P: Peer,
    F: std::future::Future<Output = Result<T>>,
{
    match peer.connection_timeout() {
        Some(limit) => pingora_timeout::timeout(limit, connect)
            .await
            .map_err(|_| {
                Error::explain(
                    ErrorType::ConnectTimedout,
                    format!("timed out after {limit:?} connecting to {peer}"),
                )
            })?,
        None => connect.await,
    }
}

/// Connects over TCP with the peer's socket options, from `bind_to` if given.
async fn tcp_connect<P: Peer>(
    peer: &P,
    addr: &InetSocketAddr,
    bind_to: Option<&BindTo>,
) -> Result<TcpStream> {
    let port_range = bind_to.and_then(BindTo::port_range);
    match try_tcp_connect(peer, addr, bind_to, port_range).await {
        Err(e)
            if e.etype() == &ErrorType::BindError && bind_to.is_some_and(BindTo::will_fallback) =>
        {
            debug!("no free local port in {port_range:?}, connecting without the range: {e}");
            try_tcp_connect(peer, addr, bind_to, None).await
        }
        result => result,
    }
}

async fn try_tcp_connect<P: Peer>(
    peer: &P,
    addr: &InetSocketAddr,
    bind_to: Option<&BindTo>,
    port_range: Option<(u16, u16)>,
) -> Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .or_err(ErrorType::SocketError, "failed to create socket")?;
    let fd = socket.as_raw_fd();
    if let Some(local) = bind_to.and_then(|b| b.addr) {
        if local.port() == 0 {
            // Choose the port at connect time, so that only the 4-tuple must be unique.
            let _ = sys::set_int_option(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
        }
        if let Some((low, high)) = port_range {
            let range = libc::c_int::from(low) | (libc::c_int::from(high) << 16);
            if let Err(e) = sys::set_int_option(fd, libc::IPPROTO_IP, IP_LOCAL_PORT_RANGE, range) {
                debug!("IP_LOCAL_PORT_RANGE not applied: {e}");
            }
        }
        socket.bind(local).map_err(|e| {
            Error::because(
                ErrorType::BindError,
                format!("failed to bind to {local}"),
                e,
            )
        })?;
    }
    if peer.tcp_fast_open() {
        set_tcp_fastopen_connect(fd)?;
    }
    if let Some(size) = peer.tcp_recv_buf() {
        set_recv_buf(fd, size)?;
    }
    if let Some(dscp) = peer.dscp() {
        set_dscp(fd, dscp)?;
    }
    if let Some(hook) = peer.upstream_tcp_sock_tweak_hook() {
        hook(&socket)?;
    }
    socket
        .connect(*addr)
        .await
        // A bound source with no free port left is a `BindError`.
        .map_err(|e| ext::map_connect_error(e, &addr.to_string()))
}

/// Opens a CONNECT tunnel through the peer's proxy, reached over its Unix-domain socket.
async fn proxy_connect<P: Peer>(peer: &P) -> Result<Stream> {
    let Some(proxy) = peer.get_proxy() else {
        return Error::e_explain(ErrorType::InternalError, "peer has no proxy");
    };
    let next_hop = with_timeout(peer, connect_uds(&proxy.next_hop)).await?;
    let mut stream = L4Stream::from(next_hop);
    let remote = std::os::unix::net::SocketAddr::from_pathname(&proxy.next_hop)
        .or_err(ErrorType::InternalError, "invalid proxy path")?;
    finish(&mut stream, peer, &SocketAddr::Unix(remote))?;

    let extra = peer.get_peer_options().map(|o| &o.extra_proxy_headers);
    let headers = proxy.headers.iter().chain(extra.into_iter().flatten());
    let request = raw_connect::generate_connect_header(&proxy.host, proxy.port, headers)?;
    let exchange = raw_connect::connect(Box::new(stream), &request, peer);
    let (mut stream, digest) = with_timeout(peer, exchange).await.map_err(|mut e| {
        // A failed tunnel says nothing about a reused connection: never retry as if it did.
        e.retry.decide_reuse(false);
        e
    })?;
    debug!("CONNECT tunnel established through {proxy}");
    stream.set_proxy_digest(digest);
    Ok(stream)
}

/// The source address for a connection to `peer`: the peer's own `bind_to` if it names an
/// address, else one picked at random from the connector's list for the peer's IP family.
pub(crate) fn bind_to_random<P: Peer>(
    peer: &P,
    v4: &[InetSocketAddr],
    v6: &[InetSocketAddr],
) -> Option<BindTo> {
    let mut bind_to = peer.bind_to().cloned();
    if bind_to.as_ref().is_some_and(|b| b.addr.is_some()) || peer.get_proxy().is_some() {
        return bind_to;
    }
    let candidates = match peer.address() {
        SocketAddr::Inet(InetSocketAddr::V4(_)) => v4,
        SocketAddr::Inet(InetSocketAddr::V6(_)) => v6,
        SocketAddr::Unix(_) => return bind_to,
    };
    let addr = match candidates {
        [] => return bind_to,
        [only] => *only,
        many => {
            // Each `RandomState` is seeded differently, which makes a cheap random index.
            let pick = std::hash::RandomState::new().hash_one(0u8) as usize % many.len();
            many[pick]
        }
    };
    bind_to.get_or_insert_with(BindTo::default).addr = Some(addr);
    bind_to
}
