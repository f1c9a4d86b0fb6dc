use std::thread::sleep;

use super::*;

const INTERVAL: Duration = Duration::from_millis(100);

/// Sleeps until `fraction` of the way into window `window` of `rate`, then checks that the
/// clock really is in that window (a machine too busy to wake within the window fails loudly
/// rather than testing the wrong thing).
fn sleep_until(rate: &Rate, window: u32, fraction: f64) {
    let target = rate.start + rate.interval.mul_f64(f64::from(window) + fraction);
    if let Some(left) = target.checked_duration_since(Instant::now()) {
        sleep(left);
    }
    assert_eq!(
        rate.now().0,
        u64::from(window),
        "overslept into a later window"
    );
}

fn components(rate: &Rate, key: &str) -> RateComponents {
    rate.rate_with(&key, |c| c)
}

#[test]
fn observe_counts_the_current_window_and_rate_reports_the_previous() {
    let r = Rate::new(INTERVAL);
    let key = 1;

    // Window 0.
    assert_eq!(r.observe(&key, 3), 3);
    assert_eq!(r.observe(&key, 2), 5);
    assert_eq!(r.rate(&key), 0.0, "no window has completed yet");

    // Window 1: 5 events in 100 ms is 50 per second.
    sleep_until(&r, 1, 0.25);
    assert_eq!(r.observe(&key, 4), 4);
    assert_eq!(r.rate(&key), 50.0);

    // Window 2, nothing observed yet: window 1 is now the previous one.
    sleep_until(&r, 2, 0.25);
    assert_eq!(r.rate(&key), 40.0);

    // Window 3: window 2 saw nothing.
    sleep_until(&r, 3, 0.25);
    assert_eq!(r.rate(&key), 0.0);
}

#[test]
fn rate_with_exposes_both_windows() {
    let r = Rate::new(INTERVAL);
    r.observe(&"k", 5);
    r.observe(&"other", 100);

    sleep_until(&r, 0, 0.3);
    let c = components(&r, "k");
    assert_eq!((c.prev_samples, c.curr_samples), (0, 5));
    assert_eq!(c.interval, INTERVAL);
    assert!((0.3..1.0).contains(&c.current_interval_fraction), "{c:?}");

    sleep_until(&r, 1, 0.5);
    let c = components(&r, "k");
    assert_eq!((c.prev_samples, c.curr_samples), (5, 0));
    assert!((0.5..1.0).contains(&c.current_interval_fraction), "{c:?}");
    r.observe(&"k", 4);
    let c = components(&r, "k");
    assert_eq!((c.prev_samples, c.curr_samples), (5, 4));

    sleep_until(&r, 2, 0.25);
    let c = components(&r, "k");
    assert_eq!((c.prev_samples, c.curr_samples), (4, 0));

    sleep_until(&r, 4, 0.25);
    let c = components(&r, "k");
    assert_eq!((c.prev_samples, c.curr_samples), (0, 0));
}

#[test]
fn custom_rate_functions_see_the_counts() {
    let r = Rate::new(INTERVAL);
    let ninety_ten = |c: RateComponents| {
        (c.prev_samples as f64 * 0.1 + c.curr_samples as f64 * 0.9) / c.interval.as_secs_f64()
    };
    r.observe(&1, 3);
    r.observe(&1, 2);
    assert!((r.rate_with(&1, ninety_ten) - 45.0).abs() < 1e-9);

    sleep_until(&r, 1, 0.25);
    r.observe(&1, 4);
    assert!((r.rate_with(&1, ninety_ten) - (5.0 + 36.0)).abs() < 1e-9);
}

#[test]
fn proportional_estimate_weighs_the_previous_window_by_what_is_left_of_it() {
    let c = RateComponents {
        prev_samples: 10,
        curr_samples: 4,
        interval: Duration::from_secs(2),
        current_interval_fraction: 0.25,
    };
    assert_eq!(
        PROPORTIONAL_RATE_ESTIMATE_CALC_FN(c),
        (10.0 * 0.75 + 4.0) / 2.0
    );

    let r = Rate::new(INTERVAL);
    r.observe(&"k", 5);
    sleep_until(&r, 1, 0.5);
    r.observe(&"k", 4);
    let (seen, estimate) = r.rate_with(&"k", |c| (c, PROPORTIONAL_RATE_ESTIMATE_CALC_FN(c)));
    let expected = (5.0 * (1.0 - seen.current_interval_fraction) + 4.0) / 0.1;
    assert!((estimate - expected).abs() < 1e-9);
    // Half-way or later into window 1: between 40 (all of window 0 gone) and 65.
    assert!((40.0..=65.0).contains(&estimate), "{estimate}");
}

#[test]
fn a_gap_of_two_windows_clears_old_counts() {
    let r = Rate::new(INTERVAL);
    assert_eq!(r.observe(&"k", 5), 5); // window 0, sketch 0
    sleep_until(&r, 1, 0.25);
    assert_eq!(r.observe(&"k", 7), 7); // window 1, sketch 1
    sleep_until(&r, 3, 0.25);
    // Window 3 reuses sketch 1, and window 2 (sketch 0) saw nothing: both must read empty.
    assert_eq!(r.observe(&"k", 1), 1);
    let c = components(&r, "k");
    assert_eq!((c.prev_samples, c.curr_samples), (0, 1));
    assert_eq!(r.rate(&"k"), 0.0);
}

#[test]
fn keys_are_counted_apart() {
    let r = Rate::new(Duration::from_secs(60));
    r.observe(&"a", 2);
    r.observe(&"b", 9);
    assert_eq!(r.observe(&"a", 1), 3);
    assert_eq!(components(&r, "b").curr_samples, 9);
    assert_eq!(components(&r, "c").curr_samples, 0);
}

#[test]
fn concurrent_observations_add_up() {
    let r = Rate::new(Duration::from_secs(60));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..5_000 {
                    r.observe(&"shared", 1);
                }
            });
        }
    });
    assert_eq!(components(&r, "shared").curr_samples, 20_000);
}

#[test]
fn concurrent_observations_across_windows_never_overcount() {
    let r = Rate::new_with_estimator_config(Duration::from_millis(5), 2, 64);
    let until = Instant::now() + Duration::from_millis(60);
    let total = std::sync::atomic::AtomicIsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while Instant::now() < until {
                    let in_window = r.observe(&"k", 1);
                    total.fetch_add(1, Ordering::Relaxed);
                    assert!(in_window >= 1);
                    let c = components(&r, "k");
                    assert!(c.prev_samples >= 0 && c.curr_samples >= 0);
                }
            });
        }
    });
    let c = components(&r, "k");
    assert!(c.prev_samples + c.curr_samples <= total.load(Ordering::Relaxed));
}

#[test]
fn degenerate_intervals_do_not_panic() {
    let zero = Rate::new(Duration::ZERO);
    assert_eq!(zero.interval, Duration::from_nanos(1));
    zero.observe(&"k", 1);
    assert!(zero.rate(&"k").is_finite());

    let huge = Rate::new(Duration::MAX);
    assert_eq!(huge.observe(&"k", 2), 2);
    assert_eq!(huge.rate(&"k"), 0.0);
    assert!(format!("{huge:?}").contains("window: 0"));
}
