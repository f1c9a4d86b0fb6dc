//! A Prometheus metrics service for Pingora servers.
//!
//! [`prometheus_http_service`] is a listening service that answers every request with the
//! metrics of the default [`prometheus`] registry in the text exposition format, compressed
//! when the scraper accepts it (`Accept-Encoding: gzip`). The registry holds Pingora's built-in
//! metrics (see [`pingora_core::metrics`] and `docs/user_guide/prom.md`) and the program's own,
//! registered through the [`prometheus`] re-exported here, so one scrape returns both:
//!
//! ```no_run
//! use pingora_core::server::Server;
//! use pingora_prometheus::prometheus::{register_int_counter, IntCounter};
//! use std::sync::LazyLock;
//!
//! static LOGINS: LazyLock<IntCounter> =
//!     LazyLock::new(|| register_int_counter!("logins_total", "Successful logins").unwrap());
//!
//! let mut server = Server::new(None).unwrap();
//! server.bootstrap();
//! let mut metrics = pingora_prometheus::prometheus_http_service();
//! metrics.add_tcp("127.0.0.1:6192");
//! server.add_service(metrics);
//! LOGINS.inc();
//! server.run_forever();
//! ```
//!
//! # Process metrics
//!
//! On Linux the default registry also collects the process' CPU time, memory, open file
//! descriptors and threads (`process_*`); they belong to the built-in group
//! [`Group::Process`](pingora_core::metrics::Group::Process) and go when it is switched off.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod builtin;

use async_trait::async_trait;
use http::{header, Response, StatusCode};
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::modules::http::compression::ResponseCompressionBuilder;
use pingora_core::protocols::http::ServerSession;
use pingora_core::services::listening::Service;
use prometheus::{Encoder, TextEncoder};

pub use builtin::register_builtin_metrics;

/// The [`prometheus`] crate, so that the program registers its metrics in the registry this
/// service exports (a `prometheus` of another version in the program would have a registry of
/// its own, whose metrics would silently not appear).
pub use prometheus;

/// The name of the service [`prometheus_http_service`] creates.
const SERVICE_NAME: &str = "Prometheus metric HTTP";

/// The compression level of the responses (gzip, brotli or zstd, as the scraper accepts).
const COMPRESSION_LEVEL: u32 = 7;

/// An HTTP application answering every request, whatever its path, with the metrics of the
/// default [`prometheus`] registry (built-in metrics included) in the text format.
///
/// Scrapers ask for `/metrics` by convention; any path works, so give this application a
/// listener of its own.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrometheusHttpApp;

#[async_trait]
impl ServeHttp for PrometheusHttpApp {
    async fn response(&self, _http_session: &mut ServerSession) -> Response<Vec<u8>> {
        register_builtin_metrics();
        let encoder = TextEncoder::new();
        let mut body = Vec::new();
        let (status, content_type) = match encoder.encode(&prometheus::gather(), &mut body) {
            Ok(()) => (StatusCode::OK, prometheus::TEXT_FORMAT),
            Err(e) => {
                log::error!("cannot encode the metrics: {e}");
                body = format!("cannot encode the metrics: {e}\n").into_bytes();
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain; charset=utf-8",
                )
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(content_type),
        );
        response
    }
}

/// [`PrometheusHttpApp`] run as an HTTP server.
pub type PrometheusServer = HttpServer<PrometheusHttpApp>;

/// A [`PrometheusServer`] that compresses its responses (level 7) for scrapers that accept it.
pub fn new_prometheus_server() -> PrometheusServer {
    register_builtin_metrics();
    let mut server = PrometheusServer::new_app(PrometheusHttpApp);
    server.add_module(ResponseCompressionBuilder::enable(COMPRESSION_LEVEL));
    server
}

/// A service named "Prometheus metric HTTP" running [`new_prometheus_server`]; add its
/// endpoints (`add_tcp`) and then add it to the server.
pub fn prometheus_http_service() -> Service<PrometheusServer> {
    Service::new(SERVICE_NAME.to_string(), new_prometheus_server())
}

#[cfg(test)]
mod tests;
