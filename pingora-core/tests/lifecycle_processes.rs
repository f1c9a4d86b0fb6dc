//! Real server processes through their lifecycle: a graceful upgrade under client load (ours,
//! and `wrk`'s), a graceful shutdown with requests in flight or with many idle connections, and
//! daemon mode.
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

use std::panic;
use std::time::Instant;

use support::SERVE_ENV;

fn main() {
    if std::env::var_os(SERVE_ENV).is_some() {
        lifecycle_server::main();
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
    // Daemons leave their parent; as a subreaper this process still gets to reap them.
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        eprintln!("cannot become a child subreaper: {e}");
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
