//! A proxy that only serves clients from an allow list of networks: a connection filter
//! closes every other connection as soon as it is accepted, before reading anything from it.
//!
//! ```sh
//! RUST_LOG=info cargo run -p pingora-proxy --example connection_filter
//! curl 127.0.0.1:6206/hello                        # allowed: 127.0.0.1 is on the list
//! curl --interface 127.0.0.2 127.0.0.1:6206/hello  # refused: the connection is closed at once
//! cargo run -p pingora-proxy --example connection_filter -- --allow 127.0.0.0/8 --allow ::1
//! ```
//!
//! `--allow` takes a network (`10.0.0.0/8`, `fd00::/8`) or an address (`127.0.0.1`), as many
//! times as needed; by default only `127.0.0.1` and `::1` are allowed. (On Linux every
//! `127.x.y.z` address is local, which makes `127.0.0.2` a handy client from outside the list.)
//! Each refusal is logged with the client's address.
//!
//! The filter, `app::connection_filter::AllowList`, implements
//! `pingora_core::listeners::ConnectionFilter`; `Service::set_connection_filter` applies it to
//! every endpoint of the proxy, whether added before or after. It runs in each connection's
//! own task, before the TLS handshake on a TLS endpoint, so a refused client costs no
//! handshake, and a slow filter never holds up the accepting of other connections.
//!
//! The proxy forwards to an origin started in-process (`origin`, on an ephemeral port), or to
//! `--origin <ip:port>`.

mod app;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_proxy::http_proxy_service;

use app::connection_filter::{AllowList, Network, ToOrigin};

/// The command line: the server's options, then this example's.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:6206")]
    listen: String,
    /// A network or address whose clients are served (repeatable).
    #[arg(long = "allow", default_values = ["127.0.0.1", "::1"])]
    allow: Vec<Network>,
    /// The origin to forward to; by default one started in-process.
    #[arg(long)]
    origin: Option<SocketAddr>,
}

fn main() {
    env_logger::init();
    let args = Args::parse();
    let origin = args.origin.unwrap_or_else(|| {
        app::local_origin::start_origins(&["origin"])
            .pop()
            .expect("one origin started")
    });

    let mut server = Server::new(Some(args.server)).expect("server set-up");
    server.bootstrap();

    let mut proxy = http_proxy_service(&server.configuration, ToOrigin(origin));
    let allowed: Vec<String> = args.allow.iter().map(ToString::to_string).collect();
    println!(
        "proxy on {} to {origin}, serving clients of {}",
        args.listen,
        allowed.join(", ")
    );
    proxy.set_connection_filter(Arc::new(AllowList::new(args.allow)));
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.run_forever();
}
