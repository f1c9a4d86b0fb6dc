//! The established session: a tokio-openssl stream and what its handshake agreed.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use openssl::ssl::SslRef;
use pingora_tls::{HandshakeInfo, TlsSession, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_openssl::SslStream;

/// An OpenSSL session over a Pingora transport.
pub(crate) struct OpensslSession {
    stream: SslStream<Transport>,
    info: HandshakeInfo,
}

impl OpensslSession {
    pub(crate) fn new(stream: SslStream<Transport>) -> Self {
        let info = handshake_info(stream.ssl());
        OpensslSession { stream, info }
    }
}

fn handshake_info(ssl: &SslRef) -> HandshakeInfo {
    let mut peer_certs = Vec::new();
    if let Some(leaf) = ssl.peer_certificate() {
        if let Ok(der) = leaf.to_der() {
            peer_certs.push(der);
        }
    }
    if let Some(chain) = ssl.peer_cert_chain() {
        for cert in chain {
            if let Ok(der) = cert.to_der() {
                if !peer_certs.contains(&der) {
                    peer_certs.push(der);
                }
            }
        }
    }
    HandshakeInfo {
        version: ssl.version_str(),
        cipher: ssl.current_cipher().map(|c| c.name()).unwrap_or("unknown"),
        alpn: ssl.selected_alpn_protocol().map(<[u8]>::to_vec),
        peer_certs,
        resumed: ssl.session_reused(),
    }
}

impl fmt::Debug for OpensslSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpensslSession")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl TlsSession for OpensslSession {
    fn info(&self) -> &HandshakeInfo {
        &self.info
    }
}

impl AsyncRead for OpensslSession {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for OpensslSession {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Maps a failed handshake: a failed certificate verification (ours of the peer, or the
/// peer's of ours as told by its alert) is `InvalidCert`, anything else `TLSHandshakeFailure`.
pub(crate) fn handshake_error(
    ssl: &SslRef,
    e: openssl::ssl::Error,
    what: &str,
) -> Box<pingora_error::Error> {
    use pingora_error::{Error, ErrorType};
    let verify = ssl.verify_result();
    let reason = e.to_string();
    let cert_problem = verify != openssl::x509::X509VerifyResult::OK
        || [
            "certificate verify failed",
            "peer did not return a certificate",
            "certificate required",
            "unknown ca",
            "bad certificate",
            "certificate expired",
        ]
        .iter()
        .any(|needle| reason.contains(needle));
    let etype = if cert_problem {
        ErrorType::InvalidCert
    } else {
        ErrorType::TLSHandshakeFailure
    };
    let context = if verify != openssl::x509::X509VerifyResult::OK {
        format!("{what}: {}", verify.error_string())
    } else {
        what.to_string()
    };
    Error::because(etype, context, e)
}
