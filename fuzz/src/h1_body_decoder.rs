//! `BodyDecoder` over arbitrary bytes cut into arbitrary pieces, with and without EOF: the
//! outcome does not depend on how the bytes arrive, length bodies are exact prefixes, and a
//! body framed by `BodyEncoder` decodes back to itself.

use bytes::BytesMut;
use pingora_error::ErrorType;
use pingora_http_codec::h1::decode::{BodyDecoder, Decoded};
use pingora_http_codec::h1::encode::BodyEncoder;
use pingora_http_codec::h1::{Framing, Limits};

use crate::Input;

/// How a run ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Done,
    /// The input ran out (without EOF).
    NeedMore,
    Error(ErrorType),
}

/// What a decoder made of one input.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    body: Vec<u8>,
    end: End,
    /// Bytes left unread after the body.
    rest: Vec<u8>,
    trailers: Option<Vec<(String, Vec<u8>)>>,
}

/// The fuzz check.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.byte();
    let eof = mode & 0x80 != 0;
    let limits = Limits::default()
        .max_chunk_head_bytes(usize::from(input.byte()) + 1)
        .max_trailer_bytes(usize::from(input.u16()));
    let framing = match mode % 4 {
        0 => Framing::Chunked,
        1 => Framing::UntilClose,
        2 => Framing::Length(u64::from(input.u16())),
        _ => return encoded_round_trip(&mut input),
    };
    let seed = input.u16();
    let body = input.rest();

    let whole = decode(framing, &[body], eof, &limits);
    let pieces = split(body, seed);
    let split_up = decode(framing, &pieces, eof, &limits);
    assert_eq!(
        whole, split_up,
        "the outcome depends on how the bytes arrive"
    );
    let bytewise: Vec<&[u8]> = body.chunks(1).collect();
    if body.len() <= 512 {
        assert_eq!(whole, decode(framing, &bytewise, eof, &limits));
    }

    assert!(whole.body.len() + whole.rest.len() <= body.len());
    assert!(
        body.ends_with(&whole.rest),
        "the unread bytes are the end of the input"
    );
    match framing {
        Framing::Length(n) => {
            let n = usize::from(u16::try_from(n).expect("built from a u16"));
            let got = n.min(body.len());
            assert_eq!(whole.body, &body[..got]);
            assert_eq!(whole.rest, &body[got..]);
            let expected = match (got == n, eof) {
                (true, _) => End::Done,
                (false, true) => End::Error(ErrorType::ConnectionClosed),
                (false, false) => End::NeedMore,
            };
            assert_eq!(whole.end, expected);
        }
        Framing::UntilClose => {
            assert_eq!(whole.body, body);
            assert_eq!(whole.end, if eof { End::Done } else { End::NeedMore });
        }
        Framing::Chunked => {
            if whole.end == End::Done {
                let consumed = body.len() - whole.rest.len();
                assert!(whole.body.len() < consumed, "no framing bytes consumed");
                reframed(&whole);
            }
            if let End::Error(e) = &whole.end {
                assert!(
                    matches!(
                        e,
                        ErrorType::InvalidHTTPHeader | ErrorType::ConnectionClosed
                    ),
                    "{e:?}"
                );
            }
        }
        Framing::Empty => unreachable!(),
    }
}

/// A decoded chunked body, framed again by `BodyEncoder` with its trailers, decodes to the
/// same body and trailers.
fn reframed(decoded: &Outcome) {
    let mut encoder = BodyEncoder::new(Framing::Chunked);
    let frame = encoder
        .encode(decoded.body.len())
        .expect("a chunked body takes any length");
    let mut wire = frame.prefix().to_vec();
    wire.extend_from_slice(&decoded.body);
    wire.extend_from_slice(frame.suffix);
    let trailers = decoded.trailers.as_ref().map(|fields| {
        let mut map = http::HeaderMap::new();
        for (name, value) in fields {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).expect("a decoded name"),
                http::HeaderValue::from_bytes(value).expect("a decoded value"),
            );
        }
        map
    });
    encoder
        .finish(trailers.as_ref(), &mut wire)
        .expect("a chunked body can always end");
    let again = decode(Framing::Chunked, &[&wire], false, &Limits::default());
    assert_eq!(again.end, End::Done);
    assert_eq!(again.body, decoded.body);
    assert_eq!(again.trailers, decoded.trailers);
    assert!(again.rest.is_empty());
}

/// Splits `body` into pieces whose sizes come from `seed`.
fn split(body: &[u8], seed: u16) -> Vec<&[u8]> {
    let mut state = u32::from(seed) | 1;
    let mut pieces = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        // xorshift: cheap, deterministic piece sizes from 1 to 16.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state % 16 + 1) as usize;
        let (head, tail) = rest.split_at(n.min(rest.len()));
        pieces.push(head);
        rest = tail;
    }
    pieces
}

/// Feeds `pieces` one at a time, as a session reading a socket would.
fn decode(framing: Framing, pieces: &[&[u8]], eof: bool, limits: &Limits) -> Outcome {
    let mut decoder = BodyDecoder::new(framing);
    let mut buf = BytesMut::new();
    let mut next = pieces.iter();
    let mut body = Vec::new();
    let mut at_eof = false;
    let end = loop {
        match decoder.decode(&mut buf, at_eof, limits) {
            Ok(Decoded::Data(piece)) => {
                assert!(!piece.is_empty(), "an empty piece of body");
                body.extend_from_slice(&piece);
            }
            Ok(Decoded::Done) => {
                assert!(decoder.is_done());
                break End::Done;
            }
            Ok(Decoded::NeedMore) => {
                assert!(!at_eof, "more bytes asked for after EOF");
                match next.next() {
                    Some(piece) => buf.extend_from_slice(piece),
                    None if eof => at_eof = true,
                    None => break End::NeedMore,
                }
            }
            Err(e) => break End::Error(e.etype().clone()),
        }
    };
    assert_eq!(decoder.decoded_bytes(), body.len() as u64);
    let mut rest = buf.to_vec();
    for piece in next {
        rest.extend_from_slice(piece);
    }
    let trailers = decoder.take_trailers().map(|map| {
        map.iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
            .collect()
    });
    Outcome {
        body,
        end,
        rest,
        trailers,
    }
}

/// Frames pieces of the input with `BodyEncoder` (chunked or by length) and decodes the wire
/// bytes: the body comes back whole and nothing is left over.
fn encoded_round_trip(input: &mut Input<'_>) {
    let chunked = input.byte() & 1 == 0;
    let mut pieces = Vec::new();
    while !input.is_empty() {
        pieces.push(input.slice8());
    }
    let body: Vec<u8> = pieces.concat();
    let framing = if chunked {
        Framing::Chunked
    } else {
        Framing::Length(body.len() as u64)
    };
    let mut encoder = BodyEncoder::new(framing);
    let mut wire = Vec::new();
    for piece in &pieces {
        let frame = encoder
            .encode(piece.len())
            .expect("within the announced length");
        assert_eq!(frame.data_len, piece.len());
        wire.extend_from_slice(frame.prefix());
        wire.extend_from_slice(piece);
        wire.extend_from_slice(frame.suffix);
    }
    encoder
        .finish(None, &mut wire)
        .expect("the whole body was written");
    assert_eq!(encoder.written(), body.len() as u64);
    let mut trailing = wire.clone();
    trailing.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let pieces: Vec<&[u8]> = trailing.chunks(7).collect();
    let outcome = decode(framing, &pieces, false, &Limits::default());
    assert_eq!(outcome.end, End::Done);
    assert_eq!(outcome.body, body);
    assert_eq!(
        outcome.rest, b"GET / HTTP/1.1\r\n",
        "a pipelined request stays"
    );
}
