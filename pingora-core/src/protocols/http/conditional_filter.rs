//! Conditional requests (RFC 9110 section 13) under the names Pingora gives them: whether a
//! response is answered with 304 Not Modified, weak entity-tag validation, HTTP dates of
//! request and response fields, and turning a response into a 304.
//!
//! The rules are those of [`pingora_http::conditional`], which the cache uses too.

use http::header::{self, AsHeaderName};
use http::StatusCode;
use httpdate::HttpDate;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::conditional::{self, EntityTag};
use pingora_http::{RequestHeader, ResponseHeader};

/// Whether `resp`, the response to `req`, may be replaced by 304 Not Modified (RFC 9110
/// section 13.2.2). Only a 200 is, and only for GET or HEAD: with `If-None-Match`, when one
/// of its members weakly matches the response's `ETag` (or is `*`), `If-Modified-Since` then
/// being ignored; else with a valid `If-Modified-Since`, when the response's `Last-Modified`
/// (or, without one, its `Date`) is not later.
///
/// Unlike Pingora's, other methods never get a 304 here: for them a matching `If-None-Match`
/// calls for 412 (section 13.1.2), which is the application's to send.
pub fn not_modified_filter(req: &RequestHeader, resp: &ResponseHeader) -> bool {
    conditional::not_modified(&req.method, &req.headers, resp)
}

/// Whether the `If-None-Match` field value `input_etag_header` (a list of entity tags, or
/// `*`) weakly matches the entity tag `target_etag` (RFC 9110 section 8.8.3.2). A target
/// that is not a valid entity tag matches only `*`.
pub fn weak_validate_etag(input_etag_header: &[u8], target_etag: &[u8]) -> bool {
    let target = EntityTag::parse(target_etag);
    conditional::none_match_line_matches(input_etag_header, target.as_ref())
}

/// The request field `header_name` as an HTTP date; `None` without the field.
///
/// # Errors
///
/// [`ErrorType::InvalidHTTPHeader`] if the field is not an HTTP date.
pub fn req_header_as_http_date<H: AsHeaderName>(
    req: &RequestHeader,
    header_name: H,
) -> Result<Option<HttpDate>> {
    req.headers.get(header_name).map(as_http_date).transpose()
}

/// The response field `header_name` as an HTTP date; `None` without the field.
///
/// # Errors
///
/// [`ErrorType::InvalidHTTPHeader`] if the field is not an HTTP date.
pub fn resp_header_as_http_date<H: AsHeaderName>(
    resp: &ResponseHeader,
    header_name: H,
) -> Result<Option<HttpDate>> {
    resp.headers.get(header_name).map(as_http_date).transpose()
}

fn as_http_date(value: &http::HeaderValue) -> Result<HttpDate> {
    conditional::parse_http_date(value)
        .map(HttpDate::from)
        .ok_or_else(|| {
            Error::explain(
                ErrorType::InvalidHTTPHeader,
                format!(
                    "not an HTTP date: {:?}",
                    String::from_utf8_lossy(value.as_bytes())
                ),
            )
        })
}

/// Turns `resp` into a 304 Not Modified in place: the status, and without the fields that
/// describe a body it no longer has (`Content-Length`, `Content-Type`, `Content-Encoding`,
/// `Transfer-Encoding`, `Accept-Ranges`, `Content-Range`); the other fields, which may
/// update a cache (RFC 9110 section 15.4.5), stay.
pub fn to_304(resp: &mut ResponseHeader) {
    // 304 is a valid status: setting it cannot fail.
    let _ = resp.set_status(StatusCode::NOT_MODIFIED);
    for name in [
        header::CONTENT_LENGTH,
        header::CONTENT_TYPE,
        header::CONTENT_ENCODING,
        header::TRANSFER_ENCODING,
        header::ACCEPT_RANGES,
        header::CONTENT_RANGE,
    ] {
        resp.remove_header(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(fields: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        for (name, value) in fields {
            req.append_header(name.to_string(), *value).unwrap();
        }
        req
    }

    fn response(status: u16, fields: &[(&str, &str)]) -> ResponseHeader {
        let mut resp = ResponseHeader::build(status, None).unwrap();
        for (name, value) in fields {
            resp.append_header(name.to_string(), *value).unwrap();
        }
        resp
    }

    #[test]
    fn etags_and_dates_decide_a_304() {
        let resp = response(
            200,
            &[
                ("etag", "W/\"v1\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
        );
        assert!(not_modified_filter(
            &request(&[("if-none-match", "\"v0\", \"v1\"")]),
            &resp
        ));
        assert!(not_modified_filter(
            &request(&[("if-none-match", "*")]),
            &resp
        ));
        // If-None-Match decides alone, even when If-Modified-Since would match.
        let both = request(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ]);
        assert!(!not_modified_filter(&both, &resp));
        let since = request(&[("if-modified-since", "Mon, 07 Nov 1994 00:00:00 GMT")]);
        assert!(not_modified_filter(&since, &resp));
        let before = request(&[("if-modified-since", "Sat, 05 Nov 1994 00:00:00 GMT")]);
        assert!(!not_modified_filter(&before, &resp));
        // Only a 200, and only GET or HEAD.
        assert!(!not_modified_filter(
            &since,
            &response(404, &[("etag", "\"v1\"")])
        ));
        let mut post = request(&[("if-none-match", "*")]);
        post.set_method(http::Method::POST);
        assert!(!not_modified_filter(&post, &resp));
    }

    #[test]
    fn weak_validation() {
        assert!(weak_validate_etag(b"\"a\"", b"\"a\""));
        assert!(weak_validate_etag(b"W/\"a\"", b"\"a\""));
        assert!(weak_validate_etag(b"\"x\" , W/\"a\"", b"W/\"a\""));
        assert!(weak_validate_etag(b"*", b"\"anything\""));
        assert!(!weak_validate_etag(b"\"b\"", b"\"a\""));
        assert!(!weak_validate_etag(b"\"a\"", b"not-a-tag"));
        assert!(!weak_validate_etag(b"", b"\"a\""));
    }

    #[test]
    fn http_dates() {
        let req = request(&[
            ("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ("x-bad", "yesterday"),
        ]);
        let date = req_header_as_http_date(&req, "if-modified-since").unwrap();
        assert_eq!(date.unwrap().to_string(), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(req_header_as_http_date(&req, "x-absent").unwrap(), None);
        let e = req_header_as_http_date(&req, "x-bad").unwrap_err();
        assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader);
        let resp = response(200, &[("date", "Sunday, 06-Nov-94 08:49:37 GMT")]);
        assert!(resp_header_as_http_date(&resp, header::DATE)
            .unwrap()
            .is_some());
    }

    #[test]
    fn to_304_drops_the_body_fields_and_keeps_the_rest() {
        let mut resp = response(
            200,
            &[
                ("content-length", "10"),
                ("content-type", "text/plain"),
                ("etag", "\"a\""),
                ("cache-control", "max-age=60"),
                ("set-cookie", "a=b"),
                ("accept-ranges", "bytes"),
            ],
        );
        to_304(&mut resp);
        assert_eq!(resp.status, StatusCode::NOT_MODIFIED);
        for gone in ["content-length", "content-type", "accept-ranges"] {
            assert!(!resp.headers.contains_key(gone), "{gone}");
        }
        for kept in ["etag", "cache-control", "set-cookie"] {
            assert!(resp.headers.contains_key(kept), "{kept}");
        }
    }
}
