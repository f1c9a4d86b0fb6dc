//! [`TlsStream`]: a TLS session over a connection, as a [`Stream`](crate::protocols::Stream).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use super::TlsSession;
use crate::protocols::digest::SslDigest;
use crate::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, ProxyDigest, Shutdown, SocketDigest,
    Ssl, Stream, TimingDigest, UniqueID, UniqueIDType, ALPN,
};

/// A TLS connection: the backend's session over the underlying stream, with the digests of
/// both layers.
pub struct TlsStream {
    session: Box<dyn TlsSession>,
    id: UniqueIDType,
    timing: Vec<Option<TimingDigest>>,
    socket_digest: Option<Arc<SocketDigest>>,
    proxy_digest: Option<Arc<ProxyDigest>>,
    ssl_digest: Arc<SslDigest>,
    alpn: Option<ALPN>,
}

/// What a [`TlsStream`] keeps of the stream under it, taken before the backend owns it.
#[derive(Debug)]
pub(crate) struct Underlying {
    id: UniqueIDType,
    timing: Vec<Option<TimingDigest>>,
    socket_digest: Option<Arc<SocketDigest>>,
    proxy_digest: Option<Arc<ProxyDigest>>,
}

impl Underlying {
    /// The facts of `stream`.
    pub(crate) fn of(stream: &Stream) -> Self {
        Underlying {
            id: stream.id(),
            timing: stream.get_timing_digest(),
            socket_digest: stream.get_socket_digest(),
            proxy_digest: stream.get_proxy_digest(),
        }
    }
}

// === impl TlsStream ===

impl TlsStream {
    /// Wraps an established session; `below` describes the stream it runs over.
    pub(crate) fn new(
        session: Box<dyn TlsSession>,
        below: Underlying,
        ssl_digest: Arc<SslDigest>,
    ) -> Self {
        let alpn = session
            .info()
            .alpn
            .as_deref()
            .and_then(ALPN::from_wire_selected);
        let mut timing = below.timing;
        timing.push(Some(TimingDigest {
            established_ts: SystemTime::now(),
        }));
        TlsStream {
            session,
            id: below.id,
            timing,
            socket_digest: below.socket_digest,
            proxy_digest: below.proxy_digest,
            ssl_digest,
            alpn,
        }
    }

    /// What the handshake agreed.
    pub fn handshake_info(&self) -> &super::HandshakeInfo {
        self.session.info()
    }
}

impl fmt::Debug for TlsStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsStream")
            .field("id", &self.id)
            .field("version", &self.ssl_digest.version)
            .field("cipher", &self.ssl_digest.cipher)
            .field("alpn", &self.alpn)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.session).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.session).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.session).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.session).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.session).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.session.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for TlsStream {
    async fn shutdown(&mut self) {
        // Sends close_notify, then closes the write side of the transport.
        let _ = AsyncWriteExt::shutdown(&mut self.session).await;
    }
}

impl UniqueID for TlsStream {
    fn id(&self) -> UniqueIDType {
        self.id
    }
}

impl Ssl for TlsStream {
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        Some(Arc::clone(&self.ssl_digest))
    }

    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.alpn.clone()
    }
}

impl GetTimingDigest for TlsStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.timing.clone()
    }
}

impl GetProxyDigest for TlsStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.proxy_digest.clone()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.proxy_digest = Some(Arc::new(digest));
    }
}

impl GetSocketDigest for TlsStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.socket_digest.clone()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.socket_digest = Some(Arc::new(socket_digest));
    }
}

// Peeking at TLS plaintext is not supported: the h2c preface check only applies to plaintext.
impl Peek for TlsStream {}
