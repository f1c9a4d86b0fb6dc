//! The established session: an s2n-tls-tokio stream and what its handshake agreed.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{LazyLock, Mutex};
use std::task::{Context, Poll};

use pingora_tls::{HandshakeInfo, TlsSession, Transport};
use s2n_tls::connection::Connection;
use s2n_tls::enums::Version;
use s2n_tls_tokio::TlsStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An s2n session over a Pingora transport.
pub(crate) struct S2nSession {
    stream: TlsStream<Transport, Connection>,
    info: HandshakeInfo,
}

impl S2nSession {
    pub(crate) fn new(stream: TlsStream<Transport, Connection>) -> Self {
        let conn: &Connection = stream.as_ref();
        let peer_certs = conn
            .peer_cert_chain()
            .map(|chain| {
                chain
                    .iter()
                    .filter_map(|cert| cert.ok()?.der().ok().map(<[u8]>::to_vec))
                    .collect()
            })
            .unwrap_or_default();
        let info = HandshakeInfo {
            version: match conn.actual_protocol_version() {
                Ok(Version::TLS13) => "TLSv1.3",
                Ok(Version::TLS12) => "TLSv1.2",
                _ => "unknown",
            },
            cipher: conn.cipher_suite().map(intern).unwrap_or("unknown"),
            alpn: conn.application_protocol().map(<[u8]>::to_vec),
            peer_certs,
            resumed: conn.resumed(),
        };
        S2nSession { stream, info }
    }
}

/// A `'static` copy of a cipher suite name. There are a few dozen names, each kept once.
fn intern(name: &str) -> &'static str {
    static NAMES: LazyLock<Mutex<HashSet<&'static str>>> =
        LazyLock::new(|| Mutex::new(HashSet::new()));
    let mut names = NAMES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(found) = names.get(name) {
        return found;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

impl fmt::Debug for S2nSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S2nSession")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl TlsSession for S2nSession {
    fn info(&self) -> &HandshakeInfo {
        &self.info
    }
}

impl AsyncRead for S2nSession {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for S2nSession {
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
