//! Helpers for the server integration tests: a server run on a background thread and stopped
//! through a channel, and an echo application.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::protocols::Stream;
use pingora_core::server::{
    ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch, ShutdownWatch,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, Notify};

/// How long any single wait in a test may take before the test fails.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// A shutdown signal the test sends through a channel.
pub(crate) struct ChannelSignal(tokio::sync::Mutex<mpsc::UnboundedReceiver<ShutdownSignal>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.lock().await;
        rx.recv().await.unwrap_or(ShutdownSignal::FastShutdown)
    }
}

/// A server running on a background thread.
pub(crate) struct RunningServer {
    signal: mpsc::UnboundedSender<ShutdownSignal>,
    phases: broadcast::Receiver<ExecutionPhase>,
    thread: JoinHandle<()>,
}

impl RunningServer {
    /// Runs `server` on a new thread; the phases are recorded from now on.
    pub(crate) fn start(server: Server) -> RunningServer {
        let phases = server.watch_execution_phase();
        let (signal, rx) = mpsc::unbounded_channel();
        let thread = std::thread::spawn(move || {
            server.run(RunArgs {
                shutdown_signal: Box::new(ChannelSignal(tokio::sync::Mutex::new(rx))),
            })
        });
        RunningServer {
            signal,
            phases,
            thread,
        }
    }

    /// Sends a shutdown signal.
    pub(crate) fn signal(&self, signal: ShutdownSignal) {
        self.signal.send(signal).expect("the server is running");
    }

    /// Waits for the phase named `name`; returns the names of the phases seen until then,
    /// that one included.
    pub(crate) async fn wait_phase(&mut self, name: &str) -> Vec<&'static str> {
        let mut seen = Vec::new();
        loop {
            let phase = tokio::time::timeout(TIMEOUT, self.phases.recv())
                .await
                .unwrap_or_else(|_| panic!("no {name} phase; saw {seen:?}"))
                .expect("phase channel");
            seen.push(phase_name(&phase));
            if seen.last() == Some(&name) {
                return seen;
            }
        }
    }

    /// Waits for the server thread to return; returns the names of the phases not yet seen.
    pub(crate) fn join(mut self) -> Vec<&'static str> {
        self.thread.join().expect("the server thread panicked");
        let mut rest = Vec::new();
        while let Ok(phase) = self.phases.try_recv() {
            rest.push(phase_name(&phase));
        }
        rest
    }
}

/// The name of a phase's variant.
pub(crate) fn phase_name(phase: &ExecutionPhase) -> &'static str {
    match phase {
        ExecutionPhase::Setup => "Setup",
        ExecutionPhase::Bootstrap => "Bootstrap",
        ExecutionPhase::BootstrapComplete => "BootstrapComplete",
        ExecutionPhase::Running(_) => "Running",
        ExecutionPhase::GracefulUpgradeTransferringFds(_) => "GracefulUpgradeTransferringFds",
        ExecutionPhase::GracefulUpgradeCloseTimeout(_) => "GracefulUpgradeCloseTimeout",
        ExecutionPhase::GracefulTerminate(_) => "GracefulTerminate",
        ExecutionPhase::ShutdownStarted => "ShutdownStarted",
        ExecutionPhase::ShutdownGracePeriod => "ShutdownGracePeriod",
        ExecutionPhase::ShutdownRuntimes => "ShutdownRuntimes",
        ExecutionPhase::Terminated => "Terminated",
        _ => "unknown",
    }
}

/// A runtime for the test's client side.
pub(crate) fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// What an [`Echo`] app has done.
#[derive(Default)]
pub(crate) struct EchoStats {
    pub(crate) connections: AtomicUsize,
    pub(crate) cleanups: AtomicUsize,
    pub(crate) cleaned: Notify,
}

/// Echoes everything back until the peer closes.
#[derive(Default)]
pub(crate) struct Echo {
    pub(crate) stats: Arc<EchoStats>,
}

#[async_trait]
impl ServerApp for Echo {
    async fn process_new(self: &Arc<Self>, mut io: Stream, _: &ShutdownWatch) -> Option<Stream> {
        self.stats.connections.fetch_add(1, Ordering::SeqCst);
        let mut buf = [0u8; 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => io.write_all(&buf[..n]).await.ok()?,
            }
            io.flush().await.ok()?;
        }
    }

    async fn cleanup(&self) {
        self.stats.cleanups.fetch_add(1, Ordering::SeqCst);
        self.stats.cleaned.notify_one();
    }
}

/// Sends `msg` and checks it comes back.
pub(crate) async fn echo_round_trip<S: AsyncRead + AsyncWrite + Unpin>(client: &mut S, msg: &[u8]) {
    client.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(TIMEOUT, client.read_exact(&mut buf))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(buf, msg);
}
