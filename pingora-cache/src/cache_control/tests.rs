use super::*;
use proptest::prelude::*;

fn resp(lines: &[&str]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for line in lines {
        resp.append_header("Cache-Control", *line).unwrap();
    }
    resp
}

fn cc(lines: &[&str]) -> CacheControl {
    CacheControl::from_resp_headers(&resp(lines)).unwrap()
}

fn secs(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n))
}

#[test]
fn absent_field_is_none() {
    let resp = ResponseHeader::build(200, None).unwrap();
    assert!(CacheControl::from_resp_headers(&resp).is_none());
    let (req, ()) = http::Request::builder()
        .header("cache-control", "only-if-cached")
        .body(())
        .unwrap()
        .into_parts();
    let parsed = CacheControl::from_req_headers(&req).unwrap();
    assert!(parsed.only_if_cached());
    assert!(CacheControl::from_req_headers_named("cdn-cache-control", &req).is_none());
}

#[test]
fn directive_lists() {
    // (field lines, directives in order as "key" or "key=value")
    let cases: &[(&[&str], &[&str])] = &[
        (&["max-age=60"], &["max-age=60"]),
        (&["Public, MAX-AGE=60"], &["public", "max-age=60"]),
        (&["public,,, ,max-age=5"], &["public", "max-age=5"]),
        (&["public; max-age=5"], &["public", "max-age=5"]),
        (&["a", "b=1", "c"], &["a", "b=1", "c"]),
        (
            &["private=\"a, b\", max-age=1"],
            &["private=a, b", "max-age=1"],
        ),
        (&["x=\"q\\\"uote\\\\\""], &["x=q\"uote\\"]),
        (&["x=\"unterminated, y"], &["x=unterminated, y"]),
        (&["x=\"a\"junk, y"], &["x=a", "y"]),
        (&["max-age = 5"], &["max-age=5"]),
        (&["max-age=", "y"], &["max-age=", "y"]),
        (&["=5, y"], &["y"]),
        (&[""], &[]),
        (&[" , ; "], &[]),
        (&["ünïcode=ä"], &["ünïcode=ä"]),
    ];
    for (lines, expected) in cases {
        let parsed = cc(lines);
        let got: Vec<String> = parsed
            .directives()
            .map(|(k, v)| match v {
                Some(v) => format!("{k}={}", String::from_utf8_lossy(v.as_ref())),
                None => k.to_string(),
            })
            .collect();
        assert_eq!(got, *expected, "{lines:?}");
    }
}

#[test]
fn non_utf8_key_is_skipped_and_value_kept() {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    let value = http::HeaderValue::from_bytes(b"\xff\xfe, x=\xff, max-age=3").unwrap();
    resp.append_header("Cache-Control", value).unwrap();
    let parsed = CacheControl::from_resp_headers(&resp).unwrap();
    assert_eq!(parsed.directives().count(), 2);
    assert_eq!(
        parsed.directive("x"),
        Some(Some(&DirectiveValue(vec![0xff])))
    );
    assert!(parsed
        .directive("x")
        .unwrap()
        .unwrap()
        .parse_as_str()
        .is_err());
    assert_eq!(parsed.max_age().unwrap(), Some(3));
}

#[test]
fn delta_seconds() {
    // (value, parsed)
    let cases: &[(&str, Option<u32>)] = &[
        ("0", Some(0)),
        ("60", Some(60)),
        ("007", Some(7)),
        ("\"60\"", Some(60)),
        ("2147483647", Some(DELTA_SECONDS_OVERFLOW_VALUE)),
        ("2147483648", Some(DELTA_SECONDS_OVERFLOW_VALUE)),
        (
            "99999999999999999999999",
            Some(DELTA_SECONDS_OVERFLOW_VALUE),
        ),
        ("", None),
        ("+5", None),
        ("-5", None),
        ("1.5", None),
        ("5s", None),
        ("\"\"", None),
    ];
    for (value, expected) in cases {
        let parsed = cc(&[&format!("max-age={value}")]);
        assert_eq!(parsed.max_age().ok().flatten(), *expected, "{value}");
        assert_eq!(parsed.max_age().is_err(), expected.is_none(), "{value}");
    }
    assert_eq!(DELTA_SECONDS_OVERFLOW_DURATION.as_secs(), (1 << 31) - 1);
}

#[test]
fn freshness_table() {
    // (field lines, fresh_duration, is_cacheable)
    let cases: &[(&[&str], Option<Duration>, Cacheable)] = &[
        (&["max-age=60"], secs(60), Cacheable::Yes),
        (&["s-maxage=10, max-age=60"], secs(10), Cacheable::Yes),
        (&["max-age=60", "s-maxage=10"], secs(10), Cacheable::Yes),
        (&["public"], None, Cacheable::Yes),
        (&["must-revalidate"], None, Cacheable::Default),
        (&["no-cache"], secs(0), Cacheable::Default),
        (&["no-cache, max-age=60"], secs(0), Cacheable::Yes),
        (&["no-cache=\"x\", max-age=60"], secs(60), Cacheable::Yes),
        (&["no-store, max-age=60"], secs(60), Cacheable::No),
        (&["private, max-age=60"], secs(60), Cacheable::No),
        (&["private=x, max-age=60"], secs(60), Cacheable::Yes),
        // Several, valueless or invalid max-age: stale, never fresh forever.
        (&["max-age=60, max-age=60"], secs(0), Cacheable::Yes),
        (&["max-age=60", "max-age=10"], secs(0), Cacheable::Yes),
        (&["max-age"], secs(0), Cacheable::Yes),
        (&["max-age=abc"], secs(0), Cacheable::Yes),
        (&["max-age=-1"], secs(0), Cacheable::Yes),
        (&["s-maxage=x, max-age=60"], secs(0), Cacheable::Yes),
        (
            &["max-age=99999999999"],
            secs(u64::from(DELTA_SECONDS_OVERFLOW_VALUE)),
            Cacheable::Yes,
        ),
        (&["unknown"], None, Cacheable::Default),
    ];
    for (lines, fresh, cacheable) in cases {
        let parsed = cc(lines);
        assert_eq!(parsed.fresh_duration(), *fresh, "{lines:?}");
        assert_eq!(parsed.is_cacheable(), *cacheable, "{lines:?}");
    }
}

#[test]
fn private_and_no_cache_forms() {
    // (field lines, private(), private names, no_cache(), no-cache names)
    type Case<'a> = (
        &'a [&'a str],
        bool,
        Option<&'a [&'a str]>,
        bool,
        Option<&'a [&'a str]>,
    );
    let cases: &[Case<'_>] = &[
        (&["private"], true, None, false, None),
        (&["PRIVATE"], true, None, false, None),
        (
            &["private=\"Set-Cookie\""],
            false,
            Some(&["Set-Cookie"]),
            false,
            None,
        ),
        (
            &["private=\" a ,, b \""],
            false,
            Some(&["a", "b"]),
            false,
            None,
        ),
        (
            &["private=a", "private=\"b, c\""],
            false,
            Some(&["a", "b", "c"]),
            false,
            None,
        ),
        // A bare form anywhere wins over a listed form.
        (&["private=a, private"], true, None, false, None),
        (&["no-cache"], false, None, true, None),
        (&["no-cache=\"x-a\"", "no-cache"], false, None, true, None),
        (
            &["no-cache=\"x-a, x-b\""],
            false,
            None,
            false,
            Some(&["x-a", "x-b"]),
        ),
        (&["public"], false, None, false, None),
    ];
    for (lines, private, private_names, no_cache, no_cache_names) in cases {
        let parsed = cc(lines);
        assert_eq!(parsed.private(), *private, "{lines:?}");
        assert_eq!(parsed.no_cache(), *no_cache, "{lines:?}");
        let names = |iter: Option<ListValueIter<'_>>| {
            iter.map(|it| {
                it.map(|n| String::from_utf8(n.to_vec()).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        let expect = |v: &Option<&[&str]>| v.map(|v| v.iter().map(|s| s.to_string()).collect());
        assert_eq!(
            names(parsed.private_field_names()),
            expect(private_names),
            "{lines:?}"
        );
        assert_eq!(
            names(parsed.no_cache_field_names()),
            expect(no_cache_names),
            "{lines:?}"
        );
    }
}

#[test]
fn strip_private_headers_removes_listed_fields() {
    let mut resp = resp(&["private=\"Set-Cookie, x-bad name\", no-cache=X-Token"]);
    resp.append_header("Set-Cookie", "a=1").unwrap();
    resp.append_header("set-cookie", "b=2").unwrap();
    resp.append_header("X-Token", "t").unwrap();
    resp.append_header("X-Keep", "k").unwrap();
    let parsed = CacheControl::from_resp_headers(&resp).unwrap();
    parsed.strip_private_headers(&mut resp);
    assert!(resp.headers.get("set-cookie").is_none());
    assert!(resp.headers.get("x-token").is_none());
    assert_eq!(resp.headers.get("x-keep").unwrap(), "k");
    assert!(resp.headers.get("cache-control").is_some());
}

#[test]
fn stale_serving_table() {
    // (field lines, serve-stale-while-revalidate, serve-stale-if-error)
    let cases: &[(&[&str], Option<Duration>, Option<Duration>)] = &[
        (&["max-age=1"], None, None),
        (&["stale-while-revalidate=5"], secs(5), None),
        (&["stale-if-error=7"], None, secs(7)),
        (
            &["stale-while-revalidate=5, stale-if-error=7"],
            secs(5),
            secs(7),
        ),
        (&["stale-while-revalidate=x"], None, None),
        (
            &["stale-while-revalidate=5, must-revalidate"],
            secs(0),
            secs(0),
        ),
        (&["stale-if-error=5, proxy-revalidate"], secs(0), secs(0)),
        (&["stale-if-error=5, s-maxage=9"], secs(0), secs(0)),
        (&["stale-if-error=5, no-cache"], secs(0), secs(0)),
        (&["stale-if-error=5, no-cache=x"], None, secs(5)),
    ];
    for (lines, swr, sie) in cases {
        let parsed = cc(lines);
        assert_eq!(
            parsed.serve_stale_while_revalidate_duration(),
            *swr,
            "{lines:?}"
        );
        assert_eq!(parsed.serve_stale_if_error_duration(), *sie, "{lines:?}");
    }
}

#[test]
fn authorization_table() {
    let cases: &[(&str, bool)] = &[
        ("max-age=60", false),
        ("public", true),
        ("s-maxage=0", true),
        ("must-revalidate", true),
        ("proxy-revalidate", false),
        ("private", false),
    ];
    for (line, allowed) in cases {
        assert_eq!(
            cc(&[line]).allow_caching_authorized_req(),
            *allowed,
            "{line}"
        );
    }
}

#[test]
fn request_directives() {
    let parsed = cc(&["max-age=0, min-fresh=5, max-stale, only-if-cached, no-store"]);
    assert_eq!(parsed.max_age().unwrap(), Some(0));
    assert_eq!(parsed.min_fresh().unwrap(), Some(5));
    assert_eq!(parsed.max_stale().unwrap(), Some(None));
    assert!(parsed.only_if_cached() && parsed.no_store());
    assert_eq!(cc(&["max-stale=30"]).max_stale().unwrap(), Some(Some(30)));
    assert!(cc(&["max-stale=x"]).max_stale().is_err());
    assert!(cc(&["max-stale, max-stale=1"]).max_stale().is_err());
    assert_eq!(cc(&["x"]).max_stale().unwrap(), None);
    assert!(cc(&["must-understand, no-store"]).must_understand());
    assert_eq!(cc(&["a, a=1"]).count("a"), 2);
}

proptest! {
    #[test]
    fn parsing_never_panics(lines in proptest::collection::vec(
        proptest::collection::vec(prop_oneof![
            Just(b','), Just(b';'), Just(b'='), Just(b'"'), Just(b'\\'), Just(b' '),
            Just(b'1'), Just(b'a'), 0x80u8..=0xff, 0x20u8..0x7f,
        ], 0..40),
        1..4,
    )) {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        for line in lines {
            let value = http::HeaderValue::from_bytes(&line).unwrap();
            resp.append_header("Cache-Control", value).unwrap();
        }
        let parsed = CacheControl::from_resp_headers(&resp).unwrap();
        let _ = parsed.is_cacheable();
        let _ = parsed.fresh_duration();
        let _ = parsed.serve_stale_if_error_duration();
        let _ = parsed.max_stale();
        let names: Vec<_> = parsed.private_field_names().into_iter().flatten().collect();
        for name in names {
            prop_assert!(!name.is_empty());
        }
        // Parsing is a pure function of the field lines.
        let again = CacheControl::from_resp_headers(&resp).unwrap();
        prop_assert_eq!(again.directives().count(), parsed.directives().count());
        parsed.strip_private_headers(&mut resp);
    }

    #[test]
    fn delta_seconds_match_a_plain_reading(n in 0u64..u64::MAX) {
        let expected = n.min(u64::from(DELTA_SECONDS_OVERFLOW_VALUE)) as u32;
        prop_assert_eq!(parse_delta_seconds(n.to_string().as_bytes()), Some(expected));
    }
}
