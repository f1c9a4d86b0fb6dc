//! The backend-neutral TLS vocabulary of Pingora.
//!
//! TLS backends (`pingora-openssl`, `pingora-boringssl`, `pingora-s2n`, `pingora-rustls`)
//! implement [`TlsProvider`]; `pingora-core` drives them through it and never names a backend
//! type. A backend sees only a byte [`Transport`] and plain configuration values
//! ([`ServerConfig`], [`ClientConfig`], [`AcceptParams`], [`ConnectParams`]), and returns a
//! [`TlsSession`]: a byte stream that knows its [`HandshakeInfo`].
//!
//! What every backend must do the same way lives here, once: certificate material
//! ([`CertKey`], PEM loading), certificate summaries for digests ([`der`]), the hostname rules
//! of upstream verification ([`verify`]) and ClientHello inspection ([`hello`]).
//!
//! # Why a crate of its own
//!
//! The backend crates implement these traits and `pingora-core` pulls the backend crates in
//! through its `openssl`/`boringssl`/`s2n`/`rustls` features. If the traits lived in
//! `pingora-core`, the backends would depend on it and it on them: a dependency cycle. So the
//! vocabulary is this small crate, which both depend on.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod cert;
pub mod der;
pub mod hello;
mod session;
pub mod verify;

use std::any::Any;
use std::fmt::{self, Debug};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pingora_error::Result;
use tokio::io::{AsyncRead, AsyncWrite};

pub use cert::{load_pem_certs, load_pem_key, pem_encode, CaType, CertKey};
pub use session::Established;

/// A boxed future, as the provider traits return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A byte stream a TLS session runs over.
pub trait TlsTransport: AsyncRead + AsyncWrite + Unpin + Send + Sync + Debug {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + Debug> TlsTransport for T {}

/// The boxed byte stream handed to a backend.
pub type Transport = Box<dyn TlsTransport>;

/// An established TLS session: plaintext bytes in and out, and what the handshake agreed.
pub trait TlsSession: AsyncRead + AsyncWrite + Unpin + Send + Sync + Debug {
    /// What the handshake agreed.
    fn info(&self) -> &HandshakeInfo;

    /// The library's own view of the session, for code written against one backend (the
    /// OpenSSL family gives its `SslRef`). `None` by default.
    fn native(&self) -> Option<&dyn Any> {
        None
    }
}

/// A value of a backend library's own type carried through the neutral API: the
/// OpenSSL-family backends take an `SslAcceptorBuilder` in [`ServerConfig::native`], hand out
/// a fresh `Ssl` from [`TlsServer::prepare`] and take it back in [`AcceptParams::native`].
/// Other backends give none and refuse one.
pub struct Native(Box<dyn Any + Send + Sync>);

// === impl Native ===

impl Native {
    /// Wraps `value`.
    pub fn new<T: Any + Send + Sync>(value: T) -> Self {
        Native(Box::new(value))
    }

    /// The value, if it is a `T`; else `self` back.
    ///
    /// # Errors
    ///
    /// `self`, when the value is not a `T`.
    pub fn downcast<T: Any>(self) -> std::result::Result<T, Self> {
        self.0.downcast::<T>().map(|value| *value).map_err(Native)
    }

    /// The value by mutable reference, if it is a `T`.
    pub fn downcast_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.0.downcast_mut::<T>()
    }
}

impl Debug for Native {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Native(..)")
    }
}

/// What a TLS handshake agreed.
#[derive(Debug, Clone, Default)]
pub struct HandshakeInfo {
    /// The protocol version, in OpenSSL's spelling: `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The cipher suite, in the backend's spelling.
    pub cipher: &'static str,
    /// The application protocol chosen by ALPN, if any.
    pub alpn: Option<Vec<u8>>,
    /// The peer's certificates, DER-encoded, leaf first; empty if it sent none.
    pub peer_certs: Vec<Vec<u8>>,
    /// Whether the session was resumed rather than fully negotiated.
    pub resumed: bool,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// Whether and how a server asks clients for certificates.
#[derive(Debug, Clone, Default)]
pub enum ClientAuth {
    /// Clients are not asked for a certificate.
    #[default]
    None,
    /// Clients may present a certificate, which must then chain to one of these CAs.
    Optional(Arc<CaType>),
    /// Clients must present a certificate that chains to one of these CAs.
    Required(Arc<CaType>),
}

/// What a TLS server needs, fixed for the life of a listener.
#[derive(Debug, Default)]
pub struct ServerConfig {
    /// The default certificate chain and key. May be `None` when every handshake gets its
    /// certificate from [`AcceptParams::cert_key`].
    pub cert_key: Option<Arc<CertKey>>,
    /// Client certificate verification.
    pub client_auth: ClientAuth,
    /// The lowest version accepted (default: TLS 1.2).
    pub min_version: Option<TlsVersion>,
    /// The highest version accepted (default: TLS 1.3).
    pub max_version: Option<TlsVersion>,
    /// The backend's own base configuration, which the settings above then adjust; a
    /// backend that does not know the type refuses the configuration.
    pub native: Option<Native>,
}

// === impl ServerConfig ===

impl ServerConfig {
    /// For backends without a native configuration type: fails if [`Self::native`] is set,
    /// so settings meant for another library are never silently dropped.
    ///
    /// # Errors
    ///
    /// `InternalError` naming `backend`, when a native configuration is present.
    pub fn refuse_native(&self, backend: &str) -> Result<()> {
        if self.native.is_some() {
            return pingora_error::Error::e_explain(
                pingora_error::ErrorType::InternalError,
                format!(
                    "these TLS settings were adjusted through OpenSSL's acceptor builder, which \
                     the {backend} backend cannot apply; use the OpenSSL-family backend for them"
                ),
            );
        }
        Ok(())
    }
}

/// The per-handshake choices of a TLS server, made before the handshake from the ClientHello.
#[derive(Debug, Default)]
pub struct AcceptParams {
    /// The certificate to present instead of [`ServerConfig::cert_key`].
    pub cert_key: Option<Arc<CertKey>>,
    /// The ALPN protocol to select, already chosen from the client's offer; `None` selects
    /// none.
    pub alpn: Option<Vec<u8>>,
    /// The session object [`TlsServer::prepare`] gave, as the caller adjusted it.
    pub native: Option<Native>,
}

/// What a TLS client needs, fixed for the life of a connector.
#[derive(Debug, Clone, Default)]
pub struct ClientConfig {
    /// The CAs that server certificates are verified against; `None` for the system's trust
    /// store.
    pub ca: Option<Arc<CaType>>,
    /// The client certificate presented when a connection does not name its own.
    pub cert_key: Option<Arc<CertKey>>,
    /// Whether session secrets are appended to the file named by `$SSLKEYLOGFILE`.
    pub keylog: bool,
    /// The most per-connection configurations the backend keeps for reuse, for backends
    /// that build one per distinct set of [`ConnectParams`] (s2n); `0` keeps none, which
    /// also gives up session resumption. `None`: the backend's default.
    pub config_cache_size: Option<usize>,
}

/// The per-connection choices of a TLS client.
#[derive(Debug, Clone)]
pub struct ConnectParams {
    /// The server name sent as SNI and verified. Empty: no SNI and no verification at all.
    pub sni: String,
    /// Whether the certificate chain is verified.
    pub verify_cert: bool,
    /// Whether the certificate must be valid for one of
    /// [`verify::accepted_names`]`(sni, alternative_cn)`.
    pub verify_hostname: bool,
    /// Another name the certificate may be valid for.
    pub alternative_cn: Option<String>,
    /// CAs to verify with instead of [`ClientConfig::ca`].
    pub ca: Option<Arc<CaType>>,
    /// The client certificate to present instead of [`ClientConfig::cert_key`].
    pub cert_key: Option<Arc<CertKey>>,
    /// The ALPN protocols to offer, most preferred first; empty offers none.
    pub alpn: Vec<Vec<u8>>,
}

impl ConnectParams {
    /// Whether the server certificate is to be verified at all: an empty SNI turns every
    /// check off.
    pub fn verifies(&self) -> bool {
        !self.sni.is_empty() && self.verify_cert
    }

    /// Whether the server certificate's names are to be checked.
    pub fn verifies_hostname(&self) -> bool {
        self.verifies() && self.verify_hostname
    }
}

/// A TLS backend: makes servers and clients from neutral configuration.
///
/// Implementations map failures to [`pingora_error::ErrorType`]s: a certificate that fails
/// verification (unknown CA, expired, wrong name) is `InvalidCert`, any other handshake failure
/// `TLSHandshakeFailure`, unusable configuration `InvalidCert` (bad certificate or key) or
/// `InternalError`.
pub trait TlsProvider: Send + Sync + Debug {
    /// The backend's name, such as `rustls`.
    fn name(&self) -> &'static str;

    /// A server with `config`.
    fn new_server(&self, config: ServerConfig) -> Result<Arc<dyn TlsServer>>;

    /// A client with `config`.
    fn new_client(&self, config: ClientConfig) -> Result<Arc<dyn TlsClient>>;
}

/// The server side of a backend: runs handshakes with clients.
pub trait TlsServer: Send + Sync + Debug {
    /// A fresh session object of the library, for the caller to adjust before it is handed
    /// back in [`AcceptParams::native`] (the OpenSSL family: an `Ssl`). `Ok(None)` by default:
    /// the backend has no such object to offer.
    ///
    /// # Errors
    ///
    /// `InternalError` if the library cannot create one.
    fn prepare(&self) -> Result<Option<Native>> {
        Ok(None)
    }

    /// Runs the server handshake over `io`.
    fn accept(
        &self,
        io: Transport,
        params: AcceptParams,
    ) -> BoxFuture<'_, Result<Box<dyn TlsSession>>>;
}

/// The client side of a backend: runs handshakes with servers.
pub trait TlsClient: Send + Sync + Debug {
    /// Runs the client handshake over `io`.
    fn connect(
        &self,
        io: Transport,
        params: ConnectParams,
    ) -> BoxFuture<'_, Result<Box<dyn TlsSession>>>;
}

/// Maps a protocol version to OpenSSL's spelling of it.
pub fn version_str(version: TlsVersion) -> &'static str {
    match version {
        TlsVersion::Tls12 => "TLSv1.2",
        TlsVersion::Tls13 => "TLSv1.3",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compiles only while the backend traits stay usable as trait objects.
    const _OBJECT_SAFE: fn(&dyn TlsProvider, &dyn TlsServer, &dyn TlsClient, &dyn TlsSession) =
        |_, _, _, _| {};

    #[test]
    fn empty_sni_disables_verification() {
        let mut params = ConnectParams {
            sni: String::new(),
            verify_cert: true,
            verify_hostname: true,
            alternative_cn: None,
            ca: None,
            cert_key: None,
            alpn: vec![],
        };
        assert!(!params.verifies() && !params.verifies_hostname());
        params.sni = "a.example".into();
        assert!(params.verifies() && params.verifies_hostname());
        params.verify_cert = false;
        assert!(!params.verifies_hostname());
    }
}
