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
fn random_is_weighted_and_fair() {
    // Weights 1:3 over 100k picks: shares within 5% of 25% / 75%.
    let set = backends(&[("127.0.0.1:1", 1), ("127.0.0.1:2", 3)]);
    let random = Arc::new(Random::build(&set));
    let mut counts = HashMap::new();
    for _ in 0..100_000 {
        *counts.entry(first(&random, b"")).or_insert(0) += 1;
    }
    assert!(
        (23_750..26_250).contains(&counts["127.0.0.1:1"]),
        "{counts:?}"
    );
    assert!(
        (71_250..78_750).contains(&counts["127.0.0.1:2"]),
        "{counts:?}"
    );
}

#[test]
fn weighted_hash_respects_weights() {
    let set = backends(&[("127.0.0.1:1", 1), ("127.0.0.1:2", 2), ("127.0.0.1:3", 5)]);
    // Ketama places points pseudo-randomly (160 per unit of weight): its shares are looser.
    for (name, tolerance_pct, firsts) in [
        ("fnv", 5, {
            let s = Arc::new(FNVHash::build(&set));
            (0..100_000)
                .map(|i| first(&s, format!("k{i}").as_bytes()))
                .collect::<Vec<_>>()
        }),
        ("ketama", 20, {
            let s = Arc::new(Consistent::build(&set));
            (0..100_000)
                .map(|i| first(&s, format!("k{i}").as_bytes()))
                .collect::<Vec<_>>()
        }),
    ] {
        let mut counts = HashMap::new();
        for b in firsts {
            *counts.entry(b).or_insert(0usize) += 1;
        }
        // Shares 1/8, 2/8, 5/8, each within the tolerance of its expected count.
        for (backend, share) in [("127.0.0.1:1", 1), ("127.0.0.1:2", 2), ("127.0.0.1:3", 5)] {
            let expected = 100_000 * share / 8;
            let got = counts[backend];
            assert!(
                got.abs_diff(expected) * 100 <= expected * tolerance_pct,
                "{name}: {backend} got {got}, expected about {expected}"
            );
        }
    }
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

#[tokio::test]
async fn ketama_config_chooses_the_ring() {
    use consistent::{KetamaConfig, KetamaHashing};
    let set = backends(&[("127.0.0.1:1", 1), ("127.0.0.1:2", 1), ("127.0.0.1:3", 1)]);
    let nginx = Arc::new(KetamaHashing::build(&set));
    let same = Arc::new(KetamaHashing::build_with_config(
        &set,
        &KetamaConfig::default(),
    ));
    // One point per server: a coarse ring that places most keys differently.
    let coarse = Arc::new(KetamaHashing::build_with_config(
        &set,
        &KetamaConfig {
            point_multiple: Some(1),
        },
    ));
    let keys: Vec<String> = (0..1000).map(|i| format!("key{i}")).collect();
    let place = |s: &Arc<KetamaHashing>| -> Vec<String> {
        keys.iter().map(|k| first(s, k.as_bytes())).collect()
    };
    assert_eq!(place(&nginx), place(&same));
    let moved = place(&nginx)
        .iter()
        .zip(place(&coarse))
        .filter(|(a, b)| **a != *b)
        .count();
    assert!(moved > 100, "{moved} keys placed differently");
    // The load balancer passes its configuration to every rebuild.
    let lb = crate::LoadBalancer::<KetamaHashing>::from_backends_with_config(
        crate::Backends::new(crate::discovery::Static::new(set.clone())),
        Some(KetamaConfig {
            point_multiple: Some(1),
        }),
    );
    lb.update().await.unwrap();
    for (key, expected) in keys.iter().zip(place(&coarse)).take(50) {
        let chosen = lb.select(key.as_bytes(), 3).unwrap().to_string();
        assert_eq!(chosen, expected);
    }
}
