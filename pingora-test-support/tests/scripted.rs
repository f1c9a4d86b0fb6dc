//! The scripted origin answers as scripted: framing, sequences, 304s, pauses and cuts.

use pingora_test_support::raw::{get, Closed};
use pingora_test_support::scripted::{Cut, Gate, Reply, ScriptedOrigin};
use pingora_test_support::RawConn;

#[tokio::test]
async fn replies_are_framed_as_scripted_and_requests_recorded() {
    let origin = ScriptedOrigin::start().await;
    origin.set("/len", Reply::ok("hello").header("X-Case", "Kept"));
    origin.set("/chunked", Reply::ok("hello world").chunked().pieces(4));
    origin.set("/close", Reply::ok("until close").close_delimited());
    origin.set("/204", Reply::new(204));
    let mut conn = RawConn::connect(origin.addr()).await;
    let resp = conn.roundtrip(get("/len", "X-Req: 1\r\n")).await;
    assert_eq!(resp.text(), "hello");
    assert!(String::from_utf8_lossy(&resp.head.raw).contains("X-Case: Kept\r\n"));
    let resp = conn.roundtrip(get("/chunked?q", "")).await;
    assert!(resp.chunked_complete);
    assert_eq!(resp.text(), "hello world");
    let resp = conn.roundtrip(get("/204", "")).await;
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.header("content-length"), None);
    let resp = conn.roundtrip(get("/close", "")).await;
    assert_eq!(resp.text(), "until close");
    let resp = RawConn::connect(origin.addr())
        .await
        .roundtrip(get("/none", ""))
        .await;
    assert_eq!(resp.status(), 404);
    assert_eq!(origin.count("/len"), 1);
    assert_eq!(origin.count("/chunked?q"), 1);
    assert_eq!(origin.last("/len").get("x-req"), Some("1"));
    assert_eq!(origin.total(), 5);
}

#[tokio::test]
async fn sequences_304s_and_computed_replies() {
    let origin = ScriptedOrigin::start().await;
    origin.set_sequence("/seq", vec![Reply::ok("one"), Reply::ok("two")]);
    origin.set(
        "/etag",
        Reply::ok("body")
            .header("ETag", "\"e\"")
            .not_modified_if_none_match("\"e\""),
    );
    origin.set_fn("/fn", |req, n| Reply::ok(format!("{} {n}", req.method)));
    let mut conn = RawConn::connect(origin.addr()).await;
    for expected in ["one", "two", "two"] {
        assert_eq!(conn.roundtrip(get("/seq", "")).await.text(), expected);
    }
    let resp = conn
        .roundtrip(get("/etag", "If-None-Match: \"x\", W/\"e\"\r\n"))
        .await;
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.header("etag"), Some("\"e\""));
    assert_eq!(
        conn.roundtrip(get("/etag", "If-None-Match: \"x\"\r\n"))
            .await
            .status(),
        200
    );
    assert_eq!(conn.roundtrip(get("/fn", "")).await.text(), "GET 0");
    assert_eq!(conn.roundtrip(get("/fn", "")).await.text(), "GET 1");
}

#[tokio::test]
async fn pauses_wait_for_the_gate_and_cuts_end_the_connection() {
    let origin = ScriptedOrigin::start().await;
    let gate = Gate::new();
    origin.set(
        "/cut",
        Reply::ok("0123456789")
            .pieces(2)
            .pause_after(4, &gate)
            .cut_after(6, Cut::Reset),
    );
    let mut conn = RawConn::connect(origin.addr()).await;
    conn.send(get("/cut", "")).await;
    let head = conn.read_head().await.expect("a head");
    assert_eq!(head.get("content-length"), Some("10"));
    assert_eq!(conn.read_exact(4).await, b"0123");
    gate.open();
    let (rest, closed) = conn.read_to_close().await;
    assert_eq!(rest, b"45");
    assert_eq!(closed, Closed::Reset);
}
