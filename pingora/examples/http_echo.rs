//! An HTTP/1 echo server built on `ServeHttp`: each request is answered with its own body, or
//! with its method and path when it has none. Its metrics are on a Prometheus service
//! (`pingora-prometheus`, a crate of its own as in Pingora).
//!
//! ```sh
//! cargo run --example http_echo
//! curl http://127.0.0.1:6145/hello
//! curl --data-binary 'some bytes' http://127.0.0.1:6145/
//! curl --unix-socket /tmp/pingora-http-echo.sock http://localhost/
//! curl http://127.0.0.1:6150/metrics
//! ```

mod app;

use pingora::apps::http_app::HttpServer;
use pingora::listeners::TcpSocketOptions;
use pingora::prelude::*;
use pingora::services::listening::Service;

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    let mut echo = Service::new(
        "http echo".to_string(),
        HttpServer::new_app(app::echo::HttpEchoApp),
    );
    let mut options = TcpSocketOptions::default();
    options.tcp_fastopen = Some(10);
    echo.add_tcp_with_settings("127.0.0.1:6145", options);
    echo.add_uds("/tmp/pingora-http-echo.sock", None);
    server.add_service(echo);

    let mut metrics = pingora_prometheus::prometheus_http_service();
    metrics.add_tcp("127.0.0.1:6150");
    server.add_service(metrics);
    server.run_forever();
}
