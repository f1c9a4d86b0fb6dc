//! The TLS conformance suite against the openssl backend.
//!
//! Off in builds with the `boringssl` feature: OpenSSL cannot link next to BoringSSL there
//! (`tests/tls_boringssl.rs` runs the suite against BoringSSL instead).
#![cfg(not(feature = "boringssl"))]

mod tls_support;

use tls_support as suite;

fn provider() -> std::sync::Arc<dyn pingora_core::tls::TlsProvider> {
    pingora_openssl::provider()
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            suite::$name(provider()).await;
        }
    )*};
}

conformance!(
    handshake_and_digest,
    tls12,
    resumption,
    sni_certificate_callback,
    alpn,
    mtls,
    verification,
    garbage_and_timeout,
    bad_settings,
    curl,
    openssl_s_client,
);
