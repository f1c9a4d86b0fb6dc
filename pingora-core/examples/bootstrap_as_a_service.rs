//! The server's bootstrap run as a service of its own, in the dependency graph.
//!
//! ```sh
//! cargo run -p pingora-core --example bootstrap_as_a_service
//! curl http://127.0.0.1:6201/        # served once the bootstrap service has finished
//! cargo run -p pingora-core --example bootstrap_as_a_service -- -t   # checks, exits 0
//! ```
//!
//! Most programs call `Server::bootstrap()` on the main thread, before adding their services:
//! that is where `-t` checks the configuration and exits, and where `-u` takes the listening
//! sockets over from the process being upgraded (blocking until it sends them).
//!
//! This one calls `Server::bootstrap_as_a_service()` instead. The bootstrap is then a service
//! like the others: it runs once the server runs (after daemonizing with `-d`), it can wait
//! for services of its own (see the `graceful_upgrade` example of the `pingora` crate), and
//! services declare that they need it with `ServiceHandle::add_dependency`. Here the HTTP
//! service depends on the bootstrap (a listening service needs the socket table it prepares:
//! during an upgrade, the sockets of the old process), and a small reporter depends on the
//! HTTP service, so the log shows them start in that order:
//!
//! ```text
//! starting services in dependency order: ["BG Bootstrap Service", "hello", "BG startup report"]
//! bootstrap done
//! service hello waited 0ms for its dependencies
//! ...
//! hello: listening on 127.0.0.1:6201, 3.2 ms after main() started
//! ```

use std::time::Instant;

use async_trait::async_trait;
use clap::Parser;
use http::{header, Response};
use pingora_core::listeners::LocalAddrs;
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::Opt;
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;

/// The command line: the server's options, and where to listen.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the HTTP service listens.
    #[arg(long, default_value = "127.0.0.1:6201")]
    listen: String,
}

/// Answers every request with the process id: a plain `ServeHttp`, served by
/// `Service::new` directly.
#[derive(Debug)]
struct Hello;

#[async_trait]
impl pingora_core::apps::http_app::ServeHttp for Hello {
    async fn response(&self, _session: &mut ServerSession) -> Response<Vec<u8>> {
        let body = format!(
            "hello from pid {}: this service started after the bootstrap service\n",
            std::process::id()
        );
        Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body.into_bytes())
            .expect("a valid response")
    }
}

/// Prints where the HTTP service listens, once it does.
#[derive(Debug)]
struct StartupReport {
    addrs: LocalAddrs,
    started: Instant,
}

#[async_trait]
impl BackgroundService for StartupReport {
    async fn start(&self, _shutdown: ShutdownWatch) {
        let addrs = match self.addrs.wait().await {
            Ok(addrs) => addrs,
            Err(e) => {
                eprintln!("hello: not listening: {e}");
                return;
            }
        };
        let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
        println!(
            "hello: listening on {}, {:.1} ms after main() started",
            addrs.join(", "),
            self.started.elapsed().as_secs_f64() * 1000.0
        );
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let started = Instant::now();
    let args = Args::parse();
    let mut server = Server::new(Some(args.server)).expect("server set-up");

    // No `server.bootstrap()` here: the bootstrap becomes a service, started with the others
    // by `run_forever`. `-t` and `-u` are handled there.
    let bootstrap = server.bootstrap_as_a_service();

    let mut hello = Service::new("hello".to_string(), Hello);
    hello.add_tcp(&args.listen);
    let report = StartupReport {
        addrs: hello.local_addrs(),
        started,
    };
    let hello = server.add_service(hello);
    hello.add_dependency(&bootstrap);

    let report = server.add_service(background_service("startup report", report));
    report.add_dependency(&hello);

    server.run_forever();
}
