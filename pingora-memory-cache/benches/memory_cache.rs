//! `MemoryCache` against `moka::sync::Cache` with a time to live, on 1 and 2 threads.
//!
//! * `get_hit`: every key is cached (10,000 items, TTL an hour); uniform random reads of them.
//! * `put`: replaces the values of those cached keys, with the same TTL.
//!
//! Both caches hold `u64` keys and values, at the same capacity.
//!
//! Run: `cargo bench -p pingora-memory-cache --bench memory_cache -- --warm-up-time 1
//! --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pingora_memory_cache::MemoryCache;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Cached items.
const CAPACITY: usize = 10_000;
/// Operations per thread per measured batch.
const BATCH: usize = 10_000;
/// Long enough that nothing expires during a run.
const TTL: Duration = Duration::from_secs(3_600);

/// The two caches behind one face.
trait Cache: Sync {
    fn get(&self, key: u64) -> Option<u64>;
    fn put(&self, key: u64, value: u64);
}

impl Cache for MemoryCache<u64, u64> {
    fn get(&self, key: u64) -> Option<u64> {
        MemoryCache::get(self, &key).0
    }
    fn put(&self, key: u64, value: u64) {
        MemoryCache::put(self, &key, value, Some(TTL));
    }
}

impl Cache for moka::sync::Cache<u64, u64> {
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
    fn put(&self, key: u64, value: u64) {
        self.insert(key, value);
    }
}

fn caches() -> Vec<(&'static str, Box<dyn Cache>)> {
    let moka = moka::sync::Cache::builder()
        .max_capacity(CAPACITY as u64)
        .time_to_live(TTL)
        .build();
    vec![
        ("memory_cache", Box::new(MemoryCache::new(CAPACITY))),
        ("moka_ttl", Box::new(moka)),
    ]
}

/// Uniform random keys of cached items, one list per thread.
fn keys(threads: usize) -> Vec<Vec<u64>> {
    (0..threads)
        .map(|t| {
            let mut rng = StdRng::seed_from_u64(t as u64);
            (0..BATCH)
                .map(|_| rng.random_range(0..CAPACITY as u64))
                .collect()
        })
        .collect()
}

/// Runs `iters` batches on every thread at once and returns the wall time.
fn run(cache: &dyn Cache, keys: &[Vec<u64>], iters: u64, write: bool) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for keys in keys {
            s.spawn(move || {
                for _ in 0..iters {
                    for &key in keys {
                        if write {
                            cache.put(key, key ^ iters);
                        } else {
                            black_box(cache.get(key));
                        }
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn workload(c: &mut Criterion, name: &str, write: bool) {
    let mut group = c.benchmark_group(name);
    for threads in [1, 2] {
        let keys = keys(threads);
        group.throughput(Throughput::Elements((BATCH * threads) as u64));
        for (cache_name, cache) in caches() {
            for key in 0..CAPACITY as u64 {
                cache.put(key, key);
            }
            // Both caches admit every key here, or the reads would not all be hits.
            let resident = (0..CAPACITY as u64)
                .filter(|&k| cache.get(k).is_some())
                .count();
            assert_eq!(resident, CAPACITY, "{cache_name} holds every key");
            group.bench_with_input(BenchmarkId::new(cache_name, threads), &threads, |b, _| {
                b.iter_custom(|iters| run(cache.as_ref(), &keys, iters, write))
            });
        }
    }
    group.finish();
}

fn get_hit(c: &mut Criterion) {
    workload(c, "get_hit", false);
}

fn put(c: &mut Criterion) {
    workload(c, "put", true);
}

criterion_group!(benches, get_hit, put);
criterion_main!(benches);
