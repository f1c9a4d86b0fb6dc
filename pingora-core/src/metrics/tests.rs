use std::time::Duration;

use super::*;

// The switches are process-wide and unit tests run in parallel: only this test flips them.
#[test]
fn groups_switch_off_and_on_one_at_a_time() {
    for group in Group::ALL {
        assert!(is_enabled(group), "{} is on by default", group.name());
    }
    for group in Group::ALL {
        disable(group);
        assert!(!is_enabled(group));
        for other in Group::ALL.into_iter().filter(|g| *g != group) {
            assert!(is_enabled(other), "{} stays on", other.name());
        }
        // Recording in a group switched off counts nothing.
        if group == Group::Downstream {
            let before = builtin::ACCEPTED.get();
            assert!(connection_accepted().is_none());
            assert_eq!(builtin::ACCEPTED.get(), before);
        }
        disable(group);
        assert!(!is_enabled(group), "switching off twice keeps it off");
        enable(group);
        assert!(is_enabled(group));
    }
    let names: Vec<_> = Group::ALL.iter().map(|g| g.name()).collect();
    assert_eq!(
        names,
        [
            "downstream",
            "proxy",
            "upstream",
            "tls",
            "http2",
            "cache",
            "process"
        ]
    );
}

#[test]
fn a_gauge_guard_takes_its_count_off_when_dropped() {
    static GAUGE: Gauge = Gauge::new();
    let first = GAUGE.track();
    let second = GAUGE.track();
    assert_eq!(GAUGE.get(), 2);
    drop(first);
    assert_eq!(GAUGE.get(), 1);
    drop(second);
    assert_eq!(GAUGE.get(), 0);
}

#[test]
fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
    let histogram = Histogram::new();
    histogram.observe(Duration::from_micros(500)); // on the first bound
    histogram.observe(Duration::from_micros(501));
    histogram.observe(Duration::from_millis(30));
    histogram.observe(Duration::from_secs(60)); // beyond the last bound: +Inf only
    let snapshot = histogram.snapshot();
    assert_eq!(snapshot.count, 4);
    assert_eq!(snapshot.cumulative[0], 1, "le 0.0005");
    assert_eq!(snapshot.cumulative[1], 2, "le 0.001");
    assert_eq!(snapshot.cumulative[5], 2, "le 0.025");
    assert_eq!(snapshot.cumulative[6], 3, "le 0.05");
    assert_eq!(snapshot.cumulative[13], 3, "le 10");
    assert!((snapshot.sum - 60.031_001).abs() < 1e-9, "{}", snapshot.sum);
    assert_eq!(Histogram::new().snapshot().cumulative, [0; 14]);
}

#[test]
fn each_bound_is_inclusive_to_the_microsecond() {
    for (i, seconds) in DURATION_BUCKETS.iter().enumerate() {
        let bound = Duration::from_secs_f64(*seconds);
        let at = Histogram::new();
        at.observe(bound);
        let at = at.snapshot();
        assert_eq!(at.cumulative[i], 1, "{seconds} s falls in its own bucket");
        if i > 0 {
            assert_eq!(
                at.cumulative[i - 1],
                0,
                "{seconds} s is above the bucket before"
            );
        }
        let above = Histogram::new();
        above.observe(bound + Duration::from_micros(1));
        assert_eq!(above.snapshot().cumulative[i], 0, "{seconds} s + 1 us");
    }
}

#[test]
fn families_are_named_in_prometheus_style_and_registered_once() {
    static EXTRA: Counter = Counter::new();
    static MORE: [Family; 1] = [Family {
        name: "pingora_test_things_total",
        help: "Things.",
        group: Group::Proxy,
        label: None,
        samples: Samples::Counters(&[("", &EXTRA)]),
    }];
    register(&MORE);
    register(&MORE);
    let all = families();
    let extra = all
        .iter()
        .filter(|f| f.name == "pingora_test_things_total")
        .count();
    assert_eq!(extra, 1);
    for family in all {
        assert!(family.name.starts_with("pingora_"), "{}", family.name);
        if let Samples::Counters(_) = family.samples {
            assert!(family.name.ends_with("_total"), "{}", family.name);
        }
        if let Samples::Histograms(_) = family.samples {
            assert!(family.name.ends_with("_seconds"), "{}", family.name);
        }
    }
}
