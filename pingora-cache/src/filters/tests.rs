use super::*;
use http::StatusCode;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn date(secs: u64) -> String {
    httpdate::fmt_http_date(at(secs))
}

fn resp(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(status, None).unwrap();
    for (name, value) in fields {
        resp.append_header(name.to_string(), *value).unwrap();
    }
    resp
}

const DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(
    |status| match status {
        StatusCode::OK => Some(Duration::from_secs(10)),
        StatusCode::NOT_FOUND => Some(Duration::from_secs(5)),
        _ => None,
    },
    0,
    DELTA_SECONDS_OVERFLOW_VALUE,
);

const NOTHING: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);

#[test]
fn request_methods() {
    for (method, cacheable) in [
        (Method::GET, true),
        (Method::HEAD, true),
        (Method::POST, false),
        (Method::OPTIONS, false),
        (Method::PUT, false),
    ] {
        let (parts, ()) = http::Request::builder()
            .method(method.clone())
            .body(())
            .unwrap()
            .into_parts();
        assert_eq!(request_cacheable(&parts), cacheable, "{method}");
    }
}

#[test]
fn fresh_until_table() {
    let now = at(1_000_000);
    // (status, fields, authorization, defaults, fresh_until as seconds or None)
    type Case<'a> = (
        u16,
        &'a [(&'a str, &'a str)],
        bool,
        &'a CacheMetaDefaults,
        Option<u64>,
    );
    let expires = date(1_000_100);
    let cases: &[Case<'_>] = &[
        (
            200,
            &[("cache-control", "max-age=60")],
            false,
            &NOTHING,
            Some(1_000_060),
        ),
        (
            200,
            &[("cache-control", "s-maxage=5, max-age=60")],
            false,
            &NOTHING,
            Some(1_000_005),
        ),
        (
            200,
            &[("cache-control", "no-cache")],
            false,
            &NOTHING,
            Some(999_999),
        ),
        (
            200,
            &[("cache-control", "max-age=0")],
            false,
            &NOTHING,
            Some(999_999),
        ),
        (
            200,
            &[("cache-control", "max-age=5, max-age=6")],
            false,
            &NOTHING,
            Some(999_999),
        ),
        (
            200,
            &[("cache-control", "no-store, max-age=60")],
            false,
            &DEFAULTS,
            None,
        ),
        (200, &[("cache-control", "private")], false, &DEFAULTS, None),
        (
            200,
            &[("cache-control", "private=x, max-age=9")],
            false,
            &DEFAULTS,
            Some(1_000_009),
        ),
        (
            200,
            &[("expires", &expires)],
            false,
            &NOTHING,
            Some(1_000_100),
        ),
        (200, &[("expires", "0")], false, &NOTHING, Some(0)),
        // Several Expires: ignored (Pingora), then the defaults decide.
        (
            200,
            &[("expires", &expires), ("expires", &expires)],
            false,
            &DEFAULTS,
            Some(1_000_010),
        ),
        (200, &[], false, &DEFAULTS, Some(1_000_010)),
        (404, &[], false, &DEFAULTS, Some(1_000_005)),
        (304, &[], false, &DEFAULTS, Some(1_000_010)),
        (500, &[], false, &DEFAULTS, None),
        (200, &[], false, &NOTHING, None),
        (200, &[("cache-control", "public")], false, &NOTHING, None),
        // Authorization needs public, s-maxage or must-revalidate.
        (
            200,
            &[("cache-control", "max-age=60")],
            true,
            &DEFAULTS,
            None,
        ),
        (200, &[], true, &DEFAULTS, None),
        (
            200,
            &[("cache-control", "public, max-age=60")],
            true,
            &NOTHING,
            Some(1_000_060),
        ),
        (
            200,
            &[("cache-control", "s-maxage=7")],
            true,
            &NOTHING,
            Some(1_000_007),
        ),
        (
            200,
            &[("cache-control", "must-revalidate")],
            true,
            &DEFAULTS,
            Some(1_000_010),
        ),
    ];
    for (status, fields, auth, defaults, expected) in cases {
        let r = resp(*status, fields);
        let cc = CacheControl::from_resp_headers(&r);
        let got = calculate_fresh_until(now, cc.as_ref(), &r, *auth, defaults);
        assert_eq!(got, expected.map(at), "{status} {fields:?} {auth}");
    }
}

#[test]
fn expires_header() {
    let r = resp(200, &[]);
    assert_eq!(calculate_expires_header_time(&r), None);
    let r = resp(200, &[("expires", "Thu, 01 Jan 1970 00:01:40 GMT")]);
    assert_eq!(calculate_expires_header_time(&r), Some(at(100)));
    for invalid in ["0", "-1", "tomorrow", ""] {
        let r = resp(200, &[("expires", invalid)]);
        assert_eq!(
            calculate_expires_header_time(&r),
            Some(SystemTime::UNIX_EPOCH),
            "{invalid}"
        );
    }
    let r = resp(200, &[("expires", "0"), ("expires", "0")]);
    assert_eq!(calculate_expires_header_time(&r), None);
}

#[test]
fn serve_stale_durations() {
    let defaults = CacheMetaDefaults::new(|_| None, 3, 4);
    // (Cache-Control or none, (swr, sie))
    let cases: &[(Option<&str>, (u32, u32))] = &[
        (None, (3, 4)),
        (Some("max-age=1"), (3, 4)),
        (Some("stale-while-revalidate=10"), (10, 4)),
        (Some("stale-if-error=20"), (3, 20)),
        (Some("stale-if-error=20, must-revalidate"), (0, 0)),
        (Some("proxy-revalidate"), (0, 0)),
        (Some("s-maxage=1"), (0, 0)),
        (Some("no-cache"), (0, 0)),
        (
            Some("stale-if-error=99999999999"),
            (3, DELTA_SECONDS_OVERFLOW_VALUE),
        ),
    ];
    for (line, expected) in cases {
        let r = match line {
            Some(line) => resp(200, &[("cache-control", line)]),
            None => resp(200, &[]),
        };
        let cc = CacheControl::from_resp_headers(&r);
        assert_eq!(
            calculate_serve_stale_durations(cc.as_ref(), &defaults),
            *expected,
            "{line:?}"
        );
    }
}

#[test]
fn resp_cacheable_strips_listed_fields() {
    let now = at(5_000);
    let r = resp(
        200,
        &[
            ("cache-control", "max-age=60, private=\"set-cookie\""),
            ("set-cookie", "a=1"),
            ("x-keep", "1"),
        ],
    );
    let cc = CacheControl::from_resp_headers(&r);
    let defaults = CacheMetaDefaults::new(|_| None, 1, 2);
    let meta = resp_cacheable_at(now, cc.as_ref(), r, false, &defaults).unwrap_meta();
    assert_eq!(meta.fresh_until(), at(5_060));
    assert_eq!(meta.created(), now);
    assert_eq!(
        (meta.stale_while_revalidate_sec(), meta.stale_if_error_sec()),
        (1, 2)
    );
    assert!(meta.headers().get("set-cookie").is_none());
    assert!(meta.headers().get("x-keep").is_some());

    // Pingora's reading keeps other Set-Cookie responses cacheable.
    let r = resp(
        200,
        &[("cache-control", "max-age=60"), ("set-cookie", "a=1")],
    );
    let cc = CacheControl::from_resp_headers(&r);
    assert!(resp_cacheable(cc.as_ref(), r, false, &defaults).is_cacheable());

    let r = resp(200, &[("cache-control", "no-store")]);
    let cc = CacheControl::from_resp_headers(&r);
    let verdict = resp_cacheable(cc.as_ref(), r, false, &DEFAULTS);
    assert_eq!(
        verdict.into_meta().err(),
        Some(NoCacheReason::OriginNotCache)
    );
}

#[test]
fn upstream_request_filter() {
    let mut req = RequestHeader::build("HEAD", b"/a", None).unwrap();
    for (name, value) in [
        ("if-match", "\"x\""),
        ("if-none-match", "\"y\""),
        ("if-modified-since", "Thu, 01 Jan 1970 00:01:40 GMT"),
        ("if-unmodified-since", "Thu, 01 Jan 1970 00:01:40 GMT"),
        ("if-range", "\"z\""),
        ("range", "bytes=0-1"),
        ("x-keep", "1"),
    ] {
        req.append_header(name, value).unwrap();
    }
    upstream::request_filter(&mut req, None);
    assert_eq!(req.method, Method::GET);
    assert_eq!(req.headers.len(), 1);
    assert!(req.headers.get("x-keep").is_some());

    // Revalidation adds the stored validators; Last-Modified only when it is a date.
    let stored = resp(
        200,
        &[
            ("etag", "\"v1\""),
            ("last-modified", "Thu, 01 Jan 1970 00:01:40 GMT"),
        ],
    );
    let meta = CacheMeta::new(at(0), at(0), 0, 0, stored);
    upstream::request_filter(&mut req, Some(&meta));
    assert_eq!(req.headers.get("if-none-match").unwrap(), "\"v1\"");
    assert_eq!(
        req.headers.get("if-modified-since").unwrap(),
        "Thu, 01 Jan 1970 00:01:40 GMT"
    );

    let mut req = RequestHeader::build("GET", b"/a", None).unwrap();
    let meta = CacheMeta::new(
        at(0),
        at(0),
        0,
        0,
        resp(200, &[("last-modified", "garbage")]),
    );
    upstream::request_filter(&mut req, Some(&meta));
    assert!(req.headers.get("if-modified-since").is_none());
    assert!(req.headers.get("if-none-match").is_none());
}
