//! Selection cost per request for each algorithm over 10 and 100 backends, against the floor
//! of indexing a slice with an atomic counter.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pingora_load_balancing::selection::{
    BackendIter, BackendSelection, Consistent, FNVHash, Random, RoundRobin,
};
use pingora_load_balancing::{Backend, LoadBalancer};

fn set(n: usize) -> BTreeSet<Backend> {
    (0..n)
        .map(|i| Backend::new(&format!("10.0.{}.{}:80", i / 250, i % 250 + 1)).unwrap())
        .collect()
}

fn bench_selector<S>(c: &mut Criterion, name: &str)
where
    S: BackendSelection + 'static,
    S::Iter: BackendIter,
{
    let mut group = c.benchmark_group("select_first");
    for n in [10, 100] {
        let selector = Arc::new(S::build(&set(n)));
        let mut i = 0u64;
        group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
            b.iter(|| {
                i += 1;
                selector.iter(&i.to_le_bytes()).next().map(|b| b.weight)
            })
        });
    }
    group.finish();
}

fn bench(c: &mut Criterion) {
    bench_selector::<RoundRobin>(c, "round_robin");
    bench_selector::<Random>(c, "random");
    bench_selector::<FNVHash>(c, "fnv");
    bench_selector::<Consistent>(c, "ketama");

    let mut group = c.benchmark_group("select_first");
    for n in [10, 100] {
        let backends: Vec<Backend> = set(n).into_iter().collect();
        let counter = AtomicUsize::new(0);
        group.bench_with_input(BenchmarkId::new("floor_atomic_index", n), &n, |b, _| {
            b.iter(|| backends[counter.fetch_add(1, Ordering::Relaxed) % backends.len()].weight)
        });
    }
    group.finish();

    // The whole `LoadBalancer::select` path (readiness lookups included).
    let lb = LoadBalancer::<RoundRobin>::try_from_iter((1..=10).map(|i| format!("10.0.0.{i}:80")))
        .unwrap();
    c.bench_function("load_balancer_select/round_robin/10", |b| {
        b.iter(|| lb.select(b"", 16))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
