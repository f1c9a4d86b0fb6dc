//! Bytes of heap per cached item: TinyUFO (both layouts), `lru` and moka, each filled with the
//! same `u64 -> u64` items, measured by a counting global allocator.
//!
//! Run: `cargo bench -p tinyufo --bench memory` (a smaller run without `--bench`).

use pingora_test_support::leaks::{live_heap, CountingAlloc};
use std::num::NonZeroUsize;

use tinyufo::TinyUfo;

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// Heap bytes in use now.
fn in_use() -> isize {
    live_heap().map_or(0, |bytes| bytes as isize)
}

/// Heap bytes per item that `fill` leaves in use, for `items` items.
fn per_item<C>(items: usize, fill: impl FnOnce(usize) -> C) -> f64 {
    let before = in_use();
    let cache = fill(items);
    let used = in_use() - before;
    drop(cache);
    used as f64 / items as f64
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full {
        &[1_000, 10_000, 100_000, 1_000_000]
    } else {
        &[1_000]
    };
    println!("heap bytes per item, u64 keys and values, cache filled to its capacity\n");
    println!("| items | TinyUFO | TinyUFO compact | lru | moka |");
    println!("|---:|---:|---:|---:|---:|");
    for &n in sizes {
        let ufo = per_item(n, |n| {
            let cache = TinyUfo::new(n, n);
            for k in 0..n as u64 {
                cache.put(k, k, 1);
            }
            cache
        });
        let compact = per_item(n, |n| {
            let cache = TinyUfo::new_compact(n, n);
            for k in 0..n as u64 {
                cache.put(k, k, 1);
            }
            cache
        });
        let lru = per_item(n, |n| {
            let mut cache = lru::LruCache::new(NonZeroUsize::new(n).expect("n above 0"));
            for k in 0..n as u64 {
                cache.put(k, k);
            }
            cache
        });
        let moka = per_item(n, |n| {
            let cache = moka::sync::Cache::new(n as u64);
            for k in 0..n as u64 {
                cache.insert(k, k);
            }
            cache.run_pending_tasks();
            cache
        });
        println!("| {n} | {ufo:.1} | {compact:.1} | {lru:.1} | {moka:.1} |");
    }
}
