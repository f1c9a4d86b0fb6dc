//! Two load-balanced clusters behind one proxy, routed by path.
//!
//! ```sh
//! cargo run --example multi_lb
//! curl 127.0.0.1:6194/one/x     # cluster one
//! curl 127.0.0.1:6194/other     # cluster two
//! ```

mod app;

use std::time::Duration;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_load_balancing::health_check::TcpHealthCheck;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::LoadBalancer;
use pingora_proxy::http_proxy_service;

fn cluster(names: &[&str]) -> LoadBalancer<RoundRobin> {
    let addrs = app::local_origin::start_origins(names);
    let mut lb = LoadBalancer::try_from_iter(addrs).expect("local addresses");
    lb.set_health_check(TcpHealthCheck::new());
    lb.health_check_frequency = Some(Duration::from_secs(1));
    lb
}

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    let one = background_service("cluster one", cluster(&["one-a", "one-b"]));
    let two = background_service("cluster two", cluster(&["two-a", "two-b"]));
    let router = app::multi_lb::Router {
        cluster_one: one.task(),
        cluster_two: two.task(),
    };
    let mut proxy = http_proxy_service(&server.configuration, router);
    proxy.add_tcp("127.0.0.1:6194");
    let one = server.add_service(one);
    let two = server.add_service(two);
    let proxy = server.add_service(proxy);
    proxy.add_dependencies([&one, &two]);
    server.run_forever();
}
