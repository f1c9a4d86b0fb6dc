//! Retries with exponential back-off: the first three tries go to a port where nothing
//! listens, `fail_to_connect` marks each failure retryable, and the fourth reaches the origin.
//!
//! ```sh
//! cargo run -p pingora-proxy --example backoff_retry
//! curl -i 127.0.0.1:6193/      # x-tries: 4
//! ```

mod app;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::http_proxy_service;

const ORIGIN: &str = "127.0.0.1:7106";
/// Nothing listens here.
const DEAD: &str = "127.0.0.1:7107";

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    server.add_service(app::origin::origin_service("live", ORIGIN));
    let app = app::backoff_retry::BackoffRetry {
        dead: DEAD.parse().unwrap(),
        live: ORIGIN.parse().unwrap(),
        dead_tries: 3,
    };
    let mut proxy = http_proxy_service(&server.configuration, app);
    proxy.add_tcp("127.0.0.1:6193");
    server.add_service(proxy);
    server.run_forever();
}
