//! TLS through the proxy: TLS (HTTP/1.1 and HTTP/2) from curl to the proxy, TLS from the proxy
//! to the origin, upstream verification failures as 502. The rustls backend is installed as
//! the default provider; every backend passes pingora-core's conformance suite.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::protocols::http::ServerSession;
use pingora_core::services::listening::Service;
use pingora_core::tls::CaType;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use pingora_test_support::proxy::ProxyUnderTest;
use pingora_test_support::tls::Pki;
use pingora_test_support::{curl, TestServer};

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
    let pki = Pki::new("proxy test CA");
    let leaf = pki.server(&["localhost"]);
    let ca_file = pki.path("ca.pem");
    let (_origin, origin) = TestServer::start(|server| {
        let mut origin = Service::new("origin".to_string(), HttpServer::new_app(Origin));
        let settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
        origin.add_tls_with_settings("127.0.0.1:0", None, settings);
        let addrs = origin.local_addrs();
        server.add_service(origin);
        vec![addrs]
    });
    let proxy_app = Proxy {
        origin: origin[0],
        ca: pki.ca(),
    };
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.enable_h2();
    let (_proxy, proxy) = ProxyUnderTest::new(proxy_app).tls(settings).start();
    let port = proxy.port();
    let resolve = format!("localhost:{port}:127.0.0.1");
    for http in ["--http1.1", "--http2"] {
        let url = format!("https://localhost:{port}/localhost");
        let (status, head, body) =
            curl::response(&[http, "--cacert", &ca_file, "--resolve", &resolve, &url]);
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
    let (status, _, _) = curl::response(&["--cacert", &ca_file, "--resolve", &resolve, &url]);
    assert_eq!(status, 502);
}
