//! One server process running several services side by side, each on its own runtime:
//!
//! | port / path | service |
//! | --- | --- |
//! | 6142 | TCP echo |
//! | 6143 | TLS echo, its certificate chosen per connection by SNI |
//! | 6145, `/tmp/pingora-server-echo.sock` | HTTP echo, over TCP (with keepalive probes and TCP Fast Open) and a Unix socket |
//! | 6148 | HTTPS echo (HTTP/1.1 and HTTP/2), its certificate chosen per connection by SNI |
//! | 6150 | Prometheus metrics: the built-in ones and `example_uptime_seconds` |
//! | – | a background service updating `example_uptime_seconds` every second |
//!
//! ```sh
//! cargo run -p pingora --example server --features rustls   # or openssl, s2n, boringssl
//! echo hello | nc -q1 127.0.0.1 6142
//! openssl s_client -quiet -connect 127.0.0.1:6143 -servername localhost   # type, see it back
//! curl -d 'some bytes' http://127.0.0.1:6145/
//! curl --unix-socket /tmp/pingora-server-echo.sock http://localhost/hello
//! curl -k https://localhost:6148/hello
//! curl -kv https://127.0.0.1:6148/ 2>&1 | grep subject   # no SNI: the fallback certificate
//! curl http://127.0.0.1:6150/metrics | grep example_uptime_seconds
//! ```
//!
//! The TLS certificates are self-signed and generated at start: one for `localhost`, one for
//! `echo.localhost`, and a fallback for any other name (or none). Without a TLS backend
//! compiled in, the TLS services are left out and the others run. The server's usual options
//! apply (`-c conf.yaml`, `-d`, `-u`, ...).

mod app;

use std::time::Duration;

use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::listeners::TcpSocketOptions;
use pingora::prelude::*;
use pingora::protocols::TcpKeepalive;
use pingora::services::background::background_service;
use pingora::services::listening::Service;
use pingora::services::ServiceWithDependents;
use pingora::tls::Backend;

/// The server names that get a certificate of their own.
const NAMES: [&str; 2] = ["localhost", "echo.localhost"];
/// The name on the certificate served to every other client.
const FALLBACK_NAME: &str = "pingora.example";

/// TLS settings whose certificate is chosen per handshake by [`app::sni::BySni`].
fn tls_by_sni(by_sni: &app::sni::BySni) -> TlsSettings {
    TlsSettings::with_handshake_callbacks(Box::new(by_sni.clone())).expect("TLS settings")
}

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();
    let tls = !Backend::compiled_in().is_empty();
    let by_sni = app::sni::BySni::self_signed(&NAMES, FALLBACK_NAME);

    // Raw bytes: TCP, and TLS with a certificate per server name.
    let mut echo = Service::new("echo".to_string(), app::echo::EchoApp);
    echo.add_tcp("127.0.0.1:6142");
    if tls {
        echo.add_tls_with_settings("127.0.0.1:6143", None, tls_by_sni(&by_sni));
    }

    // HTTP: TCP with socket options, a Unix socket, and HTTPS with HTTP/2.
    let mut http_echo = Service::new(
        "http echo".to_string(),
        HttpServer::new_app(app::echo::HttpEchoApp),
    );
    let mut options = TcpSocketOptions::default();
    options.tcp_fastopen = Some(10);
    options.tcp_keepalive = Some(TcpKeepalive {
        idle: Duration::from_secs(60),
        interval: Duration::from_secs(5),
        count: 5,
        user_timeout: Duration::from_secs(85),
    });
    http_echo.add_tcp_with_settings("127.0.0.1:6145", options);
    http_echo.add_uds("/tmp/pingora-server-echo.sock", None);
    if tls {
        let mut settings = tls_by_sni(&by_sni);
        settings.enable_h2();
        http_echo.add_tls_with_settings("0.0.0.0:6148", None, settings);
    } else {
        println!(
            "no TLS backend compiled in (build with --features rustls, for one): \
             no TLS echo on 6143, no HTTPS echo on 6148"
        );
    }

    let mut metrics = pingora_prometheus::prometheus_http_service();
    metrics.add_tcp("127.0.0.1:6150");

    let uptime = background_service("uptime", app::uptime::Uptime::every(Duration::from_secs(1)));

    // Services of different types, added in one call.
    let services: Vec<Box<dyn ServiceWithDependents>> = vec![
        Box::new(echo),
        Box::new(http_echo),
        Box::new(metrics),
        Box::new(uptime),
    ];
    server.add_services(services);
    server.run_forever();
}
