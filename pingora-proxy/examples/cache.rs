//! A caching reverse proxy: responses are stored in memory and served from there while
//! fresh, following the HTTP caching rules (RFC 9111) by default.
//!
//! ```sh
//! cargo run -p pingora-proxy --example cache
//! curl -i 127.0.0.1:6191/          # Cache-Status: pingora; fwd=uri-miss; fwd-status=200; stored
//! curl -i 127.0.0.1:6191/          # Cache-Status: pingora; hit; ttl=9 -- and an Age field
//! curl -i 127.0.0.1:6191/max-age/2 # stale after 2 s, then revalidated with the origin
//! curl -i 127.0.0.1:6191/private   # never stored
//! ```

mod app;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::http_proxy_service;

const ORIGIN: &str = "127.0.0.1:7105";

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    server.add_service(app::cache::origin_service(ORIGIN));
    let proxy_app = app::cache::CachingProxy {
        origin: ORIGIN.parse().expect("a socket address"),
    };
    let mut proxy = http_proxy_service(&server.configuration, proxy_app);
    proxy.add_tcp("127.0.0.1:6191");
    server.add_service(proxy);
    server.run_forever();
}
