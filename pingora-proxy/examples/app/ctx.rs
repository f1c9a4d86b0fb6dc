//! Per-request state (`CTX`) and state shared by all requests: beta users (those sending
//! `beta-flag: 1`) go to another origin, and the proxy counts requests, beta ones apart.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};

/// What one request carries between callbacks.
#[derive(Debug, Default)]
pub struct RequestCtx {
    pub beta_user: bool,
}

/// Sends beta users to `beta`, others to `stable`.
#[derive(Debug)]
pub struct BetaRouter {
    pub stable: SocketAddr,
    pub beta: SocketAddr,
    pub requests: AtomicUsize,
    pub beta_requests: AtomicUsize,
}

impl BetaRouter {
    pub fn new(stable: SocketAddr, beta: SocketAddr) -> Self {
        BetaRouter {
            stable,
            beta,
            requests: AtomicUsize::new(0),
            beta_requests: AtomicUsize::new(0),
        }
    }
}

#[async_trait]
impl ProxyHttp for BetaRouter {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.beta_user = session.get_header_bytes("beta-flag") == b"1";
        self.requests.fetch_add(1, Ordering::Relaxed);
        if ctx.beta_user {
            self.beta_requests.fetch_add(1, Ordering::Relaxed);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let addr = if ctx.beta_user {
            self.beta
        } else {
            self.stable
        };
        Ok(Box::new(HttpPeer::new(addr, false, String::new())))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let total = self.requests.load(Ordering::Relaxed);
        upstream_response.insert_header("x-request-count", total)?;
        upstream_response.insert_header("x-beta", if ctx.beta_user { "yes" } else { "no" })?;
        Ok(())
    }
}
