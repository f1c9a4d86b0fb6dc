//! The proxy's cache phases: lookup before going upstream, admission of the upstream's
//! response, serving stored responses, purge and invalidation.
//!
//! The flow for a request whose `request_cache_filter` enabled the cache:
//!
//! 1. the key (`cache_key_callback`), then purge requests (`is_purge`) are answered here;
//! 2. methods other than GET and HEAD bypass the cache (their success invalidates the stored
//!    responses of their target, RFC 9111 section 4.4);
//! 3. lookup, with the variant for the request's `Vary` fields (`cache_vary_filter`);
//!    freshness, adjusted by the request's directives and `cache_hit_filter`;
//! 4. a fresh hit is served from the storage; a stale one is revalidated upstream (or
//!    served while another request revalidates it); a miss takes the cache lock, so that
//!    one request fetches and the others wait and then stream the object as it is written;
//! 5. upstream, the response is judged (`response_cache_filter`), stored as it streams to the
//!    client, or merged into the stored one after a 304.

use std::borrow::Cow;
use std::time::SystemTime;

use http::{header, Method};
use log::debug;
use pingora_cache::cache_control::CacheControl;
use pingora_cache::cache_status::FwdReason;
use pingora_cache::filters::default_policy;
use pingora_cache::lock::LockStatus;
use pingora_cache::{
    CacheKey, CacheMeta, CachePhase, EvictionRef, HitStatus, NoCacheReason, StorageRef,
};
use pingora_core::apps::spans_wanted;
use pingora_error::Result;
use pingora_http::RequestHeader;

use std::sync::Arc;

use crate::metrics::{self, Stale};
use crate::proxy_trait::ProxyHttp;
use crate::subrequest::{self, SubrequestSpawner};
use crate::{HttpProxy, Session};

pub(crate) mod admit;
pub mod purge;
pub mod range_filter;
pub(crate) mod serve;

pub use admit::default_response_cacheable;

/// What the proxy remembers about a request's way through the cache.
#[derive(Debug, Default)]
pub(crate) struct CacheCtx {
    /// Why the request went upstream (for `Cache-Status`), if it did through the cache.
    pub(crate) fwd: Option<FwdReason>,
    /// The request waited on another request's fetch.
    pub(crate) collapsed: bool,
    /// A lock this request waited on ended with the object written or revalidated: a fresh
    /// object found now answers the request whatever its directives (client revalidations
    /// are collapsed through the lock).
    pub(crate) lock_done: bool,
    /// The stored response was fresh, but the request's directives asked to revalidate it.
    pub(crate) revalidation_requested: bool,
    /// Caches to invalidate if this request (an unsafe method on which the cache was not
    /// enabled) succeeds.
    pub(crate) invalidate: Vec<KnownCache>,
    /// The request's parsed `Cache-Control`, when request directives are honoured.
    pub(crate) request_cc: Option<CacheControl>,
    /// When the request was sent upstream.
    pub(crate) request_time: Option<SystemTime>,
    /// The upstream's response status (for `Cache-Status`).
    pub(crate) upstream_status: Option<u16>,
    /// After the upstream exchange, serve the stored response (revalidated, or stale
    /// because of an error).
    pub(crate) serve_stored: bool,
    /// The stored response is served because the origin failed (`stale-if-error`).
    pub(crate) stale_if_error: bool,
    /// The client asked for HEAD and the upstream was asked for GET: the body is stored but
    /// not sent to the client.
    pub(crate) head_as_get: bool,
    /// The body filter of a range answered on a miss.
    pub(crate) range: Option<range_filter::RangeBodyFilter>,
    /// The response was written to the storage.
    pub(crate) stored: bool,
}

/// What the cache phase decided.
pub(crate) enum CacheStep {
    /// Go upstream.
    Upstream,
    /// The response was served (from the cache or as a purge answer); the client connection
    /// may be reused if `true`.
    Served(bool),
}

/// The default cache key: the request's target URI, as scheme + lower-cased host + port
/// (the default port elided) + path + query, taken from the authority the request is
/// forwarded with. GET and HEAD share it. Namespace and user tag are empty.
pub fn default_cache_key(session: &Session) -> CacheKey {
    CacheKey::new("", target_uri(session), "")
}

/// The request's target URI, normalised as in [`default_cache_key`].
pub(crate) fn target_uri(session: &Session) -> String {
    let req = session.req_header();
    let scheme = request_scheme(session);
    let authority = req
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    format!(
        "{scheme}://{}{path}",
        normalized_authority(scheme, &authority)
    )
}

fn request_scheme(session: &Session) -> &'static str {
    let tls = session
        .downstream_session
        .digest()
        .is_some_and(|d| d.ssl_digest.is_some());
    if tls {
        "https"
    } else {
        "http"
    }
}

/// `authority` lower-cased, without the scheme's default port.
pub(crate) fn normalized_authority(scheme: &str, authority: &str) -> String {
    let lower = authority.to_ascii_lowercase();
    let default_port = if scheme == "https" { ":443" } else { ":80" };
    match lower.strip_suffix(default_port) {
        Some(host) if !host.is_empty() => host.to_string(),
        _ => lower,
    }
}

/// Runs the cache phase of a request: enable, key, purge, lookup, and serving a hit.
pub(crate) async fn cache_phase<SV>(
    proxy: &Arc<HttpProxy<SV>>,
    session: &mut Session,
    ctx: &mut SV::CTX,
) -> Result<CacheStep>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let app = &proxy.inner;
    app.request_cache_filter(session, ctx)?;
    if !session.cache.enabled() {
        if app.is_purge(session, ctx) {
            return purge::serve_purge(app, session, ctx).await;
        }
        let method = &session.req_header().method;
        if !matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        ) {
            // Its success invalidates the URI in every cache this proxy uses.
            session.cache_ctx.invalidate = proxy.caches.all();
        }
        return Ok(CacheStep::Upstream);
    }
    proxy.caches.record(&session.cache);
    let key = app.cache_key_callback(session, ctx)?;
    session.cache.set_cache_key(key);
    if app.is_purge(session, ctx) {
        return purge::serve_purge(app, session, ctx).await;
    }
    let method = session.req_header().method.clone();
    if method != Method::GET && method != Method::HEAD {
        session.cache.bypass();
        session.cache_ctx.fwd = Some(FwdReason::Method);
        return Ok(CacheStep::Upstream);
    }
    if session.cache.options().honor_request_directives {
        let req = session.req_header();
        session.cache_ctx.request_cc = CacheControl::from_req_headers(req);
    }
    if !session.cache.cacheable_prediction() {
        session.cache.bypass();
        session.cache_ctx.fwd = Some(FwdReason::Bypass);
        return Ok(CacheStep::Upstream);
    }
    lookup(proxy, session, ctx).await
}

/// The lookup loop: variants, freshness, the lock.
async fn lookup<SV>(
    proxy: &Arc<HttpProxy<SV>>,
    session: &mut Session,
    ctx: &mut SV::CTX,
) -> Result<CacheStep>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let app = &proxy.inner;
    metrics::cache_lookup();
    let mut fwd = FwdReason::UriMiss;
    loop {
        let lookup_span = match spans_wanted() {
            true => tracing::info_span!("cache_lookup"),
            false => tracing::Span::none(),
        };
        let found = match crate::observe::in_span!(lookup_span, session.cache.cache_lookup()) {
            Ok(found) => found,
            Err(e) => {
                debug!("cache lookup failed: {e}");
                session.cache.disable(NoCacheReason::StorageError);
                session.cache_ctx.fwd = Some(FwdReason::Miss);
                return Ok(CacheStep::Upstream);
            }
        };
        let Some((meta, mut handler)) = found else {
            match miss_or_wait(app, session, ctx, fwd).await? {
                Some(step) => return Ok(step),
                None => continue,
            }
        };
        if let Some(variance) = app.cache_vary_filter(&meta, ctx, &vary_request(session)) {
            if !session.cache.cache_vary_lookup(variance, &meta) {
                fwd = FwdReason::VaryMiss;
                continue;
            }
        } else if meta.variance().is_some() || request_varies(&meta, session) {
            // The stored object varies, or this request has fields its `Vary` names, but the
            // request is not keyed on them: not a match.
            fwd = FwdReason::VaryMiss;
            session
                .cache
                .cache_found(meta, handler, HitStatus::ForceMiss);
            match miss_or_wait(app, session, ctx, fwd).await? {
                Some(step) => return Ok(step),
                None => continue,
            }
        }
        let fresh = usable_without_revalidation(session, &meta);
        session.cache_ctx.revalidation_requested = !fresh && meta.is_fresh(SystemTime::now());
        let forced = app
            .cache_hit_filter(session, &meta, &mut handler, fresh, ctx)
            .await?;
        let status = match forced {
            Some(forced) => HitStatus::from(forced),
            None if fresh => HitStatus::Fresh,
            None => HitStatus::Expired,
        };
        session.cache.cache_found(meta, handler, status);
        if status.is_treated_as_miss() {
            fwd = FwdReason::Request;
            match miss_or_wait(app, session, ctx, fwd).await? {
                Some(step) => return Ok(step),
                None => continue,
            }
        }
        if session.cache.phase() == CachePhase::Hit {
            metrics::cache_hit();
            return serve::serve_stored(app, session, ctx)
                .await
                .map(CacheStep::Served);
        }
        match stale(proxy, session, ctx).await? {
            Some(step) => return Ok(step),
            None => continue,
        }
    }
}

/// Whether the request has fields the stored response's `Vary` names.
fn request_varies(meta: &CacheMeta, session: &Session) -> bool {
    pingora_cache::variance::request_variance(
        &meta.response_header().headers,
        &vary_request(session).headers,
    ) != pingora_cache::variance::VaryKey::Invariant
}

/// The request as the cache's variance sees it. With `upstream_compression` on, the stored
/// variants are the codings it produces, so `Accept-Encoding` is normalised to the coding it
/// negotiated (or `identity`): one variant per coding instead of one per spelling of the field.
pub(crate) fn vary_request(session: &Session) -> Cow<'_, RequestHeader> {
    let req = session.req_header();
    let Some(coding) = session.upstream_compression.normalized_accept_encoding() else {
        return Cow::Borrowed(req);
    };
    let mut normalized = req.clone();
    // A static token is always a valid value.
    let _ = normalized.insert_header(http::header::ACCEPT_ENCODING, coding);
    Cow::Owned(normalized)
}

/// Whether the stored response `meta` may answer the request without revalidation: fresh
/// (or acceptably stale per the request's `max-stale`), and allowed by the request's
/// directives.
fn usable_without_revalidation(session: &Session, meta: &CacheMeta) -> bool {
    let now = SystemTime::now();
    let request_cc = match session.cache_ctx.request_cc.as_ref() {
        Some(cc) if !session.cache_ctx.lock_done => cc,
        _ => return meta.is_fresh(now),
    };
    let age = meta.age_at(now);
    let lifetime = meta
        .fresh_until()
        .duration_since(meta.epoch())
        .unwrap_or_default();
    let stale_forbidden = CacheControl::from_resp_headers(meta.response_header())
        .is_some_and(|cc| cc.forbids_stale());
    default_policy::request_allows_reuse(Some(request_cc), age, lifetime, stale_forbidden)
}

/// A stale hit: serve it while another request revalidates it, wait for that request, or
/// revalidate it upstream. `None`: look up again.
async fn stale<SV>(
    proxy: &Arc<HttpProxy<SV>>,
    session: &mut Session,
    ctx: &mut SV::CTX,
) -> Result<Option<CacheStep>>
where
    SV: ProxyHttp + Send + Sync + 'static,
    SV::CTX: Send + Sync,
{
    let app = &proxy.inner;
    if session.cache.is_cache_locked() {
        // A background revalidation: it was handed the write lock of the request that
        // found the response stale.
        let handed = session
            .subrequest_ctx
            .as_mut()
            .and_then(|ctx| ctx.take_write_lock());
        if let Some(permit) = handed {
            session.cache.set_write_lock(permit);
            session.cache_ctx.fwd = Some(FwdReason::Stale);
            return Ok(Some(CacheStep::Upstream));
        }
    }
    let may_serve_stale =
        session.cache.can_serve_stale_updating() && app.should_serve_stale(session, ctx, None);
    if !may_serve_stale && only_if_cached(session) {
        return gateway_timeout(session).await.map(Some);
    }
    if session.cache.is_cache_locked() {
        if may_serve_stale {
            session.cache.set_stale_updating();
            metrics::cache_stale(Stale::Updating);
            return serve::serve_stored(app, session, ctx)
                .await
                .map(|reusable| Some(CacheStep::Served(reusable)));
        }
        return wait_for_writer(session, FwdReason::Stale).await;
    }
    let spawner = SubrequestSpawner::new(proxy.clone());
    if may_serve_stale && subrequest::spawn_revalidation(&spawner, session) {
        // The lock writer's revalidation runs in the background.
        session.cache.set_stale_updating();
        metrics::cache_stale(Stale::Updating);
        return serve::serve_stored(app, session, ctx)
            .await
            .map(|reusable| Some(CacheStep::Served(reusable)));
    }
    session.cache_ctx.fwd = Some(if session.cache_ctx.revalidation_requested {
        FwdReason::Request
    } else {
        FwdReason::Stale
    });
    Ok(Some(CacheStep::Upstream))
}

/// Waits for the writer this request is behind. `None`: look up again; else go upstream
/// without the cache (the writer gave up, or this request waited too long).
async fn wait_for_writer(session: &mut Session, fwd: FwdReason) -> Result<Option<CacheStep>> {
    session.cache_ctx.collapsed = true;
    let status = session.cache.cache_lock_wait().await;
    metrics::cache_lock_wait(status);
    let reason = match status {
        LockStatus::GiveUp => NoCacheReason::CacheLockGiveUp,
        LockStatus::WaitTimeout => NoCacheReason::CacheLockTimeout,
        LockStatus::Done => {
            session.cache_ctx.lock_done = true;
            return Ok(None);
        }
        _ => return Ok(None),
    };
    session.cache.disable(reason);
    session.cache_ctx.fwd = Some(fwd);
    Ok(Some(CacheStep::Upstream))
}

fn only_if_cached(session: &Session) -> bool {
    session
        .cache_ctx
        .request_cc
        .as_ref()
        .is_some_and(|cc| cc.only_if_cached())
}

/// RFC 9111 section 5.2.1.7: no stored response to use, and the request may not go
/// forward (`only-if-cached`).
async fn gateway_timeout(session: &mut Session) -> Result<CacheStep> {
    session
        .cache
        .disable(NoCacheReason::Custom("only-if-cached"));
    session.respond_error(504).await?;
    Ok(CacheStep::Served(true))
}

/// Nothing usable was found: become the writer (a miss), or wait for the writer and look
/// up again (`None`), or go upstream without the cache.
async fn miss_or_wait<SV>(
    app: &SV,
    session: &mut Session,
    ctx: &mut SV::CTX,
    fwd: FwdReason,
) -> Result<Option<CacheStep>>
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    if session.cache.is_cache_locked() && !only_if_cached(session) {
        return wait_for_writer(session, fwd).await;
    }
    miss(app, session, ctx, fwd).await.map(Some)
}

async fn miss<SV>(
    app: &SV,
    session: &mut Session,
    ctx: &mut SV::CTX,
    fwd: FwdReason,
) -> Result<CacheStep>
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    if only_if_cached(session) {
        return gateway_timeout(session).await;
    }
    app.cache_miss(session, ctx);
    metrics::cache_miss();
    session.cache_ctx.fwd = Some(fwd);
    Ok(CacheStep::Upstream)
}

/// Whether the request went upstream to revalidate a stale stored response.
pub(crate) fn revalidating(session: &Session) -> bool {
    session.cache.phase() == CachePhase::Stale
}

/// A storage (and its eviction manager) some request of this proxy used.
#[derive(Clone, Copy)]
pub(crate) struct KnownCache {
    pub(crate) storage: StorageRef,
    pub(crate) eviction: Option<EvictionRef>,
}

impl std::fmt::Debug for KnownCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownCache").finish_non_exhaustive()
    }
}

/// The caches the requests of one proxy enabled, so that an unsafe method on which the cache
/// was not enabled still invalidates the URI (RFC 9111 section 4.4). Recording costs one
/// pointer comparison per cached request once the (usually only) storage is known.
#[derive(Debug, Default)]
pub(crate) struct KnownCaches {
    first: std::sync::OnceLock<KnownCache>,
    more: parking_lot::Mutex<Vec<KnownCache>>,
}

impl KnownCaches {
    fn record(&self, cache: &pingora_cache::HttpCache) {
        let Some((storage, eviction)) = cache.storage_and_eviction() else {
            return;
        };
        let known = KnownCache { storage, eviction };
        let first = self.first.get_or_init(|| known);
        if std::ptr::addr_eq(first.storage, storage) {
            return;
        }
        let mut more = self.more.lock();
        if !more.iter().any(|k| std::ptr::addr_eq(k.storage, storage)) {
            more.push(known);
        }
    }

    fn all(&self) -> Vec<KnownCache> {
        let mut all: Vec<KnownCache> = self.first.get().copied().into_iter().collect();
        all.extend(self.more.lock().iter().copied());
        all
    }
}

/// After the upstream exchange: whether the stored response is to be served (revalidated
/// by a 304, or stale because the origin failed).
pub(crate) fn serves_stored_after_upstream(session: &Session) -> bool {
    session.cache_ctx.serve_stored
}
