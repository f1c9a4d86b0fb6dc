//! The uncompressed form: an HTTP/1 response head.
//!
//! ```text
//! HTTP/1.1 200 OK\r\n
//! Content-Type: text/html\r\n
//! \r\n
//! ```
//!
//! The status line carries the version (`HTTP/0.9`, `HTTP/1.0`, `HTTP/1.1`, `HTTP/2`,
//! `HTTP/3`), the code and the reason phrase as [`ResponseHeader::reason_phrase`] reports it,
//! after a space; with no phrase (a code without a canonical one) the space is left out too.
//! The field lines are what [`ResponseHeader::header_to_h1_wire`] writes: names as they were
//! spelled, `": "`, the value. Reading takes exactly one space after the colon, so values keep
//! any other leading or trailing whitespace; heads written by Pingora 0.8 (the same form, always
//! `HTTP/1.x`) read the same way.

use bytes::Bytes;
use http::HeaderValue;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_http::{ResponseHeader, StatusCode, Version};

const CRLF: &[u8] = b"\r\n";

/// Appends the head of `resp` to `buf`.
pub(crate) fn encode(resp: &ResponseHeader, buf: &mut Vec<u8>) {
    buf.extend_from_slice(version_token(resp.version).as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(resp.status.as_str().as_bytes());
    // No phrase (a code without a canonical one) is told from an empty one by the space.
    if let Some(reason) = resp.reason_phrase() {
        buf.push(b' ');
        buf.extend_from_slice(reason.as_bytes());
    }
    buf.extend_from_slice(CRLF);
    resp.header_to_h1_wire(buf);
    buf.extend_from_slice(CRLF);
}

fn version_token(version: Version) -> &'static str {
    match version {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        // HTTP/1.1, and any version `http` may add later.
        _ => "HTTP/1.1",
    }
}

fn parse_version(token: &[u8]) -> Option<Version> {
    match token {
        b"HTTP/0.9" => Some(Version::HTTP_09),
        b"HTTP/1.0" => Some(Version::HTTP_10),
        b"HTTP/1.1" => Some(Version::HTTP_11),
        b"HTTP/2" | b"HTTP/2.0" => Some(Version::HTTP_2),
        b"HTTP/3" | b"HTTP/3.0" => Some(Version::HTTP_3),
        _ => None,
    }
}

fn invalid(why: &'static str) -> Box<Error> {
    Error::explain(ErrorType::InvalidHTTPHeader, why)
}

/// Splits the first CRLF-terminated line off `rest`, returning its range in the head.
fn next_line(head: &[u8], start: usize) -> Result<(usize, usize)> {
    head[start..]
        .windows(2)
        .position(|pair| pair == CRLF)
        .map(|len| (start, start + len))
        .ok_or_else(|| invalid("serialized header: line without CRLF"))
}

/// Reads a head written by [`encode`]. Names and values share `head`'s buffer.
pub(crate) fn decode(head: Bytes) -> Result<ResponseHeader> {
    let (start, end) = next_line(&head, 0)?;
    let mut resp = status_line(&head[start..end], count_lines(&head))?;
    let mut at = end + CRLF.len();
    loop {
        let (start, end) = next_line(&head, at)?;
        at = end + CRLF.len();
        if start == end {
            break;
        }
        let line = &head[start..end];
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| invalid("serialized header: field line without a colon"))?;
        let value_start = start + colon + 1 + usize::from(line.get(colon + 1) == Some(&b' '));
        let value = HeaderValue::from_maybe_shared(head.slice(value_start..end)).or_err(
            ErrorType::InvalidHTTPHeader,
            "serialized header: invalid value",
        )?;
        resp.append_header(head.slice(start..start + colon), value)?;
    }
    if at != head.len() {
        return Err(invalid("serialized header: bytes after the head"));
    }
    Ok(resp)
}

/// An upper bound on the number of field lines, to size the header map once.
fn count_lines(head: &[u8]) -> usize {
    head.iter().filter(|&&b| b == b'\n').count()
}

/// Builds the response from its status line.
fn status_line(line: &[u8], lines: usize) -> Result<ResponseHeader> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts
        .next()
        .and_then(parse_version)
        .ok_or_else(|| invalid("serialized header: unknown HTTP version"))?;
    let code = parts
        .next()
        .filter(|code| code.len() == 3)
        .and_then(|code| StatusCode::from_bytes(code).ok())
        .ok_or_else(|| invalid("serialized header: invalid status code"))?;
    let mut resp = ResponseHeader::build(code, Some(lines.min(4096)))?;
    resp.set_version(version);
    if let Some(reason) = parts.next() {
        let reason = std::str::from_utf8(reason).or_err(
            ErrorType::InvalidHTTPHeader,
            "serialized header: reason not UTF-8",
        )?;
        // Setting the canonical phrase is the same as setting none.
        resp.set_reason_phrase(Some(reason))?;
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_str(head: &str) -> Result<ResponseHeader> {
        decode(Bytes::copy_from_slice(head.as_bytes()))
    }

    fn encode_to_vec(resp: &ResponseHeader) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(resp, &mut buf);
        buf
    }

    #[test]
    fn encodes_status_line_and_fields() {
        let mut resp = ResponseHeader::build(404, None).unwrap();
        resp.append_header("X-Thing", "a").unwrap();
        resp.append_header("content-TYPE", "text/plain").unwrap();
        assert_eq!(
            encode_to_vec(&resp),
            b"HTTP/1.1 404 Not Found\r\nX-Thing: a\r\ncontent-TYPE: text/plain\r\n\r\n"
        );
        resp.set_version(Version::HTTP_2);
        resp.set_status(299).unwrap();
        assert!(encode_to_vec(&resp).starts_with(b"HTTP/2 299\r\n"));
        resp.set_reason_phrase(Some("")).unwrap();
        assert!(encode_to_vec(&resp).starts_with(b"HTTP/2 299 \r\n"));
    }

    #[test]
    fn decodes_pingora_form() {
        // What Pingora 0.8 writes: an HTTP/1.1 status line, the canonical reason.
        let resp = decode_str("HTTP/1.1 200 OK\r\nServer: x\r\nvary: a\r\n\r\n").unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.version, Version::HTTP_11);
        assert_eq!(resp.reason_phrase(), Some("OK"));
        let mut wire = Vec::new();
        resp.header_to_h1_wire(&mut wire);
        assert_eq!(wire, b"Server: x\r\nvary: a\r\n");
    }

    #[test]
    fn decodes_versions_and_reasons() {
        for (token, version) in [
            ("HTTP/0.9", Version::HTTP_09),
            ("HTTP/1.0", Version::HTTP_10),
            ("HTTP/2.0", Version::HTTP_2),
            ("HTTP/3", Version::HTTP_3),
        ] {
            let resp = decode_str(&format!("{token} 200 Fine\r\n\r\n")).unwrap();
            assert_eq!(resp.version, version);
            assert_eq!(resp.reason_phrase(), Some("Fine"));
        }
        // No space and no phrase after the code.
        let resp = decode_str("HTTP/1.1 299\r\n\r\n").unwrap();
        assert_eq!(resp.reason_phrase(), None);
        let resp = decode_str("HTTP/1.1 200 \r\n\r\n").unwrap();
        assert_eq!(resp.reason_phrase(), Some(""), "an explicitly empty phrase");
    }

    #[test]
    fn values_keep_their_whitespace() {
        let resp = decode_str("HTTP/1.1 200 OK\r\nA:  two\t\r\nB:\r\nC:x\r\n\r\n").unwrap();
        assert_eq!(resp.headers["a"], " two\t");
        assert_eq!(resp.headers["b"], "");
        assert_eq!(resp.headers["c"], "x");
    }

    #[test]
    fn rejects_malformed_heads() {
        for head in [
            "",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK\r\n",
            "HTTP/1.1 200 OK\r\nA: b\r\n",
            "HTTP/1.2 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/1.1 099 OK\r\n\r\n",
            "HTTP/1.1 abc OK\r\n\r\n",
            "HTTP/1.1 200 O\x01K\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\n: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nA: b\nc\r\n\r\n",
            "HTTP/1.1 200 OK\r\nA: \x00\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\ntrailing",
        ] {
            let err = decode_str(head).map(|_| ()).unwrap_err();
            assert_eq!(err.etype(), &ErrorType::InvalidHTTPHeader, "{head:?}");
        }
        assert!(decode(Bytes::from_static(b"HTTP/1.1 200 \xff\r\n\r\n")).is_err());
    }
}
