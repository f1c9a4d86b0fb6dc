//! `MemoryCache` and `RTCache` against simple models, with proptest, on tokio's paused clock.
//!
//! * `MemoryCache`: the model is a map of key to (value, expiry). Put, get, get_stale,
//!   remove, multi_get and time advances are applied to both. A cache with room for every key
//!   must agree with the model exactly; a small one may have evicted (or not admitted) a key,
//!   so an expected value may read as a miss, but never as a wrong or expired value, and a key
//!   once seen missing stays missing until it is put again.
//! * `RTCache`: the lookup counts its calls and returns versioned values; the model is the
//!   version cached per key and its expiry. A hit returns exactly that version while it is
//!   fresh, a lookup happens only on a miss or an expired value, concurrent gets of one key
//!   share one lookup, and a failed lookup stores nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::join_all;
use pingora_error::ErrorTrait;
use pingora_memory_cache::{CacheStatus, Lookup, MemoryCache, RTCache};
use proptest::prelude::*;
use tokio::time::Instant;

/// A runtime on a paused clock, which moves only through `tokio::time::advance` (and, while
/// every task sleeps, to the next timer).
fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// === MemoryCache ===

/// Distinct keys the operations draw from.
const KEYS: u8 = 12;

#[derive(Clone, Debug)]
enum Op {
    Put { key: u8, ttl: Option<Duration> },
    Get(u8),
    GetStale(u8),
    Remove(u8),
    MultiGet(Vec<u8>),
    Advance(Duration),
}

fn ttl() -> impl Strategy<Value = Option<Duration>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Duration::ZERO)),
        1 => Just(Some(Duration::MAX)),
        6 => duration(3_000).prop_map(|d| Some(d.max(ms(1)))),
    ]
}

/// A duration below `limit_ms`, mostly in steps of 100 ms so that values often expire
/// exactly when the clock gets there (the boundary: at its expiry, a value is expired).
fn duration(limit_ms: u64) -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0..limit_ms / 100).prop_map(|n| ms(n * 100)),
        1 => (0..limit_ms).prop_map(ms),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    prop_oneof![
        4 => (key.clone(), ttl()).prop_map(|(key, ttl)| Op::Put { key, ttl }),
        4 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::GetStale),
        1 => key.clone().prop_map(Op::Remove),
        1 => prop::collection::vec(key, 0..6).prop_map(Op::MultiGet),
        2 => duration(1_500).prop_map(Op::Advance),
    ]
}

/// Keys are strings, read through `&str` and written through `&String`, so the test also
/// checks that both hash alike.
fn name(key: u8) -> String {
    format!("key-{key}")
}

/// A value put and when it expires (`None`: never).
#[derive(Clone, Copy, Debug)]
struct Entry {
    value: u64,
    expires: Option<Instant>,
}

struct Model {
    entries: HashMap<u8, Entry>,
    /// Whether the cache has room for every key, so that it must never drop one.
    exact: bool,
}

impl Model {
    fn put(&mut self, key: u8, value: u64, ttl: Option<Duration>) {
        if ttl == Some(Duration::ZERO) {
            // Documented: a zero TTL stores nothing and drops the older value.
            self.entries.remove(&key);
            return;
        }
        let expires = ttl.and_then(|ttl| Instant::now().checked_add(ttl));
        self.entries.insert(key, Entry { value, expires });
    }

    /// `key`'s value and, if it has expired, how long ago.
    fn lookup(&self, key: u8) -> Option<(u64, Option<Duration>)> {
        let now = Instant::now();
        self.entries.get(&key).map(|entry| {
            let stale = entry.expires.filter(|&at| at <= now).map(|at| now - at);
            (entry.value, stale)
        })
    }

    /// Checks a `get` of `key` against the model. A miss where the model has a value is
    /// allowed only in a cache that may evict, and the model then forgets the key.
    fn check_get(&mut self, key: u8, got: (Option<u64>, CacheStatus)) -> Result<(), TestCaseError> {
        let expected = match self.lookup(key) {
            None => (None, CacheStatus::Miss),
            Some((value, None)) => (Some(value), CacheStatus::Hit),
            Some((_, Some(_))) => (None, CacheStatus::Expired),
        };
        self.check_or_evicted(key, got, expected, "get")
    }

    /// Checks a `get_stale` of `key` against the model.
    fn check_get_stale(
        &mut self,
        key: u8,
        got: (Option<u64>, CacheStatus),
    ) -> Result<(), TestCaseError> {
        let expected = match self.lookup(key) {
            None => (None, CacheStatus::Miss),
            Some((value, None)) => (Some(value), CacheStatus::Hit),
            Some((value, Some(age))) => (Some(value), CacheStatus::Stale(age)),
        };
        self.check_or_evicted(key, got, expected, "get_stale")
    }

    fn check_or_evicted(
        &mut self,
        key: u8,
        got: (Option<u64>, CacheStatus),
        expected: (Option<u64>, CacheStatus),
        what: &str,
    ) -> Result<(), TestCaseError> {
        if got == expected {
            return Ok(());
        }
        let evicted = !self.exact && got == (None, CacheStatus::Miss);
        prop_assert!(
            evicted,
            "{} {}: got {:?}, expected {:?}",
            what,
            key,
            got,
            expected
        );
        self.entries.remove(&key);
        Ok(())
    }
}

async fn check_memory_cache(size: usize, exact: bool, ops: &[Op]) -> Result<(), TestCaseError> {
    let cache: MemoryCache<String, u64> = MemoryCache::new(size);
    let mut model = Model {
        entries: HashMap::new(),
        exact,
    };
    for (serial, op) in ops.iter().enumerate() {
        // Every put stores a value no other put stores.
        let value = serial as u64;
        match op {
            Op::Put { key, ttl } => {
                cache.put(&name(*key), value, *ttl);
                model.put(*key, value, *ttl);
            }
            Op::Get(key) => model.check_get(*key, cache.get(name(*key).as_str()))?,
            Op::GetStale(key) => {
                model.check_get_stale(*key, cache.get_stale(name(*key).as_str()))?
            }
            Op::Remove(key) => {
                cache.remove(name(*key).as_str());
                model.entries.remove(key);
                prop_assert_eq!(cache.get(name(*key).as_str()), (None, CacheStatus::Miss));
            }
            Op::MultiGet(keys) => {
                let names: Vec<String> = keys.iter().map(|&k| name(k)).collect();
                let results = cache.multi_get(names.iter());
                prop_assert_eq!(results.len(), keys.len());
                for (&key, got) in keys.iter().zip(results) {
                    model.check_get(key, got)?;
                }
                // The keys that got no value, in order, are reported as missed.
                let (results, missed) = cache.multi_get_with_miss(names.iter());
                let unanswered: Vec<&String> = names
                    .iter()
                    .zip(&results)
                    .filter(|(_, (value, _))| value.is_none())
                    .map(|(name, _)| name)
                    .collect();
                prop_assert_eq!(missed, unanswered);
                for (&key, got) in keys.iter().zip(results) {
                    model.check_get(key, got)?;
                }
            }
            Op::Advance(by) => tokio::time::advance(*by).await,
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// With room for every key nothing is evicted: the cache is the model.
    #[test]
    fn memory_cache_with_room_matches_the_model(ops in prop::collection::vec(op(), 1..200)) {
        paused_runtime().block_on(check_memory_cache(usize::from(KEYS) * 2, true, &ops))?;
    }

    /// A small cache may drop values, never return a wrong or expired one.
    #[test]
    fn small_memory_cache_never_returns_a_wrong_value(
        size in 1..8usize,
        ops in prop::collection::vec(op(), 1..200),
    ) {
        paused_runtime().block_on(check_memory_cache(size, false, &ops))?;
    }
}

// === RTCache ===

/// Distinct keys of the read-through model: a handful, so that gets meet their keys again.
const RT_KEYS: u8 = 4;

/// How long every lookup takes, in virtual time: long enough for concurrent gets to find it
/// in progress.
const LOOKUP_TIME: Duration = Duration::from_millis(10);

/// What a lookup returns: the key it was asked for and the number of its call for that key.
type Versioned = (u8, u64);

/// The lookup's state and what this call of it should do; passed as `extra`.
#[derive(Clone)]
struct Backend {
    /// Calls so far, per key: the version of the latest value.
    calls: Arc<Vec<AtomicU64>>,
    fail: bool,
    ttl: Option<Duration>,
}

impl Backend {
    fn calls(&self, key: u8) -> u64 {
        self.calls[usize::from(key)].load(Ordering::SeqCst)
    }
}

struct Source;

#[async_trait]
impl Lookup<u8, Versioned, Backend> for Source {
    async fn lookup(
        key: &u8,
        extra: Option<&Backend>,
    ) -> Result<(Versioned, Option<Duration>), Box<dyn ErrorTrait + Send + Sync>> {
        let backend = extra.expect("the model passes a backend");
        let version = backend.calls[usize::from(*key)].fetch_add(1, Ordering::SeqCst) + 1;
        tokio::time::sleep(LOOKUP_TIME).await;
        if backend.fail {
            return Err("backend down".into());
        }
        Ok(((*key, version), backend.ttl))
    }
}

/// One `RTCache` call (or `n` concurrent ones) and what its lookup will do.
#[derive(Clone, Debug)]
struct Read {
    key: u8,
    /// The TTL given to `get`.
    ttl: Option<Duration>,
    /// The TTL the lookup returns, which wins over `ttl`.
    lookup_ttl: Option<Duration>,
    fail: bool,
    /// `Some`: `get_stale` with this stale TTL.
    stale_ttl: Option<Duration>,
    /// Concurrent callers.
    n: usize,
}

#[derive(Clone, Debug)]
enum RtOp {
    Read(Read),
    Advance(Duration),
}

fn rt_ttl() -> impl Strategy<Value = Option<Duration>> {
    prop_oneof![
        2 => Just(None),
        1 => Just(Some(Duration::ZERO)),
        6 => duration(2_000).prop_map(|d| Some(d.max(ms(1)))),
    ]
}

fn rt_op() -> impl Strategy<Value = RtOp> {
    let read = (
        0..RT_KEYS,
        rt_ttl(),
        rt_ttl(),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.3, duration(1_500)),
        prop_oneof![3 => Just(1usize), 1 => 2..8usize],
    )
        .prop_map(|(key, ttl, lookup_ttl, fail, stale_ttl, n)| {
            RtOp::Read(Read {
                key,
                ttl,
                lookup_ttl,
                fail,
                stale_ttl,
                n,
            })
        });
    prop_oneof![
        4 => read,
        1 => duration(1_500).prop_map(RtOp::Advance),
    ]
}

/// What the model expects of a read, before it runs.
enum Expect {
    /// The cached version, returned without a lookup with this status.
    Cached(u64, CacheStatus),
    /// A lookup, by one of the callers, which report this status.
    Lookup(CacheStatus),
}

async fn check_rt_cache(ops: &[RtOp]) -> Result<(), TestCaseError> {
    // Room for every key, so the cache is exact; waits are bounded far above a lookup's time.
    let cache: RTCache<u8, Versioned, Source, Backend> = RTCache::new(
        64,
        Some(Duration::from_secs(60)),
        Some(Duration::from_secs(60)),
    );
    let calls = Arc::new((0..RT_KEYS).map(|_| AtomicU64::new(0)).collect::<Vec<_>>());
    let mut model = Model {
        entries: HashMap::new(),
        exact: true,
    };
    // The newest version returned per key: nothing older may be returned later.
    let mut newest: HashMap<u8, u64> = HashMap::new();
    for op in ops {
        let read = match op {
            RtOp::Advance(by) => {
                tokio::time::advance(*by).await;
                continue;
            }
            RtOp::Read(read) => read,
        };
        let key = read.key;
        let backend = Backend {
            calls: calls.clone(),
            fail: read.fail,
            ttl: read.lookup_ttl,
        };
        let expect = match (model.lookup(key), read.stale_ttl) {
            (None, _) => Expect::Lookup(CacheStatus::Miss),
            (Some((version, None)), _) => Expect::Cached(version, CacheStatus::Hit),
            (Some((version, Some(age))), Some(stale_ttl)) if age <= stale_ttl => {
                Expect::Cached(version, CacheStatus::Stale(age))
            }
            (Some((_, Some(_))), _) => Expect::Lookup(CacheStatus::Expired),
        };
        let calls_before = backend.calls(key);
        let results = join_all((0..read.n).map(|_| async {
            match read.stale_ttl {
                Some(stale_ttl) => {
                    cache
                        .get_stale(&key, read.ttl, Some(&backend), stale_ttl)
                        .await
                }
                None => cache.get(&key, read.ttl, Some(&backend)).await,
            }
        }))
        .await;
        let lookups = backend.calls(key) - calls_before;
        let results: Vec<(Option<Versioned>, CacheStatus)> = results
            .into_iter()
            .map(|(result, status)| (result.ok(), status))
            .collect();
        match expect {
            Expect::Cached(version, status) => {
                prop_assert_eq!(lookups, 0, "{:?}: a lookup although cached", read);
                for got in &results {
                    prop_assert_eq!(got, &(Some((key, version)), status), "{:?}", read);
                }
            }
            Expect::Lookup(status) => {
                prop_assert_eq!(lookups, 1, "{:?}: one lookup for {} callers", read, read.n);
                let version = backend.calls(key);
                if read.fail {
                    // The error reaches every caller, and nothing is stored.
                    for got in &results {
                        prop_assert_eq!(got, &(None, status), "{:?}", read);
                    }
                } else {
                    // One caller looked up, the others waited for its value.
                    prop_assert_eq!(&results[0], &(Some((key, version)), status), "{:?}", read);
                    for got in &results[1..] {
                        prop_assert_eq!(got, &(Some((key, version)), CacheStatus::LockHit));
                    }
                    // Stored when the lookup returned, which is now.
                    model.put(key, version, read.lookup_ttl.or(read.ttl));
                }
            }
        }
        for (value, _) in &results {
            if let Some((got_key, version)) = *value {
                prop_assert_eq!(got_key, key);
                let newest = newest.entry(key).or_default();
                prop_assert!(
                    version >= *newest,
                    "{:?}: version {} after {}",
                    read,
                    version,
                    newest
                );
                *newest = version;
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Hits return the cached version while fresh, lookups happen only on a miss or an
    /// expired value and are shared by concurrent callers, errors store nothing.
    #[test]
    fn rt_cache_matches_the_model(ops in prop::collection::vec(rt_op(), 1..60)) {
        paused_runtime().block_on(check_rt_cache(&ops))?;
    }
}
