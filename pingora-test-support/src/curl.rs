//! The `curl` binary as a client. Every run is `-sS` with a 10 s limit, and must succeed.
//!
//! These functions block: from async code, call them through
//! `tokio::task::spawn_blocking`.

use std::process::{Command, Output};

/// Runs curl with `args`; returns its output.
///
/// # Panics
///
/// If curl cannot run or fails.
pub fn output<S: AsRef<str>>(args: &[S]) -> Output {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(&args)
        .output()
        .expect("curl is installed");
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs curl with `args`, everything it received (all heads, then the decoded body) on
/// stdout; returns that.
pub fn raw<S: AsRef<str>>(args: &[S]) -> Vec<u8> {
    let mut all: Vec<&str> = vec!["-D", "-", "-o", "/dev/stdout"];
    all.extend(args.iter().map(AsRef::as_ref));
    output(&all).stdout
}

/// Runs curl with `args`; returns the final status, the final head and the body (see
/// [`split_response`]).
pub fn response<S: AsRef<str>>(args: &[S]) -> (u16, String, Vec<u8>) {
    split_response(&raw(args))
}

/// Splits heads-then-body output into (final status, final head, body); 1xx heads but 101
/// are skipped. Works for HTTP/1 (`HTTP/1.1 200`) and curl's HTTP/2 heads (`HTTP/2 200`).
///
/// # Panics
///
/// If there is no complete head with a status code.
pub fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let mut rest = raw;
    loop {
        let end = crate::raw::find(rest, b"\r\n\r\n").expect("a complete head");
        let head = String::from_utf8_lossy(&rest[..end + 4]).to_string();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .expect("a status code");
        rest = &rest[end + 4..];
        if !(100..200).contains(&status) || status == 101 {
            return (status, head, rest.to_vec());
        }
    }
}
