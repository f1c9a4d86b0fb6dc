//! A self-signed certificate for `localhost`, written to a temporary directory, for examples
//! run without certificate files of their own.

use std::path::PathBuf;

/// Generates a certificate for `localhost` and `127.0.0.1` and writes it with its key to a
/// new temporary directory; returns the paths of the PEM certificate and key.
pub fn localhost_pem_files() -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key generation");
    let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("valid names");
    let cert = params.self_signed(&key).expect("self-signing");
    let dir: PathBuf = std::env::temp_dir().join(format!("pingora-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let cert_path = dir.join("localhost.crt");
    let key_path = dir.join("localhost.key");
    std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("write the key");
    (
        cert_path.to_string_lossy().into_owned(),
        key_path.to_string_lossy().into_owned(),
    )
}
