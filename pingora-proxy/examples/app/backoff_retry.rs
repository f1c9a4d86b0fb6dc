//! Retrying with back-off: connection failures are marked retryable in `fail_to_connect`, and
//! `upstream_peer` waits longer before each new try. The first peers tried here are dead, to
//! show the retries; then the live origin is used.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};

/// The wait before the `n`th retry: 10 ms doubling each time, at most 1 s.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(10u64.saturating_mul(1 << n.min(7))).min(Duration::from_secs(1))
}

/// Tries `dead` `dead_tries` times, then `live`.
#[derive(Debug)]
pub struct BackoffRetry {
    pub dead: SocketAddr,
    pub live: SocketAddr,
    pub dead_tries: u32,
}

/// How many tries this request has made.
#[derive(Debug, Default)]
pub struct Tries {
    pub tries: u32,
}

#[async_trait]
impl ProxyHttp for BackoffRetry {
    type CTX = Tries;

    fn new_ctx(&self) -> Tries {
        Tries::default()
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut Tries,
    ) -> Result<Box<HttpPeer>> {
        if ctx.tries > 0 {
            pingora_timeout::sleep(backoff(ctx.tries - 1)).await;
        }
        ctx.tries += 1;
        let addr = if ctx.tries <= self.dead_tries {
            self.dead
        } else {
            self.live
        };
        Ok(Box::new(HttpPeer::new(addr, false, String::new())))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Tries,
        mut e: Box<Error>,
    ) -> Box<Error> {
        log::warn!("try {} to {peer} failed: {e}", ctx.tries);
        e.set_retry(true);
        e
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Tries,
    ) -> Result<()> {
        upstream_response.insert_header("x-tries", ctx.tries)?;
        Ok(())
    }
}
