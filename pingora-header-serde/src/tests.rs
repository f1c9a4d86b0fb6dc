use std::path::Path;
use std::sync::OnceLock;

use http::HeaderValue;
use pingora_error::ErrorType;
use pingora_http::{StatusCode, Version};
use proptest::prelude::*;

use super::*;

/// The dictionary trained on the crate's samples, trained once.
fn sample_dict() -> Vec<u8> {
    static DICT: OnceLock<Vec<u8>> = OnceLock::new();
    DICT.get_or_init(|| dict::train(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/test")))
        .clone()
}

fn wire_of(resp: &ResponseHeader) -> Vec<u8> {
    let mut buf = Vec::new();
    wire::encode(resp, &mut buf);
    buf
}

/// Asserts that `back` is `orig` as far as serialization goes: status, version, reason
/// phrase, the header map, and the exact field lines (order and spelling of names).
fn assert_same(orig: &ResponseHeader, back: &ResponseHeader) {
    assert_eq!(back.status, orig.status);
    assert_eq!(back.version, orig.version);
    assert_eq!(back.reason_phrase(), orig.reason_phrase());
    assert_eq!(back.headers, orig.headers);
    assert_eq!(wire_of(back), wire_of(orig));
}

fn round_trip(serde: &HeaderSerde, resp: &ResponseHeader) -> ResponseHeader {
    let stored = serde.serialize(resp).unwrap();
    let back = serde.deserialize(&stored).unwrap();
    assert_same(resp, &back);
    back
}

fn typical() -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for (name, value) in [
        ("Server", "nginx"),
        ("Date", "Sun, 06 Dec 2026 21:44:03 GMT"),
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", "18302"),
        ("Last-Modified", "Tue, 01 Dec 2026 08:12:55 GMT"),
        ("ETag", "\"6a1f-5e0c2b1d9a3c0\""),
        ("Cache-Control", "public, max-age=3600"),
        ("Vary", "Accept-Encoding"),
        ("Accept-Ranges", "bytes"),
    ] {
        resp.append_header(name, value).unwrap();
    }
    resp
}

#[test]
fn round_trips_with_and_without_dictionary() {
    for serde in [
        HeaderSerde::new(None),
        HeaderSerde::new(Some(sample_dict())),
    ] {
        round_trip(&serde, &typical());
        round_trip(&serde, &ResponseHeader::build(204, None).unwrap());
    }
}

#[test]
fn dictionary_makes_heads_smaller() {
    let resp = typical();
    let raw = wire_of(&resp).len();
    let plain = HeaderSerde::new(None).serialize(&resp).unwrap().len();
    let with_dict = HeaderSerde::new(Some(sample_dict()))
        .serialize(&resp)
        .unwrap()
        .len();
    assert!(plain < raw, "{plain} < {raw}");
    assert!(with_dict * 2 < plain, "{with_dict} vs {plain}");
}

#[test]
fn keeps_case_duplicates_and_order() {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header("set-cookie", "a=1").unwrap();
    resp.append_header("X-lower-UPPER", "x").unwrap();
    resp.append_header("Set-Cookie", "b=2").unwrap();
    resp.append_header("SET-COOKIE", "c=3").unwrap();
    resp.append_header("vary", "Origin").unwrap();
    let back = round_trip(&HeaderSerde::new(None), &resp);
    let mut wire = Vec::new();
    back.header_to_h1_wire(&mut wire);
    assert_eq!(
        String::from_utf8(wire).unwrap(),
        "set-cookie: a=1\r\nSet-Cookie: b=2\r\nSET-COOKIE: c=3\r\nX-lower-UPPER: x\r\nvary: Origin\r\n"
    );
}

#[test]
fn keeps_values_that_are_not_utf8_and_odd_whitespace() {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    resp.append_header(
        "X-Bin",
        HeaderValue::from_bytes(b"caf\xe9 \xff\x80").unwrap(),
    )
    .unwrap();
    resp.append_header("X-Space", "  padded\t ").unwrap();
    resp.append_header("X-Empty", "").unwrap();
    let back = round_trip(&HeaderSerde::new(Some(sample_dict())), &resp);
    assert_eq!(back.headers["x-bin"].as_bytes(), b"caf\xe9 \xff\x80");
    assert_eq!(back.headers["x-space"], "  padded\t ");
}

#[test]
fn keeps_reason_phrases_and_versions() {
    let serde = HeaderSerde::new(None);
    for version in [
        Version::HTTP_09,
        Version::HTTP_10,
        Version::HTTP_11,
        Version::HTTP_2,
        Version::HTTP_3,
    ] {
        for (code, reason) in [
            (200, None),
            (200, Some("Everything Is Fine")),
            (404, Some("")),
            (299, None),
            (299, Some("Custom")),
            (599, Some("caf\u{e9} \u{2603}")),
        ] {
            let mut resp = ResponseHeader::build(code, None).unwrap();
            resp.set_version(version);
            resp.set_reason_phrase(reason).unwrap();
            let back = round_trip(&serde, &resp);
            assert_eq!(
                back.reason_phrase(),
                reason.or(resp.status.canonical_reason())
            );
        }
    }
}

#[test]
fn headers_built_without_case_come_back_in_default_spelling() {
    let mut resp = ResponseHeader::build_no_case(200, None).unwrap();
    resp.append_header("x-custom", "1").unwrap();
    resp.append_header("content-type", "a/b").unwrap();
    round_trip(&HeaderSerde::new(None), &resp);
}

#[test]
fn serialized_size_is_exact() {
    let stored = HeaderSerde::new(None).serialize(&typical()).unwrap();
    assert_eq!(stored.capacity(), stored.len());
}

#[test]
fn garbage_is_an_error() {
    let serde = HeaderSerde::new(Some(sample_dict()));
    let stored = serde.serialize(&typical()).unwrap();
    let not_a_head = zstd::bulk::compress(b"hello, not a head", 3).unwrap();
    let huge = zstd::bulk::compress(&vec![b'a'; 2 * codec::MAX_HEAD_SIZE], 3).unwrap();
    let cases: [(&[u8], ErrorType); 6] = [
        (b"", ErrorType::InternalError),
        (b"HTTP/1.1 200 OK\r\n\r\n", ErrorType::InternalError),
        (&stored[..stored.len() - 1], ErrorType::InternalError),
        (&stored[..4], ErrorType::InternalError),
        (&not_a_head, ErrorType::InvalidHTTPHeader),
        (&huge, ErrorType::InternalError),
    ];
    for (data, etype) in cases {
        let err = serde.deserialize(data).map(|_| ()).unwrap_err();
        assert_eq!(err.etype(), &etype, "{data:?}");
    }
    // Written with a dictionary, read without: zstd refuses the frame.
    assert!(HeaderSerde::new(None).deserialize(&stored).is_err());
}

#[test]
fn flipped_bits_never_panic() {
    let serde = HeaderSerde::new(None);
    let stored = serde.serialize(&typical()).unwrap();
    for i in 0..stored.len() * 8 {
        let mut bad = stored.clone();
        bad[i / 8] ^= 1 << (i % 8);
        // Either an error or some header: both fine, as long as nothing panics.
        let _ = serde.deserialize(&bad);
    }
}

#[test]
fn contexts_are_per_thread_and_per_instance() {
    let with_dict = HeaderSerde::new(Some(sample_dict()));
    let plain = HeaderSerde::new(None);
    let resp = typical();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..50 {
                    round_trip(&with_dict, &resp);
                    round_trip(&plain, &resp);
                }
            });
        }
    });
    assert_eq!(
        format!("{with_dict:?}"),
        "HeaderSerde { dictionary: true, .. }"
    );
}

#[test]
fn large_heads_round_trip_and_scratch_shrinks() {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for i in 0..2000 {
        resp.append_header(format!("X-Header-{i}"), "v".repeat(50))
            .unwrap();
    }
    let serde = HeaderSerde::new(None);
    assert_eq!(
        serde.codec.scratch_capacity(),
        None,
        "contexts are made on first use"
    );
    round_trip(&serde, &resp);
    let scratch = serde.codec.scratch_capacity().unwrap();
    assert!(scratch <= 2 * 64 * 1024, "{scratch}");
    round_trip(&serde, &typical());
}

/// A header name: a token, in mixed case, sometimes from a small pool so names repeat.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["Set-Cookie", "set-cookie", "VARY", "x-a", "X-A"])
            .prop_map(str::to_owned),
        "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,16}",
    ]
}

/// A header value: any bytes `HeaderValue` accepts.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
    prop::collection::vec(byte, 0..24)
}

fn response() -> impl Strategy<Value = ResponseHeader> {
    let version = prop::sample::select(vec![
        Version::HTTP_09,
        Version::HTTP_10,
        Version::HTTP_11,
        Version::HTTP_2,
        Version::HTTP_3,
    ]);
    let reason = prop::option::of("[\t -~\u{80}-\u{10ff}]{0,12}");
    let headers = prop::collection::vec((name(), value()), 0..12);
    (100u16..1000, version, reason, headers, any::<bool>()).prop_map(
        |(code, version, reason, headers, case)| {
            let code = StatusCode::from_u16(code).unwrap();
            let mut resp = if case {
                ResponseHeader::build(code, None).unwrap()
            } else {
                ResponseHeader::build_no_case(code, None).unwrap()
            };
            resp.set_version(version);
            resp.set_reason_phrase(reason.as_deref()).unwrap();
            for (name, value) in headers {
                let value = HeaderValue::from_bytes(&value).unwrap();
                resp.append_header(name, value).unwrap();
            }
            resp
        },
    )
}

proptest! {
    #[test]
    fn any_head_comes_back_identical(resp in response(), dict in any::<bool>()) {
        let serde = HeaderSerde::new(dict.then(sample_dict));
        round_trip(&serde, &resp);
    }

    #[test]
    fn any_bytes_deserialize_without_panic(data in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = HeaderSerde::new(None).deserialize(&data);
    }

    #[test]
    fn any_decompressed_bytes_decode_without_panic(head in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = wire::decode(Bytes::from(head));
    }
}

#[test]
fn is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<HeaderSerde>();
}
