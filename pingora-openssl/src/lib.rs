//! The OpenSSL TLS backend of Pingora, on the system's OpenSSL 3 (`openssl` +
//! `tokio-openssl`).
//!
//! [`provider`] gives the [`TlsProvider`] that pingora-core drives; all OpenSSL code of Pingora
//! lives in this crate. This crate cannot be linked into one binary with `pingora-boringssl`.
//!
//! The implementation is shared with `pingora-boringssl` (one source, compiled against either
//! library); `shim.rs` holds the few places where the `openssl` crate differs from `boring`.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod common;
mod shim;

use std::sync::Arc;

use pingora_error::Result;
use pingora_tls::{ClientConfig, ServerConfig, TlsClient, TlsProvider, TlsServer};

pub use openssl;
pub use tokio_openssl;

// The library's modules at the top of this crate, and `ext`, where code written for Pingora
// finds them (`pingora_openssl::ssl::SslRef`, `pingora_openssl::ext::ssl_use_certificate`).
pub use common::ext;
pub use openssl::{asn1, dh, ec, error, hash, nid, pkey, ssl, x509};
pub use tokio_openssl as tokio_ssl;

// The name the shared implementation uses for the library.
use openssl as ossl;

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
        common::new_server(config)
    }

    fn new_client(&self, config: ClientConfig) -> Result<Arc<dyn TlsClient>> {
        common::new_client(config)
    }
}
