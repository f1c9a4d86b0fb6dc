//! The pieces of a cache hit, each next to a simpler alternative measured in the same run.
//!
//! - `hit`: a whole hit of a cached 1 KiB / 100 KiB object through [`HttpCache`] (enable,
//!   key, lookup, found, read the body, finish) with the proxy example's setup (MemCache, LRU
//!   eviction, cache lock); the same through the [`Storage`] alone; and a `moka::sync::Cache`
//!   of whole responses keyed by the URL path, as an application would write it.
//! - `meta`: [`CacheMeta`] serialize / deserialize of a 10-field response head, against
//!   cloning the head (what an in-memory store does instead).
//! - `key`: building a [`CacheKey`] and its 128-bit BLAKE2b hash, against std's SipHash of
//!   the same bytes.
//!
//! `cargo bench -p pingora-cache --bench hit_path` (about 30 s with its short defaults).

use std::hash::{BuildHasher, RandomState};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pingora_cache::eviction::lru;
use pingora_cache::key::CacheHashKey;
use pingora_cache::lock::CacheLock;
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta, HitStatus, HttpCache, MemCache, Storage};
use pingora_http::ResponseHeader;
use tokio::runtime::Runtime;

/// The body sizes, with their URL paths.
const SIZES: [(&str, usize); 2] = [("/1k", 1024), ("/100k", 100 * 1024)];

/// How the proxy hands bodies to the storage: reads of up to 64 KiB.
const CHUNK: usize = 64 * 1024;

struct Setup {
    storage: &'static MemCache,
    eviction: &'static lru::Manager<16>,
    lock: &'static CacheLock,
}

fn setup() -> Setup {
    Setup {
        storage: Box::leak(Box::new(MemCache::with_capacity_bytes(64 << 20))),
        eviction: Box::leak(Box::new(lru::Manager::with_capacity(48 << 20, 1 << 10))),
        lock: Box::leak(Box::new(CacheLock::new(Duration::from_secs(10)))),
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// The response head of a typical static file, 10 fields.
fn response_head(len: usize) -> ResponseHeader {
    let mut head = ResponseHeader::build(200, Some(10)).expect("a head");
    for (name, value) in [
        ("Server", "nginx/1.22.1"),
        ("Date", "Mon, 07 Dec 2026 01:57:28 GMT"),
        ("Content-Type", "text/plain"),
        ("Content-Length", &len.to_string()),
        ("Last-Modified", "Mon, 07 Dec 2026 01:57:26 GMT"),
        ("Connection", "keep-alive"),
        ("ETag", "\"6b161286-400\""),
        ("Cache-Control", "public, max-age=600"),
        ("Accept-Ranges", "bytes"),
        ("Vary", "Accept-Encoding"),
    ] {
        head.append_header(name, value).expect("a valid field");
    }
    head
}

fn meta(len: usize) -> CacheMeta {
    let now = SystemTime::now();
    CacheMeta::new(
        now + Duration::from_secs(3600),
        now,
        0,
        0,
        response_head(len),
    )
}

fn new_cache(s: &Setup, path: &str) -> HttpCache {
    let mut cache = HttpCache::new();
    cache.enable(s.storage, Some(s.eviction), None, Some(s.lock), None);
    cache.set_cache_key(CacheKey::new("", path, ""));
    cache
}

/// Stores `len` bytes under `path` the way the proxy does on a miss.
async fn admit(s: &Setup, path: &str, len: usize) {
    let mut cache = new_cache(s, path);
    assert!(cache.cache_lookup().await.expect("a lookup").is_none());
    cache.cache_miss();
    cache.set_cache_meta(meta(len));
    cache.set_miss_handler().await.expect("a miss handler");
    let body = Bytes::from(vec![b'x'; len]);
    let handler = cache.miss_handler().expect("a miss handler");
    let mut at = 0;
    while at < len {
        let end = (at + CHUNK).min(len);
        handler
            .write_body(body.slice(at..end), end == len)
            .await
            .expect("written");
        at = end;
    }
    cache.finish_miss_handler().await.expect("stored");
    cache.release_write_lock(pingora_cache::NoCacheReason::Custom("bench"));
}

/// One hit through `HttpCache`; returns the body length.
async fn http_cache_hit(s: &Setup, path: &str) -> usize {
    let mut cache = new_cache(s, path);
    let (meta, handler) = cache
        .cache_lookup()
        .await
        .expect("a lookup")
        .expect("a hit");
    cache.cache_found(meta, handler, HitStatus::Fresh);
    black_box(cache.cache_meta().response_header());
    let mut len = 0;
    while let Some(chunk) = cache.hit_handler().read_body().await.expect("a read") {
        len += black_box(chunk).len();
    }
    cache.finish_hit_handler().await.expect("finished");
    len
}

/// One hit through the storage alone.
async fn storage_hit(s: &Setup, path: &str) -> usize {
    let key = CacheKey::new("", path, "");
    let trace = SpanHandle::default();
    let (meta, mut handler) = s
        .storage
        .lookup(&key, &trace)
        .await
        .expect("a lookup")
        .expect("a hit");
    black_box(meta.response_header());
    let mut len = 0;
    while let Some(chunk) = handler.read_body().await.expect("a read") {
        len += black_box(chunk).len();
    }
    handler
        .finish(s.storage, &key, &trace)
        .await
        .expect("finished");
    len
}

/// A cached response in the moka baseline.
struct Response {
    head: ResponseHeader,
    body: Vec<Bytes>,
}

fn moka_hit(cache: &moka::sync::Cache<String, Arc<Response>>, path: &str) -> usize {
    let found = cache.get(path).expect("a hit");
    black_box(&found.head);
    found.body.iter().map(|c| black_box(c.clone()).len()).sum()
}

fn bench_hit(c: &mut Criterion) {
    let rt = runtime();
    let s = setup();
    let moka = moka::sync::Cache::new(1024);
    for (path, len) in SIZES {
        rt.block_on(admit(&s, path, len));
        assert_eq!(rt.block_on(http_cache_hit(&s, path)), len);
        let body = Bytes::from(vec![b'x'; len]);
        let chunks = (0..len)
            .step_by(CHUNK)
            .map(|at| body.slice(at..(at + CHUNK).min(len)))
            .collect();
        moka.insert(
            path.to_string(),
            Arc::new(Response {
                head: response_head(len),
                body: chunks,
            }),
        );
    }

    let mut group = c.benchmark_group("hit");
    group.throughput(Throughput::Elements(1));
    for (path, len) in SIZES {
        let size = &path[1..];
        group.bench_function(BenchmarkId::new("HttpCache", size), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        assert_eq!(http_cache_hit(&s, black_box(path)).await, len);
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function(BenchmarkId::new("MemCache storage alone", size), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        assert_eq!(storage_hit(&s, black_box(path)).await, len);
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function(BenchmarkId::new("moka by path (baseline)", size), |b| {
            b.iter(|| assert_eq!(moka_hit(&moka, black_box(path)), len))
        });
    }
    group.finish();
}

fn bench_meta(c: &mut Criterion) {
    let meta = meta(1024);
    let (internal, header) = meta.serialize().expect("serialized");
    let mut group = c.benchmark_group("meta");
    group.bench_function("CacheMeta::serialize", |b| {
        b.iter(|| black_box(&meta).serialize().expect("serialized"))
    });
    group.bench_function("CacheMeta::deserialize", |b| {
        b.iter(|| {
            CacheMeta::deserialize(black_box(&internal), black_box(&header)).expect("deserialized")
        })
    });
    group.bench_function("ResponseHeader clone (baseline)", |b| {
        b.iter(|| black_box(&meta).response_header_copy())
    });
    group.finish();
}

fn bench_key(c: &mut Criterion) {
    let path = "/static/images/logo-2026.png?v=3";
    let sip = RandomState::new();
    let mut group = c.benchmark_group("key");
    group.bench_function("CacheKey::new + primary_bin (BLAKE2b-128)", |b| {
        b.iter(|| CacheKey::new("", black_box(path), "").primary_bin())
    });
    let key = CacheKey::new("", path, "");
    group.bench_function("primary_bin of a built key", |b| {
        b.iter(|| black_box(&key).primary_bin())
    });
    group.bench_function("to_compact", |b| b.iter(|| black_box(&key).to_compact()));
    group.bench_function("SipHash-1-3 of the same bytes (baseline)", |b| {
        b.iter(|| sip.hash_one(black_box(path)))
    });
    group.finish();
}

criterion_group!(
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    targets = bench_hit, bench_meta, bench_key
);
criterion_main!(benches);
