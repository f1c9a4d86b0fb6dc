//! Health checks: is a backend up?
//!
//! A backend starts healthy. It turns unhealthy after `consecutive_failure` failed checks in a
//! row, and healthy again after `consecutive_success` passed ones.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::connectors::http::Connector;
use pingora_core::connectors::TransportConnector;
use pingora_core::upstreams::peer::{BasicPeer, HttpPeer, Peer};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::Backend;

/// How long a check may take to connect, and (HTTP) to read the response, by default.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A way to check a backend.
#[async_trait]
pub trait HealthCheck {
    /// Checks `target`: `Ok` if it is up.
    async fn check(&self, target: &Backend) -> Result<()>;

    /// Called when `target`'s health flips.
    async fn health_status_change(&self, _target: &Backend, _healthy: bool) {}

    /// How `target` is named in logs.
    fn backend_summary(&self, target: &Backend) -> String {
        format!("{target:?}")
    }

    /// How many consecutive results it takes to flip the health: successes to become healthy
    /// (`success`), failures to become unhealthy.
    fn health_threshold(&self, success: bool) -> usize;
}

/// Told when a backend's health flips.
#[async_trait]
pub trait HealthObserve {
    /// `target` became healthy (`true`) or unhealthy.
    async fn observe(&self, target: &Backend, healthy: bool);
}

/// A [`HealthObserve`] to hand to a health check.
pub type HealthObserveCallback = Box<dyn HealthObserve + Send + Sync>;

/// A check that the backend accepts TCP connections (and completes a TLS handshake when the
/// peer template has an SNI).
pub struct TcpHealthCheck {
    /// Passed checks in a row to become healthy (default 1).
    pub consecutive_success: usize,
    /// Failed checks in a row to become unhealthy (default 1).
    pub consecutive_failure: usize,
    /// The connection settings; its address is replaced by each backend's.
    pub peer_template: BasicPeer,
    connector: TransportConnector,
    /// Told when a backend's health flips.
    pub health_changed_callback: Option<HealthObserveCallback>,
}

impl std::fmt::Debug for TcpHealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpHealthCheck")
            .field("consecutive_success", &self.consecutive_success)
            .field("consecutive_failure", &self.consecutive_failure)
            .field("peer_template", &self.peer_template)
            .finish_non_exhaustive()
    }
}

impl TcpHealthCheck {
    /// A plain TCP check with a 1 s connect timeout.
    pub fn new() -> Box<Self> {
        let mut peer_template = BasicPeer::new("127.0.0.1:1");
        peer_template.options.connection_timeout = Some(CHECK_TIMEOUT);
        Box::new(TcpHealthCheck {
            consecutive_success: 1,
            consecutive_failure: 1,
            peer_template,
            connector: TransportConnector::new(None),
            health_changed_callback: None,
        })
    }

    /// A TLS check: connects and completes a handshake presenting `sni`.
    pub fn new_tls(sni: &str) -> Box<Self> {
        let mut check = Self::new();
        check.peer_template.sni = sni.to_string();
        check
    }

    /// Uses `connector` for the checks' connections.
    pub fn set_connector(&mut self, connector: TransportConnector) {
        self.connector = connector;
    }
}

#[async_trait]
impl HealthCheck for TcpHealthCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        let mut peer = self.peer_template.clone();
        peer._address = target.addr.clone();
        self.connector.new_stream(&peer).await.map(drop)
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some(callback) = &self.health_changed_callback {
            callback.observe(target, healthy).await;
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.consecutive_success
        } else {
            self.consecutive_failure
        }
    }
}

/// Decides whether a response means healthy.
pub type Validator = Box<dyn Fn(&ResponseHeader) -> Result<()> + Send + Sync>;

/// A check that the backend answers an HTTP request: by default `GET /` with the configured
/// `Host`, healthy on a 200.
pub struct HttpHealthCheck {
    /// Passed checks in a row to become healthy (default 1).
    pub consecutive_success: usize,
    /// Failed checks in a row to become unhealthy (default 1).
    pub consecutive_failure: usize,
    /// The connection settings; its address is replaced by each backend's.
    pub peer_template: HttpPeer,
    /// Keep the check's connection for the next check (default off).
    pub reuse_connection: bool,
    /// The request sent.
    pub req: RequestHeader,
    connector: Connector,
    /// Decides from the response head whether the backend is healthy; without one, only a
    /// 200 is.
    pub validator: Option<Validator>,
    /// Checks this port instead of the backend's.
    pub port_override: Option<u16>,
    /// Told when a backend's health flips.
    pub health_changed_callback: Option<HealthObserveCallback>,
    /// Names backends in this check's logs (see [`set_backend_summary`](Self::set_backend_summary)).
    pub backend_summary_callback: Option<BackendSummary>,
}

/// Names a backend in logs.
pub type BackendSummary = Box<dyn Fn(&Backend) -> String + Send + Sync>;

impl std::fmt::Debug for HttpHealthCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpHealthCheck")
            .field("consecutive_success", &self.consecutive_success)
            .field("consecutive_failure", &self.consecutive_failure)
            .field("req", &self.req)
            .field("reuse_connection", &self.reuse_connection)
            .field("port_override", &self.port_override)
            .finish_non_exhaustive()
    }
}

impl HttpHealthCheck {
    /// A check sending `GET /` with `Host: host`, over TLS when `tls`, with 1 s connect and
    /// read timeouts.
    pub fn new(host: &str, tls: bool) -> Self {
        let mut req = RequestHeader::build("GET", b"/", None).expect("a valid request line");
        // A host that is not a valid header value is left out rather than failing here.
        let _ = req.append_header("Host", host);
        let sni = if tls { host.to_string() } else { String::new() };
        let mut peer_template = HttpPeer::new("127.0.0.1:1", tls, sni);
        peer_template.options.connection_timeout = Some(CHECK_TIMEOUT);
        peer_template.options.read_timeout = Some(CHECK_TIMEOUT);
        HttpHealthCheck {
            consecutive_success: 1,
            consecutive_failure: 1,
            peer_template,
            reuse_connection: false,
            req,
            connector: Connector::new(None),
            validator: None,
            port_override: None,
            health_changed_callback: None,
            backend_summary_callback: None,
        }
    }

    /// A check like [`new`](Self::new) whose connections come from `connector` (its own TLS
    /// provider or pool settings, say).
    pub fn new_custom(host: &str, tls: bool, connector: Connector) -> Self {
        let mut check = Self::new(host, tls);
        check.connector = connector;
        check
    }

    /// Makes the check's connections with `connector` from now on.
    pub fn set_connector(&mut self, connector: Connector) {
        self.connector = connector;
    }

    /// Names backends in logs with `summary`.
    pub fn set_backend_summary<F>(&mut self, summary: F)
    where
        F: Fn(&Backend) -> String + Send + Sync + 'static,
    {
        self.backend_summary_callback = Some(Box::new(summary));
    }
}

#[async_trait]
impl HealthCheck for HttpHealthCheck {
    async fn check(&self, target: &Backend) -> Result<()> {
        let mut peer = self.peer_template.clone();
        peer._address = target.addr.clone();
        if let Some(port) = self.port_override {
            peer._address.set_port(port);
        }
        let (mut session, _reused) = self.connector.get_http_session(&peer).await?;
        session
            .write_request_header(Box::new(self.req.clone()))
            .await?;
        session.finish_request_body().await?;
        session.read_response_header().await?;
        // Skip informational responses.
        while session
            .response_header()
            .is_some_and(|r| r.status.is_informational())
        {
            session.read_response_header().await?;
        }
        let resp = session
            .response_header()
            .ok_or_else(|| Error::explain(ErrorType::InvalidHTTPHeader, "no response"))?;
        match &self.validator {
            Some(validate) => validate(resp)?,
            None if resp.status != 200 => {
                return Error::e_explain(
                    ErrorType::CustomCode("non-200 health check response", resp.status.as_u16()),
                    format!("health check answered {}", resp.status),
                )
            }
            None => {}
        }
        while session.read_response_body().await?.is_some() {}
        if self.reuse_connection {
            let idle = peer.idle_timeout();
            self.connector
                .release_http_session(session, &peer, idle)
                .await;
        }
        Ok(())
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        if let Some(callback) = &self.health_changed_callback {
            callback.observe(target, healthy).await;
        }
    }

    fn backend_summary(&self, target: &Backend) -> String {
        match &self.backend_summary_callback {
            Some(summary) => summary(target),
            None => format!("{target:?}"),
        }
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.consecutive_success
        } else {
            self.consecutive_failure
        }
    }
}

/// Lets an `Arc`'d check be shared.
#[async_trait]
impl<T: HealthCheck + Send + Sync + ?Sized> HealthCheck for Arc<T> {
    async fn check(&self, target: &Backend) -> Result<()> {
        (**self).check(target).await
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        (**self).health_status_change(target, healthy).await
    }

    fn backend_summary(&self, target: &Backend) -> String {
        (**self).backend_summary(target)
    }

    fn health_threshold(&self, success: bool) -> usize {
        (**self).health_threshold(success)
    }
}
