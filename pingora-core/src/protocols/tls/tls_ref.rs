//! [`TlsRef`]: a server handshake as the listener's callbacks see it.

use std::sync::Arc;

use crate::protocols::digest::SslDigest;
use crate::protocols::tls::hello::ClientHello;
use crate::protocols::tls::CertKey;

/// A handshake in progress or just finished, as the
/// [`TlsAccept`](crate::listeners::TlsAccept) callbacks see it.
#[derive(Debug)]
pub struct TlsRef {
    pub(crate) hello: ClientHello,
    pub(crate) cert_key: Option<Arc<CertKey>>,
    pub(crate) digest: Option<SslDigest>,
    pub(crate) alpn: Option<Vec<u8>>,
}

impl TlsRef {
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
