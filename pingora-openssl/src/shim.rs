//! Where the `openssl` crate differs from `boring`, for the shared implementation in
//! `common` (`pingora-boringssl/src/shim.rs` is the same interface over `boring`).

use openssl::asn1::Asn1StringRef;
use std::pin::Pin;

use openssl::error::ErrorStack;
use openssl::ssl::{Ssl, SslRef};
use openssl::x509::{X509VerifyResult, X509};
use pingora_error::{Error, Result};
use pingora_tls::Transport;

pub(crate) use tokio_openssl::SslStream;

use crate::common::internal;
use crate::common::session::{handshake_failure, Side};

/// The library, as messages name it.
pub(crate) const LIBRARY: &str = "OpenSSL";

/// Adds `cert` to the chain `ssl` presents.
pub(crate) fn add_chain_cert(ssl: &mut SslRef, cert: &X509) -> Result<(), ErrorStack> {
    ssl.add_chain_cert(cert.clone())
}

/// The text of an ASN.1 string (a name entry), if it is valid UTF-8.
pub(crate) fn asn1_text(data: &Asn1StringRef) -> Option<String> {
    data.to_string().ok()
}

/// Runs the handshake of `ssl` over `io` as `side`.
///
/// # Errors
///
/// `InvalidCert` or `TLSHandshakeFailure` (see [`handshake_failure`]), with the library's
/// error as the cause.
pub(crate) async fn handshake(ssl: Ssl, io: Transport, side: Side) -> Result<SslStream<Transport>> {
    let mut stream =
        SslStream::new(ssl, io).map_err(|e| internal(e, "cannot create a TLS stream"))?;
    let done = match side {
        Side::Client => Pin::new(&mut stream).connect().await,
        Side::Server => Pin::new(&mut stream).accept().await,
    };
    if let Err(e) = done {
        let verify = stream.ssl().verify_result();
        let verify_error = (verify != X509VerifyResult::OK).then(|| verify.error_string());
        let (etype, context) = handshake_failure(side, verify_error, &e.to_string());
        return Err(Error::because(etype, context, e));
    }
    Ok(stream)
}
