//! The s2n-tls TLS backend of Pingora (`s2n-tls` + `s2n-tls-tokio`, on AWS-LC, linked
//! statically).
//!
//! [`provider`] gives the [`TlsProvider`] that pingora-core drives; all s2n code of Pingora
//! lives in this crate. s2n-specific knobs live on [`S2nProvider`], not on pingora-core's
//! types.
//!
//! # Blinding
//!
//! After a failed handshake, s2n waits a random delay (up to 30 s by default) before closing
//! the connection, to hide timing side channels. [`S2nProvider::with_max_blinding_delay`]
//! changes the bound; `0` disables blinding (the test suite does this).
//!
//! # Not supported
//!
//! `SSLKEYLOGFILE` logging (s2n only offers it through an `unsafe` callback).
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod client;
mod danger;
mod server;
mod session;

use std::sync::Arc;

use pingora_error::{Error, ErrorType, Result};
use pingora_tls::{ClientConfig, ServerConfig, TlsClient, TlsProvider, TlsServer, TlsVersion};
use s2n_tls::security::Policy;

pub use s2n_tls;
pub use s2n_tls_tokio;

/// The s2n backend as a [`TlsProvider`], with s2n's default blinding.
pub fn provider() -> Arc<dyn TlsProvider> {
    Arc::new(S2nProvider::default())
}

/// The s2n backend. See the [crate docs](crate).
#[derive(Debug, Clone, Copy, Default)]
pub struct S2nProvider {
    max_blinding_delay: Option<u32>,
    security_policy: Option<&'static str>,
}

impl S2nProvider {
    /// The backend with s2n's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses the s2n security policy named `version` (such as `"default_tls13"`, the default,
    /// or a dated one like `"20230317"`) instead of the one chosen from the TLS versions of the
    /// settings. An unknown name fails when the listener or connector is created.
    pub fn with_security_policy(mut self, version: &'static str) -> Self {
        self.security_policy = Some(version);
        self
    }

    /// Bounds the delay, in seconds, before a failed handshake's connection is closed.
    pub fn with_max_blinding_delay(mut self, seconds: u32) -> Self {
        self.max_blinding_delay = Some(seconds);
        self
    }
}

impl TlsProvider for S2nProvider {
    fn name(&self) -> &'static str {
        "s2n"
    }

    fn new_server(&self, config: ServerConfig) -> Result<Arc<dyn TlsServer>> {
        config.refuse_native("s2n")?;
        Ok(Arc::new(server::S2nServer::new(*self, config)?))
    }

    fn new_client(&self, config: ClientConfig) -> Result<Arc<dyn TlsClient>> {
        Ok(Arc::new(client::S2nClient::new(*self, config)?))
    }
}

/// A config builder with the provider's common settings and the security policy for the
/// versions `min..=max` (defaults TLS 1.2 to 1.3).
fn config_builder(
    provider: S2nProvider,
    min: Option<TlsVersion>,
    max: Option<TlsVersion>,
) -> Result<s2n_tls::config::Builder> {
    let mut builder = s2n_tls::config::Config::builder();
    let policy = match (provider.security_policy, min, max) {
        (Some(version), _, _) => Policy::from_version(version),
        (None, _, Some(TlsVersion::Tls12)) => Policy::from_version("20240501"),
        (None, Some(TlsVersion::Tls13), _) => Policy::from_version("20190801"),
        (None, _, _) => Ok(s2n_tls::security::DEFAULT_TLS13),
    }
    .map_err(|e| s2n_error(e, "no s2n security policy for these TLS versions"))?;
    builder
        .set_security_policy(&policy)
        .map_err(|e| s2n_error(e, "cannot set the s2n security policy"))?;
    if let Some(delay) = provider.max_blinding_delay {
        builder
            .set_max_blinding_delay(delay)
            .map_err(|e| s2n_error(e, "cannot set the blinding delay"))?;
    }
    Ok(builder)
}

/// Maps an s2n failure: certificate problems are `InvalidCert`, other failures
/// `TLSHandshakeFailure`.
fn s2n_error(e: s2n_tls::error::Error, what: &str) -> Box<Error> {
    let etype = if e.name().contains("CERT") {
        ErrorType::InvalidCert
    } else {
        ErrorType::TLSHandshakeFailure
    };
    Error::because(etype, what.to_string(), e)
}
