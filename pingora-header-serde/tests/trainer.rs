//! The `trainer` binary: a dictionary on standard output, errors on standard error.

use std::path::Path;
use std::process::Command;

fn trainer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
}

#[test]
fn writes_the_trained_dictionary() {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/test");
    let out = trainer().arg(&samples).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, pingora_header_serde::dict::train(&samples));
}

#[test]
fn reports_errors_and_usage() {
    let out = trainer().arg("/no/such/dir").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));

    let out = trainer().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("usage: trainer DIR"));
}
