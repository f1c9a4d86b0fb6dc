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

// Pingora's OpenSSL-shaped API (`TlsAccept` over `SslRef`, settings deref to the builder), with
// pingora-core's `openssl` feature.
#[cfg(feature = "openssl")]
tls_support::pingora_shaped::pingora_shaped_suite!(pingora_rustls::provider());
