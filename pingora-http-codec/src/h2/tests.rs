//! Tests of the HTTP/2 head conversions.

use super::*;

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build(method, path.as_bytes(), None).unwrap();
    for (name, value) in headers {
        req.append_header(name.to_string(), *value).unwrap();
    }
    req
}

#[test]
fn host_becomes_authority_and_connection_fields_go() {
    let req = request(
        "POST",
        "/a/b?c=d",
        &[
            ("Host", "example.com:8443"),
            ("Connection", "keep-alive, X-Hop"),
            ("X-Hop", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "foo"),
            ("TE", "trailers"),
            ("X-Kept", "yes"),
        ],
    );
    let out = to_h2_request(&req, true).unwrap();
    assert_eq!(out.uri().to_string(), "https://example.com:8443/a/b?c=d");
    assert_eq!(out.version(), Version::HTTP_2);
    let names: Vec<_> = out.headers().keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["te", "x-kept"]);
}

#[test]
fn te_other_than_trailers_is_dropped_and_scheme_follows_tls() {
    let req = request("GET", "/", &[("Host", "h"), ("TE", "gzip")]);
    let out = to_h2_request(&req, false).unwrap();
    assert_eq!(out.uri().scheme_str(), Some("http"));
    assert!(out.headers().get("te").is_none());
}

#[test]
fn authority_from_the_uri_without_host() {
    let req = request("GET", "http://from-uri.test/x", &[]);
    let out = to_h2_request(&req, false).unwrap();
    assert_eq!(out.uri().authority().unwrap().as_str(), "from-uri.test");
    assert_eq!(out.uri().path(), "/x");
    // Without any authority the request goes out the way h2 forwards HTTP/1.0 ones.
    let out = to_h2_request(&request("GET", "/x", &[]), false).unwrap();
    assert_eq!(out.version(), Version::HTTP_11);
}

#[test]
fn connect_names_only_the_authority() {
    let req = request("CONNECT", "/", &[("Host", "tunnel.test:443")]);
    let out = to_h2_request(&req, false).unwrap();
    assert_eq!(out.uri().to_string(), "tunnel.test:443");
}

#[test]
fn a_head_without_framing_has_no_body() {
    assert!(request_has_no_body(&request("GET", "/", &[])));
    assert!(request_has_no_body(&request(
        "POST",
        "/",
        &[("Content-Length", "0")]
    )));
    assert!(!request_has_no_body(&request(
        "POST",
        "/",
        &[("Content-Length", "3")]
    )));
    assert!(!request_has_no_body(&request(
        "POST",
        "/",
        &[("Transfer-Encoding", "chunked")]
    )));
}

#[test]
fn trailers_lose_connection_fields() {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", "0".parse().unwrap());
    trailers.insert("te", "trailers".parse().unwrap());
    trailers.insert("connection", "close".parse().unwrap());
    trailers.insert("host", "h".parse().unwrap());
    strip_request_trailers(&mut trailers);
    let names: Vec<_> = trailers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["grpc-status"]);
}

fn h2_parts(uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
    let mut builder = http::Request::builder()
        .method("GET")
        .uri(uri)
        .version(Version::HTTP_2);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).unwrap().into_parts().0
}

#[test]
fn host_from_authority_and_cookies_joined() {
    let req = request_from_h2(h2_parts(
        "https://example.com:8443/p?q",
        &[("cookie", "a=1"), ("cookie", "b=2"), ("x-other", "1")],
    ));
    assert_eq!(req.headers["host"], "example.com:8443");
    assert_eq!(req.headers.get_all("cookie").iter().count(), 1);
    assert_eq!(req.headers["cookie"], "a=1; b=2");
    assert_eq!(req.version, Version::HTTP_2);
    assert_eq!(req.raw_path(), b"/p?q");

    // A Host the client sent is kept; a single cookie is left alone.
    let req = request_from_h2(h2_parts(
        "https://Authority.test/",
        &[("host", "authority.TEST"), ("cookie", "a=1")],
    ));
    assert_eq!(req.headers["host"], "authority.TEST");
    assert_eq!(req.headers["cookie"], "a=1");
}

#[test]
fn host_must_agree_with_authority() {
    let check = |uri: &str, hosts: &[&str]| {
        let fields: Vec<(&str, &str)> = hosts.iter().map(|h| ("host", *h)).collect();
        check_request_host(&h2_parts(uri, &fields))
    };
    // No Host, or the same authority (case aside): fine.
    assert_eq!(check("https://a.test/", &[]), Ok(()));
    assert_eq!(check("https://a.test:8443/", &["A.test:8443"]), Ok(()));
    // Host without :authority (a client may send it instead): fine when valid.
    assert_eq!(check("/p", &["a.test"]), Ok(()));
    // Malformed (RFC 9113 section 8.3.1), and our stricter rules.
    for (uri, hosts) in [
        ("https://a.test/", &["b.test"][..]),
        ("https://a.test/", &["a.test:443"]),
        ("https://a.test:8443/", &["a.test"]),
        ("https://a.test/", &["a.test", "a.test"]),
        ("/p", &["a.test", "b.test"]),
        ("/p", &["a b"]),
        ("/p", &["u@a.test"]),
        ("/p", &[""]),
    ] {
        assert!(check(uri, hosts).is_err(), "{uri} {hosts:?}");
    }
}

#[test]
fn responses_lose_connection_fields() {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for (name, value) in [
        ("Connection", "keep-alive"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "x"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "close"),
        ("TE", "trailers"),
        ("X-Kept", "1"),
    ] {
        resp.append_header(name, value).unwrap();
    }
    prepare_h2_response(&mut resp);
    let names: Vec<_> = resp.headers.keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["x-kept"]);
    assert_eq!(resp.version, Version::HTTP_2);

    let parts = http::Response::builder()
        .status(204)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    let resp = response_from_h2(parts);
    assert_eq!(resp.status, StatusCode::NO_CONTENT);
    assert_eq!(resp.version, Version::HTTP_2);
}

#[test]
fn response_body_presence() {
    let ok = ResponseHeader::build(200, None).unwrap();
    assert!(response_has_no_body(&Method::HEAD, &ok));
    assert!(!response_has_no_body(&Method::GET, &ok));
    for status in [204, 304] {
        let resp = ResponseHeader::build(status, None).unwrap();
        assert!(response_has_no_body(&Method::GET, &resp), "{status}");
    }
    let mut empty = ResponseHeader::build(200, None).unwrap();
    empty.insert_header("Content-Length", "0").unwrap();
    assert!(response_has_no_body(&Method::GET, &empty));
    empty.insert_header("Content-Length", "1").unwrap();
    assert!(!response_has_no_body(&Method::GET, &empty));
}

#[test]
fn pseudo_h1_head() {
    let mut req = RequestHeader::build("GET", b"/a?b", None).unwrap();
    req.append_header("Host", "example.com").unwrap();
    req.append_header("X-Case", "1").unwrap();
    assert_eq!(
        &pseudo_raw_h1_request_header(&req)[..],
        b"GET /a?b HTTP/2\r\nHost: example.com\r\nX-Case: 1\r\n\r\n"
    );
}
