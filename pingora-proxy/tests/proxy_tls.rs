//! TLS through the proxy: TLS (HTTP/1.1 and HTTP/2) from curl to the proxy, TLS from the proxy
//! to the origin, upstream verification failures as 502. The rustls backend is installed as
//! the default provider; every backend passes pingora-core's conformance suite.

mod utils;

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::protocols::http::ServerSession;
use pingora_core::services::listening::Service;
use pingora_core::tls::{CaType, CertKey};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{http_proxy_service, ProxyHttp, Session};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};
use utils::{curl, TestServer};

struct Pki {
    ca: Arc<CaType>,
    ca_file: String,
    leaf: Arc<CertKey>,
}

/// A CA, a leaf for `localhost` signed by it, and the CA written to a file for curl.
fn pki() -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "proxy test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf = params.signed_by(&key, &ca).unwrap();
    let ca_file = std::env::temp_dir()
        .join(format!("pingora-proxy-tls-{}.pem", std::process::id()))
        .to_string_lossy()
        .into_owned();
    std::fs::write(&ca_file, ca.pem()).unwrap();
    Pki {
        ca: Arc::new(vec![ca.der().to_vec()].into_boxed_slice()),
        ca_file,
        leaf: Arc::new(CertKey::new(vec![leaf.der().to_vec()], key.serialize_der())),
    }
}

/// The origin: says which TLS version its client (the proxy) used.
struct Origin;

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let version = session
            .digest()
            .and_then(|d| d.ssl_digest.clone())
            .map_or("plaintext", |d| d.version);
        let body = format!("origin saw {version}").into_bytes();
        http::Response::builder()
            .header("content-length", body.len())
            .body(body)
            .unwrap()
    }
}

/// Proxies to the TLS origin, with the SNI taken from the path: `/localhost` or `/wrong`.
struct Proxy {
    origin: SocketAddr,
    ca: Arc<CaType>,
}

#[async_trait]
impl ProxyHttp for Proxy {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let sni = if session.req_header().uri.path() == "/wrong" {
            "wrong.test"
        } else {
            "localhost"
        };
        let mut peer = HttpPeer::new(self.origin, true, sni.to_string());
        peer.options.ca = Some(Arc::clone(&self.ca));
        Ok(Box::new(peer))
    }
}

#[test]
fn tls_to_the_proxy_and_from_the_proxy() {
    let _ = pingora_core::tls::install_default_provider(pingora_rustls::provider());
    let pki = pki();
    let (_origin, origin) = TestServer::start(|server| {
        let mut origin = Service::new("origin".to_string(), HttpServer::new_app(Origin));
        let settings = TlsSettings::with_cert_key(Arc::clone(&pki.leaf));
        origin.add_tls_with_settings("127.0.0.1:0", None, settings);
        let addrs = origin.local_addrs();
        server.add_service(origin);
        vec![addrs]
    });
    let proxy_app = Proxy {
        origin: origin[0],
        ca: Arc::clone(&pki.ca),
    };
    let (_proxy, proxy) = TestServer::start(|server| {
        let mut proxy = http_proxy_service(&server.configuration, proxy_app);
        let mut settings = TlsSettings::with_cert_key(Arc::clone(&pki.leaf));
        settings.enable_h2();
        proxy.add_tls_with_settings("127.0.0.1:0", None, settings);
        let addrs = proxy.local_addrs();
        server.add_service(proxy);
        vec![addrs]
    });
    let port = proxy[0].port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    for http in ["--http1.1", "--http2"] {
        let url = format!("https://localhost:{port}/localhost");
        let (status, head, body) =
            curl(&[http, "--cacert", &pki.ca_file, "--resolve", &resolve, &url]);
        assert_eq!(status, 200, "{http}: {head}");
        assert_eq!(
            String::from_utf8_lossy(&body),
            "origin saw TLSv1.3",
            "{http}"
        );
        let expected = if http == "--http2" {
            "HTTP/2"
        } else {
            "HTTP/1.1"
        };
        assert!(head.starts_with(expected), "{http}: {head}");
    }
    // The origin's certificate is not valid for the SNI: the proxy answers 502.
    let url = format!("https://localhost:{port}/wrong");
    let (status, _, _) = curl(&["--cacert", &pki.ca_file, "--resolve", &resolve, &url]);
    assert_eq!(status, 502);
    let _ = std::fs::remove_file(&pki.ca_file);
}
