//! Two clusters behind one proxy: `/one/...` goes to the first, anything else to the second,
//! each balanced round robin with its own health checks.

use std::sync::Arc;

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::LoadBalancer;
use pingora_proxy::{ProxyHttp, Session};

/// Routes by path to one of two clusters.
#[derive(Debug)]
pub struct Router {
    pub cluster_one: Arc<LoadBalancer<RoundRobin>>,
    pub cluster_two: Arc<LoadBalancer<RoundRobin>>,
}

#[async_trait]
impl ProxyHttp for Router {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let cluster = if session.req_header().uri.path().starts_with("/one/") {
            &self.cluster_one
        } else {
            &self.cluster_two
        };
        let backend = cluster
            .select(b"", 256)
            .ok_or_else(|| Error::explain(ErrorType::ConnectNoRoute, "no healthy backend"))?;
        Ok(Box::new(HttpPeer::new(backend, false, String::new())))
    }
}
