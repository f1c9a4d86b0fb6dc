//! The listening service: accepts connections on its endpoints and serves each with an
//! application ([`ServerApp`]).
//!
//! ```no_run
//! use pingora_core::apps::ServerApp;
//! use pingora_core::protocols::Stream;
//! use pingora_core::server::{Server, ShutdownWatch};
//! use pingora_core::services::listening::Service;
//! use std::sync::Arc;
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! struct Echo;
//!
//! #[async_trait::async_trait]
//! impl ServerApp for Echo {
//!     async fn process_new(self: &Arc<Self>, mut io: Stream, _: &ShutdownWatch) -> Option<Stream> {
//!         let mut buf = [0; 1024];
//!         while let Ok(n @ 1..) = io.read(&mut buf).await {
//!             io.write_all(&buf[..n]).await.ok()?;
//!         }
//!         None
//!     }
//! }
//!
//! let mut server = Server::new(None).unwrap();
//! let mut echo = Service::new("echo".to_string(), Echo);
//! echo.add_tcp("127.0.0.1:6142");
//! server.add_service(echo);
//! server.run_forever();
//! ```
//!
//! # Connections and shutdown
//!
//! Each endpoint is served by `listener_tasks_per_fd` accept tasks. Every accepted connection
//! runs as its own task on the service's runtime: the application's
//! [`process_new`](ServerApp::process_new) is called, and called again for as long as it hands
//! the connection back.
//!
//! When the server shuts down gracefully, the service stops accepting, serves the connections
//! already waiting in the accept queues, and closes its listening sockets (new connections are
//! refused, unless a new process took the sockets over in a graceful upgrade), calls the
//! application's
//! [`cleanup`](ServerApp::cleanup), then waits for the connections in flight to finish.

use std::fmt;
use std::fs::Permissions;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_runtime::current_handle;
use tokio::sync::{mpsc, watch};

use crate::apps::ServerApp;
use crate::listeners::ListenFds;
use crate::listeners::{
    ListenerConfig, Listeners, LocalAddrs, ServerAddress, TcpSocketOptions, TransportStack,
    UninitializedStream,
};
use crate::protocols::Stream;
use crate::services::{Service as ServiceTrait, ServiceReadyNotifier};
use crate::shutdown::ShutdownWatch;

/// How long accepting pauses after an error that is not about one connection, such as running
/// out of file descriptors (`EMFILE`): retrying at once would fail again at once.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// A service that listens on endpoints and serves their connections with an application.
pub struct Service<A> {
    name: String,
    listeners: Listeners,
    app_logic: Option<A>,
    /// How many threads the service wants; `None` to use the server's `threads` setting.
    pub threads: Option<usize>,
    /// The server's drain signal, handed to the application instead of `shutdown`.
    drain: Option<ShutdownWatch>,
}

/// Counts the connections being served; [`InFlight::wait`] waits until there are none.
struct InFlight {
    guard: mpsc::Sender<()>,
    idle: mpsc::Receiver<()>,
}

/// Held by each connection task while it runs.
type InFlightGuard = mpsc::Sender<()>;

// === impl Service ===

impl<A> Service<A> {
    /// A service named `name` serving connections with `app_logic`, without endpoints yet.
    pub fn new(name: String, app_logic: A) -> Self {
        Service::with_listeners(name, Listeners::new(), app_logic)
    }

    /// A service named `name` serving the connections of `listeners` with `app_logic`.
    pub fn with_listeners(name: String, listeners: Listeners, app_logic: A) -> Self {
        Service {
            name,
            listeners,
            app_logic: Some(app_logic),
            drain: None,
            threads: None,
        }
    }

    /// Sets the filter that decides, by the client's address, which connections of every
    /// endpoint are served, before any TLS handshake (see
    /// [`ConnectionFilter`](crate::listeners::ConnectionFilter)).
    pub fn set_connection_filter(&mut self, filter: Arc<dyn crate::listeners::ConnectionFilter>) {
        self.listeners.set_connection_filter(filter);
    }

    /// The endpoints, to add more. Endpoints added after the service started are not used.
    pub fn endpoints(&mut self) -> &mut Listeners {
        &mut self.listeners
    }

    /// Adds a TCP endpoint at `addr`, such as `127.0.0.1:8000`.
    pub fn add_tcp(&mut self, addr: &str) {
        self.listeners.add_tcp(addr);
    }

    /// Adds a TCP endpoint at `addr` with socket options.
    pub fn add_tcp_with_settings(&mut self, addr: &str, sock_opt: TcpSocketOptions) {
        self.listeners.add_tcp_with_settings(addr, sock_opt);
    }

    /// Adds a Unix-domain socket endpoint at the path `addr`, with the permissions of its file
    /// (0o666 when `None`).
    pub fn add_uds(&mut self, addr: &str, perm: Option<Permissions>) {
        self.listeners.add_uds(addr, perm);
    }

    /// Adds a TLS endpoint at `addr`, serving the PEM certificate chain at `cert_path` with
    /// the key at `key_path`.
    ///
    /// # Errors
    ///
    /// As [`Listeners::add_tls`].
    pub fn add_tls(
        &mut self,
        addr: &str,
        cert_path: &str,
        key_path: &str,
    ) -> pingora_error::Result<()> {
        self.listeners.add_tls(addr, cert_path, key_path)
    }

    /// Adds a TLS endpoint at `addr` with TCP socket options and TLS settings.
    pub fn add_tls_with_settings(
        &mut self,
        addr: &str,
        sock_opt: Option<TcpSocketOptions>,
        settings: crate::listeners::TlsSettings,
    ) {
        self.listeners
            .add_tls_with_settings(addr, sock_opt, settings);
    }

    /// Adds an endpoint.
    pub fn add_listener(&mut self, config: ListenerConfig) {
        self.listeners.add_listener(config);
    }

    /// Adds an endpoint at `addr`.
    pub fn add_address(&mut self, addr: ServerAddress) {
        self.listeners.add_address(addr);
    }

    /// A handle to the addresses the endpoints get bound to when the service starts.
    ///
    /// Take it before adding the service to the server; it is how to learn the port chosen
    /// for an address such as `127.0.0.1:0`.
    pub fn local_addrs(&self) -> LocalAddrs {
        self.listeners.local_addrs()
    }

    /// The application, until the service starts.
    pub fn app_logic(&self) -> Option<&A> {
        self.app_logic.as_ref()
    }

    /// The application, mutably, until the service starts.
    pub fn app_logic_mut(&mut self) -> Option<&mut A> {
        self.app_logic.as_mut()
    }
}

impl<A: ServerApp + Send + Sync + 'static> Service<A> {
    /// Serves one connection: calls the application's `process_new`, and again for as long as
    /// it hands the connection back.
    pub async fn handle_event(event: Stream, app_logic: Arc<A>, shutdown: ShutdownWatch) {
        let mut next = app_logic.process_new(event, &shutdown).await;
        while let Some(stream) = next {
            next = app_logic.process_new(stream, &shutdown).await;
        }
    }

    /// Binds the endpoints, signals readiness, serves until shutdown, then cleans up and waits
    /// for the connections in flight.
    async fn serve(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        let Some(app_logic) = self.app_logic.take() else {
            log::error!("service {} can only be started once", self.name);
            return;
        };
        let stacks = match self.listeners.build(fds).await {
            Ok(stacks) => stacks,
            Err(e) => {
                log::error!("service {} cannot start: {e}", self.name);
                return;
            }
        };
        let app_logic = Arc::new(app_logic);
        // Connections see the drain signal (keepalive ends); accepting stops on `shutdown`.
        let drain = self.drain.take().unwrap_or_else(|| shutdown.clone());
        ready_notifier.notify_ready();

        let in_flight = InFlight::new();
        let mut accept_tasks = Vec::with_capacity(stacks.len() * listeners_per_fd.max(1));
        for stack in stacks {
            for _ in 0..listeners_per_fd.max(1) {
                let task = run_endpoint(
                    stack.clone(),
                    Arc::clone(&app_logic),
                    Watches {
                        shutdown: shutdown.clone(),
                        drain: drain.clone(),
                    },
                    in_flight.guard(),
                );
                #[cfg(feature = "sentry")]
                let task = crate::reporting::inherited(task);
                accept_tasks.push(current_handle().spawn(task));
            }
        }
        // The accept tasks now hold the only references to the listening sockets, which
        // close as soon as the tasks end.
        for task in accept_tasks {
            if let Err(e) = task.await {
                log::error!("an accept task of service {} failed: {e}", self.name);
            }
        }
        app_logic.cleanup().await;
        in_flight.wait().await;
    }
}

/// What an accept loop watches: `shutdown` to stop accepting, `drain` to give its
/// connections (the application sees it as its shutdown watch).
struct Watches {
    shutdown: ShutdownWatch,
    drain: ShutdownWatch,
}

/// Accepts connections on one endpoint until the server shuts down, serving each in a task of
/// its own.
async fn run_endpoint<A>(
    stack: TransportStack,
    app_logic: Arc<A>,
    watches: Watches,
    in_flight: InFlightGuard,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let Watches {
        mut shutdown,
        drain,
    } = watches;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stopping| *stopping) => None,
            accepted = stack.accept() => Some(accepted),
        };
        let Some(accepted) = accepted else {
            serve_queued(&stack, &app_logic, &drain, &in_flight);
            break;
        };
        match accepted {
            Ok(io) => {
                spawn_connection(io, Arc::clone(&app_logic), drain.clone(), in_flight.clone());
            }
            Err(e) if is_connection_error(&e) => {
                log::debug!(
                    "accept on {} failed for one connection: {e}",
                    stack.as_str()
                );
            }
            Err(e) => {
                log::error!(
                    "accept on {} failed: {e}; pausing for {ACCEPT_ERROR_PAUSE:?}",
                    stack.as_str()
                );
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stopping| *stopping) => break,
                    () = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => {}
                }
            }
        }
    }
    log::info!("stopped accepting on {}", stack.as_str());
}

/// Serves the connections still waiting in the accept queue of a listener about to close:
/// their handshake is complete, so closing the listener would reset them.
fn serve_queued<A>(
    stack: &TransportStack,
    app_logic: &Arc<A>,
    shutdown: &ShutdownWatch,
    in_flight: &InFlightGuard,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let mut served = 0usize;
    loop {
        match stack.try_accept() {
            Ok(Some(io)) => {
                served += 1;
                spawn_connection(
                    io,
                    Arc::clone(app_logic),
                    shutdown.clone(),
                    in_flight.clone(),
                );
            }
            Ok(None) => break,
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                log::warn!("accept on {} failed while closing: {e}", stack.as_str());
                break;
            }
        }
    }
    if served > 0 {
        log::info!(
            "served {served} connections still queued on {} before closing it",
            stack.as_str()
        );
    }
}

/// Serves one accepted connection in a task of its own (with its own crash-report context when
/// Sentry reporting is on).
fn spawn_connection<A>(
    io: UninitializedStream,
    app_logic: Arc<A>,
    shutdown: ShutdownWatch,
    in_flight: InFlightGuard,
) where
    A: ServerApp + Send + Sync + 'static,
{
    let task = handle_connection(io, app_logic, shutdown, in_flight);
    #[cfg(feature = "sentry")]
    let task = crate::reporting::isolated(task);
    current_handle().spawn(task);
}

/// Sets up and serves one accepted connection.
async fn handle_connection<A>(
    io: UninitializedStream,
    app_logic: Arc<A>,
    shutdown: ShutdownWatch,
    _in_flight: InFlightGuard,
) where
    A: ServerApp + Send + Sync + 'static,
{
    // Kept for the messages; cloning the address does not allocate.
    let peer = io.peer_addr().clone();
    if !io.admitted().await {
        log::debug!("connection from {peer} refused by the connection filter");
        return;
    }
    let _open = crate::metrics::connection_accepted();
    // Boxed: a TLS handshake's state is large, and would otherwise stay inline in the
    // connection's task, which every connection holds for as long as it lives.
    match Box::pin(io.handshake()).await {
        Ok(stream) => Service::handle_event(stream, app_logic, shutdown).await,
        Err(e) => log::warn!("cannot set up the connection from {peer}: {e}"),
    }
}

/// Whether an accept error concerns only the connection being accepted, so accepting can go on
/// at once. Other errors, such as running out of file descriptors, would repeat immediately.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::PermissionDenied
            | io::ErrorKind::TimedOut
    ) || matches!(
        e.raw_os_error(),
        Some(
            libc::EPROTO
                | libc::ENETDOWN
                | libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::EHOSTDOWN
        )
    )
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServiceTrait for Service<A> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
    ) {
        let (ready, _) = watch::channel(false);
        self.serve(
            fds,
            shutdown,
            listeners_per_fd,
            ServiceReadyNotifier::new(ready),
        )
        .await;
    }

    /// Ready once the endpoints are bound.
    async fn start_service_with_ready_notifier(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        self.serve(fds, shutdown, listeners_per_fd, ready_notifier)
            .await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }

    fn set_drain_watch(&mut self, drain: ShutdownWatch) {
        self.drain = Some(drain);
    }
}

impl<A> fmt::Debug for Service<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("listeners", &self.listeners)
            .field("started", &self.app_logic.is_none())
            .field("threads", &self.threads)
            .finish()
    }
}

// === impl InFlight ===

impl InFlight {
    fn new() -> Self {
        // Nothing is ever sent: the channel only tells when every sender is gone.
        let (guard, idle) = mpsc::channel(1);
        InFlight { guard, idle }
    }

    fn guard(&self) -> InFlightGuard {
        self.guard.clone()
    }

    /// Waits until every guard handed out has been dropped.
    async fn wait(self) {
        let InFlight { guard, mut idle } = self;
        drop(guard);
        let _ = idle.recv().await;
    }
}

#[cfg(test)]
mod tests;
