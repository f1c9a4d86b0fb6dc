//! Rules section 2: freshness (RFC 9111 §4.2): the lifetime, the heuristic, `Age` and the
//! request's directives. A stale stored response carries an entity tag, so that its reuse
//! shows as a revalidation (`If-None-Match`) rather than a plain miss.

use super::*;

/// A 200 "body" with `fields`, the entity tag `"t"` and a 304 for it.
fn tagged(fields: &[(&str, String)]) -> Reply {
    let mut reply = Reply::ok("body")
        .header("ETag", "\"t\"")
        .not_modified_if_none_match("\"t\"");
    for (name, value) in fields {
        reply = reply.header(name, value);
    }
    reply
}

/// Stores `target`, requests it again; whether that was a hit (fresh), checking that
/// otherwise it was revalidated and served.
async fn fresh_on_reuse(h: &Cached, target: &str) -> bool {
    let _ = h.get(target, "").await;
    let second = h.get(target, "").await;
    assert_eq!(second.status(), 200, "{target}");
    assert_eq!(second.text(), "body", "{target}");
    match h.origin.count(target) {
        1 => true,
        2 => {
            let seen = h.origin.last(target);
            assert_eq!(
                seen.get("if-none-match"),
                Some("\"t\""),
                "{target}: the stale response was not revalidated"
            );
            false
        }
        n => panic!("{target}: {n} origin requests"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_lifetime_is_s_maxage_then_max_age_then_expires_then_heuristic() {
    let h = Cached::start().await;
    let cc = |v: &str| ("Cache-Control", v.to_string());
    let date = || ("Date", http_date(0));
    let expires = |offset: i64| ("Expires", http_date(offset));
    let old_lm = || ("Last-Modified", http_date(-365 * 24 * 3600));
    // (case, fields, fresh)
    let cases = [
        (
            "s-maxage-over-max-age",
            vec![cc("s-maxage=60, max-age=0")],
            true,
        ),
        ("s-maxage-0", vec![cc("s-maxage=0, max-age=60")], false),
        (
            "max-age-over-expires",
            vec![cc("max-age=60"), date(), expires(-60)],
            true,
        ),
        (
            "max-age-0-over-expires",
            vec![cc("max-age=0"), date(), expires(60)],
            false,
        ),
        ("expires-future", vec![date(), expires(60)], true),
        ("expires-past", vec![date(), expires(-60)], false),
        (
            "expires-0",
            vec![date(), ("Expires", "0".to_string())],
            false,
        ),
        (
            "expires-invalid",
            vec![date(), ("Expires", "soon".to_string())],
            false,
        ),
        (
            "explicit-over-heuristic",
            vec![date(), expires(-60), old_lm()],
            false,
        ),
        ("heuristic", vec![date(), old_lm()], true),
        ("max-age-twice", vec![cc("max-age=60, max-age=120")], false),
        (
            "max-age-twice-lines",
            vec![cc("max-age=60"), cc("max-age=120")],
            false,
        ),
        ("max-age-invalid", vec![cc("max-age=abc")], false),
        // No explicit freshness and no Last-Modified: stored, lifetime 0.
        ("no-freshness", vec![], false),
    ];
    for (case, fields, fresh) in cases {
        let target = format!("/{case}");
        h.origin.set(&target, tagged(&fields));
        assert_eq!(fresh_on_reuse(&h, &target).await, fresh, "{case}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heuristic_lifetime_is_a_tenth_of_date_minus_last_modified_capped() {
    let h = Cached::start().await;
    // Modified 100 s before Date: fresh for 10 s.
    h.origin.set(
        "/tenth",
        tagged(&[("Date", http_date(0)), ("Last-Modified", http_date(-100))]),
    );
    let (count, hit) = twice(&h, "/tenth", "").await;
    assert_eq!(count, 1);
    let ttl = status(&hit).ttl.expect("a ttl on a hit");
    assert!((8..=10).contains(&ttl), "ttl {ttl} for a 10 s lifetime");

    // Modified ten years ago: capped at one day.
    h.origin.set(
        "/capped",
        tagged(&[
            ("Date", http_date(0)),
            ("Last-Modified", http_date(-10 * 365 * 24 * 3600)),
        ]),
    );
    let (count, hit) = twice(&h, "/capped", "").await;
    assert_eq!(count, 1);
    let ttl = status(&hit).ttl.expect("a ttl on a hit");
    assert!(
        (86_000..=86_400).contains(&ttl),
        "ttl {ttl}: not capped at a day"
    );

    // Modified 10 s before it was received (no Date: the receive time): fresh for 1 s,
    // then stale.
    h.origin
        .set("/short", tagged(&[("Last-Modified", http_date(-10))]));
    let (count, _) = twice(&h, "/short", "").await;
    assert_eq!(count, 1);
    tokio::time::sleep(Duration::from_millis(1600)).await;
    let third = h.get("/short", "").await;
    assert_eq!(third.text(), "body");
    assert_eq!(
        h.origin.count("/short"),
        2,
        "still fresh after its lifetime"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_on_a_hit_is_the_current_age() {
    let h = Cached::start().await;
    // (case, fields, range of the Age of an immediate hit)
    let cases = [
        ("upstream-age", vec![("Age", "30".to_string())], 30..=32),
        ("old-date", vec![("Date", http_date(-20))], 20..=22),
        ("future-date", vec![("Date", http_date(100))], 0..=1),
        // A missing Date is the time the response was received.
        ("no-date", vec![], 0..=1),
    ];
    for (case, fields, range) in cases {
        let target = format!("/{case}");
        let mut reply = fresh("body");
        for (name, value) in &fields {
            reply = reply.header(name, value);
        }
        h.origin.set(&target, reply);
        let (count, hit) = twice(&h, &target, "").await;
        assert_eq!(count, 1, "{case}");
        let age = age(&hit);
        assert!(
            range.contains(&age),
            "{case}: Age {age}, expected {range:?}"
        );
    }
    // Time passing shows in Age.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let later = h.get("/no-date", "").await;
    assert!(is_hit(&later));
    assert!(
        (1..=2).contains(&age(&later)),
        "Age {} after 1.1 s",
        age(&later)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn age_field_is_a_singleton_first_value_invalid_ignored() {
    let h = Cached::start().await;
    // (case, Age lines, Age of an immediate hit; None: stale at once)
    let cases: [(&str, &[&str], Option<u64>); 7] = [
        ("list", &["10, 20"], Some(10)),
        ("lines", &["10", "20"], Some(10)),
        ("negative", &["-5"], Some(0)),
        ("letters", &["abc"], Some(0)),
        ("fraction", &["1.5"], Some(0)),
        ("past-lifetime", &["61"], None),
        ("overflow", &["99999999999999999999"], None),
    ];
    for (case, lines, expected) in cases {
        let target = format!("/age-{case}");
        let mut reply = fresh("body")
            .header("ETag", "\"t\"")
            .not_modified_if_none_match("\"t\"");
        for line in lines {
            reply = reply.header("Age", line);
        }
        h.origin.set(&target, reply);
        let _ = h.get(&target, "").await;
        let second = h.get(&target, "").await;
        assert_eq!(second.text(), "body", "{case}");
        match expected {
            Some(value) => {
                assert!(is_hit(&second), "{case}: not a hit");
                let age = age(&second);
                assert!(
                    (value..=value + 1).contains(&age),
                    "{case}: Age {age}, expected {value}"
                );
            }
            None => assert_eq!(h.origin.count(&target), 2, "{case}: served fresh"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_max_age_min_fresh_and_max_stale_are_honoured() {
    let h = Cached::start().await;
    // 30 s old, fresh for 30 s more.
    h.origin.set("/young", fresh("body").header("Age", "30"));
    // 100 s old, stale for 40 s.
    h.origin.set(
        "/old",
        Reply::ok("body")
            .header("Cache-Control", "max-age=60")
            .header("Age", "100"),
    );
    let _ = h.get("/young", "").await;
    let _ = h.get("/old", "").await;
    // (target, request directive, hit)
    let cases = [
        ("/young", "max-age=100", true),
        ("/young", "max-age=10", false),
        ("/young", "min-fresh=10", true),
        ("/young", "min-fresh=40", false),
        ("/old", "max-stale=60", true),
        ("/old", "max-stale", true),
        ("/old", "max-stale=10", false),
    ];
    for (target, directive, hit) in cases {
        let before = h.origin.count(target);
        let resp = h
            .get(target, &format!("Cache-Control: {directive}\r\n"))
            .await;
        assert_eq!(resp.text(), "body", "{target} {directive}");
        let went = h.origin.count(target) - before;
        assert_eq!(went, usize::from(!hit), "{target} {directive}");
        assert_eq!(is_hit(&resp), hit, "{target} {directive}");
        if hit && target == "/old" {
            assert!(age(&resp) >= 100, "a stale hit's Age is its true age");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_no_cache_revalidates_a_fresh_response() {
    let h = Cached::start().await;
    h.origin
        .set("/rnc", tagged(&[("Cache-Control", "max-age=60".into())]));
    let _ = h.get("/rnc", "").await;
    let resp = h.get("/rnc", "Cache-Control: no-cache\r\n").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text(), "body");
    assert_eq!(h.origin.count("/rnc"), 2);
    assert_eq!(h.origin.last("/rnc").get("if-none-match"), Some("\"t\""));
    assert_eq!(status(&resp).fwd.as_deref(), Some("request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_if_cached_is_a_504_without_a_usable_stored_response() {
    let h = Cached::start().await;
    h.origin.set("/oic", fresh("body"));
    h.origin.set(
        "/oic-stale",
        Reply::ok("body")
            .header("Cache-Control", "max-age=60")
            .header("Age", "100"),
    );
    let directive = "Cache-Control: only-if-cached\r\n";
    let missing = h.get("/oic", directive).await;
    assert_eq!(missing.status(), 504);
    assert_eq!(
        h.origin.count("/oic"),
        0,
        "only-if-cached went to the origin"
    );

    let _ = h.get("/oic", "").await;
    let hit = h.get("/oic", directive).await;
    assert_eq!(hit.status(), 200);
    assert_eq!(hit.text(), "body");
    assert_eq!(h.origin.count("/oic"), 1);

    let _ = h.get("/oic-stale", "").await;
    let stale = h.get("/oic-stale", directive).await;
    assert_eq!(stale.status(), 504, "a stale response is not usable");
    assert_eq!(h.origin.count("/oic-stale"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_directives_can_be_switched_off() {
    let h = Cached::with(Knobs {
        ignore_request_directives: true,
        ..Knobs::default()
    })
    .await;
    h.origin.set("/deaf", fresh("body").header("Age", "30"));
    let _ = h.get("/deaf", "").await;
    for directive in ["no-cache", "max-age=0", "min-fresh=100", "no-store"] {
        let resp = h
            .get("/deaf", &format!("Cache-Control: {directive}\r\n"))
            .await;
        assert!(is_hit(&resp), "{directive} was honoured");
    }
    assert_eq!(h.origin.count("/deaf"), 1);
}
