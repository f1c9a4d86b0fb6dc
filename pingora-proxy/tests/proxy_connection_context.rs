//! State carried from one request to the next on a client connection:
//! `persist_connection_context` hands a value over when the connection is kept, and
//! `on_connection_reuse` receives it at the start of the next request on that connection,
//! before the request's filters. A new connection starts without it.

use std::any::Any;
use std::net::SocketAddr;

use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::Result;
use pingora_http::ResponseHeader;
use pingora_proxy::{ProxyHttp, Session};
use pingora_test_support::curl;
use pingora_test_support::origin::{hyper_origin, standard_routes};
use pingora_test_support::proxy::start_proxy;
use pingora_test_support::runtime;

/// Numbers the requests of each client connection, in a response field.
struct Numbering {
    origin: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Numbering {
    /// How many requests this connection served, this one included once its response began.
    type CTX = u32;

    fn new_ctx(&self) -> u32 {
        0
    }

    fn on_connection_reuse(
        &self,
        _session: &mut Session,
        ctx: &mut u32,
        prev_ctx: Box<dyn Any + Send + Sync>,
    ) {
        if let Ok(served) = prev_ctx.downcast::<u32>() {
            *ctx = *served;
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut u32) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut u32,
    ) -> Result<()> {
        *ctx += 1;
        resp.insert_header("x-request-number", ctx.to_string())
    }

    fn persist_connection_context(
        &self,
        _session: &Session,
        ctx: &u32,
    ) -> Option<Box<dyn Any + Send + Sync>> {
        Some(Box::new(*ctx))
    }
}

fn numbers(heads: &str) -> Vec<String> {
    heads
        .lines()
        .filter_map(|line| line.strip_prefix("x-request-number: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_context_follows_the_connection() {
    let rt = runtime();
    let origin = hyper_origin(&rt, standard_routes);
    let (_server, proxy) = start_proxy(Numbering {
        origin: origin.addr,
    });
    // One curl run reuses its connection for the three URLs of the same host.
    let url = format!("http://{proxy}/headers");
    let out = curl::raw(&[url.as_str(), url.as_str(), url.as_str()]);
    let heads = String::from_utf8_lossy(&out);
    assert_eq!(numbers(&heads), ["1", "2", "3"], "{heads}");
    // A new connection starts again from nothing.
    let out = curl::raw(&[url.as_str()]);
    assert_eq!(numbers(&String::from_utf8_lossy(&out)), ["1"]);
}
