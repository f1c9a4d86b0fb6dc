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

use std::panic;
use std::time::Instant;

fn main() {
    if std::env::var_os(support::SERVE_ENV).is_some() {
        cache_example::main();
        return;
    }
    let tests = cases::TESTS;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let exact = args.iter().any(|a| a == "--exact");
    let mut filters = Vec::new();
    let mut skips = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--skip" => skips.extend(iter.next().cloned()),
            // libtest options that take a value, which is not a filter.
            "--format" | "--color" | "--test-threads" | "--logfile" | "-Z" => {
                iter.next();
            }
            a if a.starts_with('-') => {}
            a => filters.push(a.to_string()),
        }
    }
    let matches = |name: &str, pattern: &str| {
        if exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    };
    // None of these tests is ignored: asked for the ignored ones only, run nothing.
    let only_ignored = args.iter().any(|a| a == "--ignored");
    let selected: Vec<_> = tests
        .iter()
        .filter(|_| !only_ignored)
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect();
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }

    let started = Instant::now();
    println!("\nrunning {} tests", selected.len());
    let mut failed = Vec::new();
    for (name, test) in &selected {
        let start = Instant::now();
        let outcome = panic::catch_unwind(test);
        let took = start.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => println!("test {name} ... ok ({took:.1}s)"),
            Err(_) => {
                println!("test {name} ... FAILED ({took:.1}s)");
                failed.push(*name);
            }
        }
    }
    let passed = selected.len() - failed.len();
    let result = if failed.is_empty() { "ok" } else { "FAILED" };
    if !failed.is_empty() {
        println!("\nfailures:");
        for name in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {result}. {passed} passed; {} failed; 0 ignored; 0 measured; {} filtered \
         out; finished in {:.2}s\n",
        failed.len(),
        tests.len() - selected.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        std::process::exit(101);
    }
}
