//! The established session every backend hands out: its library's stream and what the
//! handshake agreed.

use std::any::Any;
use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::{HandshakeInfo, TlsSession};

/// An established session: a backend library's async TLS stream `S` and what its handshake
/// agreed. Reads and writes go to the stream; backends return it as a `Box<dyn TlsSession>`.
pub struct Established<S> {
    stream: S,
    info: HandshakeInfo,
    library: &'static str,
    native: Option<fn(&S) -> &dyn Any>,
}

// === impl Established ===

impl<S> Established<S> {
    /// The session of `stream`, a `library` stream whose handshake agreed `info`.
    pub fn new(library: &'static str, stream: S, info: HandshakeInfo) -> Self {
        Self {
            stream,
            info,
            library,
            native: None,
        }
    }

    /// Lets [`TlsSession::native`] return what `view` finds in the stream.
    pub fn with_native(mut self, view: fn(&S) -> &dyn Any) -> Self {
        self.native = Some(view);
        self
    }

    /// The library's stream.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }
}

impl<S> fmt::Debug for Established<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSession")
            .field("library", &self.library)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send + Sync> TlsSession for Established<S> {
    fn info(&self) -> &HandshakeInfo {
        &self.info
    }

    fn native(&self) -> Option<&dyn Any> {
        self.native.map(|view| view(&self.stream))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Established<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Established<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
