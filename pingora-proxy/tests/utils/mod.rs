//! Test support: a `Server` run on a background thread with services on ephemeral loopback
//! ports, stopped when dropped.

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::process::Command;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::listeners::LocalAddrs;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::mpsc;

/// How long any single step of a test may take before the test fails.
pub const STEP: Duration = Duration::from_secs(10);

struct ChannelSignal(tokio::sync::Mutex<mpsc::UnboundedReceiver<ShutdownSignal>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        let signal = self.0.lock().await.recv().await;
        signal.unwrap_or(ShutdownSignal::FastShutdown)
    }
}

/// A server on a background thread.
pub struct TestServer {
    stop: mpsc::UnboundedSender<ShutdownSignal>,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server whose services `build` adds; `build` returns the endpoints to wait for,
    /// whose first bound TCP addresses are returned in order.
    pub fn start(
        build: impl FnOnce(&mut Server) -> Vec<LocalAddrs>,
    ) -> (TestServer, Vec<SocketAddr>) {
        let conf = ServerConf {
            threads: 2,
            // A graceful shutdown waits for the connections in flight (tests that start one
            // rely on that); dropping the server is a fast shutdown and does not wait.
            grace_period_seconds: Some(10),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        };
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        let endpoints = build(&mut server);
        let (stop, rx) = mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(ChannelSignal(tokio::sync::Mutex::new(rx))),
            })
        });
        let rt = runtime();
        let addrs = endpoints
            .into_iter()
            .map(|e| {
                let bound = rt
                    .block_on(async { tokio::time::timeout(STEP, e.wait()).await })
                    .expect("bound in time")
                    .expect("bound");
                *bound[0].as_inet().expect("a TCP endpoint")
            })
            .collect();
        (
            TestServer {
                stop,
                thread: Some(thread),
            },
            addrs,
        )
    }
}

impl TestServer {
    /// Starts a graceful shutdown (what SIGTERM does) without waiting for it.
    pub fn begin_graceful_shutdown(&self) {
        let _ = self.stop.send(ShutdownSignal::GracefulTerminate);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.stop.send(ShutdownSignal::FastShutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A current-thread runtime for a test's client side.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Runs curl with `args`; returns (status code, headers, body).
pub fn curl(args: &[&str]) -> (u16, String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-", "-o", "/dev/stdout"])
        .args(args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    split_response(&out.stdout)
}

/// Splits a raw HTTP/1 response into (final status, final head, body); 1xx heads are skipped.
pub fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut rest = raw;
    loop {
        let end = rest
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete head");
        let head = String::from_utf8_lossy(&rest[..end + 4]).to_string();
        // `HTTP/1.1 200` or, from curl over HTTP/2, `HTTP/2 200`.
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        rest = &rest[end + 4..];
        if !(100..200).contains(&status) || status == 101 {
            return (status, head, rest.to_vec());
        }
    }
}
