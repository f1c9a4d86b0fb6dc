//! Load balancing: the backends of a service, how they are discovered, checked and chosen.
//!
//! ```no_run
//! use pingora_load_balancing::{health_check::TcpHealthCheck, selection::RoundRobin, LoadBalancer};
//!
//! let mut upstreams = LoadBalancer::<RoundRobin>::try_from_iter(["10.0.0.1:80", "10.0.0.2:80"]).unwrap();
//! upstreams.set_health_check(TcpHealthCheck::new());
//! upstreams.health_check_frequency = Some(std::time::Duration::from_secs(1));
//! // Run it with `background_service("health check", upstreams)`, then in `upstream_peer`:
//! // let backend = upstreams.select(b"", 256).unwrap();
//! ```
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod background;
pub mod discovery;
pub mod health_check;
pub mod selection;

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::ToSocketAddrs;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use log::{info, warn};
use parking_lot::Mutex;
use pingora_core::protocols::l4::socket::SocketAddr;
use pingora_error::{ErrorType, OrErr, Result};

use discovery::ServiceDiscovery;
use health_check::HealthCheck;
use selection::{BackendIter, BackendSelection, UniqueIterator};

/// A server that can take requests.
#[derive(Debug, Clone)]
pub struct Backend {
    /// Its address.
    pub addr: SocketAddr,
    /// Its share of the traffic, relative to the others (default 1).
    pub weight: usize,
    /// Anything the application wants to attach. Not part of the backend's identity.
    pub ext: http::Extensions,
}

impl Backend {
    /// A backend at `addr` (`"ip:port"`) with weight 1.
    ///
    /// # Errors
    /// An address that does not parse.
    pub fn new(addr: &str) -> Result<Self> {
        Self::new_with_weight(addr, 1)
    }

    /// A backend at `addr` (`"ip:port"`) with `weight`.
    ///
    /// # Errors
    /// An address that does not parse.
    pub fn new_with_weight(addr: &str, weight: usize) -> Result<Self> {
        let addr: std::net::SocketAddr = addr
            .parse()
            .or_err(ErrorType::InternalError, "invalid backend address")?;
        Ok(Self::from_inet(addr, weight))
    }

    pub(crate) fn from_inet(addr: std::net::SocketAddr, weight: usize) -> Self {
        Backend {
            addr: SocketAddr::Inet(addr),
            weight,
            ext: http::Extensions::new(),
        }
    }

    /// A hash of the address and weight, the backend's identity (stable for the life of the
    /// process).
    pub fn hash_key(&self) -> u64 {
        let mut hasher = selection::algorithms::Fnv1aHasher::default();
        self.hash(&mut hasher);
        hasher.finish()
    }
}

impl PartialEq for Backend {
    fn eq(&self, other: &Self) -> bool {
        self.addr == other.addr && self.weight == other.weight
    }
}

impl Eq for Backend {}

impl PartialOrd for Backend {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Backend {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.addr
            .cmp(&other.addr)
            .then(self.weight.cmp(&other.weight))
    }
}

impl Hash for Backend {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.addr.hash(state);
        self.weight.hash(state);
    }
}

impl Deref for Backend {
    type Target = SocketAddr;

    fn deref(&self) -> &SocketAddr {
        &self.addr
    }
}

/// A backend resolves to its (Internet) address, so it can be given to `HttpPeer::new`.
impl ToSocketAddrs for Backend {
    type Iter = std::iter::Once<std::net::SocketAddr>;

    fn to_socket_addrs(&self) -> std::io::Result<Self::Iter> {
        self.addr.to_socket_addrs()
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr)
    }
}

// === Health ===

/// The health of one backend: whether it passes its checks, and whether it is enabled.
#[derive(Debug)]
struct Health {
    healthy: AtomicBool,
    enabled: AtomicBool,
    /// Consecutive check results that disagree with `healthy`.
    contrary: AtomicUsize,
}

impl Default for Health {
    fn default() -> Self {
        // A new backend is healthy until checks say otherwise.
        Health {
            healthy: AtomicBool::new(true),
            enabled: AtomicBool::new(true),
            contrary: AtomicUsize::new(0),
        }
    }
}

impl Health {
    fn ready(&self) -> bool {
        self.healthy.load(Ordering::Relaxed) && self.enabled.load(Ordering::Relaxed)
    }

    /// Records a check result. Returns the new health if it flipped: that takes `threshold`
    /// consecutive results that disagree with the current health.
    fn observe(&self, healthy: bool, threshold: usize) -> Option<bool> {
        if self.healthy.load(Ordering::Relaxed) == healthy {
            self.contrary.store(0, Ordering::Relaxed);
            return None;
        }
        let contrary = self.contrary.fetch_add(1, Ordering::Relaxed) + 1;
        if contrary >= threshold.max(1) {
            self.healthy.store(healthy, Ordering::Relaxed);
            self.contrary.store(0, Ordering::Relaxed);
            return Some(healthy);
        }
        None
    }
}

/// Hashes a key that is already a hash ([`Backend::hash_key`]) by passing it through.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The health of each backend, by [`Backend::hash_key`].
type HealthMap = HashMap<u64, Arc<Health>, std::hash::BuildHasherDefault<KeyHasher>>;

// === Backends ===

/// The backends of a service: discovered, health checked, enabled or not.
pub struct Backends {
    discovery: Box<dyn ServiceDiscovery + Send + Sync + 'static>,
    health_check: Option<Arc<dyn HealthCheck + Send + Sync + 'static>>,
    backends: ArcSwap<BTreeSet<Backend>>,
    health: ArcSwap<HealthMap>,
}

impl std::fmt::Debug for Backends {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backends")
            .field("backends", &self.backends.load())
            .field("health_check", &self.health_check.is_some())
            .finish_non_exhaustive()
    }
}

impl Backends {
    /// Backends found by `discovery`, none until [`Backends::update`] runs.
    pub fn new(discovery: Box<dyn ServiceDiscovery + Send + Sync + 'static>) -> Self {
        Backends {
            discovery,
            health_check: None,
            backends: ArcSwap::new(Arc::new(BTreeSet::new())),
            health: ArcSwap::new(Arc::new(HealthMap::default())),
        }
    }

    /// Checks the backends with `hc`. Once set, a backend is ready only if it is known to the
    /// checks and healthy.
    pub fn set_health_check(&mut self, hc: Box<dyn HealthCheck + Send + Sync + 'static>) {
        self.health_check = Some(hc.into());
    }

    /// Discovers the backends again. `callback` runs with the new set if it changed. The
    /// health of backends that remain is kept.
    ///
    /// # Errors
    /// Discovery failed; the backends stay as they were.
    pub async fn update<F: Fn(Arc<BTreeSet<Backend>>)>(&self, callback: F) -> Result<()> {
        let (new_backends, enablement) = self.discovery.discover().await?;
        self.apply(new_backends, enablement, callback);
        Ok(())
    }

    fn apply<F: Fn(Arc<BTreeSet<Backend>>)>(
        &self,
        new_backends: BTreeSet<Backend>,
        enablement: HashMap<u64, bool>,
        callback: F,
    ) {
        let old_health = self.health.load();
        let mut health =
            HealthMap::with_capacity_and_hasher(new_backends.len(), Default::default());
        for backend in &new_backends {
            let key = backend.hash_key();
            let entry = old_health.get(&key).cloned().unwrap_or_default();
            if let Some(enabled) = enablement.get(&key) {
                entry.enabled.store(*enabled, Ordering::Relaxed);
            }
            health.insert(key, entry);
        }
        let changed = **self.backends.load() != new_backends;
        self.health.store(Arc::new(health));
        if changed {
            let new_backends = Arc::new(new_backends);
            self.backends.store(Arc::clone(&new_backends));
            callback(new_backends);
        }
    }

    /// Whether `backend` can take requests: healthy (or not checked) and enabled.
    pub fn ready(&self, backend: &Backend) -> bool {
        self.ready_by_key(backend.hash_key())
    }

    fn ready_by_key(&self, key: u64) -> bool {
        match self.health.load().get(&key) {
            Some(health) => health.ready(),
            // Unknown backends are ready only when nothing checks them.
            None => self.health_check.is_none(),
        }
    }

    /// Enables or disables `backend` by hand.
    pub fn set_enable(&self, backend: &Backend, enabled: bool) {
        if let Some(health) = self.health.load().get(&backend.hash_key()) {
            health.enabled.store(enabled, Ordering::Relaxed);
        }
    }

    /// The current backends.
    pub fn get_backend(&self) -> Arc<BTreeSet<Backend>> {
        self.backends.load_full()
    }

    /// Checks every backend once, all at once when `parallel`, and updates their health.
    pub async fn run_health_check(&self, parallel: bool) {
        let Some(hc) = self.health_check.as_ref() else {
            return;
        };
        let backends = self.backends.load_full();
        let health = self.health.load_full();
        let check = |backend: &Backend| {
            let hc = Arc::clone(hc);
            let health = health.get(&backend.hash_key()).cloned();
            let backend = backend.clone();
            async move {
                let result = hc.check(&backend).await;
                let Some(health) = health else { return };
                let ok = result.is_ok();
                if let Some(flipped) = health.observe(ok, hc.health_threshold(ok)) {
                    let summary = hc.backend_summary(&backend);
                    if flipped {
                        info!("{summary} became healthy");
                    } else {
                        let reason = result.err().map(|e| e.to_string()).unwrap_or_default();
                        warn!("{summary} became unhealthy: {reason}");
                    }
                    hc.health_status_change(&backend, flipped).await;
                }
            }
        };
        if parallel {
            let mut tasks = tokio::task::JoinSet::new();
            for backend in backends.iter() {
                tasks.spawn(check(backend));
            }
            while tasks.join_next().await.is_some() {}
        } else {
            for backend in backends.iter() {
                check(backend).await;
            }
        }
    }
}

// === LoadBalancer ===

/// How long the last [`LoadBalancer::update`] took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpdateTimings {
    /// Time spent discovering the backends.
    pub discovery_duration: Duration,
    /// Time spent building the selector.
    pub build_duration: Duration,
}

/// Chooses backends with the selection algorithm `S`, skipping unhealthy ones.
pub struct LoadBalancer<S: BackendSelection> {
    backends: Backends,
    selector: ArcSwap<S>,
    config: Option<S::Config>,
    timings: Mutex<Option<UpdateTimings>>,
    /// How often to run the health checks; `None` to run them once.
    pub health_check_frequency: Option<Duration>,
    /// How often to discover the backends again; `None` to do it once.
    pub update_frequency: Option<Duration>,
    /// Check all backends at once rather than one after another.
    pub parallel_health_check: bool,
}

impl<S: BackendSelection> std::fmt::Debug for LoadBalancer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadBalancer")
            .field("backends", &self.backends)
            .field("health_check_frequency", &self.health_check_frequency)
            .field("update_frequency", &self.update_frequency)
            .field("parallel_health_check", &self.parallel_health_check)
            .finish_non_exhaustive()
    }
}

impl<S> LoadBalancer<S>
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    /// A load balancer over the fixed addresses of `iter`, each with weight 1.
    ///
    /// # Errors
    /// The I/O error of an address that does not parse or resolve (as in Pingora, a
    /// `std::io::Result`).
    pub fn try_from_iter<A, T>(iter: T) -> std::io::Result<Self>
    where
        A: ToSocketAddrs,
        T: IntoIterator<Item = A>,
    {
        let discovery = discovery::Static::try_from_iter(iter)?;
        let set = discovery.get();
        let lb = Self::from_backends(Backends::new(discovery));
        // Static backends are known now: select from them at once, before any update.
        lb.backends
            .apply(set, HashMap::new(), |new| lb.rebuild(&new));
        Ok(lb)
    }

    /// A load balancer over `backends`, with the default selector configuration.
    pub fn from_backends(backends: Backends) -> Self {
        Self::from_backends_with_config(backends, None)
    }

    /// A load balancer over `backends`, its selector built with `config` (the selector's
    /// defaults when `None`).
    pub fn from_backends_with_config(backends: Backends, config: Option<S::Config>) -> Self {
        let selector = build_selector::<S>(&backends.get_backend(), config.as_ref());
        LoadBalancer {
            backends,
            selector: ArcSwap::new(Arc::new(selector)),
            config,
            timings: Mutex::new(None),
            health_check_frequency: None,
            update_frequency: None,
            parallel_health_check: false,
        }
    }

    fn rebuild(&self, backends: &BTreeSet<Backend>) {
        let selector = build_selector::<S>(backends, self.config.as_ref());
        self.selector.store(Arc::new(selector));
    }

    /// Discovers the backends again and rebuilds the selector if they changed.
    ///
    /// # Errors
    /// Discovery failed; the backends stay as they were.
    pub async fn update(&self) -> Result<()> {
        let started = Instant::now();
        let (new_backends, enablement) = self.backends.discovery.discover().await?;
        let discovered = Instant::now();
        self.backends
            .apply(new_backends, enablement, |new| self.rebuild(&new));
        *self.timings.lock() = Some(UpdateTimings {
            discovery_duration: discovered - started,
            build_duration: discovered.elapsed(),
        });
        Ok(())
    }

    /// How long the last [`LoadBalancer::update`] took, once one ran.
    pub fn last_update_timing(&self) -> Option<UpdateTimings> {
        *self.timings.lock()
    }

    /// A ready backend for `key`, looking at most at `max_iterations` candidates.
    pub fn select(&self, key: &[u8], max_iterations: usize) -> Option<Backend> {
        self.select_with(key, max_iterations, |_, ready| ready)
    }

    /// The first candidate for `key` that `accept` takes, given the candidate and whether it
    /// is ready, looking at most at `max_iterations` candidates.
    pub fn select_with<F>(&self, key: &[u8], max_iterations: usize, accept: F) -> Option<Backend>
    where
        F: Fn(&Backend, bool) -> bool,
    {
        let selector = self.selector.load();
        let mut candidates = UniqueIterator::new(selector.iter(key), max_iterations);
        while let Some((backend, key)) = candidates.next_with_key() {
            if accept(&backend, self.backends.ready_by_key(key)) {
                return Some(backend);
            }
        }
        None
    }

    /// Checks the backends with `hc`.
    pub fn set_health_check(&mut self, hc: Box<dyn HealthCheck + Send + Sync + 'static>) {
        self.backends.set_health_check(hc);
    }

    /// The backends.
    pub fn backends(&self) -> &Backends {
        &self.backends
    }
}

/// The most used items: `use pingora_load_balancing::prelude::*;`.
pub mod prelude {
    pub use crate::health_check::TcpHealthCheck;
    pub use crate::selection::RoundRobin;
    pub use crate::LoadBalancer;
}

/// A selector of type `S` over `backends`: built with `config` when there is one, else with
/// the selector's defaults.
fn build_selector<S: BackendSelection>(
    backends: &BTreeSet<Backend>,
    config: Option<&S::Config>,
) -> S {
    match config {
        Some(config) => S::build_with_config(backends, config),
        None => S::build(backends),
    }
}

#[cfg(test)]
mod tests;
