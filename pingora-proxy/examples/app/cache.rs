//! A caching proxy in front of a local origin whose responses say how long they may be
//! cached.
//!
//! The cache: a 64 MiB in-memory store ([`MemCache`]) evicting least recently used objects
//! ([`lru::Manager`]), a cache lock so that concurrent misses of one URL make a single origin
//! request, objects up to 8 MiB. Everything else is the default policy (RFC 9111).
//!
//! Instead of memory, the objects may live on disk ([`open_disk`]): a [`DiskCache`] that
//! survives restarts, alone or behind a memory tier ([`TieredStorage`]). The same eviction
//! manager bounds it, refilled from the objects found on disk at start.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{header, Response};
use pingora_cache::eviction::{lru, EvictionManager};
use pingora_cache::lock::CacheLock;
use pingora_cache::trace::SpanHandle;
use pingora_cache::{
    DiskCache, DiskCacheOptions, MemCache, PurgeType, StorageRef, TieredOptions, TieredStorage,
};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::Result;
use pingora_proxy::{ProxyHttp, Session};

/// The most bytes the cache keeps.
const CACHE_BYTES: usize = 64 << 20;
/// The most bytes the memory tier in front of a disk store keeps.
const FRONT_BYTES: usize = 16 << 20;

static MEMORY: LazyLock<MemCache> =
    LazyLock::new(|| MemCache::with_capacity_bytes(CACHE_BYTES + (CACHE_BYTES >> 2)));
static EVICTION: LazyLock<lru::Manager<16>> =
    LazyLock::new(|| lru::Manager::with_capacity(CACHE_BYTES, 1 << 16));
static LOCK: LazyLock<CacheLock> = LazyLock::new(|| CacheLock::new(Duration::from_secs(10)));

/// The caching proxy.
pub struct CachingProxy {
    /// Where misses go.
    pub origin: SocketAddr,
    /// Where objects are kept: [`memory`] or what [`open_disk`] returned; while it is not set
    /// (a new process at a graceful upgrade waits for the old one to release the disk
    /// cache), requests are proxied without the cache.
    pub storage: &'static OnceLock<StorageRef>,
}

impl std::fmt::Debug for CachingProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachingProxy")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// The in-memory store.
pub fn memory() -> &'static OnceLock<StorageRef> {
    static STORAGE: OnceLock<StorageRef> = OnceLock::new();
    STORAGE.get_or_init(|| &*MEMORY);
    &STORAGE
}

/// Opens the disk store in `dir` (with a memory tier in front if `tiered`), prints what it
/// found there, and admits those objects into the eviction manager, so that the size bound
/// holds after a restart (objects beyond it are purged).
///
/// Needs a tokio runtime. The stores are leaked: storages are used as `&'static`.
///
/// # Errors
///
/// When the directory cannot be created or listed.
pub async fn open_disk(dir: &Path, tiered: bool) -> Result<(StorageRef, &'static DiskCache)> {
    open_disk_within(dir, tiered, Duration::ZERO).await
}

/// [`open_disk`], waiting up to `max_wait` for another process (the old one of a graceful
/// upgrade) to release the directory.
///
/// # Errors
///
/// As [`open_disk`], and when the directory is still held after `max_wait`.
pub async fn open_disk_within(
    dir: &Path,
    tiered: bool,
    max_wait: Duration,
) -> Result<(StorageRef, &'static DiskCache)> {
    let options = DiskCacheOptions::default().max_bytes(CACHE_BYTES + (CACHE_BYTES >> 2));
    let (disk, stats) = DiskCache::open_when_unlocked(dir, options, max_wait).await?;
    eprintln!(
        "disk cache {}: kept {} objects ({} bytes), discarded {}, temporary files removed {}",
        dir.display(),
        stats.kept,
        stats.bytes,
        stats.discarded,
        stats.temp_removed
    );
    let disk: &'static DiskCache = Box::leak(Box::new(disk));
    let storage: StorageRef = if tiered {
        let front = MemCache::with_capacity_bytes(FRONT_BYTES + (FRONT_BYTES >> 2));
        let front: &'static MemCache = Box::leak(Box::new(front));
        let options = TieredOptions::new(FRONT_BYTES);
        Box::leak(Box::new(TieredStorage::new(front, disk, options)))
    } else {
        disk
    };
    // The eviction order saved by the previous process (see `save_eviction_state`), then the
    // objects it does not know (written after it was saved) at the head.
    let state = eviction_state_dir(dir);
    if state.exists() {
        match EVICTION.load(&state.to_string_lossy()).await {
            Ok(()) => eprintln!(
                "eviction order restored: {} objects",
                EVICTION.total_items()
            ),
            Err(e) => eprintln!("eviction order not restored: {e}"),
        }
    }
    let mut evicted = 0;
    let unknown = disk
        .entries()
        .into_iter()
        .filter(|(key, _)| !EVICTION.peek(key));
    for (key, size) in unknown {
        for victim in EVICTION.admit(key, size, SystemTime::now()) {
            let span = SpanHandle::default();
            if storage.purge(&victim, PurgeType::Eviction, &span).await? {
                evicted += 1;
            }
        }
    }
    if evicted > 0 {
        eprintln!("disk cache: purged {evicted} objects beyond the size bound");
    }
    Ok((storage, disk))
}

/// Where the eviction manager's order is saved, next to the disk store's objects.
fn eviction_state_dir(dir: &Path) -> std::path::PathBuf {
    dir.join("eviction")
}

/// Saves the eviction manager's order for the next process on `dir` (called before the store
/// is handed over).
pub async fn save_eviction_state(dir: &Path) {
    let state = eviction_state_dir(dir);
    if let Err(e) = EVICTION.save(&state.to_string_lossy()).await {
        eprintln!("eviction order not saved: {e}");
    }
}

#[async_trait]
impl ProxyHttp for CachingProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    fn request_cache_filter(&self, session: &mut Session, _ctx: &mut ()) -> Result<()> {
        let Some(storage) = self.storage.get() else {
            return Ok(());
        };
        session
            .cache
            .enable(*storage, Some(&*EVICTION), None, Some(&*LOCK), None);
        session.cache.set_max_file_size_bytes(8 << 20);
        Ok(())
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}

/// The origin: `/max-age/N` may be cached N seconds, `/swr` one second and then served stale
/// for a minute while it is revalidated in the background, `/private` may not be cached by a
/// shared cache, anything else for 10 seconds. Each body counts the origin's responses, so a
/// cached one is easy to tell; the `ETag` is the path, and a request whose `If-None-Match`
/// holds it gets a 304.
#[derive(Debug, Default)]
pub struct CacheableOrigin {
    served: AtomicUsize,
}

#[async_trait]
impl ServeHttp for CacheableOrigin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let n = self.served.fetch_add(1, Ordering::Relaxed) + 1;
        let req = session.req_header();
        let path = req.uri.path().to_string();
        let etag = format!("\"{path}\"");
        let cache_control = if path == "/private" {
            "private".to_string()
        } else if path == "/swr" {
            "public, max-age=1, stale-while-revalidate=60".to_string()
        } else {
            let max_age = path
                .strip_prefix("/max-age/")
                .and_then(|n| n.parse::<u32>().ok())
                .unwrap_or(10);
            format!("public, max-age={max_age}")
        };
        let not_modified = req
            .headers
            .get(header::IF_NONE_MATCH)
            .is_some_and(|v| v.as_bytes() == etag.as_bytes());
        let response = Response::builder()
            .header(header::CACHE_CONTROL, cache_control)
            .header(header::ETAG, etag)
            .header("x-origin-response", n.to_string());
        if not_modified {
            return response
                .status(304)
                .body(Vec::new())
                .expect("valid response");
        }
        response
            .header(header::CONTENT_TYPE, "text/plain")
            .body(format!("{path}: origin response #{n}\n").into_bytes())
            .expect("valid response")
    }
}

/// A listening service running a [`CacheableOrigin`] on `addr`.
pub fn origin_service(
    addr: &str,
) -> pingora_core::services::listening::Service<
    pingora_core::apps::http_app::HttpServer<CacheableOrigin>,
> {
    let app = pingora_core::apps::http_app::HttpServer::new_app(CacheableOrigin::default());
    let mut service =
        pingora_core::services::listening::Service::new("cacheable origin".to_string(), app);
    service.add_tcp(addr);
    service
}
