//! Helpers over the TLS library's handshake objects, under the names Pingora's
//! `pingora_openssl::ext` / `pingora_boringssl::ext` give them, for code written for Pingora
//! (a `TlsAccept` certificate callback that sets the certificate of one handshake, say).
//!
//! Only the helpers the library's safe API can provide are here; see the crate docs for those
//! of Pingora's that are not.

use crate::ossl::error::ErrorStack;
use crate::ossl::pkey::{PKeyRef, Private};
use crate::ossl::ssl::{Ssl, SslAcceptor, SslRef};
use crate::ossl::x509::X509Ref;

/// Presents `cert` as the leaf certificate of the handshake `ssl`.
///
/// # Errors
///
/// The library's error, if it refuses the certificate.
pub fn ssl_use_certificate(ssl: &mut SslRef, cert: &X509Ref) -> Result<(), ErrorStack> {
    ssl.set_certificate(cert)
}

/// Signs the handshake `ssl` with `key` (the private key of its certificate).
///
/// # Errors
///
/// The library's error, if the key does not fit.
pub fn ssl_use_private_key(ssl: &mut SslRef, key: &PKeyRef<Private>) -> Result<(), ErrorStack> {
    ssl.set_private_key(key)
}

/// Appends `cert` to the chain the handshake `ssl` presents after its leaf.
///
/// # Errors
///
/// The library's error, if it refuses the certificate.
pub fn ssl_add_chain_cert(ssl: &mut SslRef, cert: &X509Ref) -> Result<(), ErrorStack> {
    crate::shim::add_chain_cert(ssl, &cert.to_owned())
}

/// A new handshake object with the settings of `acceptor`.
///
/// # Errors
///
/// The library's error, if it cannot allocate one.
pub fn ssl_from_acceptor(acceptor: &SslAcceptor) -> Result<Ssl, ErrorStack> {
    Ssl::new(acceptor.context())
}

/// Empties this thread's queue of library errors (left by a call whose failure was handled).
pub fn clear_error_stack() {
    let _ = ErrorStack::get();
}

/// Accepted for compatibility: renegotiation stays refused (it is off in TLS 1.3 and a
/// known attack surface before).
pub fn ssl_set_renegotiate_mode_freely(_ssl: &mut SslRef) {}

/// Accepted for compatibility: the key shares offered are the library's defaults.
pub fn ssl_use_second_key_share(_ssl: &mut SslRef, _enabled: bool) {}
