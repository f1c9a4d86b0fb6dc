//! The TLS conformance suite against the rustls backend.

mod tls_support;

fn provider() -> std::sync::Arc<dyn pingora_core::tls::TlsProvider> {
    pingora_rustls::provider()
}

tls_support::conformance_suite!();
