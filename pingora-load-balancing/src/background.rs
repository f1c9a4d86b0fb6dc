//! Running a [`LoadBalancer`]'s discovery and health checks in the background.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use log::warn;
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_core::services::ServiceReadyNotifier;

use crate::selection::{BackendIter, BackendSelection};
use crate::LoadBalancer;

/// Discovers the backends, then checks them; repeats each at its frequency until shutdown.
/// Dependents are told the service is ready once the first discovery and the first health
/// check ran, so that they never select from an unchecked set.
#[async_trait]
impl<S> BackgroundService for LoadBalancer<S>
where
    S: BackendSelection + Send + Sync + 'static,
    S::Iter: BackendIter,
    S::Config: Send + Sync,
{
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        if let Err(e) = self.update().await {
            warn!("load balancer: discovering the backends failed: {e}");
        }
        self.backends()
            .run_health_check(self.parallel_health_check)
            .await;
        ready.notify_ready();

        let now = Instant::now();
        let mut next_update = self.update_frequency.map(|f| now + f);
        let mut next_check = self.health_check_frequency.map(|f| now + f);
        loop {
            let next = match (next_update, next_check) {
                (None, None) => return,
                (Some(u), Some(c)) => u.min(c),
                (Some(t), None) | (None, Some(t)) => t,
            };
            tokio::select! {
                _ = shutdown.wait_for(|stopping| *stopping) => return,
                _ = tokio::time::sleep_until(next.into()) => {}
            }
            let now = Instant::now();
            if let (Some(at), Some(every)) = (next_update, self.update_frequency) {
                if at <= now {
                    if let Err(e) = self.update().await {
                        warn!("load balancer: discovering the backends failed: {e}");
                    }
                    next_update = Some(later(at, every, Instant::now()));
                }
            }
            if let (Some(at), Some(every)) = (next_check, self.health_check_frequency) {
                if at <= now {
                    self.backends()
                        .run_health_check(self.parallel_health_check)
                        .await;
                    next_check = Some(later(at, every, Instant::now()));
                }
            }
        }
    }
}

/// The next time after `now` on the schedule `at + n * every` (skipping missed runs).
fn later(at: Instant, every: Duration, now: Instant) -> Instant {
    let mut next = at + every;
    if next <= now {
        next = now + every;
    }
    next
}
