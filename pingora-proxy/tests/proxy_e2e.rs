//! End to end through a real proxy: the order of the `ProxyHttp` callbacks and the default
//! error statuses. Origins are in-process raw TCP scripts; clients are raw sockets speaking
//! HTTP/1.

mod e2e;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use e2e::*;

// === 1. callback order ===

#[test]
fn get_without_body_runs_every_callback_in_order() {
    let rt = runtime();
    let (origin, _) = hello_origin(&rt);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "hello");
        probe.logged(1).await;
        let mut expected = upstream_prefix(false);
        expected.extend(strings(&[
            "request_body_filter len=0 eos=true",
            "upstream_response_filter 200",
            "response_filter 200",
            "upstream_response_body_filter len=5 eos=true",
            "response_body_filter len=5 eos=true",
            "logging ok",
        ]));
        assert_eq!(probe.events(), expected);

        // The same again on the kept client connection, over the pooled upstream connection.
        probe.clear();
        let resp = client.roundtrip(get("/b", "")).await;
        assert_eq!(resp.text(), "hello");
        probe.logged(1).await;
        expected[4] = "connected_to_upstream reused=true".to_string();
        assert_eq!(probe.events(), expected);
        assert_eq!(origin.connection_count(), 1);
    });
}

#[test]
fn post_with_body_sees_the_body_then_the_end() {
    let rt = runtime();
    let (origin, seen) = hello_origin(&rt);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(post("/p", b"hello world")).await;
        assert_eq!(resp.head.status(), 200);
        probe.logged(1).await;
        let mut expected = upstream_prefix(false);
        expected.extend(strings(&[
            "request_body_filter len=11 eos=true",
            "upstream_response_filter 200",
            "response_filter 200",
            "upstream_response_body_filter len=5 eos=true",
            "response_body_filter len=5 eos=true",
            "logging ok",
        ]));
        assert_eq!(probe.events(), expected);

        // A chunked body in three pieces: the filter sees every byte and a final end.
        probe.clear();
        client
            .send("POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
            .await;
        client.send("2\r\nde\r\n0\r\n\r\n").await;
        let resp = client.read_response("POST").await;
        assert_eq!(resp.head.status(), 200);
        probe.logged(1).await;
        let body_events: Vec<String> = probe
            .events()
            .into_iter()
            .filter(|e| e.starts_with("request_body_filter"))
            .collect();
        let total: usize = body_events
            .iter()
            .map(|e| {
                e.split("len=")
                    .nth(1)
                    .unwrap_or("0")
                    .split(' ')
                    .next()
                    .unwrap_or("0")
                    .parse::<usize>()
                    .unwrap_or(0)
            })
            .sum();
        assert_eq!(total, 5, "{body_events:?}");
        assert!(body_events.last().is_some_and(|e| e.ends_with("eos=true")));
        assert_eq!(
            body_events
                .iter()
                .filter(|e| e.ends_with("eos=true"))
                .count(),
            1,
            "{body_events:?}"
        );
        let seen = seen.lock().expect("seen").clone();
        assert_eq!(seen, ["POST /p hello world", "POST /c abcde"]);
    });
}

#[test]
fn request_body_filter_gets_no_empty_pieces() {
    let rt = runtime();
    let (origin, _) = hello_origin(&rt);
    let (mut app, mut probe) = recorder(vec![origin.addr]);
    app.raw_body_events = true;
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        client.roundtrip(get("/a", "")).await;
        client.roundtrip(post("/p", b"hello world")).await;
        probe.logged(2).await;
        let body_events: Vec<String> = probe
            .events()
            .into_iter()
            .filter(|e| e.starts_with("request_body_filter"))
            .collect();
        // As in Pingora: a bodiless request gets one `None` with the end; a body gets only
        // its data.
        assert_eq!(
            body_events,
            [
                "request_body_filter none eos=true",
                "request_body_filter len=11 eos=true"
            ]
        );
    });
}

#[test]
fn request_filter_answering_skips_the_upstream_and_keeps_the_client() {
    let rt = runtime();
    let (origin, seen) = hello_origin(&rt);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/deny", "")).await;
        assert_eq!(resp.head.status(), 403);
        assert_eq!(resp.text(), "denied");
        probe.logged(1).await;
        assert_eq!(
            probe.events(),
            ["early_request_filter", "request_filter", "logging ok"]
        );
        // The client connection is kept.
        let resp = client.roundtrip(get("/a", "")).await;
        assert_eq!(resp.text(), "hello");
        probe.logged(1).await;
        assert_eq!(seen.lock().expect("seen").len(), 1);
        assert_eq!(origin.connection_count(), 1);
    });
}

#[test]
fn proxy_upstream_filter_refusing_answers_502_unless_it_answered() {
    let rt = runtime();
    let (origin, _) = hello_origin(&rt);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/refuse", "")).await;
        assert_eq!(resp.head.status(), 502);
        assert_eq!(resp.head.get("content-length"), Some("0"));
        assert_eq!(resp.head.get("server"), Some("Pingora"));
        assert_eq!(resp.head.get("cache-control"), Some("private, no-store"));
        probe.logged(1).await;
        assert_eq!(
            probe.events(),
            [
                "early_request_filter",
                "request_filter",
                "proxy_upstream_filter",
                "logging ok"
            ]
        );
        probe.clear();
        // The connection survives, and a response written by the filter is the one sent.
        let resp = client.roundtrip(get("/refuse-written", "")).await;
        assert_eq!(resp.head.status(), 451);
        probe.logged(1).await;
        assert_eq!(
            probe.events().last().map(String::as_str),
            Some("logging ok")
        );
        assert_eq!(origin.connection_count(), 0);
    });
}

#[test]
fn connect_failure_runs_fail_to_connect_then_fail_to_proxy() {
    let rt = runtime();
    let (app, mut probe) = recorder(vec![dead_addr()]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 502);
        assert!(client.is_closed().await, "the client connection is closed");
        probe.logged(1).await;
        assert_eq!(
            probe.events(),
            [
                "early_request_filter",
                "request_filter",
                "proxy_upstream_filter",
                "upstream_peer",
                "fail_to_connect",
                "fail_to_proxy 502",
                "logging error"
            ]
        );
        assert_eq!(probe.peer_calls.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn error_after_connecting_runs_error_while_proxy() {
    let rt = runtime();
    // Reads the request and hangs up without a word.
    let origin = raw_origin(&rt, |mut conn, _| async move {
        let _ = conn.read_request().await;
    });
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 502);
        probe.logged(1).await;
        let mut expected = upstream_prefix(false);
        expected.extend(strings(&[
            "request_body_filter len=0 eos=true",
            // A fresh connection: closing before the response is not retried.
            "error_while_proxy reused=false retry=false",
            "fail_to_proxy 502",
            "logging error",
        ]));
        assert_eq!(probe.events(), expected);
        assert_eq!(origin.connection_count(), 1);
    });
}

#[test]
fn logging_runs_once_per_request_on_a_kept_connection() {
    let rt = runtime();
    let (origin, _) = hello_origin(&rt);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        for (path, status) in [
            ("/a", 200),
            ("/deny", 403),
            ("/refuse", 502),
            ("/refuse-written", 451),
            ("/b", 200),
            ("/status-error", 429),
        ] {
            let resp = client.roundtrip(get(path, "")).await;
            assert_eq!(resp.head.status(), status, "{path}");
        }
        // The last error closed the connection.
        assert!(client.is_closed().await);
        probe.logged(6).await;
        let logs: Vec<String> = probe
            .events()
            .into_iter()
            .filter(|e| e.starts_with("logging"))
            .collect();
        assert_eq!(
            logs,
            [
                "logging ok",
                "logging ok",
                "logging ok",
                "logging ok",
                "logging ok",
                "logging error"
            ]
        );
        assert_eq!(
            probe
                .events()
                .iter()
                .filter(|e| *e == "early_request_filter")
                .count(),
            6
        );
    });
}

// === 2. default statuses ===

#[test]
fn filter_errors_map_to_their_statuses() {
    let rt = runtime();
    let (origin, _) = hello_origin(&rt);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        for (path, status) in [
            ("/status-error", 429),
            ("/unset-error", 500),
            ("/internal-error", 500),
        ] {
            probe.clear();
            let mut client = RawConn::connect(addr).await;
            let resp = client.roundtrip(get(path, "")).await;
            assert_eq!(resp.head.status(), status, "{path}");
            assert_eq!(resp.head.get("content-length"), Some("0"));
            assert!(client.is_closed().await, "{path}: connection not reused");
            probe.logged(1).await;
            assert_eq!(
                probe.events(),
                [
                    "early_request_filter".to_string(),
                    "request_filter".to_string(),
                    format!("fail_to_proxy {status}"),
                    "logging error".to_string()
                ]
            );
        }
        assert_eq!(origin.connection_count(), 0);
    });
}

#[test]
fn refused_upstream_is_a_502_with_the_standard_error_head() {
    let rt = runtime();
    let (app, mut probe) = recorder(vec![dead_addr()]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 502);
        assert_eq!(resp.head.get("server"), Some("Pingora"));
        assert_eq!(resp.head.get("content-length"), Some("0"));
        assert_eq!(resp.head.get("cache-control"), Some("private, no-store"));
        assert!(resp.body.is_empty());
        probe.logged(1).await;
    });
}

/// An origin whose first connection answers every request with `reply` (and stays open),
/// while later connections answer properly ("hello").
fn first_connection_replies(rt: &tokio::runtime::Runtime, reply: &'static [u8]) -> Origin {
    raw_origin(rt, move |mut conn, index| async move {
        while let Some(_req) = conn.read_request().await {
            if index == 0 {
                conn.send(reply).await;
            } else {
                conn.send(ok_response(b"hello")).await;
            }
        }
    })
}

#[test]
fn garbage_from_the_upstream_is_a_502_and_the_connection_is_dropped() {
    let rt = runtime();
    let origin = first_connection_replies(&rt, b"SPEAKING NO HTTP HERE\r\n\r\n");
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let resp = RawConn::connect(addr).await.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 502);
        probe.logged(1).await;
        // The next request does not get the broken connection back from the pool.
        let resp = RawConn::connect(addr).await.roundtrip(get("/b", "")).await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "hello");
        probe.logged(1).await;
        assert_eq!(origin.connection_count(), 2);
    });
}

#[test]
fn truncated_upstream_head_is_a_502_and_the_connection_is_dropped() {
    let rt = runtime();
    let origin = raw_origin(&rt, |mut conn, index| async move {
        while let Some(_req) = conn.read_request().await {
            if index == 0 {
                conn.send("HTTP/1.1 200 OK\r\nContent-Le").await;
                return;
            }
            conn.send(ok_response(b"hello")).await;
        }
    });
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let resp = RawConn::connect(addr).await.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 502);
        probe.logged(1).await;
        let resp = RawConn::connect(addr).await.roundtrip(get("/b", "")).await;
        assert_eq!(resp.text(), "hello");
        assert_eq!(origin.connection_count(), 2);
    });
}

#[test]
fn truncated_upstream_body_closes_the_client_connection() {
    let rt = runtime();
    let origin = raw_origin(&rt, |mut conn, index| async move {
        while let Some(_req) = conn.read_request().await {
            if index == 0 {
                conn.send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                    .await;
                return;
            }
            conn.send(ok_response(b"hello")).await;
        }
    });
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        client.send(get("/a", "")).await;
        let head = client.read_head().await.expect("a response head");
        // The head went out before the body failed: the client sees the status, part of the
        // body, then the connection closing (the only way to say the body is incomplete).
        assert_eq!(head.status(), 200);
        assert_eq!(head.get("content-length"), Some("100"));
        let rest = client.read_to_end().await;
        assert_eq!(rest, b"partial");
        probe.logged(1).await;
        assert!(probe.events().contains(&"logging error".to_string()));
        let resp = RawConn::connect(addr).await.roundtrip(get("/b", "")).await;
        assert_eq!(resp.text(), "hello");
        assert_eq!(origin.connection_count(), 2);
    });
}

#[test]
fn upstream_read_timeout_is_a_502() {
    let rt = runtime();
    // Reads the request, then says nothing until the proxy hangs up.
    let origin = raw_origin(&rt, |mut conn, _| async move {
        let _ = conn.read_request().await;
        let _ = conn.read_to_end().await;
    });
    let (mut app, mut probe) = recorder(vec![origin.addr]);
    let timeout = Duration::from_millis(300);
    app.read_timeout = Some(timeout);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let started = Instant::now();
        let resp = RawConn::connect(addr).await.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 502);
        assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
        probe.logged(1).await;
        let events = probe.events();
        assert!(
            events.contains(&"error_while_proxy reused=false retry=false".to_string()),
            "{events:?}"
        );
        // A timeout is not retried.
        assert_eq!(probe.peer_calls.load(Ordering::SeqCst), 1);
    });
}
