//! Serving a stored response: `Age`, `Cache-Status`, conditional requests (304), ranges,
//! HEAD, and the body streamed from the storage.

use std::time::SystemTime;

use http::{header, Method, StatusCode};
use log::debug;
use pingora_cache::cache_status::{CacheStatus, FwdReason};
use pingora_cache::conditional;
use pingora_cache::{CacheMeta, CachePhase};
use pingora_error::Result;
use pingora_http::ResponseHeader;

use super::range_filter::{self, RangeBodyFilter};
use crate::headers;
use crate::proxy_trait::ProxyHttp;
use crate::Session;

/// Serves the stored response of `session.cache` (a hit, a stale hit, or one revalidated
/// upstream). Returns whether the client connection may be reused; an error once the head
/// is sent aborts the response (the client never sees a truncated body as complete).
pub(crate) async fn serve_stored<SV>(
    app: &SV,
    session: &mut Session,
    ctx: &mut SV::CTX,
) -> Result<bool>
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    let now = SystemTime::now();
    let meta = session.cache.cache_meta();
    let mut resp = meta.response_header_copy();
    let _ = resp.insert_header(header::AGE, meta.age_at(now).as_secs().to_string());
    let status = hit_cache_status(session, meta, now);
    add_cache_status(session, &mut resp, status);
    let method = session.req_header().method.clone();

    if app.cache_not_modified_filter(session, &resp, ctx)? {
        let mut not_modified = conditional::not_modified_response(&resp);
        for name in [header::AGE, header::HeaderName::from_static("cache-status")] {
            for value in resp.headers.get_all(&name) {
                let _ = not_modified.append_header(name.clone(), value.clone());
            }
        }
        headers::downstream_response(&mut not_modified, &method);
        app.response_filter(session, &mut not_modified, ctx).await?;
        session
            .write_response_header(Box::new(not_modified), true)
            .await?;
        finish_hit(session).await;
        return Ok(true);
    }

    let head = method == Method::HEAD;
    let mut filter = None;
    if !head && range_filter::wants_range(session.req_header()) {
        let length = range_filter::content_length(&resp);
        let original_type = content_type(&resp);
        let range = app.range_header_filter(session, &mut resp, ctx);
        filter = length.and_then(|len| RangeBodyFilter::new(range, len, original_type, &resp));
        filter = seek_single(session, filter);
    }
    headers::downstream_response(&mut resp, &method);
    app.response_filter(session, &mut resp, ctx).await?;
    let bodiless = head
        || resp.status == StatusCode::RANGE_NOT_SATISFIABLE
        || resp.status == StatusCode::NO_CONTENT
        || resp.status == StatusCode::NOT_MODIFIED;
    session
        .write_response_header(Box::new(resp), bodiless)
        .await?;
    if bodiless {
        finish_hit(session).await;
        return Ok(true);
    }
    loop {
        let chunk = session.cache.hit_handler().read_body().await?;
        let end = chunk.is_none();
        let mut data = match filter.as_mut() {
            Some(filter) => filter.filter(chunk, end),
            None => chunk,
        };
        if let Some(delay) = app.response_body_filter(session, &mut data, end, ctx)? {
            pingora_timeout::sleep(delay).await;
        }
        session.write_response_body(data, end).await?;
        if end {
            break;
        }
    }
    finish_hit(session).await;
    Ok(true)
}

/// With a single range and a reader that can seek, reads only the range.
fn seek_single(session: &mut Session, filter: Option<RangeBodyFilter>) -> Option<RangeBodyFilter> {
    let filter = filter?;
    let Some(range) = filter.single() else {
        return Some(filter);
    };
    let handler = session.cache.hit_handler();
    if !handler.can_seek() {
        return Some(filter);
    }
    let (Ok(start), Ok(end)) = (usize::try_from(range.start), usize::try_from(range.end)) else {
        return Some(filter);
    };
    match handler.seek(start, Some(end)) {
        Ok(()) => Some(filter.starting_at(range.start)),
        Err(e) => {
            debug!("cannot seek the stored body: {e}");
            Some(filter)
        }
    }
}

async fn finish_hit(session: &mut Session) {
    if let Err(e) = session.cache.finish_hit_handler().await {
        debug!("finishing a cache hit failed: {e}");
    }
}

pub(crate) fn content_type(resp: &ResponseHeader) -> Option<String> {
    resp.headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Seconds of freshness left (negative once stale).
fn ttl(meta: &CacheMeta, now: SystemTime) -> i64 {
    match meta.fresh_until().duration_since(now) {
        Ok(left) => i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The `Cache-Status` member of a response served from the storage.
fn hit_cache_status(session: &Session, meta: &CacheMeta, now: SystemTime) -> Option<CacheStatus> {
    let name = session.cache.options().cache_status_name.as_deref()?;
    let ttl = ttl(meta, now);
    let ctx = &session.cache_ctx;
    let status = match session.cache.phase() {
        CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => {
            let reason = if ctx.revalidation_requested {
                FwdReason::Request
            } else {
                FwdReason::Stale
            };
            CacheStatus::forward(name, reason)
                .fwd_status(304)
                .stored(session.cache.phase() == CachePhase::Revalidated)
        }
        _ if ctx.stale_if_error => {
            let status = CacheStatus::forward(name, FwdReason::Stale).detail("stale-if-error");
            match ctx.upstream_status {
                Some(code) => status.fwd_status(code),
                None => status,
            }
        }
        _ => CacheStatus::hit(name),
    };
    Some(status.ttl(ttl).collapsed(ctx.collapsed))
}

/// Appends `status` to the response's `Cache-Status` field (after the upstream's members).
pub(crate) fn add_cache_status(
    _session: &Session,
    resp: &mut ResponseHeader,
    status: Option<CacheStatus>,
) {
    let Some(status) = status else { return };
    let name = header::HeaderName::from_static("cache-status");
    let existing = resp.headers.get(&name).map(|v| v.as_bytes().to_vec());
    let value = status.append_to(existing.as_deref());
    if let Ok(value) = header::HeaderValue::from_bytes(&value) {
        let _ = resp.insert_header(name, value);
    }
}
