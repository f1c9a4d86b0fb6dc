use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use super::*;

/// Generous upper bound for "returned within the timeout" on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(750);

/// Runs `f` as a task on `handle` and returns its result, blocking the caller.
fn run_on<T: Send + 'static>(
    handle: &Handle,
    f: impl std::future::Future<Output = T> + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    handle.spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("task must finish")
}

/// The id and name of the thread the calling code runs on.
fn whoami() -> (ThreadId, Option<String>) {
    let me = thread::current();
    (me.id(), me.name().map(str::to_owned))
}

/// Sets a flag when dropped: proves a pending task was dropped by shutdown.
struct DropFlag(Arc<AtomicBool>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn public_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Runtime>();
    assert_send_sync::<NoStealRuntime>();
    assert_send_sync::<RuntimeBuilder>();
    assert_send_sync::<BlockingPoolOpts>();
}

#[test]
fn steal_runtime_has_the_requested_named_workers() {
    let rt = Runtime::new_steal(3, "steal-test");
    let handle = rt.get_handle().clone();
    assert_eq!(handle.metrics().num_workers(), 3);
    let (_, name) = run_on(&handle, async { whoami() });
    assert_eq!(name.as_deref(), Some("steal-test"));
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn no_steal_runs_tasks_on_n_distinct_named_threads() {
    let rt = NoStealRuntime::new(3, "nosteal-test");
    assert_eq!(rt.threads(), 3);
    let mut ids = HashSet::new();
    for i in 0..rt.threads() {
        // Two tasks on the same index must land on the same thread.
        let (first, name) = run_on(rt.get_runtime_at(i), async { whoami() });
        let (second, _) = run_on(rt.get_runtime_at(i), async { whoami() });
        assert_eq!(first, second, "index {i} must map to one thread");
        assert_eq!(name.as_deref(), Some("nosteal-test"));
        assert_ne!(first, thread::current().id());
        ids.insert(first);
    }
    assert_eq!(ids.len(), 3, "each index must be its own thread");
    Runtime::NoSteal(rt).shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn no_steal_starts_lazily() {
    let rt = NoStealRuntime::new(2, "lazy-test");
    assert!(!rt.is_started());
    assert!(format!("{rt:?}").contains("started: false"));
    let _ = rt.get_runtime();
    assert!(rt.is_started());
    // Shutting down a never-started pool returns at once and starts nothing.
    let never = NoStealRuntime::new(2, "never-started");
    let start = Instant::now();
    never.shutdown_timeout(Duration::from_secs(5));
    assert!(start.elapsed() < SLACK);
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn zero_threads_means_one() {
    let rt = NoStealRuntime::new(0, "zero");
    assert_eq!(rt.threads(), 1);
    let (id, _) = run_on(rt.get_runtime(), async { whoami() });
    assert_ne!(id, thread::current().id());
    rt.shutdown_timeout(Duration::from_secs(1));

    let rt = Runtime::new_steal(0, "zero-steal");
    assert_eq!(rt.get_handle().metrics().num_workers(), 1);
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn get_runtime_picks_every_thread_eventually() {
    let rt = NoStealRuntime::new(4, "random-pick");
    let all: HashSet<_> = (0..4)
        .map(|i| run_on(rt.get_runtime_at(i), async { whoami().0 }))
        .collect();
    let picked: HashSet<_> = (0..200)
        .map(|_| run_on(rt.get_runtime(), async { whoami().0 }))
        .collect();
    // 200 uniform picks missing one of 4 threads has probability ~4 * 0.75^200.
    assert_eq!(picked, all);
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn current_handle_inside_no_steal_spreads_over_the_pool() {
    let rt = Runtime::new_no_steal(4, "spread");
    let Runtime::NoSteal(pool) = &rt else {
        unreachable!("built as no-steal")
    };
    let all: HashSet<_> = (0..4)
        .map(|i| run_on(pool.get_runtime_at(i), async { whoami().0 }))
        .collect();
    let seen = run_on(pool.get_runtime_at(0), async {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let id = current_handle()
                .spawn(async { whoami().0 })
                .await
                .expect("spawned task must complete");
            seen.insert(id);
        }
        seen
    });
    assert_eq!(
        seen, all,
        "tasks must reach every pool thread and only those"
    );
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn current_handle_outside_a_pool_is_the_current_runtime() {
    let rt = Runtime::new_steal(2, "outside-pool");
    let name = run_on(rt.get_handle(), async {
        current_handle()
            .spawn(async { whoami().1 })
            .await
            .expect("spawned task must complete")
    });
    assert_eq!(name.as_deref(), Some("outside-pool"));

    // A plain thread blocking on a no-steal handle is not a pool thread: it gets the handle
    // it is blocking on, and timers work because the pool thread drives them.
    let no_steal = Runtime::new_no_steal(1, "block-on");
    let handle = no_steal.get_handle().clone();
    let name = handle.block_on(async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        current_handle()
            .spawn(async { whoami().1 })
            .await
            .expect("spawned task must complete")
    });
    assert_eq!(name.as_deref(), Some("block-on"));
    no_steal.shutdown_timeout(Duration::from_secs(1));
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn current_handle_outside_any_runtime_panics() {
    let result = thread::spawn(current_handle).join();
    assert!(result.is_err());
}

#[test]
fn no_steal_shutdown_drops_pending_tasks_and_joins_threads() {
    let rt = NoStealRuntime::new(2, "shutdown-drop");
    let dropped: Vec<_> = (0..2)
        .map(|i| {
            let flag = Arc::new(AtomicBool::new(false));
            let guard = DropFlag(Arc::clone(&flag));
            // Wait until the task is running, so shutdown has something to drop.
            run_on(rt.get_runtime_at(i), async {});
            rt.get_runtime_at(i).spawn(async move {
                let _guard = guard;
                std::future::pending::<()>().await;
            });
            flag
        })
        .collect();
    let start = Instant::now();
    rt.shutdown_timeout(Duration::from_secs(5));
    assert!(start.elapsed() < SLACK, "idle pool must shut down quickly");
    for flag in dropped {
        assert!(flag.load(Ordering::SeqCst), "pending task must be dropped");
    }
}

#[test]
fn no_steal_shutdown_returns_within_bound_with_a_stuck_task() {
    let rt = NoStealRuntime::new(2, "stuck-nosteal");
    let (release, stuck) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    rt.get_runtime_at(0).spawn(async move {
        let _ = started_tx.send(());
        // Blocks the pool thread without ever yielding.
        let _ = stuck.recv();
    });
    started.recv().expect("stuck task must start");
    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    rt.shutdown_timeout(timeout);
    let elapsed = start.elapsed();
    assert!(
        elapsed >= timeout,
        "must wait for the busy thread: {elapsed:?}"
    );
    assert!(elapsed < timeout + SLACK, "must give up on it: {elapsed:?}");
    let _ = release.send(());
}

#[test]
fn steal_shutdown_returns_within_bound_with_a_stuck_task() {
    let rt = Runtime::new_steal(2, "stuck-steal");
    let (release, stuck) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel();
    rt.get_handle().spawn(async move {
        let _ = started_tx.send(());
        let _ = stuck.recv();
    });
    started.recv().expect("stuck task must start");
    let timeout = Duration::from_millis(200);
    let start = Instant::now();
    rt.shutdown_timeout(timeout);
    assert!(start.elapsed() < timeout + SLACK);
    let _ = release.send(());
}

#[test]
fn blocking_pool_limit_is_applied() {
    fn max_concurrent_blocking(rt: &Runtime) -> usize {
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (running2, peak2) = (Arc::clone(&running), Arc::clone(&peak));
        run_on(rt.get_handle(), async move {
            let tasks: Vec<_> = (0..4)
                .map(|_| {
                    let (running, peak) = (Arc::clone(&running2), Arc::clone(&peak2));
                    tokio::task::spawn_blocking(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("blocking task must complete");
            }
        });
        peak.load(Ordering::SeqCst)
    }

    let opts = BlockingPoolOpts {
        max_threads: Some(1),
        thread_keep_alive: Some(Duration::from_millis(100)),
    };
    for steal in [true, false] {
        let rt = RuntimeBuilder::new(1, "blocking")
            .work_steal(steal)
            .blocking_pool_opts(opts.clone())
            .build();
        assert_eq!(max_concurrent_blocking(&rt), 1, "steal = {steal}");
        rt.shutdown_timeout(Duration::from_secs(1));
    }
    // Without a limit the same tasks overlap.
    let rt = RuntimeBuilder::new(1, "blocking-default").build();
    assert!(max_concurrent_blocking(&rt) > 1);
    rt.shutdown_timeout(Duration::from_secs(1));
}

#[test]
fn builder_picks_the_flavor() {
    let rt = RuntimeBuilder::new(1, "flavor").build();
    assert!(matches!(rt, Runtime::Steal(_)));
    rt.shutdown_timeout(Duration::ZERO);
    let rt = RuntimeBuilder::new(1, "flavor").work_steal(false).build();
    assert!(matches!(rt, Runtime::NoSteal(_)));
    rt.shutdown_timeout(Duration::ZERO);
}
