//! The `ext` helpers of code written for Pingora, through a real handshake: a server sets its
//! certificate per handshake with them, and the client sees it.

use pingora_openssl::ext;
use pingora_openssl::nid::Nid;
use pingora_openssl::pkey::{PKey, Private};
use pingora_openssl::ssl::{SslAcceptor, SslConnector, SslMethod, SslVerifyMode};
use pingora_openssl::tokio_ssl::SslStream;
use pingora_openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::pin::Pin;

/// A P-256 key and a self-signed certificate for `name`.
fn self_signed(name: &str) -> (X509, PKey<Private>) {
    use pingora_openssl::ec::{EcGroup, EcKey};
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    let key = PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap();
    let mut subject = X509NameBuilder::new().unwrap();
    subject.append_entry_by_nid(Nid::COMMONNAME, name).unwrap();
    let subject = subject.build();
    let mut cert = X509Builder::new().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&subject).unwrap();
    cert.set_issuer_name(&subject).unwrap();
    cert.set_pubkey(&key).unwrap();
    let now = pingora_openssl::asn1::Asn1Time::days_from_now(0).unwrap();
    let later = pingora_openssl::asn1::Asn1Time::days_from_now(1).unwrap();
    cert.set_not_before(&now).unwrap();
    cert.set_not_after(&later).unwrap();
    cert.sign(&key, pingora_openssl::hash::MessageDigest::sha256())
        .unwrap();
    (cert.build(), key)
}

#[tokio::test]
async fn a_handshake_presents_the_certificate_set_with_ext() {
    let (leaf, key) = self_signed("leaf.test");
    let (chain, _) = self_signed("chain.test");
    // An acceptor without a certificate of its own: each handshake gets one.
    let acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())
        .unwrap()
        .build();
    let mut ssl = ext::ssl_from_acceptor(&acceptor).unwrap();
    ext::ssl_use_certificate(&mut ssl, &leaf).unwrap();
    ext::ssl_use_private_key(&mut ssl, &key).unwrap();
    ext::ssl_add_chain_cert(&mut ssl, &chain).unwrap();
    ext::ssl_set_renegotiate_mode_freely(&mut ssl);
    ext::ssl_use_second_key_share(&mut ssl, true);
    ext::clear_error_stack();

    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let server = tokio::spawn(async move {
        let mut stream = SslStream::new(ssl, server_io).unwrap();
        Pin::new(&mut stream).accept().await.unwrap();
    });
    let mut connector = SslConnector::builder(SslMethod::tls()).unwrap();
    connector.set_verify(SslVerifyMode::NONE);
    let client = connector
        .build()
        .configure()
        .unwrap()
        .into_ssl("leaf.test")
        .unwrap();
    let mut stream = SslStream::new(client, client_io).unwrap();
    Pin::new(&mut stream).connect().await.unwrap();
    server.await.unwrap();

    let seen = stream
        .ssl()
        .peer_certificate()
        .expect("a server certificate");
    assert_eq!(seen.to_der().unwrap(), leaf.to_der().unwrap());
    let chain_seen = stream.ssl().peer_cert_chain().expect("a chain");
    let names: Vec<_> = chain_seen.iter().map(|c| c.to_der().unwrap()).collect();
    assert!(
        names.contains(&chain.to_der().unwrap()),
        "the chain certificate"
    );
}
