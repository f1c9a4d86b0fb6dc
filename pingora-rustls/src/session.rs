//! The established session: a tokio-rustls stream and what its handshake agreed.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use pingora_tls::{HandshakeInfo, TlsSession, Transport};
use rustls::{CommonState, HandshakeKind, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::TlsStream;

/// A rustls session over a Pingora transport.
pub(crate) struct RustlsSession {
    stream: TlsStream<Transport>,
    info: HandshakeInfo,
}

impl RustlsSession {
    pub(crate) fn new(stream: TlsStream<Transport>) -> Self {
        let state: &CommonState = match &stream {
            TlsStream::Client(s) => s.get_ref().1,
            TlsStream::Server(s) => s.get_ref().1,
        };
        let info = HandshakeInfo {
            version: match state.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "unknown",
            },
            cipher: state
                .negotiated_cipher_suite()
                .and_then(|s| s.suite().as_str())
                .unwrap_or("unknown"),
            alpn: state.alpn_protocol().map(<[u8]>::to_vec),
            peer_certs: state
                .peer_certificates()
                .map(|certs| certs.iter().map(|c| c.to_vec()).collect())
                .unwrap_or_default(),
            resumed: state.handshake_kind() == Some(HandshakeKind::Resumed),
        };
        RustlsSession { stream, info }
    }
}

impl fmt::Debug for RustlsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustlsSession")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl TlsSession for RustlsSession {
    fn info(&self) -> &HandshakeInfo {
        &self.info
    }
}

impl AsyncRead for RustlsSession {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsSession {
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
        bufs: &[io::IoSlice<'_>],
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
