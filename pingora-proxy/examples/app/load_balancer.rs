//! The quick-start load balancer: round robin over backends, health checked.

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::LoadBalancer;
use pingora_proxy::{ProxyHttp, Session};

/// A proxy sending each request to the next healthy backend.
#[derive(Debug)]
pub struct LB(pub Arc<LoadBalancer<RoundRobin>>);

#[async_trait]
impl ProxyHttp for LB {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        // 256: how many candidates to look at before giving up on finding a healthy one.
        let upstream = self
            .0
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no healthy backend"))?;
        Ok(Box::new(HttpPeer::new(upstream, false, String::new())))
    }
}
