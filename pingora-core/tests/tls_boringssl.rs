//! The TLS conformance suite against the BoringSSL backend; it needs the `boringssl` feature:
//! `cargo test -p pingora-core --features boringssl --test tls_boringssl`.

mod tls_support;

use tls_support as suite;

fn provider() -> std::sync::Arc<dyn pingora_core::tls::TlsProvider> {
    pingora_core::tls::Backend::BoringSsl
        .provider()
        .expect("the boringssl feature compiles the backend in")
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
