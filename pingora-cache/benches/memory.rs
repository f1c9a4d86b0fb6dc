//! Heap bytes per cached object: 1 KiB responses with a 10-field head stored through
//! [`HttpCache`] into a [`MemCache`] with LRU eviction and a cache lock (the proxy example's
//! setup), measured by a counting global allocator, next to the weight `MemCache` charges
//! for them.
//!
//! Two ways to hand the body over: as its own exact-size buffer, and as a slice of a 4 KiB
//! read buffer also holding the response head (what an HTTP/1 reader that splits its read
//! buffer hands out when head and body arrive in one read): the slice keeps the whole
//! buffer alive for as long as the object is cached.
//!
//! `cargo bench -p pingora-cache --bench memory` (a few seconds).

use pingora_test_support::leaks::{live_heap, CountingAlloc};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use pingora_cache::eviction::lru;
use pingora_cache::lock::CacheLock;
use pingora_cache::{CacheKey, CacheMeta, HttpCache, MemCache};
use pingora_http::ResponseHeader;

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Heap bytes in use now.
fn in_use() -> isize {
    live_heap().map_or(0, |bytes| bytes as isize)
}

const OBJECTS: usize = 20_000;
const BODY: usize = 1024;

fn meta() -> CacheMeta {
    let mut head = ResponseHeader::build(200, Some(10)).expect("a head");
    for (name, value) in [
        ("Server", "nginx/1.22.1"),
        ("Date", "Mon, 07 Dec 2026 01:57:28 GMT"),
        ("Content-Type", "text/plain"),
        ("Content-Length", "1024"),
        ("Last-Modified", "Mon, 07 Dec 2026 01:57:26 GMT"),
        ("Connection", "keep-alive"),
        ("ETag", "\"6b161286-400\""),
        ("Cache-Control", "public, max-age=600"),
        ("Accept-Ranges", "bytes"),
        ("Vary", "Accept-Encoding"),
    ] {
        head.append_header(name, value).expect("a valid field");
    }
    let now = SystemTime::now();
    CacheMeta::new(now + Duration::from_secs(3600), now, 0, 0, head)
}

/// The body as its own buffer, or as a slice of a 4 KiB buffer holding a head before it.
fn body(shared_read_buffer: bool) -> Bytes {
    if !shared_read_buffer {
        return Bytes::from(vec![b'x'; BODY]);
    }
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(&[b'h'; 300]);
    buf.extend_from_slice(&[b'x'; BODY]);
    let _head = buf.split_to(300);
    buf.split_to(BODY).freeze()
}

/// Stores `OBJECTS` objects; returns (heap bytes per object, weight per object).
async fn fill(shared_read_buffer: bool) -> (f64, f64) {
    let before = in_use();
    let storage: &'static MemCache = Box::leak(Box::new(MemCache::with_capacity_bytes(1 << 30)));
    let eviction: &'static lru::Manager<16> =
        Box::leak(Box::new(lru::Manager::with_capacity(1 << 30, OBJECTS)));
    let lock: &'static CacheLock = Box::leak(Box::new(CacheLock::new(Duration::from_secs(10))));
    for i in 0..OBJECTS {
        let mut cache = HttpCache::new();
        cache.enable(storage, Some(eviction), None, Some(lock), None);
        cache.set_cache_key(CacheKey::new("", format!("/1k?fill={i}"), ""));
        assert!(cache.cache_lookup().await.expect("a lookup").is_none());
        cache.cache_miss();
        cache.set_cache_meta(meta());
        cache.set_miss_handler().await.expect("a miss handler");
        let handler = cache.miss_handler().expect("a miss handler");
        handler
            .write_body(body(shared_read_buffer), true)
            .await
            .expect("written");
        cache.finish_miss_handler().await.expect("stored");
    }
    assert_eq!(storage.len(), OBJECTS);
    let heap = (in_use() - before) as f64 / OBJECTS as f64;
    (heap, storage.used_bytes() as f64 / OBJECTS as f64)
}

/// Heap bytes of one `CacheMeta` as built by `meta()`, of which its response head.
fn meta_bytes() -> (isize, isize) {
    let before = in_use();
    let meta = meta();
    let with_meta = in_use() - before;
    let before = in_use();
    let head = meta.response_header_copy();
    let head_bytes = in_use() - before;
    drop((meta, head));
    (with_meta, head_bytes)
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    println!("{OBJECTS} objects of {BODY} bytes, 10-field head:");
    println!("| body handed over as | heap bytes per object | MemCache weight per object |");
    println!("|---|---:|---:|");
    for (label, shared) in [
        ("its own buffer", false),
        ("a slice of a 4 KiB read buffer", true),
    ] {
        let (heap, weight) = rt.block_on(fill(shared));
        println!("| {label} | {heap:.0} | {weight:.0} |");
    }
    let (meta, head) = meta_bytes();
    println!("\nof which one CacheMeta: {meta} bytes (a copy of its ResponseHeader: {head})");
}
