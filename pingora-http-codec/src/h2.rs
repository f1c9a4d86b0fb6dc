//! HTTP/2 message heads as they meet HTTP/1 ones (RFC 9113 section 8): which fields HTTP/2
//! forbids, how `Host` and `:authority` map onto each other, how cookies are split and joined,
//! and when a head says no body follows.
//!
//! Frames, HPACK and streams are the `h2` crate's; this module only converts between
//! `pingora-http`'s heads and the `http` types `h2` takes and gives.

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use pingora_error::{ErrorType, OrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};

/// Request fields that describe a connection, which HTTP/2 forbids (RFC 9113 section 8.2.2),
/// and `Host`, which becomes `:authority`.
static NOT_FORWARDED: [HeaderName; 6] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

/// Response fields that describe a connection, which HTTP/2 forbids (RFC 9113 section 8.2.2).
static CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
];

// === requests sent over HTTP/2 (client side) ===

/// The `http` request to send over HTTP/2 for `req`: `:authority` from `Host` (or from the URI
/// when there is no `Host`), the scheme `https` when `tls` and `http` otherwise, and the fields
/// HTTP/2 forbids (`Connection` and those it lists, `Transfer-Encoding`, `Upgrade`,
/// `Keep-Alive`, `Proxy-Connection`, a `TE` other than `trailers`) removed. A CONNECT request
/// names only the authority (RFC 9113 section 8.5).
///
/// # Errors
/// [`ErrorType::InvalidHTTPHeader`] when the request target cannot be expressed in HTTP/2.
pub fn to_h2_request(req: &RequestHeader, tls: bool) -> Result<http::Request<()>> {
    let authority = req
        .headers
        .get(header::HOST)
        .map(|h| h.as_bytes())
        .filter(|h| !h.is_empty())
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()));
    let path = req
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .as_bytes();
    let mut builder = Uri::builder();
    let mut version = Version::HTTP_2;
    match authority {
        Some(authority) if req.method == Method::CONNECT => builder = builder.authority(authority),
        Some(authority) => {
            builder = builder
                .scheme(if tls { "https" } else { "http" })
                .authority(authority)
                .path_and_query(path);
        }
        None => {
            // Without an authority `h2` sends the request the way it forwards HTTP/1.0 ones.
            version = Version::HTTP_11;
            builder = builder.path_and_query(path);
        }
    }
    let uri = builder.build().or_err(
        ErrorType::InvalidHTTPHeader,
        "request target cannot be sent over HTTP/2",
    )?;
    let mut headers = HeaderMap::with_capacity(req.headers.len());
    let listed = connection_options(&req.headers);
    for (name, value) in req.headers.iter() {
        if NOT_FORWARDED.contains(name) || listed.contains(name) {
            continue;
        }
        if name == header::TE && !value.as_bytes().eq_ignore_ascii_case(b"trailers") {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    let mut request = http::Request::new(());
    *request.method_mut() = req.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Removes from request `trailers` the fields HTTP/2 forbids or that make no sense in a
/// trailer section: the connection-specific ones, `Host` and `TE`.
pub fn strip_request_trailers(trailers: &mut HeaderMap) {
    for name in NOT_FORWARDED.iter().chain([&header::TE]) {
        trailers.remove(name);
    }
}

/// The field names a `Connection` field lists (hop-by-hop too).
fn connection_options(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .collect()
}

/// Whether a request head says no body follows: neither `Content-Length` (other than 0) nor
/// `Transfer-Encoding`, as HTTP/1 frames requests.
#[inline]
pub fn request_has_no_body(req: &RequestHeader) -> bool {
    let length = req.headers.get(header::CONTENT_LENGTH);
    !req.headers.contains_key(header::TRANSFER_ENCODING)
        && length.is_none_or(|v: &HeaderValue| v.as_bytes() == b"0")
}

/// The response head an HTTP/2 response gives: its parts, with the version HTTP/2.
#[inline]
pub fn response_from_h2(parts: http::response::Parts) -> ResponseHeader {
    let mut header = ResponseHeader::from(parts);
    header.set_version(Version::HTTP_2);
    header
}

// === requests received over HTTP/2 (server side) ===

/// Checks the `Host` of a request received over HTTP/2 against its `:authority`. RFC 9113
/// section 8.3.1: a request with both must carry the same value in each, otherwise it is
/// malformed. We also refuse several `Host` fields and a `Host` that is not a valid
/// `uri-host [ ":" port ]` (as for HTTP/1, see [`is_valid_host`](crate::h1::fields::is_valid_host)),
/// so that what routes a request (`:authority`, or `Host` when there is no `:authority`) is
/// never ambiguous.
///
/// # Errors
/// Why the request is malformed; the server resets its stream with `PROTOCOL_ERROR`.
pub fn check_request_host(parts: &http::request::Parts) -> std::result::Result<(), &'static str> {
    let mut hosts = parts.headers.get_all(header::HOST).iter();
    let Some(host) = hosts.next() else {
        return Ok(());
    };
    if hosts.next().is_some() {
        return Err("several Host fields");
    }
    if !crate::h1::fields::is_valid_host(host.as_bytes()) {
        return Err("an invalid Host");
    }
    match parts.uri.authority() {
        // Host names are case-insensitive (RFC 3986 section 3.2.2).
        Some(authority)
            if !authority
                .as_str()
                .as_bytes()
                .eq_ignore_ascii_case(host.as_bytes()) =>
        {
            Err("a Host that differs from :authority")
        }
        _ => Ok(()),
    }
}

/// The request head an HTTP/2 request gives: `Host` filled from `:authority` when the client
/// sent none, and the `cookie` fields HTTP/2 clients send one per cookie joined into the single
/// field HTTP/1 expects (RFC 9113 section 8.2.3). The version stays HTTP/2.
pub fn request_from_h2(parts: http::request::Parts) -> RequestHeader {
    let mut request = RequestHeader::from(parts);
    if !request.headers.contains_key(header::HOST) {
        let authority = request.uri.authority().map(|a| a.as_str().to_owned());
        if let Some(authority) = authority {
            // An authority is always a valid field value.
            let _ = request.insert_header(header::HOST, authority);
        }
    }
    join_cookies(&mut request.headers);
    request
}

/// Joins several `cookie` fields into one, separated by `; ` (RFC 9113 section 8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut cookies = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (cookies.next(), cookies.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for value in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// Prepares a final response head to be sent over HTTP/2: removes the fields HTTP/2 forbids
/// (`Connection`, `Transfer-Encoding`, `Upgrade`, `Keep-Alive`, `Proxy-Connection`, `TE`) and
/// sets the version to HTTP/2.
pub fn prepare_h2_response(header: &mut ResponseHeader) {
    for name in &CONNECTION_SPECIFIC {
        header.remove_header(name);
    }
    header.remove_header(&header::TE);
    header.set_version(Version::HTTP_2);
}

/// The request head `req` in HTTP/1 wire form with `HTTP/2` as the version, for logs and
/// caches keyed on raw heads.
pub fn pseudo_raw_h1_request_header(req: &RequestHeader) -> Bytes {
    let mut out = BytesMut::with_capacity(64 + req.headers.len() * 32);
    out.put_slice(req.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(req.raw_path());
    out.put_slice(b" HTTP/2\r\n");
    req.header_to_h1_wire(&mut out);
    out.put_slice(b"\r\n");
    out.freeze()
}

/// Whether a response to `method` with `status` and `header` can carry no body, so its head
/// may end the stream.
#[inline]
pub fn response_has_no_body(method: &Method, header: &ResponseHeader) -> bool {
    *method == Method::HEAD
        || header.status == StatusCode::NO_CONTENT
        || header.status == StatusCode::NOT_MODIFIED
        || header
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0")
}

#[cfg(test)]
mod tests;
