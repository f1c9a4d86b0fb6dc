//! Rules section 7: the fields a stored response keeps, and `Cache-Status` (RFC 9211).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_and_proxy_authentication_fields_are_not_stored() {
    let h = Cached::start().await;
    h.origin.set(
        "/hop",
        fresh("0123456789")
            .chunked()
            .pieces(4)
            .header("Connection", "X-Hop")
            .header("X-Hop", "1")
            .header("Keep-Alive", "timeout=5")
            .header("Proxy-Connection", "keep-alive")
            .header("TE", "trailers")
            .header("Upgrade", "example/1")
            .header("Proxy-Authenticate", "Basic realm=\"x\"")
            .header("Proxy-Authentication-Info", "nextnonce=\"n\"")
            .header("X-MiXeD-Case", "kept"),
    );
    let (count, hit) = twice(&h, "/hop", "").await;
    assert_eq!(count, 1);
    assert!(is_hit(&hit));
    assert_eq!(hit.text(), "0123456789");
    for name in [
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "upgrade",
        "proxy-authenticate",
        "proxy-authentication-info",
    ] {
        assert!(hit.head.get(name).is_none(), "the hit has {name}");
    }
    assert!(
        !joined(&hit.head, "connection")
            .to_ascii_lowercase()
            .contains("x-hop"),
        "the hit's Connection lists a stored field"
    );
    // Transfer-Encoding, if any, is the proxy's own framing of the hit.
    if let Some(te) = hit.head.get("transfer-encoding") {
        assert_eq!(te, "chunked");
    }
    let raw = String::from_utf8_lossy(&hit.head.raw);
    assert!(
        raw.contains("\r\nX-MiXeD-Case: kept\r\n"),
        "name case not kept: {raw}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_status_says_hit_or_why_forwarded_and_what_was_stored() {
    let h = Cached::start().await;
    h.origin.set("/cs", fresh("body"));
    let miss = status(&h.get("/cs", "").await);
    assert_eq!(miss.fwd.as_deref(), Some("uri-miss"), "{}", miss.member);
    assert_eq!(miss.fwd_status, Some(200), "{}", miss.member);
    assert!(miss.stored, "{}", miss.member);
    assert!(!miss.hit, "{}", miss.member);

    let hit = status(&h.get("/cs", "").await);
    assert!(hit.hit, "{}", hit.member);
    assert_eq!(hit.fwd, None, "{}", hit.member);
    assert!(!hit.stored, "{}", hit.member);
    let ttl = hit.ttl.expect("a ttl on a hit");
    assert!((58..=60).contains(&ttl), "{}", hit.member);

    // Not stored.
    h.origin.set(
        "/cs-no-store",
        Reply::ok("b").header("Cache-Control", "no-store"),
    );
    let uncacheable = status(&h.get("/cs-no-store", "").await);
    assert_eq!(
        uncacheable.fwd.as_deref(),
        Some("uri-miss"),
        "{}",
        uncacheable.member
    );
    assert_eq!(uncacheable.fwd_status, Some(200));
    assert!(!uncacheable.stored, "{}", uncacheable.member);

    // The origin's status comes through.
    h.origin.set(
        "/cs-404",
        Reply::new(404).header("Cache-Control", "no-store"),
    );
    let not_found = status(&h.get("/cs-404", "").await);
    assert_eq!(not_found.fwd_status, Some(404), "{}", not_found.member);

    // A method the cache does not serve.
    h.origin.set("/cs-post", Reply::ok("b"));
    let post = h
        .send(request("POST", "/cs-post", "Content-Length: 0\r\n"))
        .await;
    let post = status(&post);
    assert_eq!(post.fwd.as_deref(), Some("method"), "{}", post.member);

    // A stale response revalidated.
    h.origin.set("/cs-stale", stale_with_etag("b", "\"s\""));
    let _ = h.get("/cs-stale", "").await;
    let stale = status(&h.get("/cs-stale", "").await);
    assert_eq!(stale.fwd.as_deref(), Some("stale"), "{}", stale.member);
    assert_eq!(stale.fwd_status, Some(304), "{}", stale.member);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_status_is_appended_to_the_upstream_value() {
    let h = Cached::start().await;
    h.origin.set(
        "/chain",
        fresh("body").header("Cache-Status", "origin-cache; hit"),
    );
    for n in 0..2 {
        let resp = h.get("/chain", "").await;
        let value = joined(&resp.head, "cache-status");
        let members: Vec<&str> = value.split(',').map(str::trim).collect();
        assert_eq!(members.len(), 2, "request {n}: {value:?}");
        assert_eq!(members[0], "origin-cache; hit", "request {n}: {value:?}");
        assert!(members[1].starts_with("pingora;"), "request {n}: {value:?}");
    }
}
