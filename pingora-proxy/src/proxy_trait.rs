//! [`ProxyHttp`]: the callbacks that program the proxy.

use std::any::Any;
use std::borrow::Cow;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use log::error;
use pingora_cache::range::RangeType;
use pingora_cache::{CacheKey, CacheMeta, ForcedFreshness, HashBinary, HitHandler, RespCacheable};
use pingora_core::modules::http::compression::ResponseCompressionBuilder;
use pingora_core::modules::http::HttpModules;
use pingora_core::protocols::Digest;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use crate::proxy_cache::purge::PurgeStatus;
use crate::Session;

/// What the proxy does with each request, as callbacks run at fixed points of its life.
///
/// Only [`new_ctx`](ProxyHttp::new_ctx) and [`upstream_peer`](ProxyHttp::upstream_peer) must
/// be written; every other callback has a default that proxies the request unchanged.
///
/// The callbacks run in this order for a request that reaches an upstream:
///
/// 1. [`early_request_filter`](ProxyHttp::early_request_filter), then the downstream modules'
///    request filters;
/// 2. [`request_filter`](ProxyHttp::request_filter): may answer the request itself;
/// 3. [`proxy_upstream_filter`](ProxyHttp::proxy_upstream_filter): may refuse to go upstream;
/// 4. [`upstream_peer`](ProxyHttp::upstream_peer), connect (on failure
///    [`fail_to_connect`](ProxyHttp::fail_to_connect)), then
///    [`connected_to_upstream`](ProxyHttp::connected_to_upstream);
/// 5. [`upstream_request_filter`](ProxyHttp::upstream_request_filter), then for each piece of
///    request body [`request_body_filter`](ProxyHttp::request_body_filter);
/// 6. for the response: [`upstream_response_filter`](ProxyHttp::upstream_response_filter) and
///    [`response_filter`](ProxyHttp::response_filter) on its head,
///    [`upstream_response_body_filter`](ProxyHttp::upstream_response_body_filter) and
///    [`response_body_filter`](ProxyHttp::response_body_filter) on each piece of body, the
///    trailer filters on trailers;
/// 7. on an error after connecting, [`error_while_proxy`](ProxyHttp::error_while_proxy), which
///    decides whether to retry from step 4; on a final error
///    [`fail_to_proxy`](ProxyHttp::fail_to_proxy);
/// 8. [`logging`](ProxyHttp::logging), always, whatever happened.
#[async_trait]
pub trait ProxyHttp {
    /// The per-request state shared by the callbacks.
    type CTX;

    /// A fresh state for a new request.
    fn new_ctx(&self) -> Self::CTX;

    /// Where to send the request.
    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>>;

    /// Sets up the downstream HTTP modules, once, when the service starts. By default the
    /// response compression module, switched off: a request turns it on through
    /// `session.downstream_modules_ctx.get_mut::<ResponseCompression>()` (see
    /// [`ResponseCompressionBuilder`]). An override that wants it must add it too.
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(ResponseCompressionBuilder::enable(0));
    }

    /// Sets up the upstream HTTP modules, once, when the service starts: they filter the
    /// request head and body sent upstream and the response received, before
    /// `session.upstream_compression` and the cache. None by default.
    #[cfg(feature = "upstream_modules")]
    fn init_upstream_modules(&self, _modules: &mut HttpModules) {}

    /// Called first for every request, before the downstream modules run.
    async fn early_request_filter(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// Inspects the request: validate, rate limit, control access, or answer it. Returns `true`
    /// if a response was sent, which ends the request; `false` (the default) to go on.
    async fn request_filter(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<bool>
    where
        Self::CTX: Send + Sync,
    {
        Ok(false)
    }

    /// Whether this request may spawn subrequests (background cache revalidations use them,
    /// whatever this says). `false` by default.
    fn allow_spawning_subrequest(&self, _session: &Session, _ctx: &Self::CTX) -> bool
    where
        Self::CTX: Send + Sync,
    {
        false
    }

    /// Decides whether the cache handles this request, by calling
    /// [`session.cache.enable(..)`](pingora_cache::HttpCache::enable) (with the storage, and
    /// optionally an eviction manager, a predictor and a cache lock). Does nothing by
    /// default: the cache is off.
    fn request_cache_filter(&self, _session: &mut Session, _ctx: &mut Self::CTX) -> Result<()> {
        Ok(())
    }

    /// The cache key of the request, when the cache is enabled. By default (Pingora's
    /// panics) the target URI: scheme, lower-cased host, port when not the default, path and
    /// query ([`default_cache_key`](crate::proxy_cache::default_cache_key)). Anything else
    /// that changes the upstream's answer (a header a `request_filter` routes on, say) must
    /// be added to the key, or responses will be served to requests they do not answer.
    fn cache_key_callback(&self, session: &Session, _ctx: &mut Self::CTX) -> Result<CacheKey> {
        Ok(crate::proxy_cache::default_cache_key(session))
    }

    /// Called when the lookup found nothing usable and this request will fetch the response
    /// (and may store it). The default marks the cache a miss.
    fn cache_miss(&self, session: &mut Session, _ctx: &mut Self::CTX) {
        session.cache.cache_miss();
    }

    /// Called when a stored response is found (fresh or not, see `is_fresh`), before it is
    /// used: may force it fresh, stale or a miss, or wrap its body reader. `None` by default.
    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        _meta: &CacheMeta,
        _hit_handler: &mut HitHandler,
        _is_fresh: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<ForcedFreshness>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(None)
    }

    /// Whether the upstream's response may be stored, and its metadata. By default (Pingora
    /// stores nothing) the RFC 9111 rules of
    /// [`default_policy`](pingora_cache::filters::default_policy).
    fn response_cache_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<RespCacheable> {
        Ok(crate::proxy_cache::admit::default_response_cacheable(
            session, resp,
        ))
    }

    /// The variance of `req` for the stored response `meta`: the secondary key that tells
    /// its variants apart. By default (Pingora ignores `Vary`) the request's values of the
    /// fields the response's `Vary` names; `None` when it names none. A response whose `Vary`
    /// names fields while this returns `None` is not stored.
    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        _ctx: &mut Self::CTX,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        pingora_cache::variance::request_variance(&meta.response_header().headers, &req.headers)
            .hash()
    }

    /// Whether the request's preconditions let the proxy answer 304 Not Modified for the
    /// response `resp` (stored or new). By default RFC 9110 section 13.2.2: `If-None-Match`,
    /// else `If-Modified-Since`, on a 200 to GET or HEAD.
    fn cache_not_modified_filter(
        &self,
        session: &Session,
        resp: &ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<bool> {
        let req = session.req_header();
        Ok(pingora_cache::conditional::not_modified(
            &req.method,
            &req.headers,
            resp,
        ))
    }

    /// The range of `resp` the proxy serves for the request, rewriting `resp` for it
    /// (status, `Content-Range`, `Content-Length`). Runs only when the cache handles the
    /// request. By default single and multiple ranges (at most
    /// [`max_ranges`](pingora_cache::HttpCacheOptions::max_ranges)) with `If-Range`.
    fn range_header_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> RangeType {
        crate::proxy_cache::range_filter::range_header_filter(session, resp)
    }

    /// Whether a stale stored response may be served: while it is revalidated (`error` is
    /// `None`), or because revalidating it failed with `error`. It is asked only within the
    /// response's own windows (`stale-while-revalidate`, `stale-if-error`), which are the
    /// origin's explicit permission. By default: yes while revalidating (Pingora: no), and
    /// for upstream errors.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
        error: Option<&Error>,
    ) -> bool {
        error.is_none_or(|e| *e.esource() == ErrorSource::Upstream)
    }

    /// Whether this request purges the cache (see `PurgeStatus`). `false` by default; a
    /// proxy that allows purging must authenticate the client here.
    fn is_purge(&self, _session: &Session, _ctx: &Self::CTX) -> bool {
        false
    }

    /// May change the answer to a purge request; an error sends a 500 instead.
    fn purge_response_filter(
        &self,
        _session: &Session,
        _ctx: &mut Self::CTX,
        _purge_status: PurgeStatus,
        _purge_response: &mut Cow<'static, ResponseHeader>,
    ) -> Result<()> {
        Ok(())
    }

    /// Decides whether to go to an upstream at all. `false` ends the request: with the
    /// response written by this callback if it wrote one, otherwise with a 502.
    async fn proxy_upstream_filter(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<bool>
    where
        Self::CTX: Send + Sync,
    {
        Ok(true)
    }

    /// Called when connecting to `peer` failed. Mark `e` retryable (`e.set_retry(true)`) to call
    /// [`upstream_peer`](ProxyHttp::upstream_peer) again. Returns `e` unchanged by default.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        _ctx: &mut Self::CTX,
        e: Box<Error>,
    ) -> Box<Error> {
        e
    }

    /// Called once a connection to the upstream is ready, `reused` if it came from the pool.
    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        _fd: std::os::unix::io::RawFd,
        _digest: Option<&Digest>,
        _ctx: &mut Self::CTX,
    ) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// Edits the request head sent upstream (a copy of the client's, hop-by-hop fields
    /// removed).
    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        _upstream_request: &mut RequestHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// Sees each piece of request body on its way upstream; may change or drop it.
    /// `end_of_stream` is set on the last call.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// Adjusts the upstream modules for this response (for example by peer, through
    /// `session.upstream_modules_ctx`), before they see it. `upstream_response` is the head as
    /// the upstream sent it.
    #[cfg(feature = "upstream_modules")]
    async fn adjust_upstream_modules(
        &self,
        _session: &mut Session,
        _upstream_response: &ResponseHeader,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// Edits the response head as it arrives from the upstream.
    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// Sees each piece of response body as it arrives from the upstream. Returning a duration
    /// waits that long before going on (to throttle a download).
    fn upstream_response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>> {
        Ok(None)
    }

    /// Edits the response trailers as they arrive from the upstream.
    fn upstream_response_trailer_filter(
        &self,
        _session: &mut Session,
        _upstream_trailers: &mut HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        Ok(())
    }

    /// Edits the response head just before it is sent to the client.
    async fn response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        _ctx: &mut Self::CTX,
    ) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// Sees each piece of response body just before it is sent to the client. Returning a
    /// duration waits that long before going on.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Duration>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(None)
    }

    /// Edits the response trailers just before they are sent. Returning bytes sends them as the
    /// last piece of body instead of the trailers (for clients that cannot take trailers).
    async fn response_trailer_filter(
        &self,
        _session: &mut Session,
        _upstream_trailers: &mut HeaderMap,
        _ctx: &mut Self::CTX,
    ) -> Result<Option<Bytes>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(None)
    }

    /// Called for an error once connected to `peer`. The default adds the peer to the error's
    /// context and makes an error that may be retried on a reused connection retryable when
    /// the connection was reused and the request body can still be replayed.
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        _ctx: &mut Self::CTX,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        e.retry
            .decide_reuse(client_reused && !session.as_ref().retry_buffer_truncated());
        e
    }

    /// Called when the request failed for good. Sends an error response if it can and returns
    /// its status (0 when nothing could be sent). The default status: the one an
    /// `HTTPStatus` error carries; 502 for upstream errors; nothing when the client's
    /// connection failed; 400 for other client errors; 500 otherwise.
    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut Self::CTX,
    ) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            etype => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match etype {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 {
            // The connection is not reused (see below): the response says so.
            session.set_keepalive(None);
            if let Err(send_error) = session.respond_error(code).await {
                error!("failed to send the error response to the client: {send_error}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    /// Whether to keep the error log of a failed request quiet. `false` by default.
    fn suppress_error_log(&self, _session: &Session, _ctx: &Self::CTX, _error: &Error) -> bool {
        false
    }

    /// A one-line description of the request for error logs: method, path and Host by default.
    fn request_summary(&self, session: &Session, _ctx: &Self::CTX) -> String {
        session.as_ref().request_summary()
    }

    /// Called last for every request, whatever happened, with the final error if any: the
    /// place for access logs and metrics.
    async fn logging(&self, _session: &mut Session, _e: Option<&Error>, _ctx: &mut Self::CTX)
    where
        Self::CTX: Send + Sync,
    {
    }

    /// State to carry to the next request on the same client connection; `None` by default.
    fn persist_connection_context(
        &self,
        _session: &Session,
        _ctx: &Self::CTX,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        None
    }

    /// Called at the start of a request on a reused client connection whose previous request
    /// left state with [`persist_connection_context`](ProxyHttp::persist_connection_context),
    /// before [`early_request_filter`](ProxyHttp::early_request_filter). Synchronous, as in
    /// Pingora: move the state into `ctx` here; async work belongs in the filters that follow.
    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
        _prev_ctx: Box<dyn Any + Send + Sync>,
    ) {
    }

    /// Pingora's hook for exchanging messages of a custom (non-HTTP) protocol session between
    /// client and upstream. This proxy serves HTTP/1 and HTTP/2 sessions only, so it never
    /// calls it; it is here, with Pingora's default, so that implementations written for
    /// Pingora compile.
    async fn custom_forwarding(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
        _custom_message_to_upstream: Option<tokio::sync::mpsc::Sender<Bytes>>,
        _custom_message_to_downstream: tokio::sync::mpsc::Sender<Bytes>,
    ) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        Ok(())
    }

    /// Pingora's filter of custom-protocol messages from the client (see
    /// [`custom_forwarding`](ProxyHttp::custom_forwarding): never called here). By default the
    /// message passes unchanged.
    async fn downstream_custom_message_proxy_filter(
        &self,
        _session: &mut Session,
        custom_message: Bytes,
        _ctx: &mut Self::CTX,
        _final_hop: bool,
    ) -> Result<Option<Bytes>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(Some(custom_message))
    }

    /// Pingora's filter of custom-protocol messages from the upstream (see
    /// [`custom_forwarding`](ProxyHttp::custom_forwarding): never called here). By default the
    /// message passes unchanged.
    async fn upstream_custom_message_proxy_filter(
        &self,
        _session: &mut Session,
        custom_message: Bytes,
        _ctx: &mut Self::CTX,
        _final_hop: bool,
    ) -> Result<Option<Bytes>>
    where
        Self::CTX: Send + Sync,
    {
        Ok(Some(custom_message))
    }
}

/// What [`ProxyHttp::fail_to_proxy`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailToProxy {
    /// The status of the error response sent; 0 if none.
    pub error_code: u16,
    /// Whether the client connection may serve another request despite the error. Honoured
    /// only for errors before an upstream was chosen.
    pub can_reuse_downstream: bool,
}
