//! The disk cache under faults, with the proxy as a real process: killed with SIGKILL while
//! it writes objects, its disk full, its files removed behind its back. Clients check every
//! whole response against the object's known bytes: a cut or corrupt object must never be
//! served as whole.
//!
//! The proxy is the `cache` example (`--disk`, `--tiered`, `--listen 127.0.0.1:0`,
//! `--origin`), compiled into this test binary: run with `PINGORA_CACHE_FAULTS_SERVE` set,
//! the binary is that proxy instead of the test runner. The tests wait on conditions (a line
//! the proxy prints, files in the cache directory, the origin's counters), never on fixed
//! sleeps.
//!
//! `CYCLES=20` runs 20 kill cycles instead of 3 (`bench/cache_kill.sh`). The disk-full test
//! mounts a tmpfs, so it needs root; `PINGORA_TEST_SKIP_TMPFS=1` skips it where that fails.
//!
//! This file has its own small runner (`harness = false`), so that the same binary can be the
//! proxy; it accepts name filters, `--exact`, `--skip <name>` and `--list` like libtest.

#[path = "../examples/cache.rs"]
mod cache_example;

#[path = "cache_disk/support.rs"]
mod support;

#[path = "cache_disk/cases.rs"]
mod cases;

fn main() {
    if std::env::var_os(support::SERVE_ENV).is_some() {
        cache_example::main();
        return;
    }
    pingora_test_support::runner::run(cases::TESTS, || {});
}
