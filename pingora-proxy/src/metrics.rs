//! The proxy's built-in metrics (see [`pingora_core::metrics`]) and the functions that
//! record them, one call per site in the proxy.

use std::time::Duration;

use pingora_cache::lock::LockStatus;
use pingora_core::metrics::{is_enabled, Counter, Family, Group, Histogram, Samples};
use pingora_core::protocols::http::ServerSession;

use crate::Session;

static REQUESTS: [Counter; 2] = [Counter::new(), Counter::new()];
static RESPONSES: [Counter; 5] = [
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
];
static RETRIES: Counter = Counter::new();
static RESPONSE_HEADER_SECONDS: Histogram = Histogram::new();
static CACHE_LOOKUPS: Counter = Counter::new();
static CACHE_HITS: Counter = Counter::new();
static CACHE_MISSES: Counter = Counter::new();
static CACHE_STALE: [Counter; 2] = [Counter::new(), Counter::new()];
static CACHE_LOCK_WAITS: [Counter; 4] = [
    Counter::new(),
    Counter::new(),
    Counter::new(),
    Counter::new(),
];

/// Why a stale response was served.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stale {
    /// While another request revalidates it (`stale-while-revalidate`).
    Updating = 0,
    /// The upstream failed (`stale-if-error`).
    Error = 1,
}

static FAMILIES: [Family; 9] = [
    Family {
        name: "pingora_proxy_requests_total",
        help: "Requests from clients the proxy read, by protocol.",
        group: Group::Proxy,
        label: Some("protocol"),
        samples: Samples::Counters(&[("h1", &REQUESTS[0]), ("h2", &REQUESTS[1])]),
    },
    Family {
        name: "pingora_proxy_responses_total",
        help: "Responses the proxy sent to clients, by status class.",
        group: Group::Proxy,
        label: Some("class"),
        samples: Samples::Counters(&[
            ("1xx", &RESPONSES[0]),
            ("2xx", &RESPONSES[1]),
            ("3xx", &RESPONSES[2]),
            ("4xx", &RESPONSES[3]),
            ("5xx", &RESPONSES[4]),
        ]),
    },
    Family {
        name: "pingora_proxy_retries_total",
        help: "Upstream attempts retried after a failure.",
        group: Group::Proxy,
        label: None,
        samples: Samples::Counters(&[("", &RETRIES)]),
    },
    Family {
        name: "pingora_upstream_response_header_seconds",
        help: "Time from sending a request head upstream to receiving the response head.",
        group: Group::Upstream,
        label: None,
        samples: Samples::Histograms(&[("", &RESPONSE_HEADER_SECONDS)]),
    },
    Family {
        name: "pingora_cache_lookups_total",
        help: "Requests that looked their response up in the cache.",
        group: Group::Cache,
        label: None,
        samples: Samples::Counters(&[("", &CACHE_LOOKUPS)]),
    },
    Family {
        name: "pingora_cache_hits_total",
        help: "Requests answered with a fresh response from the cache.",
        group: Group::Cache,
        label: None,
        samples: Samples::Counters(&[("", &CACHE_HITS)]),
    },
    Family {
        name: "pingora_cache_misses_total",
        help: "Requests that found no usable response in the cache and went upstream for one.",
        group: Group::Cache,
        label: None,
        samples: Samples::Counters(&[("", &CACHE_MISSES)]),
    },
    Family {
        name: "pingora_cache_stale_served_total",
        help: "Stale responses served from the cache, while revalidating or after an upstream \
               error.",
        group: Group::Cache,
        label: Some("reason"),
        samples: Samples::Counters(&[("updating", &CACHE_STALE[0]), ("error", &CACHE_STALE[1])]),
    },
    Family {
        name: "pingora_cache_lock_waits_total",
        help: "Waits on the cache lock of another request fetching the same response, by how \
               they ended.",
        group: Group::Cache,
        label: Some("outcome"),
        samples: Samples::Counters(&[
            ("done", &CACHE_LOCK_WAITS[0]),
            ("timeout", &CACHE_LOCK_WAITS[1]),
            ("give_up", &CACHE_LOCK_WAITS[2]),
            ("retry", &CACHE_LOCK_WAITS[3]),
        ]),
    },
];

/// Makes the proxy's metrics known to exporters.
pub(crate) fn register() {
    pingora_core::metrics::register(&FAMILIES);
}

/// A request was read from a client.
#[inline]
pub(crate) fn request(downstream: &ServerSession) {
    if is_enabled(Group::Proxy) {
        REQUESTS[usize::from(downstream.is_http2())].inc();
    }
}

/// A request ends: counts the response sent to the client, by status class (subrequests and
/// requests that got no response are not counted).
#[inline]
pub(crate) fn response(session: &Session) {
    if !is_enabled(Group::Proxy) || session.downstream_session.is_subrequest() {
        return;
    }
    let Some(resp) = session.response_written() else {
        return;
    };
    let class = usize::from(resp.status.as_u16() / 100);
    if let Some(counter) = class.checked_sub(1).and_then(|i| RESPONSES.get(i)) {
        counter.inc();
    }
}

/// An upstream attempt failed and is tried again.
#[inline]
pub(crate) fn retry() {
    if is_enabled(Group::Proxy) {
        RETRIES.inc();
    }
}

/// The upstream's response head (the first but interim 1xx ones) came `waited` after the
/// request head was sent.
#[inline]
pub(crate) fn upstream_response_header(waited: Duration) {
    if is_enabled(Group::Upstream) {
        RESPONSE_HEADER_SECONDS.observe(waited);
    }
}

/// The stored response is about to be served after the upstream exchange: counts it if it is
/// served stale because the upstream failed.
#[inline]
pub(crate) fn stored_after_upstream(session: &Session) {
    if session.cache_ctx.stale_if_error {
        cache_stale(Stale::Error);
    }
}

/// A request looks its response up in the cache.
#[inline]
pub(crate) fn cache_lookup() {
    if is_enabled(Group::Cache) {
        CACHE_LOOKUPS.inc();
    }
}

/// A fresh response from the cache answers the request.
#[inline]
pub(crate) fn cache_hit() {
    if is_enabled(Group::Cache) {
        CACHE_HITS.inc();
    }
}

/// The request goes upstream for a response it did not find in the cache.
#[inline]
pub(crate) fn cache_miss() {
    if is_enabled(Group::Cache) {
        CACHE_MISSES.inc();
    }
}

/// A stale response from the cache answers the request.
#[inline]
pub(crate) fn cache_stale(reason: Stale) {
    if is_enabled(Group::Cache) {
        CACHE_STALE[reason as usize].inc();
    }
}

/// A wait on the cache lock ended with `status`.
#[inline]
pub(crate) fn cache_lock_wait(status: LockStatus) {
    if is_enabled(Group::Cache) {
        let outcome = match status {
            LockStatus::Done => 0,
            LockStatus::WaitTimeout => 1,
            LockStatus::GiveUp => 2,
            _ => 3,
        };
        CACHE_LOCK_WAITS[outcome].inc();
    }
}
