//! The example applications, served by a real `Server` on ephemeral loopback ports and driven
//! by real clients (raw sockets and `curl`).

#[path = "../examples/app/mod.rs"]
mod app;

use std::io::Write;
use std::net::SocketAddr;

use pingora::apps::http_app::HttpServer;
use pingora::server::configuration::ServerConf;
use pingora::services::listening::Service;
use pingora_test_support::{curl, current_thread_runtime as runtime, TestServer, TIMEOUT as STEP};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// A server with the example services, on a background thread.
struct Examples {
    echo_tcp: SocketAddr,
    echo_uds: std::path::PathBuf,
    http: SocketAddr,
    h2c: SocketAddr,
    kv: SocketAddr,
    _server: TestServer,
    _dir: TempDir,
}

impl Examples {
    fn start() -> Examples {
        let dir = TempDir::new();
        let echo_uds = dir.0.join("echo.sock");
        let conf = ServerConf {
            threads: 1,
            grace_period_seconds: Some(0),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        };
        let uds = echo_uds.clone();
        let (server, addrs) = TestServer::start_with_conf(conf, move |server| {
            let mut echo = Service::new("echo".to_string(), app::echo::EchoApp);
            echo.add_tcp("127.0.0.1:0");
            echo.add_uds(uds.to_str().expect("utf-8 temp path"), None);
            let mut http = Service::new(
                "http".to_string(),
                HttpServer::new_app(app::echo::HttpEchoApp),
            );
            http.add_tcp("127.0.0.1:0");
            let mut h2c = Service::new("h2c".to_string(), app::echo::h2c_http_echo());
            h2c.add_tcp("127.0.0.1:0");
            let mut kv = Service::new("kv".to_string(), app::kv::KvApp::default());
            kv.add_tcp("127.0.0.1:0");
            let addrs = vec![
                echo.local_addrs(),
                http.local_addrs(),
                h2c.local_addrs(),
                kv.local_addrs(),
            ];
            server.add_service(echo);
            server.add_service(http);
            server.add_service(h2c);
            server.add_service(kv);
            addrs
        });
        Examples {
            echo_tcp: addrs[0],
            echo_uds,
            http: addrs[1],
            h2c: addrs[2],
            kv: addrs[3],
            _server: server,
            _dir: dir,
        }
    }
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pingora-examples-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Sends `request`, then reads `expected.len()` bytes and checks they are `expected`.
async fn exchange<S: AsyncReadExt + AsyncWriteExt + Unpin>(
    io: &mut S,
    request: &[u8],
    expected: &[u8],
) {
    io.write_all(request).await.unwrap();
    let mut got = vec![0; expected.len()];
    tokio::time::timeout(STEP, io.read_exact(&mut got))
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(expected)
    );
}

/// Runs curl with `args`; returns its stdout, failing the test if curl fails.
fn curl(args: &[&str]) -> String {
    String::from_utf8(curl::output(args).stdout).expect("utf-8 body")
}

#[test]
fn echo_over_tcp_and_unix_socket() {
    let examples = Examples::start();
    runtime().block_on(async {
        let mut tcp = TcpStream::connect(examples.echo_tcp).await.unwrap();
        exchange(&mut tcp, b"hello over tcp", b"hello over tcp").await;
        // Bigger than any one read: every byte comes back, in order.
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut rd, mut wr) = tcp.into_split();
        let writer = {
            let big = big.clone();
            tokio::spawn(async move { wr.write_all(&big).await.unwrap() })
        };
        let mut back = vec![0; big.len()];
        tokio::time::timeout(STEP, rd.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        assert!(back == big, "the echoed bytes differ");

        let mut uds = UnixStream::connect(&examples.echo_uds).await.unwrap();
        exchange(
            &mut uds,
            b"hello over a unix socket",
            b"hello over a unix socket",
        )
        .await;
    });
}

#[test]
fn kv_protocol() {
    let examples = Examples::start();
    runtime().block_on(async {
        let mut a = TcpStream::connect(examples.kv).await.unwrap();
        exchange(&mut a, b"GET color\n", b"NOT_FOUND\n").await;
        exchange(&mut a, b"SET color deep blue\n", b"OK\n").await;
        exchange(&mut a, b"GET color\n", b"VALUE deep blue\n").await;
        exchange(&mut a, b"FLY away\n", b"ERROR unknown command\n").await;
        exchange(&mut a, b"GET\n", b"ERROR wrong number of arguments\n").await;
        // The store is shared between connections.
        let mut b = TcpStream::connect(examples.kv).await.unwrap();
        exchange(&mut b, b"DEL color\r\n", b"DELETED\n").await;
        exchange(&mut a, b"GET color\n", b"NOT_FOUND\n").await;
        // QUIT answers, then closes.
        exchange(&mut a, b"QUIT\n", b"BYE\n").await;
        let mut rest = Vec::new();
        let n = tokio::time::timeout(STEP, a.read_to_end(&mut rest))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 0);
        // A line longer than the limit is refused and the connection closed.
        let long = vec![b'x'; app::kv::MAX_LINE + 10];
        b.write_all(&long).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(STEP, b.read_to_end(&mut answer))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(answer, b"ERROR line too long\n");
    });
}

#[test]
fn http_echo_answers_curl() {
    let examples = Examples::start();
    let base = format!("http://{}", examples.http);

    assert_eq!(curl(&[&format!("{base}/hello?x=1")]), "GET /hello?x=1\n");
    assert_eq!(curl(&["--http1.0", &format!("{base}/old")]), "GET /old\n");
    assert_eq!(
        curl(&["--data-binary", "ping", &format!("{base}/")]),
        "ping"
    );

    // Keepalive: two URLs in one invocation share one connection.
    let out = curl::output(&["-v", &format!("{base}/a"), &format!("{base}/b")]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "GET /a\nGET /b\n");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("Re-using existing connection") || log.contains("Reusing existing"),
        "curl did not reuse the connection:\n{log}"
    );

    // Chunked upload of a file, echoed byte for byte.
    let dir = TempDir::new();
    let path = dir.0.join("upload.bin");
    let body: Vec<u8> = (0..300_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&body)
        .unwrap();
    let echoed = curl(&[
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &format!("@{}", path.display()),
        &format!("{base}/upload"),
    ]);
    assert!(
        echoed.as_bytes() == body.as_slice(),
        "the echoed upload differs"
    );

    // HEAD: the headers of a GET (its body would be "HEAD /x\n"), no body.
    let head = curl(&["-I", &format!("{base}/x")]);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("content-length: 8\r\n"),
        "{head}"
    );
}

#[test]
fn h2c_echo_answers_curl_with_prior_knowledge() {
    let examples = Examples::start();
    let base = format!("http://{}", examples.h2c);
    let h2 = "--http2-prior-knowledge";

    let out = curl(&[h2, "-w", "|%{http_version}", &format!("{base}/hello?x=1")]);
    assert_eq!(out, "GET /hello?x=1\n|2");
    let out = curl(&[h2, "--data-binary", "ping", &format!("{base}/")]);
    assert_eq!(out, "ping");
    // (Not two URLs in one invocation: curl 7.88 fails to reuse a prior-knowledge connection
    // with "Error in the HTTP2 framing layer" against any server, nghttpd included.)
    // HTTP/1.1 on the same port.
    let out = curl(&["-w", "|%{http_version}", &format!("{base}/one")]);
    assert_eq!(out, "GET /one\n|1.1");
}

#[test]
fn hello_is_a_service_by_itself_and_can_answer_late() {
    // The graceful_upgrade example's application: a plain `ServeHttp` given to `Service::new`.
    let (_server, addrs) = TestServer::start(|server| {
        let mut hello = Service::new("hello".to_string(), app::hello::Hello);
        hello.add_tcp("127.0.0.1:0");
        let addrs = hello.local_addrs();
        server.add_service(hello);
        vec![addrs]
    });
    let expected = format!("hello from pid {}\n", std::process::id());
    assert_eq!(curl(&[&format!("http://{}/", addrs[0])]), expected);
    let started = std::time::Instant::now();
    assert_eq!(
        curl(&[&format!("http://{}/?x=1&sleep=0.3", addrs[0])]),
        expected
    );
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
}

#[test]
fn hello_reads_the_pause_from_the_query() {
    use app::hello::{requested_sleep, MAX_SLEEP};
    use std::time::Duration;

    assert_eq!(requested_sleep(None), Duration::ZERO);
    assert_eq!(requested_sleep(Some("sleep=2")), Duration::from_secs(2));
    assert_eq!(
        requested_sleep(Some("a=b&sleep=0.25")),
        Duration::from_millis(250)
    );
    assert_eq!(requested_sleep(Some("sleep=1e9")), MAX_SLEEP);
    for ignored in [
        "sleep=",
        "sleep=soon",
        "sleep=-1",
        "sleep=NaN",
        "sleep=inf",
        "nap=3",
    ] {
        assert_eq!(requested_sleep(Some(ignored)), Duration::ZERO, "{ignored}");
    }
}

#[test]
fn uptime_gauge_is_scraped() {
    // Registered now, so the first scrape has it whether or not the service ticked yet.
    app::uptime::gauge();
    let (_server, addrs) = TestServer::start(|server| {
        let mut metrics = pingora_prometheus::prometheus_http_service();
        metrics.add_tcp("127.0.0.1:0");
        let addrs = metrics.local_addrs();
        server.add_service(metrics);
        server.add_service(pingora::services::background::background_service(
            "uptime",
            app::uptime::Uptime::every(std::time::Duration::from_millis(50)),
        ));
        vec![addrs]
    });
    let scrape = curl(&[&format!("http://{}/metrics", addrs[0])]);
    assert!(
        scrape.contains(&format!("\n{} ", app::uptime::GAUGE)),
        "{scrape}"
    );
}

/// The server example's TLS echo: the certificate follows the server name asked for.
#[cfg(feature = "any_tls")]
#[test]
fn tls_echo_picks_the_certificate_by_sni() {
    use pingora::connectors::TransportConnector;
    use pingora::listeners::tls::TlsSettings;
    use pingora::upstreams::peer::HttpPeer;

    let by_sni = app::sni::BySni::self_signed(&["localhost", "echo.localhost"], "fallback.test");
    let callbacks = by_sni.clone();
    let (_server, addrs) = TestServer::start(move |server| {
        let mut echo = Service::new("tls echo".to_string(), app::echo::EchoApp);
        let tls = TlsSettings::with_handshake_callbacks(Box::new(callbacks)).unwrap();
        echo.add_tls_with_settings("127.0.0.1:0", None, tls);
        let addrs = echo.local_addrs();
        server.add_service(echo);
        vec![addrs]
    });
    runtime().block_on(async {
        let connector = TransportConnector::new(None);
        for (sni, expected) in [
            ("localhost", Some("localhost")),
            ("ECHO.localhost", Some("echo.localhost")),
            ("other.test", None),
            ("", None),
        ] {
            let mut peer = HttpPeer::new(addrs[0], true, sni.to_string());
            peer.options.verify_cert = false;
            peer.options.verify_hostname = false;
            let mut tls = connector.new_stream(&peer).await.unwrap();
            let digest = tls.get_ssl_digest().expect("a TLS connection");
            let served = by_sni.certificate_for(expected);
            assert_eq!(
                digest.cert_digest,
                pingora::tls::der::sha256(served.leaf()),
                "SNI {sni:?}"
            );
            exchange(&mut tls, b"over tls", b"over tls").await;
        }
    });
}
