//! Pingora's built-in metrics as a collector of the default `prometheus` registry.

use std::collections::HashMap;
use std::sync::Once;

use pingora_core::metrics::{self, Family, Samples, DURATION_BUCKETS};
use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

/// Adds Pingora's built-in metrics to the default `prometheus` registry, once; later calls do
/// nothing. [`new_prometheus_server`](crate::new_prometheus_server) calls it: call it yourself
/// only to export the default registry some other way (`prometheus::gather()`).
///
/// The built-in metrics are read when gathered, and only those of the groups switched on (see
/// [`pingora_core::metrics`]). On Linux the registry's own process collector is moved into
/// them, so that [`Group::Process`](metrics::Group::Process) switches it too.
pub fn register_builtin_metrics() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        let builtin = Builtin::new();
        #[cfg(target_os = "linux")]
        // It is registered in the default registry by the `process` feature; taken out, it is
        // collected by `builtin` (an error means the program took it out already).
        let _ = prometheus::unregister(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        if let Err(e) = prometheus::register(Box::new(builtin)) {
            log::error!("cannot register Pingora's built-in metrics: {e}");
        }
    });
}

/// The collector of the built-in metrics.
struct Builtin {
    /// The descriptions of the families known when registered (the registry checks them
    /// against the names of other collectors).
    descs: Vec<Desc>,
    #[cfg(target_os = "linux")]
    process: prometheus::process_collector::ProcessCollector,
}

impl Builtin {
    fn new() -> Self {
        let descs = metrics::families()
            .into_iter()
            .filter_map(|family| {
                let labels = family.label.map(str::to_string).into_iter().collect();
                let desc = Desc::new(
                    family.name.to_string(),
                    family.help.to_string(),
                    labels,
                    HashMap::new(),
                );
                desc.map_err(|e| log::error!("metric {}: {e}", family.name))
                    .ok()
            })
            .collect();
        Builtin {
            descs,
            #[cfg(target_os = "linux")]
            process: prometheus::process_collector::ProcessCollector::for_self(),
        }
    }
}

impl Collector for Builtin {
    fn desc(&self) -> Vec<&Desc> {
        let own = self.descs.iter();
        #[cfg(target_os = "linux")]
        let own = own.chain(self.process.desc());
        own.collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families: Vec<MetricFamily> = metrics::families()
            .into_iter()
            .filter(|family| family.is_enabled())
            .map(to_proto)
            .collect();
        #[cfg(target_os = "linux")]
        if metrics::is_enabled(metrics::Group::Process) {
            families.extend(self.process.collect());
        }
        families
    }
}

/// One family in the registry's model.
fn to_proto(family: &Family) -> MetricFamily {
    let sample = |value: &str| {
        let mut metric = proto::Metric::default();
        if let Some(label) = family.label {
            let mut pair = proto::LabelPair::default();
            pair.set_name(label.to_string());
            pair.set_value(value.to_string());
            metric.set_label(vec![pair]);
        }
        metric
    };
    let (kind, samples): (_, Vec<_>) = match family.samples {
        Samples::Counters(counters) => (
            MetricType::COUNTER,
            counters
                .iter()
                .map(|(value, counter)| {
                    let mut metric = sample(value);
                    let mut proto = proto::Counter::default();
                    proto.set_value(counter.get() as f64);
                    metric.set_counter(proto);
                    metric
                })
                .collect(),
        ),
        Samples::Gauges(gauges) => (
            MetricType::GAUGE,
            gauges
                .iter()
                .map(|(value, gauge)| gauge_metric(sample(value), gauge.get()))
                .collect(),
        ),
        Samples::Sampled(read) => (MetricType::GAUGE, vec![gauge_metric(sample(""), read())]),
        Samples::Histograms(histograms) => (
            MetricType::HISTOGRAM,
            histograms
                .iter()
                .map(|(value, histogram)| {
                    let mut metric = sample(value);
                    metric.set_histogram(histogram_proto(histogram));
                    metric
                })
                .collect(),
        ),
    };
    let mut proto = MetricFamily::default();
    proto.set_name(family.name.to_string());
    proto.set_help(family.help.to_string());
    proto.set_field_type(kind);
    proto.set_metric(samples);
    proto
}

fn gauge_metric(mut metric: proto::Metric, value: i64) -> proto::Metric {
    let mut gauge = proto::Gauge::default();
    gauge.set_value(value as f64);
    metric.set_gauge(gauge);
    metric
}

fn histogram_proto(histogram: &metrics::Histogram) -> proto::Histogram {
    let snapshot = histogram.snapshot();
    let buckets = DURATION_BUCKETS
        .iter()
        .zip(snapshot.cumulative)
        .map(|(bound, count)| {
            let mut bucket = proto::Bucket::default();
            bucket.set_upper_bound(*bound);
            bucket.set_cumulative_count(count);
            bucket
        })
        .collect();
    let mut proto = proto::Histogram::default();
    proto.set_bucket(buckets);
    proto.set_sample_count(snapshot.count);
    proto.set_sample_sum(snapshot.sum);
    proto
}
