//! Multi-threaded Tokio runtimes for Pingora, with or without work stealing.
//!
//! Tokio offers a single-threaded runtime and a multi-threaded one whose workers steal tasks
//! from each other. Stealing balances load but costs cross-thread synchronisation on every
//! scheduling decision, which shows up in a proxy where each connection is an independent,
//! short task. This crate adds a third flavor, **no-steal**: `N` single-threaded runtimes,
//! each driven by its own OS thread. A task stays on the thread it was spawned on, so it is as
//! cheap to schedule as on a single-threaded runtime, while the process still uses `N` cores.
//! Load is spread by spawning each new task on a randomly chosen thread (see
//! [`current_handle`]).
//!
//! * [`Runtime`] is either flavor; build one with [`Runtime::new_steal`],
//!   [`Runtime::new_no_steal`] or [`RuntimeBuilder`].
//! * [`NoStealRuntime`] is the pool of single-threaded runtimes. Its threads start lazily, on
//!   first use, so a server can daemonize (fork) after creating its runtimes.
//! * [`current_handle`] gives the handle new tasks should be spawned on: a random thread of the
//!   no-steal pool the caller runs in, or else the current Tokio runtime.
//!
//! ```
//! use pingora_runtime::{current_handle, Runtime};
//! use std::time::Duration;
//!
//! let rt = Runtime::new_no_steal(2, "worker");
//! let answer = rt.get_handle().block_on(async {
//!     // Inside the pool, spawn on a random pool thread.
//!     current_handle().spawn(async { 6 * 7 }).await.unwrap()
//! });
//! assert_eq!(answer, 42);
//! rt.shutdown_timeout(Duration::from_secs(1));
//! ```
//!
//! # Shutdown
//!
//! [`Runtime::shutdown_timeout`] returns within its timeout (plus scheduling noise) even when a
//! task never yields: tasks are dropped at their next `.await`, and a thread that is still busy
//! when the time is up is detached rather than waited for.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod no_steal;

use std::time::Duration;

use tokio::runtime::{Builder, Handle};

pub use no_steal::NoStealRuntime;

/// A multi-threaded async runtime: Tokio's work-stealing runtime, or a [`NoStealRuntime`].
#[derive(Debug)]
pub enum Runtime {
    /// Tokio's multi-threaded, work-stealing runtime.
    Steal(tokio::runtime::Runtime),
    /// A pool of single-threaded Tokio runtimes, one per OS thread, without work stealing.
    NoSteal(NoStealRuntime),
}

/// Options for the pool of threads that run blocking work
/// ([`tokio::task::spawn_blocking`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockingPoolOpts {
    /// The most threads the blocking pool may run at once; Tokio's default (512) when `None`.
    ///
    /// A no-steal runtime has one blocking pool per thread, each with this limit.
    pub max_threads: Option<usize>,
    /// How long an idle blocking thread is kept before it exits; Tokio's default (10 s) when
    /// `None`.
    pub thread_keep_alive: Option<Duration>,
}

/// Builds a [`Runtime`] of either flavor.
///
/// ```
/// use pingora_runtime::{BlockingPoolOpts, Runtime, RuntimeBuilder};
/// use std::time::Duration;
///
/// let rt = RuntimeBuilder::new(2, "my-service")
///     .work_steal(false)
///     .blocking_pool_opts(BlockingPoolOpts {
///         max_threads: Some(8),
///         thread_keep_alive: Some(Duration::from_secs(30)),
///     })
///     .build();
/// assert!(matches!(rt, Runtime::NoSteal(_)));
/// rt.shutdown_timeout(Duration::ZERO);
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct RuntimeBuilder {
    threads: usize,
    name: String,
    work_steal: bool,
    blocking: BlockingPoolOpts,
}

// === impl Runtime ===

impl Runtime {
    /// Creates a work-stealing runtime with `threads` workers, each thread named `name`.
    ///
    /// A `threads` of 0 is treated as 1.
    ///
    /// # Panics
    ///
    /// If the operating system refuses to create the runtime's threads or I/O driver.
    pub fn new_steal(threads: usize, name: &str) -> Self {
        RuntimeBuilder::new(threads, name).build()
    }

    /// Creates a no-steal runtime of `threads` single-threaded runtimes, each thread named
    /// `name`. The threads start on first use.
    ///
    /// A `threads` of 0 is treated as 1.
    pub fn new_no_steal(threads: usize, name: &str) -> Self {
        RuntimeBuilder::new(threads, name).work_steal(false).build()
    }

    /// Returns a handle to spawn tasks on.
    ///
    /// For the work-stealing flavor this is the runtime's only handle. For the no-steal flavor
    /// it is the handle of a random thread of the pool (starting the pool if needed), so call
    /// it once per task to spread tasks over all threads.
    pub fn get_handle(&self) -> &Handle {
        match self {
            Self::Steal(rt) => rt.handle(),
            Self::NoSteal(rt) => rt.get_runtime(),
        }
    }

    /// Shuts the runtime down, blocking the caller for at most about `timeout`.
    ///
    /// Every task is dropped at its next `.await`; blocking tasks and tasks that never yield
    /// are given until `timeout` to finish, after which their threads are detached.
    ///
    /// # Panics
    ///
    /// If called from inside an async context (dropping a Tokio runtime there is not allowed).
    pub fn shutdown_timeout(self, timeout: Duration) {
        match self {
            Self::Steal(rt) => rt.shutdown_timeout(timeout),
            Self::NoSteal(rt) => rt.shutdown_timeout(timeout),
        }
    }
}

// === impl BlockingPoolOpts ===

impl BlockingPoolOpts {
    /// Applies the options that are set to a Tokio runtime builder.
    fn apply(&self, builder: &mut Builder) {
        if let Some(max) = self.max_threads {
            // Tokio panics on 0; a pool that can never run a blocking task is no use anyway.
            builder.max_blocking_threads(max.max(1));
        }
        if let Some(keep_alive) = self.thread_keep_alive {
            builder.thread_keep_alive(keep_alive);
        }
    }
}

// === impl RuntimeBuilder ===

impl RuntimeBuilder {
    /// Starts a builder for a runtime of `threads` threads named `name`, work stealing enabled
    /// and Tokio's default blocking pool.
    pub fn new(threads: usize, name: &str) -> Self {
        Self {
            threads,
            name: name.to_owned(),
            work_steal: true,
            blocking: BlockingPoolOpts::default(),
        }
    }

    /// Chooses the work-stealing flavor (`true`, the default) or the no-steal one (`false`).
    pub fn work_steal(mut self, enabled: bool) -> Self {
        self.work_steal = enabled;
        self
    }

    /// Sets the options of the blocking thread pool.
    pub fn blocking_pool_opts(mut self, opts: BlockingPoolOpts) -> Self {
        self.blocking = opts;
        self
    }

    /// Builds the runtime. A no-steal runtime starts its threads on first use.
    ///
    /// A thread count of 0 is treated as 1.
    ///
    /// # Panics
    ///
    /// For the work-stealing flavor, if the operating system refuses to create the runtime's
    /// threads or I/O driver.
    pub fn build(self) -> Runtime {
        let threads = effective_threads(self.threads, &self.name);
        if self.work_steal {
            let mut builder = Builder::new_multi_thread();
            builder
                .enable_all()
                .worker_threads(threads)
                .thread_name(&self.name);
            self.blocking.apply(&mut builder);
            let rt = builder
                .build()
                .expect("the OS must allow creating the work-stealing runtime");
            Runtime::Steal(rt)
        } else {
            Runtime::NoSteal(NoStealRuntime::with_opts(
                threads,
                &self.name,
                self.blocking,
            ))
        }
    }
}

/// Returns the handle a new task should be spawned on.
///
/// On a thread of a [`NoStealRuntime`] this is the handle of a random thread of that pool, so
/// per-connection tasks spread over the whole pool. Anywhere else it is
/// [`Handle::current`].
///
/// # Panics
///
/// Outside both a no-steal pool thread and a Tokio runtime context, like [`Handle::current`].
pub fn current_handle() -> Handle {
    no_steal::pool_handle().unwrap_or_else(Handle::current)
}

/// Turns a requested thread count into a usable one: at least one thread.
fn effective_threads(threads: usize, name: &str) -> usize {
    if threads == 0 {
        log::warn!("runtime {name} asked for 0 threads, using 1");
        1
    } else {
        threads
    }
}

#[cfg(test)]
mod tests;
