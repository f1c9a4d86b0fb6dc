//! Turning the client's request head into the upstream's, and the upstream's response head into
//! the client's (RFC 9110 section 7.6.1: hop-by-hop fields describe one connection and are not
//! forwarded).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use pingora_http::{RequestHeader, ResponseHeader};

/// Hop-by-hop fields removed from every forwarded message. `Transfer-Encoding` is not here: the
/// framing code removes or rewrites it.
static HOP_BY_HOP: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::UPGRADE,
];

/// The field names listed by the `Connection` fields of `headers`, which are hop-by-hop too.
fn connection_options(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        push_connection_options(value, &mut names);
    }
    names
}

/// Adds the field names one `Connection` field `value` lists to `names`. The usual tokens
/// (`close`, `keep-alive`, `upgrade`) name no other field worth a lookup.
fn push_connection_options(value: &HeaderValue, names: &mut Vec<HeaderName>) {
    for token in value.as_bytes().split(|&b| b == b',') {
        let token = token.trim_ascii();
        let usual = [&b"close"[..], b"keep-alive", b"upgrade"]
            .iter()
            .any(|usual| token.eq_ignore_ascii_case(usual));
        if token.is_empty() || usual {
            continue;
        }
        if let Ok(name) = HeaderName::from_bytes(token) {
            if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
                names.push(name);
            }
        }
    }
}

/// Whether `headers` ask to switch protocols (`Connection: upgrade` plus `Upgrade`).
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers.get_all(header::CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
        })
}

/// The hop-by-hop fields of `headers`, to remove; `Connection` and `Upgrade` are spared when
/// `keep_upgrade`.
fn hop_by_hop_names(headers: &HeaderMap, keep_upgrade: bool) -> Vec<HeaderName> {
    // One pass over the fields, compared with the (standard) hop-by-hop names, is cheaper
    // than a lookup for each of them; nothing is allocated when there is nothing to remove.
    let mut names: Vec<HeaderName> = Vec::new();
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(name) {
            continue;
        }
        if name == header::CONNECTION {
            push_connection_options(value, &mut names);
        }
        let spared = keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE);
        if !spared && !names.contains(name) {
            names.push(name.clone());
        }
    }
    if keep_upgrade {
        names.retain(|n| n != header::UPGRADE && n != header::CONNECTION);
    }
    names
}

/// The request head to send upstream for the client's `req`: HTTP/1.1, hop-by-hop fields
/// removed (an upgrade request keeps `Connection: upgrade` and `Upgrade`), a body without a
/// length sent chunked, `TE: trailers` kept.
pub(crate) fn upstream_request(req: &RequestHeader, body_expected: bool) -> RequestHeader {
    let mut up = req.clone();
    let upgrade = req.version == Version::HTTP_11 && is_upgrade(&req.headers);
    let te_trailers = req
        .headers
        .get(header::TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for name in hop_by_hop_names(&req.headers, upgrade) {
        up.remove_header(&name);
    }
    if upgrade {
        let _ = up.insert_header(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if te_trailers {
        let _ = up.insert_header(header::TE, HeaderValue::from_static("trailers"));
    }
    up.set_version(Version::HTTP_11);
    if let Some(origin_form) = origin_form(req) {
        // The parser made the target's authority the Host (RFC 9112 section 3.2.2); the
        // upstream gets the target in origin-form, as an origin server expects.
        let _ = up.set_raw_path(&origin_form);
    }
    if up.method != Method::CONNECT
        && body_expected
        && !up.headers.contains_key(header::CONTENT_LENGTH)
        && !up.headers.contains_key(header::TRANSFER_ENCODING)
    {
        let _ = up.insert_header(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
    if !up.headers.contains_key(header::HOST) {
        if let Some(authority) = req.uri.authority() {
            if let Ok(host) = HeaderValue::from_str(authority.as_str()) {
                let _ = up.insert_header(header::HOST, host);
            }
        }
    }
    up
}

/// The origin-form (path and query) of an absolute-form request target, `None` for any other
/// form. An empty path becomes `/` (RFC 9112 section 3.2.1).
fn origin_form(req: &RequestHeader) -> Option<Vec<u8>> {
    if req.uri.scheme().is_none() || req.method == Method::CONNECT {
        return None;
    }
    let target = req.raw_path();
    let after_scheme = target.windows(3).position(|w| w == b"://")? + 3;
    let rest = &target[after_scheme..];
    let path_start = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let path = &rest[path_start..];
    let mut origin = Vec::with_capacity(path.len() + 1);
    if !path.starts_with(b"/") {
        origin.push(b'/');
    }
    origin.extend_from_slice(path);
    Some(origin)
}

/// Fields that must not be sent as request trailers (RFC 9110 section 6.5.1): framing, routing,
/// hop-by-hop, and those that decide how the body is read or the request handled. They are
/// dropped rather than passed on, as an upstream might act on them as if they were in the head.
static NOT_TRAILERS: [HeaderName; 19] = [
    header::TRANSFER_ENCODING,
    header::CONTENT_LENGTH,
    header::HOST,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::UPGRADE,
    header::TRAILER,
    header::CONTENT_ENCODING,
    header::CONTENT_TYPE,
    header::CONTENT_RANGE,
    header::EXPECT,
    header::RANGE,
    header::MAX_FORWARDS,
    header::CACHE_CONTROL,
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
];

/// The client's request `trailers` as they go upstream: the fields listed in [`NOT_TRAILERS`]
/// and those the trailers' own `Connection` would name are removed. `None` if nothing is left.
pub(crate) fn upstream_trailers(mut trailers: HeaderMap) -> Option<HeaderMap> {
    for name in connection_options(&trailers) {
        trailers.remove(name);
    }
    for name in &NOT_TRAILERS {
        trailers.remove(name);
    }
    (!trailers.is_empty()).then_some(trailers)
}

/// Prepares the upstream's response head `resp` for the client: hop-by-hop fields removed
/// (kept for a 101), and a body without a length made chunked so that the client's connection
/// can be kept.
pub(crate) fn downstream_response(resp: &mut ResponseHeader, request_method: &Method) {
    let switching = resp.status == StatusCode::SWITCHING_PROTOCOLS;
    let names = hop_by_hop_names(&resp.headers, switching);
    for name in names {
        resp.remove_header(&name);
    }
    resp.set_version(Version::HTTP_11);
    let bodiless = resp.status.is_informational()
        || resp.status == StatusCode::NO_CONTENT
        || resp.status == StatusCode::NOT_MODIFIED
        || request_method == Method::HEAD
        || (request_method == Method::CONNECT && resp.status.is_success());
    if !bodiless
        && !resp.headers.contains_key(header::CONTENT_LENGTH)
        && !resp.headers.contains_key(header::TRANSFER_ENCODING)
    {
        let _ = resp.insert_header(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        for (n, v) in headers {
            r.append_header(n.to_string(), *v).unwrap();
        }
        r
    }

    #[test]
    fn absolute_form_goes_upstream_in_origin_form() {
        for (target, expected) in [
            (&b"http://h/p?q"[..], &b"/p?q"[..]),
            (b"http://h:8080", b"/"),
            (b"http://h?q", b"/?q"),
            (b"https://h/a%20b/", b"/a%20b/"),
            (b"/already", b"/already"),
        ] {
            let mut r = RequestHeader::build("GET", target, None).unwrap();
            r.append_header("Host", "h").unwrap();
            let up = upstream_request(&r, false);
            assert_eq!(
                up.raw_path(),
                expected,
                "{:?}",
                String::from_utf8_lossy(target)
            );
            assert_eq!(up.headers["host"], "h");
        }
        let connect = RequestHeader::build("CONNECT", b"h:443", None).unwrap();
        assert_eq!(upstream_request(&connect, false).raw_path(), b"h:443");
    }

    #[test]
    fn request_hop_by_hop_removed() {
        let r = req(&[
            ("Host", "a"),
            ("Connection", "close, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "gzip"),
            ("X-Kept", "yes"),
        ]);
        let up = upstream_request(&r, false);
        let names: Vec<_> = up.headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host", "x-kept"]);
        assert_eq!(up.version, Version::HTTP_11);
    }

    #[test]
    fn upgrade_kept_and_te_trailers_kept() {
        let r = req(&[
            ("Host", "a"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("TE", "trailers"),
        ]);
        let up = upstream_request(&r, false);
        assert_eq!(up.headers["connection"], "upgrade");
        assert_eq!(up.headers["upgrade"], "websocket");
        assert_eq!(up.headers["te"], "trailers");
    }

    #[test]
    fn body_without_length_is_chunked_upstream() {
        let up = upstream_request(&req(&[("Host", "a")]), true);
        assert_eq!(up.headers["transfer-encoding"], "chunked");
        let up = upstream_request(&req(&[("Host", "a"), ("Content-Length", "3")]), true);
        assert!(up.headers.get("transfer-encoding").is_none());
    }

    #[test]
    fn forbidden_trailers_dropped() {
        let mut t = HeaderMap::new();
        for (name, value) in [
            ("transfer-encoding", "chunked"),
            ("content-length", "9"),
            ("host", "evil"),
            ("connection", "x-hop"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("trailer", "x-sum"),
            ("authorization", "secret"),
            ("x-sum", "ab"),
            ("grpc-status", "0"),
        ] {
            t.append(name, HeaderValue::from_static(value));
        }
        let up = upstream_trailers(t).expect("some fields are left");
        let names: Vec<_> = up.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-sum", "grpc-status"]);
        let mut only_bad = HeaderMap::new();
        only_bad.insert(header::CONTENT_LENGTH, HeaderValue::from_static("1"));
        assert!(upstream_trailers(only_bad).is_none());
    }

    #[test]
    fn response_made_chunked_unless_bodiless() {
        let mut r = ResponseHeader::build(200, None).unwrap();
        r.insert_header("Connection", "close").unwrap();
        downstream_response(&mut r, &Method::GET);
        assert_eq!(r.headers["transfer-encoding"], "chunked");
        assert!(r.headers.get("connection").is_none());
        let mut r = ResponseHeader::build(200, None).unwrap();
        downstream_response(&mut r, &Method::HEAD);
        assert!(r.headers.get("transfer-encoding").is_none());
        let mut r = ResponseHeader::build(304, None).unwrap();
        downstream_response(&mut r, &Method::GET);
        assert!(r.headers.get("transfer-encoding").is_none());
    }
}
