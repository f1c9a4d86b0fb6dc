use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::*;

fn backends(addrs: &[(&str, usize)]) -> BTreeSet<Backend> {
    addrs
        .iter()
        .map(|(a, w)| Backend::new_with_weight(a, *w).unwrap())
        .collect()
}

fn first<S: BackendSelection>(selector: &Arc<S>, key: &[u8]) -> String
where
    S::Iter: BackendIter,
{
    selector.iter(key).next().unwrap().to_string()
}

#[test]
fn round_robin_is_weighted_exactly() {
    let set = backends(&[("127.0.0.1:1", 1), ("127.0.0.1:2", 3)]);
    let rr = Arc::new(RoundRobin::build(&set));
    let mut counts = HashMap::new();
    for _ in 0..400 {
        *counts.entry(first(&rr, b"")).or_insert(0) += 1;
    }
    assert_eq!(counts["127.0.0.1:1"], 100);
    assert_eq!(counts["127.0.0.1:2"], 300);
}

#[test]
fn fnv_hash_is_sticky_and_spread() {
    let set = backends(&[("127.0.0.1:1", 1), ("127.0.0.1:2", 1), ("127.0.0.1:3", 1)]);
    let hash = Arc::new(FNVHash::build(&set));
    assert_eq!(first(&hash, b"user-42"), first(&hash, b"user-42"));
    let mut counts = HashMap::new();
    for i in 0..3000 {
        *counts
            .entry(first(&hash, format!("key{i}").as_bytes()))
            .or_insert(0) += 1;
    }
    assert_eq!(counts.len(), 3);
    assert!(
        counts.values().all(|&c| (800..1200).contains(&c)),
        "{counts:?}"
    );
    // FNV-1a 64 of "a" (known value).
    assert_eq!(algorithms::fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn random_covers_all() {
    let set = backends(&[("127.0.0.1:1", 1), ("127.0.0.1:2", 1)]);
    let random = Arc::new(Random::build(&set));
    let seen: std::collections::HashSet<_> = (0..200).map(|_| first(&random, b"")).collect();
    assert_eq!(seen.len(), 2);
}

#[test]
fn fallbacks_reach_every_backend_once() {
    let set = backends(&[
        ("127.0.0.1:1", 1),
        ("127.0.0.1:2", 5),
        ("127.0.0.1:3", 1),
        ("127.0.0.1:4", 1),
    ]);
    let hash = Arc::new(FNVHash::build(&set));
    let mut unique = UniqueIterator::new(hash.iter(b"k"), 1000);
    let mut all = Vec::new();
    while let Some(b) = unique.get_next() {
        all.push(b.to_string());
    }
    all.sort();
    assert_eq!(
        all,
        ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3", "127.0.0.1:4"]
    );
    // Bounded by max_iterations.
    let mut one = UniqueIterator::new(hash.iter(b"k"), 1);
    assert!(one.get_next().is_some());
    assert!(one.get_next().is_none());
}

#[test]
fn empty_sets_select_nothing() {
    let empty = BTreeSet::new();
    assert!(Arc::new(RoundRobin::build(&empty))
        .iter(b"")
        .next()
        .is_none());
    assert!(Arc::new(Consistent::build(&empty))
        .iter(b"")
        .next()
        .is_none());
}

#[test]
fn consistent_moves_only_the_removed_backends_keys() {
    let all = backends(&[
        ("10.0.0.1:80", 1),
        ("10.0.0.2:80", 1),
        ("10.0.0.3:80", 1),
        ("10.0.0.4:80", 1),
    ]);
    let before = Arc::new(Consistent::build(&all));
    let mut fewer = all.clone();
    fewer.remove(&Backend::new("10.0.0.3:80").unwrap());
    let after = Arc::new(Consistent::build(&fewer));
    let mut moved = 0;
    for i in 0..4000 {
        let key = format!("key{i}");
        let (b, a) = (
            first(&before, key.as_bytes()),
            first(&after, key.as_bytes()),
        );
        if b != a {
            assert_eq!(b, "10.0.0.3:80", "only keys of the removed backend move");
            moved += 1;
        }
    }
    assert!(
        (700..1300).contains(&moved),
        "about a quarter of the keys move: {moved}"
    );
    // The ring walk offers every backend.
    let mut unique = UniqueIterator::new(before.iter(b"x"), 10_000);
    let mut n = 0;
    while unique.get_next().is_some() {
        n += 1;
    }
    assert_eq!(n, 4);
}
