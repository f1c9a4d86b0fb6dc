//! The implementation shared by `pingora-openssl` and `pingora-boringssl`.
//!
//! # One source, two crates
//!
//! The `openssl` and `boring` crates offer nearly the same API, so the two backends are one
//! text: this directory lives in `pingora-openssl/src/common/`, and
//! `pingora-boringssl/src/common` is a symbolic link to it (git keeps the link, and
//! `cargo package` stores the files it points to). Each crate compiles it against its own
//! library and supplies two things at its root:
//!
//! - `ossl`, its library (`use openssl as ossl` or `use boring as ossl`), which this code
//!   names instead of either crate;
//! - `shim`, the few items whose API differs between the libraries: the async stream type and
//!   the handshake that creates it, adding a chain certificate, reading an ASN.1 string, and
//!   the library's name for messages.
//!
//! A fix made here therefore lands in both backends; a difference between the libraries goes
//! in both `shim.rs` files. Both builds are tested by pingora-core's TLS conformance suite
//! (`tests/tls_openssl.rs`, `tests/tls_boringssl.rs`).

pub(crate) mod client;
pub mod ext;
mod resume;
pub(crate) mod server;
pub(crate) mod session;

use std::sync::Arc;

use pingora_error::{Error, ErrorType, Result};
use pingora_tls::{CertKey, ClientConfig, ServerConfig, TlsClient, TlsServer, TlsVersion};

use crate::ossl;
use crate::ossl::pkey::{PKey, Private};
use crate::ossl::ssl::SslVersion;
use crate::ossl::x509::X509;
use crate::shim;

/// A server for one listener, as [`TlsProvider::new_server`](pingora_tls::TlsProvider) makes.
pub(crate) fn new_server(config: ServerConfig) -> Result<Arc<dyn TlsServer>> {
    Ok(Arc::new(server::Server::new(config)?))
}

/// A client for one connector, as [`TlsProvider::new_client`](pingora_tls::TlsProvider) makes.
pub(crate) fn new_client(config: ClientConfig) -> Result<Arc<dyn TlsClient>> {
    Ok(Arc::new(client::Client::new(config)?))
}

/// The library's value for a protocol version.
fn ssl_version(version: TlsVersion) -> SslVersion {
    match version {
        TlsVersion::Tls12 => SslVersion::TLS1_2,
        TlsVersion::Tls13 => SslVersion::TLS1_3,
    }
}

/// A certificate chain and key parsed for the library.
struct Identity {
    leaf: X509,
    chain: Vec<X509>,
    key: PKey<Private>,
}

// === impl Identity ===

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
    fn apply(&self, ssl: &mut ossl::ssl::SslRef) -> Result<()> {
        let wrap = |e| Error::because(ErrorType::InvalidCert, "cannot use the certificate", e);
        ssl.set_certificate(&self.leaf).map_err(wrap)?;
        ssl.set_private_key(&self.key).map_err(wrap)?;
        for cert in &self.chain {
            shim::add_chain_cert(ssl, cert).map_err(wrap)?;
        }
        Ok(())
    }
}

/// A trust store made of `ca` (DER).
fn x509_store(ca: &[Vec<u8>]) -> Result<ossl::x509::store::X509Store> {
    let wrap = |e| Error::because(ErrorType::InvalidCert, "unusable CA certificate", e);
    let mut store = ossl::x509::store::X509StoreBuilder::new().map_err(wrap)?;
    for der in ca {
        store
            .add_cert(X509::from_der(der).map_err(wrap)?)
            .map_err(wrap)?;
    }
    Ok(store.build())
}

/// An `InternalError` for a failed library call: `what` could not be done.
pub(crate) fn internal(e: ossl::error::ErrorStack, what: &str) -> Box<Error> {
    Error::because(
        ErrorType::InternalError,
        format!("{} ({})", what, shim::LIBRARY),
        e,
    )
}
