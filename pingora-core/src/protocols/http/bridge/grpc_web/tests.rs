use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use http::Version;

fn request(content_type: Option<&str>, extra: &[(&str, &str)]) -> RequestHeader {
    let mut req = RequestHeader::build("POST", b"/pkg.Svc/Call", None).unwrap();
    req.set_version(Version::HTTP_2);
    if let Some(ct) = content_type {
        req.insert_header(CONTENT_TYPE, ct).unwrap();
    }
    for (name, value) in extra {
        req.append_header(name.to_string(), *value).unwrap();
    }
    req
}

fn response(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
    let mut resp = ResponseHeader::build(status, None).unwrap();
    for (name, value) in headers {
        resp.append_header(name.to_string(), *value).unwrap();
    }
    resp
}

/// A bridge that saw the request head of `content_type`.
fn upgraded(content_type: &str, extra: &[(&str, &str)]) -> GrpcWebCtx {
    let mut ctx = GrpcWebCtx::default();
    ctx.init();
    ctx.request_header_filter(&mut request(Some(content_type), extra));
    assert_eq!(ctx.state, State::Upgrade);
    ctx
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

// === request head ===

#[test]
fn request_content_types_become_grpc() {
    for (client, upstream, text) in [
        ("application/grpc-web", "application/grpc", false),
        (
            "application/grpc-web+proto",
            "application/grpc+proto",
            false,
        ),
        (
            "application/gRPC-Web+Thrift",
            "application/grpc+thrift",
            false,
        ),
        ("application/grpc-web-text", "application/grpc", true),
        (
            "application/grpc-web-text+proto",
            "application/grpc+proto",
            true,
        ),
        (
            "Application/GRPC-WEB-TEXT+proto",
            "application/grpc+proto",
            true,
        ),
        (
            "application/grpc-web; charset=utf-8",
            "application/grpc; charset=utf-8",
            false,
        ),
    ] {
        let mut req = request(Some(client), &[("content-length", "12")]);
        let mut ctx = GrpcWebCtx::default();
        ctx.init();
        ctx.request_header_filter(&mut req);
        assert_eq!(ctx.state, State::Upgrade, "{client}");
        assert_eq!(header(&req.headers, "content-type"), Some(upstream));
        assert_eq!(header(&req.headers, "te"), Some("trailers"));
        assert_eq!(req.send_end_stream(), Some(false));
        let expected_length = if text { None } else { Some("12") };
        assert_eq!(
            header(&req.headers, "content-length"),
            expected_length,
            "{client}: only decoding changes the length"
        );
        let expected = if text {
            Encoding::Text
        } else {
            Encoding::Binary
        };
        assert_eq!(
            (ctx.request, ctx.response),
            (expected, expected),
            "{client}"
        );
    }
}

#[test]
fn other_requests_are_untouched() {
    for content_type in [
        None,
        Some("application/grpc-we"),
        Some("application/grpc-webx"),
        Some("application/grpc-web-textual"),
        Some("application/grpc"),
        Some("application/json"),
    ] {
        let mut req = request(content_type, &[("content-length", "3")]);
        let before = req.clone();
        let mut ctx = GrpcWebCtx::default();
        ctx.init();
        ctx.request_header_filter(&mut req);
        assert_eq!(ctx.state, State::Disabled, "{content_type:?}");
        assert_eq!(req.headers, before.headers, "{content_type:?}");
        assert_eq!(req.send_end_stream(), Some(true));

        // Neither are bodies.
        let mut body = Some(Bytes::from_static(b"!!!"));
        ctx.request_body_filter(&mut body, true).unwrap();
        assert_eq!(body.as_deref(), Some(&b"!!!"[..]));
    }
}

#[test]
fn not_initialised_leaves_grpc_web_alone() {
    let mut req = request(Some("application/grpc-web-text"), &[]);
    let mut ctx = GrpcWebCtx::default();
    ctx.request_header_filter(&mut req);
    assert_eq!(ctx.state, State::Disabled);
    assert_eq!(
        header(&req.headers, "content-type"),
        Some("application/grpc-web-text")
    );
    assert_eq!(header(&req.headers, "te"), None);

    let mut resp = response(200, &[("content-type", "application/grpc")]);
    ctx.response_header_filter(&mut resp);
    assert_eq!(
        header(&resp.headers, "content-type"),
        Some("application/grpc")
    );
    let mut trailers = HeaderMap::new();
    assert_eq!(ctx.response_trailer_filter(&mut trailers).unwrap(), None);
}

#[test]
fn accept_asks_for_a_text_response() {
    let ctx = upgraded(
        "application/grpc-web+proto",
        &[("accept", "text/html, application/grpc-web-text+proto;q=0.9")],
    );
    assert_eq!(ctx.request, Encoding::Binary);
    assert_eq!(ctx.response, Encoding::Text);

    let ctx = upgraded(
        "application/grpc-web",
        &[("accept", "application/grpc-web")],
    );
    assert_eq!(ctx.response, Encoding::Binary);
}

// === response head ===

#[test]
fn grpc_response_takes_the_clients_form() {
    for (client, upstream, expected) in [
        (
            "application/grpc-web",
            "application/grpc",
            "application/grpc-web",
        ),
        (
            "application/grpc-web+proto",
            "application/grpc+proto",
            "application/grpc-web+proto",
        ),
        (
            "application/grpc-web-text",
            "application/grpc",
            "application/grpc-web-text",
        ),
        (
            "application/grpc-web-text+proto",
            "application/grpc+proto",
            "application/grpc-web-text+proto",
        ),
    ] {
        let mut ctx = upgraded(client, &[]);
        let mut resp = response(200, &[("content-type", upstream), ("content-length", "7")]);
        ctx.response_header_filter(&mut resp);
        assert_eq!(ctx.state, State::Trailers, "{client}");
        assert_eq!(header(&resp.headers, "content-type"), Some(expected));
        assert_eq!(header(&resp.headers, "content-length"), None);
        assert_eq!(header(&resp.headers, "transfer-encoding"), Some("chunked"));
    }
}

#[test]
fn informational_responses_pass() {
    let mut ctx = upgraded("application/grpc-web", &[]);
    let mut resp = response(100, &[]);
    ctx.response_header_filter(&mut resp);
    assert_eq!(ctx.state, State::Upgrade);
}

#[test]
fn non_grpc_response_disables_the_bridge() {
    for content_type in [None, Some("text/html"), Some("application/grpc-web")] {
        let mut ctx = upgraded("application/grpc-web-text", &[]);
        let mut headers = vec![("content-length", "10")];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        let mut resp = response(502, &headers);
        ctx.response_header_filter(&mut resp);
        assert_eq!(ctx.state, State::Disabled, "{content_type:?}");
        assert_eq!(header(&resp.headers, "content-length"), Some("10"));
        assert_eq!(header(&resp.headers, "content-type"), content_type);

        // The body is not encoded, and trailers stay trailers.
        let mut body = Some(Bytes::from_static(b"bad gateway"));
        ctx.response_body_filter(&mut body, true).unwrap();
        assert_eq!(body.as_deref(), Some(&b"bad gateway"[..]));
        let mut trailers = HeaderMap::new();
        assert_eq!(ctx.response_trailer_filter(&mut trailers).unwrap(), None);

        // The request went upstream as gRPC: the rest of its body is still decoded.
        let mut body = Some(Bytes::from_static(b"AAAA"));
        ctx.request_body_filter(&mut body, true).unwrap();
        assert_eq!(body.as_deref(), Some(&b"\0\0\0"[..]));
    }
}

#[test]
fn trailers_only_response_keeps_its_status_in_the_head() {
    let mut ctx = upgraded("application/grpc-web-text", &[]);
    let mut resp = response(
        200,
        &[
            ("content-type", "application/grpc"),
            ("grpc-status", "5"),
            ("grpc-message", "not found"),
        ],
    );
    ctx.response_header_filter(&mut resp);
    assert_eq!(
        header(&resp.headers, "content-type"),
        Some("application/grpc-web-text")
    );
    assert_eq!(header(&resp.headers, "grpc-status"), Some("5"));
    assert_eq!(header(&resp.headers, "grpc-message"), Some("not found"));
}

// === trailers ===

#[test]
fn trailer_frame_bytes() {
    let mut ctx = upgraded("application/grpc-web", &[]);
    ctx.response_header_filter(&mut response(200, &[("content-type", "application/grpc")]));
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    trailers.insert("Grpc-Message", HeaderValue::from_static("OK"));
    let frame = ctx.response_trailer_filter(&mut trailers).unwrap().unwrap();
    assert_eq!(ctx.state, State::Done);

    let fields = b"grpc-status: 0\r\ngrpc-message: OK\r\n";
    let mut expected = vec![0x80, 0, 0, 0, fields.len() as u8];
    expected.extend_from_slice(fields);
    assert_eq!(&frame[..], &expected[..]);

    // Done: later calls add nothing.
    let mut body = Some(Bytes::from_static(b"x"));
    ctx.response_body_filter(&mut body, true).unwrap();
    assert_eq!(body.as_deref(), Some(&b"x"[..]));
    assert_eq!(ctx.response_trailer_filter(&mut trailers).unwrap(), None);
}

#[test]
fn empty_trailers_make_an_empty_frame() {
    let mut ctx = upgraded("application/grpc-web", &[]);
    ctx.response_header_filter(&mut response(200, &[("content-type", "application/grpc")]));
    let frame = ctx
        .response_trailer_filter(&mut HeaderMap::new())
        .unwrap()
        .unwrap();
    assert_eq!(&frame[..], b"\x80\x00\x00\x00\x00");
}

// === text mode ===

/// A gRPC message frame.
fn message(payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn text_request_body_decodes_across_any_split() {
    let binary: Vec<u8> = message(b"hello, gRPC-web text mode");
    let encoded = STANDARD.encode(&binary);
    // Every way of cutting the text in three, none of them on a group boundary necessarily.
    for first in 0..=encoded.len() {
        for second in first..=encoded.len() {
            let mut ctx = upgraded("application/grpc-web-text", &[]);
            let mut out = Vec::new();
            for (piece, end) in [
                (&encoded[..first], false),
                (&encoded[first..second], false),
                (&encoded[second..], true),
            ] {
                let mut body = Some(Bytes::copy_from_slice(piece.as_bytes()));
                ctx.request_body_filter(&mut body, end).unwrap();
                out.extend_from_slice(&body.unwrap());
            }
            assert_eq!(out, binary, "split at {first} and {second}");
        }
    }
}

#[test]
fn text_request_body_with_padding_in_the_middle() {
    // Two messages encoded separately, each padded (a client that flushes per message),
    // delivered one character at a time.
    let (a, b) = (message(b"ab"), message(b"cde"));
    let text = [STANDARD.encode(&a), STANDARD.encode(&b)].concat();
    assert!(text[..text.len() - 4].contains('='), "padding mid-stream");
    let mut ctx = upgraded("application/grpc-web-text", &[]);
    let mut out = Vec::new();
    for (i, c) in text.bytes().enumerate() {
        let mut body = Some(Bytes::copy_from_slice(&[c]));
        ctx.request_body_filter(&mut body, i + 1 == text.len())
            .unwrap();
        out.extend_from_slice(&body.unwrap());
    }
    assert_eq!(out, [a, b].concat());

    // The end of the body may also come as no data.
    let mut ctx = upgraded("application/grpc-web-text", &[]);
    let mut body = Some(Bytes::from_static(b"AAAAAAJo"));
    ctx.request_body_filter(&mut body, false).unwrap();
    assert_eq!(body.as_deref(), Some(&b"\0\0\0\0\x02h"[..]));
    let mut end = None;
    ctx.request_body_filter(&mut end, true).unwrap();
    assert_eq!(end, None);
}

#[test]
fn bad_base64_is_a_400() {
    for (pieces, what) in [
        (&["AAAA!AAA"][..], "a byte outside the alphabet"),
        (&["AA", "=AAA"], "padding inside a group"),
        (&["AAAAA"], "one character left at the end"),
        (&["AAAA", "\r\n"], "a line break"),
        (&["AA==", "===="], "a group of padding"),
    ] {
        let mut ctx = upgraded("application/grpc-web-text", &[]);
        let mut result = Ok(());
        for (i, piece) in pieces.iter().enumerate() {
            let mut body = Some(Bytes::from_static(piece.as_bytes()));
            result = ctx.request_body_filter(&mut body, i + 1 == pieces.len());
            if result.is_err() {
                break;
            }
        }
        let err = result.expect_err(what);
        assert_eq!(*err.etype(), ErrorType::HTTPStatus(400), "{what}");
    }
}

#[test]
fn text_response_body_and_trailers_encode_as_one_stream() {
    let body_bytes = [message(b"first"), message(b"second message")].concat();
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let whole = [
        body_bytes.clone(),
        trailer_frame(&trailers).unwrap().to_vec(),
    ]
    .concat();

    for cut in 0..=body_bytes.len() {
        let mut ctx = upgraded("application/grpc-web-text", &[]);
        ctx.response_header_filter(&mut response(200, &[("content-type", "application/grpc")]));
        let mut text = Vec::new();
        for piece in [&body_bytes[..cut], &body_bytes[cut..]] {
            let mut body = Some(Bytes::copy_from_slice(piece));
            ctx.response_body_filter(&mut body, false).unwrap();
            let body = body.unwrap();
            assert_eq!(body.len() % 4, 0, "whole groups only, before the end");
            assert!(!body.contains(&b'='), "no padding before the end");
            text.extend_from_slice(&body);
        }
        let last = ctx.response_trailer_filter(&mut trailers).unwrap().unwrap();
        text.extend_from_slice(&last);
        assert_eq!(STANDARD.decode(&text).unwrap(), whole, "cut at {cut}");
    }
}

#[test]
fn text_response_without_trailers_is_flushed_at_the_end() {
    let mut ctx = upgraded("application/grpc-web-text", &[]);
    ctx.response_header_filter(&mut response(200, &[("content-type", "application/grpc")]));
    let mut body = Some(Bytes::from_static(b"\0\0"));
    ctx.response_body_filter(&mut body, false).unwrap();
    assert_eq!(
        body.as_deref(),
        Some(&b""[..]),
        "two bytes wait for a third"
    );
    let mut end = None;
    ctx.response_body_filter(&mut end, true).unwrap();
    assert_eq!(end.as_deref(), Some(&b"AAA="[..]));
    assert_eq!(ctx.state, State::Done);
}

#[test]
fn accept_text_with_binary_request() {
    let mut ctx = upgraded(
        "application/grpc-web+proto",
        &[("accept", "application/grpc-web-text")],
    );
    let mut body = Some(Bytes::from_static(b"\0\0\0\0\0"));
    ctx.request_body_filter(&mut body, true).unwrap();
    assert_eq!(body.as_deref(), Some(&b"\0\0\0\0\0"[..]), "binary request");

    let mut resp = response(200, &[("content-type", "application/grpc+proto")]);
    ctx.response_header_filter(&mut resp);
    assert_eq!(
        header(&resp.headers, "content-type"),
        Some("application/grpc-web-text+proto")
    );
    let mut body = Some(Bytes::from_static(b"\0\0\0"));
    ctx.response_body_filter(&mut body, false).unwrap();
    assert_eq!(body.as_deref(), Some(&b"AAAA"[..]));
}
