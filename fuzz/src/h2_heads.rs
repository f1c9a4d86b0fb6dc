//! The HTTP/1 <-> HTTP/2 head conversions of `pingora_http_codec::h2`: a request sent with
//! `to_h2_request` and received with `request_from_h2` keeps its method, target, authority
//! and end-to-end fields and loses the connection-specific ones; a response prepared with
//! `prepare_h2_response` has no field HTTP/2 forbids.

use http::{header, HeaderName, Method, Version};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_http_codec::h2::{
    prepare_h2_response, pseudo_raw_h1_request_header, request_from_h2, request_has_no_body,
    response_from_h2, to_h2_request,
};

use crate::{pick_name, pick_value, Input};

const METHODS: [&str; 5] = ["GET", "POST", "CONNECT", "HEAD", "DELETE"];
const TARGETS: [&str; 5] = [
    "/",
    "/p?q=1",
    "h.example:443",
    "http://u.example:8080/x",
    "*",
];

/// Fields that never cross into HTTP/2 (RFC 9113 section 8.2.2), `Host` aside.
const FORBIDDEN: [&str; 5] = [
    "connection",
    "transfer-encoding",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    if mode & 1 == 0 {
        check_request(&mut input, mode & 2 != 0);
    } else {
        check_response(&mut input);
    }
}

fn check_request(input: &mut Input<'_>, tls: bool) {
    let method = METHODS[usize::from(input.byte()) % METHODS.len()];
    let target = match input.byte() % 8 {
        n @ 0..=4 => TARGETS[usize::from(n)].as_bytes(),
        _ => input.slice8(),
    };
    let Ok(mut req) = RequestHeader::build(method, target, None) else {
        return;
    };
    while !input.is_empty() {
        let name = pick_name(input);
        let value = pick_value(input);
        let _ = req.append_header(bytes::Bytes::from(name), value.as_slice());
    }
    // The same bytes in HTTP/1 form, for logs: always the method, target and every field.
    let pseudo = pseudo_raw_h1_request_header(&req);
    assert!(pseudo.starts_with(req.method.as_str().as_bytes()));
    assert!(pseudo.ends_with(b"\r\n\r\n"));
    let _ = request_has_no_body(&req);

    let Ok(sent) = to_h2_request(&req, tls) else {
        return;
    };
    for name in FORBIDDEN.iter().chain(&["host"]) {
        assert!(
            !sent.headers().contains_key(*name),
            "{name} sent over HTTP/2"
        );
    }
    for te in sent.headers().get_all(header::TE) {
        assert!(te.as_bytes().eq_ignore_ascii_case(b"trailers"));
    }
    let host = req.headers.get(header::HOST).filter(|h| !h.is_empty());
    if let Some(host) = host {
        assert_eq!(
            sent.uri().authority().map(|a| a.as_str().as_bytes()),
            Some(host.as_bytes())
        );
    }
    if sent.version() == Version::HTTP_2 && req.method != Method::CONNECT {
        assert_eq!(
            sent.uri().scheme_str(),
            Some(if tls { "https" } else { "http" })
        );
    }
    let listed = listed_by_connection(&req);

    // What the server side makes of it (as `h2` would hand it over).
    let (parts, ()) = sent.clone().into_parts();
    let received = request_from_h2(parts);
    assert_eq!(received.method, req.method);
    assert_eq!(received.uri, *sent.uri());
    if let Some(authority) = sent.uri().authority() {
        assert!(received.headers.contains_key(header::HOST));
        let host = received.headers.get(header::HOST).expect("checked");
        assert_eq!(
            host.as_bytes(),
            authority.as_str().as_bytes(),
            "Host is :authority"
        );
    }
    if req.method != Method::CONNECT && sent.uri().authority().is_some() {
        let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
        assert_eq!(
            received.uri.path_and_query().map(|p| p.as_str()),
            Some(path)
        );
    }
    // Every end-to-end field arrives, values in order (cookies joined into one).
    for (name, _) in req.headers.iter() {
        let forwarded = !FORBIDDEN.contains(&name.as_str())
            && name != header::HOST
            && name != header::TE
            && !listed.contains(name);
        if !forwarded {
            continue;
        }
        let before: Vec<&[u8]> = req
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        let after: Vec<&[u8]> = received
            .headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        if name == header::COOKIE && before.len() > 1 {
            assert_eq!(after, [before.join(&b"; "[..]).as_slice()]);
        } else {
            assert_eq!(before, after, "{name} changed on the way");
        }
    }
}

/// The names the request's `Connection` fields list.
fn listed_by_connection(req: &RequestHeader) -> Vec<HeaderName> {
    req.headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .collect()
}

fn check_response(input: &mut Input<'_>) {
    let code = 100 + input.u16() % 900;
    let mut resp = ResponseHeader::build(code, None).expect("100..=999");
    while !input.is_empty() {
        let name = pick_name(input);
        let value = pick_value(input);
        let _ = resp.append_header(bytes::Bytes::from(name), value.as_slice());
    }
    let before = resp.headers.clone();
    prepare_h2_response(&mut resp);
    assert_eq!(resp.version, Version::HTTP_2);
    for name in FORBIDDEN.iter().chain(&["te"]) {
        assert!(
            !resp.headers.contains_key(*name),
            "{name} left in an HTTP/2 response"
        );
    }
    for (name, value) in before.iter() {
        if !FORBIDDEN.contains(&name.as_str()) && name != header::TE {
            assert!(
                resp.headers.get_all(name).iter().any(|v| v == value),
                "{name} lost"
            );
        }
    }
    let back = response_from_h2(resp.as_owned_parts());
    assert_eq!(back.status, resp.status);
    assert_eq!(back.version, Version::HTTP_2);
    assert_eq!(back.headers, resp.headers);
}
