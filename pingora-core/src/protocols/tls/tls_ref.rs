//! [`HandshakeRef`]: a server handshake as the listener's backend-neutral callbacks see it;
//! and [`TlsRef`], the type Pingora's `TlsAccept` callbacks receive.

use std::sync::Arc;

use crate::protocols::digest::SslDigest;
use crate::protocols::tls::hello::ClientHello;
use crate::protocols::tls::CertKey;

/// The handshake that Pingora's [`TlsAccept`](crate::listeners::TlsAccept) callbacks receive.
///
/// With an OpenSSL-family backend compiled in (features `openssl` or `boringssl`) this is the
/// library's `SslRef`, as in Pingora: callbacks call `servername`, `peer_certificate` and the
/// `tls::ext` helpers on it, and such callbacks need that backend at run time. Otherwise it is
/// the backend-neutral [`HandshakeRef`].
#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub type TlsRef = crate::protocols::tls::ssl::SslRef;

/// The handshake that Pingora's [`TlsAccept`](crate::listeners::TlsAccept) callbacks receive:
/// without an OpenSSL-family backend, the backend-neutral [`HandshakeRef`] (with `openssl` or
/// `boringssl`, the library's `SslRef`).
#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
pub type TlsRef = HandshakeRef;

/// A handshake in progress or just finished, as the backend-neutral
/// [`HandshakeCallbacks`](crate::listeners::tls::HandshakeCallbacks) see it, with every
/// backend.
#[derive(Debug)]
pub struct HandshakeRef {
    pub(crate) hello: ClientHello,
    pub(crate) cert_key: Option<Arc<CertKey>>,
    pub(crate) digest: Option<SslDigest>,
    pub(crate) alpn: Option<Vec<u8>>,
}

impl HandshakeRef {
    /// The server name the client asked for (SNI), if it sent one.
    pub fn server_name(&self) -> Option<&str> {
        self.hello.server_name.as_deref()
    }

    /// The ALPN protocols the client offered, in its order.
    pub fn client_alpn(&self) -> &[Vec<u8>] {
        &self.hello.alpn
    }

    /// Presents `cert_key` in this handshake instead of the listener's certificate.
    pub fn set_certificate(&mut self, cert_key: Arc<CertKey>) {
        self.cert_key = Some(cert_key);
    }

    /// The certificate chosen for this handshake by [`set_certificate`](Self::set_certificate).
    pub fn certificate(&self) -> Option<&Arc<CertKey>> {
        self.cert_key.as_ref()
    }

    /// The negotiated parameters; set once the handshake finished.
    pub fn ssl_digest(&self) -> Option<&SslDigest> {
        self.digest.as_ref()
    }

    /// The ALPN protocol selected, if any.
    pub fn selected_alpn(&self) -> Option<&[u8]> {
        self.alpn.as_deref()
    }
}
