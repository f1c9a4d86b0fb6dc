//! The kinds of metric (counters, gauges, duration histograms) and how a crate describes its
//! metrics to exporters.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use super::Group;

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// A counter at zero.
    pub const fn new() -> Self {
        Counter(AtomicU64::new(0))
    }

    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A number of things open now.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// A gauge at zero.
    pub const fn new() -> Self {
        Gauge(AtomicI64::new(0))
    }

    /// Counts one more thing open, until the guard returned is dropped.
    #[inline]
    pub fn track(&'static self) -> GaugeGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(self)
    }

    /// Adds `n` (negative to take off); for owners that cannot keep a [`GaugeGuard`].
    #[inline]
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// The number of things open.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One thing counted by a [`Gauge`]; dropping it takes it off.
#[derive(Debug)]
#[must_use = "the gauge goes down again when the guard is dropped"]
pub struct GaugeGuard(&'static Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0 .0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The upper bounds, in seconds, of the buckets of every duration [`Histogram`] (a last one,
/// `+Inf`, takes the rest): from half a millisecond, for loopback and data-centre networks, to
/// ten seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// [`DURATION_BUCKETS`] in microseconds, the unit durations are recorded in.
const BOUNDS_MICROS: [u64; 14] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

/// A distribution of durations, in the buckets of [`DURATION_BUCKETS`], to the microsecond.
#[derive(Debug)]
pub struct Histogram {
    /// Observations per bucket (not cumulative); the last bucket is `+Inf`.
    buckets: [AtomicU64; BOUNDS_MICROS.len() + 1],
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram.
    pub const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; BOUNDS_MICROS.len() + 1],
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Records one duration.
    #[inline]
    pub fn observe(&self, duration: Duration) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(BOUNDS_MICROS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The distribution so far, as exporters report it.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = [0; DURATION_BUCKETS.len()];
        let mut count = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            count += bucket.load(Ordering::Relaxed);
            if let Some(slot) = cumulative.get_mut(i) {
                *slot = count;
            }
        }
        HistogramSnapshot {
            cumulative,
            count,
            sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// What a [`Histogram`] recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// The observations up to each bound of [`DURATION_BUCKETS`] (cumulative, as in
    /// Prometheus' `le` buckets).
    pub cumulative: [u64; DURATION_BUCKETS.len()],
    /// All observations (the `+Inf` bucket).
    pub count: u64,
    /// The sum of the durations observed, in seconds.
    pub sum: f64,
}

/// One metric as exporters see it: a name, a help text, and its samples.
#[derive(Debug)]
pub struct Family {
    /// The metric's name, `pingora_*` in Prometheus style (units such as `_seconds`, and
    /// `_total` for counters).
    pub name: &'static str,
    /// What it measures, in one sentence.
    pub help: &'static str,
    /// The group that switches it on and off.
    pub group: Group,
    /// The name of the label telling the samples apart; `None` for a metric of one sample.
    pub label: Option<&'static str>,
    /// The samples, each with its label value (ignored without a label).
    pub samples: Samples,
}

impl Family {
    /// Whether the family's group is on, so it should be exported.
    pub fn is_enabled(&self) -> bool {
        super::is_enabled(self.group)
    }
}

/// The samples of a [`Family`], each with the value of the family's label.
#[derive(Debug, Clone, Copy)]
pub enum Samples {
    /// Counters.
    Counters(&'static [(&'static str, &'static Counter)]),
    /// Gauges.
    Gauges(&'static [(&'static str, &'static Gauge)]),
    /// Duration histograms.
    Histograms(&'static [(&'static str, &'static Histogram)]),
    /// One gauge whose value is read when exported.
    Sampled(fn() -> i64),
}
