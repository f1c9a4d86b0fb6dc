//! Rules section 6: invalidation by unsafe methods (RFC 9111 §4.4) and purges.

use super::*;

/// Answers GET (and HEAD) with a fresh "body", other methods with `status` and `fields`.
fn by_method(
    origin: &ScriptedOrigin,
    target: &str,
    status: u16,
    fields: &[(&'static str, &'static str)],
) {
    let fields = fields.to_vec();
    origin.set_fn(target, move |req, _| {
        if req.method == "GET" || req.method == "HEAD" {
            fresh("body")
        } else {
            fields
                .iter()
                .fold(Reply::new(status).body("done"), |r, (n, v)| r.header(n, v))
        }
    });
}

/// Stores `target` (a GET) and checks that the next GET is a hit.
async fn store(h: &Cached, target: &str, fields: &str) {
    let _ = h.get(target, fields).await;
    assert!(
        is_hit(&h.get(target, fields).await),
        "{target} was not stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_methods_invalidate_the_target_uri_on_2xx_and_3xx() {
    let h = Cached::start().await;
    for method in ["POST", "PUT", "DELETE", "PATCH", "FOO"] {
        for code in [200, 204, 303, 404, 500] {
            let target = format!("/{method}-{code}");
            by_method(&h.origin, &target, code, &[]);
            store(&h, &target, "").await;
            let resp = h
                .send(request(method, &target, "Content-Length: 0\r\n"))
                .await;
            assert_eq!(resp.status(), code, "{method} {code}");
            let after = h.get(&target, "").await;
            let invalidated = (200..400).contains(&code);
            assert_eq!(
                is_hit(&after),
                !invalidated,
                "{method} answered {code}: invalidated should be {invalidated}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_origin_location_and_content_location_are_invalidated() {
    let h = Cached::start().await;
    for target in ["/a", "/b", "/c", "/d"] {
        h.origin.set(target, fresh("body"));
    }
    store(&h, "/a", "").await;
    store(&h, "/b", "").await;
    store(&h, "/c", "").await;
    // /d of another host.
    let other = "GET /d HTTP/1.1\r\nHost: other\r\n\r\n";
    let _ = h.send(other).await;
    assert!(
        is_hit(&h.send(other).await),
        "/d of host other was not stored"
    );

    h.origin.set(
        "/p1",
        Reply::new(201)
            .header("Location", "/b")
            .header("Content-Location", "http://test/c"),
    );
    h.origin
        .set("/p2", Reply::new(201).header("Location", "http://other/d"));
    let resp = h
        .send(request("POST", "/p1", "Content-Length: 0\r\n"))
        .await;
    assert_eq!(resp.status(), 201);
    let resp = h
        .send(request("POST", "/p2", "Content-Length: 0\r\n"))
        .await;
    assert_eq!(resp.status(), 201);

    assert!(is_hit(&h.get("/a", "").await), "/a was invalidated");
    assert!(
        !is_hit(&h.get("/b", "").await),
        "Location /b was not invalidated"
    );
    assert!(
        !is_hit(&h.get("/c", "").await),
        "Content-Location http://test/c was not invalidated"
    );
    assert!(
        is_hit(&h.send(other).await),
        "a Location of another origin was invalidated"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_removes_every_variant() {
    let h = Cached::start().await;
    h.origin.set_fn("/vary", |req, _| {
        if req.method == "POST" {
            Reply::new(204)
        } else {
            fresh(req.get("accept-encoding").unwrap_or("none")).header("Vary", "Accept-Encoding")
        }
    });
    for enc in ["gzip", "br"] {
        store(&h, "/vary", &format!("Accept-Encoding: {enc}\r\n")).await;
    }
    let _ = h
        .send(request("POST", "/vary", "Content-Length: 0\r\n"))
        .await;
    for enc in ["gzip", "br"] {
        let resp = h.get("/vary", &format!("Accept-Encoding: {enc}\r\n")).await;
        assert!(!is_hit(&resp), "variant {enc} survived the invalidation");
        assert_eq!(resp.text(), enc);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_happens_even_when_the_cache_is_off_for_the_request() {
    let h = Cached::start().await;
    by_method(&h.origin, "/off", 200, &[]);
    store(&h, "/off", "").await;
    let off = format!("{CACHE_OFF_FIELD}: 1\r\nContent-Length: 0\r\n");
    let resp = h.send(request("POST", "/off", &off)).await;
    assert_eq!(resp.status(), 200);
    assert!(!is_hit(&h.get("/off", "").await), "not invalidated");
}

/// A purge request of `target`, allowed or not.
fn purge(target: &str, allowed: bool, extra: &str) -> String {
    let token = if allowed {
        format!("{PURGE_FIELD}: {PURGE_TOKEN}\r\n")
    } else {
        String::new()
    };
    request("PURGE", target, &format!("{token}{extra}"))
}

/// Checks a purge answer: `code` and an empty body.
fn assert_purge_answer(resp: &Message, code: u16, what: &str) {
    assert_eq!(resp.status(), code, "{what}");
    assert!(resp.body.is_empty(), "{what}: a body {:?}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_answers_200_404_405_and_is_never_forwarded() {
    let h = Cached::with(Knobs {
        purge: true,
        ..Knobs::default()
    })
    .await;
    h.origin.set("/x", fresh("body"));
    store(&h, "/x", "").await;
    assert_purge_answer(&h.send(purge("/x", true, "")).await, 200, "stored");
    assert_eq!(h.origin.count("/x"), 1, "the purge was forwarded");
    assert!(
        !is_hit(&h.get("/x", "").await),
        "still stored after the purge"
    );

    assert_purge_answer(&h.send(purge("/absent", true, "")).await, 404, "absent");
    assert_eq!(h.origin.count("/absent"), 0, "the purge was forwarded");

    let off = format!("{CACHE_OFF_FIELD}: 1\r\n");
    assert_purge_answer(&h.send(purge("/x", true, &off)).await, 405, "cache off");
    assert_eq!(h.origin.count("/x"), 2, "the purge was forwarded");

    // A PURGE the predicate refuses is an ordinary request of an unknown method.
    h.origin.set("/y", fresh("body"));
    let resp = h.send(purge("/y", false, "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        h.origin.count("/y"),
        1,
        "a refused purge was answered by the cache"
    );
    assert_eq!(h.origin.last("/y").method, "PURGE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_answers_500_when_the_storage_fails() {
    let h = Cached::with(Knobs {
        purge: true,
        failing_purge: true,
        ..Knobs::default()
    })
    .await;
    h.origin.set("/x", fresh("body"));
    store(&h, "/x", "").await;
    assert_purge_answer(&h.send(purge("/x", true, "")).await, 500, "storage error");
    assert_eq!(h.origin.count("/x"), 1, "the purge was forwarded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_is_off_by_default() {
    let h = Cached::start().await;
    h.origin.set("/x", fresh("body"));
    store(&h, "/x", "").await;
    let resp = h.send(purge("/x", true, "")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text(), "body", "not forwarded");
    assert_eq!(h.origin.last("/x").method, "PURGE");
}
