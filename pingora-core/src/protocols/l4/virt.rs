//! Virtual L4 sockets: connections that are not kernel sockets.
//!
//! Anything that moves bytes both ways (an in-process pipe, a tunnel multiplexed over another
//! connection, a userspace network stack) can carry the protocols above L4 once it implements
//! [`VirtualSocket`]. Wrap it in a [`VirtualSocketStream`] and turn that into an L4
//! [`Stream`](super::stream::Stream) with `Stream::from`; a custom
//! [`L4Connect`](crate::connectors::L4Connect) set as a peer's
//! [`custom_l4`](crate::upstreams::peer::PeerOptions::custom_l4) can then hand such streams to
//! the connectors in place of TCP connections.
//!
//! A virtual stream has no file descriptor: it reports `-1` as its raw fd and as its
//! [`UniqueID`](crate::protocols::UniqueID), and has no socket digest of its own (the
//! connectors record the peer's address in one). Socket options the connectors would set on a
//! TCP socket reach the virtual socket as [`VirtualSockOpt`]s.

use std::fmt::Debug;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::ext::TcpKeepalive;

/// A socket option asked of a [`VirtualSocket`]: the ones the connectors set on TCP
/// connections. More may be added.
#[non_exhaustive]
#[derive(Debug, Clone)]
pub enum VirtualSockOpt {
    /// Send small writes at once instead of gathering them (`TCP_NODELAY`).
    NoDelay,
    /// Probe an idle connection with these timings (TCP keepalive).
    KeepAlive(TcpKeepalive),
}

/// A bidirectional byte stream that can stand in for a socket.
///
/// Reads and writes follow the `AsyncRead`/`AsyncWrite` contracts; a read of zero bytes means
/// the other end is done sending, as with a socket.
pub trait VirtualSocket: AsyncRead + AsyncWrite + Unpin + Send + Sync + Debug {
    /// Applies `opt`. Options that mean nothing to this socket may be ignored (`Ok`); an
    /// error fails whatever asked for the option, such as a connect.
    fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()>;
}

/// A [`VirtualSocket`] ready to become an L4 [`Stream`](super::stream::Stream) (see
/// `Stream::from`). Reads and writes go straight to the socket.
#[derive(Debug)]
pub struct VirtualSocketStream {
    socket: Box<dyn VirtualSocket>,
}

impl VirtualSocketStream {
    /// Wraps `socket`.
    pub fn new(socket: Box<dyn VirtualSocket>) -> Self {
        VirtualSocketStream { socket }
    }

    /// Passes `opt` to the socket.
    ///
    /// # Errors
    ///
    /// Whatever the socket's [`VirtualSocket::set_socket_option`] returns.
    #[inline]
    pub fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()> {
        self.socket.set_socket_option(opt)
    }

    /// The socket, as a pinned reference to poll.
    fn pinned(self: Pin<&mut Self>) -> Pin<&mut dyn VirtualSocket> {
        // The socket is `Unpin`, so is this wrapper: no projection is needed.
        Pin::new(&mut *self.get_mut().socket)
    }
}

impl AsyncRead for VirtualSocketStream {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.pinned().poll_read(cx, buf)
    }
}

impl AsyncWrite for VirtualSocketStream {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.pinned().poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.pinned().poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pinned().poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.pinned().poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
