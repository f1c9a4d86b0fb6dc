//! TLS listeners: [`TlsSettings`](struct@TlsSettings), the [`TlsAccept`] callbacks, and the server handshake.
//!
//! The handshake runs in the connection's own task, bounded by the settings' handshake
//! timeout:
//!
//! 1. The ClientHello is read and inspected here, before the backend sees it: its server name
//!    (SNI) and offered ALPN protocols. Bytes that are not a ClientHello end the connection.
//! 2. The certificate callback runs, if set, and may pick the certificate (for example by
//!    SNI). It is async: the handshake waits for it.
//! 3. The ALPN protocol is chosen from the client's offer and the settings (see
//!    [`TlsSettings::set_alpn`]).
//! 4. The backend runs the handshake over the replayed bytes.
//! 5. The handshake-complete callback runs, if set; its value is stored in the connection's
//!    [`SslDigest`](crate::protocols::digest::SslDigest) `extension`.
//!
//! Doing steps 1 to 3 here makes certificate selection and ALPN behave the same with every
//! backend.
//!
//! # Two shapes of callbacks
//!
//! - [`HandshakeCallbacks`] see a backend-neutral [`HandshakeRef`] (server name, offered ALPN,
//!   the digest) and choose a [`CertKey`]: they work with every backend
//!   ([`TlsSettings::with_handshake_callbacks`]).
//! - [`TlsAccept`] is Pingora's trait, over [`TlsRef`]. With an OpenSSL-family backend compiled
//!   in (features `openssl`, `boringssl`) `TlsRef` is the library's `SslRef` and the settings
//!   deref to its `SslAcceptorBuilder`, as in Pingora, so code written for Pingora compiles
//!   unchanged: the certificate callback gets the connection's `Ssl` before the handshake
//!   (`servername` already answers), and what it sets there (`tls::ext::ssl_use_certificate`)
//!   is used. Such settings need that backend at run time. Without it, `TlsAccept` is the
//!   same trait as `HandshakeCallbacks`.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::BytesMut;
use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::metrics::{self, Side};
use crate::protocols::tls::hello::{self, ClientHello, HelloParse};
use crate::protocols::tls::stream::Underlying;
use crate::protocols::tls::{
    self as neutral, AcceptParams, CaType, CertKey, ClientAuth, TlsProvider, TlsServer, TlsStream,
    TlsVersion,
};
use crate::protocols::{PrefixedStream, Stream, ALPN};

pub use crate::protocols::tls::{HandshakeRef, TlsRef};

#[cfg(any(feature = "openssl", feature = "boringssl"))]
mod ossl;
#[cfg(any(feature = "openssl", feature = "boringssl"))]
pub use ossl::TlsAccept;

/// Without an OpenSSL-family backend, Pingora's `TlsAccept` is [`HandshakeCallbacks`].
#[cfg(not(any(feature = "openssl", feature = "boringssl")))]
pub use HandshakeCallbacks as TlsAccept;

/// The error type of TLS settings that cannot be applied, as Pingora names it.
pub const TLS_CONF_ERR: ErrorType = ErrorType::Custom("TLSConfigError");

/// The default [`TlsSettings::set_handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The TLS alert `no_application_protocol` (fatal), sent when an HTTP/2-only listener meets a
/// client that does not offer `h2`.
const ALERT_NO_APPLICATION_PROTOCOL: [u8; 7] = [21, 3, 3, 0, 2, 2, 120];

/// Backend-neutral callbacks run during TLS handshakes of a listener, with every backend.
#[async_trait]
pub trait HandshakeCallbacks {
    /// Runs after the ClientHello arrived and before the handshake proceeds; may choose the
    /// certificate with [`HandshakeRef::set_certificate`], typically by
    /// [`HandshakeRef::server_name`]. The handshake waits for it.
    async fn certificate_callback(&self, _ssl: &mut HandshakeRef) {}

    /// Runs after a successful handshake. The value returned is kept in the connection's
    /// [`SslDigest::extension`](crate::protocols::digest::SslDigest::extension) for later phases.
    async fn handshake_complete_callback(
        &self,
        _ssl: &HandshakeRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        None
    }
}

/// Boxed [`TlsAccept`] callbacks, as [`TlsSettings::with_callbacks`] takes them.
pub type TlsAcceptCallbacks = Box<dyn TlsAccept + Send + Sync>;

/// The same as [`TlsAcceptCallbacks`].
pub type DynamicCert = TlsAcceptCallbacks;

/// The callbacks of a listener, in either shape.
enum Callbacks {
    Neutral(Box<dyn HandshakeCallbacks + Send + Sync>),
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    Ssl(TlsAcceptCallbacks),
}

impl From<TlsAcceptCallbacks> for Callbacks {
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    fn from(callbacks: TlsAcceptCallbacks) -> Self {
        Callbacks::Ssl(callbacks)
    }

    #[cfg(not(any(feature = "openssl", feature = "boringssl")))]
    fn from(callbacks: TlsAcceptCallbacks) -> Self {
        Callbacks::Neutral(callbacks)
    }
}

/// The TLS settings of a listening endpoint.
///
/// ```no_run
/// use pingora_core::listeners::tls::TlsSettings;
///
/// let mut tls = TlsSettings::intermediate("/etc/certs/server.crt", "/etc/certs/server.key")?;
/// tls.enable_h2();
/// # Ok::<(), Box<pingora_core::Error>>(())
/// ```
///
/// With an OpenSSL-family backend compiled in, the settings also deref to its
/// `SslAcceptorBuilder`, as in Pingora (see the [module docs](self)).
pub struct TlsSettings {
    cert_key: Option<Arc<CertKey>>,
    callbacks: Option<Callbacks>,
    alpn: Option<ALPN>,
    client_auth: ClientAuth,
    min_version: Option<TlsVersion>,
    max_version: Option<TlsVersion>,
    handshake_timeout: Duration,
    provider: Option<Arc<dyn TlsProvider>>,
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    native: ossl::NativeSettings,
}

// === impl TlsSettings ===

/// Settings without a certificate, as the value `TlsSettings`: Pingora's builds without a TLS
/// backend declare `TlsSettings` as a unit struct, so code written for them writes
/// `let settings = TlsSettings;`. Without a backend here (no `any_tls` feature), this constant
/// lets that code compile unchanged; a listener given these settings fails to start with a
/// clear error (no certificate, and no TLS backend), as it would there.
#[cfg(not(feature = "any_tls"))]
#[allow(non_upper_case_globals)]
pub const TlsSettings: TlsSettings = TlsSettings::neutral();

impl TlsSettings {
    #[cfg(not(any(feature = "openssl", feature = "boringssl")))]
    const fn neutral() -> Self {
        TlsSettings {
            cert_key: None,
            callbacks: None,
            alpn: None,
            client_auth: ClientAuth::None,
            min_version: None,
            max_version: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            provider: None,
        }
    }

    /// Settings with no certificate and no callbacks.
    #[cfg(not(any(feature = "openssl", feature = "boringssl")))]
    fn empty() -> Result<Self> {
        Ok(Self::neutral())
    }

    /// Settings with no certificate and no callbacks, and an untouched acceptor builder.
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    fn empty() -> Result<Self> {
        Ok(Self::with_native(ossl::NativeSettings::new()?))
    }

    /// Settings with no certificate and no callbacks, over `native`.
    #[cfg(any(feature = "openssl", feature = "boringssl"))]
    fn with_native(native: ossl::NativeSettings) -> Self {
        TlsSettings {
            cert_key: None,
            callbacks: None,
            alpn: None,
            client_auth: ClientAuth::None,
            min_version: None,
            max_version: None,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            provider: None,
            native,
        }
    }

    /// Settings in the spirit of Mozilla's "intermediate" profile (TLS 1.2 and 1.3, modern
    /// AEAD cipher suites as chosen by the backend), serving the PEM certificate chain at
    /// `cert_path` (leaf first) with the PEM private key at `key_path`.
    ///
    /// # Errors
    ///
    /// [`ErrorType::FileReadError`] or [`ErrorType::InvalidCert`] if the files cannot be read
    /// or hold no certificate or key.
    ///
    /// With an OpenSSL-family backend the certificate is applied to the acceptor builder when
    /// the listener starts, after any change made through it.
    pub fn intermediate(cert_path: &str, key_path: &str) -> Result<Self> {
        Self::with_cert_key(Arc::new(CertKey::from_pem_files(cert_path, key_path)?))
    }

    /// Settings serving `cert_key`.
    ///
    /// # Errors
    ///
    /// With an OpenSSL-family backend, [`TLS_CONF_ERR`] if the library cannot create its
    /// acceptor builder.
    pub fn with_cert_key(cert_key: Arc<CertKey>) -> Result<Self> {
        let mut settings = Self::empty()?;
        settings.cert_key = Some(cert_key);
        Ok(settings)
    }

    /// Settings whose certificate is chosen per handshake by Pingora's [`TlsAccept`]
    /// callbacks; a handshake for which none is chosen fails.
    ///
    /// # Errors
    ///
    /// With an OpenSSL-family backend, [`TLS_CONF_ERR`] if the library cannot create its
    /// acceptor builder.
    pub fn with_callbacks(callbacks: TlsAcceptCallbacks) -> Result<Self> {
        let mut settings = Self::empty()?;
        settings.callbacks = Some(callbacks.into());
        Ok(settings)
    }

    /// Settings whose certificate is chosen per handshake by the backend-neutral `callbacks`
    /// ([`HandshakeCallbacks::certificate_callback`]), with any backend.
    ///
    /// # Errors
    ///
    /// As [`with_callbacks`](Self::with_callbacks).
    pub fn with_handshake_callbacks(
        callbacks: Box<dyn HandshakeCallbacks + Send + Sync>,
    ) -> Result<Self> {
        let mut settings = Self::empty()?;
        settings.set_handshake_callbacks(callbacks);
        Ok(settings)
    }

    /// Sets Pingora's [`TlsAccept`] callbacks, keeping the certificate as a default.
    pub fn set_callbacks(&mut self, callbacks: TlsAcceptCallbacks) {
        self.callbacks = Some(callbacks.into());
    }

    /// Sets backend-neutral callbacks, keeping the certificate as a default.
    pub fn set_handshake_callbacks(
        &mut self,
        callbacks: Box<dyn HandshakeCallbacks + Send + Sync>,
    ) {
        self.callbacks = Some(Callbacks::Neutral(callbacks));
    }

    /// Offers HTTP/2 with ALPN: same as `set_alpn(ALPN::H2H1)`.
    pub fn enable_h2(&mut self) {
        self.set_alpn(ALPN::H2H1);
    }

    /// Sets the ALPN protocols the listener accepts. The server's preference decides: with
    /// [`ALPN::H2H1`], `h2` when the client offers it, else `http/1.1`. With [`ALPN::H2`], a
    /// client that offers ALPN without `h2` gets a fatal `no_application_protocol` alert. A
    /// client that offers nothing acceptable otherwise gets no ALPN (and speaks HTTP/1.1).
    /// Default: no ALPN at all.
    pub fn set_alpn(&mut self, alpn: ALPN) {
        self.alpn = Some(alpn);
    }

    /// Asks clients for a certificate issued by one of `ca` (DER), and rejects the handshake
    /// without one when `required`.
    pub fn set_client_ca(&mut self, ca: CaType, required: bool) {
        let ca = Arc::new(ca);
        self.client_auth = if required {
            ClientAuth::Required(ca)
        } else {
            ClientAuth::Optional(ca)
        };
    }

    /// Like [`set_client_ca`](Self::set_client_ca), loading the CAs from a PEM file.
    ///
    /// # Errors
    ///
    /// As [`load_pem_certs`](crate::utils::tls::load_pem_certs).
    pub fn set_client_ca_file(&mut self, ca_path: &str, required: bool) -> Result<()> {
        let ca = neutral::CaType::from(pingora_tls::load_pem_certs(ca_path)?);
        self.set_client_ca(ca, required);
        Ok(())
    }

    /// The lowest protocol version accepted. Default: TLS 1.2.
    pub fn set_min_version(&mut self, version: TlsVersion) {
        self.min_version = Some(version);
    }

    /// The highest protocol version accepted. Default: TLS 1.3.
    pub fn set_max_version(&mut self, version: TlsVersion) {
        self.max_version = Some(version);
    }

    /// How long a client has to complete the handshake, from the accepted connection to the
    /// end of the handshake callbacks. Default: [`DEFAULT_HANDSHAKE_TIMEOUT`].
    pub fn set_handshake_timeout(&mut self, timeout: Duration) {
        self.handshake_timeout = timeout;
    }

    /// Uses `provider` instead of the [default](crate::protocols::tls::default_provider).
    pub fn set_provider(&mut self, provider: Arc<dyn TlsProvider>) {
        self.provider = Some(provider);
    }

    /// Builds the acceptor: resolves the provider and hands it the configuration.
    pub(crate) fn build(self) -> Result<Acceptor> {
        let provider = match self.provider {
            Some(provider) => provider,
            None => neutral::default_provider()?,
        };
        #[cfg(any(feature = "openssl", feature = "boringssl"))]
        let native = self.native.into_config();
        #[cfg(not(any(feature = "openssl", feature = "boringssl")))]
        let native = None;
        if self.cert_key.is_none() && self.callbacks.is_none() && native.is_none() {
            return Error::e_explain(
                ErrorType::InternalError,
                "TLS settings need a certificate or a certificate callback",
            );
        }
        let server = provider.new_server(neutral::ServerConfig {
            cert_key: self.cert_key,
            client_auth: self.client_auth,
            min_version: self.min_version,
            max_version: self.max_version,
            native,
        })?;
        #[cfg(any(feature = "openssl", feature = "boringssl"))]
        if let Some(Callbacks::Ssl(_)) = &self.callbacks {
            ossl::check_server(&*server, provider.name())?;
        }
        Ok(Acceptor {
            server,
            callbacks: self.callbacks,
            alpn: self.alpn,
            handshake_timeout: self.handshake_timeout,
            provider_name: provider.name(),
        })
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("cert_key", &self.cert_key)
            .field("callbacks", &self.callbacks.is_some())
            .field("alpn", &self.alpn)
            .field("client_auth", &self.client_auth)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("provider", &self.provider.as_ref().map(|p| p.name()))
            .finish_non_exhaustive()
    }
}

/// A listener's TLS server, ready to accept.
pub(crate) struct Acceptor {
    server: Arc<dyn TlsServer>,
    callbacks: Option<Callbacks>,
    alpn: Option<ALPN>,
    handshake_timeout: Duration,
    provider_name: &'static str,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("provider", &self.provider_name)
            .field("alpn", &self.alpn)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

// === impl Acceptor ===

impl Acceptor {
    /// Runs the server handshake over `stream`, within the handshake timeout.
    pub(crate) async fn handshake(&self, stream: Stream) -> Result<Stream> {
        let handshake = self.do_handshake(stream);
        let result = match pingora_timeout::timeout(self.handshake_timeout, handshake).await {
            Ok(done) => done,
            Err(_) => Error::e_explain(
                ErrorType::TLSHandshakeTimedout,
                format!("TLS handshake not done in {:?}", self.handshake_timeout),
            ),
        };
        metrics::tls_handshake(Side::Downstream, result)
    }

    async fn do_handshake(&self, mut stream: Stream) -> Result<Stream> {
        let (hello, raw) = read_client_hello(&mut stream).await?;
        let mut tls_ref = HandshakeRef {
            hello,
            cert_key: None,
            digest: None,
            alpn: None,
        };
        let native = match &self.callbacks {
            Some(Callbacks::Neutral(callbacks)) => {
                callbacks.certificate_callback(&mut tls_ref).await;
                None
            }
            #[cfg(any(feature = "openssl", feature = "boringssl"))]
            Some(Callbacks::Ssl(callbacks)) => Some(
                ossl::certificate_callback(&*self.server, callbacks, tls_ref.server_name()).await?,
            ),
            None => None,
        };
        let alpn = match select_alpn(self.alpn.as_ref(), tls_ref.client_alpn()) {
            Ok(alpn) => alpn,
            Err(e) => {
                let _ = stream.write_all(&ALERT_NO_APPLICATION_PROTOCOL).await;
                return Err(e);
            }
        };
        let below = Underlying::of(&stream);
        let transport = PrefixedStream::prepend(stream, raw.freeze());
        let params = AcceptParams {
            cert_key: tls_ref.cert_key.clone(),
            alpn,
            native,
        };
        let session = self.server.accept(Box::new(transport), params).await?;
        tls_ref.alpn = session.info().alpn.clone();
        let mut digest = neutral::ssl_digest(session.info(), None);
        let extension = match &self.callbacks {
            Some(Callbacks::Neutral(callbacks)) => {
                tls_ref.digest = Some(digest.clone());
                callbacks.handshake_complete_callback(&tls_ref).await
            }
            #[cfg(any(feature = "openssl", feature = "boringssl"))]
            Some(Callbacks::Ssl(callbacks)) => {
                ossl::handshake_complete_callback(callbacks, &*session).await?
            }
            None => None,
        };
        if let Some(value) = extension {
            digest.extension.set(value);
        }
        Ok(Box::new(TlsStream::new(session, below, Arc::new(digest))))
    }
}

/// Reads until a whole ClientHello arrived; returns it and every byte read.
async fn read_client_hello(stream: &mut Stream) -> Result<(ClientHello, BytesMut)> {
    let mut raw = BytesMut::with_capacity(2048);
    loop {
        let n = stream
            .read_buf(&mut raw)
            .await
            .or_err(ErrorType::ReadError, "while reading the TLS ClientHello")?;
        if n == 0 {
            return Error::e_explain(
                ErrorType::ConnectionClosed,
                "the client closed the connection before the TLS handshake",
            );
        }
        match hello::parse_client_hello(&raw) {
            HelloParse::Complete(hello) => return Ok((hello, raw)),
            HelloParse::Incomplete if raw.len() < hello::MAX_CLIENT_HELLO + 1024 => {}
            HelloParse::Incomplete => {
                return Error::e_explain(ErrorType::TLSHandshakeFailure, "ClientHello too large")
            }
            HelloParse::Invalid(why) => {
                return Error::e_explain(
                    ErrorType::TLSHandshakeFailure,
                    format!("not a TLS ClientHello: {why}"),
                )
            }
        }
    }
}

/// The ALPN protocol to select for a client that offered `offered`.
fn select_alpn(ours: Option<&ALPN>, offered: &[Vec<u8>]) -> Result<Option<Vec<u8>>> {
    let Some(ours) = ours else {
        return Ok(None);
    };
    if let Some(name) = ours
        .protocol_names()
        .into_iter()
        .find(|name| offered.iter().any(|o| o == name))
    {
        return Ok(Some(name.to_vec()));
    }
    if *ours == ALPN::H2 && !offered.is_empty() {
        return Error::e_explain(
            ErrorType::TLSHandshakeFailure,
            "the client does not offer h2, which this listener requires",
        );
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "any_tls"))]
    #[tokio::test]
    async fn without_a_backend_the_value_tls_settings_builds_a_listener_that_fails_clearly() {
        // Written as for Pingora's TLS-free builds, where `TlsSettings` is a unit struct.
        let settings = TlsSettings;
        let mut listeners = crate::listeners::Listeners::new();
        listeners.add_tls_with_settings("127.0.0.1:0", None, settings);
        let e = listeners.build(None).await.unwrap_err();
        assert!(e.to_string().contains("TLS settings of 127.0.0.1:0"), "{e}");
    }

    #[test]
    fn alpn_selection() {
        let h2 = b"h2".to_vec();
        let h1 = b"http/1.1".to_vec();
        let other = b"spdy/3".to_vec();
        let both = [h1.clone(), h2.clone()];
        assert_eq!(select_alpn(None, &both).unwrap(), None);
        assert_eq!(
            select_alpn(Some(&ALPN::H2H1), &both).unwrap(),
            Some(h2.clone())
        );
        assert_eq!(
            select_alpn(Some(&ALPN::H2H1), std::slice::from_ref(&h1)).unwrap(),
            Some(h1.clone())
        );
        assert_eq!(select_alpn(Some(&ALPN::H1), &both).unwrap(), Some(h1));
        assert_eq!(
            select_alpn(Some(&ALPN::H2H1), std::slice::from_ref(&other)).unwrap(),
            None
        );
        assert_eq!(select_alpn(Some(&ALPN::H2H1), &[]).unwrap(), None);
        assert_eq!(select_alpn(Some(&ALPN::H2), &[]).unwrap(), None);
        let err = select_alpn(Some(&ALPN::H2), &[other]).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::TLSHandshakeFailure);
    }

    #[test]
    fn settings_without_certificate_fail_to_build() {
        let mut settings = TlsSettings::empty().unwrap();
        settings.set_provider(Arc::new(NoProvider));
        let err = settings.build().unwrap_err();
        assert_eq!(err.etype(), &ErrorType::InternalError);
    }

    #[test]
    fn no_backend_is_a_typed_error() {
        if !neutral::Backend::compiled_in().is_empty() {
            return; // built with a backend feature: covered by the conformance suite
        }
        let cert_key = Arc::new(CertKey::new(vec![b"cert".to_vec()], b"key".to_vec()));
        let err = TlsSettings::with_cert_key(cert_key)
            .unwrap()
            .build()
            .unwrap_err();
        assert_eq!(err.etype(), &ErrorType::InternalError);
        assert!(err.to_string().contains("no TLS backend"), "{err}");
    }

    #[derive(Debug)]
    struct NoProvider;

    impl TlsProvider for NoProvider {
        fn name(&self) -> &'static str {
            "none"
        }
        fn new_server(&self, _: neutral::ServerConfig) -> Result<Arc<dyn TlsServer>> {
            Error::e_explain(ErrorType::InternalError, "none")
        }
        fn new_client(&self, _: neutral::ClientConfig) -> Result<Arc<dyn neutral::TlsClient>> {
            Error::e_explain(ErrorType::InternalError, "none")
        }
    }
}
