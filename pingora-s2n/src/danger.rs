//! The one `unsafe` call of this backend: turning certificate verification off, which s2n
//! marks `unsafe` because it is a security downgrade rather than a memory hazard.
#![allow(unsafe_code)]

use pingora_error::Result;

/// Turns off verification of the server's certificate on `builder`.
pub(crate) fn disable_verification(builder: &mut s2n_tls::config::Builder) -> Result<()> {
    // SAFETY: no memory safety is at stake: s2n marks this `unsafe` as a warning that the
    // connection will accept any certificate. Pingora's rules call for exactly that when a
    // peer disables `verify_cert` or has no SNI.
    unsafe { builder.disable_x509_verification() }
        .map_err(|e| crate::s2n_error(e, "cannot disable certificate verification"))?;
    Ok(())
}
