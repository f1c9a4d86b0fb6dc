//! Built-in metrics: what the servers, the connectors and the proxy count as they work, ready
//! for an exporter.
//!
//! The `pingora-prometheus` crate exports them: its Prometheus service adds them to the default
//! `prometheus` registry, next to the program's own metrics, so that one scrape returns both
//! (see `docs/user_guide/prom.md` for the list of metrics).
//!
//! # Cost
//!
//! Every metric is a static of atomics. Recording one reads the switch word below (a relaxed
//! atomic load) and, when its group is on, adds to one or two atomics (relaxed): no allocation,
//! no lock, no clock read unless the metric is a duration. Labels take their values from small
//! fixed sets (a protocol, a status class, a side), never from a host, a path or a peer.
//!
//! # Switching groups off
//!
//! Metrics come in [`Group`]s, all on by default. A group switched off records nothing and is
//! left out of the export:
//!
//! ```
//! use pingora_core::metrics::{self, Group};
//!
//! metrics::disable(Group::Cache);
//! assert!(!metrics::is_enabled(Group::Cache));
//! metrics::enable(Group::Cache);
//! ```
//!
//! The switches may be flipped at any time; switch groups off before the server starts to keep
//! their counters at zero. A gauge of things open (connections, streams) stays exact across a
//! switch: what it counted while on is taken off when it ends, even with the group off by then.
//!
//! # For exporters and other crates
//!
//! [`Counter`], [`Gauge`] and [`Histogram`] are the building blocks; a crate describes its
//! metrics as a static slice of [`Family`] and makes them known with [`register`].
//! [`families`] lists all of them for an exporter.

mod builtin;
mod kinds;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, PoisonError};

pub(crate) use builtin::*;
pub use kinds::{
    Counter, Family, Gauge, GaugeGuard, Histogram, HistogramSnapshot, Samples, DURATION_BUCKETS,
};

/// A group of built-in metrics, switched on and off together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Group {
    /// Client connections: accepted, open (`pingora_downstream_*`).
    Downstream,
    /// Requests the proxy serves: by protocol, responses by status class, retries
    /// (`pingora_proxy_*`).
    Proxy,
    /// Upstream connections and exchanges: connect time and failures, new or reused
    /// connections, idle pooled connections, time to the response head
    /// (`pingora_upstream_*`).
    Upstream,
    /// TLS handshakes and their failures, with clients and with upstreams (`pingora_tls_*`).
    Tls,
    /// HTTP/2 streams opened and active, with clients and with upstreams (`pingora_h2_*`).
    Http2,
    /// The proxy cache, for requests that enable it: lookups, hits, misses, stale responses
    /// served, cache lock waits (`pingora_cache_*`).
    Cache,
    /// The process: CPU time, memory, file descriptors, threads (`process_*`, Linux only,
    /// collected by the `prometheus` crate when exported).
    Process,
}

impl Group {
    /// Every group.
    pub const ALL: [Group; 7] = [
        Group::Downstream,
        Group::Proxy,
        Group::Upstream,
        Group::Tls,
        Group::Http2,
        Group::Cache,
        Group::Process,
    ];

    /// The group's name, in lower case (`"downstream"`, `"http2"` ...).
    pub fn name(self) -> &'static str {
        match self {
            Group::Downstream => "downstream",
            Group::Proxy => "proxy",
            Group::Upstream => "upstream",
            Group::Tls => "tls",
            Group::Http2 => "http2",
            Group::Cache => "cache",
            Group::Process => "process",
        }
    }

    const fn bit(self) -> u32 {
        1 << self as u32
    }
}

/// One bit per group, set when the group is on.
static ENABLED: AtomicU32 = AtomicU32::new((1 << Group::ALL.len()) - 1);

/// Switches `group` on.
pub fn enable(group: Group) {
    ENABLED.fetch_or(group.bit(), Ordering::Relaxed);
}

/// Switches `group` off: its metrics stop recording and are no longer exported.
pub fn disable(group: Group) {
    ENABLED.fetch_and(!group.bit(), Ordering::Relaxed);
}

/// Whether `group` is on.
#[inline]
pub fn is_enabled(group: Group) -> bool {
    ENABLED.load(Ordering::Relaxed) & group.bit() != 0
}

/// The families other crates registered (pingora-proxy's), after the core's own.
static REGISTERED: Mutex<Vec<&'static [Family]>> = Mutex::new(Vec::new());

/// Makes `families` known to exporters. Registering the same slice again does nothing.
pub fn register(families: &'static [Family]) {
    let mut registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    if !registered.iter().any(|f| std::ptr::eq(*f, families)) {
        registered.push(families);
    }
}

/// Every metric family: the core's, then those registered, whether their group is on or not
/// (see [`Family::is_enabled`]).
pub fn families() -> Vec<&'static Family> {
    let registered = REGISTERED.lock().unwrap_or_else(PoisonError::into_inner);
    builtin::FAMILIES
        .iter()
        .chain(registered.iter().flat_map(|f| f.iter()))
        .collect()
}

#[cfg(test)]
mod tests;
