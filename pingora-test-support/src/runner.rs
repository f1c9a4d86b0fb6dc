//! A small libtest-compatible runner for test binaries with `harness = false` (those that
//! re-execute themselves as a server child process): the same command line (`--exact`,
//! `--skip`, `--list`, name filters, `--ignored`) and the same summary lines as libtest, so
//! `cargo test` and `scripts/test.sh` read them like any other test binary.

use std::panic;
use std::time::Instant;

/// A named test.
pub type Test = (&'static str, fn());

/// Runs the `tests` the command line selects, one after another. `before` runs once before
/// the first test (not for `--list`). Exits with status 101 when a test failed.
pub fn run(tests: &[Test], before: impl FnOnce()) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let selected = select(tests, &args);
    if args.iter().any(|a| a == "--list") {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    before();
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

/// The tests `args` select, as libtest would (none of these tests is ignored, so
/// `--ignored` selects nothing).
fn select<'a>(tests: &'a [Test], args: &[String]) -> Vec<&'a Test> {
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
    let only_ignored = args.iter().any(|a| a == "--ignored");
    tests
        .iter()
        .filter(|_| !only_ignored)
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| matches(name, f)))
        .filter(|(name, _)| !skips.iter().any(|s| matches(name, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TESTS: &[Test] = &[("alpha_one", || {}), ("alpha_two", || {}), ("beta", || {})];

    fn names(args: &[&str]) -> Vec<&'static str> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        select(TESTS, &args).into_iter().map(|(n, _)| *n).collect()
    }

    #[test]
    fn selects_like_libtest() {
        assert_eq!(names(&[]).len(), 3);
        assert_eq!(names(&["alpha"]), ["alpha_one", "alpha_two"]);
        assert_eq!(names(&["alpha", "--skip", "two"]), ["alpha_one"]);
        assert_eq!(names(&["--exact", "alpha"]), Vec::<&str>::new());
        assert_eq!(names(&["--exact", "beta"]), ["beta"]);
        assert_eq!(names(&["--test-threads", "2", "beta"]), ["beta"]);
        assert!(names(&["--ignored"]).is_empty());
    }
}
