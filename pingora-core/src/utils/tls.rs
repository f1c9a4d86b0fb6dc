//! TLS material in a form that does not depend on a TLS backend: certificates and keys as
//! DER bytes, which every backend can load.

use std::fmt;
use std::hash::{Hash, Hasher};

use pingora_error::{Error, ErrorType, Result};

/// Trusted CA certificates, each DER-encoded, that an upstream's certificate is verified
/// against instead of the default trust store.
pub type CaType = Box<[Vec<u8>]>;

/// A certificate chain and its private key, such as the client identity used for mutual TLS.
///
/// Certificates and key are DER-encoded; the chain starts with the leaf certificate, followed
/// by its intermediates. The contents are not parsed here: the TLS backend does that when it
/// loads them.
///
/// A `CertKey` carries a fingerprint, computed once, that identifies its contents: connection
/// pools use it so that connections authenticated with one identity are never reused for
/// another. [`Debug`](fmt::Debug) and [`Display`](fmt::Display) never show the key.
///
/// ```
/// use pingora_core::utils::tls::CertKey;
///
/// let identity = CertKey::new(vec![b"leaf".to_vec(), b"intermediate".to_vec()], b"key".to_vec());
/// assert_eq!(identity.leaf(), b"leaf");
/// assert_eq!(identity.intermediates(), &[b"intermediate".to_vec()]);
/// ```
#[derive(Clone)]
pub struct CertKey {
    certs: Vec<Vec<u8>>,
    key: Vec<u8>,
    fingerprint: u64,
}

// === impl CertKey ===

impl CertKey {
    /// A certificate chain, leaf first, and the leaf's private key, all DER-encoded.
    ///
    /// # Panics
    ///
    /// If `certs` is empty; [`try_new`](Self::try_new) returns an error instead.
    pub fn new(certs: Vec<Vec<u8>>, key: Vec<u8>) -> Self {
        Self::try_new(certs, key).expect("a CertKey needs at least one certificate")
    }

    /// Like [`new`](Self::new), but fails instead of panicking.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InternalError`] if `certs` is empty.
    pub fn try_new(certs: Vec<Vec<u8>>, key: Vec<u8>) -> Result<Self> {
        if certs.is_empty() {
            return Error::e_explain(
                ErrorType::InternalError,
                "a CertKey needs at least one certificate",
            );
        }
        let mut hasher = super::process_hasher();
        certs.hash(&mut hasher);
        key.hash(&mut hasher);
        let fingerprint = hasher.finish();
        Ok(CertKey {
            certs,
            key,
            fingerprint,
        })
    }

    /// The leaf certificate, DER-encoded.
    pub fn leaf(&self) -> &[u8] {
        // `try_new` guarantees one certificate.
        &self.certs[0]
    }

    /// The intermediate certificates, DER-encoded, in chain order.
    pub fn intermediates(&self) -> &[Vec<u8>] {
        &self.certs[1..]
    }

    /// The whole chain, leaf first.
    pub fn certs(&self) -> &[Vec<u8>] {
        &self.certs
    }

    /// The private key, DER-encoded.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// A hash of the chain and the key: equal for equal contents, different (but for a
    /// 2<sup>-64</sup> chance) for different ones. It is stable for the life of the process
    /// only, and computed with secret keys, so it reveals nothing about the private key.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl Hash for CertKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint.hash(state);
    }
}

impl PartialEq for CertKey {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint && self.certs == other.certs && self.key == other.key
    }
}

impl Eq for CertKey {}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertKey")
            .field("certs", &self.certs.len())
            .field("fingerprint", &format_args!("{:016x}", self.fingerprint))
            .finish_non_exhaustive()
    }
}

impl fmt::Display for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cert-key {:016x}", self.fingerprint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accessors_and_identity() {
        let ck = CertKey::new(vec![b"leaf".to_vec(), b"mid".to_vec()], b"secret".to_vec());
        assert_eq!(ck.leaf(), b"leaf");
        assert_eq!(ck.intermediates(), &[b"mid".to_vec()]);
        assert_eq!(ck.certs().len(), 2);
        assert_eq!(ck.key(), b"secret");

        let same = CertKey::new(vec![b"leaf".to_vec(), b"mid".to_vec()], b"secret".to_vec());
        assert_eq!(ck, same);
        assert_eq!(ck.fingerprint(), same.fingerprint());

        let other_key = CertKey::new(vec![b"leaf".to_vec(), b"mid".to_vec()], b"other".to_vec());
        assert_ne!(ck.fingerprint(), other_key.fingerprint());
        let other_chain = CertKey::new(vec![b"leaf".to_vec()], b"secret".to_vec());
        assert_ne!(ck.fingerprint(), other_chain.fingerprint());
        // Moving bytes between certificates is a different chain.
        let shifted = CertKey::new(vec![b"lea".to_vec(), b"fmid".to_vec()], b"secret".to_vec());
        assert_ne!(ck.fingerprint(), shifted.fingerprint());
    }

    #[test]
    fn empty_chain_is_an_error() {
        let err = CertKey::try_new(vec![], b"key".to_vec()).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::InternalError);
    }

    #[test]
    fn formatting_hides_the_key() {
        let ck = CertKey::new(vec![b"leaf".to_vec()], b"topsecret".to_vec());
        let debug = format!("{ck:?}");
        let display = ck.to_string();
        assert!(!debug.contains("topsecret") && !debug.contains("116, 111, 112"));
        assert!(!display.contains("topsecret"));
        assert_eq!(display, format!("cert-key {:016x}", ck.fingerprint()));
    }
}
