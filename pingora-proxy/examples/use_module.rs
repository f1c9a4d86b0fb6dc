//! HTTP modules: an access-control module of our own in front of a local origin, and
//! response compression at level 6.
//!
//! ```sh
//! cargo run -p pingora-proxy --example use_module
//! curl -i 127.0.0.1:6196/                                   # 403: no credential
//! curl -i -H 'Authorization: Basic testcode' 127.0.0.1:6196/ # 200
//! curl -i --compressed -H 'Authorization: Basic testcode' 127.0.0.1:6196/json
//! ```

mod app;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::http_proxy_service;

const ORIGIN: &str = "127.0.0.1:7109";

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    server.add_service(app::origin::origin_service("origin", ORIGIN));
    let app = app::use_module::ModuleProxy {
        origin: ORIGIN.parse().expect("a socket address"),
        credential: "testcode".into(),
    };
    let mut proxy = http_proxy_service(&server.configuration, app);
    proxy.add_tcp("127.0.0.1:6196");
    server.add_service(proxy);
    server.run_forever();
}
