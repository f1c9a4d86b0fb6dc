//! TLS handshake cost per backend, client and server in one thread over an in-memory pipe
//! (no sockets), ECDSA P-256 certificate, TLS 1.3:
//!
//! * `full`: a new client (no session to resume) each time; its set-up is not timed;
//! * `resumed`: one client that resumes the session of its previous handshake.
//!
//! Each handshake ends with the server writing one byte and the client reading it, so that the
//! client takes in the session tickets. handshakes/s ≈ 1 / time. BoringSSL is measured instead
//! of OpenSSL with `--features boringssl` (the two cannot link into one binary).
//!
//! Run briefly with `cargo bench -p pingora-core --bench tls_handshake -- --warm-up-time 1
//! --measurement-time 3`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_core::tls::{
    AcceptParams, ClientConfig, ConnectParams, ServerConfig, TlsClient, TlsProvider, TlsServer,
};
use pingora_test_support::tls::Pki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One handshake; returns whether it resumed a session.
async fn handshake(server: &dyn TlsServer, client: &dyn TlsClient, params: ConnectParams) -> bool {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let (s, c) = tokio::join!(
        server.accept(Box::new(a), AcceptParams::default()),
        client.connect(Box::new(b), params)
    );
    let (mut s, mut c) = (s.expect("server handshake"), c.expect("client handshake"));
    s.write_all(b"x").await.unwrap();
    s.flush().await.unwrap();
    let mut byte = [0u8; 1];
    c.read_exact(&mut byte).await.unwrap();
    c.info().resumed
}

fn bench_backend(c: &mut Criterion, name: &str, provider: Arc<dyn TlsProvider>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = Pki::new("bench CA");
    let cert_key = pki.server(&["localhost"]).cert_key;
    let server = provider
        .new_server(ServerConfig {
            cert_key: Some(cert_key),
            ..ServerConfig::default()
        })
        .unwrap();
    let client_config = ClientConfig {
        ca: Some(pki.ca()),
        ..ClientConfig::default()
    };
    let params = ConnectParams {
        sni: "localhost".to_string(),
        verify_cert: true,
        verify_hostname: true,
        alternative_cn: None,
        ca: None,
        cert_key: None,
        alpn: vec![b"http/1.1".to_vec()],
    };
    let mut group = c.benchmark_group(format!("tls_handshake/{name}"));
    group.bench_function("full", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let client = provider.new_client(client_config.clone()).unwrap();
                    let start = Instant::now();
                    let resumed = handshake(&*server, &*client, params.clone()).await;
                    total += start.elapsed();
                    assert!(!resumed);
                }
                total
            })
        })
    });
    let client = provider.new_client(client_config.clone()).unwrap();
    rt.block_on(handshake(&*server, &*client, params.clone()));
    group.bench_function("resumed", |b| {
        b.iter(|| {
            let resumed = rt.block_on(handshake(&*server, &*client, params.clone()));
            assert!(resumed, "{name} did not resume");
        })
    });
    group.finish();
}

fn bench_handshakes(c: &mut Criterion) {
    #[cfg(not(feature = "boringssl"))]
    bench_backend(c, "openssl", pingora_openssl::provider());
    #[cfg(feature = "boringssl")]
    bench_backend(
        c,
        "boringssl",
        pingora_core::tls::Backend::BoringSsl
            .provider()
            .expect("the boringssl feature compiles the backend in"),
    );
    bench_backend(
        c,
        "s2n",
        Arc::new(pingora_s2n::S2nProvider::new().with_max_blinding_delay(0)),
    );
    bench_backend(c, "rustls", pingora_rustls::provider());
}

criterion_group!(benches, bench_handshakes);
criterion_main!(benches);
