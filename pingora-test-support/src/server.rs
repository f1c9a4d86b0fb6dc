//! [`TestServer`]: a whole pingora `Server` on a background thread, stopped through a channel.

use std::net::SocketAddr;
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use pingora_core::listeners::LocalAddrs;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::{broadcast, mpsc};

use crate::TIMEOUT;

/// A shutdown "signal" the test sends through a channel; a closed channel is a fast shutdown.
struct ChannelSignal(tokio::sync::Mutex<mpsc::UnboundedReceiver<ShutdownSignal>>);

#[async_trait]
impl ShutdownSignalWatch for ChannelSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.lock().await;
        rx.recv().await.unwrap_or(ShutdownSignal::FastShutdown)
    }
}

/// A server running on a background thread. Dropping it sends a fast shutdown and waits (for
/// at most [`TIMEOUT`]) for the thread to end.
#[derive(Debug)]
pub struct TestServer {
    signal: mpsc::UnboundedSender<ShutdownSignal>,
    phases: broadcast::Receiver<ExecutionPhase>,
    thread: Option<JoinHandle<()>>,
    /// Receives once when the thread ends (the sender is dropped).
    ended: std_mpsc::Receiver<()>,
}

impl TestServer {
    /// The configuration of [`TestServer::start`]: two threads; a graceful shutdown waits up
    /// to 10 s for connections in flight and 1 s for services to stop.
    pub fn test_conf() -> ServerConf {
        ServerConf {
            threads: 2,
            grace_period_seconds: Some(10),
            graceful_shutdown_timeout_seconds: Some(1),
            ..ServerConf::default()
        }
    }

    /// Starts a bootstrapped server with [`TestServer::test_conf`] whose services `build`
    /// adds; `build` returns the endpoints to wait for, whose first bound TCP addresses are
    /// returned in order.
    ///
    /// # Panics
    ///
    /// If an endpoint fails to bind, or not within [`TIMEOUT`].
    pub fn start(
        build: impl FnOnce(&mut Server) -> Vec<LocalAddrs>,
    ) -> (TestServer, Vec<SocketAddr>) {
        Self::start_with_conf(Self::test_conf(), build)
    }

    /// [`TestServer::start`] with the server configuration `conf`.
    ///
    /// # Panics
    ///
    /// If an endpoint fails to bind, or not within [`TIMEOUT`].
    pub fn start_with_conf(
        conf: ServerConf,
        build: impl FnOnce(&mut Server) -> Vec<LocalAddrs>,
    ) -> (TestServer, Vec<SocketAddr>) {
        let mut server = Server::new_with_opt_and_conf(None, conf);
        server.bootstrap();
        let endpoints = build(&mut server);
        let running = TestServer::run(server);
        let rt = crate::current_thread_runtime();
        let addrs = endpoints
            .iter()
            .map(|e| rt.block_on(crate::service::bound(e)).expect("bound"))
            .collect();
        (running, addrs)
    }

    /// Runs `server` on a new thread; its phases are recorded from now on.
    pub fn run(server: Server) -> TestServer {
        let phases = server.watch_execution_phase();
        let (signal, rx) = mpsc::unbounded_channel();
        let (ended_tx, ended) = std_mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let _ended = ended_tx;
            server.run(RunArgs {
                shutdown_signal: Box::new(ChannelSignal(tokio::sync::Mutex::new(rx))),
            })
        });
        TestServer {
            signal,
            phases,
            thread: Some(thread),
            ended,
        }
    }

    /// Sends a shutdown signal.
    ///
    /// # Panics
    ///
    /// If the server no longer listens for signals.
    pub fn signal(&self, signal: ShutdownSignal) {
        self.signal.send(signal).expect("the server is running");
    }

    /// Starts a graceful shutdown (what SIGTERM does) without waiting for it.
    pub fn begin_graceful_shutdown(&self) {
        let _ = self.signal.send(ShutdownSignal::GracefulTerminate);
    }

    /// Waits for the phase named `name` (see [`phase_name`]); returns the names of the phases
    /// seen until then, that one included.
    ///
    /// # Panics
    ///
    /// If that phase does not come within [`TIMEOUT`].
    pub async fn wait_phase(&mut self, name: &str) -> Vec<&'static str> {
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
    ///
    /// # Panics
    ///
    /// If the server thread panicked.
    pub fn join(mut self) -> Vec<&'static str> {
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread panicked");
        }
        let mut rest = Vec::new();
        while let Ok(phase) = self.phases.try_recv() {
            rest.push(phase_name(&phase));
        }
        rest
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let _ = self.signal.send(ShutdownSignal::FastShutdown);
        // A server that does not stop is left behind rather than hanging the test.
        if let Err(std_mpsc::RecvTimeoutError::Disconnected) = self.ended.recv_timeout(TIMEOUT) {
            let _ = thread.join();
        }
    }
}

/// The name of a phase's variant.
pub fn phase_name(phase: &ExecutionPhase) -> &'static str {
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
