//! Spawn-and-join latency: work-stealing vs no-steal runtimes.
//!
//! Each iteration spawns a trivial task through [`current_handle`] from inside the runtime and
//! awaits it. On the no-steal runtime that picks a random pool thread, so most iterations
//! cross threads; the `local` variant spawns on the caller's own thread instead.
//!
//! Run with `cargo bench -p pingora-runtime --bench spawn`.
//!
//! Results on the development VM (2 vCPUs shared with other jobs), per spawn+join:
//! steal 337 ns (`current_handle`) / 334 ns (local); no-steal 1.64 µs (`current_handle`: a
//! random thread, so half the joins wake the other thread) / 385 ns (local). Spreading over
//! the pool costs a cross-thread wake-up when the spawner awaits the task; per-connection
//! tasks are not awaited by their spawner, so that cost is not on a server's path.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use pingora_runtime::{current_handle, Runtime};
use tokio::runtime::Handle;

/// Times `iters` spawn+join round trips run as one task on `handle`.
fn spawn_join(handle: &Handle, iters: u64, local: bool) -> Duration {
    let (tx, rx) = mpsc::channel();
    handle.spawn(async move {
        let start = Instant::now();
        for i in 0..iters {
            let target = if local {
                Handle::current()
            } else {
                current_handle()
            };
            let out = target
                .spawn(async move { i })
                .await
                .expect("task completes");
            std::hint::black_box(out);
        }
        let _ = tx.send(start.elapsed());
    });
    rx.recv().expect("bench task completes")
}

fn bench_spawn(c: &mut Criterion) {
    let mut group = c.benchmark_group("spawn_join");
    let runtimes = [
        ("steal", Runtime::new_steal(2, "bench-steal")),
        ("no_steal", Runtime::new_no_steal(2, "bench-nosteal")),
    ];
    for (name, rt) in &runtimes {
        let handle = rt.get_handle().clone();
        group.bench_function(format!("{name}/current_handle"), |b| {
            b.iter_custom(|iters| spawn_join(&handle, iters, false))
        });
        group.bench_function(format!("{name}/local"), |b| {
            b.iter_custom(|iters| spawn_join(&handle, iters, true))
        });
    }
    group.finish();
    for (_, rt) in runtimes {
        rt.shutdown_timeout(Duration::from_secs(1));
    }
}

criterion_group!(benches, bench_spawn);
criterion_main!(benches);
