//! The BoringSSL TLS backend of Pingora (`boring` + `tokio-boring`; BoringSSL is built from
//! source, which needs `cmake`, `clang` and `libclang-dev`, and takes minutes).
//!
//! [`provider`] gives the [`TlsProvider`] that pingora-core drives; all BoringSSL code of
//! Pingora lives in this crate. It cannot be linked into one binary with `pingora-openssl`:
//! BoringSSL's static libraries export the same symbols as the system OpenSSL.
//!
//! The two libraries share their API, so the two crates share their implementation: `common`
//! is one source (kept in `pingora-openssl/src/common`, linked here), compiled against
//! `boring` in this crate; `shim.rs` holds the few places where `boring` differs from
//! `openssl`.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod common;
mod shim;

use std::sync::Arc;

use pingora_error::Result;
use pingora_tls::{ClientConfig, ServerConfig, TlsClient, TlsProvider, TlsServer};

pub use boring;
pub use tokio_boring;

// The library's modules at the top of this crate, and `ext`, where code written for Pingora
// finds them (`pingora_boringssl::ssl::SslRef`, `pingora_boringssl::ext::ssl_use_certificate`).
pub use boring::{asn1, dh, ec, error, hash, nid, pkey, ssl, x509};
pub use common::ext;
pub use tokio_boring as tokio_ssl;

// The name the shared implementation uses for the library.
use boring as ossl;

/// The BoringSSL backend as a [`TlsProvider`].
pub fn provider() -> Arc<dyn TlsProvider> {
    Arc::new(BoringsslProvider)
}

/// The BoringSSL backend. See the [crate docs](crate).
#[derive(Debug, Clone, Copy, Default)]
pub struct BoringsslProvider;

impl TlsProvider for BoringsslProvider {
    fn name(&self) -> &'static str {
        "boringssl"
    }

    fn new_server(&self, config: ServerConfig) -> Result<Arc<dyn TlsServer>> {
        common::new_server(config)
    }

    fn new_client(&self, config: ClientConfig) -> Result<Arc<dyn TlsClient>> {
        common::new_client(config)
    }
}
