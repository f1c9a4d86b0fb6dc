//! A gRPC-web gateway: browsers (gRPC-web clients, binary or text mode) call a gRPC server
//! through the proxy, which speaks gRPC over plaintext HTTP/2 (h2c) to it.
//!
//! The gRPC server's address comes from `GRPC_UPSTREAM` (default `127.0.0.1:50051`).
//!
//! ```sh
//! GRPC_UPSTREAM=127.0.0.1:50051 RUST_LOG=info cargo run -p pingora-proxy --example grpc_web_module
//! # An empty message to a gRPC health service (any gRPC server with one will do):
//! printf '\0\0\0\0\0' | curl -s --data-binary @- -o - \
//!     -H 'content-type: application/grpc-web+proto' \
//!     127.0.0.1:6194/grpc.health.v1.Health/Check | od -c
//! ```
//!
//! The answer ends with the trailer frame (`\x80`, a length, `grpc-status: 0`).

use std::net::SocketAddr;

use async_trait::async_trait;

use pingora_core::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge};
use pingora_core::modules::http::HttpModules;
use pingora_core::prelude::Opt;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

/// The gRPC server, when `GRPC_UPSTREAM` does not say.
const DEFAULT_UPSTREAM: &str = "127.0.0.1:50051";

/// Bridges every request that is gRPC-web; others are proxied as they are.
#[derive(Debug)]
pub struct GrpcWebBridgeProxy {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for GrpcWebBridgeProxy {
    type CTX = ();
    fn new_ctx(&self) -> Self::CTX {}

    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        // The bridge sits among the downstream modules, disabled until a request enables it.
        modules.add_module(Box::new(GrpcWeb))
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<()> {
        // Before the modules see the request head: bridge this request if it is gRPC-web.
        let grpc = session
            .downstream_modules_ctx
            .get_mut::<GrpcWebBridge>()
            .expect("the GrpcWeb module was added in init_downstream_modules");
        grpc.init();
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        // gRPC is HTTP/2: over plaintext, only HTTP/2 (h2c) is allowed to this peer.
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.set_http_version(2, 2);
        Ok(Box::new(peer))
    }
}

// RUST_LOG=info cargo run -p pingora-proxy --example grpc_web_module

fn main() {
    env_logger::init();

    let opt = Opt::parse_args();
    let mut my_server = Server::new(Some(opt)).unwrap();
    my_server.bootstrap();

    let upstream = std::env::var("GRPC_UPSTREAM").unwrap_or_else(|_| DEFAULT_UPSTREAM.into());
    let upstream = upstream.parse().expect("GRPC_UPSTREAM is an ip:port");
    let mut my_proxy = pingora_proxy::http_proxy_service(
        &my_server.configuration,
        GrpcWebBridgeProxy { upstream },
    );
    my_proxy.add_tcp("127.0.0.1:6194");

    my_server.add_service(my_proxy);
    my_server.run_forever();
}
