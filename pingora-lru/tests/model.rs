//! `Lru` against a plain model: one `VecDeque` per shard, most recently used first, with the
//! totals recomputed from scratch after every step.

use std::collections::VecDeque;

use pingora_lru::Lru;
use proptest::prelude::*;

const SHARDS: usize = 4;
const WEIGHT_LIMIT: usize = 40;
const WATERMARK: usize = 12;

#[derive(Debug, Clone)]
enum Op {
    Admit(u64, usize),
    Promote(u64),
    PromoteTopN(u64, usize),
    IncrementWeight(u64, usize, Option<usize>),
    Remove(u64),
    InsertTail(u64, usize),
    EvictShard(u64),
    EvictToLimit,
    Peek(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..24u64;
    prop_oneof![
        4 => (key.clone(), 0..6usize).prop_map(|(k, w)| Op::Admit(k, w)),
        2 => key.clone().prop_map(Op::Promote),
        1 => (key.clone(), 0..4usize).prop_map(|(k, n)| Op::PromoteTopN(k, n)),
        1 => (key.clone(), 0..4usize, proptest::option::of(1..8usize))
            .prop_map(|(k, d, m)| Op::IncrementWeight(k, d, m)),
        1 => key.clone().prop_map(Op::Remove),
        1 => (key.clone(), 0..6usize).prop_map(|(k, w)| Op::InsertTail(k, w)),
        1 => (0..8u64).prop_map(Op::EvictShard),
        1 => Just(Op::EvictToLimit),
        1 => key.prop_map(Op::Peek),
    ]
}

/// An item in the model: key, data, weight.
type Item = (u64, u64, usize);

#[derive(Default)]
struct Model {
    shards: [VecDeque<Item>; SHARDS],
    evicted_len: usize,
    evicted_weight: usize,
}

impl Model {
    fn shard(&mut self, key: u64) -> &mut VecDeque<Item> {
        &mut self.shards[(key % SHARDS as u64) as usize]
    }

    /// Removes `key` from its shard and returns it.
    fn take(&mut self, key: u64) -> Option<Item> {
        let shard = self.shard(key);
        let at = shard.iter().position(|item| item.0 == key)?;
        shard.remove(at)
    }

    fn weight(&self) -> usize {
        self.shards.iter().flatten().map(|item| item.2).sum()
    }

    fn len(&self) -> usize {
        self.shards.iter().map(VecDeque::len).sum()
    }

    fn over_limit(&self) -> bool {
        self.weight() > WEIGHT_LIMIT || self.len() > WATERMARK
    }
}

/// Applies `op` to both and checks that they answer the same.
fn step(lru: &Lru<u64, SHARDS>, model: &mut Model, op: Op, serial: u64) {
    match op {
        Op::Admit(key, weight) => {
            let data = key * 1000 + serial;
            let shard = lru.admit(key, data, weight);
            assert_eq!(shard, (key % SHARDS as u64) as usize);
            model.take(key);
            model.shard(key).push_front((key, data, weight.max(1)));
        }
        Op::Promote(key) => {
            let item = model.take(key);
            assert_eq!(lru.promote(key), item.is_some());
            if let Some(item) = item {
                model.shard(key).push_front(item);
            }
        }
        Op::PromoteTopN(key, n) => {
            let shard = model.shard(key);
            let position = shard.iter().position(|item| item.0 == key);
            assert_eq!(lru.promote_top_n(key, n), position.is_some());
            if let Some(at) = position.filter(|&at| at >= n) {
                let item = shard.remove(at).unwrap();
                shard.push_front(item);
            }
        }
        Op::IncrementWeight(key, delta, max) => {
            let expected = match model.take(key) {
                Some((k, data, weight)) => {
                    let new = max.map_or(weight + delta, |m| (weight + delta).min(m));
                    model.shard(key).push_front((k, data, new));
                    new
                }
                None => 0,
            };
            assert_eq!(lru.increment_weight(key, delta, max), expected);
        }
        Op::Remove(key) => {
            let expected = model.take(key).map(|(_, data, weight)| (data, weight));
            assert_eq!(lru.remove(key), expected);
        }
        Op::InsertTail(key, weight) => {
            let data = key * 1000 + serial;
            let present = model.shard(key).iter().any(|item| item.0 == key);
            assert_eq!(lru.insert_tail(key, data, weight), !present);
            if !present {
                model.shard(key).push_back((key, data, weight));
            }
        }
        Op::EvictShard(shard) => {
            let expected = model.shards[(shard % SHARDS as u64) as usize].pop_back();
            if let Some((_, _, weight)) = expected {
                model.evicted_len += 1;
                model.evicted_weight += weight;
            }
            let expected = expected.map(|(_, data, weight)| (data, weight));
            assert_eq!(lru.evict_shard(shard), expected);
        }
        Op::EvictToLimit => evict_to_limit(lru, model),
        Op::Peek(key) => {
            let weight = model
                .shard(key)
                .iter()
                .find(|item| item.0 == key)
                .map(|item| item.2);
            assert_eq!(lru.peek(key), weight.is_some());
            assert_eq!(lru.peek_weight(key), weight);
        }
    }
}

/// The shard choice is random, so the model checks what must hold whatever it is: each
/// evicted item was the least recently used of its shard, the LRU was over a limit before each
/// eviction, and it is within the limits (or empty) after.
fn evict_to_limit(lru: &Lru<u64, SHARDS>, model: &mut Model) {
    for (data, weight) in lru.evict_to_limit() {
        assert!(model.over_limit(), "evicted while within the limits");
        let key = data / 1000;
        let lru_end = model.shard(key).pop_back();
        assert_eq!(
            lru_end,
            Some((key, data, weight)),
            "not its shard's LRU item"
        );
        model.evicted_len += 1;
        model.evicted_weight += weight;
    }
    assert!(!model.over_limit() || model.len() == 0);
}

fn compare(lru: &Lru<u64, SHARDS>, model: &Model) {
    for (shard, items) in model.shards.iter().enumerate() {
        let mut seen = Vec::new();
        lru.iter_for_each(shard, |(data, weight)| seen.push((*data, weight)));
        let expected: Vec<_> = items.iter().map(|&(_, data, w)| (data, w)).collect();
        assert_eq!(seen, expected, "shard {shard}");
        assert_eq!(lru.shard_len(shard), items.len());
        assert_eq!(
            lru.shard_weight(shard),
            items.iter().map(|item| item.2).sum::<usize>()
        );
        let tail = items.back().map(|&(_, data, w)| (data, w));
        assert_eq!(lru.peek_lru(shard), tail);
    }
    assert_eq!(lru.len(), model.len());
    assert_eq!(lru.weight(), model.weight());
    assert_eq!(lru.evicted_len(), model.evicted_len);
    assert_eq!(lru.evicted_weight(), model.evicted_weight);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lru_matches_model(ops in proptest::collection::vec(op(), 1..200)) {
        let lru = Lru::<u64, SHARDS>::with_capacity_and_watermark(WEIGHT_LIMIT, 2, Some(WATERMARK));
        let mut model = Model::default();
        for (serial, op) in ops.into_iter().enumerate() {
            step(&lru, &mut model, op, serial as u64);
            compare(&lru, &model);
        }
    }
}
