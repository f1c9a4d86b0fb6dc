//! Certificates chosen per TLS handshake by the server name the client asked for (SNI).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::tls::{HandshakeCallbacks, HandshakeRef};
use pingora::tls::CertKey;

/// Picks the certificate of the server name the client asked for, or a fallback one for
/// other names and for clients that send none.
///
/// The callback is async: a real server could look the certificate up in a store here, and
/// the handshake waits for it.
#[derive(Debug, Clone)]
pub struct BySni {
    by_name: HashMap<String, Arc<CertKey>>,
    fallback: Arc<CertKey>,
}

impl BySni {
    /// Self-signed certificates generated now: one for each of `names`, and one for
    /// `fallback_name` served to every other client.
    pub fn self_signed(names: &[&str], fallback_name: &str) -> BySni {
        BySni {
            by_name: names
                .iter()
                .map(|name| (name.to_string(), self_signed(name)))
                .collect(),
            fallback: self_signed(fallback_name),
        }
    }

    /// The certificate served for `server_name`.
    pub fn certificate_for(&self, server_name: Option<&str>) -> &Arc<CertKey> {
        server_name
            .and_then(|name| self.by_name.get(&name.to_ascii_lowercase()))
            .unwrap_or(&self.fallback)
    }
}

#[async_trait]
impl HandshakeCallbacks for BySni {
    async fn certificate_callback(&self, tls: &mut HandshakeRef) {
        let cert = Arc::clone(self.certificate_for(tls.server_name()));
        tls.set_certificate(cert);
    }
}

/// A self-signed certificate and key for `name` (its subject alternative name and common
/// name).
pub fn self_signed(name: &str) -> Arc<CertKey> {
    let key = rcgen::KeyPair::generate().expect("key generation");
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("a valid name");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let cert = params.self_signed(&key).expect("self-signing");
    Arc::new(CertKey::new(vec![cert.der().to_vec()], key.serialize_der()))
}
