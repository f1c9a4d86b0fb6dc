//! What the proxy tells about each request: its `tracing` span (with child spans for the
//! upstream connection, the exchange and the cache lookup), its request id, and its timings.
//!
//! Spans cost next to nothing when no subscriber listens: `tracing`'s macros check, once per
//! call site, whether anyone is interested, and the fields are only computed when someone is.

use std::time::{Duration, Instant};

use pingora_http::RequestHeader;
use tracing::field::Empty;
use tracing::Span;

use pingora_core::apps::spans_wanted;
use pingora_core::upstreams::peer::{HttpPeer, Peer};

use crate::request_id::{generate_request_id, valid_request_id, RequestIdOptions};
use crate::Session;

/// Awaits the future `$fut` inside the span `$span` when that span is enabled, bare otherwise
/// (no enter and exit per poll). `$fut` is written out in both arms rather than built once and
/// moved: a future built into a local and then wrapped is copied on the way, and the proxy's
/// futures are kilobytes.
macro_rules! in_span {
    ($span:expr, $fut:expr) => {{
        let span: tracing::Span = $span;
        if span.is_disabled() {
            $fut.await
        } else {
            tracing::Instrument::instrument($fut, span).await
        }
    }};
}
pub(crate) use in_span;

/// When the parts of a request happened, for the `logging` phase and the request's span.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimings {
    /// When the proxy started on the request (its head was read).
    pub start: Instant,
    /// How long the last upstream connection took to get (0 when reused), if one was made.
    pub upstream_connect: Option<Duration>,
    /// From the request sent upstream to the upstream's response head, for the last attempt.
    pub upstream_response_header: Option<Duration>,
    /// From `start` to the response head written to the client (time to first byte).
    pub first_byte: Option<Duration>,
}

impl Default for RequestTimings {
    fn default() -> Self {
        RequestTimings {
            start: Instant::now(),
            upstream_connect: None,
            upstream_response_header: None,
            first_byte: None,
        }
    }
}

/// Starts observing a request, inside its span (the current one, which pingora-core opened
/// around the request): records the request on it, and gives the request its id.
pub(crate) fn begin(session: &mut Session, ids: Option<&RequestIdOptions>) {
    session.span = Span::current();
    if !session.span.is_disabled() {
        let req = session.req_header();
        session
            .span
            .record("method", tracing::field::display(&req.method));
        session.span.record("path", req.uri.path());
        if let Some(peer) = session.client_addr() {
            session.span.record("peer", tracing::field::display(peer));
        }
    }
    assign_request_id(session, ids);
}

/// Gives the request its id (a trusted peer's valid one, or a new one) when ids are on, and
/// records it on the span (an id is made for the span alone when ids are off).
fn assign_request_id(session: &mut Session, options: Option<&RequestIdOptions>) {
    if let Some(options) = options {
        let id = incoming_id(session, options).unwrap_or_else(generate_request_id);
        session.request_id = Some(id);
        if options.to_client {
            session.request_id_header = Some(options.header.clone());
        }
        if options.to_upstream {
            session.request_id_upstream_header = Some(options.header.clone());
        }
    }
    let span = &session.span;
    if !span.is_disabled() {
        match &session.request_id {
            Some(id) => span.record("id", id.as_str()),
            None => span.record("id", generate_request_id().as_str()),
        };
    }
}

/// The id in the request's header, when its peer is trusted and the id is valid.
fn incoming_id(session: &Session, options: &RequestIdOptions) -> Option<String> {
    if options.trusted.is_empty() {
        return None;
    }
    let peer = session.client_addr()?.as_inet()?.ip();
    if !options.trusted.iter().any(|net| net.contains(peer)) {
        return None;
    }
    let value = session.req_header().headers.get(&options.header)?;
    if !valid_request_id(value.as_bytes()) {
        return None;
    }
    value.to_str().ok().map(str::to_owned)
}

/// Sets the request id on `req`, the request about to be sent upstream, when configured.
pub(crate) fn set_upstream_request_id(session: &Session, req: &mut RequestHeader) {
    if let (Some(name), Some(id)) = (&session.request_id_upstream_header, &session.request_id) {
        // A generated or validated id is always a valid value.
        let _ = req.insert_header(name.clone(), id.as_str());
    }
}

/// The span of getting a connection to `peer` (a child of the request's, which records the
/// upstream's address).
pub(crate) fn connect_span(session: &Session, peer: &HttpPeer) -> Span {
    let span = match spans_wanted() {
        true => tracing::info_span!("connect", upstream = Empty, tls = peer.is_tls()),
        false => Span::none(),
    };
    if !span.is_disabled() || !session.span.is_disabled() {
        let address = peer.address();
        span.record("upstream", tracing::field::display(address));
        session
            .span
            .record("upstream", tracing::field::display(address));
    }
    span
}

/// The span of one exchange with the upstream: the request sent, the response received.
pub(crate) fn exchange_span() -> Span {
    match spans_wanted() {
        true => tracing::info_span!("upstream_request"),
        false => Span::none(),
    }
}

/// Records the request's outcome on its span, once it is over.
pub(crate) fn record_outcome(session: &Session) {
    let span = &session.span;
    if span.is_disabled() {
        return;
    }
    if let Some(resp) = session.response_written() {
        span.record("status", resp.status.as_u16());
    }
    span.record("retries", session.retries);
    let t = &session.timings;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if let Some(d) = t.upstream_connect {
        span.record("connect_ms", ms(d));
    }
    if let Some(d) = t.upstream_response_header {
        span.record("upstream_header_ms", ms(d));
    }
    if let Some(d) = t.first_byte {
        span.record("first_byte_ms", ms(d));
    }
    span.record("total_ms", ms(t.start.elapsed()));
}
