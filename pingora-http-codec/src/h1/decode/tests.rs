use super::*;

fn limits() -> Limits {
    Limits::default()
}

/// Feeds `input` to a decoder in pieces of `step` bytes and collects the body.
fn decode_all(framing: Framing, input: &[u8], step: usize) -> Result<(Vec<u8>, BodyDecoder)> {
    let mut decoder = BodyDecoder::new(framing);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match decoder.decode(&mut buf, fed == input.len(), &limits())? {
            Decoded::Data(data) => body.extend_from_slice(&data),
            Decoded::Done => return Ok((body, decoder)),
            Decoded::NeedMore => {
                let end = (fed + step).min(input.len());
                buf.extend_from_slice(&input[fed..end]);
                fed = end;
            }
        }
    }
}

#[test]
fn length_body() {
    for step in [1, 3, 100] {
        let (body, d) = decode_all(Framing::Length(5), b"hello", step).unwrap();
        assert_eq!(body, b"hello");
        assert!(d.is_done());
        assert_eq!(d.decoded_bytes(), 5);
    }
}

#[test]
fn length_body_leaves_extra_bytes() {
    let mut d = BodyDecoder::new(Framing::Length(3));
    let mut buf = BytesMut::from(&b"abcGET"[..]);
    assert_eq!(
        d.decode(&mut buf, false, &limits()).unwrap(),
        Decoded::Data(Bytes::from_static(b"abc"))
    );
    assert_eq!(d.decode(&mut buf, false, &limits()).unwrap(), Decoded::Done);
    assert_eq!(&buf[..], b"GET");
}

#[test]
fn length_body_truncated() {
    let err = decode_all(Framing::Length(10), b"short", 2).unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectionClosed);
}

#[test]
fn empty_and_zero_length() {
    assert!(BodyDecoder::new(Framing::Empty).is_done());
    assert!(BodyDecoder::new(Framing::Length(0)).is_done());
}

#[test]
fn chunked_body_any_split() {
    let input = b"5\r\nhello\r\n6;ext=1;x\r\n world\r\n0\r\n\r\nNEXT";
    for step in 1..=input.len() {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut fed = 0;
        loop {
            match d.decode(&mut buf, false, &limits()).unwrap() {
                Decoded::Data(data) => body.extend_from_slice(&data),
                Decoded::Done => break,
                Decoded::NeedMore => {
                    let end = (fed + step).min(input.len());
                    assert!(end > fed, "decoder wants more after the end of the body");
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
        assert_eq!(body, b"hello world", "step {step}");
        // Nothing after the body was consumed.
        let mut rest = buf.to_vec();
        rest.extend_from_slice(&input[fed..]);
        assert_eq!(rest, b"NEXT", "step {step}");
    }
}

#[test]
fn chunked_uppercase_hex_and_leading_zeros() {
    let (body, _) = decode_all(Framing::Chunked, b"00A\r\n0123456789\r\n000\r\n\r\n", 4).unwrap();
    assert_eq!(body, b"0123456789");
}

#[test]
fn chunked_with_trailers() {
    let (body, mut d) = decode_all(
        Framing::Chunked,
        b"3\r\nabc\r\n0\r\nX-Sum: 1\r\ngrpc-status: 0\r\n\r\n",
        5,
    )
    .unwrap();
    assert_eq!(body, b"abc");
    let trailers = d.take_trailers().unwrap();
    assert_eq!(trailers["x-sum"], "1");
    assert_eq!(trailers["grpc-status"], "0");
}

#[test]
fn chunked_whitespace_before_extension() {
    let (body, _) = decode_all(Framing::Chunked, b"3 ;a=b\r\nabc\r\n0\t\r\n\r\n", 100).unwrap();
    assert_eq!(body, b"abc");
}

fn chunk_error(input: &[u8]) -> ErrorType {
    decode_all(Framing::Chunked, input, 100)
        .unwrap_err()
        .etype()
        .clone()
}

#[test]
fn chunked_rejects_bad_framing() {
    let bad: &[&[u8]] = &[
        b"x\r\nabc\r\n0\r\n\r\n",               // not hex
        b"\r\n",                                // empty size
        b"-3\r\nabc\r\n0\r\n\r\n",              // sign
        b"0x3\r\nabc\r\n0\r\n\r\n",             // 0x prefix
        b"3\nabc\r\n0\r\n\r\n",                 // bare LF after size
        b"3;ext\nabc\r\n0\r\n\r\n",             // bare LF after extension
        b"3\rxabc\r\n0\r\n\r\n",                // CR not followed by LF
        b"3\r\nabcd\r\n0\r\n\r\n",              // data longer than size
        b"3\r\nabc\n0\r\n\r\n",                 // bare LF after data
        b"3\r\nabc\rx0\r\n\r\n",                // CR then garbage after data
        b"10000000000000000\r\n",               // 17 digits: overflows u64
        b"3;a=\x01\r\nabc\r\n0\r\n\r\n",        // control char in extension
        b"3\r\nabc\r\n0\r\nbad header\r\n\r\n", // invalid trailer
    ];
    for input in bad {
        assert_eq!(
            chunk_error(input),
            ErrorType::InvalidHTTPHeader,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn chunked_max_size_fits() {
    let mut d = BodyDecoder::new(Framing::Chunked);
    let mut buf = BytesMut::from(&b"ffffffffffffffff\r\nab"[..]);
    assert_eq!(
        d.decode(&mut buf, false, &limits()).unwrap(),
        Decoded::Data(Bytes::from_static(b"ab"))
    );
    assert_eq!(
        d.decode(&mut buf, false, &limits()).unwrap(),
        Decoded::NeedMore
    );
}

#[test]
fn chunked_limits() {
    let small = Limits::default()
        .max_chunk_head_bytes(16)
        .max_trailer_bytes(16);
    let mut d = BodyDecoder::new(Framing::Chunked);
    let mut buf = BytesMut::from(&b"3;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\nabc"[..]);
    assert!(d.decode(&mut buf, false, &small).is_err());

    let mut d = BodyDecoder::new(Framing::Chunked);
    let mut buf = BytesMut::from(&b"0\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaa"[..]);
    assert!(d.decode(&mut buf, false, &small).is_err());

    // Found by the `h1_body_decoder` fuzz target: a complete trailer section over the limit
    // was accepted when it arrived in one read, and refused when it came in pieces.
    let mut d = BodyDecoder::new(Framing::Chunked);
    let mut buf = BytesMut::from(&b"0\r\nX-Long: aaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"[..]);
    assert!(d.decode(&mut buf, false, &small).is_err());
    let mut d = BodyDecoder::new(Framing::Chunked);
    let mut buf = BytesMut::from(&b"0\r\nX: aaaa\r\n\r\n"[..]);
    assert_eq!(d.decode(&mut buf, false, &small).unwrap(), Decoded::Done);

    // The empty line ending the body does not count: with no room for trailers, a body
    // without them still ends, whether that line comes whole or one byte at a time.
    let none = Limits::default().max_trailer_bytes(0);
    for step in [5, 1] {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut buf = BytesMut::new();
        let mut outcome = Decoded::NeedMore;
        for piece in b"0\r\n\r\n".chunks(step) {
            buf.extend_from_slice(piece);
            outcome = d.decode(&mut buf, false, &none).unwrap();
        }
        assert_eq!(outcome, Decoded::Done, "in pieces of {step}");
    }
}

#[test]
fn chunked_truncated_is_an_error() {
    for input in [
        &b"5\r\nhel"[..],
        b"5\r\nhello\r\n",
        b"5",
        b"5\r\nhello\r\n0\r\n",
    ] {
        let err = decode_all(Framing::Chunked, input, 3).unwrap_err();
        assert_eq!(err.etype(), &ErrorType::ConnectionClosed, "{input:?}");
    }
}

#[test]
fn until_close() {
    let (body, d) = decode_all(Framing::UntilClose, b"everything until eof", 4).unwrap();
    assert_eq!(body, b"everything until eof");
    assert!(d.is_done());
}

/// Found by the `h1_body_decoder` fuzz target: a body ended by a bare LF gave an empty trailer
/// map where one ended by CRLF gives none.
#[test]
fn chunked_end_without_trailers_gives_none() {
    for input in [&b"0\r\n\r\nNEXT"[..], b"0\r\n\nNEXT"] {
        let mut d = BodyDecoder::new(Framing::Chunked);
        let mut buf = BytesMut::from(input);
        assert_eq!(d.decode(&mut buf, false, &limits()).unwrap(), Decoded::Done);
        assert!(d.take_trailers().is_none(), "{input:?}");
        assert_eq!(&buf[..], b"NEXT");
    }
}
