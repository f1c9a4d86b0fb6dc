use std::io::Read;
use std::net::SocketAddr;

use pingora_core::metrics::{self, Group};
use pingora_test_support::{curl, TestServer};

use super::*;

/// The service on `127.0.0.1:0`, in a server of its own.
fn start() -> (TestServer, SocketAddr) {
    let (server, addrs) = TestServer::start(|server| {
        let mut service = prometheus_http_service();
        service.add_tcp("127.0.0.1:0");
        let addrs = vec![service.local_addrs()];
        server.add_service(service);
        addrs
    });
    (server, addrs[0])
}

/// Scrapes `addr`; returns the response head and the (decoded) text.
fn scrape(addr: SocketAddr, extra: &[&str]) -> (String, String) {
    let url = format!("http://{addr}/any/path");
    let mut args = extra.to_vec();
    args.push(&url);
    let (status, head, body) = curl::response(&args);
    assert_eq!(status, 200, "{head}");
    let head = head.to_ascii_lowercase();
    let text = if head.contains("content-encoding: gzip") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut text)
            .expect("a gzip body");
        text
    } else {
        String::from_utf8(body).expect("text")
    };
    (head, text)
}

/// The value of the sample named `series` in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("a number"))
        })
}

// One test: the group switches are process-wide.
#[test]
fn serves_builtin_and_user_metrics_plain_or_gzip_without_switched_off_groups() {
    let user = prometheus::register_int_counter!(
        "pingora_prometheus_test_widgets_total",
        "Widgets this test made."
    )
    .unwrap();
    user.inc_by(3);
    let (_server, addr) = start();

    let (head, plain) = scrape(addr, &[]);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4\r\n"),
        "{head}"
    );
    assert!(!head.contains("content-encoding"), "{head}");
    assert_eq!(
        value(&plain, "pingora_prometheus_test_widgets_total"),
        Some(3.0)
    );
    assert!(plain.contains("# TYPE pingora_upstream_connect_seconds histogram\n"));
    assert_eq!(
        value(
            &plain,
            "pingora_upstream_connect_seconds_bucket{le=\"0.0005\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&plain, "pingora_tls_handshakes_total{side=\"upstream\"}"),
        Some(0.0)
    );
    // Each scrape is a connection of its own, counted before it is answered.
    let accepted = "pingora_downstream_connections_accepted_total";
    let first = value(&plain, accepted).expect("the connections counted");

    let (head, gzipped) = scrape(addr, &["-H", "Accept-Encoding: gzip"]);
    assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
    assert_eq!(
        value(&gzipped, "pingora_prometheus_test_widgets_total"),
        Some(3.0)
    );
    assert_eq!(value(&gzipped, accepted), Some(first + 1.0));
    #[cfg(target_os = "linux")]
    assert!(value(&gzipped, "process_open_fds").is_some_and(|fds| fds > 0.0));

    metrics::disable(Group::Tls);
    metrics::disable(Group::Process);
    let (_, off) = scrape(addr, &[]);
    assert!(!off.contains("pingora_tls_"), "{off}");
    assert!(!off.contains("process_"), "{off}");
    assert_eq!(
        value(&off, accepted),
        Some(first + 2.0),
        "other groups stay"
    );

    metrics::enable(Group::Tls);
    metrics::enable(Group::Process);
    let (_, on) = scrape(addr, &[]);
    assert!(on.contains("pingora_tls_handshake_failures_total"));
    #[cfg(target_os = "linux")]
    assert!(on.contains("process_cpu_seconds_total"));
}

#[test]
fn registering_the_builtin_metrics_again_changes_nothing() {
    register_builtin_metrics();
    register_builtin_metrics();
    let names: Vec<String> = prometheus::gather()
        .iter()
        .map(|family| family.name().to_string())
        .filter(|name| {
            name == "pingora_proxy_retries_total" || name.starts_with("pingora_downstream")
        })
        .collect();
    assert_eq!(
        names,
        [
            "pingora_downstream_connections_accepted_total",
            "pingora_downstream_connections_open"
        ]
    );
}
