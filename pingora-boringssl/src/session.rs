//! The established session: a tokio-boring stream and what its handshake agreed.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use boring::ssl::SslRef;
use pingora_tls::{HandshakeInfo, TlsSession, Transport};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_boring::SslStream;

/// An BoringSSL session over a Pingora transport.
pub(crate) struct BoringsslSession {
    stream: SslStream<Transport>,
    info: HandshakeInfo,
}

impl BoringsslSession {
    pub(crate) fn new(stream: SslStream<Transport>) -> Self {
        let info = handshake_info(stream.ssl());
        BoringsslSession { stream, info }
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

impl fmt::Debug for BoringsslSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoringsslSession")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl TlsSession for BoringsslSession {
    fn info(&self) -> &HandshakeInfo {
        &self.info
    }
}

impl AsyncRead for BoringsslSession {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for BoringsslSession {
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
    e: tokio_boring::HandshakeError<Transport>,
    what: &str,
) -> Box<pingora_error::Error> {
    use pingora_error::{Error, ErrorType};
    // BoringSSL reports an error ("invalid call") when no certificate was verified at all.
    let verify = e
        .ssl()
        .filter(|ssl| ssl.peer_certificate().is_some())
        .map(SslRef::verify_result)
        .unwrap_or(Ok(()));
    let reason = e.to_string().to_ascii_lowercase();
    let cert_problem = verify.is_err()
        || [
            "certificate_verify_failed",
            "certificate verify failed",
            "peer_did_not_return_a_certificate",
            "peer did not return a certificate",
            "certificate_required",
            "certificate required",
            "unknown_ca",
            "unknown ca",
            "bad_certificate",
            "bad certificate",
            "certificate_expired",
            "certificate expired",
        ]
        .iter()
        .any(|needle| reason.contains(needle));
    let etype = if cert_problem {
        ErrorType::InvalidCert
    } else {
        ErrorType::TLSHandshakeFailure
    };
    let context = match verify {
        Err(verify) => format!("{what}: {}", verify.error_string()),
        Ok(()) => what.to_string(),
    };
    Error::explain(etype, format!("{context}: {e}"))
}
