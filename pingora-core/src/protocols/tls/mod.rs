//! TLS, independent of the backend that implements it.
//!
//! pingora-core speaks TLS through a [`TlsProvider`] (defined in `pingora-tls`), which the
//! backend crates implement: `pingora-openssl`, `pingora-boringssl`, `pingora-s2n` and
//! `pingora-rustls`. pingora-core never names a backend type.
//!
//! # Choosing the backend
//!
//! The features `openssl`, `boringssl`, `s2n` and `rustls` compile backends in; several may
//! be on at once (except `openssl` with `boringssl`, which cannot link into one binary). The
//! provider used is, in this order:
//!
//! 1. the one a listener or connector was given explicitly
//!    ([`TlsSettings::set_provider`](crate::listeners::tls::TlsSettings::set_provider),
//!    [`TransportConnector::set_tls_provider`](crate::connectors::TransportConnector::set_tls_provider));
//! 2. the one installed with [`install_default_provider`];
//! 3. the first compiled-in backend in the order of [`Backend::compiled_in`]: openssl,
//!    boringssl, s2n, rustls.
//!
//! With no backend compiled in and none installed, TLS listeners fail to start and TLS
//! upstreams fail to connect with [`ErrorType::InternalError`] "no TLS backend", while
//! plaintext works as usual.

pub(crate) mod stream;
mod tls_ref;

use std::sync::{Arc, OnceLock};

use pingora_error::{Error, ErrorType, Result};

#[cfg(all(feature = "openssl", feature = "boringssl"))]
compile_error!(
    "the `openssl` and `boringssl` features cannot be enabled together: BoringSSL and the \
     system OpenSSL export the same symbols and do not link into one binary"
);

pub use pingora_tls::{
    der, hello, verify, AcceptParams, CaType, CertKey, ClientAuth, ClientConfig, ConnectParams,
    HandshakeInfo, Native, ServerConfig, TlsClient, TlsProvider, TlsServer, TlsSession, TlsVersion,
};
pub use stream::TlsStream;

pub use tls_ref::{HandshakeRef, TlsRef};

// With an OpenSSL-family backend, its library's modules and `ext` helpers here too, as in
// Pingora (`pingora::tls::x509::X509`, `pingora::tls::ext`).
#[cfg(feature = "boringssl")]
pub use pingora_boringssl::{asn1, dh, ec, error, ext, hash, nid, pkey, ssl, x509};
#[cfg(all(feature = "openssl", not(feature = "boringssl")))]
pub use pingora_openssl::{asn1, dh, ec, error, ext, hash, nid, pkey, ssl, x509};

/// The TLS backends pingora-core knows how to pull in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// System OpenSSL 3 (`openssl` feature, `pingora-openssl`).
    OpenSsl,
    /// BoringSSL built from source (`boringssl` feature, `pingora-boringssl`).
    BoringSsl,
    /// s2n-tls on AWS-LC (`s2n` feature, `pingora-s2n`).
    S2n,
    /// rustls with the ring provider (`rustls` feature, `pingora-rustls`).
    Rustls,
}

// === impl Backend ===

impl Backend {
    /// The backends compiled into this build, in order of preference for
    /// [`default_provider`].
    pub fn compiled_in() -> Vec<Backend> {
        [
            Backend::OpenSsl,
            Backend::BoringSsl,
            Backend::S2n,
            Backend::Rustls,
        ]
        .into_iter()
        .filter(|b| b.provider().is_ok())
        .collect()
    }

    /// The provider of this backend.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] if its feature is not enabled.
    pub fn provider(self) -> Result<Arc<dyn TlsProvider>> {
        let provider: Option<Arc<dyn TlsProvider>> = match self {
            #[cfg(feature = "openssl")]
            Backend::OpenSsl => Some(pingora_openssl::provider()),
            #[cfg(feature = "boringssl")]
            Backend::BoringSsl => Some(pingora_boringssl::provider()),
            #[cfg(feature = "s2n")]
            Backend::S2n => Some(pingora_s2n::provider()),
            #[cfg(feature = "rustls")]
            Backend::Rustls => Some(pingora_rustls::provider()),
            _ => None,
        };
        provider.ok_or_else(|| {
            Error::explain(
                ErrorType::InternalError,
                format!("the TLS backend {self:?} is not compiled in (enable its feature)"),
            )
        })
    }
}

static INSTALLED: OnceLock<Arc<dyn TlsProvider>> = OnceLock::new();

/// Makes `provider` the process-wide default TLS provider. Only the first call succeeds; later
/// calls give their provider back.
///
/// # Errors
///
/// `provider`, if a default was installed already.
pub fn install_default_provider(
    provider: Arc<dyn TlsProvider>,
) -> std::result::Result<(), Arc<dyn TlsProvider>> {
    INSTALLED.set(provider)
}

/// The default TLS provider: the installed one, else the first compiled-in backend.
///
/// # Errors
///
/// [`ErrorType::InternalError`] "no TLS backend" when no provider is installed and no
/// backend feature is enabled.
pub fn default_provider() -> Result<Arc<dyn TlsProvider>> {
    if let Some(provider) = INSTALLED.get() {
        return Ok(Arc::clone(provider));
    }
    for backend in [
        Backend::OpenSsl,
        Backend::BoringSsl,
        Backend::S2n,
        Backend::Rustls,
    ] {
        if let Ok(provider) = backend.provider() {
            return Ok(provider);
        }
    }
    Error::e_explain(
        ErrorType::InternalError,
        "no TLS backend: enable one of the features openssl, boringssl, s2n, rustls, or install \
         a provider with pingora_core::tls::install_default_provider",
    )
}

/// The digest of a finished handshake: cipher, version and the peer's leaf certificate facts.
pub(crate) fn ssl_digest(
    info: &HandshakeInfo,
    extension: Option<Arc<dyn std::any::Any + Send + Sync>>,
) -> super::digest::SslDigest {
    let mut digest = super::digest::SslDigest {
        cipher: info.cipher,
        version: info.version,
        ..Default::default()
    };
    if let Some(leaf) = info.peer_certs.first() {
        let summary = der::summarize(leaf);
        digest.organization = summary.organization;
        digest.serial_number = summary.serial_number;
        digest.cert_digest = der::sha256(leaf);
    }
    if let Some(value) = extension {
        digest.extension.set(value);
    }
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_selection_is_explicit() {
        let compiled = Backend::compiled_in();
        assert_eq!(
            cfg!(feature = "rustls"),
            compiled.contains(&Backend::Rustls)
        );
        assert_eq!(
            cfg!(feature = "openssl"),
            compiled.contains(&Backend::OpenSsl)
        );
        assert_eq!(cfg!(feature = "s2n"), compiled.contains(&Backend::S2n));
        match default_provider() {
            Ok(provider) => assert!(
                !compiled.is_empty() || INSTALLED.get().is_some(),
                "{provider:?}"
            ),
            Err(e) => {
                assert!(compiled.is_empty());
                assert_eq!(e.etype(), &ErrorType::InternalError);
                assert!(e.to_string().contains("no TLS backend"));
            }
        }
    }
}
