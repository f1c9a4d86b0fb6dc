//! `linked_list::LinkedList` against `std::collections::LinkedList` and `VecDeque`.
//!
//! * `push_pop`: push 10 000 values at the head, then pop them all from the tail;
//! * `iter`: sum a 10 000-value list;
//! * `promote`: move a random value of a 10 000-value list to the head. Ours does it by index
//!   in O(1); `VecDeque` has to remove it from the middle (O(n)); `std::collections::LinkedList`
//!   has no stable way to do it without walking the list, so it is left out.
//!
//! Run: `cargo bench -p pingora-lru --bench linked_list -- --warm-up-time 1 --measurement-time 2`

use std::collections::{LinkedList as StdList, VecDeque};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pingora_lru::linked_list::LinkedList;

const LEN: u64 = 10_000;

fn bench_push_pop(c: &mut Criterion) {
    let mut group = c.benchmark_group("push_pop");
    group.throughput(Throughput::Elements(LEN));
    group.bench_function("pingora_lru", |b| {
        // The storage is reused from one round to the next, as in an LRU shard.
        let mut list = LinkedList::with_capacity(LEN as usize);
        b.iter(|| {
            for v in 0..LEN {
                list.push_head(v);
            }
            while let Some(v) = list.pop_tail() {
                black_box(v);
            }
        })
    });
    group.bench_function("std_linked_list", |b| {
        let mut list = StdList::new();
        b.iter(|| {
            for v in 0..LEN {
                list.push_front(v);
            }
            while let Some(v) = list.pop_back() {
                black_box(v);
            }
        })
    });
    group.bench_function("vec_deque", |b| {
        let mut list = VecDeque::with_capacity(LEN as usize);
        b.iter(|| {
            for v in 0..LEN {
                list.push_front(v);
            }
            while let Some(v) = list.pop_back() {
                black_box(v);
            }
        })
    });
    group.finish();
}

fn bench_iter(c: &mut Criterion) {
    let mut group = c.benchmark_group("iter");
    group.throughput(Throughput::Elements(LEN));
    let mut ours = LinkedList::with_capacity(LEN as usize);
    let mut std_list = StdList::new();
    let mut deque = VecDeque::new();
    for v in 0..LEN {
        ours.push_head(v);
        std_list.push_front(v);
        deque.push_front(v);
    }
    group.bench_function("pingora_lru", |b| {
        b.iter(|| black_box(&ours).iter().sum::<u64>())
    });
    group.bench_function("std_linked_list", |b| {
        b.iter(|| black_box(&std_list).iter().sum::<u64>())
    });
    group.bench_function("vec_deque", |b| {
        b.iter(|| black_box(&deque).iter().sum::<u64>())
    });
    group.finish();
}

fn bench_promote(c: &mut Criterion) {
    let mut group = c.benchmark_group("promote");
    // A fixed pseudo-random walk over positions.
    let positions: Vec<u64> = (0..1024u64)
        .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % LEN)
        .collect();

    let mut ours = LinkedList::with_capacity(LEN as usize);
    let indices: Vec<usize> = (0..LEN).map(|v| ours.push_head(v)).collect();
    let mut i = 0;
    group.bench_function("pingora_lru", |b| {
        b.iter(|| {
            i = (i + 1) % positions.len();
            ours.promote(indices[positions[i] as usize]);
        })
    });

    let mut deque: VecDeque<u64> = (0..LEN).collect();
    group.bench_function("vec_deque", |b| {
        b.iter(|| {
            i = (i + 1) % positions.len();
            let v = deque.remove(positions[i] as usize).unwrap();
            deque.push_front(v);
        })
    });
    group.finish();
}

criterion_group!(benches, bench_push_pop, bench_iter, bench_promote);
criterion_main!(benches);
