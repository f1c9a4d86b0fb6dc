//! Rate limiting per client: at most `limit` requests per second for each `appid` header value;
//! beyond, a 429 with `X-Rate-Limit-*` headers.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_limits::rate::Rate;
use pingora_proxy::{ProxyHttp, Session};

/// Limits each app to `limit` requests per second.
#[derive(Debug)]
pub struct RateLimiter {
    pub origin: SocketAddr,
    pub limit: isize,
    rate: Rate,
}

impl RateLimiter {
    pub fn new(origin: SocketAddr, limit: isize) -> Self {
        RateLimiter {
            origin,
            limit,
            rate: Rate::new(Duration::from_secs(1)),
        }
    }
}

#[async_trait]
impl ProxyHttp for RateLimiter {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn request_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<bool> {
        // Requests without an app id are not limited.
        let Some(appid) = session
            .get_header("appid")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
        else {
            return Ok(false);
        };
        let in_window = self.rate.observe(&appid, 1);
        if in_window <= self.limit {
            return Ok(false);
        }
        let mut resp = ResponseHeader::build(429, None)?;
        resp.insert_header("X-Rate-Limit-Limit", self.limit.to_string())?;
        resp.insert_header("X-Rate-Limit-Remaining", "0")?;
        resp.insert_header("X-Rate-Limit-Reset", "1")?;
        resp.insert_header("Content-Length", "0")?;
        // A client over its limit gets no keepalive either.
        session.set_keepalive(None);
        session.write_response_header(Box::new(resp), true).await?;
        Ok(true)
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}
