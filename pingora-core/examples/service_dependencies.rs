//! Services that start only once the services they depend on are ready.
//!
//! ```sh
//! cargo run -p pingora-core --example service_dependencies
//! curl http://127.0.0.1:6202/        # refused until the catalog is loaded, then served
//! ```
//!
//! Three services, added in any order:
//!
//! * `catalog` loads a product catalog (it pretends to, for `--catalog-ms`, 1500 by default).
//!   It implements `ServiceWithDependents` to decide when it is ready: it calls
//!   `ServiceReadyNotifier::notify_ready` once the catalog is loaded, then keeps running.
//! * `BG price cache` is a background service that warms a cache for `--cache-ms` (500 by
//!   default). `BackgroundService::start_with_ready_notifier` lets it signal readiness the
//!   same way.
//! * `shop` is an HTTP service (a plain `ServeHttp`) that answers from the catalog and the
//!   cache. `shop.add_dependencies([&catalog, &cache])` makes the server start it only once
//!   both are ready, so it never sees them empty; a listening service counts as ready once
//!   its sockets are bound.
//!
//! A plain `Service` (like `announcer` below, which prints where the shop listens) is ready
//! as soon as it starts. Dependencies are checked when declared: one that would close a
//! cycle is refused (`try_add_dependency` returns the error; `add_dependency` logs it).
//!
//! The output shows the order:
//!
//! ```text
//! [   0 ms] catalog: loading
//! [   0 ms] price cache: warming up
//! [ 501 ms] price cache: ready
//! [1501 ms] catalog: ready (3 products)
//! [1502 ms] shop: serving on 127.0.0.1:6202
//! ```

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use clap::Parser;
use http::{header, Response, StatusCode};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::listeners::{ListenFds, LocalAddrs};
use pingora_core::protocols::http::ServerSession;
use pingora_core::server::configuration::Opt;
use pingora_core::server::{Server, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service as ListeningService;
use pingora_core::services::{Service, ServiceReadyNotifier, ServiceWithDependents};

/// The command line: the server's options, where the shop listens and how slow the
/// dependencies are.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the shop listens.
    #[arg(long, default_value = "127.0.0.1:6202")]
    listen: String,
    /// How long loading the catalog takes, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    catalog_ms: u64,
    /// How long warming the price cache takes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    cache_ms: u64,
}

/// Prints `message` with the time since the program started.
fn say(started: Instant, message: &str) {
    println!("[{:>4} ms] {message}", started.elapsed().as_millis());
}

/// What the services share: filled by the dependencies, read by the shop.
#[derive(Debug)]
struct Shared {
    started: Instant,
    /// Product names, set once by the catalog.
    catalog: OnceLock<Vec<&'static str>>,
    /// Prices in cents, in the catalog's order, set once by the price cache.
    prices: OnceLock<Vec<u32>>,
}

/// Loads the catalog, then tells its dependents it is ready.
#[derive(Debug)]
struct Catalog {
    shared: Arc<Shared>,
    load_time: Duration,
}

#[async_trait]
impl ServiceWithDependents for Catalog {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
        ready_notifier: ServiceReadyNotifier,
    ) {
        say(self.shared.started, "catalog: loading");
        // Stands for reading a database or a file.
        tokio::time::sleep(self.load_time).await;
        let products = vec!["kettle", "teapot", "mug"];
        let count = products.len();
        let _ = self.shared.catalog.set(products);
        say(
            self.shared.started,
            &format!("catalog: ready ({count} products)"),
        );
        // Dependents may start from here on. Dropping the notifier would say the same: a
        // service that fails before this point does not block its dependents forever.
        ready_notifier.notify_ready();
        // A real catalog would now watch for changes until the server shuts down.
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    }

    fn name(&self) -> &str {
        "catalog"
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}

/// Warms the price cache, then tells its dependents it is ready.
#[derive(Debug)]
struct PriceCache {
    shared: Arc<Shared>,
    warm_up: Duration,
}

#[async_trait]
impl BackgroundService for PriceCache {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready_notifier: ServiceReadyNotifier,
    ) {
        say(self.shared.started, "price cache: warming up");
        tokio::time::sleep(self.warm_up).await;
        let _ = self.shared.prices.set(vec![2500, 1800, 650]);
        say(self.shared.started, "price cache: ready");
        ready_notifier.notify_ready();
        let _ = shutdown.wait_for(|stopping| *stopping).await;
    }
}

/// Lists the products with their prices. Its dependencies guarantee both are loaded.
#[derive(Debug)]
struct Shop {
    shared: Arc<Shared>,
}

#[async_trait]
impl ServeHttp for Shop {
    async fn response(&self, _session: &mut ServerSession) -> Response<Vec<u8>> {
        let (Some(catalog), Some(prices)) = (self.shared.catalog.get(), self.shared.prices.get())
        else {
            // Unreachable with the dependencies declared in `main`.
            return Response::builder()
                .status(StatusCode::SERVICE_UNAVAILABLE)
                .body(b"not ready\n".to_vec())
                .expect("a valid response");
        };
        let mut body = String::new();
        for (product, cents) in catalog.iter().zip(prices) {
            body.push_str(&format!("{product}: {}.{:02}\n", cents / 100, cents % 100));
        }
        Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .body(body.into_bytes())
            .expect("a valid response")
    }
}

/// A plain `Service`: ready as soon as it starts. Prints where the shop listens.
#[derive(Debug)]
struct Announcer {
    shared: Arc<Shared>,
    addrs: LocalAddrs,
}

#[async_trait]
impl Service for Announcer {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        _shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        match self.addrs.wait().await {
            Ok(addrs) => {
                let addrs: Vec<String> = addrs.iter().map(ToString::to_string).collect();
                say(
                    self.shared.started,
                    &format!("shop: serving on {}", addrs.join(", ")),
                );
            }
            Err(e) => say(self.shared.started, &format!("shop: not listening: {e}")),
        }
    }

    fn name(&self) -> &str {
        "announcer"
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }
}

fn main() {
    env_logger::init();
    let args = Args::parse();
    let mut server = Server::new(Some(args.server)).expect("server set-up");
    server.bootstrap();

    let shared = Arc::new(Shared {
        started: Instant::now(),
        catalog: OnceLock::new(),
        prices: OnceLock::new(),
    });

    // Added dependents first, to show that the order of `add_service` does not matter.
    let mut shop = ListeningService::new(
        "shop".to_string(),
        Shop {
            shared: Arc::clone(&shared),
        },
    );
    shop.add_tcp(&args.listen);
    let announcer = Announcer {
        shared: Arc::clone(&shared),
        addrs: shop.local_addrs(),
    };
    let shop = server.add_service(shop);
    let announcer = server.add_service(announcer);
    let catalog = server.add_service(Catalog {
        shared: Arc::clone(&shared),
        load_time: Duration::from_millis(args.catalog_ms),
    });
    let cache = server.add_service(background_service(
        "price cache",
        PriceCache {
            shared,
            warm_up: Duration::from_millis(args.cache_ms),
        },
    ));

    shop.add_dependencies([&catalog, &cache]);
    announcer.add_dependency(&shop);
    // A cycle is refused: the catalog cannot wait for the shop that waits for it.
    if let Err(e) = catalog.try_add_dependency(&shop) {
        println!("refused as expected: {e}");
    }

    server.run_forever();
}
