use super::*;
use http::StatusCode;

fn stored(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(status, None).unwrap();
    for (name, value) in fields {
        resp.append_header(name.to_string(), *value).unwrap();
    }
    resp
}

use crate::test_util::header_map as headers;

#[test]
fn selection_for_update() {
    // (stored fields, 304 fields, selected)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, &'a str)], bool);
    let lm = "Sun, 06 Nov 1994 08:49:37 GMT";
    let other = "Sun, 06 Nov 1994 08:49:38 GMT";
    let cases: &[Case<'_>] = &[
        (&[("etag", "\"a\"")], &[("etag", "\"a\"")], true),
        (&[("etag", "\"a\"")], &[("etag", "\"b\"")], false),
        (&[("etag", "W/\"a\"")], &[("etag", "\"a\"")], false),
        (&[("etag", "\"a\"")], &[("etag", "W/\"a\"")], true),
        (&[("etag", "W/\"a\"")], &[("etag", "W/\"a\"")], true),
        (&[], &[("etag", "\"a\"")], false),
        (&[("last-modified", lm)], &[("last-modified", lm)], true),
        (&[("last-modified", lm)], &[("last-modified", other)], false),
        (&[("etag", "\"a\"")], &[("last-modified", lm)], false),
        (&[], &[], true),
        (&[("etag", "\"a\"")], &[], false),
        (&[("last-modified", lm)], &[], false),
    ];
    for (old, new, expected) in cases {
        assert_eq!(
            selected_for_update(&headers(old), &headers(new)),
            *expected,
            "{old:?} {new:?}"
        );
    }
}

#[test]
fn merging_a_304() {
    let old = stored(
        200,
        &[
            ("Content-Type", "text/plain"),
            ("Content-Length", "10"),
            ("Cache-Control", "max-age=10"),
            ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("X-Multi", "1"),
            ("X-Multi", "2"),
            ("ETag", "\"a\""),
        ],
    );
    let new = stored(
        304,
        &[
            ("cache-control", "max-age=60"),
            ("Date", "Sun, 06 Nov 1994 09:00:00 GMT"),
            ("Age", "3"),
            ("Content-Length", "0"),
            ("Content-Range", "bytes */10"),
            ("Connection", "x-hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("X-Multi", "3"),
            ("X-New", "n"),
        ],
    );
    let merged = merge_not_modified(&old, &new);
    assert_eq!(merged.status, StatusCode::OK);
    let get = |name: &str| -> Vec<&str> {
        merged
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect()
    };
    assert_eq!(get("cache-control"), ["max-age=60"]);
    assert_eq!(get("date"), ["Sun, 06 Nov 1994 09:00:00 GMT"]);
    assert_eq!(get("age"), ["3"]);
    assert_eq!(get("content-length"), ["10"]);
    assert_eq!(get("content-range"), Vec::<&str>::new());
    assert_eq!(get("content-type"), ["text/plain"]);
    assert_eq!(get("x-multi"), ["3"]);
    assert_eq!(get("x-new"), ["n"]);
    assert_eq!(get("etag"), ["\"a\""]);
    for hop in ["connection", "x-hop", "keep-alive"] {
        assert!(get(hop).is_empty(), "{hop}");
    }
    // The 304's spelling is kept for the fields it replaced.
    let mut wire = Vec::new();
    merged.header_to_h1_wire(&mut wire);
    let wire = String::from_utf8(wire).unwrap();
    assert!(wire.contains("cache-control: max-age=60"), "{wire}");
    assert!(wire.contains("Content-Type: text/plain"), "{wire}");
}

#[test]
fn a_304_without_age_or_date_restarts_the_age() {
    let old = stored(
        200,
        &[
            ("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("Age", "61"),
            ("Cache-Control", "max-age=60"),
        ],
    );
    let new = stored(304, &[("ETag", "\"a\"")]);
    let merged = merge_not_modified(&old, &new);
    assert!(merged.headers.get("age").is_none());
    assert!(merged.headers.get("date").is_none());
    assert_eq!(merged.headers["cache-control"], "max-age=60");
}
