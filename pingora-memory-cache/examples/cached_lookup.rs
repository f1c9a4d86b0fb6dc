//! A slow lookup cached inside a `ProxyHttp` callback: each request's origin comes from a
//! directory service (here simulated: 100 ms per query) keyed by the `Host` header, through
//! an [`RTCache`]. Concurrent requests for a new host share one query; a route is fresh for
//! 10 s, then served stale for up to 5 minutes while one background query refreshes it.
//!
//! ```sh
//! cargo run -p pingora-memory-cache --example cached_lookup
//! curl -i -H 'Host: blue.example' 127.0.0.1:6196/   # x-route-cache: miss (100 ms)
//! curl -i -H 'Host: blue.example' 127.0.0.1:6196/   # x-route-cache: hit
//! curl -i -H 'Host: green.example' 127.0.0.1:6196/  # the other origin
//! ```

use std::net::SocketAddr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use http::{header, Response};
use pingora_core::apps::http_app::{HttpServer, ServeHttp};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::services::listening::Service;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{ErrorTrait, Result};
use pingora_http::ResponseHeader;
use pingora_memory_cache::{CacheStatus, Lookup, RTCache};
use pingora_proxy::{http_proxy_service, ProxyHttp, Session};

const BLUE: &str = "127.0.0.1:7120";
const GREEN: &str = "127.0.0.1:7121";

/// The directory service: which origin serves a host. Slow, so worth caching.
struct Directory;

#[async_trait]
impl Lookup<String, SocketAddr, ()> for Directory {
    async fn lookup(
        host: &String,
        _extra: Option<&()>,
    ) -> Result<(SocketAddr, Option<Duration>), Box<dyn ErrorTrait + Send + Sync>> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let origin = if host.starts_with("green.") {
            GREEN
        } else {
            BLUE
        };
        // The directory could also say how long its answer holds; `None` keeps the
        // TTL given to `get`.
        Ok((origin.parse()?, None))
    }
}

/// Routes by host: 10,000 hosts at most; a query that has run for 2 s no longer makes new
/// requests wait, and a request waits at most 1 s for another's query.
static ROUTES: LazyLock<RTCache<String, SocketAddr, Directory, ()>> = LazyLock::new(|| {
    RTCache::new(
        10_000,
        Some(Duration::from_secs(2)),
        Some(Duration::from_secs(1)),
    )
});

/// Fresh for 10 s; then served stale (and refreshed) for up to 5 minutes.
const ROUTE_TTL: Duration = Duration::from_secs(10);
const ROUTE_STALE: Duration = Duration::from_secs(300);

struct Router;

#[async_trait]
impl ProxyHttp for Router {
    /// How the route was found, for the response header.
    type CTX = Option<CacheStatus>;

    fn new_ctx(&self) -> Self::CTX {
        None
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Self::CTX,
    ) -> Result<Box<HttpPeer>> {
        let host = String::from_utf8_lossy(session.get_header_bytes(header::HOST)).into_owned();
        let (origin, status) = ROUTES
            .get_stale_while_update(&host, Some(ROUTE_TTL), None, ROUTE_STALE)
            .await;
        *ctx = Some(status);
        // A failed lookup fails the request (a 502), and is not cached.
        Ok(Box::new(HttpPeer::new(origin?, false, String::new())))
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut Self::CTX,
    ) -> Result<()> {
        let status = ctx.map_or("none", |s| s.as_str());
        upstream_response.insert_header("x-route-cache", status)?;
        Ok(())
    }
}

/// A local origin that names itself in its answers.
struct Origin(&'static str);

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let body = format!("{} served {}\n", self.0, session.req_header().uri);
        Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body.into_bytes())
            .expect("valid response")
    }
}

fn origin(name: &'static str, addr: &str) -> Service<HttpServer<Origin>> {
    let mut service = Service::new(format!("origin {name}"), HttpServer::new_app(Origin(name)));
    service.add_tcp(addr);
    service
}

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();
    server.add_service(origin("blue", BLUE));
    server.add_service(origin("green", GREEN));
    let mut proxy = http_proxy_service(&server.configuration, Router);
    proxy.add_tcp("127.0.0.1:6196");
    server.add_service(proxy);
    server.run_forever();
}
