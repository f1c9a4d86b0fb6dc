//! The server: one process running several services, with its configuration, command line,
//! signals and shutdown.
//!
//! ```no_run
//! use pingora_core::server::configuration::Opt;
//! use pingora_core::server::Server;
//!
//! let mut server = Server::new(Some(Opt::parse_args())).unwrap();
//! server.bootstrap();
//! // server.add_service(...);
//! server.run_forever();
//! ```
//!
//! # Lifecycle
//!
//! [`Server::run`] starts every service on its own runtime, dependencies first, then waits for
//! a shutdown signal (Unix signals by default, see [`RunArgs`]):
//!
//! * `SIGINT` ([`ShutdownSignal::FastShutdown`]): the runtimes are shut down at once.
//! * `SIGTERM` ([`ShutdownSignal::GracefulTerminate`]): the [`ShutdownWatch`] turns `true`, so
//!   services stop accepting work and finish what they have; the server waits until every
//!   service has finished, for at most `grace_period_seconds` (300), then gives the runtimes
//!   `graceful_shutdown_timeout_seconds` (5) to stop.
//! * `SIGQUIT` ([`ShutdownSignal::GracefulUpgrade`]): the listening sockets are handed to a new
//!   process started with `--upgrade` (see [`Fds`] for the protocol over `upgrade_sock`). Once
//!   the new process confirms that its services are ready, and five more seconds during which
//!   both accept, the server shuts down gracefully as for `SIGTERM`. If the hand-over fails
//!   (no new process, or it exits before confirming), the server logs why and **keeps
//!   serving**, waiting for the next signal.
//!
//! Each step is announced on the [`ExecutionPhase`] broadcast
//! ([`Server::watch_execution_phase`]).
//!
//! # Daemon
//!
//! With `daemon: true` (or `-d`), [`Server::run`] first forks into the background (see the
//! `daemon`, `pid_file`, `error_log`, `user`, `group`, `working_directory` and
//! `daemon_wait_for_ready` keys of [`ServerConf`]). Threads started before `run` do not
//! survive into the daemon.
//!
//! # Crash reports
//!
//! With the `sentry` feature, [`Server::set_sentry_config`] has panics reported to Sentry;
//! the client starts in [`Server::run`], after daemonizing (see `docs/user_guide/panic.md`).

mod bootstrap;
pub mod configuration;
mod daemon;

use std::fmt;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::Result;
use pingora_runtime::{BlockingPoolOpts, Runtime, RuntimeBuilder};
use tokio::sync::{broadcast, mpsc, watch};

use crate::listeners::transfer_fd::{self, TransferRetry};
use crate::services::background::background_service;
use crate::services::{
    DependencyGraph, ServiceHandle, ServiceReadyNotifier, ServiceReadyWatch, ServiceWithDependents,
};
use bootstrap::{Bootstrap, BootstrapService};
use configuration::{Opt, ServerConf};

pub use crate::listeners::{Fds, ListenFds};
pub use crate::shutdown::ShutdownWatch;
pub use bootstrap::BootstrapOutcome;

/// How long a graceful shutdown waits for services to finish when the configuration does not
/// say (`grace_period_seconds`).
const EXIT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the runtimes get to stop after a graceful shutdown when the configuration does not
/// say (`graceful_shutdown_timeout_seconds`).
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an old process keeps accepting after handing its sockets over, so that the new
/// process is accepting before the old one stops.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How many execution phases a slow subscriber may fall behind before missing some.
const EXECUTION_PHASE_CAPACITY: usize = 100;

/// The phase of its life a server is in, announced by [`Server::watch_execution_phase`].
///
/// The phases carrying a [`tokio::runtime::Handle`] give the server's own runtime, on which
/// tasks reacting to the phase may be spawned.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ExecutionPhase {
    /// The server was created and has not started.
    Setup,
    /// The server is bootstrapping (taking over listening sockets during an upgrade).
    Bootstrap,
    /// The bootstrap has finished.
    BootstrapComplete,
    /// The services are running and the server waits for a shutdown signal.
    Running(tokio::runtime::Handle),
    /// A graceful upgrade was requested; the listening sockets are being sent to the new
    /// process.
    GracefulUpgradeTransferringFds(tokio::runtime::Handle),
    /// The listening sockets were sent; the new process is given time to take over.
    GracefulUpgradeCloseTimeout(tokio::runtime::Handle),
    /// A graceful shutdown was requested and announced to the services.
    GracefulTerminate(tokio::runtime::Handle),
    /// The server is shutting down.
    ShutdownStarted,
    /// The server is waiting for its services to finish, for at most the grace period.
    ShutdownGracePeriod,
    /// The server is shutting the service runtimes down.
    ShutdownRuntimes,
    /// The server has stopped.
    Terminated,
}

/// The kind of shutdown requested of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownSignal {
    /// Hand the listening sockets to a new process, then shut down gracefully.
    GracefulUpgrade,
    /// Let the services finish their work, for at most the grace period, then stop.
    GracefulTerminate,
    /// Stop at once.
    FastShutdown,
}

/// Waits for the server to be asked to shut down.
#[async_trait]
pub trait ShutdownSignalWatch {
    /// Returns the kind of shutdown requested, once one is.
    async fn recv(&self) -> ShutdownSignal;
}

/// Waits for the Unix signals: `SIGQUIT` is a graceful upgrade, `SIGTERM` a graceful
/// terminate and `SIGINT` a fast shutdown.
#[derive(Debug, Clone, Copy, Default)]
pub struct UnixShutdownSignalWatch;

/// How [`Server::run`] runs.
pub struct RunArgs {
    /// What tells the server to shut down. Unix signals by default.
    pub shutdown_signal: Box<dyn ShutdownSignalWatch>,
}

/// A server process: its configuration and its services.
///
/// Create one per process with [`Server::new`], add services, then [`run`](Server::run) it.
pub struct Server {
    /// The services, indexed by their id in the dependency graph; taken when started.
    services: Vec<Option<ServiceWrapper>>,
    shutdown_watch: watch::Sender<bool>,
    shutdown_recv: ShutdownWatch,
    /// Turns `true` when connections should stop being kept alive: with `shutdown_watch`, or
    /// earlier, as soon as a graceful upgrade has handed the listening sockets over.
    drain_watch: watch::Sender<bool>,
    execution_phase_watch: broadcast::Sender<ExecutionPhase>,
    dependencies: Arc<Mutex<DependencyGraph>>,
    bootstrap: Arc<Mutex<Bootstrap>>,
    /// The configuration.
    pub configuration: Arc<ServerConf>,
    /// The command-line options, if any.
    pub options: Option<Opt>,
    /// Where panics are reported: the Sentry client started by [`Server::run`], in every
    /// build profile (Pingora reports in release builds only). `None`, the default, reports
    /// nothing. See [`Server::set_sentry_config`].
    #[cfg(feature = "sentry")]
    pub sentry: Option<sentry::ClientOptions>,
}

/// A service waiting to be started, with what signals its readiness.
struct ServiceWrapper {
    service: Box<dyn ServiceWithDependents>,
    ready_notifier: ServiceReadyNotifier,
}

/// A `Box<S>` as a service, so boxes of other trait objects can be added.
struct BoxedService<S: ?Sized>(Box<S>);

/// How handing the listening sockets over went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HandOver {
    /// The new process confirmed it has them.
    Sent,
    /// There were none: an upgrade is then a plain graceful shutdown.
    NothingToSend,
    /// The new process could not be reached or did not confirm: the server keeps serving.
    Failed,
}

/// How the main loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShutdownType {
    Graceful,
    Quick,
}

// === impl Server ===

impl Server {
    /// Creates a server from command-line options.
    ///
    /// With `opt.conf` set, the configuration is read from that YAML file; otherwise the
    /// default configuration is used. `-d` is applied on top.
    ///
    /// # Errors
    ///
    /// If the configuration file cannot be read, parsed or validated; the error names the
    /// file and the problem.
    pub fn new(opt: impl Into<Option<Opt>>) -> Result<Server> {
        let opt = opt.into();
        let conf = match &opt {
            Some(o) if o.conf.is_some() => ServerConf::load_yaml_with_opt_override(o)?,
            Some(o) => ServerConf::new_with_opt_override(o).unwrap_or_default(),
            None => ServerConf::new().unwrap_or_default(),
        };
        Ok(Server::build(opt, conf))
    }

    /// Creates a server from options and a configuration built by the caller, for programs
    /// with their own configuration handling.
    ///
    /// A configuration file named in `opt` is ignored, with a warning; `-d` is applied.
    pub fn new_with_opt_and_conf(raw_opt: impl Into<Option<Opt>>, mut conf: ServerConf) -> Server {
        let opt = raw_opt.into();
        if let Some(o) = &opt {
            if let Some(path) = &o.conf {
                log::warn!(
                    "ignoring configuration file {path}: using the configuration given in code"
                );
            }
            conf.merge_with_opt(o);
        }
        Server::build(opt, conf)
    }

    fn build(opt: Option<Opt>, conf: ServerConf) -> Server {
        let (shutdown_watch, shutdown_recv) = watch::channel(false);
        let (drain_watch, _) = watch::channel(false);
        let (execution_phase_watch, _) = broadcast::channel(EXECUTION_PHASE_CAPACITY);
        let configuration = Arc::new(conf);
        let bootstrap = Bootstrap::new(opt.as_ref(), &configuration, &execution_phase_watch);
        let _ = execution_phase_watch.send(ExecutionPhase::Setup);
        Server {
            services: Vec::new(),
            shutdown_watch,
            shutdown_recv,
            drain_watch,
            execution_phase_watch,
            dependencies: Arc::new(Mutex::new(DependencyGraph::new())),
            bootstrap: Arc::new(Mutex::new(bootstrap)),
            configuration,
            options: opt,
            #[cfg(feature = "sentry")]
            sentry: None,
        }
    }

    /// Reports panics to Sentry with `config` (feature `sentry`), or nothing with `None`; the
    /// same as setting [`Server::sentry`]. The client starts when the server
    /// [runs](Server::run), after daemonizing (so also in the new process of an upgrade). A
    /// panic in a service or a request is then sent with the service's name and the method,
    /// path and version of the request (never its query, header values or body), in every
    /// build profile, if the options have a DSN (or `SENTRY_DSN` is set). See
    /// `docs/user_guide/panic.md`.
    ///
    /// ```no_run
    /// use pingora_core::sentry::ClientOptions;
    /// use pingora_core::server::Server;
    ///
    /// let mut server = Server::new(None).unwrap();
    /// server.set_sentry_config(ClientOptions {
    ///     dsn: "http://public-key@sentry.internal:9000/1".parse().ok(),
    ///     ..Default::default()
    /// });
    /// ```
    #[cfg(feature = "sentry")]
    pub fn set_sentry_config(&mut self, config: impl Into<Option<sentry::ClientOptions>>) {
        self.sentry = config.into();
    }

    /// Subscribes to the server's [`ExecutionPhase`]s, from now on.
    pub fn watch_execution_phase(&self) -> broadcast::Receiver<ExecutionPhase> {
        self.execution_phase_watch.subscribe()
    }

    /// Adds a service; returns its handle, to declare dependencies with.
    ///
    /// Any [`Service`](crate::services::Service) is accepted, as is any
    /// [`ServiceWithDependents`].
    pub fn add_service(&mut self, service: impl ServiceWithDependents + 'static) -> ServiceHandle {
        self.add_boxed_service(Box::new(service))
    }

    /// Adds a boxed service; returns its handle.
    pub fn add_boxed_service(&mut self, service: Box<dyn ServiceWithDependents>) -> ServiceHandle {
        let name = service.name().to_string();
        let (ready_tx, ready_rx) = watch::channel(false);
        let id = self
            .dependencies
            .lock()
            .add_node(name.clone(), ready_rx.clone());
        debug_assert_eq!(id, self.services.len());
        self.services.push(Some(ServiceWrapper {
            service,
            ready_notifier: ServiceReadyNotifier::new(ready_tx),
        }));
        ServiceHandle::new(id, name, ready_rx, &self.dependencies)
    }

    /// Adds boxed services, such as a `Vec<Box<dyn Service>>` or a
    /// `Vec<Box<dyn ServiceWithDependents>>`; returns their handles in the same order.
    pub fn add_services<S>(&mut self, services: Vec<Box<S>>) -> Vec<ServiceHandle>
    where
        S: ServiceWithDependents + ?Sized + 'static,
    {
        services
            .into_iter()
            .map(|service| self.add_boxed_service(Box::new(BoxedService(service))))
            .collect()
    }

    /// Prepares the server to start: with `-t`, checks the configuration and exits; during a
    /// graceful upgrade (`-u`), takes over the listening sockets of the old process.
    ///
    /// Calling it again does nothing. Exits the process with status 0 when the `-t` test
    /// passed and with status 1 when bootstrapping failed; use
    /// [`try_bootstrap`](Self::try_bootstrap) to get the outcome instead.
    pub fn bootstrap(&mut self) {
        self.bootstrap.lock().bootstrap();
    }

    /// Prepares the server like [`bootstrap`](Self::bootstrap), returning the outcome instead
    /// of exiting.
    ///
    /// # Errors
    ///
    /// If bootstrapping failed, for example because `-t` found the configuration invalid.
    pub fn try_bootstrap(&mut self) -> Result<BootstrapOutcome> {
        self.bootstrap.lock().try_bootstrap()
    }

    /// Adds a service that bootstraps the server, so the bootstrap happens once the services
    /// it depends on are ready. Returns its handle.
    pub fn bootstrap_as_a_service(&mut self) -> ServiceHandle {
        let service =
            background_service("Bootstrap Service", BootstrapService::new(&self.bootstrap));
        self.add_service(service)
    }

    /// Runs the server with the default [`RunArgs`] until it is shut down, then exits the
    /// process with status 0.
    pub fn run_forever(self) -> ! {
        self.run(RunArgs::default());
        log::info!("server stopped, exiting");
        std::process::exit(0)
    }

    /// Runs the server until it is shut down, as described in the [module docs](self).
    ///
    /// Returns once every service runtime has stopped.
    pub fn run(mut self, run_args: RunArgs) {
        log::info!("server starting");
        let conf = Arc::clone(&self.configuration);
        let ready_notifier = if conf.daemon {
            match daemon::daemonize(&conf) {
                Ok(notifier) => Some(notifier),
                Err(e) => {
                    log::error!("cannot daemonize: {e}");
                    eprintln!("cannot daemonize: {e}");
                    std::process::exit(1);
                }
            }
        } else {
            None
        };
        // Started in the process that serves (a fork keeps no thread of its parent's); kept
        // until the runtimes stopped, then what is queued is sent.
        #[cfg(feature = "sentry")]
        let _reporting = crate::reporting::start(self.sentry.take());

        let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
        let runtimes = self.start_services(&conf, &done_tx);
        drop(done_tx);

        let server_runtime = Runtime::new_steal(1, "Server");
        // Once every service is ready: confirm a hand-over to the old process, and tell the
        // parent of a daemon.
        let watches = self.dependencies.lock().ready_watches();
        let bootstrap = Arc::clone(&self.bootstrap);
        server_runtime.get_handle().spawn(async move {
            for mut watch in watches {
                // A service whose notifier is gone counts as ready.
                let _ = watch.wait_for(|ready| *ready).await;
            }
            let ack = bootstrap.lock().take_upgrade_ack();
            if let Some(ack) = ack {
                ack.confirm();
            }
            if let Some(mut notifier) = ready_notifier {
                notifier.notify();
            }
        });
        let shutdown_type = server_runtime
            .get_handle()
            .block_on(self.main_loop(run_args));

        let _ = self
            .execution_phase_watch
            .send(ExecutionPhase::ShutdownStarted);
        let runtime_timeout = match shutdown_type {
            ShutdownType::Quick => Duration::ZERO,
            ShutdownType::Graceful => {
                let _ = self
                    .execution_phase_watch
                    .send(ExecutionPhase::ShutdownGracePeriod);
                let grace = conf
                    .grace_period_seconds
                    .map_or(EXIT_TIMEOUT, Duration::from_secs);
                log::info!("graceful shutdown: waiting up to {grace:?} for services to finish");
                let finished = server_runtime.get_handle().block_on(async {
                    // Every service holds a sender until it finishes.
                    tokio::time::timeout(grace, done_rx.recv()).await.is_ok()
                });
                if finished {
                    log::info!("graceful shutdown: all services finished");
                } else {
                    log::info!("graceful shutdown: grace period over");
                }
                conf.graceful_shutdown_timeout_seconds
                    .map_or(RUNTIME_SHUTDOWN_TIMEOUT, Duration::from_secs)
            }
        };

        let _ = self
            .execution_phase_watch
            .send(ExecutionPhase::ShutdownRuntimes);
        shutdown_runtimes(runtimes, runtime_timeout);
        server_runtime.shutdown_timeout(Duration::ZERO);
        log::info!("all runtimes stopped");
        let _ = self.execution_phase_watch.send(ExecutionPhase::Terminated);
    }

    /// Starts every service on its own runtime, dependencies first. Each service task holds a
    /// clone of `done` until the service finishes.
    fn start_services(
        &mut self,
        conf: &ServerConf,
        done: &mpsc::Sender<()>,
    ) -> Vec<(Runtime, String)> {
        let blocking = BlockingPoolOpts {
            max_threads: conf.max_blocking_threads,
            thread_keep_alive: conf.blocking_threads_ttl_seconds.map(Duration::from_secs),
        };
        let order = self.dependencies.lock().topological_order();
        let names: Vec<String> = {
            let graph = self.dependencies.lock();
            order.iter().map(|&id| graph.name(id).to_string()).collect()
        };
        log::info!("starting services in dependency order: {names:?}");

        let mut runtimes = Vec::with_capacity(order.len());
        for id in order {
            let Some(mut wrapper) = self.services.get_mut(id).and_then(Option::take) else {
                continue;
            };
            wrapper
                .service
                .set_drain_watch(self.drain_watch.subscribe());
            let name = wrapper.service.name().to_string();
            let threads = wrapper.service.threads().unwrap_or(conf.threads);
            let dependencies = self.dependencies.lock().dependencies(id);
            if !dependencies.is_empty() {
                let dep_names: Vec<&str> = dependencies.iter().map(|d| d.name.as_str()).collect();
                log::info!("service {name} waits for {dep_names:?}");
            }
            let runtime = RuntimeBuilder::new(threads, &name)
                .work_steal(conf.work_stealing)
                .blocking_pool_opts(blocking.clone())
                .build();
            let task = ServiceTask {
                wrapper,
                dependencies: dependencies.into_iter().map(|d| d.ready_watch).collect(),
                bootstrap: Arc::clone(&self.bootstrap),
                shutdown: self.shutdown_recv.clone(),
                listeners_per_fd: conf.listener_tasks_per_fd,
                done: done.clone(),
            };
            let task = task.run();
            #[cfg(feature = "sentry")]
            let task = crate::reporting::for_service(&name, task);
            runtime.get_handle().spawn(task);
            runtimes.push((runtime, name));
        }
        runtimes
    }

    /// Waits for a shutdown signal and starts the shutdown it asks for.
    async fn main_loop(&self, run_args: RunArgs) -> ShutdownType {
        let handle = tokio::runtime::Handle::current();
        let _ = self
            .execution_phase_watch
            .send(ExecutionPhase::Running(handle.clone()));
        loop {
            match run_args.shutdown_signal.recv().await {
                ShutdownSignal::FastShutdown => {
                    log::info!("fast shutdown requested (SIGINT), exiting");
                    return ShutdownType::Quick;
                }
                ShutdownSignal::GracefulTerminate => {
                    log::info!("graceful shutdown requested (SIGTERM)");
                    self.broadcast_shutdown();
                    let _ = self
                        .execution_phase_watch
                        .send(ExecutionPhase::GracefulTerminate(handle));
                    return ShutdownType::Graceful;
                }
                ShutdownSignal::GracefulUpgrade => {
                    log::info!("graceful upgrade requested (SIGQUIT)");
                    match self.hand_over_listeners(&handle).await {
                        HandOver::Failed => continue,
                        HandOver::NothingToSend => {}
                        HandOver::Sent => {
                            // The new process serves from now on: connections here answer
                            // their next request with `Connection: close` (or close while
                            // idle), while accepting goes on until the new process surely
                            // accepts too.
                            self.drain_watch.send_replace(true);
                            let _ = self
                                .execution_phase_watch
                                .send(ExecutionPhase::GracefulUpgradeCloseTimeout(handle));
                            if !overlap_with_new_process(&run_args).await {
                                return ShutdownType::Quick;
                            }
                        }
                    }
                    self.broadcast_shutdown();
                    return ShutdownType::Graceful;
                }
            }
        }
    }

    /// Hands the listening sockets to the new process.
    async fn hand_over_listeners(&self, handle: &tokio::runtime::Handle) -> HandOver {
        let fds = self.bootstrap.lock().listen_fds();
        if fds.lock().is_empty() {
            log::info!("no listening sockets to hand over; shutting down gracefully");
            return HandOver::NothingToSend;
        }
        let _ = self
            .execution_phase_watch
            .send(ExecutionPhase::GracefulUpgradeTransferringFds(
                handle.clone(),
            ));
        let path = std::path::PathBuf::from(&self.configuration.upgrade_sock);
        let retry = TransferRetry::new(self.configuration.upgrade_sock_connect_accept_max_retries);
        // Taken under the lock, sent without it: sending may wait for seconds.
        let (binds, raw_fds) = fds.lock().sendable();
        // Connecting retries with blocking sleeps: keep them off the runtime. The table
        // travels along, keeping the sockets it owns open until they are sent.
        let sent = tokio::task::spawn_blocking(move || {
            let sent = transfer_fd::send_listeners(&path, &binds, &raw_fds, retry);
            drop(fds);
            sent
        })
        .await;
        match sent {
            Ok(Ok(count)) => {
                log::info!(
                    "handed {count} listening sockets over to the new process; stopping in \
                     {CLOSE_TIMEOUT:?}"
                );
                HandOver::Sent
            }
            Ok(Err(e)) => {
                log::error!(
                    "graceful upgrade failed, still serving: {e}. Start the new process with \
                     --upgrade, then send SIGQUIT again"
                );
                HandOver::Failed
            }
            Err(e) => {
                log::error!("graceful upgrade failed, still serving: {e}");
                HandOver::Failed
            }
        }
    }

    fn broadcast_shutdown(&self) {
        // `send_replace` works even when no service is watching.
        self.drain_watch.send_replace(true);
        self.shutdown_watch.send_replace(true);
        log::info!("graceful shutdown announced to services");
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .services
            .iter()
            .flatten()
            .map(|w| w.service.name())
            .collect();
        f.debug_struct("Server")
            .field("services", &names)
            .field("configuration", &self.configuration)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Keeps serving for [`CLOSE_TIMEOUT`] after a hand-over, so that the new process is accepting
/// before this one stops. Returns `false` if a fast shutdown cut that short; other signals are
/// ignored meanwhile.
async fn overlap_with_new_process(run_args: &RunArgs) -> bool {
    let close = tokio::time::sleep(CLOSE_TIMEOUT);
    tokio::pin!(close);
    loop {
        let signal = tokio::select! {
            () = &mut close => return true,
            signal = run_args.shutdown_signal.recv() => signal,
        };
        if signal == ShutdownSignal::FastShutdown {
            log::info!("fast shutdown requested (SIGINT) during the upgrade");
            return false;
        }
        log::info!("already upgrading; {signal:?} ignored");
    }
}

/// Shuts the runtimes down in parallel, each with `timeout`, and waits for all of them.
fn shutdown_runtimes(runtimes: Vec<(Runtime, String)>, timeout: Duration) {
    let threads: Vec<_> = runtimes
        .into_iter()
        .map(|(rt, name)| {
            let thread = thread::Builder::new()
                .name(format!("shutdown {name}"))
                .spawn(move || rt.shutdown_timeout(timeout));
            (thread, name)
        })
        .collect();
    for (thread, name) in threads {
        match thread {
            Ok(thread) => {
                if thread.join().is_err() {
                    log::error!("shutting down the runtime of service {name} panicked");
                }
            }
            Err(e) => log::error!("cannot start a thread to shut down service {name}: {e}"),
        }
    }
}

/// Everything a service needs to run on its runtime.
struct ServiceTask {
    wrapper: ServiceWrapper,
    dependencies: Vec<ServiceReadyWatch>,
    bootstrap: Arc<Mutex<Bootstrap>>,
    shutdown: ShutdownWatch,
    listeners_per_fd: usize,
    /// Dropped when the service finishes.
    done: mpsc::Sender<()>,
}

impl ServiceTask {
    /// Waits for the dependencies, then runs the service. Gives up waiting if the server shuts
    /// down first.
    async fn run(self) {
        let ServiceTask {
            wrapper,
            dependencies,
            bootstrap,
            mut shutdown,
            listeners_per_fd,
            done,
        } = self;
        let ServiceWrapper {
            mut service,
            ready_notifier,
        } = wrapper;
        let name = service.name().to_string();

        if !dependencies.is_empty() {
            let start = Instant::now();
            let wait_all = async {
                for mut dep in dependencies {
                    // An error means the dependency's notifier is gone, which counts as ready.
                    let _ = dep.wait_for(|ready| *ready).await;
                }
            };
            let shut_down = tokio::select! {
                biased;
                _ = shutdown.wait_for(|s| *s) => true,
                () = wait_all => false,
            };
            // A dependency that gave up because of the shutdown counts as ready, and that can
            // wake this task before the shutdown notification does: check the value as well.
            if shut_down || *shutdown.borrow() {
                log::info!(
                    "service {name} not started: shutdown before its dependencies were ready"
                );
                return;
            }
            service.on_startup_delay(start.elapsed());
        }

        // Read after waiting, so a service depending on the bootstrap service sees its result.
        let fds = Some(bootstrap.lock().listen_fds());
        log::info!("service {name} starting");
        service
            .start_service(fds, shutdown, listeners_per_fd, ready_notifier)
            .await;
        log::info!("service {name} exited");
        drop(done);
    }
}

// === impl BoxedService ===

#[async_trait]
impl<S> ServiceWithDependents for BoxedService<S>
where
    S: ServiceWithDependents + ?Sized,
{
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        self.0
            .start_service(fds, shutdown, listeners_per_fd, ready_notifier)
            .await;
    }

    fn name(&self) -> &str {
        self.0.name()
    }

    fn threads(&self) -> Option<usize> {
        self.0.threads()
    }

    fn on_startup_delay(&self, time_waited: Duration) {
        self.0.on_startup_delay(time_waited);
    }
}

// === impl UnixShutdownSignalWatch ===

#[async_trait]
impl ShutdownSignalWatch for UnixShutdownSignalWatch {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};

        async fn next(kind: SignalKind, name: &str) {
            match signal(kind) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    log::error!("cannot listen for {name}: {e}");
                    std::future::pending::<()>().await;
                }
            }
        }

        tokio::select! {
            () = next(SignalKind::quit(), "SIGQUIT") => ShutdownSignal::GracefulUpgrade,
            () = next(SignalKind::terminate(), "SIGTERM") => ShutdownSignal::GracefulTerminate,
            () = next(SignalKind::interrupt(), "SIGINT") => ShutdownSignal::FastShutdown,
        }
    }
}

// === impl RunArgs ===

impl Default for RunArgs {
    fn default() -> Self {
        RunArgs {
            shutdown_signal: Box::new(UnixShutdownSignalWatch),
        }
    }
}

impl fmt::Debug for RunArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunArgs").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
