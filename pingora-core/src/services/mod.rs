//! Services: what a [`Server`](crate::server::Server) runs.
//!
//! A service runs on its own runtime from the moment the server starts until the server shuts
//! down. Two kinds are provided:
//!
//! * [`listening::Service`] accepts connections on its endpoints and hands each to an
//!   application ([`ServerApp`](crate::apps::ServerApp));
//! * [`background::GenBackgroundService`] runs a [`background::BackgroundService`] task.
//!
//! Services may depend on each other: a service whose [`ServiceHandle`] was given dependencies
//! with [`ServiceHandle::add_dependency`] starts only once all of them are ready. A service is
//! ready when it calls [`ServiceReadyNotifier::notify_ready`] or drops the notifier; a plain
//! [`Service`] is ready as soon as it starts, and a listening service once its sockets are
//! bound.

pub mod background;
pub mod listening;

use std::borrow::Borrow;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pingora_error::{Error, ErrorType, Result};
use tokio::sync::watch;

use crate::listeners::ListenFds;
use crate::shutdown::ShutdownWatch;

/// Tells the services that depend on a service that it is ready.
///
/// Readiness is signalled once: by [`notify_ready`](Self::notify_ready), or when the notifier
/// is dropped, so a service that fails or forgets cannot block its dependents forever.
#[derive(Debug)]
pub struct ServiceReadyNotifier {
    sender: watch::Sender<bool>,
}

/// Watches whether a service is ready.
pub type ServiceReadyWatch = watch::Receiver<bool>;

/// A service added to a [`Server`](crate::server::Server), used to declare dependencies
/// between services.
///
/// ```
/// use pingora_core::server::Server;
/// use pingora_core::services::background::{background_service, BackgroundService};
/// use pingora_core::server::ShutdownWatch;
///
/// struct Task;
/// #[async_trait::async_trait]
/// impl BackgroundService for Task {
///     async fn start(&self, _shutdown: ShutdownWatch) {}
/// }
///
/// let mut server = Server::new(None).unwrap();
/// let db = server.add_service(background_service("db", Task));
/// let api = server.add_service(background_service("api", Task));
/// api.add_dependency(&db); // `api` starts once `db` is ready
/// assert!(db.try_add_dependency(&api).is_err()); // a cycle is refused
/// ```
#[derive(Debug, Clone)]
pub struct ServiceHandle {
    pub(crate) id: usize,
    name: String,
    ready_watch: ServiceReadyWatch,
    graph: Weak<Mutex<DependencyGraph>>,
}

/// The services of a server and the dependencies between them. Edges are only added when they
/// keep the graph acyclic, so it always has a topological order.
#[derive(Debug, Default)]
pub(crate) struct DependencyGraph {
    nodes: Vec<ServiceNode>,
}

/// One service in a [`DependencyGraph`].
#[derive(Debug)]
struct ServiceNode {
    name: String,
    ready_watch: ServiceReadyWatch,
    /// The ids of the services this one depends on.
    dependencies: Vec<usize>,
}

/// A dependency of a service, as the server needs it to start the service.
#[derive(Debug, Clone)]
pub(crate) struct ServiceDependency {
    pub(crate) name: String,
    pub(crate) ready_watch: ServiceReadyWatch,
}

/// A service that controls when it tells its dependents it is ready.
///
/// Every [`Service`] is also a `ServiceWithDependents`; implement this trait directly only to
/// signal readiness at a time of your choosing.
#[async_trait]
pub trait ServiceWithDependents: Send + Sync {
    /// Runs the service until it is done or the server shuts down.
    ///
    /// * `fds`: the table of listening sockets handed over by a graceful upgrade. A service
    ///   that listens registers the sockets it binds there.
    /// * `shutdown`: turns `true` when the server starts a graceful shutdown.
    /// * `listeners_per_fd`: how many tasks should accept on each listening socket.
    /// * `ready_notifier`: to signal dependents once the service is ready.
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    );

    /// Gives the service the server's drain signal: a watch that turns `true` when the
    /// connections of this process should stop being kept alive. At a graceful shutdown it
    /// turns with `shutdown`; at a graceful upgrade it turns as soon as the listening sockets
    /// are handed over, while `shutdown` (stop accepting) waits until the new process is
    /// surely accepting. Called once before the service starts; ignored by default.
    #[doc(hidden)]
    fn set_drain_watch(&mut self, _drain: ShutdownWatch) {}

    /// The name of the service, for logs and for naming its threads (Linux keeps the first 15
    /// bytes of a thread name).
    fn name(&self) -> &str;

    /// How many threads the service wants; `None` to use the server's `threads` setting.
    fn threads(&self) -> Option<usize> {
        None
    }

    /// Called before the service starts with how long it waited for its dependencies. Logs the
    /// wait by default.
    fn on_startup_delay(&self, time_waited: Duration) {
        log_startup_delay(self.name(), time_waited);
    }
}

/// A service: something that runs from server start until shutdown.
#[async_trait]
pub trait Service: Sync + Send {
    /// Runs the service until it is done or the server shuts down. Does nothing by default.
    ///
    /// See [`ServiceWithDependents::start_service`] for the arguments.
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        _shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
    }

    /// Runs the service like [`start_service`](Self::start_service), telling dependents when
    /// it is ready.
    ///
    /// By default the service is ready as soon as it starts. A service that becomes ready
    /// later (for example once its sockets are bound) overrides this method instead of
    /// `start_service`.
    async fn start_service_with_ready_notifier(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        ready_notifier.notify_ready();
        self.start_service(fds, shutdown, listeners_per_fd).await;
    }

    /// Gives the service the server's drain signal: a watch that turns `true` when the
    /// connections of this process should stop being kept alive. At a graceful shutdown it
    /// turns with `shutdown`; at a graceful upgrade it turns as soon as the listening sockets
    /// are handed over, while `shutdown` (stop accepting) waits until the new process is
    /// surely accepting. Called once before the service starts; ignored by default.
    #[doc(hidden)]
    fn set_drain_watch(&mut self, _drain: ShutdownWatch) {}

    /// The name of the service, for logs and for naming its threads (Linux keeps the first 15
    /// bytes of a thread name).
    fn name(&self) -> &str;

    /// How many threads the service wants; `None` to use the server's `threads` setting.
    fn threads(&self) -> Option<usize> {
        None
    }

    /// Called before the service starts with how long it waited for its dependencies. Logs the
    /// wait by default.
    fn on_startup_delay(&self, time_waited: Duration) {
        log_startup_delay(self.name(), time_waited);
    }
}

#[async_trait]
impl<S> ServiceWithDependents for S
where
    S: Service + ?Sized,
{
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        S::start_service_with_ready_notifier(self, fds, shutdown, listeners_per_fd, ready_notifier)
            .await;
    }

    fn name(&self) -> &str {
        S::name(self)
    }

    fn set_drain_watch(&mut self, drain: ShutdownWatch) {
        S::set_drain_watch(self, drain);
    }

    fn threads(&self) -> Option<usize> {
        S::threads(self)
    }

    fn on_startup_delay(&self, time_waited: Duration) {
        S::on_startup_delay(self, time_waited);
    }
}

fn log_startup_delay(name: &str, time_waited: Duration) {
    log::info!(
        "service {name} waited {}ms for its dependencies",
        time_waited.as_millis()
    );
}

// === impl ServiceReadyNotifier ===

impl ServiceReadyNotifier {
    /// A notifier that signals readiness on `sender`. Servers create these; creating one is
    /// mostly useful in tests.
    pub fn new(sender: watch::Sender<bool>) -> Self {
        ServiceReadyNotifier { sender }
    }

    /// Tells dependents the service is ready.
    pub fn notify_ready(self) {
        // Dropping signals readiness.
        drop(self);
    }
}

impl Drop for ServiceReadyNotifier {
    fn drop(&mut self) {
        // `send_replace` works with or without receivers.
        self.sender.send_replace(true);
    }
}

// === impl ServiceHandle ===

impl ServiceHandle {
    pub(crate) fn new(
        id: usize,
        name: String,
        ready_watch: ServiceReadyWatch,
        graph: &Arc<Mutex<DependencyGraph>>,
    ) -> Self {
        ServiceHandle {
            id,
            name,
            ready_watch,
            graph: Arc::downgrade(graph),
        }
    }

    /// The name of the service.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Watches whether the service is ready.
    pub fn ready_watch(&self) -> ServiceReadyWatch {
        self.ready_watch.clone()
    }

    /// Makes this service wait for `dependency` to be ready before it starts.
    ///
    /// A dependency that would make a cycle, or that belongs to another server, is refused
    /// and the refusal logged as an error; use [`try_add_dependency`](Self::try_add_dependency)
    /// to get it as an error instead.
    pub fn add_dependency(&self, dependency: impl Borrow<ServiceHandle>) {
        if let Err(e) = self.try_add_dependency(dependency.borrow()) {
            log::error!("{e}");
        }
    }

    /// Makes this service wait for each of `dependencies` to be ready before it starts.
    ///
    /// Each is added as by [`add_dependency`](Self::add_dependency).
    pub fn add_dependencies<'a, D>(&self, dependencies: impl IntoIterator<Item = D>)
    where
        D: Borrow<ServiceHandle> + 'a,
    {
        for dependency in dependencies {
            self.add_dependency(dependency);
        }
    }

    /// Makes this service wait for `dependency` to be ready before it starts.
    ///
    /// # Errors
    ///
    /// An [`ErrorType::InternalError`] if the dependency would make a cycle (including a
    /// service depending on itself), or if the two services were not added to the same
    /// server. The dependency is not added then.
    pub fn try_add_dependency(&self, dependency: &ServiceHandle) -> Result<()> {
        let Some(graph) = self.graph.upgrade() else {
            return Error::e_explain(
                ErrorType::InternalError,
                format!(
                    "cannot add a dependency to service {}: its server is gone",
                    self.name
                ),
            );
        };
        if !Weak::ptr_eq(&self.graph, &dependency.graph) {
            return Error::e_explain(
                ErrorType::InternalError,
                format!(
                    "service {} cannot depend on service {}: they belong to different servers",
                    self.name, dependency.name
                ),
            );
        }
        let mut graph = graph.lock();
        graph.add_dependency(self.id, dependency.id)
    }

    /// The dependencies of this service, for tests.
    #[cfg(test)]
    pub(crate) fn dependencies(&self) -> Vec<ServiceDependency> {
        self.graph
            .upgrade()
            .map(|g| g.lock().dependencies(self.id))
            .unwrap_or_default()
    }
}

// === impl DependencyGraph ===

impl DependencyGraph {
    /// An empty graph.
    pub(crate) fn new() -> Self {
        DependencyGraph::default()
    }

    /// Adds a service without dependencies; returns its id.
    pub(crate) fn add_node(&mut self, name: String, ready_watch: ServiceReadyWatch) -> usize {
        self.nodes.push(ServiceNode {
            name,
            ready_watch,
            dependencies: Vec::new(),
        });
        self.nodes.len() - 1
    }

    /// Makes `dependent` depend on `dependency`, unless that would make a cycle.
    pub(crate) fn add_dependency(&mut self, dependent: usize, dependency: usize) -> Result<()> {
        let (Some(from), Some(to)) = (self.nodes.get(dependent), self.nodes.get(dependency)) else {
            return Error::e_explain(ErrorType::InternalError, "unknown service in dependency");
        };
        if let Some(path) = self.path(dependency, dependent) {
            let names: Vec<&str> = path
                .iter()
                .map(|&id| self.nodes[id].name.as_str())
                .collect();
            return Error::e_explain(
                ErrorType::InternalError,
                format!(
                    "refusing to make service {} depend on {}: that would create the dependency \
                     cycle {} -> {}",
                    from.name,
                    to.name,
                    from.name,
                    names.join(" -> ")
                ),
            );
        }
        let deps = &mut self.nodes[dependent].dependencies;
        if !deps.contains(&dependency) {
            deps.push(dependency);
        }
        Ok(())
    }

    /// A chain of dependencies leading from `from` to `to` (both included), if there is one.
    fn path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        // Depth-first search remembering how each node was reached.
        let mut came_from: Vec<Option<usize>> = vec![None; self.nodes.len()];
        let mut seen = vec![false; self.nodes.len()];
        let mut stack = vec![from];
        seen[from] = true;
        while let Some(node) = stack.pop() {
            if node == to {
                let mut path = vec![to];
                let mut cur = to;
                while let Some(prev) = came_from[cur] {
                    path.push(prev);
                    cur = prev;
                }
                path.reverse();
                return Some(path);
            }
            for &next in &self.nodes[node].dependencies {
                if !seen[next] {
                    seen[next] = true;
                    came_from[next] = Some(node);
                    stack.push(next);
                }
            }
        }
        None
    }

    /// The ids of all services, dependencies before their dependents; among services free to
    /// start, the one added first comes first.
    pub(crate) fn topological_order(&self) -> Vec<usize> {
        let n = self.nodes.len();
        let mut remaining: Vec<usize> = self.nodes.iter().map(|s| s.dependencies.len()).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (id, node) in self.nodes.iter().enumerate() {
            for &dep in &node.dependencies {
                dependents[dep].push(id);
            }
        }
        let mut ready: std::collections::BTreeSet<usize> =
            (0..n).filter(|&id| remaining[id] == 0).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(id) = ready.pop_first() {
            order.push(id);
            for &dependent in &dependents[id] {
                remaining[dependent] -= 1;
                if remaining[dependent] == 0 {
                    ready.insert(dependent);
                }
            }
        }
        if order.len() < n {
            // Unreachable: edges that would close a cycle are refused when added. Start the
            // rest anyway rather than lose services.
            log::error!("service dependency graph has a cycle; starting the rest unordered");
            let placed: std::collections::HashSet<usize> = order.iter().copied().collect();
            order.extend((0..n).filter(|id| !placed.contains(id)));
        }
        order
    }

    /// The readiness watches of every service.
    pub(crate) fn ready_watches(&self) -> Vec<ServiceReadyWatch> {
        self.nodes.iter().map(|n| n.ready_watch.clone()).collect()
    }

    /// The name of a service.
    pub(crate) fn name(&self, id: usize) -> &str {
        self.nodes.get(id).map_or("", |node| node.name.as_str())
    }

    /// The dependencies of a service.
    pub(crate) fn dependencies(&self, id: usize) -> Vec<ServiceDependency> {
        let Some(node) = self.nodes.get(id) else {
            return Vec::new();
        };
        node.dependencies
            .iter()
            .map(|&dep| ServiceDependency {
                name: self.nodes[dep].name.clone(),
                ready_watch: self.nodes[dep].ready_watch.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
