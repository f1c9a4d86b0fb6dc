//! Taking an upstream connection: reusing a pooled one versus connecting afresh, over
//! loopback TCP.
//!
//! * `pooled get+release`: `TransportConnector::get_stream` of a pooled connection, then
//!   `release_stream` back to the pool (liveness checks, idle watcher hand-over included);
//! * `connector new_stream`: a new connection through the connector each time, dropped after;
//! * `TcpStream::connect`: a bare tokio connect each time, dropped after.
//!
//! Run briefly with `cargo bench -p pingora-core --bench connector -- --warm-up-time 1
//! --measurement-time 3`.

use std::net::SocketAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_core::connectors::TransportConnector;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;

/// An origin that accepts connections and keeps them open until the runtime ends.
fn origin(rt: &Runtime) -> SocketAddr {
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                // Keep the few long-lived connections; drop churned ones quickly.
                if open.len() < 16 {
                    open.push(conn);
                }
            }
        });
        addr
    })
}

fn bench_connector(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = origin(&rt);
    let peer = HttpPeer::new(addr, false, String::new());
    let key = peer.reuse_hash();
    let connector = TransportConnector::new(None);

    let mut group = c.benchmark_group("upstream connection");
    group.bench_function("pooled get+release", |b| {
        rt.block_on(async {
            let (stream, _) = connector.get_stream(&peer).await.unwrap();
            connector.release_stream(stream, key, None);
        });
        b.iter(|| {
            rt.block_on(async {
                let (stream, reused) = connector.get_stream(&peer).await.unwrap();
                debug_assert!(reused);
                connector.release_stream(stream, key, None);
            })
        });
    });
    group.bench_function("connector new_stream", |b| {
        b.iter(|| rt.block_on(async { drop(connector.new_stream(&peer).await.unwrap()) }));
    });
    group.bench_function("TcpStream::connect", |b| {
        b.iter(|| rt.block_on(async { drop(TcpStream::connect(addr).await.unwrap()) }));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = bench_connector
}
criterion_main!(benches);
