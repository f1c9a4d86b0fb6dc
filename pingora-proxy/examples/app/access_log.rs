//! An access log: one structured `tracing` event per request, written in the `logging` phase,
//! with the request id, the timings and the byte counts the session keeps.

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{ProxyHttp, Session};

/// Milliseconds of a duration, for log fields.
fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A proxy to one origin that logs every request to the `access_log` target.
pub struct AccessLog {
    pub origin: SocketAddr,
}

#[async_trait]
impl ProxyHttp for AccessLog {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }

    async fn logging(&self, session: &mut Session, error: Option<&Error>, _ctx: &mut ()) {
        let req = session.req_header();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let timings = session.timings();
        tracing::info!(
            target: "access_log",
            request_id = session.request_id().unwrap_or("-"),
            client = %session.client_addr().map_or_else(|| "-".to_string(), |a| a.to_string()),
            method = %req.method,
            uri = %req.uri,
            status,
            body_bytes_read = session.body_bytes_read(),
            body_bytes_sent = session.body_bytes_sent(),
            upstream_body_bytes = session.upstream_body_bytes_received(),
            upstream_connect_ms = timings.upstream_connect.map(ms),
            upstream_header_ms = timings.upstream_response_header.map(ms),
            first_byte_ms = timings.first_byte.map(ms),
            total_ms = ms(timings.start.elapsed()),
            error = error.map(|e| e.to_string()),
        );
    }
}
