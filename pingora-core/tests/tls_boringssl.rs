//! The TLS conformance suite against the BoringSSL backend; it needs the `boringssl` feature:
//! `cargo test -p pingora-core --features boringssl --test tls_boringssl`.

mod tls_support;

fn provider() -> std::sync::Arc<dyn pingora_core::tls::TlsProvider> {
    pingora_core::tls::Backend::BoringSsl
        .provider()
        .expect("the boringssl feature compiles the backend in")
}

tls_support::conformance_suite!();

/// Pingora's OpenSSL-shaped API (`TlsAccept` over `SslRef`, settings deref to the builder).
mod pingora_shaped {
    use super::{provider, tls_support::pingora_shaped};

    #[tokio::test]
    async fn callbacks_over_sslref_and_builder_settings() {
        pingora_shaped::pingora_shaped_callbacks(provider()).await;
    }

    #[tokio::test]
    async fn settings_from_a_builder() {
        pingora_shaped::settings_from_a_builder(provider()).await;
    }

    #[tokio::test]
    async fn rustls_refuses_openssl_settings() {
        pingora_shaped::other_backends_refuse_openssl_settings(pingora_rustls::provider()).await;
    }
}
