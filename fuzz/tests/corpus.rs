//! Runs every fuzz target's committed corpus (`fuzz/corpus/<target>/`) and its crash
//! regressions (`fuzz/regressions/<target>/`) as ordinary tests, on stable Rust.

use std::path::Path;

fn run_dir(target: &str, dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<_> = entries
        .map(|e| e.expect("readable directory").path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).expect("readable corpus file");
        let result = std::panic::catch_unwind(|| pingora_fuzz::run(target, &data));
        assert!(result.is_ok(), "{target} fails on {}", file.display());
    }
    files.len()
}

#[test]
fn corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in pingora_fuzz::TARGETS {
        let seeds = run_dir(target, &root.join("corpus").join(target));
        assert!(seeds > 0, "{target} has no corpus");
        run_dir(target, &root.join("regressions").join(target));
    }
}

#[test]
fn every_target_has_a_binary() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for target in pingora_fuzz::TARGETS {
        let path = root.join("fuzz_targets").join(format!("{target}.rs"));
        assert!(path.is_file(), "{} is missing", path.display());
    }
}
