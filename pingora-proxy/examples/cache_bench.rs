//! The caching proxy of the end-to-end benchmark (`bench/proxy.sh --cache`): the `cache`
//! example's setup (an in-memory [`MemCache`], LRU eviction, a cache lock) in front of an
//! origin given on the command line, with the cache size as an option.
//!
//! ```sh
//! cargo run --release -p pingora-proxy --example cache_bench -- \
//!     --listen 127.0.0.1:6192 --cache-mib 256 127.0.0.1:8080
//! ```
//!
//! `--disk DIR` keeps the objects in a [`DiskCache`] in `DIR` instead (no fsync unless
//! `--fsync`, like nginx's `proxy_cache`), and `--tiered` puts a `--front-mib` [`MemCache`]
//! in front of it ([`TieredStorage`]); the LRU bound then applies to the disk store.
//!
//! Freshness follows the origin's `Cache-Control` (RFC 9111): an origin that sends none
//! gets its responses cached only as far as the heuristic rules allow.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use clap::Parser;
use pingora_cache::eviction::{lru, EvictionManager};
use pingora_cache::lock::CacheLock;
use pingora_cache::trace::SpanHandle;
use pingora_cache::{
    DiskCache, DiskCacheOptions, FsyncPolicy, MemCache, PurgeType, StorageRef, TieredOptions,
    TieredStorage,
};
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
    /// Keep the objects in a disk store in this directory instead of in memory.
    #[arg(long, value_name = "DIR")]
    disk: Option<PathBuf>,
    /// With `--disk`: fsync each object file (and its directory) when it is stored.
    #[arg(long, requires = "disk")]
    fsync: bool,
    /// With `--disk`: a memory tier in front of the disk store.
    #[arg(long, requires = "disk")]
    tiered: bool,
    /// The most MiB of objects the memory tier of `--tiered` keeps.
    #[arg(long, default_value_t = 64)]
    front_mib: usize,
    /// The origin (`ip:port`).
    origin: SocketAddr,
}

// The allocator of the load_balancer example, so both proxies of the benchmark compare alike.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The cache's parts, set once in `main`: storage methods take `&'static self`.
struct Cache {
    storage: StorageRef,
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
            cache.storage,
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
    // The second figure only sizes the LRU's tables up front.
    let eviction = lru::Manager::with_capacity(bytes, 1 << 16);
    // Headroom above the eviction limit for writes in progress.
    let storage: StorageRef = match &args.disk {
        Some(dir) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to open the disk cache");
            runtime.block_on(open_disk(dir, &args, bytes + (bytes >> 2), &eviction))
        }
        None => Box::leak(Box::new(MemCache::with_capacity_bytes(
            bytes + (bytes >> 2),
        ))),
    };
    let cache = CACHE.get_or_init(|| Cache {
        storage,
        eviction,
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

/// Opens the disk store in `dir` holding up to `max_bytes`, behind a memory tier with
/// `--tiered`; objects already there are admitted into `eviction` (those beyond its bound
/// purged). The stores are leaked: storages are used as `&'static`.
async fn open_disk(
    dir: &Path,
    args: &Args,
    max_bytes: usize,
    eviction: &lru::Manager<16>,
) -> StorageRef {
    let fsync = if args.fsync {
        FsyncPolicy::Always
    } else {
        FsyncPolicy::Never
    };
    let options = DiskCacheOptions::default()
        .max_bytes(max_bytes)
        .fsync(fsync);
    let (disk, _) = DiskCache::open(dir, options)
        .await
        .expect("open the disk cache");
    let disk: &'static DiskCache = Box::leak(Box::new(disk));
    let storage: StorageRef = if args.tiered {
        let front_bytes = args.front_mib << 20;
        let front = MemCache::with_capacity_bytes(front_bytes + (front_bytes >> 2));
        let front: &'static MemCache = Box::leak(Box::new(front));
        let options = TieredOptions::new(front_bytes);
        Box::leak(Box::new(TieredStorage::new(front, disk, options)))
    } else {
        disk
    };
    for (key, size) in disk.entries() {
        for victim in eviction.admit(key, size, SystemTime::now()) {
            let span = SpanHandle::default();
            let _ = storage.purge(&victim, PurgeType::Eviction, &span).await;
        }
    }
    storage
}
