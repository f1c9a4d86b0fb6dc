//! The upstream side of the cache: the request sent (validators, HEAD as GET), the response
//! judged and stored as it streams, revalidation by 304, stale-if-error.

use std::time::SystemTime;

use bytes::Bytes;
use http::{header, Method, StatusCode};
use log::debug;
use pingora_cache::cache_status::{CacheStatus, FwdReason};
use pingora_cache::conditional;
use pingora_cache::filters::{default_policy, upstream};
use pingora_cache::variance;
use pingora_cache::{CachePhase, NoCacheReason, RespCacheable};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use super::purge;
use super::range_filter::{self, RangeBodyFilter};
use super::serve::{add_cache_status, content_type};
use crate::proxy_trait::ProxyHttp;
use crate::Session;

/// What to do with the upstream's response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forward {
    /// Send it (and its body) to the client.
    Yes,
    /// Do not: the stored response is served instead, after the upstream exchange ends.
    ServeStored,
}

/// Prepares the upstream request of a request the cache handles: HEAD becomes GET, the
/// client's preconditions and `Range` go (the proxy answers them itself), and a stale
/// response's validators are added.
pub(crate) fn upstream_request_filter(session: &mut Session, req: &mut RequestHeader) {
    if !session.cache.enabled() {
        return;
    }
    session.cache_ctx.request_time = Some(SystemTime::now());
    session.cache_ctx.head_as_get = req.method == Method::HEAD;
    let stale = match session.cache.phase() {
        CachePhase::Stale => session.cache.maybe_cache_meta(),
        _ => None,
    };
    upstream::request_filter(req, stale);
}

/// The default `response_cache_filter`: the RFC 9111 policy of
/// [`default_policy::resp_cacheable`] for the request of `session`.
pub fn default_response_cacheable(session: &Session, resp: &ResponseHeader) -> RespCacheable {
    let now = SystemTime::now();
    let req = session.req_header();
    let options = session.cache.options();
    let targeted = options.targeted_cache_control;
    let cc = if targeted.is_empty() {
        pingora_cache::cache_control::CacheControl::from_resp_headers(resp)
    } else {
        pingora_cache::cache_control::targeted_cache_control(&resp.headers, targeted)
            .or_else(|| pingora_cache::cache_control::CacheControl::from_resp_headers(resp))
    };
    let exchange = default_policy::Exchange {
        method: &req.method,
        request_cache_control: session.cache_ctx.request_cc.as_ref(),
        authorization_present: req.headers.contains_key(header::AUTHORIZATION),
        request_time: session.cache_ctx.request_time.unwrap_or(now),
        response_time: now,
    };
    default_policy::resp_cacheable(
        &exchange,
        cc.as_ref(),
        resp.clone(),
        &options.policy,
        &DEFAULTS,
    )
}

/// Stale windows when the response gives none: none.
static DEFAULTS: pingora_cache::CacheMetaDefaults =
    pingora_cache::CacheMetaDefaults::new(|_| None, 0, 0);

/// Handles the upstream's final response head for a request that went through the cache.
pub(crate) async fn upstream_response_header<SV>(
    app: &SV,
    session: &mut Session,
    ctx: &mut SV::CTX,
    resp: &mut ResponseHeader,
) -> Result<Forward>
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    session.cache_ctx.upstream_status = Some(resp.status.as_u16());
    if session.cache.bypassing() {
        if default_policy::invalidates(&session.req_header().method, resp.status) {
            purge::invalidate(session, resp).await;
        }
        forward_cache_status(session, resp);
        return Ok(Forward::Yes);
    }
    if !session.cache.enabled() {
        if !session.cache_ctx.invalidate.is_empty()
            && default_policy::invalidates(&session.req_header().method, resp.status)
        {
            let key = app.cache_key_callback(session, ctx)?;
            purge::invalidate_uncached(session, key, resp).await;
        }
        forward_cache_status(session, resp);
        return Ok(Forward::Yes);
    }
    if session.cache.phase() == CachePhase::Stale {
        if let Some(forward) = revalidation_answer(app, session, ctx, resp).await? {
            return Ok(forward);
        }
    }
    admit(app, session, ctx, resp).await?;
    answer_client_conditions(app, session, ctx, resp)?;
    forward_cache_status(session, resp);
    Ok(Forward::Yes)
}

/// A stale response is being revalidated: a 304 that matches it, or an error that lets it
/// be served stale, means the stored response is served. `None`: the response is new.
async fn revalidation_answer<SV>(
    app: &SV,
    session: &mut Session,
    ctx: &mut SV::CTX,
    resp: &ResponseHeader,
) -> Result<Option<Forward>>
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    if resp.status == StatusCode::NOT_MODIFIED {
        let stored = session.cache.cache_meta().headers();
        if !conditional::selected_for_update(stored, &resp.headers) {
            // The 304 is about another representation: ask again, unconditionally.
            session.cache.disable(NoCacheReason::InternalError);
            let mut e = Error::explain(
                ErrorType::InternalError,
                "the 304 does not match the stored response",
            );
            e.set_retry(true);
            return Err(e);
        }
        let merged = session.cache.revalidate_merge_header(resp);
        match app.response_cache_filter(session, &merged, ctx)? {
            RespCacheable::Cacheable(meta) => {
                if let Err(e) = session.cache.revalidate_cache_meta(meta).await {
                    debug!("storing the revalidated metadata failed: {e}");
                }
            }
            RespCacheable::Uncacheable(reason) => {
                session.cache.revalidate_uncacheable(merged, reason);
            }
        }
        session.cache_ctx.serve_stored = true;
        return Ok(Some(Forward::ServeStored));
    }
    if default_policy::is_stale_if_error_status(resp.status)
        && session.cache.can_serve_stale_error()
    {
        let e = Error::new_up(ErrorType::HTTPStatus(resp.status.as_u16()));
        if app.should_serve_stale(session, ctx, Some(&e)) {
            session
                .cache
                .release_write_lock(NoCacheReason::UpstreamError);
            session.cache_ctx.serve_stored = true;
            session.cache_ctx.stale_if_error = true;
            return Ok(Some(Forward::ServeStored));
        }
    }
    Ok(None)
}

/// Judges the response and, when it may be stored, opens the storage's writer.
async fn admit<SV>(
    app: &SV,
    session: &mut Session,
    ctx: &mut SV::CTX,
    resp: &ResponseHeader,
) -> Result<()>
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    let request_no_store = session
        .cache_ctx
        .request_cc
        .as_ref()
        .is_some_and(|cc| cc.no_store());
    let verdict = if request_no_store {
        RespCacheable::Uncacheable(NoCacheReason::Custom("request-no-store"))
    } else if resp.status == StatusCode::NOT_MODIFIED {
        RespCacheable::Uncacheable(NoCacheReason::OriginNotCache)
    } else {
        app.response_cache_filter(session, resp, ctx)?
    };
    let mut meta = match verdict {
        RespCacheable::Cacheable(meta) => meta,
        RespCacheable::Uncacheable(reason) => {
            session.cache.response_became_uncacheable(reason);
            session.cache.disable(reason);
            return Ok(());
        }
    };
    let too_large = session
        .cache
        .max_file_size_bytes()
        .is_some_and(|max| range_filter::content_length(resp).is_some_and(|len| len > max as u64));
    if too_large {
        session
            .cache
            .response_became_uncacheable(NoCacheReason::ResponseTooLarge);
        session.cache.disable(NoCacheReason::ResponseTooLarge);
        return Ok(());
    }
    let req = super::vary_request(session);
    let variance = app.cache_vary_filter(&meta, ctx, &req);
    let request_varies = variance::request_variance(&meta.response_header().headers, &req.headers)
        != variance::VaryKey::Invariant;
    drop(req);
    if variance.is_none() && request_varies {
        // The response varies on fields of this request the variance does not cover: stored,
        // it would be served to requests it does not suit.
        session
            .cache
            .disable(NoCacheReason::Custom("vary-not-keyed"));
        return Ok(());
    }
    if let Some(variance) = variance {
        meta.set_variance_key(variance);
    }
    session.cache.response_became_cacheable();
    if session.cache.phase() == CachePhase::Bypass {
        session.cache.cache_miss();
    }
    session.cache.set_cache_meta(meta);
    session.cache.update_variance(variance);
    match session.cache.set_miss_handler().await {
        Ok(()) => session.cache_ctx.stored = true,
        Err(e) => {
            debug!("cannot store the response: {e}");
            session.cache.disable(NoCacheReason::StorageError);
        }
    }
    Ok(())
}

/// The proxy removed the client's preconditions and `Range` from the upstream request: it
/// answers them now, from the new response.
fn answer_client_conditions<SV>(
    app: &SV,
    session: &mut Session,
    ctx: &mut SV::CTX,
    resp: &mut ResponseHeader,
) -> Result<()>
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    if resp.status != StatusCode::OK {
        return Ok(());
    }
    if app.cache_not_modified_filter(session, resp, ctx)? {
        *resp = conditional::not_modified_response(resp);
        session.cache_ctx.head_as_get = true;
        return Ok(());
    }
    if session.cache_ctx.head_as_get || !range_filter::wants_range(session.req_header()) {
        return Ok(());
    }
    let length = range_filter::content_length(resp);
    let original_type = content_type(resp);
    let range = app.range_header_filter(session, resp, ctx);
    session.cache_ctx.range =
        length.and_then(|len| RangeBodyFilter::new(range, len, original_type, resp));
    Ok(())
}

/// Adds the `Cache-Status` member of a response forwarded from the upstream.
fn forward_cache_status(session: &Session, resp: &mut ResponseHeader) {
    let Some(name) = session.cache.options().cache_status_name.as_deref() else {
        return;
    };
    let Some(fwd) = session.cache_ctx.fwd else {
        return;
    };
    let mut status = CacheStatus::forward(name, fwd).collapsed(session.cache_ctx.collapsed);
    if let Some(code) = session.cache_ctx.upstream_status {
        status = status.fwd_status(code);
    }
    if session.cache_ctx.stored {
        status = status.stored(true);
    }
    if fwd == FwdReason::Method || fwd == FwdReason::Bypass {
        status = CacheStatus::forward(name, fwd).fwd_status(resp.status.as_u16());
    }
    add_cache_status(session, resp, Some(status));
}

/// Whether the upstream's response is being written to the storage.
pub(crate) fn storing(session: &mut Session) -> bool {
    session.cache.miss_handler().is_some()
}

/// Passes a piece of the upstream's body to the storage writer, if the response is being
/// stored, and returns what the client gets of it.
pub(crate) async fn upstream_body(
    session: &mut Session,
    data: Option<Bytes>,
    end: bool,
) -> Option<Bytes> {
    if session.cache.miss_handler().is_some() {
        store_body(session, data.as_ref(), end).await;
    }
    if session.cache_ctx.head_as_get {
        return None;
    }
    match session.cache_ctx.range.as_mut() {
        Some(filter) => filter.filter(data, end),
        None => data,
    }
}

async fn store_body(session: &mut Session, data: Option<&Bytes>, end: bool) {
    let len = data.map_or(0, Bytes::len);
    if !session.cache.track_body_bytes_for_max_file_size(len) {
        session
            .cache
            .response_became_uncacheable(NoCacheReason::ResponseTooLarge);
        session.cache.disable(NoCacheReason::ResponseTooLarge);
        session.cache_ctx.stored = false;
        return;
    }
    let Some(handler) = session.cache.miss_handler() else {
        return;
    };
    let written = handler
        .write_body(data.cloned().unwrap_or_default(), end)
        .await;
    if let Err(e) = written {
        debug!("writing the response to the cache failed: {e}");
        session.cache.disable(NoCacheReason::StorageError);
        session.cache_ctx.stored = false;
        return;
    }
    if end {
        if let Err(e) = session.cache.finish_miss_handler().await {
            debug!("finishing the cache write failed: {e}");
            session.cache_ctx.stored = false;
        }
    }
}
