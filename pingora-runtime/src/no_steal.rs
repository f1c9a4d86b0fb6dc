//! The no-steal flavor: a pool of single-threaded Tokio runtimes, one per OS thread.

use std::cell::{Cell, OnceCell};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use crate::{effective_threads, BlockingPoolOpts};

/// A multi-threaded runtime made of single-threaded Tokio runtimes, without work stealing.
///
/// Each of its `threads` OS threads (all named `name`) drives one current-thread runtime. A
/// task runs on the thread it was spawned on for its whole life. The threads are started on
/// first use ([`get_runtime`](Self::get_runtime) or [`get_runtime_at`](Self::get_runtime_at)),
/// not at construction, so a process may fork after creating the runtime.
pub struct NoStealRuntime {
    threads: usize,
    name: String,
    blocking: BlockingPoolOpts,
    pool: OnceLock<Pool>,
}

/// The running threads of a [`NoStealRuntime`].
struct Pool {
    handles: Arc<[Handle]>,
    workers: Vec<Worker>,
    /// Receives the index of each worker thread as it finishes. Only used by the owner, in
    /// `shutdown_timeout`; the mutex just makes the pool `Sync`.
    exited: Mutex<mpsc::Receiver<usize>>,
}

/// One pool thread: how to stop it and how to wait for it.
struct Worker {
    /// Carries the shutdown timeout; dropping it stops the thread without waiting.
    stop: oneshot::Sender<Duration>,
    thread: JoinHandle<()>,
}

/// Reports a worker's exit when dropped, even if the worker panicked.
struct ExitSignal {
    index: usize,
    exited: mpsc::Sender<usize>,
}

thread_local! {
    /// The handles of the pool the current thread belongs to. Set once, at the start of a
    /// pool thread, and never on any other thread. Being a `std` thread local, it dies with
    /// its thread, so no later thread can inherit a stale pool.
    static POOL: OnceCell<Arc<[Handle]>> = const { OnceCell::new() };

    /// Per-thread xorshift state for picking a random pool thread; never 0.
    static RNG: Cell<u64> = Cell::new(RandomState::new().hash_one(thread::current().id()) | 1);
}

// === impl NoStealRuntime ===

impl NoStealRuntime {
    /// Creates a pool of `threads` single-threaded runtimes whose threads are named `name`.
    /// The threads start on first use.
    ///
    /// A `threads` of 0 is treated as 1.
    pub fn new(threads: usize, name: &str) -> Self {
        Self::with_opts(threads, name, BlockingPoolOpts::default())
    }

    /// Like [`new`](Self::new), with options for each thread's blocking pool.
    pub(crate) fn with_opts(threads: usize, name: &str, blocking: BlockingPoolOpts) -> Self {
        Self {
            threads: effective_threads(threads, name),
            name: name.to_owned(),
            blocking,
            pool: OnceLock::new(),
        }
    }

    /// Returns the handle of a random thread of the pool, starting the pool if needed.
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start the pool's threads.
    pub fn get_runtime(&self) -> &Handle {
        self.get_runtime_at(random_below(self.threads))
    }

    /// Returns the handle of the pool thread at `index`, starting the pool if needed.
    ///
    /// # Panics
    ///
    /// If `index >= self.threads()`, or if the operating system refuses to start the pool's
    /// threads.
    pub fn get_runtime_at(&self, index: usize) -> &Handle {
        &self.pool().handles[index]
    }

    /// Returns the number of threads in the pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Shuts every thread of the pool down, blocking the caller for at most about `timeout`.
    ///
    /// All threads are told to stop at once, each dropping its tasks and giving its blocking
    /// tasks up to `timeout`. A thread still busy when `timeout` has passed (for example one
    /// running a task that never yields) is detached. A pool that was never started just goes
    /// away.
    pub fn shutdown_timeout(mut self, timeout: Duration) {
        let Some(pool) = self.pool.take() else {
            return;
        };
        let deadline = Instant::now().checked_add(timeout);
        // A poisoned lock still holds a usable receiver.
        let exited = pool
            .exited
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut threads = Vec::with_capacity(pool.workers.len());
        for worker in pool.workers {
            // An error means the thread already exited; it is still joined below.
            let _ = worker.stop.send(timeout);
            threads.push(Some(worker.thread));
        }

        let mut running = threads.len();
        while running > 0 {
            let exited = match deadline {
                Some(deadline) => exited
                    .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                    .ok(),
                None => exited.recv().ok(),
            };
            let Some(index) = exited else { break };
            if let Some(thread) = threads.get_mut(index).and_then(Option::take) {
                // The thread has signalled its exit, so this returns at once; a panic in
                // it has already been reported by the panic hook.
                let _ = thread.join();
                running -= 1;
            }
        }
        if running > 0 {
            log::warn!(
                "{running} threads of no-steal runtime {} still busy {timeout:?} after shutdown \
                 began; detaching them",
                self.name
            );
        }
    }

    /// Whether the pool's threads have been started.
    #[cfg(test)]
    pub(crate) fn is_started(&self) -> bool {
        self.pool.get().is_some()
    }

    /// Returns the running pool, starting it on first call.
    fn pool(&self) -> &Pool {
        self.pool.get_or_init(|| self.start())
    }

    /// Builds the runtimes and starts one thread for each.
    fn start(&self) -> Pool {
        let runtimes: Vec<_> = (0..self.threads).map(|_| self.build_runtime()).collect();
        let handles: Arc<[Handle]> = runtimes.iter().map(|rt| rt.handle().clone()).collect();
        let (exited_tx, exited) = mpsc::channel();
        let workers = runtimes
            .into_iter()
            .enumerate()
            .map(|(index, rt)| {
                let (stop, stop_rx) = oneshot::channel::<Duration>();
                let handles = Arc::clone(&handles);
                let exit = ExitSignal {
                    index,
                    exited: exited_tx.clone(),
                };
                let thread = thread::Builder::new()
                    .name(self.name.clone())
                    .spawn(move || {
                        let _exit = exit;
                        POOL.with(|pool| {
                            // A fresh thread: the cell is always empty here.
                            let _ = pool.set(handles);
                        });
                        match rt.block_on(stop_rx) {
                            Ok(timeout) => rt.shutdown_timeout(timeout),
                            // The runtime was dropped without an explicit shutdown.
                            Err(_) => rt.shutdown_background(),
                        }
                    })
                    .expect("the OS must allow starting a no-steal runtime thread");
                Worker { stop, thread }
            })
            .collect();
        Pool {
            handles,
            workers,
            exited: Mutex::new(exited),
        }
    }

    /// Builds one of the pool's current-thread runtimes.
    fn build_runtime(&self) -> tokio::runtime::Runtime {
        let mut builder = Builder::new_current_thread();
        builder.enable_all().thread_name(&self.name);
        self.blocking.apply(&mut builder);
        builder
            .build()
            .expect("the OS must allow creating a no-steal runtime")
    }
}

impl fmt::Debug for NoStealRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NoStealRuntime")
            .field("threads", &self.threads)
            .field("name", &self.name)
            .field("blocking", &self.blocking)
            .field("started", &self.pool.get().is_some())
            .finish()
    }
}

// === impl ExitSignal ===

impl Drop for ExitSignal {
    fn drop(&mut self) {
        // An error means nobody is waiting for this thread any more.
        let _ = self.exited.send(self.index);
    }
}

/// Returns a random handle of the no-steal pool the current thread belongs to, if any.
pub(crate) fn pool_handle() -> Option<Handle> {
    POOL.try_with(|pool| {
        pool.get()
            .map(|handles| handles[random_below(handles.len())].clone())
    })
    .ok()
    .flatten()
}

/// Returns a pseudo-random number in `0..n` from a per-thread xorshift generator.
///
/// `n` must not be 0.
fn random_below(n: usize) -> usize {
    let x = RNG.with(|state| {
        let mut x = state.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        x
    });
    // Lemire's multiply-shift maps x uniformly enough onto 0..n without a division.
    ((u128::from(x) * n as u128) >> 64) as usize
}
