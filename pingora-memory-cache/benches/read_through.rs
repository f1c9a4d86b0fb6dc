//! `RTCache` against `moka::future::Cache::get_with`, the read-through call moka offers.
//!
//! * `rt_hit`: every key is cached (10,000 items); uniform random gets of them, all hits, on
//!   a current-thread runtime.
//! * `coalesce`: 100 concurrent gets of one cold key, with a lookup that yields to the
//!   runtime once (a backend call that is not ready at once); one batch per measured
//!   iteration, each on a new key. `join_all`: the 100 gets are futures of one task, on a
//!   current-thread runtime. `spawned`: they are 100 tasks on a runtime of 2 worker threads.
//!   The lookups are counted and printed: one per cold key is the aim.
//!
//! Run: `cargo bench -p pingora-memory-cache --bench read_through -- --warm-up-time 1
//! --measurement-time 3`

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures_util::future::join_all;
use pingora_error::ErrorTrait;
use pingora_memory_cache::{Lookup, RTCache};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

/// Cached items.
const CAPACITY: usize = 10_000;
/// Gets per measured batch of `rt_hit`.
const BATCH: usize = 10_000;
/// Concurrent gets of one cold key.
const CALLERS: usize = 100;
/// Long enough that nothing expires during a run.
const TTL: Duration = Duration::from_secs(3_600);

/// Calls of each cache's lookup.
static RT_LOOKUPS: AtomicU64 = AtomicU64::new(0);
static MOKA_LOOKUPS: AtomicU64 = AtomicU64::new(0);
/// The next cold key: every coalescing batch takes a new one.
static NEXT_KEY: AtomicU64 = AtomicU64::new(1 << 32);

/// The backend both caches read through: yields once, then answers `key * 2`.
async fn backend(key: u64, calls: &AtomicU64) -> u64 {
    calls.fetch_add(1, Ordering::Relaxed);
    tokio::task::yield_now().await;
    key * 2
}

struct Source;

#[async_trait]
impl Lookup<u64, u64, ()> for Source {
    async fn lookup(
        key: &u64,
        _extra: Option<&()>,
    ) -> Result<(u64, Option<Duration>), Box<dyn ErrorTrait + Send + Sync>> {
        Ok((backend(*key, &RT_LOOKUPS).await, None))
    }
}

type Rt = RTCache<u64, u64, Source, ()>;
type Moka = moka::future::Cache<u64, u64>;

fn rt_cache() -> Rt {
    RTCache::new(
        CAPACITY,
        Some(Duration::from_secs(1)),
        Some(Duration::from_secs(1)),
    )
}

fn moka_cache() -> Moka {
    moka::future::Cache::builder()
        .max_capacity(CAPACITY as u64)
        .time_to_live(TTL)
        .build()
}

async fn rt_get(cache: &Rt, key: u64) -> u64 {
    cache
        .get(&key, Some(TTL), None)
        .await
        .0
        .expect("the lookup does not fail")
}

async fn moka_get(cache: &Moka, key: u64) -> u64 {
    cache.get_with(key, backend(key, &MOKA_LOOKUPS)).await
}

fn current_thread() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime")
}

fn rt_hit(c: &mut Criterion) {
    let runtime = current_thread();
    let mut rng = StdRng::seed_from_u64(0);
    let keys: Vec<u64> = (0..BATCH)
        .map(|_| rng.random_range(0..CAPACITY as u64))
        .collect();
    let rt = rt_cache();
    let moka = moka_cache();
    runtime.block_on(async {
        for key in 0..CAPACITY as u64 {
            rt_get(&rt, key).await;
            moka_get(&moka, key).await;
        }
    });
    let before = (
        RT_LOOKUPS.load(Ordering::Relaxed),
        MOKA_LOOKUPS.load(Ordering::Relaxed),
    );

    let mut group = c.benchmark_group("rt_hit");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("rt_cache", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for &key in &keys {
                        black_box(rt_get(&rt, key).await);
                    }
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("moka_get_with", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    for &key in &keys {
                        black_box(moka_get(&moka, key).await);
                    }
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    // Every read was a hit: no lookup since the fill.
    assert_eq!(
        RT_LOOKUPS.load(Ordering::Relaxed),
        before.0,
        "rt_cache hits only"
    );
    assert_eq!(
        MOKA_LOOKUPS.load(Ordering::Relaxed),
        before.1,
        "moka hits only"
    );
}

/// One batch of concurrent gets of a new key, as futures of one task.
async fn batch_joined<F>(get: impl Fn(u64) -> F) -> Duration
where
    F: std::future::Future<Output = u64>,
{
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    let values = join_all((0..CALLERS).map(|_| get(key))).await;
    let elapsed = start.elapsed();
    assert!(values.iter().all(|&v| v == key * 2));
    elapsed
}

/// One batch of concurrent gets of a new key, as tasks.
async fn batch_spawned<C, F>(cache: &Arc<C>, get: fn(Arc<C>, u64) -> F) -> Duration
where
    C: Send + Sync + 'static,
    F: std::future::Future<Output = u64> + Send + 'static,
{
    let key = NEXT_KEY.fetch_add(1, Ordering::Relaxed);
    let start = Instant::now();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| tokio::spawn(get(cache.clone(), key)))
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("the get does not panic"), key * 2);
    }
    start.elapsed()
}

/// Prints how many lookups `name` made per cold key since `keys_before` and `lookups_before`.
fn report(name: &str, lookups: &AtomicU64, lookups_before: u64, keys_before: u64) {
    let keys = NEXT_KEY.load(Ordering::Relaxed) - keys_before;
    let lookups = lookups.load(Ordering::Relaxed) - lookups_before;
    if keys == 0 {
        // Filtered out of this run.
        return;
    }
    println!(
        "{name}: {lookups} lookups for {keys} cold keys ({:.3} per key)",
        lookups as f64 / keys as f64
    );
}

fn coalesce(c: &mut Criterion) {
    let mut group = c.benchmark_group("coalesce");
    group.throughput(Throughput::Elements(CALLERS as u64));

    let runtime = current_thread();
    let rt = rt_cache();
    let moka = moka_cache();
    let (lookups, keys) = (
        RT_LOOKUPS.load(Ordering::Relaxed),
        NEXT_KEY.load(Ordering::Relaxed),
    );
    group.bench_function("join_all/rt_cache", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += batch_joined(|k| rt_get(&rt, k)).await;
                }
                total
            })
        })
    });
    report("join_all/rt_cache", &RT_LOOKUPS, lookups, keys);
    let (lookups, keys) = (
        MOKA_LOOKUPS.load(Ordering::Relaxed),
        NEXT_KEY.load(Ordering::Relaxed),
    );
    group.bench_function("join_all/moka_get_with", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += batch_joined(|k| moka_get(&moka, k)).await;
                }
                total
            })
        })
    });
    report("join_all/moka_get_with", &MOKA_LOOKUPS, lookups, keys);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a runtime");
    let rt = Arc::new(rt_cache());
    let moka = Arc::new(moka_cache());
    let (lookups, keys) = (
        RT_LOOKUPS.load(Ordering::Relaxed),
        NEXT_KEY.load(Ordering::Relaxed),
    );
    group.bench_function("spawned/rt_cache", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total += batch_spawned(&rt, |c: Arc<Rt>, k| async move { rt_get(&c, k).await })
                        .await;
                }
                total
            })
        })
    });
    report("spawned/rt_cache", &RT_LOOKUPS, lookups, keys);
    let (lookups, keys) = (
        MOKA_LOOKUPS.load(Ordering::Relaxed),
        NEXT_KEY.load(Ordering::Relaxed),
    );
    group.bench_function("spawned/moka_get_with", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    total +=
                        batch_spawned(
                            &moka,
                            |c: Arc<Moka>, k| async move { moka_get(&c, k).await },
                        )
                        .await;
                }
                total
            })
        })
    });
    report("spawned/moka_get_with", &MOKA_LOOKUPS, lookups, keys);
    group.finish();
}

criterion_group!(benches, rt_hit, coalesce);
criterion_main!(benches);
