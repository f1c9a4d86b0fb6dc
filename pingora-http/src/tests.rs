use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::Uri;
use pingora_error::ErrorType;

use super::*;
use crate::case_header_name::{WellKnown, CANONICAL};

/// The head's field lines as written.
fn wire(req: &RequestHeader) -> String {
    let mut buf = BytesMut::new();
    req.header_to_h1_wire(&mut buf);
    String::from_utf8(buf.to_vec()).expect("test heads are ASCII")
}

fn resp_wire(resp: &ResponseHeader) -> String {
    let mut buf = Vec::new();
    resp.header_to_h1_wire(&mut buf);
    String::from_utf8(buf).expect("test heads are ASCII")
}

/// What `case_header_iter` reports, as `Name: value\r\n` lines.
fn iter_lines<'a>(iter: impl Iterator<Item = (HeaderNameVariant<'a>, &'a HeaderValue)>) -> String {
    iter.map(|(name, value)| {
        format!(
            "{}: {}\r\n",
            std::str::from_utf8(name.as_slice()).expect("ASCII name"),
            value.to_str().expect("ASCII value")
        )
    })
    .collect()
}

fn map_lines(req: &RequestHeader) -> String {
    let mut out = String::new();
    req.map(|name, value| {
        out.push_str(std::str::from_utf8(name.as_slice()).expect("ASCII name"));
        out.push_str(": ");
        out.push_str(value.to_str().expect("ASCII value"));
        out.push_str("\r\n");
        Ok(())
    })
    .expect("the callback never fails");
    out
}

fn etype(err: &pingora_error::Error) -> &ErrorType {
    err.etype()
}

// === size hints and the spelling table ===

#[test]
fn size_hint_is_capped() {
    assert_eq!(header_capacity(None), 8);
    assert_eq!(header_capacity(Some(16)), 16);
    assert_eq!(header_capacity(Some(4096)), 4096);
    assert_eq!(header_capacity(Some(7777)), 4096);
    let req = RequestHeader::build("GET", b"/", Some(usize::MAX)).expect("capped hint");
    assert!(req.headers.capacity() >= 4096 && req.headers.capacity() < 32768);
}

#[test]
fn canonical_table_is_sorted_and_consistent() {
    for pair in CANONICAL.windows(2) {
        let (a, b) = (pair[0].0, pair[1].0);
        assert!((a.len(), a) < (b.len(), b), "{a} must sort before {b}");
    }
    assert!(CANONICAL.len() < usize::from(u8::MAX));
    for (lower, canonical) in CANONICAL {
        assert_eq!(canonical.to_ascii_lowercase(), *lower);
        let name = HeaderName::from_static(lower);
        assert_eq!(default_spelling(&name), *canonical);
    }
}

#[test]
fn well_known_names_are_found_in_any_case() {
    for (lower, canonical) in CANONICAL {
        for spelled in [
            lower.to_string(),
            canonical.to_string(),
            lower.to_ascii_uppercase(),
        ] {
            let known = WellKnown::find(spelled.as_bytes()).expect("a well-known name");
            assert_eq!(known.lowercase(), *lower);
            assert_eq!(known.canonical(), *canonical);
            assert_eq!(known.name(), HeaderName::from_static(lower));
        }
    }
    for other in [
        "content-lengtH2",
        "x-forwarded-fox",
        "content_length",
        "Host ",
        "",
        "Dn",
    ] {
        assert!(WellKnown::find(other.as_bytes()).is_none(), "{other}");
    }
}

#[test]
fn default_spelling_of_well_known_and_custom_names() {
    // Names that share a length and a first word with well-known ones.
    for custom in [
        "content-lxxxxxxx",
        "x-forwarded-fox",
        "hast",
        "tf",
        "accept-rangez",
    ] {
        assert_eq!(default_spelling(&HeaderName::from_static(custom)), custom);
    }
    assert_eq!(
        default_spelling(&header::CONTENT_LOCATION),
        "Content-Location"
    );
    assert_eq!(default_spelling(&header::CONTENT_LENGTH), "Content-Length");
    assert_eq!(default_spelling(&header::ETAG), "ETag");
    assert_eq!(default_spelling(&header::TE), "TE");
    assert_eq!(
        default_spelling(&header::WWW_AUTHENTICATE),
        "WWW-Authenticate"
    );
    assert_eq!(
        default_spelling(&header::SEC_WEBSOCKET_KEY),
        "Sec-WebSocket-Key"
    );
    assert_eq!(
        default_spelling(&HeaderName::from_static("x-forwarded-for")),
        "X-Forwarded-For"
    );
    assert_eq!(
        default_spelling(&HeaderName::from_static("x-custom")),
        "x-custom"
    );
}

// === CaseHeaderName ===

#[test]
fn case_header_name_conversions_keep_spelling() {
    assert_eq!("FoO".into_case_header_name().as_slice(), b"FoO");
    assert_eq!("FoO".to_string().into_case_header_name().as_slice(), b"FoO");
    assert_eq!(
        Bytes::from_static(b"X-Y")
            .into_case_header_name()
            .as_slice(),
        b"X-Y"
    );
    assert_eq!(header::SERVER.into_case_header_name().as_slice(), b"Server");
    assert_eq!((&header::ETAG).into_case_header_name().as_slice(), b"ETag");
    let custom = HeaderName::from_static("x-lower");
    assert_eq!(custom.into_case_header_name().as_slice(), b"x-lower");
    let name = CaseHeaderName::from_slice(b"Abc");
    assert_eq!(name.clone().into_case_header_name(), name);
    assert_eq!(CaseHeaderName::new("Abc".into()), name);
    assert_eq!(name.as_ref(), b"Abc");
}

#[test]
fn case_header_name_debug_escapes_bytes() {
    let name = CaseHeaderName::from_slice(b"Bad\r\nName");
    assert_eq!(format!("{name:?}"), r#"CaseHeaderName("Bad\r\nName")"#);
}

#[test]
fn header_name_variant_as_slice() {
    let name = CaseHeaderName::from_slice(b"X-A");
    assert_eq!(HeaderNameVariant::Case(&name).as_slice(), b"X-A");
    assert_eq!(HeaderNameVariant::Titled("Host").as_slice(), b"Host");
}

// === building requests ===

#[test]
fn build_sets_method_path_and_case_mode() {
    let req = RequestHeader::build("PUT", b"/a/b?c=d", None).expect("valid");
    assert_eq!(req.method, Method::PUT);
    assert_eq!(req.uri.path(), "/a/b");
    assert_eq!(req.uri.query(), Some("c=d"));
    assert_eq!(req.version, Version::HTTP_11);
    assert!(req.has_case());
    assert!(req.headers.is_empty());

    let req = RequestHeader::build_no_case(Method::DELETE, b"/", None).expect("valid");
    assert_eq!(req.method, Method::DELETE);
    assert!(!req.has_case());
}

#[test]
fn build_rejects_invalid_method_and_target() {
    let err = RequestHeader::build("GE T", b"/", None).unwrap_err();
    assert_eq!(etype(&err), &ErrorType::InvalidHTTPHeader);
    let err = RequestHeader::build("GET", b"/a b", None).unwrap_err();
    assert_eq!(etype(&err), &ErrorType::InvalidHTTPHeader);
    assert!(RequestHeader::build_no_case("GET", b"", None).is_err());
}

// === header editing and the wire ===

#[test]
fn insert_replaces_and_takes_the_new_spelling() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.insert_header("foo", "bar").expect("valid");
    req.insert_header("FoO", "Bar").expect("valid");
    assert_eq!(wire(&req), "FoO: Bar\r\n");
    assert_eq!(iter_lines(req.case_header_iter()), "FoO: Bar\r\n");
    assert_eq!(req.headers.len(), 1);

    let mut resp = ResponseHeader::build(200, None).expect("valid");
    resp.insert_header("foo", "bar").expect("valid");
    resp.insert_header("FoO", "Bar").expect("valid");
    assert_eq!(resp_wire(&resp), "FoO: Bar\r\n");
    assert_eq!(iter_lines(resp.case_header_iter()), "FoO: Bar\r\n");
}

#[test]
fn insert_keeps_the_header_in_place() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.append_header("A", "1").expect("valid");
    req.append_header("b", "2").expect("valid");
    req.append_header("B", "3").expect("valid");
    req.append_header("C", "4").expect("valid");
    req.insert_header("B".to_string(), "5").expect("valid");
    assert_eq!(wire(&req), "A: 1\r\nB: 5\r\nC: 4\r\n");
    assert!(req.spellings_in_step());
}

#[test]
fn append_keeps_every_spelling_in_order() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    assert!(!req.append_header("FoO", "Bar").expect("valid"));
    assert!(req.append_header("fOO", "bar").expect("valid"));
    assert!(!req.append_header("BAZ", "baR").expect("valid"));
    req.append_header(header::CONTENT_LENGTH, "0")
        .expect("valid");
    req.append_header("a", "b").expect("valid");
    assert_eq!(req.remove_header("a"), Some(HeaderValue::from_static("b")));
    let expected = "FoO: Bar\r\nfOO: bar\r\nBAZ: baR\r\nContent-Length: 0\r\n";
    assert_eq!(wire(&req), expected);
    assert_eq!(iter_lines(req.case_header_iter()), expected);
    assert_eq!(map_lines(&req), expected);
    assert!(req.spellings_in_step());
}

#[test]
fn interleaved_appends_group_values_by_name() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.append_header("X-A", "1").expect("valid");
    req.append_header("x-b", "2").expect("valid");
    req.append_header("x-a", "3").expect("valid");
    req.append_header("X-B", "4").expect("valid");
    assert_eq!(wire(&req), "X-A: 1\r\nx-a: 3\r\nx-b: 2\r\nX-B: 4\r\n");
    assert!(req.spellings_in_step());
}

#[test]
fn remove_returns_first_value_and_follows_the_map_order() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    for (name, value) in [("A", "1"), ("B", "2"), ("b", "3"), ("C", "4"), ("D", "5")] {
        req.append_header(name, value).expect("valid");
    }
    assert_eq!(req.remove_header("b"), Some(HeaderValue::from_static("2")));
    assert_eq!(req.remove_header("b"), None);
    assert_eq!(
        req.remove_header(&"a".to_string()),
        Some("1".parse().unwrap())
    );
    assert_eq!(req.remove_header(&HeaderName::from_static("zz")), None);
    let lines = wire(&req);
    let expected: String = req
        .headers
        .iter()
        .map(|(n, v)| format!("{}: {}\r\n", n.as_str().to_uppercase(), v.to_str().unwrap()))
        .collect();
    assert_eq!(lines, expected);
    // The spellings followed the map's reordering instead of needing the slow path.
    assert!(req.spellings_in_step());
}

#[test]
fn no_case_headers_take_default_spellings() {
    let mut req = RequestHeader::build_no_case("GET", b"/", None).expect("valid");
    req.insert_header("foo", "bar").expect("valid");
    req.insert_header("FoO", "Bar").expect("valid");
    req.append_header("content-LENGTH", "1").expect("valid");
    assert_eq!(wire(&req), "foo: Bar\r\nContent-Length: 1\r\n");
    assert_eq!(req.case_header_iter().count(), 0);
    assert_eq!(map_lines(&req), "foo: Bar\r\nContent-Length: 1\r\n");

    let mut resp = ResponseHeader::build_no_case(200, None).expect("valid");
    resp.insert_header("FoO", "Bar").expect("valid");
    resp.insert_header(header::DATE, "x").expect("valid");
    assert_eq!(resp_wire(&resp), "foo: Bar\r\nDate: x\r\n");
    assert_eq!(resp.case_header_iter().count(), 0);
    assert!(!resp.has_case());
}

#[test]
fn invalid_names_and_values_are_rejected_without_change() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.append_header("Ok", "1").expect("valid");
    for name in ["Bad Name", "a:b", "", "X\r\nY", "X\nY", "X\0"] {
        let err = req.append_header(name, "v").unwrap_err();
        assert_eq!(etype(&err), &ErrorType::InvalidHTTPHeader, "{name:?}");
        assert!(req.insert_header(name, "v").is_err(), "{name:?}");
    }
    for value in ["a\r\nInjected: 1", "a\nb", "a\rb", "a\0b"] {
        let err = req.append_header("X", value).unwrap_err();
        assert_eq!(etype(&err), &ErrorType::InvalidHTTPHeader, "{value:?}");
        assert!(req.insert_header("X", value).is_err(), "{value:?}");
        assert!(
            req.insert_header("X", value.to_string()).is_err(),
            "{value:?}"
        );
        assert!(
            req.insert_header("X", value.as_bytes()).is_err(),
            "{value:?}"
        );
    }
    assert_eq!(wire(&req), "Ok: 1\r\n");

    let mut resp = ResponseHeader::build(200, None).expect("valid");
    assert!(resp.append_header("X", "a\r\nb").is_err());
    assert!(resp.insert_header("Bad Name", "v").is_err());
    assert!(resp.headers.is_empty());
}

#[test]
fn values_accept_tab_and_obs_text() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.append_header("X", &b"a\tb\xff"[..]).expect("valid");
    let mut buf = Vec::new();
    req.header_to_h1_wire(&mut buf);
    assert_eq!(buf, b"X: a\tb\xff\r\n");
}

#[test]
fn too_many_headers_is_an_error_not_a_panic() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    let mut first_err = None;
    for i in 0..40_000u32 {
        if let Err(e) = req.append_header(format!("x-{i}"), "v") {
            first_err = Some((i, e));
            break;
        }
    }
    let (at, err) = first_err.expect("the map has a maximum size");
    assert_eq!(etype(&err), &ErrorType::InvalidHTTPHeader);
    assert!(at >= 4096);
    assert_eq!(req.headers.len(), at as usize);
    assert!(req.spellings_in_step());
}

// === DerefMut: the map is the source of truth ===

#[test]
fn headers_added_through_deref_mut_are_written() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.append_header("HOST", "a").expect("valid");
    req.headers.insert("x-new", HeaderValue::from_static("1"));
    req.headers
        .append(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    req.headers.append("host", HeaderValue::from_static("b"));
    let expected = "HOST: a\r\nHost: b\r\nx-new: 1\r\nContent-Length: 0\r\n";
    assert_eq!(wire(&req), expected);
    assert_eq!(iter_lines(req.case_header_iter()), expected);
    assert_eq!(map_lines(&req), expected);
}

#[test]
fn headers_removed_through_deref_mut_are_not_written() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    for name in ["A-One", "B-Two", "C-Three"] {
        req.append_header(name, "v").expect("valid");
    }
    req.headers.remove("a-one");
    let expected: String = req
        .headers
        .keys()
        .map(|k| match k.as_str() {
            "b-two" => "B-Two: v\r\n",
            "c-three" => "C-Three: v\r\n",
            other => panic!("unexpected header {other}"),
        })
        .collect();
    assert_eq!(wire(&req), expected);
    assert_eq!(iter_lines(req.case_header_iter()), expected);
}

#[test]
fn api_edits_after_deref_mut_drop_stale_spellings() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.append_header("Foo", "1").expect("valid");
    req.append_header("Bar", "2").expect("valid");
    req.headers.remove("foo");
    req.headers.insert("bar", HeaderValue::from_static("3"));
    req.headers.append("bar", HeaderValue::from_static("4"));
    // The stale "Foo" must not spell the new value; the value added through DerefMut
    // takes the default spelling.
    req.append_header("FOO", "5").expect("valid");
    assert_eq!(wire(&req), "Bar: 3\r\nbar: 4\r\nFOO: 5\r\n");
    assert!(req.spellings_in_step());
}

#[test]
fn values_edited_in_place_keep_their_spelling() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.append_header("X-Trace", "old").expect("valid");
    if let Some(value) = req.headers.get_mut("x-trace") {
        *value = HeaderValue::from_static("new");
    }
    assert_eq!(wire(&req), "X-Trace: new\r\n");
}

#[test]
fn deref_mut_on_responses_is_robust_too() {
    let mut resp = ResponseHeader::build(200, None).expect("valid");
    resp.append_header("Set-Cookie", "a").expect("valid");
    resp.headers
        .append(header::SET_COOKIE, HeaderValue::from_static("b"));
    resp.headers.insert("server", HeaderValue::from_static("s"));
    assert_eq!(
        resp_wire(&resp),
        "Set-Cookie: a\r\nSet-Cookie: b\r\nServer: s\r\n"
    );
    resp.remove_header("set-cookie");
    assert_eq!(resp_wire(&resp), "Server: s\r\n");
    assert!(resp.spellings_in_step());
}

// === request targets ===

#[test]
fn non_utf8_path_round_trips() {
    let raw = b"/caf\xe9/\xff?q=\x80";
    let req = RequestHeader::build("GET", raw, None).expect("valid");
    assert_eq!(req.raw_path(), raw);
    assert_eq!(req.uri.path(), "/caf\u{fffd}/\u{fffd}");
    assert_eq!(req.uri.query(), Some("q=\u{fffd}"));
    let copy = req.clone();
    assert_eq!(copy.raw_path(), raw);
}

#[test]
fn utf8_path_is_kept_only_in_the_uri() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.set_raw_path("/caf\u{e9}?x=\u{1f600}".as_bytes())
        .expect("valid");
    assert_eq!(req.raw_path(), "/caf\u{e9}?x=\u{1f600}".as_bytes());
    assert!(!req.has_raw_target());
}

#[test]
fn bytes_the_uri_rejects_are_kept_raw() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.set_raw_path(b"/a<b>`c?d=\"e\"").expect("valid");
    assert_eq!(req.raw_path(), b"/a<b>`c?d=\"e\"");
    assert_eq!(req.uri.path(), "/a%3Cb%3E%60c");
    assert_eq!(req.uri.query(), Some("d=%22e%22"));
}

#[test]
fn absolute_and_authority_forms_are_kept_raw() {
    let mut req = RequestHeader::build("GET", b"http://example.com:8080/a?b", None).expect("valid");
    assert_eq!(req.raw_path(), b"http://example.com:8080/a?b");
    assert_eq!(req.uri.host(), Some("example.com"));
    assert_eq!(req.uri.path(), "/a");

    req.set_method(Method::CONNECT);
    req.set_raw_path(b"example.com:443").expect("valid");
    assert_eq!(req.method, Method::CONNECT);
    assert_eq!(req.raw_path(), b"example.com:443");
    assert_eq!(req.uri.port_u16(), Some(443));

    req.set_raw_path(b"*").expect("valid");
    assert_eq!(req.raw_path(), b"*");
    assert!(!req.has_raw_target());
}

#[test]
fn fragments_are_dropped() {
    let req = RequestHeader::build("GET", b"/a?b#frag", None).expect("valid");
    assert_eq!(req.raw_path(), b"/a?b");
    let req = RequestHeader::build("GET", b"/\xff#frag", None).expect("valid");
    assert_eq!(req.raw_path(), b"/\xff");
}

#[test]
fn targets_that_break_the_request_line_are_rejected() {
    let mut req = RequestHeader::build("GET", b"/\xfe", None).expect("valid");
    for bad in [
        &b"/a b"[..],
        b"/a\r\nHost: evil",
        b"/a\nb",
        b"/a\0",
        b"/a\x7f",
        b"/a\tb",
        b"",
        b"#only-fragment",
    ] {
        let err = req.set_raw_path(bad).unwrap_err();
        assert_eq!(etype(&err), &ErrorType::InvalidHTTPHeader, "{bad:?}");
        assert_eq!(req.raw_path(), b"/\xfe", "unchanged after {bad:?}");
    }
    let long = [b"/".as_slice(), &[b'a'; 70_000]].concat();
    assert!(req.set_raw_path(&long).is_err());
    let long_raw = [b"/\xff".as_slice(), &[b'a'; 70_000]].concat();
    assert!(req.set_raw_path(&long_raw).is_err());
    assert_eq!(req.raw_path(), b"/\xfe");
}

#[test]
fn set_uri_replaces_a_raw_target() {
    let mut req = RequestHeader::build("GET", b"/\xff", None).expect("valid");
    req.set_uri(Uri::from_static("/new?x=1"));
    assert_eq!(req.raw_path(), b"/new?x=1");
}

#[test]
fn uri_changed_through_deref_mut_wins_over_a_raw_target() {
    let mut req = RequestHeader::build("GET", b"/\xff", None).expect("valid");
    req.uri = Uri::from_static("/other");
    assert_eq!(req.raw_path(), b"/other");
}

#[test]
fn raw_path_of_parts_without_a_path() {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    assert_eq!(RequestHeader::from(parts.clone()).raw_path(), b"/");
    parts.uri = Uri::from_static("example.com:443");
    assert_eq!(
        RequestHeader::from(parts.clone()).raw_path(),
        b"example.com:443"
    );
    parts.uri = Uri::from_static("https://example.com/p?q");
    assert_eq!(RequestHeader::from(parts).raw_path(), b"/p?q");
}

#[test]
fn file_extension_comes_from_the_last_segment() {
    let ext = |path: &[u8]| {
        let req = RequestHeader::build("GET", path, None).expect("valid");
        req.uri_file_extension().map(str::to_owned)
    };
    assert_eq!(ext(b"/static/site.css?v=2").as_deref(), Some("css"));
    assert_eq!(ext(b"/a.tar.gz").as_deref(), Some("gz"));
    assert_eq!(ext(b"/v1.2/items"), None);
    assert_eq!(ext(b"/"), None);
    assert_eq!(ext(b"/dot.").as_deref(), Some(""));
    assert_eq!(ext(b"/?file=a.txt"), None);
}

// === other request fields ===

#[test]
fn setters_for_method_version_and_end_stream() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.set_method(Method::POST);
    assert_eq!(req.method, Method::POST);
    assert_eq!(req.send_end_stream(), None);
    req.set_version(Version::HTTP_2);
    assert_eq!(req.version, Version::HTTP_2);
    assert_eq!(req.send_end_stream(), Some(true));
    req.set_send_end_stream(false);
    assert_eq!(req.send_end_stream(), Some(false));
    req.set_version(Version::HTTP_10);
    assert_eq!(req.send_end_stream(), None);
}

#[test]
fn extensions_are_reachable() {
    let mut req = RequestHeader::build("GET", b"/", None).expect("valid");
    req.extensions_mut().insert(7u32);
    assert_eq!(req.extensions.get::<u32>(), Some(&7));
    assert!(req.as_owned_parts().extensions.get::<u32>().is_some());
    let mut resp = ResponseHeader::build(200, None).expect("valid");
    resp.extensions_mut().insert("tag");
    assert_eq!(resp.extensions.get::<&str>(), Some(&"tag"));
}

#[test]
fn parts_conversions_and_clone() {
    let mut req = RequestHeader::build("POST", b"/x", None).expect("valid");
    req.append_header("X-A", "1").expect("valid");
    let parts = req.as_owned_parts();
    assert_eq!(parts.method, Method::POST);
    assert_eq!(parts.headers["x-a"], "1");

    let copy = req.clone();
    req.insert_header("X-A", "2").expect("valid");
    assert_eq!(wire(&copy), "X-A: 1\r\n");
    assert_eq!(copy.as_ref().uri, "/x");

    let back = RequestHeader::from(parts);
    assert!(!back.has_case());
    assert_eq!(wire(&back), "x-a: 1\r\n");
    let parts: http::request::Parts = req.into();
    assert_eq!(parts.headers["x-a"], "2");
}

#[test]
fn debug_shows_the_head() {
    let mut req = RequestHeader::build("GET", b"/dbg", None).expect("valid");
    req.append_header("X-Dbg", "v").expect("valid");
    let debug = format!("{req:?}");
    assert!(debug.contains("/dbg") && debug.contains("X-Dbg"), "{debug}");
    let resp = ResponseHeader::build(404, None).expect("valid");
    assert!(format!("{resp:?}").contains("404"));
}

// === responses ===

#[test]
fn response_build_and_status() {
    let mut resp = ResponseHeader::build(200, Some(2)).expect("valid");
    assert_eq!(resp.status, StatusCode::OK);
    assert!(resp.has_case());
    let err = ResponseHeader::build(1000, None).unwrap_err();
    assert_eq!(etype(&err), &ErrorType::InvalidHTTPHeader);
    assert!(ResponseHeader::build_no_case(99, None).is_err());
    resp.set_status(StatusCode::NOT_FOUND).expect("valid");
    assert_eq!(resp.status, 404);
    assert!(resp.set_status(0u16).is_err());
    assert_eq!(resp.status, 404);
    resp.set_version(Version::HTTP_10);
    assert_eq!(resp.version, Version::HTTP_10);
}

#[test]
fn reason_phrase_defaults_and_overrides() {
    let mut resp = ResponseHeader::build(200, None).expect("valid");
    assert_eq!(resp.reason_phrase(), Some("OK"));
    resp.set_reason_phrase(Some("Fine\tThanks \u{e9}"))
        .expect("valid");
    assert_eq!(resp.reason_phrase(), Some("Fine\tThanks \u{e9}"));
    assert_eq!(resp.get_reason_phrase(), Some("Fine\tThanks \u{e9}"));
    for bad in ["a\r\nb", "a\nb", "a\0", "a\x7f"] {
        let err = resp.set_reason_phrase(Some(bad)).unwrap_err();
        assert_eq!(etype(&err), &ErrorType::InvalidHTTPHeader);
        assert_eq!(resp.reason_phrase(), Some("Fine\tThanks \u{e9}"));
    }
    resp.set_reason_phrase(Some("OK")).expect("valid");
    assert!(
        !resp.has_custom_reason(),
        "the canonical phrase is not stored"
    );
    resp.set_reason_phrase(Some("Custom")).expect("valid");
    resp.set_reason_phrase(None).expect("valid");
    assert_eq!(resp.reason_phrase(), Some("OK"));
    resp.set_status(599u16).expect("valid");
    assert_eq!(resp.reason_phrase(), None);
}

#[test]
fn content_length_is_replaced() {
    let mut resp = ResponseHeader::build(200, None).expect("valid");
    resp.append_header("content-length", "1").expect("valid");
    resp.append_header("content-length", "2").expect("valid");
    resp.set_content_length(1234).expect("valid");
    assert_eq!(resp_wire(&resp), "Content-Length: 1234\r\n");
}

#[test]
fn response_parts_conversions() {
    let mut resp = ResponseHeader::build(201, None).expect("valid");
    resp.append_header("X-R", "1").expect("valid");
    let copy = resp.clone();
    assert_eq!(resp_wire(&copy), "X-R: 1\r\n");
    let parts = resp.as_owned_parts();
    assert_eq!(parts.status, 201);
    let back = ResponseHeader::from(parts);
    assert!(!back.has_case());
    assert_eq!(back.reason_phrase(), Some("Created"));
    let boxed: Box<http::response::Parts> = Box::new(resp).into();
    assert_eq!(boxed.headers["x-r"], "1");
    let parts: http::response::Parts = copy.into();
    assert_eq!(parts.status, StatusCode::CREATED);
}

#[test]
fn response_map_and_iter_agree_with_the_wire() {
    let mut resp = ResponseHeader::build(200, None).expect("valid");
    resp.append_header("Via", "1").expect("valid");
    resp.append_header("VIA", "2").expect("valid");
    resp.headers.append("via", HeaderValue::from_static("3"));
    let mut mapped = String::new();
    resp.map(|name, value| {
        mapped.push_str(std::str::from_utf8(name.as_slice()).expect("ASCII"));
        mapped.push_str(value.to_str().expect("ASCII"));
        Ok(())
    })
    .expect("never fails");
    assert_eq!(mapped, "Via1VIA2Via3");
    assert_eq!(iter_lines(resp.case_header_iter()), resp_wire(&resp));
    let err = resp
        .map(|_, _| pingora_error::Error::e_explain(ErrorType::InternalError, "stop"))
        .unwrap_err();
    assert_eq!(etype(&err), &ErrorType::InternalError);
}

#[test]
fn prelude_exports_both_heads() {
    use crate::prelude::*;
    let _req: RequestHeader = RequestHeader::build("GET", b"/", None).expect("valid");
    let _resp: ResponseHeader = ResponseHeader::build(204, None).expect("valid");
    let _map: HMap = HMap::new();
}

#[test]
fn word_wise_case_comparison_matches_std_for_every_byte_pair() {
    for x in 0..=255u8 {
        for y in 0..=255u8 {
            let expected = x.eq_ignore_ascii_case(&y);
            for (prefix, suffix) in [(0, 0), (3, 4), (8, 0), (7, 9)] {
                let make = |b: u8| {
                    let mut v = vec![b'k'; prefix];
                    v.push(b);
                    v.extend(std::iter::repeat_n(b'Z', suffix));
                    CaseHeaderName::from_slice(&v)
                };
                assert_eq!(make(x).same_name(&make(y)), expected, "{x:#x} {y:#x}");
            }
        }
    }
}

#[test]
fn spells_compares_with_the_lowercase_name() {
    let name = HeaderName::from_static("x-forwarded-for");
    assert!(CaseHeaderName::from_slice(b"X-Forwarded-For").spells(&name));
    assert!(CaseHeaderName::from_slice(b"x-forwarded-for").spells(&name));
    assert!(!CaseHeaderName::from_slice(b"X-Forwarded-Fo").spells(&name));
    assert!(!CaseHeaderName::from_slice(b"X-Forwarded-Fox").spells(&name));
    assert!(!CaseHeaderName::from_slice(b"X_Forwarded-For").spells(&name));
    assert!(CaseHeaderName::from_slice(b"HOST").spells(&header::HOST));
    assert!(!CaseHeaderName::from_slice(b"HOST").spells(&header::DATE));
}

#[test]
fn a_shared_target_reads_as_a_copied_one_and_is_not_copied_when_in_origin_form() {
    let targets: &[&[u8]] = &[
        b"/",
        b"/a/b?c=d&e",
        b"/path#frag",
        b"/{json}|\"q\"",
        b"/caf\xc3\xa9",
        b"/bad\xff",
        b"*",
        b"http://example.com/x?y",
        b"example.com:443",
        b"//double",
        b"?q",
    ];
    for &target in targets {
        let copied = RequestHeader::build("GET", target, None);
        let shared = RequestHeader::build_shared("GET", Bytes::copy_from_slice(target), None);
        let (copied, shared) = match (copied, shared) {
            (Ok(c), Ok(s)) => (c, s),
            (Err(_), Err(_)) => continue,
            (c, s) => panic!(
                "{target:?}: copied {:?} but shared {:?}",
                c.is_ok(),
                s.is_ok()
            ),
        };
        assert_eq!(
            copied.uri,
            shared.uri,
            "{:?}",
            target.escape_ascii().to_string()
        );
        assert_eq!(copied.raw_path(), shared.raw_path());
        assert_eq!(copied.has_raw_target(), shared.has_raw_target());
    }

    let head = Bytes::from_static(b"GET /a/b?c=d HTTP/1.1\r\n");
    let req = RequestHeader::build_shared("GET", head.slice(4..12), None).unwrap();
    let path = req.uri.path_and_query().unwrap().as_str();
    assert_eq!(path, "/a/b?c=d");
    assert!(
        head.as_ptr_range().contains(&path.as_ptr()),
        "the URI copied the target"
    );
    assert!(RequestHeader::build_shared("BAD METHOD", head.slice(4..12), None).is_err());
}
