//! Bootstrap: the preparation a server does before its services start, run once either by
//! [`Server::bootstrap`](super::Server::bootstrap) or as a service of its own.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::Result;
use tokio::sync::broadcast;

use super::configuration::{Opt, ServerConf};
use super::{ExecutionPhase, ListenFds, ShutdownWatch};
use crate::listeners::transfer_fd::{Fds, PendingAck, TransferRetry, TrustedPeers};
use crate::services::background::BackgroundService;
use crate::services::ServiceReadyNotifier;

/// What bootstrapping decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootstrapOutcome {
    /// The server is ready for its services to start.
    Ready,
    /// The server was started with `-t` and its configuration is valid: the process should
    /// exit with status 0.
    TestPassed,
}

/// The state of the bootstrap, shared by the server and its bootstrap service.
#[derive(Debug)]
pub(crate) struct Bootstrap {
    completed: bool,
    test: bool,
    upgrade: bool,
    conf: Arc<ServerConf>,
    execution_phase_watch: broadcast::Sender<ExecutionPhase>,
    /// The table of listening sockets, from the start: a service that starts before the
    /// bootstrap (it need not depend on it) still records its sockets for a graceful upgrade.
    /// With `-u` the bootstrap fills it with the old process's sockets.
    listen_fds: ListenFds,
    /// After taking the sockets over, the confirmation owed to the old process.
    upgrade_ack: Option<PendingAck>,
}

/// A background service that bootstraps the server, so that other services can depend on it.
#[derive(Debug)]
pub(crate) struct BootstrapService {
    inner: Arc<Mutex<Bootstrap>>,
}

// === impl Bootstrap ===

impl Bootstrap {
    pub(crate) fn new(
        opt: Option<&Opt>,
        conf: &Arc<ServerConf>,
        execution_phase_watch: &broadcast::Sender<ExecutionPhase>,
    ) -> Self {
        Bootstrap {
            completed: false,
            test: opt.is_some_and(|o| o.test),
            upgrade: opt.is_some_and(|o| o.upgrade),
            conf: Arc::clone(conf),
            execution_phase_watch: execution_phase_watch.clone(),
            listen_fds: Arc::new(Mutex::new(Fds::new())),
            upgrade_ack: None,
        }
    }

    /// Prepares the server, once: later calls return [`BootstrapOutcome::Ready`] at once.
    ///
    /// With `-t`, validates the configuration and returns [`BootstrapOutcome::TestPassed`].
    /// Otherwise sets up the table of listening sockets; with `-u`, fills it with the sockets
    /// of the old process, received over `upgrade_sock` (this blocks until the old process
    /// sends them or the retries run out).
    pub(crate) fn try_bootstrap(&mut self) -> Result<BootstrapOutcome> {
        if self.completed {
            return Ok(BootstrapOutcome::Ready);
        }
        log::info!("bootstrap starting");
        let _ = self.execution_phase_watch.send(ExecutionPhase::Bootstrap);

        if self.test {
            // Configurations are validated when loaded, but one built in code may not be.
            ServerConf::clone(&self.conf).validate()?;
            log::info!("Server Test passed, exiting");
            return Ok(BootstrapOutcome::TestPassed);
        }

        if self.upgrade {
            let retry = TransferRetry::new(self.conf.upgrade_sock_connect_accept_max_retries);
            // An old daemon may run as the configured user.
            let user_uid = self
                .conf
                .user
                .as_deref()
                .and_then(|name| nix::unistd::User::from_name(name).ok().flatten())
                .map(|user| user.uid.as_raw());
            // Locked while waiting for the old process: a service starting meanwhile takes
            // the sockets handed over rather than binding new ones.
            let (count, ack) = self
                .listen_fds
                .lock()
                .get_from_sock_with(
                    Path::new(&self.conf.upgrade_sock),
                    retry,
                    &TrustedPeers::new(user_uid),
                )
                .map_err(|e| e.more_context("graceful upgrade (--upgrade) failed"))?;
            // Sent by the server once its services serve on the sockets.
            self.upgrade_ack = Some(ack);
            log::info!("took over {count} listening sockets from the old process");
        }
        self.completed = true;
        log::info!("bootstrap done");
        let _ = self
            .execution_phase_watch
            .send(ExecutionPhase::BootstrapComplete);
        Ok(BootstrapOutcome::Ready)
    }

    /// Bootstraps like [`try_bootstrap`](Self::try_bootstrap), exiting the process when the
    /// server test passed (status 0) or bootstrapping failed (status 1).
    pub(crate) fn bootstrap(&mut self) {
        match self.try_bootstrap() {
            Ok(BootstrapOutcome::Ready) => {}
            Ok(BootstrapOutcome::TestPassed) => std::process::exit(0),
            Err(e) => {
                log::error!("bootstrap failed: {e}");
                eprintln!("bootstrap failed: {e}");
                std::process::exit(1);
            }
        }
    }

    /// The confirmation owed to the old process after a hand-over, to send once the services
    /// serve on the sockets.
    pub(crate) fn take_upgrade_ack(&mut self) -> Option<PendingAck> {
        self.upgrade_ack.take()
    }

    /// The table of listening sockets (see the field).
    pub(crate) fn listen_fds(&self) -> ListenFds {
        Arc::clone(&self.listen_fds)
    }
}

// === impl BootstrapService ===

impl BootstrapService {
    pub(crate) fn new(inner: &Arc<Mutex<Bootstrap>>) -> Self {
        BootstrapService {
            inner: Arc::clone(inner),
        }
    }
}

#[async_trait]
impl BackgroundService for BootstrapService {
    async fn start_with_ready_notifier(
        &self,
        _shutdown: ShutdownWatch,
        ready_notifier: ServiceReadyNotifier,
    ) {
        self.inner.lock().bootstrap();
        ready_notifier.notify_ready();
    }
}
