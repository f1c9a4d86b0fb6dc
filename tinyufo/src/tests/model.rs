//! The cache against a model: a map of what should be resident, driven by what the cache
//! reports (evicted items, removed values).

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const KEY_SPACE: u64 = 24;

#[derive(Clone, Debug)]
enum Op {
    Put { key: u64, weight: u16 },
    ForcePut { key: u64, weight: u16 },
    Get(u64),
    Remove(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEY_SPACE;
    prop_oneof![
        3 => (key.clone(), 0..5u16).prop_map(|(key, weight)| Op::Put { key, weight }),
        1 => (key.clone(), 0..5u16).prop_map(|(key, weight)| Op::ForcePut { key, weight }),
        3 => key.clone().prop_map(Op::Get),
        1 => key.prop_map(Op::Remove),
    ]
}

/// Counts that must balance: every value put is resident, evicted, removed or replaced.
#[derive(Default)]
struct Tally {
    put: usize,
    evicted: usize,
    removed: usize,
    replaced: usize,
}

fn check(cache: &TinyUfo<u64, u64>, limit: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let keys: Vec<u64> = (0..KEY_SPACE).collect();
    // Key -> (value, weight) of what the cache should hold.
    let mut model: HashMap<u64, (u64, u16)> = HashMap::new();
    let mut tally = Tally::default();
    for (serial, op) in ops.iter().enumerate() {
        let value = serial as u64;
        match *op {
            Op::Put { key, weight } | Op::ForcePut { key, weight } => {
                let evicted = if matches!(op, Op::Put { .. }) {
                    cache.put(key, value, weight)
                } else {
                    cache.force_put(key, value, weight)
                };
                tally.put += 1;
                let previous = model.insert(key, (value, weight.max(1)));
                if previous.is_some() {
                    tally.replaced += 1;
                }
                for kv in &evicted {
                    let evicted_key = *cache.key_of(kv, &keys);
                    if evicted_key == key && kv.data != value {
                        // The key's old value, handed back with the new one (too heavy): it
                        // counts as evicted rather than replaced.
                        prop_assert_eq!(previous, Some((kv.data, kv.weight)));
                        tally.replaced -= 1;
                    } else {
                        let was = model.remove(&evicted_key);
                        prop_assert_eq!(was, Some((kv.data, kv.weight)), "evicted {:?}", kv);
                    }
                    tally.evicted += 1;
                }
            }
            Op::Get(key) => {
                let expected = model.get(&key).map(|&(value, _)| value);
                prop_assert_eq!(cache.get(&key), expected, "get {}", key);
            }
            Op::Remove(key) => {
                let expected = model.remove(&key).map(|(value, _)| value);
                if expected.is_some() {
                    tally.removed += 1;
                }
                prop_assert_eq!(cache.remove(&key), expected, "remove {}", key);
            }
        }
        let weight: usize = model.values().map(|&(_, w)| usize::from(w)).sum();
        prop_assert!(weight <= limit, "weight {} over {}", weight, limit);
        prop_assert_eq!(cache.policy.weight(), weight);
        prop_assert_eq!(
            tally.put,
            model.len() + tally.evicted + tally.removed + tally.replaced
        );
    }
    prop_assert_eq!(cache.store.len(), model.len());
    Ok(())
}

proptest! {
    #[test]
    fn new_matches_the_model(limit in 0..16usize, ops in prop::collection::vec(op(), 1..300)) {
        let [fast, _] = layouts::<u64>(limit, limit);
        check(&fast, limit, &ops)?;
    }

    #[test]
    fn new_compact_matches_the_model(limit in 0..16usize, ops in prop::collection::vec(op(), 1..300)) {
        let [_, compact] = layouts::<u64>(limit, limit);
        check(&compact, limit, &ops)?;
    }
}
