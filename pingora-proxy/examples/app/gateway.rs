//! An API gateway: routes by path, guards `/login` with a password, edits headers, and counts
//! (in a Prometheus counter) and logs every request.

use std::net::SocketAddr;
use std::sync::LazyLock;

use async_trait::async_trait;
use pingora_core::apps::HttpServerOptions;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_prometheus::prometheus::{register_int_counter, IntCounter};
use pingora_proxy::{ProxyHttp, Session};

/// How the gateway serves clients: HTTP/1, and HTTP/2 without TLS (h2c with prior knowledge)
/// on the same port.
pub fn server_options() -> HttpServerOptions {
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    options
}

/// The password `/login` requires in the `Authorization` header.
pub const PASSWORD: &str = "open sesame";

/// Requests the gateway served, whatever their outcome: a metric of the program's own, in the
/// registry the Prometheus service exports with Pingora's built-in metrics. Registered once
/// per process (a name may be registered only once), shared by every `Gateway`.
pub static REQUESTS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("gateway_requests_total", "Requests the gateway served.")
        .expect("registered once")
});

/// Routes `/api/...` to one origin and everything else to another.
#[derive(Debug)]
pub struct Gateway {
    pub api: SocketAddr,
    pub www: SocketAddr,
    /// Requests served, whatever their outcome ([`REQUESTS`]).
    pub served: IntCounter,
}

impl Gateway {
    pub fn new(api: SocketAddr, www: SocketAddr) -> Self {
        Gateway {
            api,
            www,
            served: REQUESTS.clone(),
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        let path = session.req_header().uri.path();
        let authorized = session.get_header_bytes("authorization") == PASSWORD.as_bytes();
        if path.starts_with("/login") && !authorized {
            session.respond_error(403).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(&self, session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let origin = if session.req_header().uri.path().starts_with("/api/") {
            self.api
        } else {
            self.www
        };
        Ok(Box::new(HttpPeer::new(origin, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        upstream_request.insert_header("X-Forwarded-By", "gateway")?;
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        upstream_response.insert_header("Server", "Gateway")?;
        upstream_response.remove_header("x-origin");
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, _ctx: &mut ()) {
        self.served.inc();
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        log::info!(
            "{} status {status}{}",
            self.request_summary(session, &()),
            e.map(|e| format!(", error: {e}")).unwrap_or_default()
        );
    }
}
