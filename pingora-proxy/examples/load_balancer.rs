//! The quick start: a load balancer with health checks.
//!
//! ```sh
//! cargo run --release --example load_balancer                      # local backends
//! cargo run --release --example load_balancer -- 10.0.0.1:80 10.0.0.2:80
//! curl 127.0.0.1:6188/
//! curl --http2-prior-knowledge 127.0.0.1:6188/      # h2c on the same port
//! ```
//!
//! Built with a TLS backend (`cargo run -p pingora-proxy --example load_balancer --features
//! rustls`, or `openssl`, `s2n`, `boringssl`), it also terminates TLS on port 6189, with the
//! certificate given by `--tls-cert`/`--tls-key` or else a self-signed one for `localhost`
//! generated at start: `curl -k https://127.0.0.1:6189/`.
//!
//! With no addresses it starts two local backends of its own plus one address where nothing
//! listens: the TCP health check finds that one dead before the proxy opens, so no request
//! ever goes there. The server's options (`-c conf.yaml`, `-d`, ...) work as usual:
//! `cargo run --example load_balancer -- -c conf.yaml 10.0.0.1:80`. With `PINGORA_METRICS=off`
//! in its environment every group of built-in metrics is switched off; with
//! `PINGORA_TRACING=registry` a `tracing` subscriber records every span (and writes nothing),
//! with `PINGORA_TRACING=json` it also formats each closing span as a JSON line, thrown away (for
//! `bench/proxy.sh --observe`, which measures what they cost).

mod app;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::services::background::background_service;
use pingora_load_balancing::health_check::TcpHealthCheck;
use pingora_load_balancing::selection::RoundRobin;
use pingora_load_balancing::LoadBalancer;
use pingora_proxy::http_proxy_service;

/// The command line: the server's options, then the backends.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the proxy listens.
    #[arg(long, default_value = "0.0.0.0:6188")]
    listen: String,
    /// Where the proxy listens with TLS, when a TLS backend is compiled in.
    #[arg(long, default_value = "0.0.0.0:6189")]
    tls_listen: String,
    /// PEM certificate chain for the TLS listener (default: a generated self-signed one).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<String>,
    /// PEM private key for the TLS listener.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<String>,
    /// Backend addresses (`ip:port`); none starts local backends.
    backends: Vec<String>,
}

// A faster allocator than glibc's for this workload: many small, short-lived allocations
// across threads (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
    // Every group of built-in metrics off, to measure what recording them costs
    // (`bench/proxy.sh --observe`).
    if std::env::var_os("PINGORA_METRICS").is_some_and(|v| v == "off") {
        for group in pingora_core::metrics::Group::ALL {
            pingora_core::metrics::disable(group);
        }
    }
    listen_to_spans(std::env::var("PINGORA_TRACING").ok().as_deref());
    let backends = if args.backends.is_empty() {
        let mut local: Vec<String> = app::local_origin::start_origins(&["backend-1", "backend-2"])
            .into_iter()
            .map(|a| a.to_string())
            .collect();
        // A backend that is down: a port nobody listens on.
        let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        local.push(dead.local_addr().expect("bound").to_string());
        drop(dead);
        println!(
            "backends: {} (the last one is down on purpose)",
            local.join(", ")
        );
        local
    } else {
        args.backends.clone()
    };

    let mut server = Server::new(Some(args.server)).expect("server set-up");
    server.bootstrap();

    let mut upstreams =
        LoadBalancer::<RoundRobin>::try_from_iter(&backends).expect("valid backend addresses");
    upstreams.set_health_check(TcpHealthCheck::new());
    upstreams.health_check_frequency = Some(Duration::from_secs(1));
    let health_check = background_service("health check", upstreams);
    let upstreams: Arc<LoadBalancer<RoundRobin>> = health_check.task();

    let mut lb = http_proxy_service(&server.configuration, app::load_balancer::LB(upstreams));
    // Clients may speak HTTP/1.1 or HTTP/2 with prior knowledge (h2c) on the same port.
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    lb.app_logic_mut()
        .expect("a new service has its application")
        .server_options = Some(options);
    lb.add_tcp(&args.listen);
    println!("load balancer listening on http://{}", args.listen);
    if pingora_core::tls::Backend::compiled_in().is_empty() {
        println!(
            "no TLS backend compiled in (build with --features rustls, for one): no TLS listener"
        );
    } else {
        let (cert, key) = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            _ => pingora_test_support::tls::localhost_pem_files(),
        };
        let mut tls = TlsSettings::intermediate(&cert, &key).expect("readable certificate and key");
        tls.enable_h2();
        lb.add_tls_with_settings(&args.tls_listen, None, tls);
        println!(
            "load balancer listening on https://{} ({cert})",
            args.tls_listen
        );
    }

    let health_check = server.add_service(health_check);
    let lb = server.add_service(lb);
    // The proxy opens once the first health check ran.
    lb.add_dependency(&health_check);
    server.run_forever();
}

/// Installs a `tracing` subscriber for the bench variants: `registry` keeps every span's
/// fields and writes nothing; `json` also formats each span as it closes (into a sink).
fn listen_to_spans(mode: Option<&str>) {
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::layer::SubscriberExt;
    let installed = match mode {
        Some("registry") => tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(tracing_subscriber::filter::LevelFilter::INFO),
        ),
        Some("json") => tracing::subscriber::set_global_default(
            tracing_subscriber::fmt()
                .json()
                .with_span_events(FmtSpan::CLOSE)
                .with_writer(std::io::sink)
                .finish(),
        ),
        _ => return,
    };
    installed.expect("no other subscriber yet");
}
