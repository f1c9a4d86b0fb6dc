use super::*;

/// The data of shard `shard`, most recently used first.
fn shard_items<const N: usize>(lru: &Lru<u64, N>, shard: usize) -> Vec<u64> {
    let mut items = Vec::new();
    lru.iter_for_each(shard, |(data, _)| items.push(*data));
    items
}

/// Checks every total against the shards' contents.
fn check<const N: usize>(lru: &Lru<u64, N>) {
    let mut len = 0;
    let mut weight = 0;
    for shard in 0..N {
        let mut shard_weight = 0;
        let mut shard_len = 0;
        lru.iter_for_each(shard, |(_, w)| {
            shard_weight += w;
            shard_len += 1;
        });
        assert_eq!(lru.shard_len(shard), shard_len, "shard {shard}");
        assert_eq!(lru.shard_weight(shard), shard_weight, "shard {shard}");
        len += shard_len;
        weight += shard_weight;
    }
    assert_eq!(lru.len(), len);
    assert_eq!(lru.weight(), weight);
    assert_eq!(lru.is_empty(), len == 0);
}

/// A random source that always picks shard `first` then shard `second` (of `N`).
fn picks(first: u32, second: u32) -> impl FnMut() -> u64 {
    move || (u64::from(second) << 32) | u64::from(first)
}

#[test]
fn admit_and_readmit_update_weight() {
    let lru = Lru::<u64, 2>::with_capacity(30, 4);
    assert!(lru.is_empty());
    assert_eq!(lru.admit(2, 2, 3), 0);
    assert_eq!((lru.len(), lru.weight()), (1, 3));
    assert_eq!(lru.admit(2, 20, 1), 0, "same shard again");
    assert_eq!((lru.len(), lru.weight()), (1, 1));
    assert_eq!(lru.admit(2, 2, 5), 0);
    assert_eq!((lru.len(), lru.weight()), (1, 5));
    assert_eq!(lru.admit(3, 3, 3), 1);
    assert_eq!(lru.admit(4, 4, 0), 0, "weight 0 counts as 1");
    assert_eq!(lru.peek_weight(4), Some(1));
    assert_eq!((lru.len(), lru.weight()), (3, 5 + 3 + 1));
    assert_eq!(shard_items(&lru, 0), [4, 2]);
    check(&lru);
}

#[test]
fn readmit_replaces_data_and_promotes() {
    let lru = Lru::<u64, 1>::with_capacity(30, 4);
    lru.admit(1, 10, 1);
    lru.admit(2, 20, 1);
    lru.admit(1, 11, 1);
    assert_eq!(shard_items(&lru, 0), [11, 20]);
    assert_eq!(lru.len(), 1 + 1);
}

#[test]
fn promote_moves_within_its_shard() {
    let lru = Lru::<u64, 2>::with_capacity(30, 4);
    for k in 2..=6 {
        lru.admit(k, k, k as usize);
    }
    assert_eq!(shard_items(&lru, 0), [6, 4, 2]);
    assert_eq!(shard_items(&lru, 1), [5, 3]);
    assert!(lru.promote(3));
    assert_eq!(shard_items(&lru, 1), [3, 5]);
    assert!(lru.promote(2));
    assert_eq!(shard_items(&lru, 0), [2, 6, 4]);
    assert!(!lru.promote(7));
    assert_eq!(shard_items(&lru, 1), [3, 5]);
    check(&lru);
}

#[test]
fn promote_top_n_skips_keys_near_the_front() {
    let lru = Lru::<u64, 1>::with_capacity(30, 4);
    for k in [4, 6, 2] {
        lru.admit(k, k, 1);
    }
    assert_eq!(shard_items(&lru, 0), [2, 6, 4]);
    assert!(lru.promote_top_n(2, 1));
    assert!(lru.promote_top_n(4, 3), "within the top 3: stays");
    assert_eq!(shard_items(&lru, 0), [2, 6, 4]);
    assert!(lru.promote_top_n(4, 2));
    assert_eq!(shard_items(&lru, 0), [4, 2, 6]);
    assert!(lru.promote_top_n(6, 0), "top 0 always promotes");
    assert_eq!(shard_items(&lru, 0), [6, 4, 2]);
    assert!(!lru.promote_top_n(7, 1));
    assert!(!lru.promote_top_n(7, 10));
}

#[test]
fn increment_weight_with_and_without_max() {
    let lru = Lru::<u64, 2>::with_capacity(6, 4);
    lru.admit(1, 1, 1);
    lru.admit(3, 3, 1);
    assert_eq!(lru.increment_weight(1, 1, None), 2);
    assert_eq!(shard_items(&lru, 1), [1, 3], "incrementing promotes");
    assert_eq!(lru.weight(), 3);
    assert_eq!(lru.increment_weight(0, 1000, None), 0, "absent");
    assert_eq!(lru.weight(), 3);

    lru.admit(2, 2, 2);
    assert_eq!(lru.increment_weight(2, 2, None), 4);
    assert_eq!(lru.weight(), 2 + 1 + 4);
    assert_eq!(lru.increment_weight(2, 2, Some(5)), 5, "capped at the max");
    assert_eq!(lru.increment_weight(2, 0, Some(3)), 3, "lowered to the max");
    assert_eq!(lru.weight(), 2 + 1 + 3);
    assert_eq!(lru.shard_weight(0), 3);
    check(&lru);
}

#[test]
fn evict_to_limit_takes_the_lru_of_the_chosen_shard() {
    let lru = Lru::<u64, 2>::with_capacity(14, 4);
    for (k, w) in [(2, 2), (3, 2), (4, 4), (5, 4), (6, 2), (7, 2)] {
        lru.admit(k, k, w);
    }
    assert_eq!((lru.weight(), lru.len()), (16, 6));
    // Both shards have 3 items: the first pick (shard 1) wins ties.
    let evicted = lru.evict_to_limit_with(picks(1, 0));
    assert_eq!(evicted, [(3, 2)]);
    assert_eq!((lru.weight(), lru.len()), (14, 5));
    assert_eq!((lru.evicted_weight(), lru.evicted_len()), (2, 1));
    // Shard 0 is now the longer one, so it is chosen whatever the first pick.
    lru.admit(8, 8, 4);
    let evicted = lru.evict_to_limit_with(picks(1, 0));
    assert_eq!(evicted, [(2, 2), (4, 4)], "the LRU end, in eviction order");
    assert_eq!(shard_items(&lru, 0), [8, 6]);
    assert_eq!((lru.evicted_weight(), lru.evicted_len()), (8, 3));
    assert_eq!(lru.weight(), 12);
    check(&lru);
}

#[test]
fn evict_to_limit_returns_all_evicted() {
    let lru = Lru::<u64, 2>::with_capacity(6, 4);
    for k in 2..=7 {
        lru.admit(k, k, 2);
    }
    let evicted = lru.evict_to_limit();
    assert_eq!(evicted.len(), 3);
    assert!(evicted.iter().all(|(_, w)| *w == 2));
    assert_eq!((lru.weight(), lru.len()), (6, 3));
    assert_eq!((lru.evicted_weight(), lru.evicted_len()), (6, 3));
    for (k, _) in &evicted {
        assert!(!lru.peek(*k));
    }
    // Within the limit: nothing more.
    assert!(lru.evict_to_limit().is_empty());
    check(&lru);
}

#[test]
fn evict_to_limit_probes_past_empty_shards() {
    let lru = Lru::<u64, 8>::with_capacity(2, 4);
    for k in 0..8 {
        lru.admit(k * 8, k * 8, 1); // all in shard 0
    }
    // Both picks land on empty shards: the probe walks on to shard 0.
    let evicted = lru.evict_to_limit_with(picks(3, 5));
    assert_eq!(
        evicted.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        [0, 8, 16, 24, 32, 40]
    );
    assert_eq!(lru.weight(), 2);
    check(&lru);
}

#[test]
fn evict_to_limit_stops_when_every_shard_is_empty() {
    let lru = Lru::<u64, 4>::with_capacity(10, 4);
    // Totals above the limit with empty shards (skewed bookkeeping) must not loop forever.
    lru.totals.change(0, 100);
    assert!(lru.evict_to_limit().is_empty());
    let lru = Lru::<u64, 4>::with_capacity(0, 4);
    assert!(lru.evict_to_limit().is_empty());
}

#[test]
fn evict_to_limit_with_one_shard() {
    let lru = Lru::<u64, 1>::with_capacity(2, 4);
    for k in 0..5 {
        lru.admit(k, k, 1);
    }
    let evicted = lru.evict_to_limit();
    assert_eq!(evicted, [(0, 1), (1, 1), (2, 1)]);
    assert_eq!(lru.weight(), 2);
}

#[test]
fn evict_to_limit_prefers_longer_shards() {
    // Shard 0 has 50 items, shard 1 has 10; evicting 30 should take most from shard 0.
    let mut from_shard0 = 0;
    let mut total = 0;
    for _ in 0..50 {
        let lru = Lru::<u64, 2>::with_capacity(30, 64);
        for k in 0..50 {
            lru.admit(k * 2, k * 2, 1);
        }
        for k in 0..10 {
            lru.admit(k * 2 + 1, k * 2 + 1, 1);
        }
        let evicted = lru.evict_to_limit();
        assert_eq!(lru.weight(), 30);
        from_shard0 += evicted.iter().filter(|(k, _)| k % 2 == 0).count();
        total += evicted.len();
    }
    // Uniform choice would give about half; two choices about three quarters.
    let share = from_shard0 as f64 / total as f64;
    assert!((0.65..0.95).contains(&share), "{share}");
}

#[test]
fn watermark_limits_the_item_count() {
    let lru = Lru::<u64, 2>::with_capacity_and_watermark(usize::MAX / 2, 4, Some(4));
    for k in 2..=7 {
        lru.admit(k, k, 1);
    }
    assert_eq!(lru.len(), 6);
    let evicted = lru.evict_to_limit();
    assert_eq!(evicted.len(), 2);
    assert_eq!((lru.len(), lru.evicted_len()), (4, 2));

    // Zero-weight items (through insert_tail) are evicted by the watermark alone.
    let lru = Lru::<u64, 2>::with_capacity_and_watermark(usize::MAX / 2, 4, Some(2));
    for k in 0..6 {
        lru.insert_tail(k, k, 0);
    }
    assert_eq!((lru.len(), lru.weight()), (6, 0));
    assert_eq!(lru.evict_to_limit().len(), 4);
    assert_eq!(lru.len(), 2);
    check(&lru);
}

#[test]
fn weight_and_watermark_together() {
    let lru = Lru::<u64, 1>::with_capacity_and_watermark(10, 4, Some(3));
    lru.admit(1, 1, 8);
    lru.admit(2, 2, 1);
    lru.admit(3, 3, 1);
    lru.admit(4, 4, 1);
    // 11 > 10 and 4 > 3: evicting key 1 fixes both.
    assert_eq!(lru.evict_to_limit(), [(1, 8)]);
    assert_eq!((lru.len(), lru.weight()), (3, 3));
}

#[test]
fn evict_shard_takes_its_lru() {
    let lru = Lru::<u64, 2>::with_capacity(30, 4);
    for k in 2..=5 {
        lru.admit(k, k, k as usize);
    }
    assert_eq!(lru.evict_shard(1), Some((3, 3)));
    assert_eq!(lru.evict_shard(7), Some((5, 5)), "shard 7 % 2 = 1");
    assert_eq!(lru.evict_shard(1), None);
    assert_eq!(lru.evict_shard(0), Some((2, 2)));
    assert_eq!((lru.evicted_weight(), lru.evicted_len()), (10, 3));
    assert_eq!((lru.len(), lru.weight()), (1, 4));
    check(&lru);
}

#[test]
fn remove_is_not_an_eviction() {
    let lru = Lru::<u64, 2>::with_capacity(30, 4);
    for k in 2..=6 {
        lru.admit(k, k, k as usize);
    }
    assert_eq!(lru.remove(6), Some((6, 6)));
    assert_eq!(shard_items(&lru, 0), [4, 2]);
    assert_eq!(lru.remove(3), Some((3, 3)));
    assert_eq!(shard_items(&lru, 1), [5]);
    assert_eq!(lru.remove(7), None);
    assert_eq!((lru.len(), lru.weight()), (3, 2 + 4 + 5));
    assert_eq!((lru.evicted_weight(), lru.evicted_len()), (0, 0));
    check(&lru);
}

#[test]
fn insert_tail_appends_and_ignores_present_keys() {
    let lru = Lru::<u64, 2>::with_capacity(30, 4);
    for k in 2..=6 {
        lru.admit(k, k, k as usize);
    }
    assert!(lru.insert_tail(7, 7, 7));
    assert_eq!(shard_items(&lru, 1), [5, 3, 7]);
    assert!(!lru.insert_tail(6, 60, 1));
    assert_eq!(lru.peek_weight(6), Some(6));
    assert_eq!((lru.len(), lru.weight()), (6, 27));
    assert_eq!(lru.peek_lru(1), Some((7, 7)));
    check(&lru);
}

#[test]
fn peeks_do_not_reorder() {
    let lru = Lru::<u64, 1>::with_capacity(10, 4);
    assert_eq!(lru.peek_lru(0), None);
    lru.admit(1, 10, 1);
    lru.admit(2, 20, 2);
    assert!(lru.peek(1) && lru.peek(2) && !lru.peek(3));
    assert_eq!(lru.peek_weight(2), Some(2));
    assert_eq!(lru.peek_weight(3), None);
    assert_eq!(lru.peek_lru(0), Some((10, 1)));
    assert_eq!(shard_items(&lru, 0), [20, 10]);
    lru.promote(1);
    assert_eq!(lru.peek_lru(0), Some((20, 2)));
    assert_eq!(lru.peek_lru(1), None, "out of range");
}

#[test]
fn shard_figures() {
    let lru = Lru::<u64, 4>::with_capacity(100, 4);
    assert_eq!(lru.shards(), 4);
    for k in 0..10 {
        lru.admit(k, k, 10 + k as usize);
    }
    assert_eq!(
        (0..4).map(|s| lru.shard_len(s)).collect::<Vec<_>>(),
        [3, 3, 2, 2]
    );
    assert_eq!(lru.shard_weight(1), 11 + 15 + 19);
    lru.remove(5);
    lru.increment_weight(1, 5, None);
    assert_eq!((lru.shard_len(1), lru.shard_weight(1)), (2, 16 + 19));
    check(&lru);
}

#[test]
#[should_panic]
fn iter_for_each_out_of_range_panics() {
    let lru = Lru::<u64, 2>::with_capacity(10, 4);
    lru.iter_for_each(2, |_| {});
}

#[test]
fn shards_do_not_share_cache_lines() {
    assert_eq!(std::mem::align_of::<Shard<u64>>(), 128);
    assert_eq!(std::mem::size_of::<Shard<u64>>() % 128, 0);
}

#[test]
fn concurrent_use_keeps_totals_exact() {
    let lru = Lru::<u64, 8>::with_capacity(500, 64);
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let lru = &lru;
            s.spawn(move || {
                for i in 0..5_000u64 {
                    let key = (i * 31 + t * 7) % 2_000;
                    match i % 5 {
                        0 => _ = lru.remove(key),
                        1 => _ = lru.increment_weight(key, 1, Some(4)),
                        2 => _ = lru.evict_to_limit(),
                        3 => _ = lru.promote_top_n(key, 2),
                        _ => _ = lru.admit(key, key, 1 + (i % 3) as usize),
                    }
                }
            });
        }
    });
    check(&lru);
    lru.evict_to_limit();
    assert!(lru.weight() <= 500);
    check(&lru);
}

#[test]
fn debug_shows_figures() {
    let lru = Lru::<u64, 2>::with_capacity_and_watermark(10, 4, Some(5));
    lru.admit(1, 1, 3);
    let shown = format!("{lru:?}");
    assert!(
        shown.contains("shards: 2") && shown.contains("weight: 3"),
        "{shown}"
    );
    assert!(shown.contains("len_watermark: Some(5)"), "{shown}");
}

#[test]
fn random_numbers_spread() {
    let draws: Vec<u64> = (0..64).map(|_| next_random()).collect();
    let mut unique = draws.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), draws.len());
    // Both halves feed shard choices: each must vary.
    assert!(draws.iter().any(|d| d % 2 == 0) && draws.iter().any(|d| d % 2 == 1));
    assert!(draws.iter().any(|d| (d >> 32) % 2 == 0) && draws.iter().any(|d| (d >> 32) % 2 == 1));
}

#[test]
fn types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Lru<String, 4>>();
    assert_send_sync::<LruUnit<String>>();
    assert_send_sync::<linked_list::LinkedList>();
}
