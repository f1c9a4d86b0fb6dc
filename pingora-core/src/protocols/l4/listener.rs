//! A listening socket, TCP or Unix-domain, that accepts L4 [`Stream`]s.

use std::io;
use std::os::unix::io::{AsRawFd, RawFd};

use tokio::net::{TcpListener, UnixListener};

use super::socket::SocketAddr;
use super::stream::Stream;
use crate::protocols::GetSocketDigest;

/// A bound, listening TCP or Unix-domain socket.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A Unix-domain socket listener.
    Unix(UnixListener),
}

// === impl Listener ===

impl Listener {
    /// Accepts the next connection, returning it with the address of its peer.
    ///
    /// The peer address is also recorded in the stream's socket digest, so it is not looked up
    /// again later. A Unix-domain peer is usually unnamed.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe: if it is dropped before it completes, no connection is lost.
    ///
    /// # Errors
    ///
    /// The OS error of `accept`. Some are about one connection (`ECONNABORTED`), some about the
    /// process (`EMFILE`, `ENFILE`: out of file descriptors); the listener stays usable after
    /// either kind.
    pub async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let (stream, peer) = match self {
            Listener::Tcp(l) => {
                let (stream, peer) = l.accept().await?;
                (Stream::from(stream), SocketAddr::Inet(peer))
            }
            Listener::Unix(l) => {
                let (stream, peer) = l.accept().await?;
                let peer: std::os::unix::net::SocketAddr = peer.into();
                (Stream::from(stream), SocketAddr::Unix(peer))
            }
        };
        if let Some(digest) = stream.get_socket_digest() {
            // The digest was just created with the stream, so its peer address is unset; if it
            // were set, it would hold the same address.
            let _ = digest.peer_addr.set(Some(peer.clone()));
        }
        Ok((stream, peer))
    }

    /// Accepts a connection already waiting in the accept queue, without waiting for one:
    /// `Ok(None)` when the queue is empty.
    ///
    /// Unlike [`accept`](Self::accept), this asks the kernel directly instead of relying on
    /// the runtime's readiness events, so it sees every connection queued at the moment of the
    /// call: a listener about to close uses it to serve, rather than reset, the connections
    /// the kernel has already completed. Must be called within the runtime.
    ///
    /// # Errors
    ///
    /// The OS error of `accept`, as for [`accept`](Self::accept).
    pub fn try_accept(&self) -> io::Result<Option<(Stream, SocketAddr)>> {
        let sock = match self {
            Listener::Tcp(l) => socket2::SockRef::from(l),
            Listener::Unix(l) => socket2::SockRef::from(l),
        };
        let (socket, _) = match sock.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        socket.set_nonblocking(true)?;
        let (stream, peer) = match self {
            Listener::Tcp(_) => {
                let stream = tokio::net::TcpStream::from_std(socket.into())?;
                let peer = stream.peer_addr()?;
                (Stream::from(stream), SocketAddr::Inet(peer))
            }
            Listener::Unix(_) => {
                let std_stream: std::os::unix::net::UnixStream = socket.into();
                let stream = tokio::net::UnixStream::from_std(std_stream)?;
                let peer: std::os::unix::net::SocketAddr = stream.peer_addr()?.into();
                (Stream::from(stream), SocketAddr::Unix(peer))
            }
        };
        if let Some(digest) = stream.get_socket_digest() {
            let _ = digest.peer_addr.set(Some(peer.clone()));
        }
        Ok(Some((stream, peer)))
    }

    /// The address this listener is bound to.
    ///
    /// # Errors
    ///
    /// The OS error of `getsockname`.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Listener::Tcp(l) => l.local_addr().map(SocketAddr::Inet),
            Listener::Unix(l) => {
                let addr: std::os::unix::net::SocketAddr = l.local_addr()?.into();
                Ok(SocketAddr::Unix(addr))
            }
        }
    }
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl From<UnixListener> for Listener {
    fn from(l: UnixListener) -> Self {
        Listener::Unix(l)
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Listener::Tcp(l) => l.as_raw_fd(),
            Listener::Unix(l) => l.as_raw_fd(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn accepts_tcp_with_peer_address() {
        let listener = Listener::from(TcpListener::bind("127.0.0.1:0").await.unwrap());
        let addr = listener.local_addr().unwrap();
        let inet = *addr.as_inet().unwrap();
        let client = tokio::spawn(async move {
            let mut c = tokio::net::TcpStream::connect(inet).await.unwrap();
            c.write_all(b"hi").await.unwrap();
            c.local_addr().unwrap()
        });
        let (mut stream, peer) = listener.accept().await.unwrap();
        let client_addr = client.await.unwrap();
        assert_eq!(peer, SocketAddr::Inet(client_addr));
        let digest = stream.get_socket_digest().unwrap();
        assert_eq!(digest.peer_addr(), Some(&SocketAddr::Inet(client_addr)));
        assert_eq!(digest.local_addr(), Some(&addr));
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        assert!(listener.as_raw_fd() >= 0);
    }

    #[tokio::test]
    async fn accepts_unix() {
        let dir = std::env::temp_dir().join(format!("pingora-l4-listener-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("l.sock");
        let _ = std::fs::remove_file(&path);
        let listener = Listener::from(UnixListener::bind(&path).unwrap());
        assert_eq!(
            listener.local_addr().unwrap().to_string(),
            format!("unix:{}", path.display())
        );
        let connect = tokio::net::UnixStream::connect(&path);
        let (accepted, client) = tokio::join!(listener.accept(), connect);
        let (mut stream, peer) = accepted.unwrap();
        let mut client = client.unwrap();
        assert!(peer.as_unix().is_some());
        client.write_all(b"yo").await.unwrap();
        let mut buf = [0u8; 2];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"yo");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
