//! Driving `wrk` (the HTTP/1.1 load generator) against a server process, and reading its
//! report: the summary it prints, plus, from a Lua script, the responses per server pid (the
//! `hello from pid N` bodies) and the responses that carried `Connection: close`.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Counts responses per pid and `Connection: close` responses in each wrk thread, and prints
/// the totals when the run is done.
const SCRIPT: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) pids = {} closes = 0 end
function response(status, headers, body)
  local pid = string.match(body, "hello from pid (%d+)")
  if pid then pids[pid] = (pids[pid] or 0) + 1 end
  local connection = headers["Connection"] or headers["connection"] or ""
  if string.lower(connection) == "close" then closes = closes + 1 end
end
function done(summary, latency, requests)
  local totals, closes_total = {}, 0
  for _, thread in ipairs(threads) do
    for pid, n in pairs(thread:get("pids")) do totals[pid] = (totals[pid] or 0) + n end
    closes_total = closes_total + thread:get("closes")
  end
  for pid, n in pairs(totals) do io.write(string.format("responses from pid %s: %d\n", pid, n)) end
  io.write(string.format("connection close responses: %d\n", closes_total))
end
"#;

/// A `wrk` run in progress.
pub(crate) struct Wrk {
    child: Child,
    started: Instant,
    duration: Duration,
}

/// What `wrk` reported.
#[derive(Debug)]
pub(crate) struct WrkReport {
    /// Requests completed.
    pub(crate) requests: u64,
    /// The `Socket errors:` counts by kind (connect, read, write, timeout); empty when wrk
    /// printed no such line (no error at all).
    pub(crate) socket_errors: Vec<(String, u64)>,
    /// The `Non-2xx or 3xx responses:` count, when wrk printed one.
    pub(crate) non_2xx: Option<u64>,
    /// Responses per server pid.
    pub(crate) per_pid: BTreeMap<u32, u64>,
    /// Responses that carried `Connection: close`.
    pub(crate) closes: u64,
    /// Everything wrk printed.
    pub(crate) output: String,
}

impl Wrk {
    /// Starts `wrk` with `threads` threads and `connections` keepalive connections against
    /// `http://addr/` for `duration`, its script written into `dir`.
    ///
    /// # Panics
    ///
    /// If `wrk` is not installed.
    pub(crate) fn start(
        dir: &Path,
        addr: SocketAddr,
        threads: usize,
        connections: usize,
        duration: Duration,
    ) -> Wrk {
        let script = dir.join("count.lua");
        std::fs::write(&script, SCRIPT).expect("write the wrk script");
        let child = Command::new("wrk")
            .arg(format!("--threads={threads}"))
            .arg(format!("--connections={connections}"))
            .arg(format!("--duration={}s", duration.as_secs()))
            .arg("--timeout=2s")
            .arg(format!("--script={}", script.display()))
            .arg(format!("http://{addr}/"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run wrk ({e}); install it (`apt-get install wrk`, as scripts/test.sh \
                     does) to run this test"
                )
            });
        Wrk {
            child,
            started: Instant::now(),
            duration,
        }
    }

    /// How long the run has left.
    pub(crate) fn remaining(&self) -> Duration {
        self.duration.saturating_sub(self.started.elapsed())
    }

    /// Waits for the run to end and parses its report.
    pub(crate) fn finish(mut self) -> WrkReport {
        let mut output = String::new();
        let mut stdout = self.child.stdout.take().expect("piped stdout");
        stdout
            .read_to_string(&mut output)
            .expect("read wrk's output");
        let mut errors = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut errors);
        }
        let status = self.child.wait().expect("wait for wrk");
        assert!(
            status.success(),
            "wrk failed: {status:?}\n{output}\n{errors}"
        );
        WrkReport::parse(output)
    }
}

impl Drop for Wrk {
    fn drop(&mut self) {
        // A failed test must not leave wrk running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl WrkReport {
    fn parse(output: String) -> WrkReport {
        let mut report = WrkReport {
            requests: 0,
            socket_errors: Vec::new(),
            non_2xx: None,
            per_pid: BTreeMap::new(),
            closes: 0,
            output: String::new(),
        };
        for line in output.lines().map(str::trim) {
            if let Some(errors) = line.strip_prefix("Socket errors:") {
                // "connect 0, read 0, write 0, timeout 0"
                for item in errors.split(',') {
                    let mut words = item.split_whitespace();
                    let kind = words.next().unwrap_or_default().to_string();
                    let count = words
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(u64::MAX);
                    report.socket_errors.push((kind, count));
                }
            } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
                report.non_2xx = Some(count.trim().parse().unwrap_or(u64::MAX));
            } else if line.contains(" requests in ") {
                report.requests = first_number(line);
            } else if let Some(rest) = line.strip_prefix("responses from pid ") {
                let (pid, count) = rest.split_once(':').expect("pid: count");
                report.per_pid.insert(
                    pid.parse().expect("a pid"),
                    count.trim().parse().expect("a count"),
                );
            } else if let Some(count) = line.strip_prefix("connection close responses:") {
                report.closes = count.trim().parse().expect("a count");
            }
        }
        report.output = output;
        report
    }

    /// Total socket errors of every kind.
    pub(crate) fn errors(&self) -> u64 {
        self.socket_errors.iter().map(|(_, n)| n).sum()
    }

    /// One line: requests, errors, non-2xx, per pid, closes.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} requests, socket errors {:?}, non-2xx {:?}, per pid {:?}, {} Connection: close",
            self.requests, self.socket_errors, self.non_2xx, self.per_pid, self.closes
        )
    }
}

/// The number a line starts with.
fn first_number(line: &str) -> u64 {
    line.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

/// How many TCP connections to `addr` are established, counted on the server's side (sockets
/// whose local address is `addr`), from `/proc/net/tcp`.
pub(crate) fn established_to(addr: SocketAddr) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let local = format!(":{:04X}", addr.port());
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address rem_address st: 01 is ESTABLISHED.
            fields.len() > 3 && fields[1].ends_with(&local) && fields[3] == "01"
        })
        .count()
}
