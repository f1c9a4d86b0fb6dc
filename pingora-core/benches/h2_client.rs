//! A whole HTTP/2 GET (small body) over one kept h2c connection to an in-process origin (the
//! `h2` crate's server), as a client:
//!
//! * `pingora pooled`: `http::Connector::get_http_session` of a stream on the pooled
//!   connection, write the request, read the response and its body, `release_http_session`;
//! * `hyper kept connection`: hyper 1.x `client::conn::http2` over one connection, as a
//!   reference;
//! * `h2 crate`: the `h2` crate's client directly, the floor both build on.
//!
//! Run briefly with `cargo bench -p pingora-core --bench h2_client -- --warm-up-time 1
//! --measurement-time 3`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use pingora_core::connectors::http::Connector;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_http::RequestHeader;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

const BODY: &[u8] = b"Hello, world!";

/// An h2c origin answering every request with 200 and [`BODY`].
fn origin(rt: &Runtime) -> SocketAddr {
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tcp.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((_req, mut respond))) = conn.accept().await {
                        let resp = http::Response::builder()
                            .status(200)
                            .header("content-type", "text/plain")
                            .header("content-length", BODY.len())
                            .body(())
                            .unwrap();
                        if let Ok(mut send) = respond.send_response(resp, false) {
                            let _ = send.send_data(Bytes::from_static(BODY), true);
                        }
                    }
                });
            }
        });
        addr
    })
}

fn request() -> Box<RequestHeader> {
    let mut req = RequestHeader::build("GET", b"/", None).unwrap();
    req.insert_header("Host", "origin.test").unwrap();
    Box::new(req)
}

async fn pingora_exchange(session: &mut HttpSession) -> usize {
    session.write_request_header(request()).await.unwrap();
    session.read_response_header().await.unwrap();
    let mut len = 0;
    while let Some(piece) = session.read_response_body().await.unwrap() {
        len += piece.len();
    }
    len
}

fn bench_h2_client(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = origin(&rt);
    let mut peer = HttpPeer::new(addr, false, String::new());
    peer.options.set_http_version(2, 2);
    peer.options.max_h2_streams = 100;
    let connector = Connector::new(None);

    let mut group = c.benchmark_group("h2 client GET");
    group.bench_function("pingora pooled", |b| {
        b.iter(|| {
            rt.block_on(async {
                let (mut session, _reused) = connector.get_http_session(&peer).await.unwrap();
                assert_eq!(pingora_exchange(&mut session).await, BODY.len());
                connector.release_http_session(session, &peer, None).await;
            })
        });
        assert_eq!(connector.h2_connection_count(&peer), 1);
    });

    let mut sender = rt.block_on(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        sender
    });
    group.bench_function("hyper kept connection", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = http::Request::get("http://origin.test/")
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                sender.ready().await.unwrap();
                let resp = sender.send_request(req).await.unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                assert_eq!(body.len(), BODY.len());
            })
        });
    });

    let send = rt.block_on(async {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (send, conn) = h2::client::handshake(stream).await.unwrap();
        tokio::spawn(conn);
        send
    });
    group.bench_function("h2 crate", |b| {
        b.iter(|| {
            rt.block_on(async {
                let req = http::Request::get("http://origin.test/").body(()).unwrap();
                let mut send = send.clone().ready().await.unwrap();
                let (resp, _) = send.send_request(req, true).unwrap();
                let mut body = resp.await.unwrap().into_body();
                let mut len = 0;
                while let Some(piece) = body.data().await {
                    let piece = piece.unwrap();
                    let _ = body.flow_control().release_capacity(piece.len());
                    len += piece.len();
                }
                assert_eq!(len, BODY.len());
            })
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = bench_h2_client
}
criterion_main!(benches);
