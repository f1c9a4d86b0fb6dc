//! TLS material in a form that does not depend on a TLS backend: certificates and keys as
//! DER bytes, which every backend can load, and PEM file loading.

use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::LazyLock;

use pingora_error::{Error, ErrorType, OrErr, Result};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The seed of the fingerprint hasher, drawn once per process.
static FINGERPRINT_KEYS: LazyLock<foldhash::quality::RandomState> =
    LazyLock::new(foldhash::quality::RandomState::default);

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
/// use pingora_tls::CertKey;
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
        let mut hasher = FINGERPRINT_KEYS.build_hasher();
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

    /// Loads a certificate chain (leaf first) and its private key from PEM files.
    ///
    /// # Errors
    ///
    /// [`ErrorType::FileReadError`] if a file cannot be read, [`ErrorType::InvalidCert`] if it
    /// holds no certificate or no private key.
    pub fn from_pem_files(cert_path: &str, key_path: &str) -> Result<Self> {
        let certs = load_pem_certs(cert_path)?;
        let key = load_pem_key(key_path)?;
        Self::try_new(certs, key)
    }

    /// Like [`from_pem_files`](Self::from_pem_files), from PEM text in memory.
    ///
    /// # Errors
    ///
    /// [`ErrorType::InvalidCert`] if the text holds no certificate or no private key.
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Self> {
        let certs = pem_certs(cert_pem, "the certificate PEM")?;
        let key = pem_key(key_pem, "the key PEM")?;
        Self::try_new(certs, key)
    }
}

/// PEM encoding, for backends that load PEM only.
impl CertKey {
    /// The chain as PEM, leaf first.
    pub fn certs_pem(&self) -> String {
        self.certs
            .iter()
            .map(|der| pem_encode("CERTIFICATE", der))
            .collect()
    }

    /// The private key as PEM, labelled by its format (PKCS#8, PKCS#1 or SEC1).
    pub fn key_pem(&self) -> String {
        let label = match PrivateKeyDer::try_from(self.key.as_slice()) {
            Ok(PrivateKeyDer::Pkcs1(_)) => "RSA PRIVATE KEY",
            Ok(PrivateKeyDer::Sec1(_)) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        pem_encode(label, &self.key)
    }
}

/// `der` as a PEM block labelled `label`.
pub fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 0x3f) as usize]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The DER certificates of a PEM file, in file order.
///
/// # Errors
///
/// [`ErrorType::FileReadError`] if the file cannot be read, [`ErrorType::InvalidCert`] if it
/// holds no certificate or a malformed one.
pub fn load_pem_certs(path: &str) -> Result<Vec<Vec<u8>>> {
    let pem = std::fs::read(path)
        .or_err_with(ErrorType::FileReadError, || format!("cannot read {path}"))?;
    pem_certs(&pem, path)
}

/// The DER private key (PKCS#8, PKCS#1 or SEC1) of a PEM file: its first key.
///
/// # Errors
///
/// [`ErrorType::FileReadError`] if the file cannot be read, [`ErrorType::InvalidCert`] if it
/// holds no key.
pub fn load_pem_key(path: &str) -> Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .or_err_with(ErrorType::FileReadError, || format!("cannot read {path}"))?;
    pem_key(&pem, path)
}

fn pem_certs(pem: &[u8], what: &str) -> Result<Vec<Vec<u8>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<std::result::Result<Vec<_>, _>>()
        .or_err_with(ErrorType::InvalidCert, || {
            format!("malformed PEM in {what}")
        })?;
    if certs.is_empty() {
        return Error::e_explain(ErrorType::InvalidCert, format!("no certificate in {what}"));
    }
    Ok(certs)
}

fn pem_key(pem: &[u8], what: &str) -> Result<Vec<u8>> {
    let key = PrivateKeyDer::from_pem_slice(pem).or_err_with(ErrorType::InvalidCert, || {
        format!("no private key in {what}")
    })?;
    Ok(key.secret_der().to_vec())
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
    fn pem_round_trip() {
        for len in [0usize, 1, 2, 3, 4, 47, 48, 49, 100] {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let pem = pem_encode("CERTIFICATE", &der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
            assert_eq!(back.as_ref(), der.as_slice(), "{len}");
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["a.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let ck = CertKey::new(vec![cert.der().to_vec()], key.serialize_der());
        let again = CertKey::from_pem(ck.certs_pem().as_bytes(), ck.key_pem().as_bytes()).unwrap();
        assert_eq!(again, ck);
        assert!(ck.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
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
