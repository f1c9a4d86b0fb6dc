//! Rewriting response bodies: the origin's JSON is converted to YAML on the way.
//!
//! ```sh
//! cargo run -p pingora-proxy --example modify_response
//! curl 127.0.0.1:6192/
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

    server.add_service(app::origin::origin_service("json", ORIGIN));
    let app = app::modify_response::Json2Yaml {
        origin: ORIGIN.parse().unwrap(),
    };
    let mut proxy = http_proxy_service(&server.configuration, app);
    proxy.add_tcp("127.0.0.1:6192");
    server.add_service(proxy);
    server.run_forever();
}
