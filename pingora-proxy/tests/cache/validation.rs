//! Rules section 5: validation (RFC 9111 §4.3): revalidating a stale response, what a 304
//! updates, and the client's conditional requests answered from the cache.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_response_is_revalidated_with_its_validators() {
    let h = Cached::start().await;
    let last_modified = http_date(-3600);
    // (case, ETag, Last-Modified, expected If-None-Match, expected If-Modified-Since)
    let cases = [
        ("etag", Some("\"e1\""), None, Some("\"e1\""), None),
        (
            "last-modified",
            None,
            Some(last_modified.as_str()),
            None,
            Some(last_modified.as_str()),
        ),
        (
            "both",
            Some("W/\"e2\""),
            Some(last_modified.as_str()),
            Some("W/\"e2\""),
            Some(last_modified.as_str()),
        ),
        ("invalid-date", None, Some("yesterday"), None, None),
    ];
    for (case, etag, lm, inm, ims) in cases {
        let target = format!("/{case}");
        let mut stored = Reply::ok("v1")
            .header("Cache-Control", "max-age=60")
            .header("Age", "61");
        // The 304 carries the validators too, so that it selects the stored response.
        let mut not_modified = Reply::new(304).header("Cache-Control", "max-age=60");
        if let Some(etag) = etag {
            stored = stored.header("ETag", etag);
            not_modified = not_modified.header("ETag", etag);
        }
        if let Some(lm) = lm {
            stored = stored.header("Last-Modified", lm);
            not_modified = not_modified.header("Last-Modified", lm);
        }
        h.origin.set_fn(&target, move |req, n| {
            let conditional =
                req.get("if-none-match").is_some() || req.get("if-modified-since").is_some();
            if n > 0 && conditional {
                not_modified.clone()
            } else {
                stored.clone()
            }
        });
        let _ = h.get(&target, "").await;
        let resp = h.get(&target, "").await;
        assert_eq!(resp.status(), 200, "{case}");
        assert_eq!(resp.text(), "v1", "{case}");
        let seen = h.origin.last(&target);
        assert_eq!(seen.get("if-none-match"), inm, "{case}");
        assert_eq!(seen.get("if-modified-since"), ims, "{case}");
        assert_eq!(h.origin.count(&target), 2, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_updates_the_stored_header_fields_and_restarts_the_age() {
    let h = Cached::start().await;
    h.origin.set_sequence(
        "/merge",
        vec![
            Reply::ok("v1body")
                .header("Cache-Control", "max-age=60")
                .header("Age", "61")
                .header("ETag", "\"a\"")
                .header("Content-Type", "text/plain")
                .header("X-Version", "1"),
            Reply::new(304)
                .header("Cache-Control", "max-age=60")
                .header("ETag", "\"a\"")
                .header("X-Version", "2")
                .header("X-New", "yes")
                .header("Content-Length", "999"),
        ],
    );
    let _ = h.get("/merge", "").await;
    let revalidated = h.get("/merge", "").await;
    assert_eq!(revalidated.status(), 200);
    assert_eq!(revalidated.text(), "v1body");
    assert_eq!(revalidated.header("x-version"), Some("2"));
    assert_eq!(revalidated.header("x-new"), Some("yes"));
    assert_eq!(revalidated.header("content-type"), Some("text/plain"));
    assert_ne!(revalidated.header("content-length"), Some("999"));
    assert_eq!(status(&revalidated).fwd.as_deref(), Some("stale"));
    // The update is stored: a fresh hit with the new fields, its age restarted by the 304.
    let hit = h.get("/merge", "").await;
    assert!(is_hit(&hit));
    assert_eq!(hit.text(), "v1body");
    assert_eq!(hit.header("x-version"), Some("2"));
    assert_eq!(hit.header("content-length"), Some("6"));
    assert!(age(&hit) <= 1, "Age {} not restarted by the 304", age(&hit));
    assert_eq!(h.origin.count("/merge"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_updates_only_the_response_its_validator_selects() {
    let h = Cached::start().await;
    let stale = |etag: Option<&str>| {
        let reply = Reply::ok("v1")
            .header("Cache-Control", "max-age=60")
            .header("Age", "61");
        match etag {
            Some(etag) => reply.header("ETag", etag),
            None => reply,
        }
    };
    let not_modified = |etag: Option<&str>| {
        let reply = Reply::new(304)
            .header("Cache-Control", "max-age=60")
            .header("X-Version", "2");
        match etag {
            Some(etag) => reply.header("ETag", etag),
            None => reply,
        }
    };
    // A 304 for another strong validator selects nothing: refetched unconditionally.
    h.origin.set_sequence(
        "/mismatch",
        vec![
            stale(Some("\"a\"")),
            not_modified(Some("\"b\"")),
            fresh("v2").header("ETag", "\"b\""),
        ],
    );
    let _ = h.get("/mismatch", "").await;
    let resp = h.get("/mismatch", "").await;
    assert_eq!(resp.text(), "v2");
    assert_eq!(h.origin.count("/mismatch"), 3);
    let refetch = h.origin.last("/mismatch");
    assert_eq!(
        refetch.get("if-none-match"),
        None,
        "the refetch is conditional"
    );
    assert_eq!(
        refetch.get("if-modified-since"),
        None,
        "the refetch is conditional"
    );

    // Weak validators match weakly.
    h.origin.set_sequence(
        "/weak",
        vec![stale(Some("W/\"a\"")), not_modified(Some("W/\"a\""))],
    );
    // No validator anywhere, one stored response: that one.
    h.origin
        .set_sequence("/none", vec![stale(None), not_modified(None)]);
    for target in ["/weak", "/none"] {
        let _ = h.get(target, "").await;
        let resp = h.get(target, "").await;
        assert_eq!(resp.status(), 200, "{target}");
        assert_eq!(resp.text(), "v1", "{target}");
        assert_eq!(resp.header("x-version"), Some("2"), "{target}: not updated");
        assert_eq!(h.origin.count(target), 2, "{target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_response_during_revalidation_replaces_the_stored_one() {
    let h = Cached::start().await;
    h.origin.set_sequence(
        "/replace",
        vec![
            stale_with_etag("v1", "\"a\""),
            fresh("v2").header("ETag", "\"b\""),
        ],
    );
    let _ = h.get("/replace", "").await;
    assert_eq!(h.get("/replace", "").await.text(), "v2");
    let hit = h.get("/replace", "").await;
    assert!(is_hit(&hit));
    assert_eq!(hit.text(), "v2");
    assert_eq!(hit.header("etag"), Some("\"b\""));
    assert_eq!(h.origin.count("/replace"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_during_revalidation_is_forwarded_without_stale_permission() {
    let h = Cached::start().await;
    h.origin.set_sequence(
        "/5xx",
        vec![
            stale_with_etag("v1", "\"a\""),
            Reply::new(500).body("broken"),
        ],
    );
    let _ = h.get("/5xx", "").await;
    let resp = h.get("/5xx", "").await;
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.text(), "broken");
    let seen = h.origin.last("/5xx");
    assert_eq!(
        seen.get("if-none-match"),
        Some("\"a\""),
        "not a revalidation"
    );
}

/// The fields a 304 from the cache may carry (RFC 9110 §15.4.5), and those the cache adds.
const NOT_MODIFIED_FIELDS: [&str; 11] = [
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "age",
    "cache-status",
    "connection",
    "keep-alive",
    "server",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_conditionals_on_a_hit_are_answered_by_the_cache() {
    let h = Cached::start().await;
    let now = http_date(0);
    h.origin.set(
        "/cond",
        fresh("body")
            .header("Date", &now)
            .header("Last-Modified", &http_date(-3600))
            .header("ETag", "\"a\"")
            .header("Expires", &http_date(60))
            .header("Content-Location", "/cond.txt")
            .header("Vary", "X-Nothing")
            .header("Content-Type", "text/plain")
            .header("X-Other", "o"),
    );
    let _ = h.get("/cond", "").await;
    let hour_ago = http_date(-3600 - 10);
    // (request fields, status)
    let cases = [
        (r#"If-None-Match: "a""#.to_string(), 304),
        (r#"If-None-Match: W/"a""#.to_string(), 304),
        (r#"If-None-Match: "b", "a""#.to_string(), 304),
        (r#"If-None-Match: "b""#.to_string(), 200),
        (format!("If-Modified-Since: {now}"), 304),
        (format!("If-Modified-Since: {hour_ago}"), 200),
        (
            format!("If-None-Match: \"b\"\r\nIf-Modified-Since: {now}"),
            200,
        ),
        ("If-Modified-Since: not a date".to_string(), 200),
    ];
    for (fields, code) in &cases {
        let resp = h.get("/cond", &format!("{fields}\r\n")).await;
        assert_eq!(resp.status(), *code, "{fields}");
        assert!(is_hit(&resp), "{fields}");
        if *code == 304 {
            assert!(resp.body.is_empty());
            for name in resp.head.names() {
                assert!(
                    NOT_MODIFIED_FIELDS.contains(&name.as_str()),
                    "{fields}: a 304 with {name}"
                );
            }
            for name in [
                "etag",
                "cache-control",
                "date",
                "expires",
                "content-location",
                "vary",
            ] {
                assert!(
                    resp.head.get(name).is_some(),
                    "{fields}: a 304 without {name}"
                );
            }
            assert!(
                resp.head.get("age").is_some(),
                "{fields}: a 304 without Age"
            );
        } else {
            assert_eq!(resp.text(), "body", "{fields}");
        }
    }
    assert_eq!(
        h.origin.count("/cond"),
        1,
        "conditionals went to the origin"
    );

    // Without Last-Modified, If-Modified-Since compares with the stored Date.
    h.origin
        .set("/cond-date", fresh("body").header("Date", &http_date(-10)));
    let _ = h.get("/cond-date", "").await;
    let resp = h
        .get("/cond-date", &format!("If-Modified-Since: {now}\r\n"))
        .await;
    assert_eq!(resp.status(), 304);

    // Only a stored 200 answers a conditional.
    h.origin.set(
        "/cond-404",
        Reply::new(404)
            .body("missing")
            .header("Cache-Control", "max-age=60")
            .header("ETag", "\"a\""),
    );
    let _ = h.get("/cond-404", "").await;
    let resp = h.get("/cond-404", "If-None-Match: \"a\"\r\n").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.text(), "missing");
}
