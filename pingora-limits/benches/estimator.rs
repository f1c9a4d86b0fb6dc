//! `Estimator::incr` against the obvious alternative, a `Mutex<HashMap<u64, isize>>`, on one
//! thread and on two threads sharing the counter.
//!
//! Run: `cargo bench -p pingora-limits --bench estimator -- --warm-up-time 1 --measurement-time 2`

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pingora_limits::estimator::Estimator;

/// Increments per measured batch (per thread).
const BATCH: usize = 10_000;
/// Distinct keys.
const KEYS: u64 = 100_000;

trait Counter: Sync {
    fn incr(&self, key: u64, value: isize) -> isize;
}

impl Counter for Estimator {
    fn incr(&self, key: u64, value: isize) -> isize {
        Estimator::incr(self, key, value)
    }
}

struct Naive(Mutex<HashMap<u64, isize>>);

impl Counter for Naive {
    fn incr(&self, key: u64, value: isize) -> isize {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = map.entry(key).or_insert(0);
        *count += value;
        *count
    }
}

/// A cheap key sequence spread over `KEYS` keys.
fn key(thread: usize, i: usize) -> u64 {
    ((i as u64 + thread as u64 * 7919).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20) % KEYS
}

/// Runs `iters` batches on `threads` threads at once and returns the wall time.
fn run<C: Counter>(counter: &C, threads: usize, iters: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                for _ in 0..iters {
                    for i in 0..BATCH {
                        black_box(counter.incr(key(t, i), 1));
                    }
                }
            });
        }
    });
    start.elapsed()
}

fn incr(c: &mut Criterion) {
    let mut group = c.benchmark_group("incr");
    for threads in [1usize, 2] {
        group.throughput(Throughput::Elements((BATCH * threads) as u64));
        let estimator = Estimator::new(4, 8192);
        group.bench_function(BenchmarkId::new("estimator", threads), |b| {
            b.iter_custom(|iters| run(&estimator, threads, iters))
        });
        let naive = Naive(Mutex::new(HashMap::with_capacity(KEYS as usize)));
        group.bench_function(BenchmarkId::new("mutex_hashmap", threads), |b| {
            b.iter_custom(|iters| run(&naive, threads, iters))
        });
    }
    group.finish();
}

criterion_group!(benches, incr);
criterion_main!(benches);
