//! An API gateway in front of two local origins, serving HTTP/1 and h2c (HTTP/2 without TLS)
//! on one port, with its metrics on a Prometheus service.
//!
//! ```sh
//! cargo run -p pingora-proxy --example gateway
//! curl 127.0.0.1:6191/api/users                          # -> the "api" origin
//! curl --http2-prior-knowledge 127.0.0.1:6191/api/users  # the same over HTTP/2
//! curl 127.0.0.1:6191/index.html                         # -> the "www" origin
//! curl -i 127.0.0.1:6191/login                           # -> 403
//! curl -H 'Authorization: open sesame' 127.0.0.1:6191/login
//! curl 127.0.0.1:6192/metrics     # gateway_requests_total, pingora_* built-in metrics, process_*
//! ```

mod app;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::ProxyServiceBuilder;

const API: &str = "127.0.0.1:7101";
const WWW: &str = "127.0.0.1:7102";

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    server.add_service(app::origin::origin_service("api", API));
    server.add_service(app::origin::origin_service("www", WWW));
    let gateway = app::gateway::Gateway::new(API.parse().unwrap(), WWW.parse().unwrap());
    let mut proxy = ProxyServiceBuilder::new(&server.configuration, gateway)
        .server_options(app::gateway::server_options())
        .build();
    proxy.add_tcp("127.0.0.1:6191");
    server.add_service(proxy);

    // The built-in metrics and the gateway's own `gateway_requests_total`, in one scrape.
    let mut metrics = pingora_prometheus::prometheus_http_service();
    metrics.add_tcp("127.0.0.1:6192");
    server.add_service(metrics);
    server.run_forever();
}
