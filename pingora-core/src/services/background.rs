//! Background services: tasks that run alongside the request-serving services, such as
//! service discovery, health checks or periodic metric pushes.
//!
//! ```
//! use pingora_core::server::ShutdownWatch;
//! use pingora_core::services::background::{background_service, BackgroundService};
//!
//! struct Ticker;
//!
//! #[async_trait::async_trait]
//! impl BackgroundService for Ticker {
//!     async fn start(&self, mut shutdown: ShutdownWatch) {
//!         // Work until the server shuts down.
//!         let _ = shutdown.wait_for(|stopping| *stopping).await;
//!     }
//! }
//!
//! let service = background_service("ticker", Ticker);
//! assert_eq!(pingora_core::services::ServiceWithDependents::name(&service), "BG ticker");
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use super::{ServiceReadyNotifier, ServiceWithDependents};
use crate::listeners::ListenFds;
use crate::shutdown::ShutdownWatch;

/// A task run in the background for the life of the server.
///
/// Implement [`start`](Self::start), or, to control when services depending on this one may
/// start, [`start_with_ready_notifier`](Self::start_with_ready_notifier); not both.
#[async_trait]
pub trait BackgroundService {
    /// Runs the task, with a notifier to call once the service is ready for its dependents.
    ///
    /// By default signals readiness at once and calls [`start`](Self::start).
    async fn start_with_ready_notifier(
        &self,
        shutdown: ShutdownWatch,
        ready_notifier: ServiceReadyNotifier,
    ) {
        ready_notifier.notify_ready();
        self.start(shutdown).await;
    }

    /// Runs the task. It may return at any time, or run until `shutdown` turns `true`. Does
    /// nothing by default.
    async fn start(&self, mut _shutdown: ShutdownWatch) {}
}

/// A service running a [`BackgroundService`] task.
pub struct GenBackgroundService<A> {
    name: String,
    task: Arc<A>,
    /// How many threads the service gets; 1 by default, `None` for the server's `threads`.
    pub threads: Option<usize>,
}

// === impl GenBackgroundService ===

impl<A> GenBackgroundService<A> {
    /// A service named `name` running `task`, on one thread.
    pub fn new(name: String, task: Arc<A>) -> Self {
        GenBackgroundService {
            name,
            task,
            threads: Some(1),
        }
    }

    /// The task, to share with other code.
    pub fn task(&self) -> Arc<A> {
        Arc::clone(&self.task)
    }
}

#[async_trait]
impl<A> ServiceWithDependents for GenBackgroundService<A>
where
    A: BackgroundService + Send + Sync + 'static,
{
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        self.task
            .start_with_ready_notifier(shutdown, ready_notifier)
            .await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        self.threads
    }
}

impl<A> fmt::Debug for GenBackgroundService<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GenBackgroundService")
            .field("name", &self.name)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// A background service running `task`, named `"BG {name}"`.
pub fn background_service<SV>(name: &str, task: SV) -> GenBackgroundService<SV> {
    GenBackgroundService::new(format!("BG {name}"), Arc::new(task))
}
