//! Rules section 3: serving stale (RFC 9111 §4.2.4, RFC 5861). Stored responses are made
//! stale at once by an upstream `Age` past their `max-age`.

use super::*;

/// A 200 "v1" with `cc`, already 61 s old.
fn stale_v1(cc: &str) -> Reply {
    Reply::ok("v1")
        .header("Cache-Control", cc)
        .header("Age", "61")
}

/// The `Cache-Control` values that forbid serving a response stale, with stale windows
/// that would otherwise allow it.
fn revalidation_required() -> [(&'static str, String); 4] {
    let windows = "stale-while-revalidate=600, stale-if-error=600";
    [
        (
            "must-revalidate",
            format!("max-age=60, must-revalidate, {windows}"),
        ),
        (
            "proxy-revalidate",
            format!("max-age=60, proxy-revalidate, {windows}"),
        ),
        ("s-maxage", format!("s-maxage=60, {windows}")),
        ("no-cache", format!("no-cache, max-age=60, {windows}")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_is_never_served_when_revalidation_is_required() {
    let h = Cached::start().await;
    for (case, cc) in revalidation_required() {
        // Not served stale while revalidating: the client waits for the new response.
        let target = format!("/{case}-swr");
        h.origin
            .set_sequence(&target, vec![stale_v1(&cc), fresh("v2")]);
        let _ = h.get(&target, "").await;
        let resp = h.get(&target, "").await;
        assert_eq!(resp.text(), "v2", "{case}: served stale while revalidating");

        // Not served stale on an origin error, even when the request accepts stale.
        for (fields, what) in [
            ("", "plain"),
            ("Cache-Control: max-stale=600\r\n", "max-stale"),
        ] {
            let target = format!("/{case}-error-{what}");
            h.origin
                .set_sequence(&target, vec![stale_v1(&cc), Reply::new(503).body("down")]);
            let _ = h.get(&target, "").await;
            let resp = h.get(&target, fields).await;
            assert_eq!(resp.status(), 503, "{case} {what}: served stale on error");
            assert_eq!(resp.text(), "down", "{case} {what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revalidation_that_must_not_serve_stale_is_a_504() {
    let h = Cached::start().await;
    for (case, cc) in revalidation_required() {
        let target = format!("/{case}-unreachable");
        h.origin.set(&target, stale_v1(&cc));
        let _ = h.get(&target, "").await;
        h.origin_reachable(false);
        let resp = h.get(&target, "").await;
        h.origin_reachable(true);
        assert_ne!(resp.text(), "v1", "{case}: served stale");
        assert_eq!(resp.status(), 504, "{case}: unreachable origin");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_stale_at_once_and_refreshes_in_the_background() {
    let h = Cached::start().await;
    let gate = Gate::new();
    h.origin.set_sequence(
        "/swr",
        vec![
            stale_v1("max-age=60, stale-while-revalidate=600"),
            fresh("v2").head_gate(&gate),
        ],
    );
    let _ = h.get("/swr", "").await;
    // The background revalidation waits at the gate: these answers cannot wait for it.
    for n in 0..3 {
        let resp = tokio::time::timeout(Duration::from_secs(3), h.get("/swr", ""))
            .await
            .unwrap_or_else(|_| panic!("request {n}: not served at once (waits for the origin)"));
        assert_eq!(resp.text(), "v1", "request {n}");
        let st = status(&resp);
        assert!(
            st.hit,
            "a stale-while-revalidate answer is a hit: {}",
            st.member
        );
        assert!(
            st.ttl.is_some_and(|t| t < 0),
            "a negative ttl: {}",
            st.member
        );
        assert!(age(&resp) >= 61, "the true age of a stale response");
    }
    h.origin.wait_count("/swr", 2).await;
    assert_eq!(
        h.origin.count("/swr"),
        2,
        "one background revalidation per object"
    );
    gate.open();
    within("the refreshed response", async {
        loop {
            if h.get("/swr", "").await.text() == "v2" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let hit = h.get("/swr", "").await;
    assert!(is_hit(&hit));
    assert_eq!(hit.text(), "v2");
    assert_eq!(h.origin.count("/swr"), 2);

    // Past the window: revalidated before answering.
    h.origin.set_sequence(
        "/swr-past",
        vec![
            Reply::ok("v1")
                .header("Cache-Control", "max-age=60, stale-while-revalidate=1")
                .header("Age", "100"),
            fresh("v2"),
        ],
    );
    let _ = h.get("/swr-past", "").await;
    assert_eq!(h.get("/swr-past", "").await.text(), "v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_stale_on_5xx_connect_failure_and_timeout() {
    let h = Cached::with(Knobs {
        read_timeout: Some(Duration::from_millis(300)),
        ..Knobs::default()
    })
    .await;
    let cc = "max-age=60, stale-if-error=600";
    for code in [500, 502, 503, 504] {
        let target = format!("/sie-{code}");
        h.origin
            .set_sequence(&target, vec![stale_v1(cc), Reply::new(code).body("error")]);
        let _ = h.get(&target, "").await;
        let resp = h.get(&target, "").await;
        assert_eq!(resp.status(), 200, "{code}");
        assert_eq!(resp.text(), "v1", "{code}");
        assert!(age(&resp) >= 61, "{code}: the true age of a stale response");
    }
    // Other statuses are answers, not errors.
    for code in [404, 501] {
        let target = format!("/sie-{code}");
        h.origin
            .set_sequence(&target, vec![stale_v1(cc), Reply::new(code).body("answer")]);
        let _ = h.get(&target, "").await;
        let resp = h.get(&target, "").await;
        assert_eq!(resp.status(), code);
        assert_eq!(resp.text(), "answer");
    }
    // The origin cannot be reached.
    h.origin.set("/sie-down", stale_v1(cc));
    let _ = h.get("/sie-down", "").await;
    h.origin_reachable(false);
    let resp = h.get("/sie-down", "").await;
    h.origin_reachable(true);
    assert_eq!(resp.status(), 200, "unreachable origin");
    assert_eq!(resp.text(), "v1", "unreachable origin");
    // The origin does not answer in time.
    h.origin.set_sequence(
        "/sie-slow",
        vec![
            stale_v1(cc),
            fresh("late").head_delay(Duration::from_secs(2)),
        ],
    );
    let _ = h.get("/sie-slow", "").await;
    let resp = h.get("/sie-slow", "").await;
    assert_eq!(resp.text(), "v1", "a timed-out revalidation");
    // Past the window: the error goes to the client.
    h.origin.set_sequence(
        "/sie-past",
        vec![
            Reply::ok("v1")
                .header("Cache-Control", "max-age=60, stale-if-error=1")
                .header("Age", "100"),
            Reply::new(503).body("error"),
        ],
    );
    let _ = h.get("/sie-past", "").await;
    assert_eq!(h.get("/sie-past", "").await.status(), 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn should_serve_stale_decides_whether_stale_if_error_applies() {
    let h = Cached::with(Knobs {
        serve_stale: Some(|_| false),
        ..Knobs::default()
    })
    .await;
    h.origin.set_sequence(
        "/never-stale",
        vec![
            stale_v1("max-age=60, stale-if-error=600").header("ETag", "\"n\""),
            Reply::new(503).body("error"),
        ],
    );
    let _ = h.get("/never-stale", "").await;
    let resp = h.get("/never-stale", "").await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.text(), "error");
    let seen = h.origin.last("/never-stale");
    assert_eq!(
        seen.get("if-none-match"),
        Some("\"n\""),
        "not a revalidation"
    );
}
