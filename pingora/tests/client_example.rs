//! The `client` example's logic, run against local origins: its own in-process origin and raw
//! listeners that this test scripts.

#[path = "../examples/client.rs"]
#[allow(dead_code)] // the example's `main`
mod client;

use std::time::Duration;

use pingora::connectors::http::Connector;
use pingora::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Bound on any one step.
const STEP: Duration = Duration::from_secs(10);

#[tokio::test]
async fn run_without_arguments_fetches_twice_from_its_own_origin() {
    let report = tokio::time::timeout(STEP, client::run(&[]))
        .await
        .expect("the run hung")
        .expect("the run failed");
    let blocks: Vec<&str> = report.split("GET http://127.0.0.1:").skip(1).collect();
    assert_eq!(blocks.len(), 2, "{report}");
    assert!(
        blocks[0].contains("\n200 (reused connection: false)\n"),
        "{report}"
    );
    assert!(blocks[0].contains("content-length: 18\n"), "{report}");
    assert!(blocks[0].ends_with("\n\nhello from /hello\n"), "{report}");
    assert!(
        blocks[1].contains("\n200 (reused connection: true)\n"),
        "{report}"
    );
    assert!(blocks[1].ends_with("\n\nhello from /again\n"), "{report}");
}

#[tokio::test]
async fn fetch_sends_the_path_and_host_and_reuses_the_connection() {
    let origin = client::start_origin().await.unwrap();
    let connector = Connector::new(None);
    let url = format!("http://{origin}/some/path?q=1");
    let first = client::fetch(&connector, &url).await.unwrap();
    assert_eq!(first.status, 200);
    assert_eq!(first.body, b"hello from /some/path?q=1\n");
    assert!(!first.reused);
    let second = client::fetch(&connector, &url).await.unwrap();
    assert!(second.reused);
}

/// The request as it arrives at a scripted origin, which answers with `response` and closes.
async fn request_seen(
    url_of: impl FnOnce(u16) -> String,
    response: &[u8],
) -> (String, Result<client::Fetched>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connector = Connector::new(None);
    let url = url_of(port);
    let fetch = client::fetch(&connector, &url);
    let origin = async {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(conn.read(&mut byte).await.unwrap(), 1, "request cut short");
            head.push(byte[0]);
        }
        conn.write_all(response).await.unwrap();
        String::from_utf8(head).unwrap()
    };
    let (fetched, head) = tokio::time::timeout(STEP, async { tokio::join!(fetch, origin) })
        .await
        .expect("the exchange hung");
    (head, fetched)
}

#[tokio::test]
async fn fetch_writes_a_proper_request() {
    let (head, fetched) = request_seen(
        |port| format!("http://localhost:{port}"),
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
    )
    .await;
    let port = head
        .split("\r\nHost: localhost:")
        .nth(1)
        .and_then(|rest| rest.split("\r\n").next())
        .expect("a Host header with the port");
    assert!(port.parse::<u16>().is_ok(), "{head}");
    assert!(head.starts_with("GET / HTTP/1.1\r\n"), "{head}");
    assert!(
        head.contains("\r\nUser-Agent: pingora-example-client\r\n"),
        "{head}"
    );
    let fetched = fetched.unwrap();
    assert_eq!(fetched.status, 404);
    assert_eq!(fetched.body, b"nope");
    assert!(fetched
        .headers
        .contains(&("connection".to_string(), "close".to_string())));
}

#[tokio::test]
async fn fetch_reports_a_truncated_body() {
    let (_, fetched) = request_seen(
        |port| format!("http://127.0.0.1:{port}/"),
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    )
    .await;
    let err = fetched.unwrap_err();
    assert_eq!(err.etype(), &ConnectionClosed, "{err}");
}

#[tokio::test]
async fn bad_urls_and_refused_connections_are_errors() {
    let connector = Connector::new(None);
    for url in [
        "https://127.0.0.1/",
        "127.0.0.1:80/",
        "not a url",
        "http:///path",
    ] {
        let err = client::fetch(&connector, url).await.unwrap_err();
        assert_eq!(err.etype(), &Custom("BadUrl"), "{url}: {err}");
    }
    let closed_port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = client::fetch(&connector, &format!("http://127.0.0.1:{closed_port}/"))
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &ConnectRefused, "{err}");
    let err = client::run(&["ftp://example.test/".to_string()])
        .await
        .unwrap_err();
    assert_eq!(err.etype(), &Custom("BadUrl"), "{err}");
}
