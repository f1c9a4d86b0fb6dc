//! `Lru` against the obvious alternative, the `lru` crate's `LruCache` behind a mutex, on one
//! thread and on two threads sharing the cache.
//!
//! * `promote`: 100 000 items, each operation promotes an existing key (`LruCache::get`);
//! * `admit_evict`: the cache is full, each operation admits a new key and evicts one
//!   (`Lru::admit` + `Lru::evict_to_limit`; `LruCache::push`, and for the same shape as ours,
//!   `LruCache::put` + `LruCache::pop_lru` under two locks, the item returned in a `Vec`).
//!
//! Both sides hash with foldhash and lock with `parking_lot`, so the comparison is of the
//! structures and of sharding. `Lru` runs with 1 shard (no sharding) and 16 shards.
//!
//! Run: `cargo bench -p pingora-lru --bench lru -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use foldhash::fast::RandomState;
use parking_lot::Mutex;
use pingora_lru::Lru;

/// Items in the cache.
const ITEMS: u64 = 100_000;
/// Operations per measured batch (per thread).
const BATCH: u64 = 10_000;

/// The operations measured, for each contender.
trait Cache: Sync {
    fn promote(&self, key: u64);
    fn admit_evict(&self, key: u64);
}

impl<const N: usize> Cache for Lru<u64, N> {
    fn promote(&self, key: u64) {
        black_box(Lru::promote(self, key));
    }

    fn admit_evict(&self, key: u64) {
        self.admit(key, key, 1);
        black_box(self.evict_to_limit());
    }
}

struct Baseline(Mutex<lru::LruCache<u64, u64, RandomState>>);

impl Cache for Baseline {
    fn promote(&self, key: u64) {
        black_box(self.0.lock().get(&key).copied());
    }

    fn admit_evict(&self, key: u64) {
        black_box(self.0.lock().push(key, key));
    }
}

/// The baseline used the way `Lru` must be: one call to add, another to evict, each taking
/// the lock, the evicted item returned in a `Vec`.
struct TwoCalls(Baseline);

impl Cache for TwoCalls {
    fn promote(&self, key: u64) {
        self.0.promote(key);
    }

    fn admit_evict(&self, key: u64) {
        self.0 .0.lock().put(key, key);
        black_box(Vec::from_iter(self.0 .0.lock().pop_lru()));
    }
}

/// Numbers for keys never used before: above those of the warm-up.
static NEXT: AtomicU64 = AtomicU64::new(1 << 40);

/// Fills `cache`, then replaces every item twice over, so hash tables and free lists have
/// reached their steady size before anything is measured. The items present afterwards are
/// (about, for several shards) those of numbers `2 * ITEMS..3 * ITEMS`.
fn warmed_up<C: Cache>(cache: C, fill: impl Fn(&C, u64)) -> C {
    for key in 0..ITEMS {
        fill(&cache, mix(key));
    }
    for n in ITEMS..3 * ITEMS {
        cache.admit_evict(mix(n));
    }
    cache
}

fn full_lru<const N: usize>() -> Lru<u64, N> {
    let lru = Lru::with_capacity(ITEMS as usize, ITEMS as usize / N + 1);
    warmed_up(lru, |lru, key| _ = lru.admit(key, key, 1))
}

fn baseline(capacity: u64) -> Baseline {
    let capacity = NonZeroUsize::new(capacity as usize).unwrap();
    Baseline(Mutex::new(lru::LruCache::with_hasher(
        capacity,
        RandomState::default(),
    )))
}

fn full_baseline() -> Baseline {
    warmed_up(baseline(ITEMS), |cache, key| {
        cache.0.lock().put(key, key);
    })
}

/// One spare place, so that `put` never evicts and `pop_lru` does.
fn full_two_calls() -> TwoCalls {
    warmed_up(TwoCalls(baseline(ITEMS + 1)), |cache, key| {
        cache.0 .0.lock().put(key, key);
    })
}

/// Spreads `i` over the u64 range like a hash would (SplitMix64's finaliser).
fn mix(i: u64) -> u64 {
    let mut z = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Runs `iters` batches of `op` on `threads` threads at once and returns the wall time. Each
/// call of `op` gets a number of its own: `base`, then the numbers after it.
fn run(threads: u64, iters: u64, base: u64, op: &(dyn Fn(u64) + Sync)) -> Duration {
    let per_thread = iters * BATCH;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let first = base + t * per_thread;
                for n in first..first + per_thread {
                    op(n);
                }
            });
        }
    });
    start.elapsed()
}

fn bench_promote(c: &mut Criterion) {
    let mut group = c.benchmark_group("promote");
    let contenders: [(&str, Box<dyn Cache>); 3] = [
        ("pingora_lru_1_shard", Box::new(full_lru::<1>())),
        ("pingora_lru_16_shards", Box::new(full_lru::<16>())),
        ("lru_crate_mutex", Box::new(full_baseline())),
    ];
    for threads in [1, 2] {
        group.throughput(Throughput::Elements(BATCH * threads));
        for (name, cache) in &contenders {
            let cache = cache.as_ref();
            // A key picked at random among those present after the warm-up.
            let op = |n: u64| cache.promote(mix(2 * ITEMS + mix(n) % ITEMS));
            group.bench_function(BenchmarkId::new(*name, threads), |b| {
                b.iter_custom(|iters| run(threads, iters, 0, &op))
            });
        }
    }
    group.finish();
}

fn bench_admit_evict(c: &mut Criterion) {
    let mut group = c.benchmark_group("admit_evict");
    let contenders: [(&str, Box<dyn Cache>); 4] = [
        ("pingora_lru_1_shard", Box::new(full_lru::<1>())),
        ("pingora_lru_16_shards", Box::new(full_lru::<16>())),
        ("lru_crate_mutex", Box::new(full_baseline())),
        ("lru_crate_mutex_two_calls", Box::new(full_two_calls())),
    ];
    for threads in [1, 2] {
        group.throughput(Throughput::Elements(BATCH * threads));
        for (name, cache) in &contenders {
            let cache = cache.as_ref();
            let op = |n: u64| cache.admit_evict(mix(n));
            group.bench_function(BenchmarkId::new(*name, threads), |b| {
                b.iter_custom(|iters| {
                    let base = NEXT.fetch_add(threads * iters * BATCH, Ordering::Relaxed);
                    run(threads, iters, base, &op)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_promote, bench_admit_evict);
criterion_main!(benches);
