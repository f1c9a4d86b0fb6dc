//! A background service publishing the server's uptime as a Prometheus gauge.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora_prometheus::prometheus::{register_int_gauge, IntGauge};

/// The name of the gauge.
pub const GAUGE: &str = "example_uptime_seconds";

/// The gauge, registered in the default Prometheus registry on first use.
pub fn gauge() -> &'static IntGauge {
    static GAUGE_CELL: OnceLock<IntGauge> = OnceLock::new();
    GAUGE_CELL.get_or_init(|| {
        register_int_gauge!(
            GAUGE,
            "Seconds since the example's background service started"
        )
        .expect("a new gauge name")
    })
}

/// Sets [`gauge`] to the seconds since it started, every `period`, until the server shuts
/// down.
#[derive(Debug)]
pub struct Uptime {
    period: Duration,
}

impl Uptime {
    /// Updates the gauge every `period`.
    pub fn every(period: Duration) -> Uptime {
        Uptime { period }
    }
}

#[async_trait]
impl BackgroundService for Uptime {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let started = Instant::now();
        let mut ticks = tokio::time::interval(self.period);
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|stopping| *stopping) => return,
                _ = ticks.tick() => {
                    let seconds = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
                    gauge().set(seconds);
                }
            }
        }
    }
}
