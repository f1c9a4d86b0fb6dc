//! The established session: the library's async stream and what its handshake agreed; and
//! how a failed handshake is reported.

use std::any::Any;

use pingora_error::ErrorType;
use pingora_tls::{Established, HandshakeInfo, Transport};

use crate::ossl::ssl::SslRef;
use crate::shim::{self, SslStream};

/// The established session of `stream`.
pub(crate) fn established(stream: SslStream<Transport>) -> Established<SslStream<Transport>> {
    let info = handshake_info(stream.ssl());
    Established::new(shim::LIBRARY, stream, info).with_native(native_ssl)
}

/// The session's `SslRef`, as [`TlsSession::native`](pingora_tls::TlsSession::native) gives it.
fn native_ssl(stream: &SslStream<Transport>) -> &dyn Any {
    stream.ssl()
}

fn handshake_info(ssl: &SslRef) -> HandshakeInfo {
    let mut peer_certs = Vec::new();
    if let Some(leaf) = ssl.peer_certificate() {
        if let Ok(der) = leaf.to_der() {
            peer_certs.push(der);
        }
    }
    if let Some(chain) = ssl.peer_cert_chain() {
        for cert in chain {
            if let Ok(der) = cert.to_der() {
                if !peer_certs.contains(&der) {
                    peer_certs.push(der);
                }
            }
        }
    }
    HandshakeInfo {
        version: ssl.version_str(),
        cipher: ssl.current_cipher().map(|c| c.name()).unwrap_or("unknown"),
        alpn: ssl.selected_alpn_protocol().map(<[u8]>::to_vec),
        peer_certs,
        resumed: ssl.session_reused(),
    }
}

/// Which end of the handshake this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// We connect to a server.
    Client,
    /// We accept a client.
    Server,
}

/// Classifies a failed handshake, for the shim to build its error from: a failed certificate
/// verification (ours of the peer, as `verify_error` tells, or the peer's of ours, as its
/// alert in `reason` tells) is `InvalidCert`, anything else `TLSHandshakeFailure`. Returns the
/// type and the context of the error.
pub(crate) fn handshake_failure(
    side: Side,
    verify_error: Option<&str>,
    reason: &str,
) -> (ErrorType, String) {
    // OpenSSL spells alerts in words ("unknown ca"), BoringSSL in upper-case identifiers
    // ("UNKNOWN_CA").
    let reason = reason.to_ascii_lowercase();
    let cert_problem = verify_error.is_some()
        || [
            "certificate_verify_failed",
            "certificate verify failed",
            "peer_did_not_return_a_certificate",
            "peer did not return a certificate",
            "certificate_required",
            "certificate required",
            "unknown_ca",
            "unknown ca",
            "bad_certificate",
            "bad certificate",
            "certificate_expired",
            "certificate expired",
        ]
        .iter()
        .any(|needle| reason.contains(needle));
    let etype = if cert_problem {
        ErrorType::InvalidCert
    } else {
        ErrorType::TLSHandshakeFailure
    };
    let what = match side {
        Side::Client => "TLS handshake with the server failed",
        Side::Server => "TLS handshake with the client failed",
    };
    let context = match verify_error {
        Some(verify_error) => format!("{what}: {verify_error}"),
        None => what.to_string(),
    };
    (etype, context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_failures_are_invalid_cert_in_either_spelling() {
        for reason in [
            "error:0A000086:SSL routines::certificate verify failed",
            "error:10000418:SSL routines:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA",
            "sslv3 alert bad certificate",
            "TLSV1_CERTIFICATE_REQUIRED",
        ] {
            let (etype, context) = handshake_failure(Side::Client, None, reason);
            assert_eq!(etype, ErrorType::InvalidCert, "{reason}");
            assert_eq!(context, "TLS handshake with the server failed");
        }
    }

    #[test]
    fn a_failed_verification_is_named_in_the_context() {
        let (etype, context) =
            handshake_failure(Side::Server, Some("certificate has expired"), "whatever");
        assert_eq!(etype, ErrorType::InvalidCert);
        assert_eq!(
            context,
            "TLS handshake with the client failed: certificate has expired"
        );
    }

    #[test]
    fn other_failures_are_handshake_failures() {
        let (etype, _) = handshake_failure(Side::Client, None, "wrong version number");
        assert_eq!(etype, ErrorType::TLSHandshakeFailure);
    }
}
