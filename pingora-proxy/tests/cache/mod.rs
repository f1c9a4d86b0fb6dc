//! The harness of the cache tests: a proxy app with the cache on ([`CacheProxy`]) in front of
//! a [`ScriptedOrigin`], both on the test's runtime, and client helpers that read what the
//! cache says about a response (`Cache-Status`, `Age`) and HTTP/1 framing exactly.
//!
//! Each test starts its own [`Cached`]: a fresh origin, a fresh proxy and a fresh, leaked
//! `MemCache` and cache lock, so that tests share nothing and run in parallel.

// The harness's items are `pub` for the section modules of this one test binary.
#![allow(unreachable_pub)]

mod freshness;
mod headers;
mod herd;
mod invalidation;
mod ranges;
mod stale;
mod store;
mod validation;
mod vary;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora_core::apps::HttpServerOptions;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, Result};
use pingora_proxy::{ProxyHttp, Session};
use pingora_test_support::proxy::ProxyUnderTest;
use pingora_test_support::raw::{Head, Message};
use pingora_test_support::scripted::ScriptedOrigin;
use pingora_test_support::{within, RawConn, TestService};

use pingora_cache::{
    key::CacheKey,
    lock::{CacheKeyLock, CacheLock, LockStatus, Locked, WritePermit},
    predictor::{CacheablePredictor, Predictor},
    storage::{PurgeType, Storage},
    CacheOptionOverrides, HttpCache, MemCache,
};

pub use pingora_test_support::scripted::{Cut, Gate, Reply};

/// The field that makes a request a purge when the proxy allows purges (its value is the
/// "credential" the predicate checks).
pub const PURGE_FIELD: &str = "x-purge-token";
/// The credential [`PURGE_FIELD`] must carry.
pub const PURGE_TOKEN: &str = "let-me-in";
/// A request with this field does not turn the cache on (`request_cache_filter` leaves it).
pub const CACHE_OFF_FIELD: &str = "x-cache-off";

// === the proxy app ===

/// How a [`CacheProxy`] is set up.
#[derive(Clone, Default)]
pub struct Knobs {
    /// `HttpCache::set_max_file_size_bytes`.
    pub max_file_size: Option<usize>,
    /// Requests with [`PURGE_FIELD`]: [`PURGE_TOKEN`] are purges.
    pub purge: bool,
    /// The cache lock's per-request wait timeout (`CacheOptionOverrides::wait_timeout`).
    pub wait_timeout: Option<Duration>,
    /// The cache lock's age timeout (how long a writer may hold it); 5 s when `None`.
    pub lock_age: Option<Duration>,
    /// Remember uncacheable keys (a `Predictor`).
    pub predictor: bool,
    /// Replaces `should_serve_stale`.
    pub serve_stale: Option<fn(Option<&Error>) -> bool>,
    /// The storage fails every purge.
    pub failing_purge: bool,
    /// Serve h2c as well as HTTP/1.
    pub h2c: bool,
    /// The upstream read timeout.
    pub read_timeout: Option<Duration>,
    /// A CDN cache: `CDN-Cache-Control` is its targeted field (RFC 9213).
    pub cdn: bool,
    /// Replaces the cache's name in `Cache-Status`; `Some(None)` sends no field.
    pub cache_status_name: Option<Option<&'static str>>,
    /// Ignore the client's `Cache-Control`.
    pub ignore_request_directives: bool,
    /// `cache_vary_filter` declines to key on anything (returns `None`).
    pub no_variance: bool,
}

/// Proxies everything to one (switchable) upstream with the cache on: a `MemCache` and a
/// `CacheLock` of its own (leaked: the cache API takes `&'static`), and the default policy
/// of every cache callback but those the [`Knobs`] replace.
pub struct CacheProxy {
    upstream: Arc<Mutex<SocketAddr>>,
    knobs: Knobs,
    storage: &'static (dyn Storage + Sync),
    lock: &'static CountingLock,
    predictor: Option<&'static (dyn CacheablePredictor + Sync)>,
    overrides: CacheOptionOverrides,
}

impl CacheProxy {
    fn new(upstream: Arc<Mutex<SocketAddr>>, knobs: Knobs) -> CacheProxy {
        let storage: &'static (dyn Storage + Sync) = {
            let mem: &'static MemCache = Box::leak(Box::new(MemCache::new()));
            if knobs.failing_purge {
                Box::leak(Box::new(FailingPurge(mem)))
            } else {
                mem
            }
        };
        let lock: &'static CountingLock = Box::leak(Box::new(CountingLock {
            inner: CacheLock::new(knobs.lock_age.unwrap_or(Duration::from_secs(5))),
            readers: AtomicUsize::new(0),
        }));
        let predictor = knobs.predictor.then(|| {
            let p: &'static (dyn CacheablePredictor + Sync) =
                Box::leak(Box::new(Predictor::<4>::new(64, None)));
            p
        });
        let mut overrides = CacheOptionOverrides::default();
        overrides.wait_timeout = knobs.wait_timeout;
        CacheProxy {
            upstream,
            overrides,
            knobs,
            storage,
            lock,
            predictor,
        }
    }

    /// Turns `cache` on as the knobs say (what `request_cache_filter` does).
    fn enable(&self, cache: &mut HttpCache) {
        cache.enable(
            self.storage,
            None,
            self.predictor,
            Some(self.lock),
            Some(self.overrides),
        );
        if let Some(max) = self.knobs.max_file_size {
            cache.set_max_file_size_bytes(max);
        }
        let options = cache.options_mut();
        if self.knobs.cdn {
            options.targeted_cache_control = &["CDN-Cache-Control"];
        }
        if let Some(name) = self.knobs.cache_status_name {
            options.cache_status_name = name.map(Cow::Borrowed);
        }
        options.honor_request_directives = !self.knobs.ignore_request_directives;
    }
}

#[async_trait]
impl ProxyHttp for CacheProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let addr = *self.upstream.lock().expect("upstream lock");
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.read_timeout = self.knobs.read_timeout;
        Ok(Box::new(peer))
    }

    fn request_cache_filter(&self, session: &mut Session, _: &mut ()) -> Result<()> {
        if session.get_header(CACHE_OFF_FIELD).is_none() {
            self.enable(&mut session.cache);
        }
        Ok(())
    }

    fn is_purge(&self, session: &Session, _: &()) -> bool {
        self.knobs.purge
            && session
                .get_header(PURGE_FIELD)
                .is_some_and(|v| v.as_bytes() == PURGE_TOKEN.as_bytes())
    }

    fn cache_vary_filter(
        &self,
        meta: &pingora_cache::CacheMeta,
        ctx: &mut (),
        req: &pingora_http::RequestHeader,
    ) -> Option<pingora_cache::HashBinary> {
        if self.knobs.no_variance {
            return None;
        }
        Defaults.cache_vary_filter(meta, ctx, req)
    }

    fn should_serve_stale(
        &self,
        session: &mut Session,
        ctx: &mut (),
        error: Option<&Error>,
    ) -> bool {
        match self.knobs.serve_stale {
            Some(decide) => decide(error),
            None => Defaults.should_serve_stale(session, ctx, error),
        }
    }
}

/// Only the required callbacks, to call the trait's defaults.
struct Defaults;

#[async_trait]
impl ProxyHttp for Defaults {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        Error::e_explain(pingora_error::ErrorType::InternalError, "unused")
    }
}

/// A `MemCache` whose purges fail (the `500` of a purge).
struct FailingPurge(&'static MemCache);

#[async_trait]
impl Storage for FailingPurge {
    async fn lookup(
        &'static self,
        key: &pingora_cache::CacheKey,
        trace: &pingora_cache::trace::SpanHandle,
    ) -> Result<Option<(pingora_cache::CacheMeta, pingora_cache::HitHandler)>> {
        self.0.lookup(key, trace).await
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &pingora_cache::CacheKey,
        tag: Option<&[u8]>,
        trace: &pingora_cache::trace::SpanHandle,
    ) -> Result<Option<(pingora_cache::CacheMeta, pingora_cache::HitHandler)>> {
        self.0.lookup_streaming_write(key, tag, trace).await
    }

    async fn get_miss_handler(
        &'static self,
        key: &pingora_cache::CacheKey,
        meta: &pingora_cache::CacheMeta,
        trace: &pingora_cache::trace::SpanHandle,
    ) -> Result<pingora_cache::MissHandler> {
        self.0.get_miss_handler(key, meta, trace).await
    }

    async fn purge(
        &'static self,
        _: &pingora_cache::CompactCacheKey,
        _: PurgeType,
        _: &pingora_cache::trace::SpanHandle,
    ) -> Result<bool> {
        Error::e_explain(pingora_error::ErrorType::InternalError, "purges fail here")
    }

    async fn update_meta(
        &'static self,
        key: &pingora_cache::CacheKey,
        meta: &pingora_cache::CacheMeta,
        trace: &pingora_cache::trace::SpanHandle,
    ) -> Result<bool> {
        self.0.update_meta(key, meta, trace).await
    }

    fn support_streaming_partial_write(&self) -> bool {
        self.0.support_streaming_partial_write()
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync + 'static) {
        self
    }
}

// === the harness ===

/// A [`CacheProxy`] (a task of the test's runtime) in front of a [`ScriptedOrigin`].
pub struct Cached {
    /// The proxy.
    pub proxy: TestService,
    /// The origin.
    pub origin: ScriptedOrigin,
    upstream: Arc<Mutex<SocketAddr>>,
    lock: &'static CountingLock,
}

/// The cache lock of a [`Cached`]: a `CacheLock` that counts the readers it hands out.
pub struct CountingLock {
    inner: CacheLock,
    readers: AtomicUsize,
}

impl CacheKeyLock for CountingLock {
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked {
        let locked = self.inner.lock(key, stale_writer);
        if !locked.is_write() {
            self.readers.fetch_add(1, Ordering::SeqCst);
        }
        locked
    }

    fn release(&self, key: &CacheKey, permit: WritePermit, reason: LockStatus) {
        self.inner.release(key, permit, reason)
    }

    fn custom_lock_status(&self, custom_no_cache: &'static str) -> LockStatus {
        self.inner.custom_lock_status(custom_no_cache)
    }
}

impl Cached {
    /// A proxy with the default knobs.
    pub async fn start() -> Cached {
        Cached::with(Knobs::default()).await
    }

    /// A proxy set up by `knobs`.
    pub async fn with(knobs: Knobs) -> Cached {
        let _ = env_logger::builder().is_test(true).try_init();
        let origin = ScriptedOrigin::start().await;
        let upstream = Arc::new(Mutex::new(origin.addr()));
        let options = knobs.h2c.then(|| {
            let mut options = HttpServerOptions::default();
            options.h2c = true;
            options
        });
        let app = CacheProxy::new(Arc::clone(&upstream), knobs);
        let lock = app.lock;
        let proxy = ProxyUnderTest::new(app)
            .server_options(options)
            .serve()
            .await;
        Cached {
            proxy,
            origin,
            upstream,
            lock,
        }
    }

    /// How many requests the cache lock has made readers so far (requests that wait for
    /// another's write): a test that opens the origin's gate only once every collapsed
    /// request waits knows none of them came too late to collapse.
    pub fn lock_readers(&self) -> usize {
        self.lock.readers.load(Ordering::SeqCst)
    }

    /// Sends the upstream requests to a port where nothing listens (`false`) or back to the
    /// origin (`true`).
    pub fn origin_reachable(&self, reachable: bool) {
        let addr = if reachable {
            self.origin.addr()
        } else {
            pingora_test_support::dead_addr()
        };
        *self.upstream.lock().expect("upstream lock") = addr;
    }

    /// A new client connection to the proxy.
    pub async fn client(&self) -> RawConn {
        self.proxy.connect().await
    }

    /// A GET of `target` (HTTP/1.1, `Host: test`) on a new connection, with the extra field
    /// lines `extra` (each ending in CRLF).
    pub async fn get(&self, target: &str, extra: &str) -> Message {
        self.send(request("GET", target, extra)).await
    }

    /// Sends `request` on a new connection and reads the response (see
    /// [`RawConn::roundtrip`]).
    pub async fn send(&self, request: impl AsRef<[u8]>) -> Message {
        self.client().await.roundtrip(request).await
    }
}

/// A request of `method` for `target` with `Host: test`, the extra field lines `extra` (each
/// ending in CRLF) and no body.
pub fn request(method: &str, target: &str, extra: &str) -> String {
    format!("{method} {target} HTTP/1.1\r\nHost: test\r\n{extra}\r\n")
}

// === what the cache says ===

/// This cache's `Cache-Status` member (RFC 9211) of a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// `hit`.
    pub hit: bool,
    /// `fwd=` (the reason).
    pub fwd: Option<String>,
    /// `fwd-status=`.
    pub fwd_status: Option<u16>,
    /// `ttl=`.
    pub ttl: Option<i64>,
    /// `stored`.
    pub stored: bool,
    /// `collapsed`.
    pub collapsed: bool,
    /// The whole member as received.
    pub member: String,
}

/// Every value of field `name` in `head`, joined with ", ".
pub fn joined(head: &Head, name: &str) -> String {
    head.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `Cache-Status` member of the proxy's cache (named `pingora`) in `head`.
///
/// # Panics
///
/// If there is none, or more than one.
pub fn status_of(head: &Head) -> Status {
    let value = joined(head, "cache-status");
    let ours: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|m| m.split(';').next().map(str::trim) == Some("pingora"))
        .collect();
    assert_eq!(
        ours.len(),
        1,
        "one Cache-Status member of this cache in {value:?}"
    );
    let mut status = Status {
        member: ours[0].to_string(),
        ..Status::default()
    };
    for param in ours[0].split(';').skip(1).map(str::trim) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        match name {
            "hit" => status.hit = true,
            "fwd" => status.fwd = Some(value.to_string()),
            "fwd-status" => status.fwd_status = value.parse().ok(),
            "ttl" => status.ttl = value.parse().ok(),
            "stored" => status.stored = true,
            "collapsed" => status.collapsed = true,
            "key" => panic!("Cache-Status sends the key: {value:?}"),
            _ => {}
        }
    }
    status
}

/// [`status_of`] a response.
pub fn status(msg: &Message) -> Status {
    status_of(&msg.head)
}

/// Whether a response is a hit of this cache.
pub fn is_hit(msg: &Message) -> bool {
    status(msg).hit
}

/// The `Age` of a response, which must have exactly one.
///
/// # Panics
///
/// If it has none, several, or one that is not a non-negative integer.
pub fn age(msg: &Message) -> u64 {
    let value = msg.header("age").expect("an Age field");
    value
        .parse()
        .unwrap_or_else(|_| panic!("Age is not a number of seconds: {value:?}"))
}

/// An HTTP date `offset` seconds from now (negative: in the past).
pub fn http_date(offset: i64) -> String {
    let now = SystemTime::now();
    let at = if offset >= 0 {
        now + Duration::from_secs(offset.unsigned_abs())
    } else {
        now - Duration::from_secs(offset.unsigned_abs())
    };
    httpdate::fmt_http_date(at)
}

/// A 200 with `body` that stays fresh for a minute.
pub fn fresh(body: &str) -> Reply {
    Reply::ok(body).header("Cache-Control", "max-age=60")
}

/// A 200 with `body` and entity tag `etag`, stored stale (its `Age` is past its `max-age`),
/// that the origin answers with a 304 when asked with that tag.
pub fn stale_with_etag(body: &str, etag: &str) -> Reply {
    Reply::ok(body)
        .header("Cache-Control", "max-age=60")
        .header("Age", "61")
        .header("ETag", etag)
        .not_modified_if_none_match(etag)
}

/// Sends `target` twice and returns how many requests the origin got for it and the second
/// response: 1 when the first response was stored and reused.
pub async fn twice(h: &Cached, target: &str, extra: &str) -> (usize, Message) {
    let first = h.get(target, extra).await;
    assert!(
        !is_hit(&first),
        "{target}: the first request is a hit: {:?}",
        first.head.line
    );
    let second = h.get(target, extra).await;
    (h.origin.count(target), second)
}

/// Reads a chunked response head and body from `conn` exactly: the head, then each chunk
/// line and data, then the last-chunk and the empty line; returns the head, the body and
/// how many last-chunks were read (1, unless more follow in the bytes already received).
pub async fn read_chunked_exactly(conn: &mut RawConn) -> (Head, Vec<u8>) {
    let head = conn.read_head().await.expect("a response head");
    assert!(
        joined(&head, "transfer-encoding").contains("chunked"),
        "not chunked: {:?}",
        head.line
    );
    let mut body = Vec::new();
    loop {
        let line = conn.read_until(b"\r\n").await;
        let size = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
        let size = usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or_else(|_| panic!("a chunk size line: {size:?}"));
        if size == 0 {
            let end = conn.read_until(b"\r\n").await;
            assert_eq!(
                end, b"\r\n",
                "trailers after the last chunk of a stored body"
            );
            return (head, body);
        }
        let data = conn.read_exact(size + 2).await;
        assert_eq!(&data[size..], b"\r\n", "chunk data without its CRLF");
        body.extend_from_slice(&data[..size]);
    }
}

/// Waits until `f` holds.
pub async fn eventually(what: &str, f: impl Fn() -> bool) {
    within(what, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
}
