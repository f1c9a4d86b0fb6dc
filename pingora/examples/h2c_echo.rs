//! An HTTP echo server that speaks HTTP/2 without TLS (h2c with prior knowledge) as well as
//! HTTP/1, on one port. Each HTTP/2 stream is served by its own task.
//!
//! ```sh
//! cargo run --example h2c_echo
//! curl --http2-prior-knowledge http://127.0.0.1:6146/hello
//! curl --http2-prior-knowledge --data-binary 'some bytes' http://127.0.0.1:6146/
//! curl http://127.0.0.1:6146/hello        # HTTP/1.1 still works
//! h2load -n 10000 -c 10 -m 100 http://127.0.0.1:6146/
//! ```

mod app;

use pingora::prelude::*;
use pingora::services::listening::Service;

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    let mut echo = Service::new("h2c echo".to_string(), app::echo::h2c_http_echo());
    echo.add_tcp("127.0.0.1:6146");
    server.add_service(echo);
    server.run_forever();
}
