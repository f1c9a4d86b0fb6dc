//! A JSON access log with `tracing-subscriber`: one line per request, written in the `logging`
//! phase, with request ids (sent upstream and back as `x-request-id`).
//!
//! ```sh
//! cargo run -p pingora-proxy --example access_log
//! curl -i 127.0.0.1:6197/hello
//! ```

mod app;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::{http_proxy_service, RequestIdOptions};

const ORIGIN: &str = "127.0.0.1:7110";

fn main() {
    // JSON lines on stdout: the access log events, and the proxy's own events with the
    // request span they happened in.
    tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    server.add_service(app::origin::origin_service("origin", ORIGIN));
    let app = app::access_log::AccessLog {
        origin: ORIGIN.parse().expect("a socket address"),
    };
    let mut proxy = http_proxy_service(&server.configuration, app);
    if let Some(logic) = proxy.app_logic_mut() {
        logic.request_id = Some(RequestIdOptions::default());
    }
    proxy.add_tcp("127.0.0.1:6197");
    server.add_service(proxy);
    server.run_forever();
}
