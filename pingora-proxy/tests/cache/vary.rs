//! Rules section 4: `Vary` and the secondary key (RFC 9111 §4.1). The origin answers with
//! the request's value of the varying field, so that each answer shows which variant it is.

use super::*;

/// A fresh answer "NAME=value" (or "NAME absent") varying on `vary`, naming the value the
/// request had for field `name`.
fn echo_field(origin: &ScriptedOrigin, target: &str, name: &'static str, vary: &'static str) {
    origin.set_fn(target, move |req, _| {
        let values = req.all(name);
        let body = if values.is_empty() {
            format!("{name} absent")
        } else {
            format!("{name}={}", values.join("|"))
        };
        fresh(&body).header("Vary", vary)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_reuses_a_response_only_for_matching_request_fields() {
    let h = Cached::start().await;
    echo_field(&h.origin, "/v", "accept-encoding", "Accept-Encoding");
    // (request fields, expected body, origin requests so far)
    let steps = [
        ("Accept-Encoding: gzip\r\n", "accept-encoding=gzip", 1),
        ("Accept-Encoding: gzip\r\n", "accept-encoding=gzip", 1),
        ("Accept-Encoding: br\r\n", "accept-encoding=br", 2),
        ("Accept-Encoding: gzip\r\n", "accept-encoding=gzip", 2),
        ("Accept-Encoding: br\r\n", "accept-encoding=br", 2),
        // Field names are case-insensitive.
        ("accept-encoding: gzip\r\n", "accept-encoding=gzip", 2),
        // Absent matches only absent, and is not empty.
        ("", "accept-encoding absent", 3),
        ("", "accept-encoding absent", 3),
        ("Accept-Encoding: \r\n", "accept-encoding=", 4),
        ("Accept-Encoding: \r\n", "accept-encoding=", 4),
    ];
    for (n, (fields, body, count)) in steps.into_iter().enumerate() {
        let resp = h.get("/v", fields).await;
        assert_eq!(resp.text(), body, "step {n}: {fields:?}");
        assert_eq!(h.origin.count("/v"), count, "step {n}: {fields:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_values_combine_field_lines_and_ignore_outer_whitespace() {
    let h = Cached::start().await;
    // The response names the field in lower case.
    echo_field(&h.origin, "/lang", "accept-language", "accept-language");
    let first = h.get("/lang", "Accept-Language: en, fr\r\n").await;
    assert_eq!(first.text(), "accept-language=en, fr");
    let same = [
        "Accept-Language: en, fr\r\n",
        "Accept-Language: en\r\nAccept-Language: fr\r\n",
        "Accept-Language:    en, fr   \r\n",
    ];
    for fields in same {
        let resp = h.get("/lang", fields).await;
        assert!(is_hit(&resp), "{fields:?} did not match");
        assert_eq!(resp.text(), "accept-language=en, fr", "{fields:?}");
    }
    assert_eq!(h.origin.count("/lang"), 1);
    let other = h.get("/lang", "Accept-Language: fr, en\r\n").await;
    assert!(!is_hit(&other), "a different list matched");
    assert_eq!(status(&other).fwd.as_deref(), Some("vary-miss"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vary_star_never_matches() {
    let h = Cached::start().await;
    for (target, vary) in [("/star", "*"), ("/star-listed", "Accept-Encoding, *")] {
        h.origin.set(target, fresh("body").header("Vary", vary));
        let (count, second) = twice(&h, target, "").await;
        assert_eq!(count, 2, "Vary: {vary}");
        assert!(!is_hit(&second), "Vary: {vary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn variants_coexist_and_one_purge_removes_every_variant() {
    let h = Cached::with(Knobs {
        purge: true,
        ..Knobs::default()
    })
    .await;
    echo_field(&h.origin, "/variants", "accept-encoding", "Accept-Encoding");
    let encodings = ["gzip", "br", "identity"];
    for round in 0..2 {
        for enc in encodings {
            let resp = h
                .get("/variants", &format!("Accept-Encoding: {enc}\r\n"))
                .await;
            assert_eq!(resp.text(), format!("accept-encoding={enc}"));
            assert_eq!(is_hit(&resp), round == 1, "{enc}, round {round}");
        }
    }
    assert_eq!(h.origin.count("/variants"), 3);
    let purge = h
        .send(request(
            "PURGE",
            "/variants",
            &format!("{PURGE_FIELD}: {PURGE_TOKEN}\r\n"),
        ))
        .await;
    assert_eq!(purge.status(), 200);
    for enc in encodings {
        let resp = h
            .get("/variants", &format!("Accept-Encoding: {enc}\r\n"))
            .await;
        assert!(!is_hit(&resp), "{enc} survived the purge");
    }
    assert_eq!(h.origin.count("/variants"), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vary_filter_that_declines_to_key_on_a_field_stores_nothing_varying() {
    let h = Cached::with(Knobs {
        no_variance: true,
        ..Knobs::default()
    })
    .await;
    echo_field(&h.origin, "/declined", "accept-encoding", "Accept-Encoding");
    // The request has the varying field, the filter gives no variance: not stored, or it
    // would answer requests with other values.
    for _ in 0..2 {
        let resp = h.get("/declined", "Accept-Encoding: gzip\r\n").await;
        assert_eq!(resp.text(), "accept-encoding=gzip");
        assert!(!is_hit(&resp));
    }
    assert_eq!(h.origin.count("/declined"), 2);
    let other = h.get("/declined", "Accept-Encoding: br\r\n").await;
    assert_eq!(other.text(), "accept-encoding=br");
    // Without the field the response is the same for every request that lacks it: stored.
    let _ = h.get("/declined", "").await;
    let again = h.get("/declined", "").await;
    assert!(is_hit(&again));
    assert_eq!(again.text(), "accept-encoding absent");
    // ...and never for a request that has it.
    let with = h.get("/declined", "Accept-Encoding: gzip\r\n").await;
    assert_eq!(with.text(), "accept-encoding=gzip");
    assert!(!is_hit(&with));
}
