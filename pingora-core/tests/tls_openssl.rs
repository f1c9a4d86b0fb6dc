//! The TLS conformance suite against the openssl backend.
//!
//! Off in builds with the `boringssl` feature: OpenSSL cannot link next to BoringSSL there
//! (`tests/tls_boringssl.rs` runs the suite against BoringSSL instead).
#![cfg(not(feature = "boringssl"))]

mod tls_support;

fn provider() -> std::sync::Arc<dyn pingora_core::tls::TlsProvider> {
    pingora_openssl::provider()
}

tls_support::conformance_suite!();
