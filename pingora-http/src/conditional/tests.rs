use super::*;
use http::header::HeaderName;

fn stored(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(status, None).unwrap();
    for (name, value) in fields {
        resp.append_header(name.to_string(), *value).unwrap();
    }
    resp
}

/// A header map holding `fields` in order (repeated names appended).
fn headers(fields: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in fields {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    map
}

#[test]
fn entity_tags() {
    // (value, parsed as (weak, opaque) or None)
    let cases: &[(&str, Option<(bool, &str)>)] = &[
        ("\"abc\"", Some((false, "abc"))),
        ("W/\"abc\"", Some((true, "abc"))),
        (" \"\" ", Some((false, ""))),
        ("\"a,b\"", Some((false, "a,b"))),
        ("abc", None),
        ("\"abc", None),
        ("w/\"abc\"", None),
        ("\"a\"b", None),
        ("\"a b\"", None),
    ];
    for (value, expected) in cases {
        let got = EntityTag::parse(value.as_bytes()).map(|t| (t.weak, t.opaque));
        assert_eq!(got, expected.map(|(w, o)| (w, o.as_bytes())), "{value}");
    }
    let strong = EntityTag::parse(b"\"1\"").unwrap();
    let weak = EntityTag::parse(b"W/\"1\"").unwrap();
    let other = EntityTag::parse(b"\"2\"").unwrap();
    // RFC 9110 section 8.8.3.2 comparison table.
    assert!(!weak.strong_eq(&weak) && weak.weak_eq(&weak));
    assert!(!weak.strong_eq(&strong) && weak.weak_eq(&strong));
    assert!(!weak.weak_eq(&other));
    assert!(strong.strong_eq(&strong) && strong.weak_eq(&strong));
}

#[test]
fn not_modified_table() {
    let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
    let before = "Sun, 06 Nov 1994 08:49:36 GMT";
    let after = "Sun, 06 Nov 1994 08:49:38 GMT";
    let with_validators = stored(200, &[("etag", "W/\"v1\""), ("last-modified", lm)]);
    let only_date = stored(200, &[("date", lm)]);
    let get = Method::GET;
    // (method, stored response, request fields, 304?)
    type Case<'a> = (
        &'a Method,
        &'a ResponseHeader,
        &'a [(&'a str, &'a str)],
        bool,
    );
    let cases: &[Case<'_>] = &[
        (&get, &with_validators, &[], false),
        (&get, &with_validators, &[("if-none-match", "\"v1\"")], true),
        (
            &get,
            &with_validators,
            &[("if-none-match", "W/\"v1\"")],
            true,
        ),
        (
            &Method::HEAD,
            &with_validators,
            &[("if-none-match", "\"v1\"")],
            true,
        ),
        (
            &Method::POST,
            &with_validators,
            &[("if-none-match", "\"v1\"")],
            false,
        ),
        (
            &get,
            &with_validators,
            &[("if-none-match", "\"x\", \"v1\"")],
            true,
        ),
        (
            &get,
            &with_validators,
            &[("if-none-match", "\"x\""), ("if-none-match", "\"v1\"")],
            true,
        ),
        (
            &get,
            &with_validators,
            &[("if-none-match", "\"x\",\"y\"")],
            false,
        ),
        (&get, &with_validators, &[("if-none-match", "*")], true),
        (
            &get,
            &with_validators,
            &[("if-none-match", "garbage, \"v1\"")],
            false,
        ),
        (&get, &only_date, &[("if-none-match", "\"v1\"")], false),
        // If-None-Match present: If-Modified-Since is ignored.
        (
            &get,
            &with_validators,
            &[("if-none-match", "\"x\""), ("if-modified-since", lm)],
            false,
        ),
        // If-Modified-Since alone: Last-Modified, else Date.
        (&get, &with_validators, &[("if-modified-since", lm)], true),
        (
            &get,
            &with_validators,
            &[("if-modified-since", after)],
            true,
        ),
        (
            &get,
            &with_validators,
            &[("if-modified-since", before)],
            false,
        ),
        (
            &get,
            &with_validators,
            &[("if-modified-since", "garbage")],
            false,
        ),
        (
            &Method::POST,
            &with_validators,
            &[("if-modified-since", lm)],
            false,
        ),
        (&get, &only_date, &[("if-modified-since", after)], true),
        (&get, &only_date, &[("if-modified-since", before)], false),
        (
            &get,
            &stored(200, &[]),
            &[("if-modified-since", after)],
            false,
        ),
    ];
    for (method, resp, fields, expected) in cases {
        assert_eq!(
            not_modified(method, &headers(fields), resp),
            *expected,
            "{method} {fields:?}"
        );
    }
    // Only a stored 200.
    let not_found = stored(404, &[("etag", "\"v1\"")]);
    assert!(!not_modified(
        &get,
        &headers(&[("if-none-match", "\"v1\"")]),
        &not_found
    ));
}

#[test]
fn not_modified_header() {
    let full = stored(
        200,
        &[
            ("Cache-Control", "max-age=60"),
            ("Content-Location", "/a"),
            ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("ETag", "\"v1\""),
            ("Expires", "Sun, 06 Nov 1994 08:50:37 GMT"),
            ("Vary", "Accept"),
            ("Vary", "Origin"),
            ("Content-Type", "text/plain"),
            ("Content-Length", "10"),
            ("Last-Modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("Set-Cookie", "a=1"),
        ],
    );
    let resp = not_modified_response(&full);
    assert_eq!(resp.status, StatusCode::NOT_MODIFIED);
    let mut names: Vec<&str> = resp.headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "cache-control",
            "content-location",
            "date",
            "etag",
            "expires",
            "vary"
        ]
    );
    assert_eq!(resp.headers.get_all("vary").iter().count(), 2);
}

#[test]
fn if_range_table() {
    let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
    let same_second = stored(
        200,
        &[("etag", "\"v1\""), ("last-modified", lm), ("date", lm)],
    );
    let strong = stored(
        200,
        &[
            ("etag", "\"v1\""),
            ("last-modified", lm),
            ("date", "Sun, 06 Nov 1994 08:49:38 GMT"),
        ],
    );
    let weak_etag = stored(200, &[("etag", "W/\"v1\"")]);
    // (If-Range, stored, matches)
    let cases: &[(&str, &ResponseHeader, bool)] = &[
        ("\"v1\"", &strong, true),
        ("\"v2\"", &strong, false),
        ("W/\"v1\"", &strong, false),
        ("\"v1\"", &weak_etag, false),
        ("\"v1", &strong, false),
        (lm, &strong, true),
        ("Sun, 06 Nov 1994 08:49:36 GMT", &strong, false),
        // Last-Modified within the second of Date is weak.
        (lm, &same_second, false),
        (lm, &weak_etag, false),
        ("not a date", &strong, false),
    ];
    for (value, resp, expected) in cases {
        let value = HeaderValue::from_str(value).unwrap();
        assert_eq!(
            if_range_matches(&value, &resp.headers),
            *expected,
            "{value:?}"
        );
    }
}
