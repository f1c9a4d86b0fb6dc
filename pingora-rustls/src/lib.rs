//! The rustls TLS backend of Pingora, on the `ring` crypto provider.
//!
//! [`provider`] gives the [`TlsProvider`] that pingora-core drives; all rustls code of Pingora
//! lives in this crate. The crypto provider is always passed explicitly, so this backend works
//! whether or not another crate in the binary also compiled in rustls' `aws-lc-rs` provider.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod client;
mod server;
mod session;

use std::sync::Arc;

use pingora_error::{Error, ErrorType};
use pingora_tls::{ClientConfig, ServerConfig, TlsClient, TlsProvider, TlsServer, TlsVersion};
use rustls::crypto::CryptoProvider;

pub use rustls;
pub use tokio_rustls;

/// The rustls backend as a [`TlsProvider`].
pub fn provider() -> Arc<dyn TlsProvider> {
    Arc::new(RustlsProvider::new())
}

/// The rustls backend. See the [crate docs](crate).
#[derive(Debug, Clone)]
pub struct RustlsProvider {
    crypto: Arc<CryptoProvider>,
}

impl RustlsProvider {
    /// The backend with the `ring` crypto provider.
    pub fn new() -> Self {
        RustlsProvider {
            crypto: Arc::new(rustls::crypto::ring::default_provider()),
        }
    }
}

impl Default for RustlsProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsProvider for RustlsProvider {
    fn name(&self) -> &'static str {
        "rustls"
    }

    fn new_server(&self, config: ServerConfig) -> pingora_error::Result<Arc<dyn TlsServer>> {
        config.refuse_native("rustls")?;
        Ok(Arc::new(server::RustlsServer::new(
            Arc::clone(&self.crypto),
            config,
        )?))
    }

    fn new_client(&self, config: ClientConfig) -> pingora_error::Result<Arc<dyn TlsClient>> {
        Ok(Arc::new(client::RustlsClient::new(
            Arc::clone(&self.crypto),
            config,
        )?))
    }
}

/// The protocol versions between `min` and `max` (defaults: TLS 1.2 and 1.3).
fn versions(
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Vec<&'static rustls::SupportedProtocolVersion> {
    let min = min.unwrap_or(TlsVersion::Tls12);
    let max = max.unwrap_or(TlsVersion::Tls13);
    let mut out = Vec::with_capacity(2);
    if min <= TlsVersion::Tls13 && TlsVersion::Tls13 <= max {
        out.push(&rustls::version::TLS13);
    }
    if min <= TlsVersion::Tls12 && TlsVersion::Tls12 <= max {
        out.push(&rustls::version::TLS12);
    }
    out
}

/// Maps a rustls failure to Pingora's error kinds: certificate problems are `InvalidCert`,
/// everything else `TLSHandshakeFailure`.
fn map_io_error(e: std::io::Error, what: &str) -> Box<Error> {
    let etype = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(_))
        | Some(rustls::Error::NoCertificatesPresented)
        | Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::BadCertificate
            | rustls::AlertDescription::CertificateExpired
            | rustls::AlertDescription::CertificateRequired
            | rustls::AlertDescription::UnknownCA
            | rustls::AlertDescription::CertificateUnknown,
        )) => ErrorType::InvalidCert,
        _ => ErrorType::TLSHandshakeFailure,
    };
    Error::because(etype, what.to_string(), e)
}

/// Maps a configuration failure (bad certificate or key).
fn config_error(e: rustls::Error, what: &str) -> Box<Error> {
    Error::because(ErrorType::InvalidCert, what.to_string(), e)
}
