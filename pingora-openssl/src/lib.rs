//! The OpenSSL TLS backend of Pingora, on the system's OpenSSL 3 (`openssl` +
//! `tokio-openssl`).
//!
//! [`provider`] gives the [`TlsProvider`] that pingora-core drives; all OpenSSL code of Pingora
//! lives in this crate. This crate cannot be linked into one binary with `pingora-boringssl`.

mod client;
mod resume;
mod server;
mod session;

use std::sync::Arc;

use openssl::pkey::{PKey, Private};
use openssl::ssl::SslVersion;
use openssl::x509::X509;
use pingora_error::{Error, ErrorType, Result};
use pingora_tls::{
    CertKey, ClientConfig, ServerConfig, TlsClient, TlsProvider, TlsServer, TlsVersion,
};

pub use openssl;
pub use tokio_openssl;

/// The OpenSSL backend as a [`TlsProvider`].
pub fn provider() -> Arc<dyn TlsProvider> {
    Arc::new(OpensslProvider)
}

/// The OpenSSL backend. See the [crate docs](crate).
#[derive(Debug, Clone, Copy, Default)]
pub struct OpensslProvider;

impl TlsProvider for OpensslProvider {
    fn name(&self) -> &'static str {
        "openssl"
    }

    fn new_server(&self, config: ServerConfig) -> Result<Arc<dyn TlsServer>> {
        Ok(Arc::new(server::OpensslServer::new(config)?))
    }

    fn new_client(&self, config: ClientConfig) -> Result<Arc<dyn TlsClient>> {
        Ok(Arc::new(client::OpensslClient::new(config)?))
    }
}

/// OpenSSL's value for a protocol version.
fn ssl_version(version: TlsVersion) -> SslVersion {
    match version {
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    }
}

/// A certificate chain and key parsed for OpenSSL.
struct Identity {
    leaf: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
}

impl Identity {
    fn parse(cert_key: &CertKey) -> Result<Self> {
        let parse_cert = |der: &[u8]| {
            X509::from_der(der)
                .map_err(|e| Error::because(ErrorType::InvalidCert, "unusable certificate", e))
        };
        Ok(Identity {
            leaf: parse_cert(cert_key.leaf())?,
            chain: cert_key
                .intermediates()
                .iter()
                .map(|c| parse_cert(c))
                .collect::<Result<_>>()?,
            key: PKey::private_key_from_der(cert_key.key())
                .map_err(|e| Error::because(ErrorType::InvalidCert, "unusable private key", e))?,
        })
    }

    /// Presents this identity on one connection.
    fn apply(&self, ssl: &mut openssl::ssl::SslRef) -> Result<()> {
        let wrap = |e| Error::because(ErrorType::InvalidCert, "cannot use the certificate", e);
        ssl.set_certificate(&self.leaf).map_err(wrap)?;
        ssl.set_private_key(&self.key).map_err(wrap)?;
        for cert in &self.chain {
            ssl.add_chain_cert(cert.clone()).map_err(wrap)?;
        }
        Ok(())
    }
}

/// A trust store made of `ca` (DER).
fn x509_store(ca: &[Vec<u8>]) -> Result<openssl::x509::store::X509Store> {
    let wrap = |e| Error::because(ErrorType::InvalidCert, "unusable CA certificate", e);
    let mut store = openssl::x509::store::X509StoreBuilder::new().map_err(wrap)?;
    for der in ca {
        store
            .add_cert(X509::from_der(der).map_err(wrap)?)
            .map_err(wrap)?;
    }
    Ok(store.build())
}

fn internal(e: openssl::error::ErrorStack, what: &str) -> Box<Error> {
    Error::because(ErrorType::InternalError, what.to_string(), e)
}
