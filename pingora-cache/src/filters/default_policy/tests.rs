use super::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn s(secs: u64) -> Duration {
    Duration::from_secs(secs)
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

fn cc_of(fields: &[(&str, &str)]) -> Option<CacheControl> {
    CacheControl::from_headers_named("cache-control", &crate::test_util::header_map(fields))
}

const NO_DEFAULTS: CacheMetaDefaults = CacheMetaDefaults::new(|_| None, 0, 0);

#[test]
fn storing_rules() {
    use NoCacheReason::OriginNotCache as Origin;
    let get = Method::GET;
    let exp = date(100);
    // (method, request Cache-Control, authorization, status, response fields, verdict)
    type Case<'a> = (
        &'a Method,
        &'a [(&'a str, &'a str)],
        bool,
        u16,
        &'a [(&'a str, &'a str)],
        Result<(), NoCacheReason>,
    );
    let cases: &[Case<'_>] = &[
        (&get, &[], false, 200, &[], Ok(())),
        (&Method::HEAD, &[], false, 200, &[], Ok(())),
        (
            &Method::POST,
            &[],
            false,
            200,
            &[("cache-control", "max-age=9")],
            Err(METHOD),
        ),
        (
            &Method::OPTIONS,
            &[],
            false,
            200,
            &[("cache-control", "public")],
            Err(METHOD),
        ),
        // Statuses: interim, 304 and 206 never; heuristic statuses without freshness.
        (
            &get,
            &[],
            false,
            100,
            &[("cache-control", "max-age=9")],
            Err(STATUS),
        ),
        (
            &get,
            &[],
            false,
            304,
            &[("cache-control", "max-age=9")],
            Err(STATUS),
        ),
        (
            &get,
            &[],
            false,
            206,
            &[("cache-control", "max-age=9")],
            Err(STATUS),
        ),
        (&get, &[], false, 404, &[], Ok(())),
        (&get, &[], false, 501, &[], Ok(())),
        (&get, &[], false, 302, &[], Err(Origin)),
        (&get, &[], false, 500, &[], Err(Origin)),
        (
            &get,
            &[],
            false,
            302,
            &[("cache-control", "max-age=9")],
            Ok(()),
        ),
        (&get, &[], false, 599, &[("expires", &exp)], Ok(())),
        (
            &get,
            &[],
            false,
            299,
            &[("cache-control", "s-maxage=1")],
            Ok(()),
        ),
        (
            &get,
            &[],
            false,
            499,
            &[("cache-control", "public")],
            Ok(()),
        ),
        (
            &get,
            &[],
            false,
            500,
            &[("cache-control", "no-cache")],
            Err(Origin),
        ),
        // no-store, private.
        (
            &get,
            &[("cache-control", "no-store")],
            false,
            200,
            &[],
            Err(REQUEST_NO_STORE),
        ),
        (
            &get,
            &[],
            false,
            200,
            &[("cache-control", "no-store")],
            Err(Origin),
        ),
        (
            &get,
            &[],
            false,
            200,
            &[("cache-control", "private, max-age=9")],
            Err(Origin),
        ),
        (
            &get,
            &[],
            false,
            200,
            &[("cache-control", "private=\"a\"")],
            Ok(()),
        ),
        (
            &get,
            &[],
            false,
            200,
            &[("cache-control", "no-cache")],
            Ok(()),
        ),
        (
            &get,
            &[],
            false,
            200,
            &[("cache-control", "no-cache=\"a\"")],
            Ok(()),
        ),
        // must-understand: understood statuses ignore no-store, others are not stored.
        (
            &get,
            &[],
            false,
            200,
            &[("cache-control", "must-understand, no-store")],
            Ok(()),
        ),
        (
            &get,
            &[],
            false,
            299,
            &[("cache-control", "must-understand, max-age=5")],
            Err(STATUS),
        ),
        // Authorization.
        (&get, &[], true, 200, &[], Err(Origin)),
        (
            &get,
            &[],
            true,
            200,
            &[("cache-control", "max-age=60")],
            Err(Origin),
        ),
        (&get, &[], true, 200, &[("cache-control", "public")], Ok(())),
        (
            &get,
            &[],
            true,
            200,
            &[("cache-control", "s-maxage=60")],
            Ok(()),
        ),
        (
            &get,
            &[],
            true,
            200,
            &[("cache-control", "must-revalidate")],
            Ok(()),
        ),
        // Set-Cookie is a separate check.
        (&get, &[], false, 200, &[("set-cookie", "a=1")], Ok(())),
    ];
    for (method, req_cc, auth, status, fields, verdict) in cases {
        let r = resp(*status, fields);
        let cc = CacheControl::from_resp_headers(&r);
        let req_cc = cc_of(req_cc);
        let got = storable(method, req_cc.as_ref(), *auth, &r, cc.as_ref());
        assert_eq!(
            got, *verdict,
            "{method} {req_cc:?} {auth} {status} {fields:?}"
        );
    }
    assert_eq!(
        refuse_set_cookie(&resp(200, &[("set-cookie", "a=1")])),
        Err(SET_COOKIE)
    );
    assert_eq!(refuse_set_cookie(&resp(200, &[])), Ok(()));
}

#[test]
fn heuristic() {
    let h = HeuristicFreshness::default();
    assert_eq!((h.percent(), h.cap()), (10, s(86_400)));
    // (date, last modified, lifetime)
    let cases: &[(u64, Option<u64>, u64)] = &[
        (1_000, Some(0), 100),
        (1_000, Some(999), 0),
        (1_000, Some(1_000), 0),
        (1_000, Some(2_000), 0),
        (1_000, None, 0),
        (10_000_000, Some(0), 86_400),
    ];
    for &(d, lm, expected) in cases {
        assert_eq!(h.lifetime(at(d), lm.map(at)), s(expected), "{d} {lm:?}");
    }
    let custom = HeuristicFreshness::new(50, s(10));
    assert_eq!(custom.lifetime(at(100), Some(at(90))), s(5));
    assert_eq!(custom.lifetime(at(100), Some(at(0))), s(10));
    assert_eq!(
        HeuristicFreshness::new(0, s(10)).lifetime(at(100), Some(at(0))),
        s(0)
    );
    let extreme = HeuristicFreshness::new(u32::MAX, Duration::MAX);
    assert!(extreme.lifetime(at(u64::from(u32::MAX)), Some(at(0))) > s(0));
}

#[test]
fn lifetime_order() {
    let now = 1_000_000;
    let d = date(now);
    let lm = date(now - 5_000);
    let exp = date(now + 300);
    let past = date(now - 300);
    // (status, fields, lifetime)
    let cases: &[(u16, &[(&str, &str)], u64)] = &[
        (
            200,
            &[
                ("cache-control", "s-maxage=5, max-age=60"),
                ("expires", &exp),
            ],
            5,
        ),
        (
            200,
            &[("cache-control", "max-age=60"), ("expires", &exp)],
            60,
        ),
        (200, &[("cache-control", "max-age=x"), ("expires", &exp)], 0),
        (200, &[("cache-control", "max-age=1, max-age=1")], 0),
        (200, &[("cache-control", "no-cache, max-age=60")], 0),
        (200, &[("date", &d), ("expires", &exp)], 300),
        // Without Date, the response time stands in.
        (200, &[("expires", &exp)], 300),
        (200, &[("date", &d), ("expires", &past)], 0),
        (200, &[("date", &d), ("expires", "0")], 0),
        (
            200,
            &[("date", &d), ("expires", &exp), ("expires", &exp)],
            0,
        ),
        // Heuristic: cacheable statuses or public, only without explicit freshness.
        (200, &[("date", &d), ("last-modified", &lm)], 500),
        (200, &[("last-modified", &lm)], 500),
        (404, &[("date", &d), ("last-modified", &lm)], 500),
        (200, &[("date", &d)], 0),
        (200, &[("date", &d), ("last-modified", "yesterday")], 0),
        (302, &[("date", &d), ("last-modified", &lm)], 0),
        (
            302,
            &[
                ("cache-control", "public"),
                ("date", &d),
                ("last-modified", &lm),
            ],
            500,
        ),
        (
            200,
            &[("date", &d), ("last-modified", &lm), ("expires", &exp)],
            300,
        ),
    ];
    let h = HeuristicFreshness::default();
    for (status, fields, expected) in cases {
        let r = resp(*status, fields);
        let cc = CacheControl::from_resp_headers(&r);
        let got = freshness_lifetime(&r, cc.as_ref(), &h, at(now));
        assert_eq!(got, s(*expected), "{status} {fields:?}");
    }
}

#[test]
fn unstored_fields() {
    let mut r = resp(
        200,
        &[
            ("connection", "close, X-Hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authentication-info", "x"),
            ("cache-control", "private=\"X-Private\", no-cache=\"x-nc\""),
            ("x-private", "1"),
            ("x-nc", "1"),
            ("ETag", "\"e\""),
            ("X-Kept", "1"),
        ],
    );
    let cc = CacheControl::from_resp_headers(&r);
    strip_unstored_fields(&mut r, cc.as_ref());
    let mut names: Vec<&str> = r.headers.keys().map(|n| n.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["cache-control", "etag", "x-kept"]);
    // Original name case is kept for what remains.
    let mut wire = Vec::new();
    r.header_to_h1_wire(&mut wire);
    assert!(String::from_utf8(wire).unwrap().contains("ETag: \"e\""));
}

#[test]
fn request_directives() {
    let none: &[(&str, &str)] = &[];
    // (request Cache-Control, current age, lifetime, stale forbidden, reusable)
    type Case<'a> = (&'a [(&'a str, &'a str)], u64, u64, bool, bool);
    let cases: &[Case<'_>] = &[
        (none, 10, 60, false, true),
        (none, 60, 60, false, false),
        (&[("cache-control", "no-cache")], 0, 60, false, false),
        (&[("cache-control", "max-age=10")], 10, 60, false, true),
        (&[("cache-control", "max-age=10")], 11, 60, false, false),
        (&[("cache-control", "max-age=0")], 0, 60, false, true),
        (&[("cache-control", "max-age=x")], 1, 60, false, false),
        (&[("cache-control", "min-fresh=20")], 40, 60, false, true),
        (&[("cache-control", "min-fresh=20")], 41, 60, false, false),
        (&[("cache-control", "max-stale")], 1_000, 60, false, true),
        (&[("cache-control", "max-stale")], 1_000, 60, true, false),
        (&[("cache-control", "max-stale=30")], 90, 60, false, true),
        (&[("cache-control", "max-stale=30")], 91, 60, false, false),
        (&[("cache-control", "max-stale=x")], 61, 60, false, false),
        (
            &[("cache-control", "max-stale=100, max-age=50")],
            70,
            60,
            false,
            false,
        ),
        (&[("cache-control", "only-if-cached")], 10, 60, false, true),
    ];
    for (fields, age, lifetime, forbidden, expected) in cases {
        let cc = cc_of(fields);
        let got = request_allows_reuse(cc.as_ref(), s(*age), s(*lifetime), *forbidden);
        assert_eq!(got, *expected, "{fields:?} {age} {lifetime} {forbidden}");
    }
}

fn exchange<'a>(method: &'a Method, req_cc: Option<&'a CacheControl>, auth: bool) -> Exchange<'a> {
    Exchange {
        method,
        request_cache_control: req_cc,
        authorization_present: auth,
        request_time: at(999_998),
        response_time: at(1_000_000),
    }
}

#[test]
fn default_resp_cacheable() {
    let get = Method::GET;
    let opts = PolicyOptions::default();
    assert!(opts.refuses_set_cookie());
    assert_eq!(opts.heuristic_freshness(), HeuristicFreshness::default());

    // The upstream's Age and the round trip count: born 100 + 2 s before arrival.
    let r = resp(
        200,
        &[
            ("cache-control", "max-age=600, stale-while-revalidate=30"),
            ("age", "100"),
            ("connection", "close"),
        ],
    );
    let cc = CacheControl::from_resp_headers(&r);
    let meta = resp_cacheable(
        &exchange(&get, None, false),
        cc.as_ref(),
        r,
        &opts,
        &NO_DEFAULTS,
    )
    .unwrap_meta();
    assert_eq!(meta.created(), at(1_000_000 - 102));
    assert_eq!(meta.fresh_until(), at(1_000_000 - 102 + 600));
    assert_eq!(meta.age_at(at(1_000_010)), s(112));
    assert_eq!(meta.stale_while_revalidate_sec(), 30);
    assert!(meta.headers().get("connection").is_none());
    // A missing Date is the response time.
    assert_eq!(
        meta.headers().get("date").unwrap(),
        date(1_000_000).as_str()
    );

    // A present Date is kept, and the apparent age counts.
    let d = date(999_000);
    let r = resp(200, &[("cache-control", "max-age=600"), ("date", &d)]);
    let cc = CacheControl::from_resp_headers(&r);
    let meta = resp_cacheable(
        &exchange(&get, None, false),
        cc.as_ref(),
        r,
        &opts,
        &NO_DEFAULTS,
    )
    .unwrap_meta();
    assert_eq!(meta.created(), at(999_000));
    assert_eq!(meta.headers().get("date").unwrap(), d.as_str());
    assert!(!meta.is_fresh(at(1_000_000)));

    // Refusals.
    let cases: &[(&[(&str, &str)], NoCacheReason)] = &[
        (
            &[("cache-control", "max-age=60"), ("set-cookie", "a=1")],
            SET_COOKIE,
        ),
        (
            &[("cache-control", "max-age=60"), ("vary", "Accept, *")],
            VARY_STAR,
        ),
        (
            &[("cache-control", "no-store")],
            NoCacheReason::OriginNotCache,
        ),
    ];
    for (fields, reason) in cases {
        let r = resp(200, fields);
        let cc = CacheControl::from_resp_headers(&r);
        let verdict = resp_cacheable(
            &exchange(&get, None, false),
            cc.as_ref(),
            r,
            &opts,
            &NO_DEFAULTS,
        );
        assert_eq!(verdict.into_meta().err(), Some(*reason), "{fields:?}");
    }

    // Opting in to Set-Cookie: private="Set-Cookie" strips it.
    let opts = opts
        .refuse_set_cookie(false)
        .heuristic(HeuristicFreshness::new(20, s(60)));
    let r = resp(
        200,
        &[
            ("cache-control", "max-age=60, private=\"Set-Cookie\""),
            ("set-cookie", "a=1"),
        ],
    );
    let cc = CacheControl::from_resp_headers(&r);
    let meta = resp_cacheable(
        &exchange(&get, None, false),
        cc.as_ref(),
        r,
        &opts,
        &NO_DEFAULTS,
    )
    .unwrap_meta();
    assert!(meta.headers().get("set-cookie").is_none());

    // Heuristic with the configured fraction, and the request's no-store.
    let lm = date(1_000_000 - 100);
    let r = resp(200, &[("last-modified", &lm)]);
    let meta =
        resp_cacheable(&exchange(&get, None, false), None, r, &opts, &NO_DEFAULTS).unwrap_meta();
    assert_eq!(meta.fresh_until(), at(999_998 + 20));
    let req_cc = cc_of(&[("cache-control", "no-store")]);
    let r = resp(200, &[("cache-control", "max-age=60")]);
    let cc = CacheControl::from_resp_headers(&r);
    let verdict = resp_cacheable(
        &exchange(&get, req_cc.as_ref(), false),
        cc.as_ref(),
        r,
        &opts,
        &NO_DEFAULTS,
    );
    assert_eq!(verdict.into_meta().err(), Some(REQUEST_NO_STORE));
}

#[test]
fn stale_if_error_statuses() {
    for code in [100, 200, 304, 404, 429, 501, 505, 599] {
        assert!(
            !is_stale_if_error_status(StatusCode::from_u16(code).unwrap()),
            "{code}"
        );
    }
    for code in [500, 502, 503, 504] {
        assert!(
            is_stale_if_error_status(StatusCode::from_u16(code).unwrap()),
            "{code}"
        );
    }
}

#[test]
fn invalidation() {
    // (method, status, invalidates)
    let cases = [
        (Method::POST, 200, true),
        (Method::PUT, 204, true),
        (Method::DELETE, 301, true),
        (Method::PATCH, 200, true),
        (Method::from_bytes(b"PURGE").unwrap(), 200, true),
        (Method::POST, 404, false),
        (Method::POST, 500, false),
        (Method::POST, 100, false),
        (Method::GET, 200, false),
        (Method::HEAD, 200, false),
        (Method::OPTIONS, 200, false),
        (Method::TRACE, 200, false),
    ];
    for (method, status, expected) in cases {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(invalidates(&method, status), expected, "{method} {status}");
    }
}

#[test]
fn invalidation_targets_are_same_origin_paths() {
    // (Location, Content-Location, targets)
    let cases: &[(Option<&str>, Option<&str>, &[&str])] = &[
        (Some("/a?x=1"), None, &["/a?x=1"]),
        (Some("/a"), Some("/b"), &["/a", "/b"]),
        (Some("/a"), Some("/a"), &["/a"]),
        (Some("http://EXAMPLE.com/c"), None, &["/c"]),
        (Some("http://example.com:80/c"), None, &["/c"]),
        (Some("http://example.com:8080/c"), None, &[]),
        (Some("https://example.com/c"), None, &[]),
        (Some("http://other.com/c"), None, &[]),
        (Some("relative/path"), None, &[]),
        (Some("//example.com/x"), None, &[]),
        (Some("not a uri"), None, &[]),
        (None, None, &[]),
    ];
    for (location, content_location, expected) in cases {
        let mut headers = HeaderMap::new();
        if let Some(l) = location {
            headers.insert(header::LOCATION, l.parse().unwrap());
        }
        if let Some(l) = content_location {
            headers.insert(header::CONTENT_LOCATION, l.parse().unwrap());
        }
        let got = invalidation_targets("http", "example.com", &headers);
        let got: Vec<&str> = got.iter().map(|p| p.as_str()).collect();
        assert_eq!(got, *expected, "{location:?} {content_location:?}");
    }
    let headers =
        HeaderMap::from_iter([(header::LOCATION, "https://a.com:443/x".parse().unwrap())]);
    assert_eq!(
        invalidation_targets("HTTPS", "A.com", &headers)[0].as_str(),
        "/x"
    );
    assert!(invalidation_targets("ftp", "a.com", &headers).is_empty());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const VALUES: &[(&str, &str)] = &[
        ("cache-control", "max-age=60"),
        ("cache-control", "s-maxage=5, public"),
        ("cache-control", "no-cache"),
        ("cache-control", "no-store, must-understand"),
        ("cache-control", "private=\"set-cookie\""),
        ("cache-control", "max-age=99999999999, stale-if-error=9"),
        ("expires", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("expires", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("expires", "0"),
        ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("date", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ("last-modified", "Thu, 01 Jan 1970 00:00:00 GMT"),
        ("age", "99999999999"),
        ("age", "5"),
        ("connection", "x-a"),
        ("x-a", "1"),
        ("transfer-encoding", "chunked"),
        ("set-cookie", "a=1"),
        ("vary", "*"),
    ];

    proptest! {
        #[test]
        fn decisions_are_consistent(
            status in 100u16..600,
            picks in proptest::collection::vec(0..VALUES.len(), 0..8),
            request_time in 0u64..2_000_000_000,
            delay in 0u64..100,
            auth in any::<bool>(),
        ) {
            let fields: Vec<(&str, &str)> = picks.iter().map(|&i| VALUES[i]).collect();
            let r = resp(status, &fields);
            let cc = CacheControl::from_resp_headers(&r);
            let exchange = Exchange {
                method: &Method::GET,
                request_cache_control: None,
                authorization_present: auth,
                request_time: at(request_time),
                response_time: at(request_time + delay),
            };
            let verdict = storable(&Method::GET, None, auth, &r, cc.as_ref());
            let options = PolicyOptions::default().refuse_set_cookie(false);
            match resp_cacheable(&exchange, cc.as_ref(), r, &options, &NO_DEFAULTS) {
                RespCacheable::Cacheable(meta) => {
                    prop_assert!(verdict.is_ok());
                    prop_assert!(meta.created() <= exchange.response_time);
                    prop_assert!(meta.fresh_until() >= meta.created());
                    for name in UNSTORED_FIELDS {
                        prop_assert!(!meta.headers().contains_key(name), "{name} stored");
                    }
                    if fields.contains(&("connection", "x-a")) {
                        prop_assert!(!meta.headers().contains_key("x-a"));
                    }
                    prop_assert!(meta.headers().contains_key("date"));
                }
                RespCacheable::Uncacheable(reason) => {
                    prop_assert!(verdict.is_err() || reason == VARY_STAR, "{reason:?}");
                }
            }
        }
    }
}
