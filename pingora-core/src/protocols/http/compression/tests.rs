use std::io::Read;

use super::*;
use proptest::prelude::*;

fn request(accept: Option<&str>) -> RequestHeader {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    if let Some(accept) = accept {
        req.insert_header("accept-encoding", accept).unwrap();
    }
    req
}

fn response(fields: &[(&str, &str)]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(200, None).unwrap();
    for (name, value) in fields {
        resp.append_header(name.to_string(), *value).unwrap();
    }
    resp
}

fn text_response() -> ResponseHeader {
    response(&[("content-type", "text/html"), ("content-length", "5000")])
}

fn field<'a>(resp: &'a ResponseHeader, name: &str) -> Option<&'a str> {
    resp.headers.get(name).map(|v| v.to_str().unwrap())
}

/// Runs a response through a context: the chosen coding (from the changed head) and the body.
fn run(
    ctx: &mut ResponseCompressionCtx,
    accept: Option<&str>,
    mut resp: ResponseHeader,
    body: &[u8],
    chunk: usize,
) -> (ResponseHeader, Vec<u8>) {
    ctx.request_filter(&request(accept));
    ctx.response_header_filter(&mut resp, false);
    let mut out = Vec::new();
    let pieces: Vec<&[u8]> = body.chunks(chunk.max(1)).collect();
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        let data = Bytes::copy_from_slice(piece);
        match ctx.try_response_body_filter(Some(&data), last).unwrap() {
            Some(encoded) => out.extend_from_slice(&encoded),
            None => out.extend_from_slice(piece),
        }
    }
    if pieces.is_empty() {
        if let Some(encoded) = ctx.try_response_body_filter(None, true).unwrap() {
            out.extend_from_slice(&encoded);
        }
    }
    (resp, out)
}

/// Decodes `data` with the command-line-independent reference decoders.
fn decode(coding: &str, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        "gzip" => {
            flate2::read::MultiGzDecoder::new(data)
                .read_to_end(&mut out)
                .unwrap();
        }
        "br" => {
            brotli::Decompressor::new(data, 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        "zstd" => out = zstd::stream::decode_all(data).unwrap(),
        other => panic!("unexpected coding {other}"),
    }
    out
}

fn encode_reference(coding: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    match coding {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            {
                let mut e = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
                e.write_all(data).unwrap();
            }
            out
        }
        "zstd" => zstd::stream::encode_all(data, 3).unwrap(),
        other => panic!("unexpected coding {other}"),
    }
}

/// Text that compresses (repeated words with variation), `len` bytes.
fn compressible_text(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "proxy ", "cache ", "stream ", "header ", "pingora ", "zstd ", "brotli ", "gzip\n",
    ];
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(words[(x % 8) as usize].as_bytes());
        if x % 11 == 0 {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

#[test]
fn compresses_with_each_algorithm_and_round_trips() {
    let body = compressible_text(100_000, 7);
    for (accept, coding) in [("gzip", "gzip"), ("br", "br"), ("zstd", "zstd")] {
        let mut ctx = ResponseCompressionCtx::new(6, false, false);
        let (resp, out) = run(&mut ctx, Some(accept), text_response(), &body, 16 * 1024);
        assert_eq!(field(&resp, "content-encoding"), Some(coding));
        assert_eq!(field(&resp, "content-length"), None);
        assert_eq!(field(&resp, "vary"), Some("accept-encoding"));
        assert!(out.len() < body.len() / 2, "{coding}: {} bytes", out.len());
        assert_eq!(decode(coding, &out), body, "{coding}");
        let (name, bytes_in, bytes_out, _) = ctx.get_info().unwrap();
        assert_eq!((name, bytes_in, bytes_out), (coding, body.len(), out.len()));
    }
}

#[test]
fn fixed_ten_mib_case_each_algorithm() {
    let body = compressible_text(10 << 20, 99);
    for coding in ["gzip", "br", "zstd"] {
        let mut ctx = ResponseCompressionCtx::new(6, false, false);
        // Brotli's default level is slow in debug builds: level 1 keeps this test short.
        if coding == "br" {
            ctx.adjust_algorithm_level(Algorithm::Brotli, 1);
        }
        let (_, out) = run(&mut ctx, Some(coding), text_response(), &body, 64 * 1024);
        assert_eq!(decode(coding, &out), body, "{coding}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn any_body_round_trips(
        len in 0usize..256 * 1024,
        seed in any::<u64>(),
        chunk in 1usize..70_000,
        random in any::<bool>(),
    ) {
        let body = if random {
            let mut x = seed | 1;
            (0..len).map(|_| { x = x.wrapping_mul(6364136223846793005).wrapping_add(1); (x >> 33) as u8 }).collect()
        } else {
            compressible_text(len, seed)
        };
        for coding in ["gzip", "br", "zstd"] {
            let mut ctx = ResponseCompressionCtx::new(6, false, false);
            ctx.adjust_algorithm_level(Algorithm::Brotli, 4);
            let resp = response(&[("content-type", "application/json")]);
            let (resp, out) = run(&mut ctx, Some(coding), resp, &body, chunk);
            prop_assert_eq!(field(&resp, "content-encoding"), Some(coding));
            prop_assert_eq!(decode(coding, &out), body.clone());
        }
    }

    #[test]
    fn decompression_round_trips(len in 0usize..256 * 1024, seed in any::<u64>(), chunk in 1usize..70_000) {
        let body = compressible_text(len, seed);
        for coding in ["gzip", "br", "zstd"] {
            let encoded = encode_reference(coding, &body);
            let mut ctx = ResponseCompressionCtx::new(0, true, false);
            let resp = response(&[("content-type", "text/plain"), ("content-encoding", coding)]);
            let (resp, out) = run(&mut ctx, Some("identity"), resp, &encoded, chunk);
            prop_assert_eq!(field(&resp, "content-encoding"), None);
            prop_assert_eq!(out, body.clone());
        }
    }
}

#[test]
fn negotiation_table() {
    // (Accept-Encoding, chosen coding) with gzip, br and zstd all on.
    let table: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some(""), None),
        (Some("gzip"), Some("gzip")),
        (Some("GZIP"), Some("gzip")),
        (Some("x-gzip"), Some("gzip")),
        (Some("br"), Some("br")),
        (Some("zstd"), Some("zstd")),
        (Some("gzip, deflate, br, zstd"), Some("zstd")),
        (Some("gzip, br"), Some("br")),
        (Some("gzip;q=1.0, br;q=0.5"), Some("gzip")),
        (Some("br;q=0.9, gzip;q=0.8, zstd;q=0.1"), Some("br")),
        (Some("gzip;q=0"), None),
        (Some("zstd;q=0, gzip"), Some("gzip")),
        (Some("*"), None),
        (Some("deflate"), None),
        (Some("identity"), None),
        (Some("gzip;q=0.5, identity"), None),
        (Some("gzip, identity;q=0"), Some("gzip")),
        (Some("gzip;q=abc, br"), Some("br")),
        (Some("gzip;q=1.5"), None),
        (Some(" gzip ; q=0.8 , br ; q=0.7"), Some("gzip")),
    ];
    for (accept, expected) in table {
        let mut ctx = ResponseCompressionCtx::new(5, false, false);
        let mut resp = text_response();
        ctx.request_filter(&request(*accept));
        ctx.response_header_filter(&mut resp, false);
        assert_eq!(
            field(&resp, "content-encoding"),
            *expected,
            "Accept-Encoding: {accept:?}"
        );
        let negotiated = ResponseCompressionCtx::new(5, false, false);
        let mut negotiated = negotiated;
        negotiated.request_filter(&request(*accept));
        assert_eq!(
            negotiated.negotiated_encoding().map(|a| a.as_str()),
            *expected
        );
    }
}

#[test]
fn server_preference_and_levels_per_algorithm() {
    let mut ctx = ResponseCompressionCtx::new(5, false, false);
    ctx.adjust_preference(&[Algorithm::Gzip, Algorithm::Brotli]);
    let (resp, _) = run(&mut ctx, Some("zstd, br, gzip"), text_response(), b"x", 1);
    assert_eq!(field(&resp, "content-encoding"), Some("gzip"));

    let mut ctx = ResponseCompressionCtx::new(0, false, false);
    ctx.adjust_algorithm_level(Algorithm::Brotli, 3);
    let (resp, _) = run(&mut ctx, Some("gzip, br, zstd"), text_response(), b"x", 1);
    assert_eq!(field(&resp, "content-encoding"), Some("br"));
}

#[test]
fn leaves_alone_what_it_must() {
    let cases: &[(u16, &[(&str, &str)], &str)] = &[
        (
            206,
            &[
                ("content-type", "text/html"),
                ("content-range", "bytes 0-9/100"),
            ],
            "206",
        ),
        (
            200,
            &[
                ("content-type", "text/html"),
                ("content-range", "bytes 0-9/100"),
            ],
            "content-range",
        ),
        (
            200,
            &[
                ("content-type", "text/html"),
                ("cache-control", "public, no-transform"),
            ],
            "no-transform",
        ),
        (200, &[("content-type", "image/png")], "image"),
        (200, &[("content-type", "application/zip")], "zip"),
        (200, &[("content-type", "application/grpc")], "grpc"),
        (200, &[("content-type", "application/zstd")], "zstd type"),
        (
            200,
            &[("content-type", "text/html"), ("content-length", "19")],
            "small",
        ),
        (
            200,
            &[("content-type", "text/html"), ("content-encoding", "gzip")],
            "encoded",
        ),
        (
            200,
            &[
                ("content-type", "text/html"),
                ("content-encoding", "gzip, br"),
            ],
            "stacked",
        ),
        (
            200,
            &[
                ("content-type", "text/html"),
                ("content-encoding", "compress"),
            ],
            "unknown",
        ),
        (200, &[], "no type"),
    ];
    for (status, fields, what) in cases {
        let mut ctx = ResponseCompressionCtx::new(6, false, false);
        let mut resp = response(fields);
        resp.set_status(*status).unwrap();
        let before = resp.headers.clone();
        ctx.request_filter(&request(Some("gzip")));
        ctx.response_header_filter(&mut resp, false);
        assert!(!ctx.is_enabled(), "{what}");
        assert_eq!(
            resp.headers.get("content-encoding"),
            before.get("content-encoding"),
            "{what}"
        );
        assert_eq!(
            resp.headers.get("content-length"),
            before.get("content-length"),
            "{what}"
        );
        assert_eq!(
            ctx.response_body_filter(Some(&Bytes::from_static(b"abc")), true),
            None
        );
    }

    // A request with no-transform.
    let mut ctx = ResponseCompressionCtx::new(6, false, false);
    let mut req = request(Some("gzip"));
    req.insert_header("cache-control", "no-transform").unwrap();
    ctx.request_filter(&req);
    let mut resp = text_response();
    ctx.response_header_filter(&mut resp, false);
    assert_eq!(field(&resp, "content-encoding"), None);

    // 204 and 304 end with their head.
    for status in [204, 304] {
        let mut ctx = ResponseCompressionCtx::new(6, false, false);
        ctx.request_filter(&request(Some("gzip")));
        let mut resp = text_response();
        resp.set_status(status).unwrap();
        ctx.response_header_filter(&mut resp, true);
        assert_eq!(field(&resp, "content-encoding"), None);
        assert_eq!(field(&resp, "vary"), None);
    }
}

#[test]
fn head_gets_the_head_a_get_would() {
    let mut ctx = ResponseCompressionCtx::new(6, false, false);
    let mut req = request(Some("br"));
    req.set_method(http::Method::HEAD);
    ctx.request_filter(&req);
    let mut resp = text_response();
    resp.insert_header("etag", "\"v1\"").unwrap();
    ctx.response_header_filter(&mut resp, true);
    assert_eq!(field(&resp, "content-encoding"), Some("br"));
    assert_eq!(field(&resp, "content-length"), None);
    assert_eq!(field(&resp, "etag"), Some("W/\"v1\""));
    assert!(!ctx.is_enabled(), "no body to encode");
}

#[test]
fn header_changes() {
    let mut ctx = ResponseCompressionCtx::new(6, false, false);
    let mut resp = text_response();
    resp.insert_header("etag", "\"abc\"").unwrap();
    resp.insert_header("accept-ranges", "bytes").unwrap();
    resp.insert_header("content-digest", "sha-256=:x:").unwrap();
    resp.insert_header("vary", "Accept-Language").unwrap();
    ctx.request_filter(&request(Some("gzip")));
    ctx.response_header_filter(&mut resp, false);
    assert_eq!(field(&resp, "etag"), Some("W/\"abc\""));
    assert_eq!(field(&resp, "accept-ranges"), None);
    assert_eq!(field(&resp, "content-digest"), None);
    let vary: Vec<_> = resp.headers.get_all("vary").iter().collect();
    assert_eq!(vary, ["Accept-Language", "accept-encoding"]);

    // Weak stays weak, invalid goes, preserve keeps; Vary already naming it or `*` unchanged.
    for (etag, vary, preserve, expected_etag, expected_vary) in [
        (
            "W/\"a\"",
            "accept-encoding",
            false,
            Some("W/\"a\""),
            vec!["accept-encoding"],
        ),
        ("abc", "*", false, None, vec!["*"]),
        (
            "\"a\"",
            "Accept-Encoding, Origin",
            true,
            Some("\"a\""),
            vec!["Accept-Encoding, Origin"],
        ),
    ] {
        let mut ctx = ResponseCompressionCtx::new(6, false, preserve);
        let mut resp = text_response();
        resp.insert_header("etag", etag).unwrap();
        resp.insert_header("vary", vary).unwrap();
        ctx.request_filter(&request(Some("gzip")));
        ctx.response_header_filter(&mut resp, false);
        assert_eq!(field(&resp, "etag"), expected_etag);
        let got: Vec<_> = resp
            .headers
            .get_all("vary")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(got, expected_vary);
    }

    // Not accepted but compressible: not compressed, still varies.
    let mut ctx = ResponseCompressionCtx::new(6, false, false);
    let mut resp = text_response();
    ctx.request_filter(&request(None));
    ctx.response_header_filter(&mut resp, false);
    assert_eq!(field(&resp, "content-encoding"), None);
    assert_eq!(field(&resp, "content-length"), Some("5000"));
    assert_eq!(field(&resp, "vary"), Some("accept-encoding"));
}

#[test]
fn decompression_decisions() {
    let encoded = encode_reference("gzip", b"hello hello hello hello");
    for (accept, decompress, expect_plain) in [
        (Some("gzip"), true, false),
        (Some("br"), true, true),
        (None, true, true),
        (Some("*"), true, false),
        (Some("gzip;q=0"), true, true),
        (Some("br"), false, false),
    ] {
        let mut ctx = ResponseCompressionCtx::new(0, decompress, false);
        let resp = response(&[("content-type", "text/plain"), ("content-encoding", "gzip")]);
        let (resp, out) = run(&mut ctx, accept, resp, &encoded, 5);
        if expect_plain {
            assert_eq!(field(&resp, "content-encoding"), None, "{accept:?}");
            assert_eq!(out, b"hello hello hello hello");
        } else {
            assert_eq!(field(&resp, "content-encoding"), Some("gzip"), "{accept:?}");
            assert_eq!(out, encoded);
        }
    }
    // Per algorithm: gzip decompression off, brotli on.
    let mut ctx = ResponseCompressionCtx::new(0, false, false);
    ctx.adjust_algorithm_decompression(Algorithm::Brotli, true);
    let resp = response(&[("content-type", "text/plain"), ("content-encoding", "br")]);
    let (_, out) = run(
        &mut ctx,
        Some("gzip"),
        resp,
        &encode_reference("br", b"abc"),
        2,
    );
    assert_eq!(out, b"abc");
}

#[test]
fn corrupt_or_truncated_input_is_an_error() {
    for coding in ["gzip", "br", "zstd"] {
        let encoded = encode_reference(coding, &compressible_text(50_000, 3));
        // Truncated: every codec must refuse a clean end.
        let mut ctx = ResponseCompressionCtx::new(0, true, false);
        ctx.request_filter(&request(Some("identity")));
        let mut resp = response(&[("content-type", "text/plain"), ("content-encoding", coding)]);
        ctx.response_header_filter(&mut resp, false);
        let half = Bytes::copy_from_slice(&encoded[..encoded.len() / 2]);
        let result = ctx.try_response_body_filter(Some(&half), true);
        assert!(result.is_err(), "{coding}: truncated stream accepted");
        assert!(!ctx.is_enabled());

        // Garbage.
        let mut ctx = ResponseCompressionCtx::new(0, true, false);
        ctx.request_filter(&request(Some("identity")));
        let mut resp = response(&[("content-type", "text/plain"), ("content-encoding", coding)]);
        ctx.response_header_filter(&mut resp, false);
        let garbage = Bytes::from(vec![0xa5u8; 4096]);
        let result = ctx.try_response_body_filter(Some(&garbage), true);
        assert!(result.is_err(), "{coding}: garbage accepted");
    }
}

#[test]
fn decompression_bomb_is_refused() {
    // 64 MiB of zeros compresses to a few KiB with zstd: far past the expansion bound.
    let zeros = vec![0u8; 64 << 20];
    let bomb = zstd::stream::encode_all(&zeros[..], 19).unwrap();
    assert!(bomb.len() * MAX_DECOMPRESSION_RATIO < zeros.len());
    let mut ctx = ResponseCompressionCtx::new(0, true, false);
    ctx.request_filter(&request(Some("identity")));
    let mut resp = response(&[("content-type", "text/plain"), ("content-encoding", "zstd")]);
    ctx.response_header_filter(&mut resp, false);
    let err = ctx
        .try_response_body_filter(Some(&Bytes::from(bomb)), true)
        .unwrap_err();
    assert_eq!(err.etype(), &COMPRESSION_ERROR);
}

#[test]
fn dcz_with_the_clients_dictionary() {
    let dictionary = Bytes::from(compressible_text(4096, 5));
    let hash = [7u8; 32];
    let named = {
        use base64::Engine;
        format!(
            ":{}:",
            base64::engine::general_purpose::STANDARD.encode(hash)
        )
    };
    let body = compressible_text(20_000, 5);

    // The client names the dictionary: dcz, with the header, decodable with the dictionary.
    let mut ctx = ResponseCompressionCtx::new(3, false, false);
    ctx.set_dictionary(dictionary.clone(), hash);
    assert!(ctx.has_dictionary());
    let mut req = request(Some("gzip, br, zstd, dcz"));
    req.insert_header("available-dictionary", named.as_str())
        .unwrap();
    ctx.request_filter(&req);
    let mut resp = text_response();
    ctx.response_header_filter(&mut resp, false);
    assert_eq!(field(&resp, "content-encoding"), Some("dcz"));
    let vary: Vec<_> = resp.headers.get_all("vary").iter().collect();
    assert_eq!(vary, ["accept-encoding", "available-dictionary"]);
    let out = ctx
        .try_response_body_filter(Some(&Bytes::from(body.clone())), true)
        .unwrap()
        .unwrap();
    assert_eq!(out[..8], DCZ_MAGIC);
    assert_eq!(out[8..DCZ_HEADER_SIZE], hash);
    let mut decoder =
        zstd::stream::read::Decoder::with_dictionary(&out[DCZ_HEADER_SIZE..], &dictionary).unwrap();
    let mut decoded = Vec::new();
    decoder.read_to_end(&mut decoded).unwrap();
    assert_eq!(decoded, body);

    // Another dictionary, or none named: plain zstd.
    let mut ctx = ResponseCompressionCtx::new(3, false, false);
    ctx.set_dictionary(dictionary, [8u8; 32]);
    ctx.request_filter(&req);
    let mut resp = text_response();
    ctx.response_header_filter(&mut resp, false);
    assert_eq!(field(&resp, "content-encoding"), Some("zstd"));
    ctx.clear_dictionary();
}

#[test]
fn wrong_phase_calls_do_not_panic() {
    let mut ctx = ResponseCompressionCtx::new(6, false, false);
    // Body before head: passes as is.
    assert_eq!(
        ctx.response_body_filter(Some(&Bytes::from_static(b"x")), false),
        None
    );
    ctx.request_filter(&request(Some("gzip")));
    let mut resp = text_response();
    ctx.response_header_filter(&mut resp, false);
    // Settings after the head, a second head, a second request: ignored.
    ctx.adjust_level(0);
    ctx.set_dictionary(Bytes::new(), [0; 32]);
    ctx.request_filter(&request(None));
    ctx.response_header_filter(&mut text_response(), false);
    assert!(ctx.is_enabled());
    let out = ctx
        .response_body_filter(Some(&Bytes::from_static(b"hello")), true)
        .unwrap();
    assert_eq!(decode("gzip", &out), b"hello");
    // After the end: nothing more.
    assert_eq!(ctx.response_body_filter(None, true), Some(Bytes::new()));
}

#[test]
fn upgrades_and_informational_responses() {
    let mut ctx = ResponseCompressionCtx::new(6, false, false);
    ctx.request_filter(&request(Some("gzip")));
    let mut early = ResponseHeader::build(103, None).unwrap();
    ctx.response_header_filter(&mut early, false);
    assert!(ctx.is_enabled(), "waits for the final head");
    let mut resp = text_response();
    ctx.response_header_filter(&mut resp, false);
    assert_eq!(field(&resp, "content-encoding"), Some("gzip"));

    let mut ctx = ResponseCompressionCtx::new(6, false, false);
    ctx.request_filter(&request(Some("gzip")));
    let mut switching = ResponseHeader::build(101, None).unwrap();
    ctx.response_header_filter(&mut switching, false);
    assert!(!ctx.is_enabled());
}

#[test]
fn response_filter_over_tasks() {
    let mut ctx = ResponseCompressionCtx::new(6, false, false);
    ctx.request_filter(&request(Some("zstd")));
    let mut head = HttpTask::Header(Box::new(text_response()), false);
    ctx.response_filter(&mut head);
    let HttpTask::Header(resp, _) = &head else {
        unreachable!()
    };
    assert_eq!(field(resp, "content-encoding"), Some("zstd"));
    let mut body = HttpTask::Body(Some(Bytes::from_static(b"hello world")), false);
    ctx.response_filter(&mut body);
    let mut done = HttpTask::Done;
    ctx.response_filter(&mut done);
    let mut out = Vec::new();
    for task in [body, done] {
        let HttpTask::Body(Some(data), _) = task else {
            panic!("body expected")
        };
        out.extend_from_slice(&data);
    }
    assert_eq!(decode("zstd", &out), b"hello world");
}

#[test]
fn algorithm_names() {
    for (name, algorithm) in [
        ("gzip", Algorithm::Gzip),
        ("BR", Algorithm::Brotli),
        ("zstd", Algorithm::Zstd),
        ("dcz", Algorithm::Dcz),
        ("dcb", Algorithm::Dcb),
        ("*", Algorithm::Any),
        ("lzma", Algorithm::Other),
    ] {
        assert_eq!(Algorithm::from(name), algorithm);
    }
    assert_eq!(Algorithm::Brotli.as_str(), "br");
    assert!(Algorithm::Gzip.compressor(0).is_none());
    assert!(Algorithm::Dcb.compressor(5).is_none());
    assert!(Algorithm::Gzip.decompressor(false).is_none());
    assert!(Algorithm::Other.decompressor(true).is_none());
    assert!(default_compressible_type("text/html"));
    assert!(default_compressible_type("image/svg+xml"));
    assert!(!default_compressible_type("application/x-7z-compressed"));
    assert!(!default_compressible_type("video/mp4"));
}
