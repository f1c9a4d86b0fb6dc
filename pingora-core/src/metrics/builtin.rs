//! The core's metrics and the functions that record them, one call per site in the engine.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Instant;

use pingora_error::Result;
use pingora_pool::ConnectionPool;

use super::{is_enabled, Counter, Family, Gauge, GaugeGuard, Group, Histogram, Samples};

/// Which side of the proxy a connection or stream is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// With a client.
    Downstream,
    /// With an upstream server.
    Upstream,
}

pub(super) static ACCEPTED: Counter = Counter::new();
static OPEN: Gauge = Gauge::new();
static TLS_HANDSHAKES: [Counter; 2] = [Counter::new(), Counter::new()];
static TLS_FAILURES: [Counter; 2] = [Counter::new(), Counter::new()];
static CONNECT_SECONDS: Histogram = Histogram::new();
static CONNECT_FAILURES: Counter = Counter::new();
static NEW_SESSIONS: Counter = Counter::new();
static REUSED_SESSIONS: Counter = Counter::new();
static H2_OPENED: [Counter; 2] = [Counter::new(), Counter::new()];
static H2_ACTIVE: [Gauge; 2] = [Gauge::new(), Gauge::new()];

/// The connection pools of the connectors alive, for the idle-connection gauge.
static POOLS: Mutex<Vec<Weak<dyn IdleCount>>> = Mutex::new(Vec::new());

/// A pool whose idle connections are counted.
trait IdleCount: Send + Sync {
    fn idle_count(&self) -> usize;
}

impl<S: Send + Sync> IdleCount for ConnectionPool<S> {
    fn idle_count(&self) -> usize {
        ConnectionPool::idle_count(self)
    }
}

/// The label values of [`Side`], in the order of the arrays indexed by it.
const SIDES: [&str; 2] = ["downstream", "upstream"];

/// The core's metrics.
pub(super) static FAMILIES: [Family; 10] = [
    Family {
        name: "pingora_downstream_connections_accepted_total",
        help: "Client connections accepted by the listening services.",
        group: Group::Downstream,
        label: None,
        samples: Samples::Counters(&[("", &ACCEPTED)]),
    },
    Family {
        name: "pingora_downstream_connections_open",
        help: "Client connections open.",
        group: Group::Downstream,
        label: None,
        samples: Samples::Gauges(&[("", &OPEN)]),
    },
    Family {
        name: "pingora_tls_handshakes_total",
        help: "TLS handshakes completed, with clients and with upstreams.",
        group: Group::Tls,
        label: Some("side"),
        samples: Samples::Counters(&[
            (SIDES[0], &TLS_HANDSHAKES[0]),
            (SIDES[1], &TLS_HANDSHAKES[1]),
        ]),
    },
    Family {
        name: "pingora_tls_handshake_failures_total",
        help: "TLS handshakes that failed or timed out, with clients and with upstreams.",
        group: Group::Tls,
        label: Some("side"),
        samples: Samples::Counters(&[(SIDES[0], &TLS_FAILURES[0]), (SIDES[1], &TLS_FAILURES[1])]),
    },
    Family {
        name: "pingora_upstream_connect_seconds",
        help: "Time to establish a new upstream connection (TCP, then TLS if any).",
        group: Group::Upstream,
        label: None,
        samples: Samples::Histograms(&[("", &CONNECT_SECONDS)]),
    },
    Family {
        name: "pingora_upstream_connect_failures_total",
        help: "New upstream connections that failed (refused, timed out, TLS error).",
        group: Group::Upstream,
        label: None,
        samples: Samples::Counters(&[("", &CONNECT_FAILURES)]),
    },
    Family {
        name: "pingora_upstream_sessions_total",
        help: "Upstream HTTP sessions handed out, on a new or a reused (pooled or shared \
               HTTP/2) connection.",
        group: Group::Upstream,
        label: Some("connection"),
        samples: Samples::Counters(&[("new", &NEW_SESSIONS), ("reused", &REUSED_SESSIONS)]),
    },
    Family {
        name: "pingora_upstream_idle_connections",
        help: "Idle upstream connections kept in the connection pools for reuse.",
        group: Group::Upstream,
        label: None,
        samples: Samples::Sampled(idle_connections),
    },
    Family {
        name: "pingora_h2_streams_opened_total",
        help: "HTTP/2 streams opened, by clients and to upstreams.",
        group: Group::Http2,
        label: Some("side"),
        samples: Samples::Counters(&[(SIDES[0], &H2_OPENED[0]), (SIDES[1], &H2_OPENED[1])]),
    },
    Family {
        name: "pingora_h2_streams_active",
        help: "HTTP/2 streams open now, with clients and with upstreams.",
        group: Group::Http2,
        label: Some("side"),
        samples: Samples::Gauges(&[(SIDES[0], &H2_ACTIVE[0]), (SIDES[1], &H2_ACTIVE[1])]),
    },
];

/// A client connection was accepted; it counts as open until the guard is dropped.
#[inline]
pub(crate) fn connection_accepted() -> Option<GaugeGuard> {
    if !is_enabled(Group::Downstream) {
        return None;
    }
    ACCEPTED.inc();
    Some(OPEN.track())
}

/// A TLS handshake on `side` ended with `result`, passed through.
#[inline]
pub(crate) fn tls_handshake<T>(side: Side, result: Result<T>) -> Result<T> {
    if is_enabled(Group::Tls) {
        let counters = if result.is_ok() {
            &TLS_HANDSHAKES
        } else {
            &TLS_FAILURES
        };
        counters[side as usize].inc();
    }
    result
}

/// A new upstream connection starts: when, if the metric is on. (A timestamp rather than a
/// wrapper future, which would make every future holding a connect larger.)
#[inline]
pub(crate) fn upstream_connect_started() -> Option<Instant> {
    is_enabled(Group::Upstream).then(Instant::now)
}

/// The connection begun at `started` ended with `result`, passed through.
#[inline]
pub(crate) fn upstream_connect_done<T>(started: Option<Instant>, result: Result<T>) -> Result<T> {
    if let Some(started) = started {
        match &result {
            Ok(_) => CONNECT_SECONDS.observe(started.elapsed()),
            Err(_) => CONNECT_FAILURES.inc(),
        }
    }
    result
}

/// The connector handed out an upstream session (with whether its connection was reused), or
/// failed to; passed through.
#[inline]
pub(crate) fn upstream_session<T>(result: Result<(T, bool)>) -> Result<(T, bool)> {
    if let Ok((_, reused)) = &result {
        if is_enabled(Group::Upstream) {
            let counter = if *reused {
                &REUSED_SESSIONS
            } else {
                &NEW_SESSIONS
            };
            counter.inc();
        }
    }
    result
}

/// Counts the idle connections of `pool` in the idle-connection gauge while it lives.
pub(crate) fn track_pool<S: Send + Sync + 'static>(pool: &Arc<ConnectionPool<S>>) {
    let pool: Arc<dyn IdleCount> = pool.clone();
    let mut pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    pools.retain(|p| p.strong_count() > 0);
    pools.push(Arc::downgrade(&pool));
}

/// The idle connections of all the pools alive.
fn idle_connections() -> i64 {
    let pools = POOLS.lock().unwrap_or_else(PoisonError::into_inner);
    let idle: usize = pools
        .iter()
        .filter_map(Weak::upgrade)
        .map(|pool| pool.idle_count())
        .sum();
    i64::try_from(idle).unwrap_or(i64::MAX)
}

/// An HTTP/2 stream on `side` was opened; it counts as active until the guard is dropped.
#[inline]
pub(crate) fn h2_stream(side: Side) -> Option<GaugeGuard> {
    if !is_enabled(Group::Http2) {
        return None;
    }
    H2_OPENED[side as usize].inc();
    Some(H2_ACTIVE[side as usize].track())
}

/// [`h2_stream`] for a stream that keeps a flag rather than a guard (a field of one byte):
/// returns whether it was counted, and then [`h2_stream_closed`] must follow.
#[inline]
pub(crate) fn h2_stream_opened(side: Side) -> bool {
    if !is_enabled(Group::Http2) {
        return false;
    }
    H2_OPENED[side as usize].inc();
    H2_ACTIVE[side as usize].add(1);
    true
}

/// A stream counted by [`h2_stream_opened`] ended.
#[inline]
pub(crate) fn h2_stream_closed(side: Side) {
    H2_ACTIVE[side as usize].add(-1);
}
