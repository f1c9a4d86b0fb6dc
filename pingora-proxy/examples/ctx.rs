//! Per-request and shared state: beta users (`beta-flag: 1`) are sent to another origin.
//!
//! ```sh
//! cargo run -p pingora-proxy --example ctx
//! curl -i 127.0.0.1:6190/
//! curl -i -H 'beta-flag: 1' 127.0.0.1:6190/
//! ```

mod app;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::http_proxy_service;

const STABLE: &str = "127.0.0.1:7103";
const BETA: &str = "127.0.0.1:7104";

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    server.add_service(app::origin::origin_service("stable", STABLE));
    server.add_service(app::origin::origin_service("beta", BETA));
    let router = app::ctx::BetaRouter::new(STABLE.parse().unwrap(), BETA.parse().unwrap());
    let mut proxy = http_proxy_service(&server.configuration, router);
    proxy.add_tcp("127.0.0.1:6190");
    server.add_service(proxy);
    server.run_forever();
}
