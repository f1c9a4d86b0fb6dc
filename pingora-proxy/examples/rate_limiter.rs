//! Per-client rate limiting: each `appid` may send one request per second.
//!
//! ```sh
//! cargo run --example rate_limiter
//! for i in 1 2 3; do curl -si -H 'appid: 1' 127.0.0.1:6195/ | head -1; done   # 200, 429, 429
//! ```

mod app;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::http_proxy_service;

const ORIGIN: &str = "127.0.0.1:7108";

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    server.add_service(app::origin::origin_service("limited", ORIGIN));
    let limiter = app::rate_limiter::RateLimiter::new(ORIGIN.parse().unwrap(), 1);
    let mut proxy = http_proxy_service(&server.configuration, limiter);
    proxy.add_tcp("127.0.0.1:6195");
    server.add_service(proxy);
    server.run_forever();
}
