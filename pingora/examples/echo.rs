//! A TCP and Unix-socket echo server.
//!
//! ```sh
//! cargo run --example echo
//! echo hello | nc -q1 127.0.0.1 6142
//! echo hello | nc -q1 -U /tmp/pingora-echo.sock
//! ```
//!
//! Takes the server's usual command line (`-c conf.yaml`, `-t`, `-d`, ...).

mod app;

use pingora::prelude::*;
use pingora::services::listening::Service;

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    let mut echo = Service::new("echo".to_string(), app::echo::EchoApp);
    echo.add_tcp("127.0.0.1:6142");
    // Permissions default to 0o666: anyone on the machine may connect.
    echo.add_uds("/tmp/pingora-echo.sock", None);
    server.add_service(echo);
    server.run_forever();
}
