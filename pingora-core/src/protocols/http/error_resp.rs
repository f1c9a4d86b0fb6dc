//! Ready-made error responses.

use std::sync::LazyLock;

use http::header;
use pingora_http::ResponseHeader;

use super::SERVER_NAME;

/// A response with status `code`, no body (`Content-Length: 0`), `Server: Pingora` and
/// `Cache-Control: private, no-store`.
pub fn gen_error_response(code: u16) -> ResponseHeader {
    let mut resp = ResponseHeader::build(code, Some(4)).unwrap_or_else(|_| {
        ResponseHeader::build(500, Some(4)).expect("500 is a valid status code")
    });
    // These names and values are valid constants; inserting them cannot fail.
    let _ = resp.insert_header(header::SERVER, &SERVER_NAME[..]);
    let _ = resp.insert_header(header::CACHE_CONTROL, "private, no-store");
    let _ = resp.insert_header(header::CONTENT_LENGTH, "0");
    resp
}

/// A pre-built 502 Bad Gateway response.
pub static HTTP_502_RESPONSE: LazyLock<ResponseHeader> = LazyLock::new(|| gen_error_response(502));
/// A pre-built 400 Bad Request response.
pub static HTTP_400_RESPONSE: LazyLock<ResponseHeader> = LazyLock::new(|| gen_error_response(400));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_response_headers() {
        let resp = gen_error_response(404);
        assert_eq!(resp.status.as_u16(), 404);
        assert_eq!(resp.headers["server"], "Pingora");
        assert_eq!(resp.headers["content-length"], "0");
        assert_eq!(resp.headers["cache-control"], "private, no-store");
        assert_eq!(HTTP_502_RESPONSE.status.as_u16(), 502);
        assert_eq!(gen_error_response(42).status.as_u16(), 500);
    }
}
