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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_status_name_is_configurable_and_the_field_can_be_off() {
    let named = Cached::with(Knobs {
        cache_status_name: Some(Some("edge-7")),
        ..Knobs::default()
    })
    .await;
    named.origin.set("/named", fresh("body"));
    for (n, prefix) in [(0, "edge-7; fwd=uri-miss"), (1, "edge-7; hit")] {
        let resp = named.get("/named", "").await;
        let value = joined(&resp.head, "cache-status");
        assert!(value.starts_with(prefix), "request {n}: {value:?}");
    }
    let off = Cached::with(Knobs {
        cache_status_name: Some(None),
        ..Knobs::default()
    })
    .await;
    off.origin.set("/off", fresh("body"));
    for n in 0..2 {
        let resp = off.get("/off", "").await;
        assert_eq!(resp.head.get("cache-status"), None, "request {n}");
    }
    assert_eq!(
        off.origin.count("/off"),
        1,
        "the cache is on without the field"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cdn_cache_control_replaces_cache_control_for_a_cdn_cache() {
    let cdn = Cached::with(Knobs {
        cdn: true,
        ..Knobs::default()
    })
    .await;
    let plain = Cached::start().await;
    // (case, Cache-Control, CDN-Cache-Control, stored by the CDN cache, by a plain cache)
    let cases = [
        ("targeted-stores", "no-store", "max-age=60", true, false),
        ("targeted-refuses", "max-age=60", "no-store", false, true),
        // An invalid targeted field is ignored: Cache-Control decides.
        (
            "targeted-invalid",
            "max-age=60",
            "\"unterminated",
            true,
            true,
        ),
        ("targeted-empty", "max-age=60", "", true, true),
        // Expires too is replaced.
        ("targeted-over-expires", "", "max-age=0", false, true),
    ];
    for (case, cc, targeted, by_cdn, by_plain) in cases {
        let target = format!("/{case}");
        for (h, stored) in [(&cdn, by_cdn), (&plain, by_plain)] {
            let mut reply = Reply::ok("body").header("CDN-Cache-Control", targeted);
            if cc.is_empty() {
                reply = reply
                    .header("Date", &http_date(0))
                    .header("Expires", &http_date(60));
            } else {
                reply = reply.header("Cache-Control", cc);
            }
            h.origin.set(&target, reply);
            let (count, second) = twice(h, &target, "").await;
            let which = if std::ptr::eq(h, &cdn) {
                "cdn"
            } else {
                "plain"
            };
            assert_eq!(count, if stored { 1 } else { 2 }, "{case} ({which})");
            // The field is forwarded unchanged.
            assert_eq!(
                second.head.get("cdn-cache-control"),
                Some(targeted),
                "{case} ({which})"
            );
        }
    }
}
