//! `parse_request` on arbitrary bytes: a complete head is a prefix of the input, every prefix
//! of it only asks for more bytes, and writing the parsed head back gives the same head.

use bytes::BytesMut;
use pingora_error::ErrorType;
use pingora_http_codec::h1::head::{parse_request, write_request_head, RequestHead};
use pingora_http_codec::h1::{Framing, Limits};

/// The statuses `parse_request` may answer a bad request with.
const STATUSES: [u16; 5] = [400, 414, 431, 501, 505];

/// The raw head is the front of the input, but for the one change the parser may make: an
/// `HTTP/1.x` token with x from 2 to 9 is rewritten as `HTTP/1.1` (RFC 9110 section 2.5:
/// such a request is processed as 1.1).
fn assert_same_head(raw: &[u8], input: &[u8]) {
    let differ: Vec<usize> = (0..raw.len()).filter(|&i| raw[i] != input[i]).collect();
    match differ[..] {
        [] => {}
        [i] => {
            assert!(
                i >= 7 && &input[i - 7..i] == b"HTTP/1." && (b'2'..=b'9').contains(&input[i]),
                "the head is the front of the input, but for byte {i}"
            );
            assert_eq!(raw[i], b'1', "a higher minor version is read as 1.1");
        }
        _ => panic!("the head is the front of the input: bytes {differ:?} differ"),
    }
}

/// The fuzz check.
pub fn check(data: &[u8]) {
    let limits = Limits::default();
    let mut buf = BytesMut::from(data);
    let head = match parse_request(&mut buf, &limits) {
        Ok(Some(head)) => head,
        Ok(None) => {
            assert!(
                data.len() <= limits.max_header_bytes,
                "an oversized head waits"
            );
            // Nothing is consumed; a higher minor version may already read as 1.1.
            assert_eq!(buf.len(), data.len(), "an incomplete head consumes nothing");
            assert_same_head(&buf, data);
            return;
        }
        Err(e) => {
            match e.etype() {
                ErrorType::HTTPStatus(code) => assert!(STATUSES.contains(code), "status {code}"),
                other => panic!("unexpected error type {other:?}"),
            }
            return;
        }
    };
    let raw_len = head.raw.len();
    assert!(raw_len <= data.len() && raw_len <= limits.max_header_bytes);
    assert_same_head(&head.raw, &data[..raw_len]);
    assert_eq!(
        &buf[..],
        &data[raw_len..],
        "what follows the head stays in the buffer"
    );
    assert!(head.header.headers.len() <= limits.max_headers);
    check_framing(&head);

    // A client sending the same head in pieces must not be refused halfway.
    for cut in [raw_len / 2, raw_len - 1] {
        let mut part = BytesMut::from(&data[..cut]);
        match parse_request(&mut part, &limits) {
            Ok(None) => {}
            other => panic!("a prefix of {cut} bytes of a valid head gave {other:?}"),
        }
    }

    // Written back and parsed again, the head is the same.
    let mut wire = BytesMut::new();
    write_request_head(&head.header, &mut wire);
    let again = match parse_request(&mut wire, &limits) {
        Ok(Some(again)) => again,
        other => panic!("the written head does not parse: {other:?}"),
    };
    assert!(wire.is_empty(), "the written head is parsed whole");
    assert_eq!(again.header.method, head.header.method);
    assert_eq!(again.header.raw_path(), head.header.raw_path());
    assert_eq!(again.header.version, head.header.version);
    assert_eq!(again.framing, head.framing);
    assert_eq!(again.keepalive, head.keepalive);
    assert_eq!(again.expect_continue, head.expect_continue);
    assert_eq!(again.upgrade, head.upgrade);
    let first: Vec<_> = head.header.headers.iter().collect();
    let second: Vec<_> = again.header.headers.iter().collect();
    assert_eq!(first, second, "fields and their order survive a round trip");
    // The spelling of each name too.
    let spellings = |h: &RequestHead| -> Vec<Vec<u8>> {
        h.header
            .case_header_iter()
            .map(|(name, _)| name.as_slice().to_vec())
            .collect()
    };
    assert_eq!(spellings(&head), spellings(&again));
}

/// The framing agrees with the fields that decide it.
fn check_framing(head: &RequestHead) {
    let headers = &head.header.headers;
    let te = headers.contains_key(http::header::TRANSFER_ENCODING);
    let cl = headers.get(http::header::CONTENT_LENGTH);
    match head.framing {
        Framing::Chunked => assert!(te && cl.is_none()),
        Framing::Length(n) => {
            assert!(!te);
            for v in headers.get_all(http::header::CONTENT_LENGTH) {
                assert_eq!(
                    pingora_http_codec::h1::fields::parse_content_length(v.as_bytes()),
                    Some(n)
                );
            }
        }
        Framing::Empty => assert!(!te && cl.is_none()),
        Framing::UntilClose => panic!("a request is never read until close"),
    }
    if head.header.version == http::Version::HTTP_11 {
        assert_eq!(headers.get_all(http::header::HOST).iter().count(), 1);
    } else {
        assert!(!te, "no Transfer-Encoding in HTTP/1.0");
        assert!(!head.upgrade && !head.expect_continue);
    }
}
