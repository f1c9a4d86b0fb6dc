//! Dedicated runtimes that establish connections, so that costly handshakes do not slow the
//! threads serving traffic.

use std::sync::OnceLock;

use log::warn;
use tokio::runtime::{Builder, Handle, Runtime};

/// `pools` runtimes of `threads` threads each, built on first use.
pub(crate) struct OffloadRuntime {
    pools: usize,
    threads: usize,
    /// `None` if building them failed: connections are then made on the caller's runtime.
    runtimes: OnceLock<Option<Vec<Runtime>>>,
}

// === impl OffloadRuntime ===

impl OffloadRuntime {
    pub(crate) fn new(pools: usize, threads: usize) -> Self {
        OffloadRuntime {
            pools: pools.max(1),
            threads: threads.max(1),
            runtimes: OnceLock::new(),
        }
    }

    /// The runtime for connections keyed `hash`: the same key always gets the same runtime.
    pub(crate) fn handle(&self, hash: u64) -> Option<Handle> {
        let runtimes = self.runtimes.get_or_init(|| self.build()).as_ref()?;
        let index = (hash % runtimes.len() as u64) as usize;
        Some(runtimes[index].handle().clone())
    }

    fn build(&self) -> Option<Vec<Runtime>> {
        let built: std::io::Result<Vec<Runtime>> = (0..self.pools)
            .map(|i| {
                Builder::new_multi_thread()
                    .worker_threads(self.threads)
                    .thread_name(format!("connect-offload-{i}"))
                    .enable_all()
                    .build()
            })
            .collect();
        built
            .map_err(|e| warn!("cannot build the connect offload runtimes, not offloading: {e}"))
            .ok()
    }
}

impl Drop for OffloadRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another runtime: shut them
        // down in the background instead.
        if let Some(Some(runtimes)) = self.runtimes.take() {
            for runtime in runtimes {
                runtime.shutdown_background();
            }
        }
    }
}

impl std::fmt::Debug for OffloadRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OffloadRuntime")
            .field("pools", &self.pools)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}
