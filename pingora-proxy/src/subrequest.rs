//! Subrequests: the proxy pipeline run again for a copy of a client's request, without a
//! client. Background cache revalidation (stale-while-revalidate) uses them.

use crate::proxy_trait::ProxyHttp;
use crate::Session;

/// Starts the background revalidation of the stale response `session` found, handing it
/// this request's cache write lock. Returns whether it started (when it did not, the
/// request revalidates the response itself before answering).
pub(crate) fn spawn_revalidation<SV>(_app: &SV, _session: &mut Session) -> bool
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    // Subrequests need the in-memory server session of pingora-core (in progress): until
    // they exist, the stale response is revalidated in the foreground.
    false
}
