//! Where the `boring` crate differs from `openssl`, for the shared implementation in
//! `common` (`pingora-openssl/src/shim.rs` is the same interface over `openssl`).

use boring::asn1::Asn1StringRef;
use boring::error::ErrorStack;
use boring::ssl::{Ssl, SslRef};
use boring::x509::X509;
use pingora_error::{Error, Result};
use pingora_tls::Transport;
use tokio_boring::SslStreamBuilder;

pub(crate) use tokio_boring::SslStream;

use crate::common::session::{handshake_failure, Side};

/// The library, as messages name it.
pub(crate) const LIBRARY: &str = "BoringSSL";

/// Adds `cert` to the chain `ssl` presents.
pub(crate) fn add_chain_cert(ssl: &mut SslRef, cert: &X509) -> Result<(), ErrorStack> {
    ssl.add_chain_cert(cert)
}

/// The text of an ASN.1 string (a name entry), if it is valid UTF-8.
pub(crate) fn asn1_text(data: &Asn1StringRef) -> Option<String> {
    data.as_utf8().ok().map(|text| text.to_string())
}

/// Runs the handshake of `ssl` over `io` as `side`.
///
/// # Errors
///
/// `InvalidCert` or `TLSHandshakeFailure` (see [`handshake_failure`]), with the library's
/// error in the context (it holds the transport, so it cannot be the cause).
pub(crate) async fn handshake(ssl: Ssl, io: Transport, side: Side) -> Result<SslStream<Transport>> {
    let builder = SslStreamBuilder::new(ssl, io);
    let done = match side {
        Side::Client => builder.connect().await,
        Side::Server => builder.accept().await,
    };
    done.map_err(|e| {
        // BoringSSL reports an error ("invalid call") when no certificate was verified at all.
        let verify_error = e
            .ssl()
            .filter(|ssl| ssl.peer_certificate().is_some())
            .and_then(|ssl| ssl.verify_result().err())
            .map(|verify| verify.error_string());
        let (etype, context) = handshake_failure(side, verify_error, &e.to_string());
        Error::explain(etype, format!("{context}: {e}"))
    })
}
