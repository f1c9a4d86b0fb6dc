//! Pingora's OpenSSL-shaped listener API, written as a Pingora user writes it: `TlsAccept`
//! callbacks over the library's `SslRef` (certificates chosen with `tls::ext`, the server name
//! and client certificate read back after the handshake), and settings changed through the
//! `SslAcceptorBuilder` they dereference to (`set_verify`, `set_ca_file`,
//! `set_max_proto_version`). Only for the OpenSSL-family backends.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::listeners::tls::{TlsAccept, TlsRef, TlsSettings};
use pingora_core::protocols::tls::{der, TlsProvider};
use pingora_core::tls::ext;
use pingora_core::tls::nid::Nid;
use pingora_core::tls::pkey::{PKey, Private};
use pingora_core::tls::ssl::{NameType, SslVerifyMode, SslVersion};
use pingora_core::tls::x509::X509;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::ErrorType;

use pingora_test_support::apps::ByteEcho;

use super::{connector, error_type, peer, round_trip, Leaf, Pki, TestService, TlsServer};

/// A certificate and key in the library's types.
struct Identity {
    cert: X509,
    key: PKey<Private>,
}

impl Identity {
    fn of(leaf: &Leaf) -> Identity {
        Identity {
            cert: X509::from_pem(leaf.cert_pem.as_bytes()).unwrap(),
            key: PKey::private_key_from_pem(leaf.key_pem.as_bytes()).unwrap(),
        }
    }
}

/// Serves `a.test` and `b.test` their own certificates; records the server name, the
/// protocol version and the client certificate's common name.
struct Dynamic {
    a: Identity,
    b: Identity,
}

#[async_trait]
impl TlsAccept for Dynamic {
    async fn certificate_callback(&self, ssl: &mut TlsRef) {
        tokio::task::yield_now().await; // the handshake waits for async work
        let identity = match ssl.servername(NameType::HOST_NAME) {
            Some("a.test") => &self.a,
            Some("b.test") => &self.b,
            _ => return,
        };
        ext::ssl_use_certificate(ssl, &identity.cert).unwrap();
        ext::ssl_use_private_key(ssl, &identity.key).unwrap();
    }

    async fn handshake_complete_callback(
        &self,
        ssl: &TlsRef,
    ) -> Option<Arc<dyn Any + Send + Sync>> {
        let server_name = ssl.servername(NameType::HOST_NAME)?.to_string();
        let common_name = ssl.peer_certificate().and_then(|cert| {
            let entry = cert.subject_name().entries_by_nid(Nid::COMMONNAME).next()?;
            Some(
                std::str::from_utf8(entry.data().as_slice())
                    .ok()?
                    .to_string(),
            )
        });
        Some(Arc::new((
            server_name,
            ssl.version_str().to_string(),
            common_name,
        )))
    }
}

/// The callbacks choose by SNI, the builder requires a client certificate from the test CA
/// and caps the version at TLS 1.2; what the handshake-complete callback read reaches the
/// connection's digest.
pub(crate) async fn pingora_shaped_callbacks(provider: Arc<dyn TlsProvider>) {
    let pki = Pki::new("pingora-shaped CA");
    let a = pki.server(&["a.test"]);
    let b = pki.server(&["b.test"]);
    let client = pki.client("client.test");
    let mut settings = TlsSettings::with_callbacks(Box::new(Dynamic {
        a: Identity::of(&a),
        b: Identity::of(&b),
    }))
    .unwrap();
    settings.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
    settings.set_ca_file(pki.path("ca.pem")).unwrap();
    settings
        .set_max_proto_version(Some(SslVersion::TLS1_2))
        .unwrap();
    let mut server = TlsServer::echo(&provider, settings).await;
    let connector = connector(&provider);

    for (sni, leaf) in [("a.test", &a), ("b.test", &b)] {
        let mut with_cert =
            HttpPeer::new_mtls(server.addr, sni.to_string(), Arc::clone(&client.cert_key));
        with_cert.options.ca = Some(pki.ca());
        let stream = round_trip(&connector, &with_cert).await.expect("handshake");
        let digest = stream.get_ssl_digest().unwrap();
        assert_eq!(
            digest.cert_digest,
            der::sha256(leaf.cert_key.leaf()),
            "{sni}"
        );
        assert_eq!(
            digest.version, "TLSv1.2",
            "set_max_proto_version on the builder"
        );
        let seen = server.next_seen().await.digest.unwrap();
        let recorded = seen
            .extension
            .get::<(String, String, Option<String>)>()
            .expect("the callback's value");
        assert_eq!(
            recorded,
            &(
                sni.to_string(),
                "TLSv1.2".to_string(),
                Some("client.test".to_string())
            )
        );
    }

    // set_verify on the builder: no client certificate, no handshake.
    let etype = error_type(round_trip(&connector, &peer(server.addr, "a.test", &pki)).await);
    assert!(
        etype == ErrorType::InvalidCert || etype == ErrorType::TLSHandshakeFailure,
        "{etype:?}"
    );
    // A name the callback has no certificate for: the handshake fails.
    let mut unknown = HttpPeer::new_mtls(
        server.addr,
        "c.test".to_string(),
        Arc::clone(&client.cert_key),
    );
    unknown.options.ca = Some(pki.ca());
    let etype = error_type(round_trip(&connector, &unknown).await);
    assert_eq!(etype, ErrorType::TLSHandshakeFailure);
}

/// Settings built from the user's own `SslAcceptorBuilder` (`TlsSettings::from`), with the
/// certificate loaded by the builder.
pub(crate) async fn settings_from_a_builder(provider: Arc<dyn TlsProvider>) {
    use pingora_core::tls::ssl::{SslAcceptor, SslFiletype, SslMethod};

    let pki = Pki::new("builder CA");
    let leaf = pki.server(&["localhost"]);
    let (cert_path, key_path) = pki.write(&leaf, "server");
    let mut builder = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    builder.set_certificate_chain_file(&cert_path).unwrap();
    builder
        .set_private_key_file(&key_path, SslFiletype::PEM)
        .unwrap();
    let mut settings = TlsSettings::from(builder);
    settings.enable_h2();
    let mut server = TlsServer::echo(&provider, settings).await;
    let stream = round_trip(&connector(&provider), &peer(server.addr, "localhost", &pki))
        .await
        .expect("handshake");
    let digest = stream.get_ssl_digest().unwrap();
    assert_eq!(digest.cert_digest, der::sha256(leaf.cert_key.leaf()));
    server.next_seen().await;
}

/// Settings changed through the builder cannot run on another backend: the listener refuses
/// to start, naming the reason; so do `TlsAccept` callbacks.
pub(crate) async fn other_backends_refuse_openssl_settings(other: Arc<dyn TlsProvider>) {
    let pki = Pki::new("refusal CA");
    let leaf = pki.server(&["localhost"]);
    let mut changed = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    changed.set_verify(SslVerifyMode::PEER);
    let Err(e) = TestService::try_start_tls(ByteEcho::default(), &other, changed).await else {
        panic!("started with OpenSSL builder settings on another backend");
    };
    assert!(e.to_string().contains("acceptor builder"), "{e}");

    let callbacks = TlsSettings::with_callbacks(Box::new(Dynamic {
        a: Identity::of(&leaf),
        b: Identity::of(&leaf),
    }))
    .unwrap();
    let Err(e) = TestService::try_start_tls(ByteEcho::default(), &other, callbacks).await else {
        panic!("started with TlsAccept callbacks on another backend");
    };
    assert!(e.to_string().contains("TlsAccept callbacks"), "{e}");
}

/// The tests of Pingora's OpenSSL-shaped API for a test file whose `provider()` is an
/// OpenSSL-family backend; `other` is the expression of a provider of another backend.
macro_rules! pingora_shaped_suite {
    ($other:expr) => {
        mod pingora_shaped {
            use super::{provider, tls_support::pingora_shaped};

            #[tokio::test]
            async fn callbacks_over_sslref_and_builder_settings() {
                pingora_shaped::pingora_shaped_callbacks(provider()).await;
            }

            #[tokio::test]
            async fn settings_from_a_builder() {
                pingora_shaped::settings_from_a_builder(provider()).await;
            }

            #[tokio::test]
            async fn another_backend_refuses_openssl_settings() {
                pingora_shaped::other_backends_refuse_openssl_settings($other).await;
            }
        }
    };
}
pub(crate) use pingora_shaped_suite;
