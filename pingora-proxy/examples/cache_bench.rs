//! The caching proxy of the end-to-end benchmark (`bench/proxy.sh --cache`): the `cache`
//! example's setup (an in-memory [`MemCache`], LRU eviction, a cache lock) in front of an
//! origin given on the command line, with the cache size as an option.
//!
//! ```sh
//! cargo run --release -p pingora-proxy --example cache_bench -- \
//!     --listen 127.0.0.1:6192 --cache-mib 256 127.0.0.1:8080
//! ```
//!
//! Freshness follows the origin's `Cache-Control` (RFC 9111): an origin that sends none
//! gets its responses cached only as far as the heuristic rules allow.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use clap::Parser;
use pingora_cache::eviction::lru;
use pingora_cache::lock::CacheLock;
use pingora_cache::MemCache;
use pingora_core::server::configuration::Opt;
use pingora_core::server::Server;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{http_proxy_service, ProxyHttp, Session};

/// The command line: the server's options, the listening address, the cache size, the origin.
#[derive(Parser, Debug)]
struct Args {
    #[command(flatten)]
    server: Opt,
    /// Where the proxy listens.
    #[arg(long, default_value = "127.0.0.1:6192")]
    listen: String,
    /// The most MiB of objects the cache keeps (the eviction limit).
    #[arg(long, default_value_t = 256)]
    cache_mib: usize,
    /// The origin (`ip:port`).
    origin: SocketAddr,
}

// The allocator of the load_balancer example, so both proxies of the benchmark compare alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The cache's parts, set once in `main`: storage methods take `&'static self`.
struct Cache {
    storage: MemCache,
    eviction: lru::Manager<16>,
    lock: CacheLock,
}

static CACHE: OnceLock<Cache> = OnceLock::new();

/// A proxy that caches everything the HTTP rules allow, up to 8 MiB an object.
struct BenchCache {
    origin: SocketAddr,
    cache: &'static Cache,
}

#[async_trait]
impl ProxyHttp for BenchCache {
    type CTX = ();
    fn new_ctx(&self) {}

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        let cache = self.cache;
        session.cache.enable(
            &cache.storage,
            Some(&cache.eviction),
            None,
            Some(&cache.lock),
            None,
        );
        session.cache.set_max_file_size_bytes(8 << 20);
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("error")).init();
    let args = Args::parse();
    let bytes = args.cache_mib << 20;
    let cache = CACHE.get_or_init(|| Cache {
        // Headroom above the eviction limit for writes in progress.
        storage: MemCache::with_capacity_bytes(bytes + (bytes >> 2)),
        // The second figure only sizes the LRU's tables up front.
        eviction: lru::Manager::with_capacity(bytes, 1 << 16),
        lock: CacheLock::new(Duration::from_secs(10)),
    });

    let mut server = Server::new(Some(args.server)).expect("server set-up");
    server.bootstrap();
    let app = BenchCache {
        origin: args.origin,
        cache,
    };
    let mut proxy = http_proxy_service(&server.configuration, app);
    proxy.add_tcp(&args.listen);
    server.add_service(proxy);
    server.run_forever();
}
