//! Ring lookups against the simplest possible selector, `crc32(key) % n`, which has no
//! consistency at all but shows the floor set by hashing the key.
//!
//! Run: `cargo bench -p pingora-ketama --bench lookup -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pingora_ketama::{Bucket, Continuum};

const KEYS: usize = 4096;

fn backends(n: usize) -> Vec<SocketAddr> {
    (0..n)
        .map(|i| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 443)))
        .collect()
}

fn keys() -> Vec<String> {
    (0..KEYS)
        .map(|i| format!("/assets/v2/objects/{i:08x}.bin"))
        .collect()
}

fn lookup(c: &mut Criterion) {
    let keys = keys();
    let mut group = c.benchmark_group("lookup");
    group.throughput(Throughput::Elements(KEYS as u64));
    for n in [10usize, 100, 1000] {
        let addrs = backends(n);
        let buckets: Vec<_> = addrs.iter().map(|a| Bucket::new(*a, 1)).collect();
        let ring = Continuum::new(&buckets);

        group.bench_with_input(BenchmarkId::new("ketama_node", n), &ring, |b, ring| {
            b.iter(|| {
                for key in &keys {
                    black_box(ring.node(black_box(key.as_bytes())));
                }
            })
        });
        group.bench_with_input(
            BenchmarkId::new("modulo_baseline", n),
            &addrs,
            |b, addrs| {
                b.iter(|| {
                    for key in &keys {
                        let hash = crc32fast::hash(black_box(key.as_bytes())) as usize;
                        black_box(addrs.get(hash % addrs.len()).copied());
                    }
                })
            },
        );
    }
    group.finish();
}

fn build(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    for n in [10usize, 100] {
        let buckets: Vec<_> = backends(n).into_iter().map(|a| Bucket::new(a, 1)).collect();
        group.bench_with_input(
            BenchmarkId::new("continuum_new", n),
            &buckets,
            |b, buckets| b.iter(|| Continuum::new(black_box(buckets))),
        );
    }
    group.finish();
}

criterion_group!(benches, lookup, build);
criterion_main!(benches);
