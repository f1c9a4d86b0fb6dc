//! A programmable HTTP reverse proxy.
//!
//! Implement [`ProxyHttp`] (at least [`new_ctx`](ProxyHttp::new_ctx) and
//! [`upstream_peer`](ProxyHttp::upstream_peer)), wrap it with [`http_proxy_service`] and add the
//! service to a [`Server`](pingora_core::server::Server):
//!
//! ```no_run
//! use async_trait::async_trait;
//! use pingora_core::prelude::*;
//! use pingora_core::upstreams::peer::HttpPeer;
//! use pingora_proxy::{http_proxy_service, ProxyHttp, Session};
//!
//! struct ToOrigin;
//!
//! #[async_trait]
//! impl ProxyHttp for ToOrigin {
//!     type CTX = ();
//!     fn new_ctx(&self) {}
//!
//!     async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
//!         Ok(Box::new(HttpPeer::new("127.0.0.1:8080", false, String::new())))
//!     }
//! }
//!
//! let mut server = Server::new(None).unwrap();
//! server.bootstrap();
//! let mut proxy = http_proxy_service(&server.configuration, ToOrigin);
//! proxy.add_tcp("0.0.0.0:6188");
//! server.add_service(proxy);
//! server.run_forever();
//! ```
//!
//! # What the proxy does for you
//!
//! * Streams bodies both ways at once with bounded memory, re-framing them when needed.
//! * Reuses upstream connections (keyed by everything that makes two connections differ) and
//!   client connections (keepalive).
//! * Retries failed connections and requests that failed on a reused upstream connection,
//!   replaying up to 64 KiB of request body, up to `max_retries` times.
//! * Removes hop-by-hop headers (RFC 9110 section 7.6.1), passes 1xx responses through, and
//!   pipes upgraded connections (WebSocket) and `CONNECT` tunnels (when allowed).
//! * Maps failures to statuses: 502 for upstream errors, 400 for bad requests, 500 otherwise
//!   (see [`ProxyHttp::fail_to_proxy`]).
//! * Serves HTTP/2 clients (TLS with ALPN `h2`, or h2c when
//!   [`HttpServerOptions::h2c`] is on), one task per stream through the same callbacks, and
//!   translates their requests to HTTP/1.1 upstream (see `docs/user_guide/http2.md`).
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod headers;
mod metrics;
mod observe;
pub mod proxy_cache;
mod proxy_trait;
mod pump;
pub mod request_id;
mod session;
pub mod subrequest;

use std::sync::Arc;

use async_trait::async_trait;
use log::{debug, error, warn};
use pingora_cache::NoCacheReason;
use pingora_core::apps::{
    HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream,
};
use pingora_core::connectors::http::Connector;
use pingora_core::connectors::ConnectorOptions;
use pingora_core::modules::http::HttpModules;
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::listening::Service;
use pingora_core::upstreams::peer::Peer;
use pingora_error::Error;

pub use observe::RequestTimings;
pub use proxy_cache::purge::PurgeStatus;
pub use proxy_trait::{FailToProxy, ProxyHttp};
pub use request_id::{RequestIdOptions, TrustedNet};
pub use session::Session;
use subrequest::SubrequestSpawner;

/// The name of the service [`http_proxy_service`] creates.
const DEFAULT_SERVICE_NAME: &str = "Pingora HTTP Proxy Service";

/// The HTTP proxy application: runs a [`ProxyHttp`] for each request.
pub struct HttpProxy<SV> {
    inner: SV,
    client_upstream: Connector,
    /// The modules every request's response passes through on its way to the client (set up
    /// by [`ProxyHttp::init_downstream_modules`]).
    pub downstream_modules: HttpModules,
    /// The modules every upstream exchange passes through (set up by
    /// `ProxyHttp::init_upstream_modules`).
    #[cfg(feature = "upstream_modules")]
    pub upstream_modules: HttpModules,
    max_retries: usize,
    /// The caches requests enabled, for invalidations by requests that did not.
    caches: proxy_cache::KnownCaches,
    /// Options for serving client connections; set `h2c` in them to serve HTTP/2 without TLS.
    pub server_options: Option<HttpServerOptions>,
    /// Settings of client HTTP/2 connections; `None` for
    /// [`default_options`](pingora_core::protocols::http::v2::server::default_options).
    pub h2_options: Option<H2Options>,
    /// Request ids: `None` (the default) for none; with options, every request gets one
    /// (`Session::request_id`), sent upstream and to the client in a header.
    pub request_id: Option<RequestIdOptions>,
}

impl<SV> std::fmt::Debug for HttpProxy<SV> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProxy")
            .field("max_retries", &self.max_retries)
            .field("server_options", &self.server_options)
            .finish_non_exhaustive()
    }
}

impl<SV> HttpProxy<SV> {
    /// A proxy running `inner`, with the connection and retry settings of `conf`.
    pub fn new(inner: SV, conf: Arc<ServerConf>) -> Self {
        metrics::register();
        HttpProxy {
            inner,
            client_upstream: Connector::new(Some(ConnectorOptions::from_server_conf(&conf))),
            downstream_modules: HttpModules::new(),
            #[cfg(feature = "upstream_modules")]
            upstream_modules: HttpModules::new(),
            max_retries: conf.max_retries,
            caches: proxy_cache::KnownCaches::default(),
            server_options: None,
            h2_options: None,
            request_id: None,
        }
    }

    /// The downstream modules, to add to before the service starts.
    pub fn downstream_modules(&mut self) -> &mut HttpModules {
        &mut self.downstream_modules
    }

    /// Upstream connections closed because they received data while idle in the pool.
    pub fn unexpected_data_connection_count(&self) -> u64 {
        self.client_upstream
            .transport()
            .unexpected_data_connection_count()
    }

    /// The counter behind
    /// [`unexpected_data_connection_count`](Self::unexpected_data_connection_count), to read
    /// it after the proxy was handed to its service.
    pub fn unexpected_data_connection_counter(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.client_upstream
            .transport()
            .unexpected_data_connection_counter()
    }
}

impl<SV: ProxyHttp> HttpProxy<SV> {
    /// Lets the application set up the downstream (and upstream) modules.
    pub fn handle_init_modules(&mut self) {
        self.inner
            .init_downstream_modules(&mut self.downstream_modules);
        #[cfg(feature = "upstream_modules")]
        self.inner.init_upstream_modules(&mut self.upstream_modules);
    }
}

/// A bare proxy application, for those who run their own accept loop.
pub fn http_proxy<SV: ProxyHttp>(conf: &Arc<ServerConf>, inner: SV) -> HttpProxy<SV> {
    let mut proxy = HttpProxy::new(inner, conf.clone());
    proxy.handle_init_modules();
    proxy
}

/// A listening service running the proxy `inner`, named "Pingora HTTP Proxy Service".
pub fn http_proxy_service<SV>(conf: &Arc<ServerConf>, inner: SV) -> Service<HttpProxy<SV>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    http_proxy_service_with_name(conf, inner, DEFAULT_SERVICE_NAME)
}

/// A listening service running the proxy `inner`, named `name`.
pub fn http_proxy_service_with_name<SV>(
    conf: &Arc<ServerConf>,
    inner: SV,
    name: &str,
) -> Service<HttpProxy<SV>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    ProxyServiceBuilder::new(conf, inner).name(name).build()
}

/// Builds a proxy service step by step.
#[derive(Debug)]
pub struct ProxyServiceBuilder<SV> {
    conf: Arc<ServerConf>,
    inner: SV,
    name: String,
    server_options: Option<HttpServerOptions>,
    h2_options: Option<H2Options>,
}

impl<SV> ProxyServiceBuilder<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// A builder for a service running `inner` with the settings of `conf`.
    pub fn new(conf: &Arc<ServerConf>, inner: SV) -> Self {
        ProxyServiceBuilder {
            conf: conf.clone(),
            inner,
            name: DEFAULT_SERVICE_NAME.to_string(),
            server_options: None,
            h2_options: None,
        }
    }

    /// Names the service.
    pub fn name(mut self, name: impl AsRef<str>) -> Self {
        self.name = name.as_ref().to_string();
        self
    }

    /// Sets how client connections are served.
    pub fn server_options(mut self, options: HttpServerOptions) -> Self {
        self.server_options = Some(options);
        self
    }

    /// Sets the HTTP/2 settings of client connections (window sizes, most concurrent streams,
    /// largest header list...); without it the defaults of
    /// [`default_options`](pingora_core::protocols::http::v2::server::default_options) apply.
    pub fn h2_options(mut self, options: H2Options) -> Self {
        self.h2_options = Some(options);
        self
    }

    /// The service.
    pub fn build(self) -> Service<HttpProxy<SV>> {
        let mut proxy = HttpProxy::new(self.inner, self.conf);
        proxy.server_options = self.server_options;
        proxy.h2_options = self.h2_options;
        proxy.handle_init_modules();
        Service::new(self.name, proxy)
    }
}

// === impl HttpProxy: serving a request ===

#[async_trait]
impl<SV> HttpServerApp for HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    async fn process_new_http(
        self: &Arc<Self>,
        mut downstream: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match downstream.read_request().await {
            Ok(true) => metrics::request(&downstream),
            Ok(false) => return None,
            Err(e) => {
                pingora_core::apps::http_app::respond_to_bad_request(&mut downstream, &e).await;
                return None;
            }
        }
        let mut session = Session::new(
            downstream,
            &self.downstream_modules,
            #[cfg(feature = "upstream_modules")]
            &self.upstream_modules,
        );
        if *shutdown.borrow() {
            session.shutting_down = true;
            session.set_keepalive(None);
        }
        // Inside the request span of pingora-core (when a subscriber wants it).
        observe::begin(&mut session, self.request_id.as_ref());
        let settings = self.process_request(&mut session).await?;
        reuse_downstream(session.downstream_session, settings).await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.server_options.as_ref()
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.h2_options.clone()
    }
}

impl<SV> HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    /// Runs one request (inside its span: see [`observe::begin`]): its phases, then its
    /// logging. Returns the settings to keep the client connection with, when it can serve
    /// another request.
    ///
    /// The session is borrowed all the way down, never moved into a callee: an `async fn`
    /// that takes it by value holds it twice in its state (the argument and the local), and
    /// each such copy adds a kilobyte to the state pingora-core boxes and copies per request.
    async fn process_request(
        self: &Arc<Self>,
        session: &mut Session,
    ) -> Option<HttpPersistentSettings> {
        let mut ctx = self.inner.new_ctx();
        let (error, reusable) = self.run_phases(session, &mut ctx).await;
        self.finish(session, &mut ctx, error.as_deref(), reusable)
            .await
    }

    /// The request's phases, up to its response: returns the error that ended it, if any,
    /// and whether the client connection can serve another request.
    async fn run_phases(self: &Arc<Self>, session: &mut Session, ctx: &mut SV::CTX) -> Ending {
        let previous = session.downstream_session.take_persisted_context();
        if let Some(previous) = previous {
            self.inner.on_connection_reuse(session, ctx, previous);
        }
        if let Err(e) = self.inner.early_request_filter(session, ctx).await {
            return self.fail_early(session, ctx, e).await;
        }
        if self.inner.allow_spawning_subrequest(session, ctx) {
            session.subrequest_spawner = Some(SubrequestSpawner::new(self.clone()));
        }
        let modules = &mut session.downstream_modules_ctx;
        if let Err(e) = modules
            .request_header_filter(session.downstream_session.req_header_mut())
            .await
        {
            return self.fail_early(session, ctx, e).await;
        }
        match self.inner.request_filter(session, ctx).await {
            Ok(false) => {}
            Ok(true) => return (None, true),
            Err(e) => return self.fail_early(session, ctx, e).await,
        }
        // Before the cache: a cache of compressed variants keys them by what this negotiates.
        let req = session.downstream_session.req_header();
        session.upstream_compression.request_filter(req);
        match proxy_cache::cache_phase(self, session, ctx).await {
            Ok(proxy_cache::CacheStep::Upstream) => {}
            Ok(proxy_cache::CacheStep::Served(reusable)) => return (None, reusable),
            Err(e) => {
                session.cache.disable(NoCacheReason::InternalError);
                return self.fail_early(session, ctx, e).await;
            }
        }
        match self.inner.proxy_upstream_filter(session, ctx).await {
            Ok(true) => {}
            Ok(false) => {
                session.cache.disable(NoCacheReason::DeclinedToUpstream);
                if session.response_written().is_none() {
                    if let Err(e) = session.respond_error(502).await {
                        debug!("failed to answer a request not sent upstream: {e}");
                    }
                }
                return (None, true);
            }
            Err(e) => return self.fail_early(session, ctx, e).await,
        }

        session.downstream_session.enable_retry_buffering();
        let mut tries = 0;
        let (reusable, error) = loop {
            tries += 1;
            let (reusable, error) = self.proxy_to_upstream(session, ctx).await;
            session.retries = tries - 1;
            let Some(e) = error else {
                break (reusable, None);
            };
            if !e.retry() || tries >= self.max_retries {
                break (false, Some(e));
            }
            if session.downstream_session.retry_buffer_truncated() {
                // The request body read so far cannot be replayed.
                break (false, Some(e));
            }
            metrics::retry();
            warn!(
                "retrying ({tries}/{}): {e}, {}",
                self.max_retries,
                self.inner.request_summary(session, ctx)
            );
        };
        match error {
            None if proxy_cache::serves_stored_after_upstream(session) => {
                self.serve_stored(session, ctx, reusable).await
            }
            None => (None, reusable),
            Some(e) if self.may_serve_stale(session, ctx, &e) => {
                session.cache_ctx.stale_if_error = true;
                self.serve_stored(session, ctx, false).await
            }
            Some(e) => {
                let e = if proxy_cache::revalidating(session) {
                    // A stale response that may not be served stale: the gateway failed.
                    gateway_timeout(e)
                } else {
                    e
                };
                session.cache.disable(NoCacheReason::UpstreamError);
                // The client connection is closed after a failed attempt, whatever
                // `fail_to_proxy` says: an error response it sends must say so.
                session.set_keepalive(None);
                let failed = self.inner.fail_to_proxy(session, &e, ctx).await;
                if !self.inner.suppress_error_log(session, ctx, &e) {
                    error!(
                        "Fail to proxy: {e}, status: {}, tries: {tries}, {}",
                        failed.error_code,
                        self.inner.request_summary(session, ctx)
                    );
                }
                (Some(e), false)
            }
        }
    }

    /// One attempt: choose the peer, connect, run the exchange. Returns whether the client
    /// connection can be reused, and the error if the attempt failed.
    async fn proxy_to_upstream(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
    ) -> (bool, Option<Box<Error>>) {
        let peer = match self.inner.upstream_peer(session, ctx).await {
            Ok(peer) => peer,
            Err(e) => return (false, Some(e)),
        };
        let connect_start = std::time::Instant::now();
        let connect_span = observe::connect_span(session, &peer);
        // In a block of its own, so that the result's storage is not kept in this future
        // beside the session taken out of it.
        let (mut client, reused) = {
            let connected =
                observe::in_span!(connect_span, self.client_upstream.get_http_session(&*peer));
            match connected {
                Ok(connected) => connected,
                Err(mut e) => {
                    e.as_up();
                    let e = self.inner.fail_to_connect(session, &peer, ctx, e);
                    return (false, Some(e));
                }
            }
        };
        let fd = client.fd();
        let connected = self
            .inner
            .connected_to_upstream(session, reused, &peer, fd, client.digest(), ctx)
            .await;
        if let Err(e) = connected {
            return (false, Some(e));
        }
        if let Some(timeout) = peer.options.read_timeout {
            client.set_read_timeout(Some(timeout));
        }
        if let Some(timeout) = peer.options.write_timeout {
            client.set_write_timeout(Some(timeout));
        }
        session.timings.upstream_connect = Some(if reused {
            std::time::Duration::ZERO
        } else {
            connect_start.elapsed()
        });
        let outcome = observe::in_span!(
            observe::exchange_span(),
            pump::exchange(&self.inner, session, &mut client, ctx)
        );
        if let Some(stream) = client.stream() {
            session.upstream_write_pending_time = stream.get_write_pending_time();
        }
        if outcome.upstream_reusable {
            self.client_upstream
                .release_http_session(client, &*peer, peer.idle_timeout())
                .await;
        } else {
            client.shutdown().await;
        }
        let error = outcome
            .error
            .map(|e| self.inner.error_while_proxy(&peer, session, e, ctx, reused));
        (outcome.downstream_reusable, error)
    }

    /// Whether the stale response found for the request may answer it after the upstream
    /// failed with `e` (`stale-if-error`, and the user's `should_serve_stale`).
    fn may_serve_stale(&self, session: &mut Session, ctx: &mut SV::CTX, e: &Error) -> bool {
        session.response_written().is_none()
            && session.cache.can_serve_stale_error()
            && self.inner.should_serve_stale(session, ctx, Some(e))
    }

    /// Serves the stored response after the upstream exchange (revalidated, or stale after
    /// an error), then ends the request.
    async fn serve_stored(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        downstream_reusable: bool,
    ) -> Ending {
        metrics::stored_after_upstream(session);
        session
            .cache
            .release_write_lock(NoCacheReason::UpstreamError);
        match proxy_cache::serve::serve_stored(&self.inner, session, ctx).await {
            Ok(reusable) => (None, reusable && downstream_reusable),
            Err(e) => {
                session.cache.disable(NoCacheReason::StorageError);
                let failed = self.inner.fail_to_proxy(session, &e, ctx).await;
                error!(
                    "Fail to serve from cache: {e}, status: {}, {}",
                    failed.error_code,
                    self.inner.request_summary(session, ctx)
                );
                (Some(e), false)
            }
        }
    }

    /// Ends a request that failed before going upstream.
    async fn fail_early(&self, session: &mut Session, ctx: &mut SV::CTX, e: Box<Error>) -> Ending {
        let failed = self.inner.fail_to_proxy(session, &e, ctx).await;
        if !self.inner.suppress_error_log(session, ctx, &e) {
            error!(
                "Fail to filter request: {e}, status: {}, {}",
                failed.error_code,
                self.inner.request_summary(session, ctx)
            );
        }
        (Some(e), failed.can_reuse_downstream)
    }

    /// Logs the request. Returns the settings to keep the client connection with when it can
    /// serve another request (see [`reuse_downstream`]); closes it otherwise.
    async fn finish(
        &self,
        session: &mut Session,
        ctx: &mut SV::CTX,
        error: Option<&Error>,
        reusable: bool,
    ) -> Option<HttpPersistentSettings> {
        metrics::response(session);
        observe::record_outcome(session);
        self.inner.logging(session, error, ctx).await;
        if let Some(sub) = session.subrequest_ctx.as_mut() {
            // A write lock handed to this subrequest and not used: its waiters compete again.
            sub.release_write_lock();
        }
        if let Some(e) = error {
            if session.downstream_session.is_subrequest() {
                let failure = Error::explain(e.etype().clone(), e.to_string());
                session.downstream_session.on_proxy_failure(failure);
            }
        }
        if !reusable {
            session.downstream_session.shutdown().await;
            return None;
        }
        let persisted = self.inner.persist_connection_context(session, ctx);
        let mut settings = HttpPersistentSettings::for_session(&session.downstream_session);
        if let Some(persisted) = persisted {
            settings.set_user_context(persisted);
        }
        Some(settings)
    }
}

/// How the phases of a request ended: the error that ended it, if any, and whether the client
/// connection can serve another request.
type Ending = (Option<Box<Error>>, bool);

/// Ends the client's exchange (the rest of the response body, the unread request body) and
/// hands its connection back with `settings` when it can serve another request.
async fn reuse_downstream(
    downstream: Box<ServerSession>,
    settings: HttpPersistentSettings,
) -> Option<ReusedHttpStream> {
    match downstream.finish().await {
        Ok(Some(stream)) => Some(ReusedHttpStream::new(stream, Some(settings))),
        Ok(None) => None,
        Err(e) => {
            debug!("client session did not finish cleanly: {e}");
            None
        }
    }
}

#[async_trait]
impl<SV> subrequest::Subrequest for HttpProxy<SV>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    async fn process_subrequest(
        self: Arc<Self>,
        mut downstream: Box<ServerSession>,
        ctx: Box<subrequest::Ctx>,
    ) {
        match downstream.read_request().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                debug!("subrequest without a request: {e}");
                return;
            }
        }
        let mut session = Session::new(
            downstream,
            &self.downstream_modules,
            #[cfg(feature = "upstream_modules")]
            &self.upstream_modules,
        );
        session.set_keepalive(None);
        session.subrequest_ctx = Some(ctx);
        // A subrequest is a task of its own: it gets a request span of its own.
        let span = pingora_core::apps::http_request_span();
        observe::in_span!(span, async {
            observe::begin(&mut session, self.request_id.as_ref());
            if let Some(settings) = self.process_request(&mut session).await {
                reuse_downstream(session.downstream_session, settings).await;
            }
        });
    }
}

/// The error for a revalidation that failed on `e` (connecting, timing out): 504, unless
/// the origin's status says otherwise.
fn gateway_timeout(e: Box<Error>) -> Box<Error> {
    match e.etype() {
        pingora_error::ErrorType::HTTPStatus(_) => e,
        _ => Error::because(
            pingora_error::ErrorType::HTTPStatus(504),
            "revalidating a stale response failed",
            e,
        ),
    }
}

/// The most used items: `use pingora_proxy::prelude::*;`.
pub mod prelude {
    pub use crate::{http_proxy, http_proxy_service, ProxyHttp, Session};
}
