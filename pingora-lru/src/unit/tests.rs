use super::*;

fn keys(unit: &LruUnit<u64>) -> Vec<u64> {
    unit.keys().collect()
}

/// Checks the unit's bookkeeping against its items.
fn check(unit: &LruUnit<u64>) {
    assert_eq!(unit.slots.len(), unit.order.len());
    let weight: usize = unit.iter().map(|(_, w)| w).sum();
    assert_eq!(weight, unit.used_weight());
    for key in unit.keys() {
        assert_eq!(
            unit.peek(key),
            Some(&key),
            "data follows its key in these tests"
        );
    }
}

#[test]
fn admit_new_and_again() {
    let mut unit = LruUnit::with_capacity(4);
    assert!(unit.is_empty());
    assert_eq!(unit.admit(1, 1, 2), None);
    assert_eq!(unit.admit(2, 2, 3), None);
    assert_eq!(keys(&unit), [2, 1]);
    assert_eq!(unit.used_weight(), 5);

    // Admitting again replaces data and weight and moves the key to the front.
    assert_eq!(unit.admit(1, 1, 7), Some((1, 2)));
    assert_eq!(keys(&unit), [1, 2]);
    assert_eq!((unit.len(), unit.used_weight()), (2, 10));
    assert_eq!(unit.peek_weight(1), Some(7));
    check(&unit);
}

#[test]
fn promote_and_top_n() {
    let mut unit = LruUnit::with_capacity(4);
    for k in 1..=4 {
        unit.admit(k, k, 1);
    }
    assert_eq!(keys(&unit), [4, 3, 2, 1]);
    assert!(unit.promote(2));
    assert_eq!(keys(&unit), [2, 4, 3, 1]);
    assert!(!unit.promote(9));
    assert!(unit.is_in_top_n(2, 1));
    assert!(!unit.is_in_top_n(4, 1));
    assert!(unit.is_in_top_n(4, 2));
    assert!(!unit.is_in_top_n(9, 10));
    check(&unit);
}

#[test]
fn increment_weight_caps_and_promotes() {
    let mut unit = LruUnit::with_capacity(4);
    unit.admit(1, 1, 5);
    unit.admit(2, 2, 1);
    assert_eq!(unit.increment_weight(1, 3, None), Some((5, 8)));
    assert_eq!(keys(&unit), [1, 2]);
    assert_eq!(unit.increment_weight(2, 10, Some(4)), Some((1, 4)));
    // Above the max already: lowered to it.
    assert_eq!(unit.increment_weight(1, 1, Some(6)), Some((8, 6)));
    assert_eq!(unit.increment_weight(1, 100, None), Some((6, 106)));
    assert_eq!(unit.increment_weight(3, 1, None), None);
    assert_eq!(unit.increment_weight(1, 0, Some(2)), Some((106, 2)));
    assert_eq!(unit.used_weight(), 6);
    check(&unit);
}

#[test]
fn evict_remove_and_peek_lru() {
    let mut unit = LruUnit::with_capacity(4);
    assert_eq!(unit.evict(), None);
    assert_eq!(unit.peek_lru(), None);
    for k in 1..=4 {
        unit.admit(k, k, k as usize);
    }
    assert_eq!(unit.peek_lru(), Some((&1, 1)));
    assert_eq!(unit.evict(), Some((1, 1)));
    assert_eq!(unit.remove(3), Some((3, 3)));
    assert_eq!(unit.remove(3), None);
    assert_eq!(unit.peek(3), None);
    assert_eq!(keys(&unit), [4, 2]);
    assert_eq!(unit.used_weight(), 6);
    check(&unit);

    // Freed nodes are reused: no new slots for two more items.
    let slots = unit.order.slots();
    unit.admit(5, 5, 1);
    unit.admit(6, 6, 1);
    assert_eq!(unit.order.slots(), slots);
    assert_eq!(keys(&unit), [6, 5, 4, 2]);
    check(&unit);
}

#[test]
fn insert_tail_rebuilds_order() {
    let mut unit = LruUnit::with_capacity(4);
    unit.admit(1, 1, 1);
    assert!(unit.insert_tail(2, 2, 0));
    assert!(unit.insert_tail(3, 3, 4));
    assert!(!unit.insert_tail(1, 1, 9), "present keys are left alone");
    assert_eq!(keys(&unit), [1, 2, 3]);
    assert_eq!(unit.used_weight(), 5);
    assert_eq!(unit.peek_weight(1), Some(1));
    let weights: Vec<usize> = unit.iter().rev().map(|(_, w)| w).collect();
    assert_eq!(weights, [4, 0, 1]);
    check(&unit);
}

#[test]
fn drops_every_item_once() {
    use std::rc::Rc;
    let counter = Rc::new(());
    {
        let mut unit = LruUnit::with_capacity(2);
        for k in 0..10 {
            unit.admit(k, Rc::clone(&counter), 1);
        }
        unit.admit(3, Rc::clone(&counter), 1);
        drop(unit.evict());
        drop(unit.remove(5));
        assert_eq!(Rc::strong_count(&counter), 9);
    }
    assert_eq!(Rc::strong_count(&counter), 1);
}

#[test]
fn debug_shows_figures_only() {
    let mut unit = LruUnit::with_capacity(1);
    unit.admit(1, "secret", 3);
    let shown = format!("{unit:?} {:?}", unit.iter());
    assert!(
        shown.contains("len: 1") && shown.contains("used_weight: 3"),
        "{shown}"
    );
    assert!(!shown.contains("secret"), "{shown}");
}
