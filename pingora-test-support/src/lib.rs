//! Shared helpers for the workspace's integration tests and benches. Not published; a
//! dev-dependency only.
//!
//! What it offers, by module:
//!
//! * [`service`]: [`TestService`], one listening pingora service (plain TCP or TLS) run as a
//!   task of the test's own runtime on `127.0.0.1:0`;
//! * [`server`]: [`TestServer`], a whole pingora `Server` on a background thread, stopped
//!   through a channel instead of a signal, with its execution phases recorded (and, with
//!   feature `proxy`, `proxy::ProxyUnderTest` to start a pingora-proxy service in one);
//! * [`apps`]: small pingora applications to serve: [`apps::ByteEcho`], which echoes bytes
//!   and reports each connection's TLS facts;
//! * [`origin`]: origins that are not pingora: scripted raw TCP ([`origin::raw_origin`]) and
//!   a hyper HTTP/1 server ([`origin::hyper_origin`]) with standard routes;
//! * [`scripted`]: [`scripted::ScriptedOrigin`], an HTTP/1.1 origin answering each target as
//!   the test scripts it (framing, delays, pauses, cuts, 304s, sequences) and recording every
//!   request;
//! * [`h2`]: an h2c origin and an h2c client built on the `h2` crate, and hand-built frames
//!   with a raw HTTP/2 client ([`h2::frames`]) for malformed input;
//! * [`raw`]: [`RawConn`], one connection spoken to in raw HTTP/1 bytes, as a client or as an
//!   origin, for malformed input and for checking bytes exactly as they are on the wire;
//! * [`body`]: deterministic pseudo-random bodies and a checker for them;
//! * [`tls`]: run-time certificates (a test CA and leaves signed by it, with rcgen) and TLS
//!   client helpers;
//! * [`curl`]: the `curl` binary as a client;
//! * [`leaks`]: live heap bytes (a counting global allocator), open file descriptors and
//!   runtime tasks, and a [`leaks::Baseline`] that waits for them to come back.
//!
//! Every wait is bounded by [`TIMEOUT`]; every listener binds an ephemeral loopback port, and
//! readiness is awaited (the bound address), never slept for.
//!
//! The crate depends on `pingora-core`, so use it from integration tests and benches only:
//! inside `pingora-core`'s own `#[cfg(test)]` modules its types would be a second, distinct
//! copy of that crate's types.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

pub mod apps;
pub mod body;
pub mod curl;
pub mod h2;
pub mod leaks;
pub mod origin;
#[cfg(feature = "proxy")]
pub mod proxy;
pub mod raw;
pub mod runner;
pub mod scripted;
pub mod server;
pub mod service;
pub mod tls;

pub use raw::RawConn;
pub use server::TestServer;
pub use service::TestService;

/// How long any single wait of a test may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `fut`, failing the test if it takes longer than [`TIMEOUT`].
///
/// # Panics
///
/// When `fut` does not finish in time; `what` names it in the message.
pub async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {TIMEOUT:?}: {what}"),
    }
}

/// A multi-threaded runtime (two workers) for the origins and clients of a synchronous test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A current-thread runtime for the client side of a synchronous test.
pub fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// A loopback address where nothing listens: every connection to it is refused.
///
/// The port stays bound, without listening, for the life of the test process (one socket,
/// made on first use), so no other test can come to listen on it; a port merely bound and
/// closed could be taken by a concurrent test's server and answer.
pub fn dead_addr() -> SocketAddr {
    static DEAD: std::sync::OnceLock<(tokio::net::TcpSocket, SocketAddr)> =
        std::sync::OnceLock::new();
    DEAD.get_or_init(|| {
        let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
        socket
            .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .expect("bind");
        let addr = socket.local_addr().expect("local addr");
        (socket, addr)
    })
    .1
}

#[cfg(test)]
mod dead_addr_tests {
    use super::dead_addr;

    #[test]
    fn the_dead_address_refuses_connections_and_stays_taken() {
        let addr = dead_addr();
        assert_eq!(dead_addr(), addr);
        for _ in 0..3 {
            let err = std::net::TcpStream::connect(addr).expect_err("nothing listens");
            assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        // Nobody else can come to listen there.
        assert!(std::net::TcpListener::bind(addr).is_err());
    }
}
