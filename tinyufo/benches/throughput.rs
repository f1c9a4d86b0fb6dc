//! Operations per second of TinyUFO against `lru` behind a mutex and moka, on 1 and 2 threads.
//!
//! * `read`: every key is cached (10,000 items); zipf 1.0 reads over them, all hits.
//! * `mixed`: zipf 1.0 over 100,000 keys with a cache of 10,000; a read, and a put on a miss.
//!
//! Run: `cargo bench -p tinyufo --bench throughput -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use tinyufo::TinyUfo;

/// Cached items.
const CAPACITY: usize = 10_000;
/// Distinct keys of the mixed workload.
const KEY_SPACE: usize = 100_000;
/// Operations per thread per measured batch.
const BATCH: usize = 10_000;

/// The three caches behind one face.
trait Cache: Sync {
    fn get(&self, key: u64) -> Option<u64>;
    fn put(&self, key: u64, value: u64);
}

impl Cache for TinyUfo<u64, u64> {
    fn get(&self, key: u64) -> Option<u64> {
        TinyUfo::get(self, &key)
    }
    fn put(&self, key: u64, value: u64) {
        TinyUfo::put(self, key, value, 1);
    }
}

struct Lru(Mutex<lru::LruCache<u64, u64>>);

impl Cache for Lru {
    fn get(&self, key: u64) -> Option<u64> {
        let mut lru = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lru.get(&key).copied()
    }
    fn put(&self, key: u64, value: u64) {
        let mut lru = self.0.lock().unwrap_or_else(|e| e.into_inner());
        lru.put(key, value);
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
    let lru = lru::LruCache::new(NonZeroUsize::new(CAPACITY).expect("capacity above 0"));
    vec![
        ("tinyufo", Box::new(TinyUfo::new(CAPACITY, CAPACITY))),
        (
            "tinyufo_compact",
            Box::new(TinyUfo::new_compact(CAPACITY, CAPACITY)),
        ),
        ("lru_mutex", Box::new(Lru(Mutex::new(lru)))),
        ("moka", Box::new(moka::sync::Cache::new(CAPACITY as u64))),
    ]
}

/// Zipf 1.0 keys below `space`, one list per thread.
fn keys(space: usize, threads: usize) -> Vec<Vec<u64>> {
    let zipf = Zipf::new(space as f64, 1.0).expect("valid zipf parameters");
    (0..threads)
        .map(|t| {
            let mut rng = StdRng::seed_from_u64(t as u64);
            (0..BATCH)
                .map(|_| zipf.sample(&mut rng) as u64 - 1)
                .collect()
        })
        .collect()
}

/// Runs `iters` batches on every thread at once and returns the wall time.
fn run(cache: &dyn Cache, keys: &[Vec<u64>], iters: u64, write_on_miss: bool) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for keys in keys {
            s.spawn(move || {
                for _ in 0..iters {
                    for &key in keys {
                        if black_box(cache.get(key)).is_none() && write_on_miss {
                            cache.put(key, key);
                        }
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn workload(c: &mut Criterion, name: &str, space: usize, write_on_miss: bool) {
    let mut group = c.benchmark_group(name);
    for threads in [1, 2] {
        let keys = keys(space, threads);
        group.throughput(Throughput::Elements((BATCH * threads) as u64));
        for (cache_name, cache) in caches() {
            // Fill the cache; for reads, with exactly the keys that will be read.
            for key in 0..CAPACITY as u64 {
                cache.put(key, key);
            }
            group.bench_with_input(BenchmarkId::new(cache_name, threads), &threads, |b, _| {
                b.iter_custom(|iters| run(cache.as_ref(), &keys, iters, write_on_miss))
            });
        }
    }
    group.finish();
}

fn read(c: &mut Criterion) {
    workload(c, "read", CAPACITY, false);
}

fn mixed(c: &mut Criterion) {
    workload(c, "mixed", KEY_SPACE, true);
}

criterion_group!(benches, read, mixed);
criterion_main!(benches);
