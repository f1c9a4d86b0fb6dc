//! The TLS conformance suite of pingora-core against the BoringSSL backend.
//!
//! The suite lives in `pingora-core/tests/tls_support`; it runs from this crate so that its
//! test binary links BoringSSL only, never next to the system OpenSSL.

#[path = "../../pingora-core/tests/tls_support/mod.rs"]
mod tls_support;

use tls_support as suite;

fn provider() -> std::sync::Arc<dyn pingora_core::tls::TlsProvider> {
    pingora_boringssl::provider()
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
