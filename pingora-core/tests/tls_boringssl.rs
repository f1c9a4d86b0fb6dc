//! The TLS conformance suite against the BoringSSL backend; it needs the `boringssl` feature:
//! `cargo test -p pingora-core --features boringssl --test tls_boringssl`.

mod tls_support;

fn provider() -> std::sync::Arc<dyn pingora_core::tls::TlsProvider> {
    pingora_core::tls::Backend::BoringSsl
        .provider()
        .expect("the boringssl feature compiles the backend in")
}

tls_support::conformance_suite!();

// Pingora's OpenSSL-shaped API (`TlsAccept` over `SslRef`, settings deref to the builder).
tls_support::pingora_shaped::pingora_shaped_suite!(pingora_rustls::provider());
