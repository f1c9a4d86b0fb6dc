//! Upstream connections over virtual L4 sockets: a custom `L4Connect` on the peer hands the
//! proxy connections that are in-memory pipes to an origin living in this process, wrapped as
//! `VirtualSocketStream`s. Requests for `Host: virtual.test` take that path; the rest go to an
//! ordinary TCP origin. Nothing leaves the machine.
//!
//! ```sh
//! cargo run -p pingora-proxy --example virtual_l4
//! curl -i -H 'Host: virtual.test' 127.0.0.1:6198/hello   # x-origin: virtual
//! curl -i 127.0.0.1:6198/hello                           # x-origin: tcp
//! ```

mod app;

use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::http_proxy_service_with_name;

const TCP_ORIGIN: &str = "127.0.0.1:7111";

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    server.add_service(app::origin::origin_service("tcp", TCP_ORIGIN));
    let app = app::virtual_l4::VirtualProxy::new(TCP_ORIGIN.parse().expect("a socket address"));
    let mut proxy = http_proxy_service_with_name(&server.configuration, app, "virtual l4 proxy");
    proxy.add_tcp("127.0.0.1:6198");
    server.add_service(proxy);
    server.run_forever();
}
