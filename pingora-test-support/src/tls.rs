//! Certificates generated at run time with rcgen (nothing is committed), and TLS client
//! helpers built on pingora-core's connector.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pingora_core::connectors::TransportConnector;
use pingora_core::protocols::tls::TlsProvider;
use pingora_core::tls::{CaType, CertKey};
use pingora_core::upstreams::peer::HttpPeer;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The organization of every leaf certificate a [`Pki`] issues.
pub const ORG: &str = "Pingora Test";

/// Numbers the temporary directories of one process.
static DIRS: AtomicUsize = AtomicUsize::new(0);

/// A new temporary directory, unique to this process and call.
fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        DIRS.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

/// A test CA, with a temporary directory for files that external tools (curl, openssl)
/// read: its certificate is there as `ca.pem`. The directory is removed on drop.
#[derive(Debug)]
pub struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

/// A leaf certificate issued by a [`Pki`].
#[derive(Debug)]
pub struct Leaf {
    /// The chain and key.
    pub cert_key: Arc<CertKey>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key, PEM.
    pub key_pem: String,
}

impl Pki {
    /// A new CA whose common name is `name`.
    ///
    /// # Panics
    ///
    /// If generating or writing fails.
    pub fn new(name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("a key");
        let ca = CertifiedIssuer::self_signed(params, key).expect("a CA certificate");
        let pki = Pki {
            ca,
            dir: temp_dir("pingora-tls"),
        };
        std::fs::write(pki.path("ca.pem"), pki.ca.pem()).expect("write ca.pem");
        pki
    }

    /// The CA certificate as a trust set.
    pub fn ca(&self) -> Arc<CaType> {
        Arc::new(vec![self.ca.der().to_vec()].into_boxed_slice())
    }

    /// A path in this CA's temporary directory.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// A server certificate valid now for `names`.
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.leaf(names, false, false)
    }

    /// A client certificate valid now.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], true, false)
    }

    /// A leaf certificate for `names` (the first is also the common name; organization
    /// [`ORG`]), for clients or servers, expired (in 2001) or valid now.
    ///
    /// # Panics
    ///
    /// If a name is not a valid subject alternative name, or generating fails.
    pub fn leaf(&self, names: &[&str], client: bool, expired: bool) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf parameters");
        params
            .distinguished_name
            .push(DnType::OrganizationName, ORG);
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().expect("a key");
        let cert = params
            .signed_by(&key, &self.ca)
            .expect("a leaf certificate");
        Leaf {
            cert_key: Arc::new(CertKey::new(vec![cert.der().to_vec()], key.serialize_der())),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// Writes `leaf` to `<name>.crt` and `<name>.key` in the directory; returns the paths.
    ///
    /// # Panics
    ///
    /// If writing fails.
    pub fn write(&self, leaf: &Leaf, name: &str) -> (String, String) {
        let cert = self.path(&format!("{name}.crt"));
        let key = self.path(&format!("{name}.key"));
        std::fs::write(&cert, &leaf.cert_pem).expect("write the certificate");
        std::fs::write(&key, &leaf.key_pem).expect("write the key");
        (cert, key)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a new self-signed certificate for `localhost` and `127.0.0.1`, and its key, to a
/// new temporary directory (left in place); returns the paths of the PEM certificate and key.
///
/// # Panics
///
/// If generating or writing fails.
pub fn localhost_pem_files() -> (String, String) {
    let key = KeyPair::generate().expect("a key");
    let params =
        CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("valid names");
    let cert = params.self_signed(&key).expect("self-signing");
    let dir = temp_dir("pingora-localhost");
    let cert_path = dir.join("localhost.crt");
    let key_path = dir.join("localhost.key");
    std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write the key");
    (
        cert_path.to_string_lossy().into_owned(),
        key_path.to_string_lossy().into_owned(),
    )
}

/// A connector speaking TLS through `provider`.
pub fn connector(provider: &Arc<dyn TlsProvider>) -> TransportConnector {
    let connector = TransportConnector::new(None);
    connector.set_tls_provider(Arc::clone(provider));
    connector
}

/// A TLS peer at `addr` with SNI `sni`, trusting `pki`'s CA.
pub fn peer(addr: SocketAddr, sni: &str, pki: &Pki) -> HttpPeer {
    let mut peer = HttpPeer::new(addr, true, sni.to_string());
    peer.options.ca = Some(pki.ca());
    peer
}
