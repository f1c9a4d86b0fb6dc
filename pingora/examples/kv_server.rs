//! A server for a custom, non-HTTP protocol: a line-based key-value store (see
//! `examples/app/kv.rs` for the protocol).
//!
//! ```sh
//! cargo run --example kv_server
//! printf 'SET color blue\nGET color\nQUIT\n' | nc 127.0.0.1 6147
//! ```

mod app;

use pingora::prelude::*;
use pingora::services::listening::Service;

fn main() {
    env_logger::init();
    let mut server = Server::new(Some(Opt::parse_args())).expect("server set-up");
    server.bootstrap();

    let mut kv = Service::new("kv".to_string(), app::kv::KvApp::default());
    kv.add_tcp("127.0.0.1:6147");
    server.add_service(kv);
    server.run_forever();
}
