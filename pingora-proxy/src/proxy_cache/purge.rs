//! Purge requests and the invalidation that follows unsafe methods.

use std::borrow::Cow;

use log::{debug, warn};
use pingora_cache::filters::default_policy;
use pingora_cache::{CacheKey, CompactCacheKey};
use pingora_core::protocols::http::ServerSession;
use pingora_error::{Error, Result};
use pingora_http::ResponseHeader;

use super::CacheStep;
use crate::proxy_trait::ProxyHttp;
use crate::Session;

/// How a purge request went, and the status of the answer.
#[derive(Debug)]
pub enum PurgeStatus {
    /// The cache is not enabled for this request: 405.
    NoCache,
    /// The object was found and removed: 200.
    Found,
    /// Nothing was stored under the key: 404.
    NotFound,
    /// The storage failed: 500.
    Error(Box<Error>),
}

impl PurgeStatus {
    /// The status code of the answer.
    pub fn status_code(&self) -> u16 {
        match self {
            PurgeStatus::NoCache => 405,
            PurgeStatus::Found => 200,
            PurgeStatus::NotFound => 404,
            PurgeStatus::Error(_) => 500,
        }
    }
}

/// The answer to a purge request with status `code`: no body, not to be cached.
fn purge_response(code: u16) -> ResponseHeader {
    let mut resp = ServerSession::generate_error(code);
    let _ = resp.insert_header(http::header::CACHE_CONTROL, "private, no-store");
    resp
}

/// Answers a purge request (the user's `is_purge` accepted it): removes the object and
/// every variant of it, never forwards the request.
pub(crate) async fn serve_purge<SV>(
    app: &SV,
    session: &mut Session,
    ctx: &mut SV::CTX,
) -> Result<CacheStep>
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    let status = if session.cache.maybe_cache_key().is_none() {
        PurgeStatus::NoCache
    } else {
        match session.cache.purge().await {
            Ok(true) => PurgeStatus::Found,
            Ok(false) => PurgeStatus::NotFound,
            Err(e) => PurgeStatus::Error(e),
        }
    };
    let code = status.status_code();
    let mut resp = Cow::Owned(purge_response(code));
    if let Err(e) = app.purge_response_filter(session, ctx, status, &mut resp) {
        warn!("purge_response_filter failed: {e}");
        resp = Cow::Owned(purge_response(500));
    }
    if !session.downstream_session.is_body_done() {
        session.downstream_session.set_keepalive(None);
    }
    session
        .write_response_header(Box::new(resp.into_owned()), true)
        .await?;
    Ok(CacheStep::Served(true))
}

/// After a 2xx or 3xx answer to an unsafe method: removes the stored responses of the
/// request's key and, when the options allow, of the same-origin `Location` and
/// `Content-Location` URIs (with the default key). Done before the answer is forwarded, so
/// that the client's next request cannot see the old response.
pub(crate) async fn invalidate(session: &mut Session, resp: &ResponseHeader) {
    let mut keys: Vec<CompactCacheKey> = session
        .cache
        .maybe_cache_key()
        .map(CacheKey::to_compact)
        .into_iter()
        .collect();
    keys.extend(location_keys(session, resp));
    for key in keys {
        if let Err(e) = session.cache.purge_compact(&key).await {
            debug!("invalidating {key} failed: {e}");
        }
    }
}

/// [`invalidate`] for a request on which the cache was not enabled: `key` (the request's)
/// and the `Location` keys are removed from every cache the proxy's requests use.
pub(crate) async fn invalidate_uncached(
    session: &mut Session,
    key: CacheKey,
    resp: &ResponseHeader,
) {
    let mut keys = vec![key.to_compact()];
    keys.extend(location_keys(session, resp));
    let caches = std::mem::take(&mut session.cache_ctx.invalidate);
    for cache in caches {
        for key in &keys {
            let purged = pingora_cache::purge_key(cache.storage, cache.eviction, key).await;
            if let Err(e) = purged {
                debug!("invalidating {key} failed: {e}");
            }
        }
    }
}

/// The default keys of the same-origin `Location` and `Content-Location` URIs of `resp`,
/// when the options invalidate them.
fn location_keys(session: &Session, resp: &ResponseHeader) -> Vec<CompactCacheKey> {
    let mut keys = Vec::new();
    if session.cache.options().invalidate_locations {
        let uri = super::target_uri(session);
        if let Some((scheme, rest)) = uri.split_once("://") {
            let authority = rest.split('/').next().unwrap_or_default();
            for target in default_policy::invalidation_targets(scheme, authority, &resp.headers) {
                let key = CacheKey::new("", format!("{scheme}://{authority}{target}"), "");
                keys.push(key.to_compact());
            }
        }
    }
    keys
}
