//! Rules section 8: ranges and HEAD answered from the cache (RFC 9111 §3.3-3.4, RFC 9110
//! §14), HTTP/1.0 clients and the framing of chunked hits.

use super::*;

const DIGITS: &str = "0123456789";

/// Stores `DIGITS` at `target` with `fields`; the origin would not answer a range itself.
async fn store_digits(h: &Cached, target: &str, fields: &[(&str, &str)]) {
    let reply = fields
        .iter()
        .fold(fresh(DIGITS), |r, (n, v)| r.header(n, v));
    h.origin.set(target, reply);
    let _ = h.get(target, "").await;
    assert!(is_hit(&h.get(target, "").await), "{target} was not stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_of_a_stored_200_are_answered_by_the_cache() {
    let h = Cached::start().await;
    store_digits(&h, "/r", &[("ETag", "\"r\"")]).await;
    // (Range, status, Content-Range, body)
    let cases = [
        ("bytes=2-4", 206, Some("bytes 2-4/10"), "234"),
        ("bytes=-3", 206, Some("bytes 7-9/10"), "789"),
        ("bytes=7-", 206, Some("bytes 7-9/10"), "789"),
        ("bytes=5-100", 206, Some("bytes 5-9/10"), "56789"),
        ("bytes=20-", 416, Some("bytes */10"), ""),
        ("lines=1-2", 200, None, DIGITS),
        ("bytes=x-y", 200, None, DIGITS),
    ];
    for (range, code, content_range, body) in cases {
        let resp = h.get("/r", &format!("Range: {range}\r\n")).await;
        assert_eq!(resp.status(), code, "{range}");
        assert_eq!(resp.header("content-range"), content_range, "{range}");
        if code != 416 {
            assert_eq!(resp.text(), body, "{range}");
        }
    }
    // Several ranges: multipart/byteranges, or the whole 200.
    let resp = h.get("/r", "Range: bytes=0-1,5-6\r\n").await;
    match resp.status() {
        206 => {
            let ctype = resp.header("content-type").expect("a Content-Type");
            assert!(ctype.starts_with("multipart/byteranges"), "{ctype}");
            let body = resp.text();
            assert!(
                body.contains("Content-Range: bytes 0-1/10\r\n\r\n01\r\n"),
                "{body}"
            );
            assert!(
                body.contains("Content-Range: bytes 5-6/10\r\n\r\n56\r\n"),
                "{body}"
            );
        }
        200 => assert_eq!(resp.text(), DIGITS),
        other => panic!("several ranges answered {other}"),
    }
    // Range applies only to GET.
    let head = h.send(request("HEAD", "/r", "Range: bytes=2-4\r\n")).await;
    assert_eq!(head.status(), 200);
    assert_eq!(head.header("content-length"), Some("10"));
    assert_eq!(h.origin.count("/r"), 1, "a range went to the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_range_needs_a_strong_validator() {
    let h = Cached::start().await;
    let date = http_date(0);
    let modified = http_date(-3600);
    store_digits(
        &h,
        "/strong",
        &[
            ("ETag", "\"s\""),
            ("Date", &date),
            ("Last-Modified", &modified),
        ],
    )
    .await;
    store_digits(&h, "/weak", &[("ETag", "W/\"w\"")]).await;
    // Modified in the same second as its Date: the date is not a strong validator.
    store_digits(
        &h,
        "/same-second",
        &[("Date", &date), ("Last-Modified", &date)],
    )
    .await;
    // (target, If-Range, partial)
    let cases = [
        ("/strong", "\"s\"".to_string(), true),
        ("/strong", "W/\"s\"".to_string(), false),
        ("/strong", "\"other\"".to_string(), false),
        ("/strong", modified.clone(), true),
        ("/strong", http_date(-7200), false),
        ("/weak", "W/\"w\"".to_string(), false),
        ("/same-second", date.clone(), false),
    ];
    for (target, if_range, partial) in cases {
        let resp = h
            .get(
                target,
                &format!("Range: bytes=0-3\r\nIf-Range: {if_range}\r\n"),
            )
            .await;
        if partial {
            assert_eq!(resp.status(), 206, "{target} If-Range {if_range}");
            assert_eq!(resp.text(), "0123", "{target} If-Range {if_range}");
        } else {
            assert_eq!(resp.status(), 200, "{target} If-Range {if_range}");
            assert_eq!(resp.text(), DIGITS, "{target} If-Range {if_range}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_on_a_miss_is_stripped_upstream_only_when_the_object_is_admitted() {
    let h = Cached::start().await;
    h.origin.set("/miss-range", fresh(DIGITS));
    let resp = h.get("/miss-range", "Range: bytes=2-4\r\n").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.text(), "234");
    assert_eq!(
        h.origin.last("/miss-range").get("range"),
        None,
        "Range went upstream"
    );
    let hit = h.get("/miss-range", "").await;
    assert!(is_hit(&hit));
    assert_eq!(hit.text(), DIGITS);

    // Known to be too large to be admitted (the predictor remembers): the range goes
    // upstream.
    let small = Cached::with(Knobs {
        max_file_size: Some(5),
        predictor: true,
        ..Knobs::default()
    })
    .await;
    small.origin.set("/big", fresh(DIGITS));
    let first = small.get("/big", "").await;
    assert_eq!(first.text(), DIGITS);
    assert!(!status(&first).stored, "stored over the size limit");
    let _ = small.get("/big", "Range: bytes=2-4\r\n").await;
    assert_eq!(small.origin.count("/big"), 2);
    assert_eq!(small.origin.last("/big").get("range"), Some("bytes=2-4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_of_a_stored_get_is_its_head_only() {
    let h = Cached::start().await;
    store_digits(&h, "/head", &[]).await;
    let mut client = h.client().await;
    let head = client.roundtrip(request("HEAD", "/head", "")).await;
    assert_eq!(head.status(), 200);
    assert!(is_hit(&head));
    assert_eq!(head.header("content-length"), Some("10"));
    // Nothing follows the head: the next response on the connection parses.
    let next = client.roundtrip(request("GET", "/head", "")).await;
    assert_eq!(next.status(), 200);
    assert_eq!(next.text(), DIGITS);
    assert_eq!(h.origin.count("/head"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http10_client_never_gets_chunked() {
    let h = Cached::start().await;
    let body = "chunked body ".repeat(100);
    h.origin
        .set("/old-client", fresh(&body).chunked().pieces(100));
    for n in 0..2 {
        let mut client = h.client().await;
        client
            .send("GET /old-client HTTP/1.0\r\nHost: test\r\n\r\n")
            .await;
        let resp = client.response().await;
        assert_eq!(resp.status(), 200, "request {n}");
        assert_eq!(resp.head.get("transfer-encoding"), None, "request {n}");
        assert_eq!(resp.text(), body, "request {n}");
        if let Some(length) = resp.head.get("content-length") {
            assert_eq!(length, body.len().to_string(), "request {n}");
        }
        assert_eq!(is_hit(&resp), n == 1, "request {n}");
    }
    assert_eq!(h.origin.count("/old-client"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_stored_from_a_chunked_response_ends_with_exactly_one_last_chunk() {
    let h = Cached::start().await;
    let body = "piece ".repeat(50);
    h.origin.set("/chunks", fresh(&body).chunked().pieces(37));
    let _ = h.get("/chunks", "").await;
    let mut client = h.client().await;
    client.send(request("GET", "/chunks", "")).await;
    let (head, got) = read_chunked_exactly(&mut client).await;
    assert!(is_hit(&Message {
        head,
        ..Message::default()
    }));
    assert_eq!(String::from_utf8_lossy(&got), body);
    assert!(client.leftover().is_empty(), "bytes after the last chunk");
    // A second last-chunk would be read as the start of the next response.
    let next = client.roundtrip(request("GET", "/chunks", "")).await;
    assert_eq!(next.status(), 200);
    assert_eq!(next.text(), body);
}
