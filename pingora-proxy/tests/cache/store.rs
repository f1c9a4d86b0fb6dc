//! Rules section 1: what may be stored (RFC 9111 §3). Each case sends the same request twice
//! and counts the origin's requests: 1 when the first response was stored and reused.

use super::*;

/// Fields that make a response heuristically fresh for a long time: modified a year ago.
fn old_last_modified(reply: Reply) -> Reply {
    reply
        .header("Date", &http_date(0))
        .header("Last-Modified", &http_date(-365 * 24 * 3600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_get_and_head_responses_are_stored() {
    let h = Cached::start().await;
    h.origin.set("/get", fresh("body"));
    let (count, second) = twice(&h, "/get", "").await;
    assert_eq!(count, 1, "GET");
    assert!(is_hit(&second), "GET");
    assert_eq!(second.text(), "body");

    // Other methods go to the origin every time, and store nothing for a later GET.
    for method in ["POST", "PUT", "OPTIONS", "FOO"] {
        let target = format!("/{method}");
        h.origin.set(&target, fresh("answer"));
        for _ in 0..2 {
            let resp = h
                .send(request(method, &target, "Content-Length: 0\r\n"))
                .await;
            assert_eq!(resp.status(), 200, "{method}");
            assert_eq!(resp.text(), "answer", "{method}");
        }
        assert_eq!(
            h.origin.count(&target),
            2,
            "{method} was served from the cache"
        );
        let get = h.get(&target, "").await;
        assert!(!is_hit(&get), "{method} filled the GET entry");
        assert_eq!(h.origin.count(&target), 3, "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_never_creates_a_stored_body() {
    let h = Cached::start().await;
    h.origin.set("/h", fresh("0123456789"));
    let head = h.send(request("HEAD", "/h", "")).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.header("content-length"), Some("10"));
    assert!(head.body.is_empty());
    // Whatever the HEAD stored, a GET gets the whole body.
    let get = h.get("/h", "").await;
    assert_eq!(get.status(), 200);
    assert_eq!(get.text(), "0123456789");
    assert_eq!(get.header("content-length").unwrap_or("10"), "10");
    let again = h.get("/h", "").await;
    assert!(is_hit(&again));
    assert_eq!(again.text(), "0123456789");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn final_statuses_are_stored_by_explicit_freshness_or_heuristic_status() {
    let h = Cached::start().await;
    let max_age = |status: u16| {
        Reply::new(status)
            .body("b")
            .header("Cache-Control", "max-age=60")
    };
    // (case, response, stored)
    let cases: Vec<(&str, Reply, bool)> = vec![
        // Heuristically cacheable statuses (RFC 9110 §15.1), no explicit freshness.
        ("200-heuristic", old_last_modified(Reply::ok("b")), true),
        (
            "203-heuristic",
            old_last_modified(Reply::new(203).body("b")),
            true,
        ),
        ("204-heuristic", old_last_modified(Reply::new(204)), true),
        (
            "300-heuristic",
            old_last_modified(Reply::new(300).body("b")),
            true,
        ),
        (
            "301-heuristic",
            old_last_modified(Reply::new(301).body("b")),
            true,
        ),
        (
            "308-heuristic",
            old_last_modified(Reply::new(308).body("b")),
            true,
        ),
        (
            "404-heuristic",
            old_last_modified(Reply::new(404).body("b")),
            true,
        ),
        (
            "405-heuristic",
            old_last_modified(Reply::new(405).body("b")),
            true,
        ),
        (
            "410-heuristic",
            old_last_modified(Reply::new(410).body("b")),
            true,
        ),
        (
            "414-heuristic",
            old_last_modified(Reply::new(414).body("b")),
            true,
        ),
        (
            "501-heuristic",
            old_last_modified(Reply::new(501).body("b")),
            true,
        ),
        // Other statuses need explicit freshness or `public`.
        (
            "201-heuristic",
            old_last_modified(Reply::new(201).body("b")),
            false,
        ),
        (
            "302-heuristic",
            old_last_modified(Reply::new(302).body("b")),
            false,
        ),
        (
            "307-heuristic",
            old_last_modified(Reply::new(307).body("b")),
            false,
        ),
        (
            "500-heuristic",
            old_last_modified(Reply::new(500).body("b")),
            false,
        ),
        (
            "299-heuristic",
            old_last_modified(Reply::new(299).body("b")),
            false,
        ),
        (
            "201-public",
            old_last_modified(Reply::new(201).body("b")).header("Cache-Control", "public"),
            true,
        ),
        ("302-max-age", max_age(302), true),
        ("500-max-age", max_age(500), true),
        ("299-max-age", max_age(299), true),
        ("499-max-age", max_age(499), true),
        ("599-max-age", max_age(599), true),
        (
            "599-s-maxage",
            Reply::new(599)
                .body("b")
                .header("Cache-Control", "s-maxage=60"),
            true,
        ),
        (
            "200-expires",
            Reply::ok("b")
                .header("Date", &http_date(0))
                .header("Expires", &http_date(60)),
            true,
        ),
    ];
    for (case, reply, stored) in cases {
        let target = format!("/{case}");
        let status = reply_status(case);
        h.origin.set(&target, reply);
        let (count, second) = twice(&h, &target, "").await;
        assert_eq!(second.status(), status, "{case}");
        assert_eq!(
            count,
            if stored { 1 } else { 2 },
            "{case}: stored should be {stored}"
        );
        assert_eq!(is_hit(&second), stored, "{case}");
    }
}

/// The status a case name starts with.
fn reply_status(case: &str) -> u16 {
    case[..3].parse().expect("a status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_304_is_never_stored_as_a_new_entry() {
    let h = Cached::start().await;
    h.origin.set_sequence(
        "/304",
        vec![
            Reply::new(304)
                .header("Cache-Control", "max-age=60")
                .header("ETag", "\"x\""),
            fresh("whole"),
        ],
    );
    let first = h.get("/304", "").await;
    assert_eq!(first.status(), 304);
    let second = h.get("/304", "").await;
    assert_eq!(second.status(), 200);
    assert_eq!(second.text(), "whole");
    assert_eq!(h.origin.count("/304"), 2);
    assert_eq!(
        status(&second).fwd.as_deref(),
        Some("uri-miss"),
        "the 304 was stored"
    );
    assert!(is_hit(&h.get("/304", "").await), "the 200 was not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_store_is_never_stored_unless_must_understand() {
    let h = Cached::start().await;
    let with_cc = |cc: &str| Reply::ok("b").header("Cache-Control", cc);
    // (case, response, request fields, stored)
    let cases = [
        (
            "response-no-store",
            with_cc("no-store, max-age=60"),
            "",
            false,
        ),
        (
            "request-no-store",
            with_cc("max-age=60"),
            "Cache-Control: no-store\r\n",
            false,
        ),
        // must-understand: a status we implement is stored and no-store ignored...
        (
            "must-understand-200",
            with_cc("must-understand, no-store, max-age=60"),
            "",
            true,
        ),
        // ... any other is not stored.
        (
            "must-understand-299",
            Reply::new(299)
                .body("b")
                .header("Cache-Control", "must-understand, no-store, max-age=60"),
            "",
            false,
        ),
    ];
    for (case, reply, fields, stored) in cases {
        let target = format!("/{case}");
        h.origin.set(&target, reply);
        let _ = h.get(&target, fields).await;
        // The second request has no directive of its own.
        let second = h.get(&target, "").await;
        let expected = if stored { 1 } else { 2 };
        assert_eq!(h.origin.count(&target), expected, "{case}");
        assert_eq!(is_hit(&second), stored, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_is_never_stored_and_private_fields_are_not_stored() {
    let h = Cached::start().await;
    h.origin.set(
        "/private",
        Reply::ok("b").header("Cache-Control", "private, max-age=60"),
    );
    let (count, _) = twice(&h, "/private", "").await;
    assert_eq!(count, 2, "bare private was stored");

    h.origin.set(
        "/private-fields",
        Reply::ok("b")
            .header("Cache-Control", "private=\"X-Secret, X-Other\", max-age=60")
            .header("X-Secret", "s")
            .header("X-Other", "o")
            .header("X-Public", "p"),
    );
    let first = h.get("/private-fields", "").await;
    assert_eq!(
        first.header("x-secret"),
        Some("s"),
        "the miss is the client's own"
    );
    let second = h.get("/private-fields", "").await;
    assert!(is_hit(&second), "private=\"...\" was not stored");
    assert_eq!(second.header("x-secret"), None);
    assert_eq!(second.header("x-other"), None);
    assert_eq!(second.header("x-public"), Some("p"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_needs_public_s_maxage_or_must_revalidate() {
    let h = Cached::start().await;
    let auth = "Authorization: Bearer secret\r\n";
    let cases = [
        ("max-age", "max-age=60", false),
        ("public", "public, max-age=60", true),
        ("s-maxage", "s-maxage=60", true),
        ("must-revalidate", "must-revalidate, max-age=60", true),
    ];
    for (case, cc, stored) in cases {
        let target = format!("/auth-{case}");
        h.origin
            .set(&target, Reply::ok("b").header("Cache-Control", cc));
        let (count, _) = twice(&h, &target, auth).await;
        assert_eq!(count, if stored { 1 } else { 2 }, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cache_is_stored_but_revalidated_before_every_reuse() {
    let h = Cached::start().await;
    h.origin.set(
        "/no-cache",
        Reply::ok("body")
            .header("Cache-Control", "no-cache, max-age=60")
            .header("ETag", "\"nc\"")
            .not_modified_if_none_match("\"nc\""),
    );
    let _ = h.get("/no-cache", "").await;
    for n in 2..=3 {
        let resp = h.get("/no-cache", "").await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text(), "body");
        assert_eq!(h.origin.count("/no-cache"), n);
        let seen = h.origin.last("/no-cache");
        assert_eq!(
            seen.get("if-none-match"),
            Some("\"nc\""),
            "not a revalidation"
        );
    }

    // no-cache="field": reused without revalidation, without the field.
    h.origin.set(
        "/no-cache-field",
        Reply::ok("body")
            .header("Cache-Control", "no-cache=\"X-Secret\", max-age=60")
            .header("X-Secret", "s"),
    );
    let (count, second) = twice(&h, "/no-cache-field", "").await;
    assert_eq!(count, 1);
    assert_eq!(second.header("x-secret"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_responses_are_not_stored_by_default() {
    let h = Cached::start().await;
    h.origin.set(
        "/cookie",
        fresh("b").header("Set-Cookie", "session=1; HttpOnly"),
    );
    let (count, second) = twice(&h, "/cookie", "").await;
    assert_eq!(count, 2);
    assert_eq!(second.header("set-cookie"), Some("session=1; HttpOnly"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_responses_are_never_stored() {
    let h = Cached::start().await;
    let whole = "0123456789".repeat(10);
    let cases = [
        ("short-fin", fresh(&whole).cut_after(40, Cut::Close)),
        ("short-rst", fresh(&whole).cut_after(40, Cut::Reset)),
        (
            "chunked-fin",
            fresh(&whole).chunked().pieces(20).cut_after(40, Cut::Close),
        ),
        (
            "chunked-rst",
            fresh(&whole).chunked().pieces(20).cut_after(40, Cut::Reset),
        ),
    ];
    for (case, cut) in cases {
        let target = format!("/{case}");
        h.origin.set_sequence(&target, vec![cut, fresh(&whole)]);
        // The client gets a 200 head and part of the body, or an error status, or nothing
        // (the failure came before the head went out); never the whole body.
        let mut client = h.client().await;
        client.send(request("GET", &target, "")).await;
        let (got, _) = client.read_to_close().await;
        let got = String::from_utf8_lossy(&got);
        assert!(
            got.is_empty() || got.starts_with("HTTP/1.1 200 ") || got.starts_with("HTTP/1.1 5"),
            "{case}: {got:?}"
        );
        assert!(
            !got.contains(&whole[40..]),
            "{case}: the client got a whole body"
        );
        // The cut response was not stored: the next request goes to the origin.
        let next = h.get(&target, "").await;
        assert_eq!(next.text(), whole, "{case}");
        assert_eq!(h.origin.count(&target), 2, "{case}");
        let hit = h.get(&target, "").await;
        assert!(is_hit(&hit), "{case}");
        assert_eq!(hit.text(), whole, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_key_is_host_lowercased_default_port_elided_path_and_query() {
    let h = Cached::start().await;
    h.origin.set("/k", fresh("k"));
    h.origin.set("/k?a=1", fresh("k?a=1"));
    let get = |host: &str, target: &str| format!("GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    let _ = h.send(get("test", "/k")).await;
    // The same key.
    for host in ["TEST", "test:80", "TeSt:80"] {
        let resp = h.send(get(host, "/k")).await;
        assert!(is_hit(&resp), "Host {host}");
        assert_eq!(resp.text(), "k");
    }
    let head = h.send(request("HEAD", "/k", "")).await;
    assert!(is_hit(&head), "HEAD does not share GET's key");
    // Other keys.
    for (host, target) in [("test", "/k?a=1"), ("other", "/k"), ("test:8080", "/k")] {
        let resp = h.send(get(host, target)).await;
        assert!(!is_hit(&resp), "Host {host}, {target}");
    }
    assert_eq!(h.origin.count("/k"), 3);
    assert_eq!(h.origin.count("/k?a=1"), 1);
}
