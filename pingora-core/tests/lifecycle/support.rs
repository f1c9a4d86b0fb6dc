//! Helpers for the process tests: server child processes, a blocking HTTP/1.1 client, and
//! client load loops that count what happened to every request.

use std::collections::HashSet;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Set in the environment of a child process to make it the server.
pub(crate) const SERVE_ENV: &str = "PINGORA_LIFECYCLE_SERVE";
/// How long any single wait may take before the test fails; generous, for loaded machines.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);
/// The pause between two requests of one load loop.
const LOAD_PAUSE: Duration = Duration::from_millis(10);
/// How often a condition is checked while waiting for it.
const POLL: Duration = Duration::from_millis(10);

/// Waits until `cond` holds, failing with `what` after [`TIMEOUT`].
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(POLL);
    }
}

/// Writes the server configuration (with the example's `listen` key) into `dir`.
pub(crate) fn write_conf(dir: &Path, extra: &str) -> String {
    let path = dir.join("conf.yaml");
    let retries = if extra.contains("upgrade_sock_connect_accept_max_retries") {
        ""
    } else {
        "upgrade_sock_connect_accept_max_retries: 30\n"
    };
    let text = format!(
        "---\nversion: 1\nthreads: 2\ngrace_period_seconds: 20\n\
         graceful_shutdown_timeout_seconds: 2\nupgrade_sock: {dir}/upgrade.sock\n\
         {retries}pid_file: {dir}/server.pid\n\
         error_log: {dir}/error.log\nlisten: [\"127.0.0.1:0\"]\n{extra}",
        dir = dir.display()
    );
    std::fs::write(&path, text).expect("write the configuration");
    path.display().to_string()
}

// === ServerProcess ===

/// A server child process, its standard error collected line by line.
pub(crate) struct ServerProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Set once standard error is read to its end.
    eof: Arc<AtomicBool>,
}

impl ServerProcess {
    /// Starts this binary as the server with `args`.
    pub(crate) fn start(args: &[&str]) -> ServerProcess {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args(args)
            .env(SERVE_ENV, "1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let eof = Arc::new(AtomicBool::new(false));
        let reached_eof = Arc::clone(&eof);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
            reached_eof.store(true, Ordering::SeqCst);
        });
        ServerProcess { child, lines, eof }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the process.
    pub(crate) fn signal(&self, signal: Signal) {
        send_signal(self.pid(), signal);
    }

    /// Waits for a line of standard error starting with `prefix`; returns it.
    pub(crate) fn wait_line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self.find_line(prefix) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no line starting with {prefix:?} from pid {}; it printed:\n{}",
                self.pid(),
                self.output()
            );
            thread::sleep(POLL);
        }
    }

    /// A line of standard error starting with `prefix`, if one was printed.
    pub(crate) fn find_line(&self, prefix: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find(|l| l.starts_with(prefix)).cloned()
    }

    /// Everything printed on standard error so far.
    pub(crate) fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Waits for the process to exit, for at most `timeout`.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the last lines it printed be read. A daemon it forked does not hold the
                // pipe (its standard error goes elsewhere), so the end comes promptly.
                let read_by = Instant::now() + Duration::from_secs(10);
                while !self.eof.load(Ordering::SeqCst) && Instant::now() < read_by {
                    thread::sleep(POLL);
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "pid {} did not exit within {timeout:?}; it printed:\n{}",
                self.pid(),
                self.output()
            );
            thread::sleep(POLL);
        }
    }

    /// Whether the process is still running.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A failed test must not leave servers behind.
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `signal` to process `pid`.
pub(crate) fn send_signal(pid: u32, signal: Signal) {
    let pid = Pid::from_raw(i32::try_from(pid).expect("pid fits i32"));
    kill(pid, signal).expect("send a signal");
}

/// Parses `ready <addr> pid <pid>`.
pub(crate) fn parse_ready(line: &str) -> (SocketAddr, u32) {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("ready"), "{line}");
    let addr = words.next().and_then(|a| a.parse().ok()).expect("address");
    assert_eq!(words.next(), Some("pid"), "{line}");
    let pid = words.next().and_then(|p| p.parse().ok()).expect("pid");
    (addr, pid)
}

// === HttpConn ===

/// A blocking HTTP/1.1 client connection.
pub(crate) struct HttpConn {
    reader: BufReader<TcpStream>,
}

/// A response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) close: bool,
    chunked: bool,
    length: Option<usize>,
}

/// Why a request failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing of a response came: the connection was closed or reset before. On a reused
    /// connection this is the race every HTTP/1.1 client must expect, and retrying the
    /// (idempotent) request on a new connection is the standard answer.
    BeforeResponse(io::Error),
    /// The response started but broke off, or was malformed.
    DuringResponse(io::Error),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::BeforeResponse(e) => write!(f, "closed before any response: {e}"),
            Failure::DuringResponse(e) => write!(f, "response broken off: {e}"),
        }
    }
}

impl HttpConn {
    /// Connects to `addr`.
    pub(crate) fn connect(addr: SocketAddr) -> io::Result<HttpConn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        stream.set_write_timeout(Some(Duration::from_secs(30)))?;
        stream.set_nodelay(true)?;
        Ok(HttpConn {
            reader: BufReader::new(stream),
        })
    }

    /// Sends `GET path` and reads the response head.
    pub(crate) fn send(&mut self, path: &str) -> Result<Head, Failure> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: lifecycle\r\n\r\n");
        self.reader
            .get_mut()
            .write_all(request.as_bytes())
            .map_err(Failure::BeforeResponse)?;
        let mut status_line = String::new();
        match self.reader.read_line(&mut status_line) {
            Ok(0) => return Err(Failure::BeforeResponse(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => {}
            Err(e) => return Err(Failure::BeforeResponse(e)),
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| during(format!("bad status line {status_line:?}")))?;
        let mut head = Head {
            status,
            close: false,
            chunked: false,
            length: None,
        };
        loop {
            let line = self.line()?;
            if line.is_empty() {
                return Ok(head);
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| during(format!("bad header {line:?}")))?;
            let value = value.trim().to_ascii_lowercase();
            match name.to_ascii_lowercase().as_str() {
                "connection" => head.close = value.contains("close"),
                "transfer-encoding" => head.chunked = value.contains("chunked"),
                "content-length" => head.length = value.parse().ok(),
                _ => {}
            }
        }
    }

    /// Reads the body of the response whose head is `head`.
    pub(crate) fn body(&mut self, head: &Head) -> Result<Vec<u8>, Failure> {
        let mut body = Vec::new();
        if head.chunked {
            loop {
                let size_line = self.line()?;
                let size = usize::from_str_radix(size_line.split(';').next().unwrap_or(""), 16)
                    .map_err(|_| during(format!("bad chunk size {size_line:?}")))?;
                if size == 0 {
                    // Trailers, if any, end with an empty line.
                    while !self.line()?.is_empty() {}
                    return Ok(body);
                }
                let start = body.len();
                body.resize(start + size, 0);
                self.reader
                    .read_exact(&mut body[start..])
                    .map_err(Failure::DuringResponse)?;
                if !self.line()?.is_empty() {
                    return Err(during("chunk not followed by CRLF".into()));
                }
            }
        }
        let length = head.length.ok_or_else(|| during("no body length".into()))?;
        body.resize(length, 0);
        self.reader
            .read_exact(&mut body)
            .map_err(Failure::DuringResponse)?;
        Ok(body)
    }

    /// `GET path`, whole.
    pub(crate) fn get(&mut self, path: &str) -> Result<(Head, Vec<u8>), Failure> {
        let head = self.send(path)?;
        let body = self.body(&head)?;
        Ok((head, body))
    }

    /// Waits for the server to close this idle connection: `Ok` on a clean close with nothing
    /// sent, otherwise what happened instead.
    pub(crate) fn expect_closed(&mut self) -> Result<(), String> {
        let mut byte = [0u8; 1];
        match self.reader.read(&mut byte) {
            Ok(0) => Ok(()),
            Ok(_) => Err(format!("bytes came: {:?}", String::from_utf8_lossy(&byte))),
            Err(e) => Err(format!("not a clean close: {e}")),
        }
    }

    fn line(&mut self) -> Result<String, Failure> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Err(Failure::DuringResponse(io::ErrorKind::UnexpectedEof.into())),
            Ok(_) => Ok(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => Err(Failure::DuringResponse(e)),
        }
    }
}

fn during(msg: String) -> Failure {
    Failure::DuringResponse(io::Error::new(io::ErrorKind::InvalidData, msg))
}

/// The pid in a `hello from pid N` body.
pub(crate) fn body_pid(body: &[u8]) -> Option<u32> {
    std::str::from_utf8(body)
        .ok()?
        .trim()
        .strip_prefix("hello from pid ")?
        .parse()
        .ok()
}

// === Load ===

/// What the load loops saw.
#[derive(Default)]
pub(crate) struct LoadStats {
    /// Complete 200 responses.
    pub(crate) ok: AtomicUsize,
    /// Connections refused.
    pub(crate) refused: AtomicUsize,
    /// Requests retried on a new connection after a reused one closed before answering.
    pub(crate) retried: AtomicUsize,
    /// Complete responses that came after a connection had been refused (fresh loop only).
    pub(crate) ok_after_refused: AtomicUsize,
    /// Every other failure, described.
    pub(crate) failures: Mutex<Vec<String>>,
    /// The pids that answered.
    pub(crate) pids: Mutex<HashSet<u32>>,
}

impl LoadStats {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }

    fn answered(&self, head: &Head, body: &[u8]) -> bool {
        if head.status != 200 {
            self.fail(format!("status {}", head.status));
            return false;
        }
        match body_pid(body) {
            Some(pid) => {
                self.pids.lock().unwrap().insert(pid);
                self.ok.fetch_add(1, Ordering::SeqCst);
                true
            }
            None => {
                self.fail(format!(
                    "unexpected body {:?}",
                    String::from_utf8_lossy(body)
                ));
                false
            }
        }
    }

    pub(crate) fn ok(&self) -> usize {
        self.ok.load(Ordering::SeqCst)
    }

    pub(crate) fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    pub(crate) fn summary(&self) -> String {
        format!(
            "ok {}, refused {}, retried {}, ok after refused {}, pids {:?}, failures {:?}",
            self.ok(),
            self.refused(),
            self.retried.load(Ordering::SeqCst),
            self.ok_after_refused.load(Ordering::SeqCst),
            self.pids.lock().unwrap(),
            self.failures.lock().unwrap()
        )
    }
}

/// Client load against one address: loops of requests until stopped (or a minute passes).
pub(crate) struct Load {
    pub(crate) stats: Arc<LoadStats>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `keepalive` loops that reuse their connection and `fresh` loops that open one
    /// connection per request.
    pub(crate) fn start(addr: SocketAddr, keepalive: usize, fresh: usize) -> Load {
        let stats = Arc::new(LoadStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for _ in 0..keepalive {
            let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
            threads.push(thread::spawn(move || keepalive_loop(addr, &stop, &stats)));
        }
        for _ in 0..fresh {
            let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
            threads.push(thread::spawn(move || fresh_loop(addr, &stop, &stats)));
        }
        Load {
            stats,
            stop,
            threads,
        }
    }

    /// Stops the loops and waits for them.
    pub(crate) fn stop(self) -> Arc<LoadStats> {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads {
            thread.join().expect("a load thread panicked");
        }
        self.stats
    }
}

/// The time limit of a load loop, whatever happens to the test.
fn load_deadline() -> Instant {
    Instant::now() + Duration::from_secs(120)
}

fn keepalive_loop(addr: SocketAddr, stop: &AtomicBool, stats: &LoadStats) {
    let deadline = load_deadline();
    let mut conn: Option<HttpConn> = None;
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let reused = conn.is_some();
        let current = match conn.as_mut() {
            Some(c) => c,
            None => match HttpConn::connect(addr) {
                Ok(c) => conn.insert(c),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    stats.refused.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(LOAD_PAUSE);
                    continue;
                }
                Err(e) => {
                    stats.fail(format!("keepalive connect: {e}"));
                    thread::sleep(LOAD_PAUSE);
                    continue;
                }
            },
        };
        match current.get("/") {
            Ok((head, body)) => {
                stats.answered(&head, &body);
                if head.close {
                    conn = None;
                }
            }
            Err(Failure::BeforeResponse(_)) if reused => {
                // Retried at once on a new connection by the next turn of the loop.
                stats.retried.fetch_add(1, Ordering::SeqCst);
                conn = None;
                continue;
            }
            Err(e) => {
                stats.fail(format!("keepalive request (reused {reused}): {e}"));
                conn = None;
            }
        }
        thread::sleep(LOAD_PAUSE);
    }
}

fn fresh_loop(addr: SocketAddr, stop: &AtomicBool, stats: &LoadStats) {
    let deadline = load_deadline();
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        match HttpConn::connect(addr) {
            Ok(mut conn) => match conn.get("/") {
                Ok((head, body)) => {
                    if stats.answered(&head, &body) && stats.refused() > 0 {
                        stats.ok_after_refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Err(e) => stats.fail(format!("fresh request: {e}")),
            },
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                stats.refused.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => stats.fail(format!("fresh connect: {e}")),
        }
        thread::sleep(LOAD_PAUSE);
    }
}

/// A long streaming response read on its own thread: the head is read before `start`
/// returns, so the request is known to be in flight on the server that answered it.
pub(crate) struct LongResponse {
    thread: JoinHandle<Result<Vec<u8>, String>>,
}

impl LongResponse {
    /// Requests `chunks` chunks `ms` milliseconds apart.
    pub(crate) fn start(addr: SocketAddr, chunks: u32, ms: u32) -> LongResponse {
        let mut conn = HttpConn::connect(addr).expect("connect for the long response");
        let head = conn
            .send(&format!("/stream?chunks={chunks}&ms={ms}"))
            .expect("long response head");
        assert_eq!(head.status, 200);
        let thread = thread::spawn(move || conn.body(&head).map_err(|e| e.to_string()));
        LongResponse { thread }
    }

    /// Waits for the whole body.
    pub(crate) fn finish(self) -> Result<Vec<u8>, String> {
        self.thread
            .join()
            .expect("the long response thread panicked")
    }
}

/// Checks a streamed body: `chunks` lines, in order, all from `pid`.
pub(crate) fn check_stream(body: &[u8], chunks: u32, pid: u32) {
    let text = String::from_utf8_lossy(body);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), chunks as usize, "{text}");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("chunk {i} of {chunks} from pid {pid}"));
    }
}
