//! `parse_response`, strict and lenient, on arbitrary bytes: the two modes agree wherever the
//! strict one accepts, a complete head is a prefix of the input, and writing the parsed head
//! back gives the same head.

use bytes::BytesMut;
use pingora_error::ErrorType;
use pingora_http_codec::h1::head::{parse_response, write_response_head, ResponseHead};
use pingora_http_codec::h1::{Framing, Limits};

/// The fuzz check.
pub fn check(data: &[u8]) {
    let limits = Limits::default();
    let lenient = parse(data, &limits, false);
    let strict = parse(data, &limits, true);
    match (&strict, &lenient) {
        (Some(Ok(strict)), Some(Ok(lenient))) => {
            assert_eq!(strict.raw, lenient.raw);
            assert_eq!(strict.framing, lenient.framing);
            assert_eq!(strict.header.status, lenient.header.status);
            assert_eq!(strict.header.headers, lenient.header.headers);
        }
        (Some(Ok(_)), other) => panic!("strict accepts, lenient gives {other:?}"),
        (None, None) | (Some(Err(())), Some(_)) => {}
        (None, Some(_)) | (Some(Err(())), None) => panic!("the modes disagree on completeness"),
    }
    let Some(Ok(head)) = lenient else {
        return;
    };
    check_head(data, &head);

    for cut in [head.raw.len() / 2, head.raw.len() - 1] {
        assert!(
            parse(&data[..cut], &limits, false).is_none(),
            "a prefix of {cut} bytes of a valid head is not incomplete"
        );
    }

    let mut wire = BytesMut::new();
    write_response_head(&head.header, &mut wire);
    let again = match parse(&wire, &limits, false) {
        Some(Ok(again)) => again,
        other => panic!("the written head does not parse: {other:?} {wire:?}"),
    };
    assert_eq!(
        again.raw.len(),
        wire.len(),
        "the written head is parsed whole"
    );
    assert_eq!(again.header.status, head.header.status);
    assert_eq!(again.header.version, head.header.version);
    assert_eq!(again.framing, head.framing);
    assert_eq!(again.connection, head.connection);
    assert_eq!(again.keepalive_timeout, head.keepalive_timeout);
    let trimmed = |h: &ResponseHead| -> Vec<(String, Vec<u8>)> {
        h.header
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), crate::trim_ows(v.as_bytes()).to_vec()))
            .collect()
    };
    assert_eq!(
        trimmed(&head),
        trimmed(&again),
        "fields survive a round trip"
    );
}

/// `None`: incomplete; `Some(Err(()))`: rejected.
fn parse(data: &[u8], limits: &Limits, strict: bool) -> Option<Result<ResponseHead, ()>> {
    let mut buf = BytesMut::from(data);
    match parse_response(&mut buf, limits, strict) {
        Ok(Some(head)) => {
            assert_eq!(&buf[..], &data[head.raw.len()..]);
            Some(Ok(head))
        }
        Ok(None) => {
            assert_eq!(&buf[..], data, "an incomplete head consumes nothing");
            assert!(
                data.len() <= limits.max_header_bytes,
                "an oversized head waits"
            );
            None
        }
        Err(e) => {
            assert_eq!(e.etype(), &ErrorType::InvalidHTTPHeader, "{e}");
            Some(Err(()))
        }
    }
}

fn check_head(data: &[u8], head: &ResponseHead) {
    let raw_len = head.raw.len();
    assert!(raw_len <= data.len());
    assert_eq!(
        &head.raw[..],
        &data[..raw_len],
        "the head is the front of the input"
    );
    let headers = &head.header.headers;
    let te = headers.contains_key(http::header::TRANSFER_ENCODING);
    if te {
        assert!(
            !headers.contains_key(http::header::CONTENT_LENGTH),
            "TE wins over CL"
        );
    }
    match head.framing {
        Framing::Chunked => assert!(te && head.header.version == http::Version::HTTP_11),
        Framing::Length(n) => {
            assert!(!te);
            for v in headers.get_all(http::header::CONTENT_LENGTH) {
                assert_eq!(
                    pingora_http_codec::h1::fields::parse_content_length(v.as_bytes()),
                    Some(n)
                );
            }
        }
        Framing::UntilClose => {}
        Framing::Empty => panic!("the status and request decide an empty body, not the head"),
    }
}
