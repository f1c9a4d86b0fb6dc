//! Real server processes through their lifecycle: a graceful upgrade under client load (ours,
//! and `wrk`'s), a graceful shutdown with requests in flight or with many idle connections,
//! daemon mode, and (with the `sentry` feature) the crash reports of daemons across an upgrade.
//!
//! The server is the `lifecycle_server` example, compiled into this test binary: run with
//! `PINGORA_LIFECYCLE_SERVE` set, the binary is that server instead of the test runner. The
//! tests start it as child processes with the usual command line (`-c`, `-u`, `-d`), send it
//! signals and talk HTTP/1.1 to it over real sockets. They wait on conditions (a line the
//! server prints, a file appearing, a counter reaching a value), never on fixed sleeps.
//!
//! This file has its own small runner (`harness = false`), so that the same binary can be the
//! server; it accepts name filters, `--exact`, `--skip <name>` and `--list` like libtest.

#[path = "../examples/lifecycle_server.rs"]
mod lifecycle_server;

#[path = "lifecycle/support.rs"]
mod support;

#[path = "lifecycle/wrk.rs"]
mod wrk;

#[path = "lifecycle/cases.rs"]
mod cases;

#[cfg(feature = "sentry")]
#[path = "lifecycle/sentry_reports.rs"]
mod sentry_reports;

use support::SERVE_ENV;

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        lifecycle_server::main();
        return;
    }
    #[cfg(feature = "sentry")]
    let tests = [cases::TESTS, sentry_reports::TESTS].concat();
    #[cfg(not(feature = "sentry"))]
    let tests = cases::TESTS.to_vec();
    pingora_test_support::runner::run(&tests, || {
        // Daemons leave their parent; as a subreaper this process still gets to reap them.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            eprintln!("cannot become a child subreaper: {e}");
        }
    });
}
