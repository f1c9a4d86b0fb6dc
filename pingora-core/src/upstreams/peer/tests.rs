use std::net::TcpListener;

use super::*;
use crate::protocols::CustomALPN;

fn tls_peer() -> HttpPeer {
    HttpPeer::new("127.0.0.1:443", true, "example.com".to_string())
}

fn plain_peer() -> HttpPeer {
    HttpPeer::new("127.0.0.1:80", false, String::new())
}

fn cert_key(key: &[u8]) -> Arc<CertKey> {
    Arc::new(CertKey::new(vec![b"leaf".to_vec()], key.to_vec()))
}

/// Asserts that `change` makes the peer's connections unfit for the original.
fn assert_changes_hash(base: &HttpPeer, what: &str, change: impl FnOnce(&mut HttpPeer)) {
    let mut changed = base.clone();
    change(&mut changed);
    assert_ne!(
        base.reuse_hash(),
        changed.reuse_hash(),
        "{what} must change the reuse hash"
    );
}

/// Asserts that `change` leaves connections interchangeable.
fn assert_keeps_hash(base: &HttpPeer, what: &str, change: impl FnOnce(&mut HttpPeer)) {
    let mut changed = base.clone();
    change(&mut changed);
    assert_eq!(
        base.reuse_hash(),
        changed.reuse_hash(),
        "{what} must not change the reuse hash"
    );
}

fn bind(addr: &str) -> BindTo {
    let mut bind_to = BindTo::default();
    bind_to.addr = Some(addr.parse().unwrap());
    bind_to
}

#[test]
fn reuse_hash_is_stable_and_shared_by_clones() {
    let peer = tls_peer();
    assert_eq!(peer.reuse_hash(), peer.reuse_hash());
    assert_eq!(peer.reuse_hash(), peer.clone().reuse_hash());
    assert_eq!(peer.reuse_hash(), tls_peer().reuse_hash());
}

#[test]
fn reuse_hash_covers_identity_fields() {
    let base = tls_peer();
    assert_changes_hash(&base, "address", |p| {
        p._address = SocketAddr::Inet("127.0.0.2:443".parse().unwrap());
    });
    assert_changes_hash(&base, "port", |p| p._address.set_port(444));
    assert_changes_hash(&base, "scheme", |p| p.scheme = Scheme::HTTP);
    assert_changes_hash(&base, "sni", |p| p.sni = "other.example.com".into());
    assert_changes_hash(&base, "client cert", |p| {
        p.client_cert_key = Some(cert_key(b"k"))
    });
    assert_changes_hash(&base, "group_key", |p| p.group_key = 7);
    assert_changes_hash(&base, "max_h2_streams", |p| p.options.max_h2_streams = 100);
    assert_changes_hash(&base, "bind_to address", |p| {
        p.options.bind_to = Some(bind("127.0.0.9:0"));
    });
    let with_cert = {
        let mut p = base.clone();
        p.client_cert_key = Some(cert_key(b"k1"));
        p
    };
    assert_changes_hash(&with_cert, "another client key", |p| {
        p.client_cert_key = Some(cert_key(b"k2"));
    });
    assert_keeps_hash(&with_cert, "an equal client cert", |p| {
        p.client_cert_key = Some(cert_key(b"k1"));
    });
}

#[test]
fn reuse_hash_covers_tls_verification() {
    let base = tls_peer();
    assert_changes_hash(&base, "verify_cert", |p| p.options.verify_cert = false);
    assert_changes_hash(&base, "verify_hostname", |p| {
        p.options.verify_hostname = false
    });
    assert_changes_hash(&base, "alternative_cn", |p| {
        p.options.alternative_cn = Some("alt.example.com".into());
    });
    assert_changes_hash(&base, "ca", |p| {
        p.options.ca = Some(Arc::new(vec![b"ca-der".to_vec()].into_boxed_slice()));
    });
    assert_changes_hash(&base, "curves", |p| p.options.curves = Some("X25519"));
    assert_changes_hash(&base, "second_keyshare", |p| {
        p.options.second_keyshare = false
    });
    assert_changes_hash(&base, "custom ALPN", |p| {
        p.options.alpn = ALPN::Custom(CustomALPN::new(b"myproto".to_vec()).unwrap());
    });
}

#[test]
fn reuse_hash_covers_the_proxy() {
    let proxied = || {
        let mut headers = BTreeMap::new();
        headers.insert("Proxy-Authorization".to_string(), b"Basic a".to_vec());
        HttpPeer::new_proxy(
            "/tmp/p.sock",
            "10.0.0.1".parse().unwrap(),
            443,
            false,
            "",
            headers,
        )
    };
    let base = proxied();
    assert_eq!(base.reuse_hash(), proxied().reuse_hash());
    assert_ne!(base.reuse_hash(), plain_peer().reuse_hash());
    assert_changes_hash(&base, "next hop", |p| {
        p.proxy.as_mut().unwrap().next_hop = PathBuf::from("/tmp/q.sock").into_boxed_path();
    });
    assert_changes_hash(&base, "tunnel host", |p| {
        p.proxy.as_mut().unwrap().host = "10.0.0.2".into();
    });
    assert_changes_hash(&base, "tunnel port", |p| {
        p.proxy.as_mut().unwrap().port = 444
    });
    assert_changes_hash(&base, "proxy headers", |p| {
        p.proxy
            .as_mut()
            .unwrap()
            .headers
            .insert("Proxy-Authorization".into(), b"Basic b".to_vec());
    });
    assert_changes_hash(&base, "extra proxy headers", |p| {
        p.options
            .extra_proxy_headers
            .insert("X-Tenant".into(), b"red".to_vec());
    });
    // Without a proxy, extra proxy headers are never sent.
    assert_keeps_hash(&plain_peer(), "unused extra proxy headers", |p| {
        p.options
            .extra_proxy_headers
            .insert("X-Tenant".into(), b"red".to_vec());
    });
}

#[test]
fn reuse_hash_ignores_tuning() {
    let base = tls_peer();
    assert_keeps_hash(&base, "timeouts", |p| {
        p.options.connection_timeout = Some(Duration::from_secs(1));
        p.options.total_connection_timeout = Some(Duration::from_secs(2));
        p.options.read_timeout = Some(Duration::from_secs(3));
        p.options.write_timeout = Some(Duration::from_secs(4));
        p.options.idle_timeout = Some(Duration::from_secs(5));
    });
    assert_keeps_hash(&base, "HTTP ALPN choice", |p| {
        p.options.set_http_version(2, 1)
    });
    assert_keeps_hash(&base, "socket tuning", |p| {
        p.options.tcp_recv_buf = Some(1 << 20);
        p.options.dscp = Some(10);
        p.options.tcp_fast_open = true;
        p.options.h2_ping_interval = Some(Duration::from_secs(1));
        p.options.tcp_keepalive = Some(TcpKeepalive {
            idle: Duration::from_secs(1),
            interval: Duration::from_secs(1),
            count: 1,
            user_timeout: Duration::ZERO,
        });
    });
    let mut with_range = BindTo::default();
    with_range.set_port_range(Some((1000, 2000))).unwrap();
    assert_keeps_hash(&base, "a port range without an address", |p| {
        p.options.bind_to = Some(with_range);
    });
}

#[test]
fn plaintext_reuse_hash_ignores_tls_settings() {
    let base = plain_peer();
    assert_keeps_hash(&base, "sni of a plaintext peer", |p| p.sni = "x".into());
    assert_keeps_hash(&base, "verification of a plaintext peer", |p| {
        p.options.verify_cert = false;
        p.options.verify_hostname = false;
        p.options.alternative_cn = Some("alt".into());
    });
    assert_changes_hash(&base, "max_h2_streams (h2c)", |p| {
        p.options.max_h2_streams = 2
    });
}

#[test]
fn basic_peer_reuse_hash() {
    let a = BasicPeer::new("127.0.0.1:80");
    assert!(!a.tls());
    assert_eq!(a.reuse_hash(), BasicPeer::new("127.0.0.1:80").reuse_hash());
    assert_ne!(a.reuse_hash(), BasicPeer::new("127.0.0.1:81").reuse_hash());
    let mut tls = a.clone();
    tls.sni = "example.com".into();
    assert!(tls.tls());
    assert_ne!(a.reuse_hash(), tls.reuse_hash());
    let mut other_sni = tls.clone();
    other_sni.sni = "example.org".into();
    assert_ne!(tls.reuse_hash(), other_sni.reuse_hash());
    let mut unverified = tls.clone();
    unverified.options.verify_cert = false;
    assert_ne!(tls.reuse_hash(), unverified.reuse_hash());
}

#[test]
fn constructors() {
    let peer = HttpPeer::new(("127.0.0.1", 8080), true, "sni".into());
    assert!(peer.is_tls() && peer.tls());
    assert_eq!(peer.address().to_string(), "127.0.0.1:8080");
    assert_eq!(peer.sni(), "sni");
    assert_eq!(peer.group_key, 0);
    assert!(peer.get_proxy().is_none());

    assert!(HttpPeer::try_new("not an address", false, String::new()).is_err());
    assert!(BasicPeer::try_new("127.0.0.1").is_err());

    let uds = HttpPeer::new_uds("/tmp/x.sock", false, String::new()).unwrap();
    assert_eq!(uds.address().to_string(), "unix:/tmp/x.sock");
    assert!(HttpPeer::new_uds(&"x".repeat(200), false, String::new()).is_err());
    let basic_uds = BasicPeer::new_uds("/tmp/y.sock").unwrap();
    assert_eq!(basic_uds.address().to_string(), "unix:/tmp/y.sock");

    let ck = cert_key(b"key");
    let mtls = HttpPeer::new_mtls("127.0.0.1:443", "mtls".into(), Arc::clone(&ck));
    assert!(mtls.is_tls());
    assert_eq!(mtls.get_client_cert_key(), Some(&ck));

    let proxied = HttpPeer::new_proxy(
        "/tmp/proxy.sock",
        "::1".parse().unwrap(),
        443,
        true,
        "origin",
        BTreeMap::new(),
    );
    let proxy = proxied.get_proxy().unwrap();
    assert_eq!(&*proxy.next_hop, Path::new("/tmp/proxy.sock"));
    assert_eq!(proxy.host, "::1");
    assert_eq!(proxy.port, 443);
    assert_eq!(proxied.address().to_string(), "[::1]:443");
}

#[test]
fn default_options() {
    let options = PeerOptions::new();
    assert!(options.verify_cert && options.verify_hostname);
    assert_eq!(options.alpn, ALPN::H1);
    assert_eq!(options.max_h2_streams, 1);
    assert!(options.second_keyshare);
    assert!(!options.tcp_fast_open);
    assert!(!options.allow_h1_response_invalid_content_length);
    assert!(options.bind_to.is_none() && options.idle_timeout.is_none());

    let mut options = PeerOptions::default();
    options.set_http_version(2, 2);
    assert_eq!(options.alpn, ALPN::H2);
    options.set_http_version(2, 1);
    assert_eq!(options.alpn, ALPN::H2H1);
    options.set_http_version(1, 1);
    assert_eq!(options.alpn, ALPN::H1);
}

#[test]
fn accessors_read_the_options() {
    let mut peer = tls_peer();
    peer.options.connection_timeout = Some(Duration::from_secs(1));
    peer.options.alternative_cn = Some("alt".into());
    peer.options.dscp = Some(3);
    peer.options.tcp_fast_open = true;
    assert_eq!(peer.connection_timeout(), Some(Duration::from_secs(1)));
    assert_eq!(peer.alternative_cn().map(String::as_str), Some("alt"));
    assert_eq!(peer.dscp(), Some(3));
    assert!(peer.tcp_fast_open());
    assert!(peer.verify_cert());
    assert_eq!(peer.get_alpn(), Some(&ALPN::H1));
    peer.get_mut_peer_options().unwrap().verify_cert = false;
    assert!(!peer.verify_cert());
}

#[test]
fn display_hides_proxy_headers() {
    let mut headers = BTreeMap::new();
    headers.insert("Proxy-Authorization".to_string(), b"Basic secret".to_vec());
    let peer = HttpPeer::new_proxy(
        "/tmp/p.sock",
        "10.0.0.1".parse().unwrap(),
        443,
        true,
        "origin",
        headers,
    );
    let shown = peer.to_string();
    assert!(shown.contains("next_hop: /tmp/p.sock"), "{shown}");
    assert!(shown.contains("sni: origin"), "{shown}");
    assert!(!shown.contains("secret"), "{shown}");
    let debug = format!("{:?}", peer.options);
    assert!(debug.contains("max_h2_streams: 1"), "{debug}");
}

#[test]
fn matches_fd_checks_the_remote_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::net::TcpStream::connect(addr).unwrap();
    let peer = HttpPeer::new(addr, false, String::new());
    assert!(peer.matches_fd(client.as_raw_fd()));
    let mut elsewhere = addr;
    elsewhere.set_port(addr.port().wrapping_add(1));
    assert!(!HttpPeer::new(elsewhere, false, String::new()).matches_fd(client.as_raw_fd()));
    // A proxied peer's socket leads to the proxy, not to the target.
    let proxied = HttpPeer::new_proxy(
        "/tmp/p.sock",
        addr.ip(),
        addr.port(),
        false,
        "",
        BTreeMap::new(),
    );
    assert!(!proxied.matches_fd(client.as_raw_fd()));
    assert!(!peer.matches_fd(-1));
}

#[derive(Debug)]
struct CountingTracer(Arc<std::sync::atomic::AtomicUsize>);

impl Tracing for CountingTracer {
    fn on_connected(&self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn on_disconnected(&self) {}
    fn boxed_clone(&self) -> Box<dyn Tracing> {
        Box::new(CountingTracer(Arc::clone(&self.0)))
    }
}

#[test]
fn tracer_is_cloned_with_the_peer() {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut peer = plain_peer();
    peer.options.tracer = Some(Tracer(Box::new(CountingTracer(Arc::clone(&count)))));
    let tracer = peer.clone().get_tracer().unwrap();
    tracer.0.on_connected();
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}
