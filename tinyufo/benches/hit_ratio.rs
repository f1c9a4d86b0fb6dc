//! Hit ratio on zipf-distributed keys: TinyUFO (both layouts) against an LRU (the `lru` crate)
//! and moka (TinyLFU + LRU) in the same run, on the same key sequence, printed as a table.
//!
//! Each request is a read; a miss puts the key (weight 1). Run:
//! `cargo bench -p tinyufo --bench hit_ratio`. Without `--bench` (as under `cargo test
//! --benches`) it runs a short smoke version.

use std::num::NonZeroUsize;

use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};
use tinyufo::TinyUfo;

/// Distinct keys.
const KEYS: usize = 100_000;

struct Row {
    exponent: f64,
    share: f64,
    ratios: [f64; 4],
}

fn run(exponent: f64, share: f64, requests: usize) -> Row {
    let capacity = (share * KEYS as f64).round() as usize;
    let zipf = Zipf::new(KEYS as f64, exponent).expect("valid zipf parameters");
    let mut rng = StdRng::seed_from_u64(0x5eed);

    let mut lru = lru::LruCache::new(NonZeroUsize::new(capacity).expect("capacity above 0"));
    let moka = moka::sync::Cache::new(capacity as u64);
    let ufo = TinyUfo::new(capacity, capacity);
    let compact = TinyUfo::new_compact(capacity, capacity);
    let mut hits = [0usize; 4];

    for _ in 0..requests {
        let key = zipf.sample(&mut rng) as u64;
        if lru.get(&key).is_some() {
            hits[0] += 1;
        } else {
            lru.put(key, ());
        }
        if moka.get(&key).is_some() {
            hits[1] += 1;
        } else {
            moka.insert(key, ());
        }
        if ufo.get(&key).is_some() {
            hits[2] += 1;
        } else {
            ufo.put(key, (), 1);
        }
        if compact.get(&key).is_some() {
            hits[3] += 1;
        } else {
            compact.put(key, (), 1);
        }
    }
    Row {
        exponent,
        share,
        ratios: hits.map(|h| h as f64 * 100.0 / requests as f64),
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let requests = if full { 2_000_000 } else { 20_000 };
    println!("hit ratio, {KEYS} keys, {requests} requests per row (same keys for every cache)\n");
    println!("| zipf | cache size | LRU | moka | TinyUFO | TinyUFO compact | TinyUFO - LRU | TinyUFO - moka |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for exponent in [0.9, 1.0] {
        for share in [0.005, 0.01, 0.05, 0.1] {
            let row = run(exponent, share, requests);
            let [lru, moka, ufo, compact] = row.ratios;
            println!(
                "| {:.1} | {:.1}% | {lru:.2}% | {moka:.2}% | {ufo:.2}% | {compact:.2}% | {:+.2} pp | {:+.2} pp |",
                row.exponent,
                row.share * 100.0,
                ufo - lru,
                ufo - moka,
            );
        }
    }
}
