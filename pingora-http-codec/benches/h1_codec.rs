//! The sans-IO HTTP/1 codec alone: parsing a browser-sized request head and a typical response
//! head, writing a response head, decoding a chunked body. No session, executor or socket is
//! involved; `pingora-core`'s `h1_head` bench measures a whole exchange through the session.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use pingora_http::ResponseHeader;
use pingora_http_codec::h1::decode::{BodyDecoder, Decoded};
use pingora_http_codec::h1::{head, Framing, Limits};

/// A request as a browser sends it: 11 headers, about 600 bytes.
const REQUEST: &[u8] = b"GET /static/app/main.js?v=20261126 HTTP/1.1\r\n\
Host: www.example.com\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://www.example.com/index.html\r\n\
Connection: keep-alive\r\n\
Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; lang=en\r\n\
Sec-Fetch-Dest: script\r\n\
Sec-Fetch-Mode: no-cors\r\n\
Priority: u=1\r\n\
\r\n";

/// A response as a static-file origin sends it.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Server: nginx/1.22.1\r\n\
Date: Thu, 26 Nov 2026 23:00:00 GMT\r\n\
Content-Type: application/javascript\r\n\
Content-Length: 1024\r\n\
Last-Modified: Wed, 25 Nov 2026 10:00:00 GMT\r\n\
Connection: keep-alive\r\n\
ETag: \"6745e2a0-400\"\r\n\
Accept-Ranges: bytes\r\n\
\r\n";

/// A 16 KiB body in four chunks, then an empty trailer section.
fn chunked_body() -> Bytes {
    let mut body = Vec::new();
    for _ in 0..4 {
        body.extend_from_slice(b"1000\r\n");
        body.extend_from_slice(&[b'x'; 0x1000]);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    Bytes::from(body)
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let mut group = c.benchmark_group("h1_codec");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_request", |b| {
        b.iter_batched(
            || BytesMut::from(REQUEST),
            |mut buf| head::parse_request(&mut buf, &limits).unwrap().unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("parse_response", |b| {
        b.iter_batched(
            || BytesMut::from(RESPONSE),
            |mut buf| {
                head::parse_response(&mut buf, &limits, true)
                    .unwrap()
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    let mut resp = ResponseHeader::build(200, Some(4)).unwrap();
    resp.insert_header("Content-Type", "application/javascript")
        .unwrap();
    resp.insert_header("Content-Length", "1024").unwrap();
    resp.insert_header("Cache-Control", "max-age=3600").unwrap();
    resp.insert_header("Date", "Thu, 26 Nov 2026 23:00:00 GMT")
        .unwrap();
    let mut out = BytesMut::with_capacity(512);
    group.bench_function("write_response_head", |b| {
        b.iter(|| {
            out.clear();
            head::write_response_head(&resp, &mut out);
            out.len()
        })
    });
    let body = chunked_body();
    group.bench_function("decode_chunked_16k", |b| {
        b.iter_batched(
            || BytesMut::from(&body[..]),
            |mut buf| {
                let mut decoder = BodyDecoder::new(Framing::Chunked);
                let mut len = 0;
                while let Decoded::Data(piece) = decoder.decode(&mut buf, true, &limits).unwrap() {
                    len += piece.len();
                }
                len
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
