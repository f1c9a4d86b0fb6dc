//! A whole HTTP/1.1 GET (small body) against an in-process loopback origin, as a client:
//!
//! * `pingora pooled`: `http::Connector::get_http_session` of a pooled connection, write the
//!   request, read the response and its body, `release_http_session` back to the pool;
//! * `pingora fresh connection`: the same, over a new connection each time (closed after);
//! * `pingora session, no pool`: the same session calls over one kept connection, handed
//!   from one session to the next with `reuse`, without the pool (what the pool costs);
//! * `hyper kept connection`: hyper 1.x `client::conn::http1` over one kept connection, as a
//!   reference.
//!
//! All three talk to the same raw origin, on one current-thread runtime.
//!
//! Run briefly with `cargo bench -p pingora-core --bench http_client -- --warm-up-time 1
//! --measurement-time 3`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::HttpSession as Http1Session;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
const BODY_LEN: usize = 13;

/// An origin answering every request head on every connection with [`RESPONSE`], keeping
/// connections open until the client closes them.
fn origin(rt: &Runtime) -> SocketAddr {
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn));
            }
        });
        addr
    })
}

async fn serve(mut conn: TcpStream) {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            if conn.write_all(RESPONSE).await.is_err() {
                return;
            }
        }
    }
}

fn request() -> Box<RequestHeader> {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    Box::new(req)
}

/// Sends a GET and reads the whole response; returns the body length.
async fn pingora_exchange(session: &mut HttpSession) -> usize {
    session.write_request_header(request()).await.unwrap();
    session.finish_request_body().await.unwrap();
    session.read_response_header().await.unwrap();
    let mut len = 0;
    while let Some(piece) = session.read_response_body().await.unwrap() {
        len += piece.len();
    }
    len
}

fn bench_http_client(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = origin(&rt);
    let peer = HttpPeer::new(addr, false, String::new());
    let connector = Connector::new(None);

    let mut group = c.benchmark_group("http client GET");
    group.bench_function("pingora pooled", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (mut session, _reused) = connector.get_http_session(&peer).await.unwrap();
                assert_eq!(pingora_exchange(&mut session).await, BODY_LEN);
                connector.release_http_session(session, &peer, None).await;
            })
        });
        // After the warm-up every session was a pooled one.
        let (session, reused) = rt.block_on(connector.get_http_session(&peer)).unwrap();
        assert!(reused);
        drop(session);
    });

    group.bench_function("pingora fresh connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (mut session, reused) = connector.get_http_session(&peer).await.unwrap();
                assert!(!reused);
                assert_eq!(pingora_exchange(&mut session).await, BODY_LEN);
                // A zero idle timeout closes the connection instead of pooling it.
                connector
                    .release_http_session(session, &peer, Some(Duration::ZERO))
                    .await;
            })
        });
    });

    // The session alone over one kept connection, without the pool: what the pool adds.
    let mut kept = Some(rt.block_on(async {
        let (stream, _) = connector.transport().get_stream(&peer).await.unwrap();
        stream
    }));
    group.bench_function("pingora session, no pool", |b| {
        b.iter(|| {
            rt.block_on(async {
                let stream = kept.take().expect("a kept connection");
                let mut h1 = Http1Session::new_with_options(stream, &peer);
                h1.write_request_header(request()).await.unwrap();
                h1.finish_body().await.unwrap();
                h1.read_response().await.unwrap();
                let mut len = 0;
                while let Some(piece) = h1.read_body_bytes().await.unwrap() {
                    len += piece.len();
                }
                assert_eq!(len, BODY_LEN);
                h1.respect_keepalive();
                kept = Some(h1.reuse().await.expect("a reusable connection"));
            })
        });
    });
    drop(kept);

    let mut sender = rt.block_on(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    });
    group.bench_function("hyper kept connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = http::Request::get("/")
                    .header("Host", "origin.test")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                sender.ready().await.unwrap();
                let resp = sender.send_request(req).await.unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body.len(), BODY_LEN);
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = bench_http_client
}
criterion_main!(benches);
