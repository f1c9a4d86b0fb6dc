//! End to end through a real proxy: retries after connection failures and after requests lost
//! on reused upstream connections, the request body replayed, and the retry bound.

mod e2e;

use std::sync::atomic::Ordering;

use e2e::*;
use pingora_core::server::configuration::ServerConf;

#[test]
fn a_retryable_connect_failure_goes_to_the_next_peer_with_the_body() {
    let rt = runtime();
    let (live, seen) = echo_origin(&rt, false, false);
    let (mut app, mut probe) = recorder(vec![dead_addr(), live.addr]);
    app.retry_connect = true;
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let resp = RawConn::connect(addr)
            .await
            .roundtrip(post("/p", b"payload"))
            .await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "payload");
        probe.logged(1).await;
        let events = probe.events();
        let tail: Vec<&str> = events[2..6].iter().map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "proxy_upstream_filter",
                "upstream_peer",
                "fail_to_connect",
                "upstream_peer"
            ]
        );
        assert_eq!(events.last().map(String::as_str), Some("logging ok"));
        assert_eq!(*seen.lock().expect("seen"), ["0 POST payload"]);
    });
}

#[test]
fn upstream_closing_idle_connections_does_not_fail_requests() {
    let rt = runtime();
    let (origin, seen) = echo_origin(&rt, true, false);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        for (req, expected) in [
            (get("/1", "").into_bytes(), "empty"),
            (post("/2", b"small body"), "small body"),
            (get("/3", "").into_bytes(), "empty"),
            (post("/4", b"another"), "another"),
        ] {
            let resp = client.roundtrip(&req).await;
            assert_eq!(resp.head.status(), 200);
            assert_eq!(resp.text(), expected);
        }
        probe.logged(4).await;
        assert_eq!(origin.connection_count(), 4);
        let seen = seen.lock().expect("seen").clone();
        assert_eq!(
            seen,
            ["0 GET ", "1 POST small body", "2 GET ", "3 POST another"]
        );
    });
}

#[test]
fn request_lost_on_a_reused_connection_is_retried_with_its_body() {
    let rt = runtime();
    let (origin, seen) = echo_origin(&rt, false, true);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/1", "")).await;
        assert_eq!(resp.text(), "empty");
        probe.logged(1).await;
        probe.clear();
        let resp = client.roundtrip(post("/2", b"replay me")).await;
        assert_eq!(resp.head.status(), 200);
        assert_eq!(resp.text(), "replay me");
        probe.logged(1).await;
        let mut expected = upstream_prefix(true);
        expected.extend(strings(&[
            "request_body_filter len=9 eos=true",
            "error_while_proxy reused=true retry=true",
            "upstream_peer",
            "connected_to_upstream reused=false",
            "upstream_request_filter",
            "request_body_filter len=9 eos=true",
            "upstream_response_filter 200",
            "response_filter 200",
            "upstream_response_body_filter len=9 eos=true",
            "response_body_filter len=9 eos=true",
            "logging ok",
        ]));
        assert_eq!(probe.events(), expected);
        assert_eq!(
            *seen.lock().expect("seen"),
            ["0 GET ", "0 POST replay me", "1 POST replay me"]
        );
    });
}

#[test]
fn request_with_a_body_over_64k_is_not_retried() {
    let rt = runtime();
    let (origin, seen) = echo_origin(&rt, false, true);
    let (app, mut probe) = recorder(vec![origin.addr]);
    let (_proxy, addr) = start_proxy(app);
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        assert_eq!(client.roundtrip(get("/1", "")).await.text(), "empty");
        probe.logged(1).await;
        probe.clear();
        let big = pattern_vec(100 * 1024);
        let resp = client.roundtrip(post("/2", &big)).await;
        assert_eq!(resp.head.status(), 502);
        probe.logged(1).await;
        let events = probe.events();
        assert!(
            events.contains(&"error_while_proxy reused=true retry=false".to_string()),
            "{events:?}"
        );
        assert_eq!(probe.peer_calls.load(Ordering::SeqCst), 2);
        assert_eq!(origin.connection_count(), 1);
        assert_eq!(
            *seen.lock().expect("seen"),
            ["0 GET ", "0 POST <102400 bytes>"]
        );
    });
}

#[test]
fn max_retries_bounds_the_attempts() {
    let rt = runtime();
    let (mut app, mut probe) = recorder(vec![dead_addr()]);
    app.retry_connect = true;
    let conf = ServerConf {
        max_retries: 2,
        ..ServerConf::default()
    };
    let (_proxy, addr) = start_proxy_with(app, conf, None);
    rt.block_on(async {
        let resp = RawConn::connect(addr).await.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 502);
        probe.logged(1).await;
        // Pingora: `while retries < max_retries { retries += 1; attempt }`.
        assert_eq!(probe.peer_calls.load(Ordering::SeqCst), 2);
    });
}

#[test]
fn retries_stop_at_a_small_bound() {
    let rt = runtime();
    let (mut app, mut probe) = recorder(vec![dead_addr()]);
    app.retry_connect = true;
    let conf = ServerConf {
        max_retries: 3,
        ..ServerConf::default()
    };
    let (_proxy, addr) = start_proxy_with(app, conf, None);
    rt.block_on(async {
        let resp = RawConn::connect(addr).await.roundtrip(get("/a", "")).await;
        assert_eq!(resp.head.status(), 502);
        probe.logged(1).await;
        let calls = probe.peer_calls.load(Ordering::SeqCst);
        // Bounded by the configuration, not the default of 16 (3 in Pingora, 4 today).
        assert!((3..=4).contains(&calls), "{calls} attempts");
        let events = probe.events();
        assert_eq!(
            events.iter().filter(|e| *e == "fail_to_connect").count(),
            calls
        );
        assert_eq!(events.last().map(String::as_str), Some("logging error"));
    });
}
