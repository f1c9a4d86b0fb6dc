//! Cost per timeout of `pingora_timeout` against `tokio::time`, measured in the same run.
//!
//! * `*/pending_once`: a timeout around a future that is pending once and then ready, i.e. a
//!   timer is started and cancelled (the common case on a busy proxy).
//! * `*/ready`: a timeout around a future that is ready at once.
//! * Futures are polled by hand with a no-op waker, so the executor's own wake-up cost is not
//!   measured. `single_thread` runs on the bench thread inside a current-thread runtime's
//!   context; `multi_thread` runs `TASKS` tasks on a two-worker runtime and reports wall-clock
//!   time per timeout.
//! * `timer/*`: the timer alone, outside of any timeout: created, polled once and dropped
//!   (`poll_cancel`), or created and dropped without a poll (`drop_unpolled`). `pingora_manager`
//!   goes through a `TimerManager` of its own, `pingora_sleep` through the process-wide one.
//!
//! See `BENCHMARKS.md` for results.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pingora_timeout::timer::TimerManager;
use std::future::{ready, Future};
use std::hint::black_box;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::runtime::{Builder, Runtime};

const DEADLINE: Duration = Duration::from_secs(1);
const TASKS: u64 = 4;

/// Pending on its first poll, ready with 1 on the second. It does not wake anyone: the
/// benchmark polls by hand, so that the executor's own wake-up cost is not measured.
struct PendingOnce(bool);

impl Future for PendingOnce {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u64> {
        if self.0 {
            return Poll::Ready(1);
        }
        self.0 = true;
        Poll::Pending
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Pingora,
    Tokio,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pingora => "pingora",
            Kind::Tokio => "tokio",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Case {
    /// The timer is started (the future is pending once) and then cancelled.
    PendingOnce,
    /// The future is ready on its first poll.
    Ready,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::PendingOnce => "pending_once",
            Case::Ready => "ready",
        }
    }
}

/// Polls `future` to completion with a no-op waker; it must be ready within two polls.
fn drive<F: Future>(future: F, cx: &mut Context<'_>) -> F::Output {
    let mut future = pin!(future);
    for _ in 0..2 {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return output;
        }
    }
    panic!("the benchmark future must be ready on its second poll")
}

/// Runs `iters` timeouts one after another; must run inside a Tokio runtime context.
fn run_timeouts(kind: Kind, case: Case, iters: u64) -> u64 {
    let waker = Waker::from(Arc::new(NoopWaker));
    let mut cx = Context::from_waker(&waker);
    let mut done = 0;
    for _ in 0..iters {
        let result = match (kind, case) {
            // `black_box` keeps the compiler from seeing through the inner futures.
            (Kind::Pingora, Case::PendingOnce) => drive(
                pingora_timeout::timeout(black_box(DEADLINE), black_box(PendingOnce(false))),
                &mut cx,
            )
            .ok(),
            (Kind::Pingora, Case::Ready) => drive(
                pingora_timeout::timeout(black_box(DEADLINE), black_box(ready(1))),
                &mut cx,
            )
            .ok(),
            (Kind::Tokio, Case::PendingOnce) => drive(
                tokio::time::timeout(black_box(DEADLINE), black_box(PendingOnce(false))),
                &mut cx,
            )
            .ok(),
            (Kind::Tokio, Case::Ready) => drive(
                tokio::time::timeout(black_box(DEADLINE), black_box(ready(1))),
                &mut cx,
            )
            .ok(),
        };
        done += result.unwrap_or(0);
    }
    done
}

fn current_thread() -> Runtime {
    Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("runtime")
}

fn single_thread(c: &mut Criterion) {
    let rt = current_thread();
    let mut group = c.benchmark_group("single_thread");
    let _guard = rt.enter();
    for case in [Case::PendingOnce, Case::Ready] {
        for kind in [Kind::Pingora, Kind::Tokio] {
            group.bench_function(BenchmarkId::new(kind.name(), case.name()), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    black_box(run_timeouts(kind, case, iters));
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

fn multi_threads(c: &mut Criterion) {
    let rt = multi_thread();
    let mut group = c.benchmark_group("multi_thread");
    for case in [Case::PendingOnce, Case::Ready] {
        for kind in [Kind::Pingora, Kind::Tokio] {
            group.bench_function(BenchmarkId::new(kind.name(), case.name()), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let per_task = iters.div_ceil(TASKS);
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..TASKS)
                            .map(|_| {
                                tokio::spawn(async move { run_timeouts(kind, case, per_task) })
                            })
                            .collect();
                        for task in tasks {
                            black_box(task.await.expect("task"));
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
}

struct NoopWaker;

impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

fn timer(c: &mut Criterion) {
    let waker = Waker::from(Arc::new(NoopWaker));
    let mut cx = Context::from_waker(&waker);
    let mut group = c.benchmark_group("timer");

    // The public `TimerManager` API, as Pingora's own benchmark measures it.
    let timers = TimerManager::new();
    group.bench_function("pingora_manager/poll_cancel", |b| {
        b.iter(|| {
            let mut stub = timers.register_timer(black_box(DEADLINE));
            black_box(Pin::new(&mut stub).poll(&mut cx)).is_pending()
        })
    });
    group.bench_function("pingora_manager/drop_unpolled", |b| {
        b.iter(|| black_box(timers.register_timer(black_box(DEADLINE))))
    });

    // The process-wide manager behind `timeout` and `sleep`.
    group.bench_function("pingora_sleep/poll_cancel", |b| {
        b.iter(|| {
            let mut sleep = pingora_timeout::sleep(black_box(DEADLINE));
            black_box(Pin::new(&mut sleep).poll(&mut cx)).is_pending()
        })
    });
    group.bench_function("pingora_sleep/drop_unpolled", |b| {
        b.iter(|| black_box(pingora_timeout::sleep(black_box(DEADLINE))))
    });

    let rt = current_thread();
    let _guard = rt.enter();
    group.bench_function("tokio_sleep/poll_cancel", |b| {
        b.iter(|| {
            let sleep = pin!(tokio::time::sleep(black_box(DEADLINE)));
            black_box(sleep.poll(&mut cx)).is_pending()
        })
    });
    group.bench_function("tokio_sleep/drop_unpolled", |b| {
        b.iter(|| black_box(tokio::time::sleep(black_box(DEADLINE))))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = single_thread, multi_threads, timer
}
criterion_main!(benches);
