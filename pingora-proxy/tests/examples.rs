//! The example proxies, each in front of its local origins, answering `curl`.

#[path = "../examples/app/mod.rs"]
mod app;

use std::net::SocketAddr;
use std::sync::Arc;

use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::LocalAddrs;
use pingora_core::server::Server;
use pingora_load_balancing::health_check::TcpHealthCheck;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::LoadBalancer;
use pingora_proxy::ProxyHttp;
use pingora_test_support::proxy::{start_proxy, ProxyUnderTest};
use pingora_test_support::{curl, TestServer};

/// Starts origins named `origins` and a proxy built from their addresses.
fn start<SV, F>(origins: &[&'static str], make: F) -> (TestServer, SocketAddr, Vec<SocketAddr>)
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
    F: FnOnce(&[SocketAddr]) -> SV,
{
    start_with(origins, None, make)
}

/// [`start`], with `options` for serving clients.
fn start_with<SV, F>(
    origins: &[&'static str],
    options: Option<HttpServerOptions>,
    make: F,
) -> (TestServer, SocketAddr, Vec<SocketAddr>)
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
    F: FnOnce(&[SocketAddr]) -> SV,
{
    // Origins first, on their own server, so their addresses are known to the proxy.
    let names = origins.to_vec();
    let (origin_server, origin_addrs) = TestServer::start(|server: &mut Server| {
        names
            .iter()
            .map(|name| {
                let service = app::origin::origin_service(name, "127.0.0.1:0");
                let addrs = service.local_addrs();
                server.add_service(service);
                addrs
            })
            .collect::<Vec<LocalAddrs>>()
    });
    let app = make(&origin_addrs);
    let (proxy_server, proxy) = ProxyUnderTest::new(app)
        .conf(TestServer::test_conf())
        .server_options(options)
        .start();
    // Keep the origins alive as long as the proxy: leak their server into the proxy's.
    std::mem::forget(origin_server);
    (proxy_server, proxy, origin_addrs)
}

#[test]
fn gateway_routes_guards_and_edits() {
    let (_server, proxy, _) = start(&["api", "www"], |o| app::gateway::Gateway::new(o[0], o[1]));
    let base = format!("http://{proxy}");

    let (status, head, body) = curl::response(&[&format!("{base}/api/users?id=7")]);
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), "api GET /api/users?id=7\n");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("server: gateway\r\n"), "{head}");
    assert!(!lower.contains("x-origin"), "{head}");

    let (status, _, body) = curl::response(&[&format!("{base}/index.html")]);
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), "www GET /index.html\n");

    let (status, _, body) = curl::response(&[&format!("{base}/login")]);
    assert_eq!(status, 403);
    assert!(body.is_empty());
    let (status, _, body) = curl::response(&[
        "-H",
        &format!("Authorization: {}", app::gateway::PASSWORD),
        &format!("{base}/login"),
    ]);
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), "www GET /login\n");
}

#[test]
fn gateway_serves_h2c_too() {
    let options = Some(app::gateway::server_options());
    let (_server, proxy, _) = start_with(&["api", "www"], options, |o| {
        app::gateway::Gateway::new(o[0], o[1])
    });
    let url = format!("http://{proxy}/api/users?id=7");
    let out = curl::output(&["-i", "--http2-prior-knowledge", &url]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/2 200"), "{text}");
    assert!(text.contains("server: Gateway\r\n"), "{text}");
    assert!(text.ends_with("api GET /api/users?id=7\n"), "{text}");
    let (status, _, body) = curl::response(&[&url]);
    assert_eq!(status, 200, "HTTP/1.1 on the same port");
    assert_eq!(String::from_utf8_lossy(&body), "api GET /api/users?id=7\n");
}

#[test]
fn ctx_routes_beta_users() {
    let (_server, proxy, _) = start(&["stable", "beta"], |o| {
        app::ctx::BetaRouter::new(o[0], o[1])
    });
    let url = format!("http://{proxy}/page");
    let (_, head, body) = curl::response(&[&url]);
    assert_eq!(String::from_utf8_lossy(&body), "stable GET /page\n");
    assert!(
        head.to_ascii_lowercase().contains("x-beta: no\r\n"),
        "{head}"
    );
    let (_, head, body) = curl::response(&["-H", "beta-flag: 1", &url]);
    assert_eq!(String::from_utf8_lossy(&body), "beta GET /page\n");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-beta: yes\r\n"), "{head}");
    assert!(lower.contains("x-request-count: 2\r\n"), "{head}");
}

#[test]
fn modify_response_converts_json_to_yaml() {
    let (_server, proxy, _) = start(&["json"], |o| app::modify_response::Json2Yaml {
        origin: o[0],
    });
    let (status, head, body) = curl::response(&[&format!("http://{proxy}/")]);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/yaml\r\n"),
        "{head}"
    );
    assert_eq!(
        String::from_utf8_lossy(&body),
        "name: pingora\nports:\n- 6188\n- 6189\ntls: false\n"
    );
}

#[test]
fn backoff_retry_reaches_the_live_origin() {
    // A port where nothing listens: bind, note the port, close.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_server, proxy, _) = start(&["live"], |o| app::backoff_retry::BackoffRetry {
        dead,
        live: o[0],
        dead_tries: 3,
    });
    let started = std::time::Instant::now();
    let (status, head, body) = curl::response(&[&format!("http://{proxy}/")]);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-tries: 4\r\n"),
        "{head}"
    );
    assert_eq!(String::from_utf8_lossy(&body), "live GET /\n");
    // Three waits: 10 + 20 + 40 ms.
    assert!(started.elapsed() >= std::time::Duration::from_millis(70));
}

/// A load balancer over `backends`, health checked every 100 ms, already checked once.
fn checked_lb(backends: &[SocketAddr]) -> Arc<LoadBalancer<RoundRobin>> {
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(backends.iter().copied()).unwrap();
    lb.set_health_check(TcpHealthCheck::new());
    pingora_test_support::runtime().block_on(lb.backends().run_health_check(true));
    Arc::new(lb)
}

#[test]
fn load_balancer_never_uses_the_dead_backend() {
    let mut backends = app::local_origin::start_origins(&["backend-1", "backend-2"]);
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    backends.push(dead);
    let lb = checked_lb(&backends);
    let (_server, proxy) = start_proxy(app::load_balancer::LB(lb));
    let mut seen = std::collections::HashMap::new();
    for _ in 0..20 {
        let (status, _, body) = curl::response(&[&format!("http://{proxy}/")]);
        assert_eq!(status, 200, "no request may fail");
        *seen.entry(String::from_utf8(body).unwrap()).or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen["Hello from backend-1\n"], 10);
    assert_eq!(seen["Hello from backend-2\n"], 10);
}

#[test]
fn multi_lb_routes_by_path() {
    let one = checked_lb(&app::local_origin::start_origins(&["one-a", "one-b"]));
    let two = checked_lb(&app::local_origin::start_origins(&["two-a"]));
    let (_server, proxy) = start_proxy(app::multi_lb::Router {
        cluster_one: one,
        cluster_two: two,
    });
    let (_, _, a) = curl::response(&[&format!("http://{proxy}/one/x")]);
    let (_, _, b) = curl::response(&[&format!("http://{proxy}/one/y")]);
    let mut ones = [String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap()];
    ones.sort();
    assert_eq!(ones, ["Hello from one-a\n", "Hello from one-b\n"]);
    let (_, _, c) = curl::response(&[&format!("http://{proxy}/elsewhere")]);
    assert_eq!(c, b"Hello from two-a\n");
}

#[test]
fn rate_limiter_answers_429_over_the_limit() {
    let origin = app::local_origin::start_origins(&["limited"])[0];
    let (_server, proxy) = start_proxy(app::rate_limiter::RateLimiter::new(origin, 2));
    let url = format!("http://{proxy}/");
    let statuses: Vec<u16> = (0..4)
        .map(|_| curl::response(&["-H", "appid: 7", &url]).0)
        .collect();
    assert_eq!(statuses, [200, 200, 429, 429]);
    let (status, head, _) = curl::response(&["-H", "appid: 7", &url]);
    assert_eq!(status, 429);
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("x-rate-limit-limit: 2\r\n"), "{head}");
    assert!(lower.contains("x-rate-limit-remaining: 0\r\n"), "{head}");
    assert!(lower.contains("x-rate-limit-reset: 1\r\n"), "{head}");
    assert!(lower.contains("connection: close\r\n"), "{head}");
    // Another app is not limited by the first one's traffic; no app id, no limit.
    assert_eq!(curl::response(&["-H", "appid: 8", &url]).0, 200);
    assert_eq!(curl::response(&[&url]).0, 200);
}

#[test]
fn cache_serves_hits_revalidates_and_skips_private() {
    let (origin_server, origin) = TestServer::start(|server: &mut Server| {
        let service = app::cache::origin_service("127.0.0.1:0");
        let addrs = service.local_addrs();
        server.add_service(service);
        vec![addrs]
    });
    let origin = origin[0];
    let (_proxy_server, proxy) = ProxyUnderTest::new(app::cache::CachingProxy {
        origin,
        storage: app::cache::memory(),
    })
    .conf(TestServer::test_conf())
    .start();
    std::mem::forget(origin_server);
    let base = format!("http://{proxy}");
    let cache_status = |head: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix("Cache-Status: "))
            .unwrap_or_default()
            .to_string()
    };

    let (status, head, first) = curl::response(&[&format!("{base}/page")]);
    assert_eq!(status, 200);
    assert_eq!(
        cache_status(&head),
        "pingora; fwd=uri-miss; fwd-status=200; stored"
    );
    let (status, head, second) = curl::response(&[&format!("{base}/page")]);
    assert_eq!(status, 200);
    assert_eq!(first, second, "the stored response");
    assert!(
        cache_status(&head).starts_with("pingora; hit; ttl="),
        "{head}"
    );
    assert!(head.contains("\r\nAge: "), "{head}");

    let (_, _, first) = curl::response(&[&format!("{base}/private")]);
    let (_, head, second) = curl::response(&[&format!("{base}/private")]);
    assert_ne!(first, second, "never stored");
    assert_eq!(cache_status(&head), "pingora; fwd=uri-miss; fwd-status=200");

    // Stale after a second: revalidated with the origin (304), the stored body served.
    let (_, _, first) = curl::response(&[&format!("{base}/max-age/1")]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_, head, second) = curl::response(&[&format!("{base}/max-age/1")]);
    assert_eq!(first, second);
    assert!(
        cache_status(&head).starts_with("pingora; fwd=stale; fwd-status=304; ttl="),
        "{head}"
    );
}

#[test]
fn use_module_guards_and_compresses() {
    let (_server, proxy, _) = start(&["origin"], |o| app::use_module::ModuleProxy {
        origin: o[0],
        credential: "testcode".into(),
    });
    let url = format!("http://{proxy}/json");
    let (status, _, _) = curl::response(&[&url]);
    assert_eq!(status, 403, "no credential");
    let (status, _, _) = curl::response(&["-H", "authorization: Basic wrong", &url]);
    assert_eq!(status, 403, "wrong credential");
    let auth = "authorization: Basic testcode";
    let (status, head, body) = curl::response(&["--compressed", "-H", auth, &url]);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: "),
        "{head}"
    );
    assert_eq!(String::from_utf8_lossy(&body), app::origin::JSON);
}

#[test]
fn virtual_l4_answers_virtual_test_from_the_in_process_origin() {
    let mut connector = None;
    let (_server, proxy, _) = start(&["tcp"], |o| {
        let app = app::virtual_l4::VirtualProxy::new(o[0]);
        connector = Some(Arc::clone(&app.connector));
        app
    });
    let connector = connector.expect("the proxy was built");
    let host = "Host: virtual.test";
    // Two requests on one client connection: the second reuses the virtual connection.
    let out = curl::output(&[
        "-H",
        host,
        &format!("http://{proxy}/one"),
        &format!("http://{proxy}/two"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "virtual GET /one\nvirtual GET /two\n"
    );
    assert_eq!(connector.connections(), 1);

    let (status, head, body) =
        curl::response(&["-d", "sent", "-H", host, &format!("http://{proxy}/up")]);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("x-origin: virtual\r\n"),
        "{head}"
    );
    assert_eq!(String::from_utf8_lossy(&body), "virtual POST /up\nsent");

    // Other hosts go to the TCP origin.
    let (_, head, body) = curl::response(&[&format!("http://{proxy}/hello")]);
    assert!(
        head.to_ascii_lowercase().contains("x-origin: tcp\r\n"),
        "{head}"
    );
    assert_eq!(String::from_utf8_lossy(&body), "tcp GET /hello\n");
}

#[test]
fn connection_filter_refuses_clients_off_the_allow_list() {
    use app::connection_filter::{AllowList, ToOrigin};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (_origins, origins) = TestServer::start(|server: &mut Server| {
        let service = app::origin::origin_service("origin", "127.0.0.1:0");
        let addrs = service.local_addrs();
        server.add_service(service);
        vec![addrs]
    });
    let filter = Arc::new(AllowList::new(vec!["127.0.0.1".parse().unwrap()]));
    let counts = Arc::clone(&filter);
    let (_proxy, addrs) = TestServer::start(move |server: &mut Server| {
        let mut proxy =
            pingora_proxy::http_proxy_service(&server.configuration, ToOrigin(origins[0]));
        proxy.set_connection_filter(filter);
        proxy.add_tcp("127.0.0.1:0");
        let addrs = proxy.local_addrs();
        server.add_service(proxy);
        vec![addrs]
    });
    let proxy = addrs[0];

    // From the allowed address: proxied.
    let (status, _, body) = curl::response(&[&format!("http://{proxy}/hi")]);
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8_lossy(&body), "origin GET /hi\n");
    assert_eq!(counts.refused(), 0);

    // From 127.0.0.2 (local too, but not on the list): closed without an answer.
    pingora_test_support::current_thread_runtime().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut conn = socket.connect(proxy).await.unwrap();
        // The write may fail or succeed depending on when the close arrives.
        let _ = conn.write_all(b"GET /hi HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut answer = Vec::new();
        // Closed (Ok) or reset (Err): either way, in time and with nothing read.
        let _closed_or_reset =
            tokio::time::timeout(pingora_test_support::TIMEOUT, conn.read_to_end(&mut answer))
                .await
                .expect("closed in time");
        assert!(
            answer.is_empty(),
            "answered: {}",
            String::from_utf8_lossy(&answer)
        );
    });
    assert_eq!(counts.refused(), 1);
}

#[test]
fn connection_filter_networks_parse_and_match() {
    use app::connection_filter::Network;

    let ten: Network = "10.0.0.0/8".parse().unwrap();
    assert!(ten.contains("10.200.3.4".parse().unwrap()));
    assert!(
        ten.contains("::ffff:10.0.0.1".parse().unwrap()),
        "IPv4-mapped"
    );
    assert!(!ten.contains("11.0.0.1".parse().unwrap()));
    assert!(!ten.contains("::1".parse().unwrap()));
    let one: Network = "127.0.0.1".parse().unwrap();
    assert_eq!(one.to_string(), "127.0.0.1/32");
    assert!(one.contains("127.0.0.1".parse().unwrap()));
    assert!(!one.contains("127.0.0.2".parse().unwrap()));
    let any: Network = "0.0.0.0/0".parse().unwrap();
    assert!(any.contains("192.0.2.1".parse().unwrap()));
    let all_v6: Network = "::/0".parse().unwrap();
    assert!(all_v6.contains("2001:db8::1".parse().unwrap()));
    let v6: Network = "fd00::/8".parse().unwrap();
    assert!(v6.contains("fd12::1".parse().unwrap()));
    assert!(!v6.contains("fe80::1".parse().unwrap()));
    assert!("10.0.0.0/33".parse::<Network>().is_err());
    assert!("localhost".parse::<Network>().is_err());
}
