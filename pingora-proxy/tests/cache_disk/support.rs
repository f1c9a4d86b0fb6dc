//! Helpers of the disk cache fault tests: the proxy as a child process, a slow origin with
//! known bodies, a blocking HTTP/1.1 client that tells a whole response from a cut one, and
//! the cache directory as seen from outside.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use pingora_test_support::body::pseudo_random;
use pingora_test_support::origin::Origin;
use pingora_test_support::raw::RawConn;

/// Set in the environment of a child process to make it the proxy (the `cache` example).
pub(crate) const SERVE_ENV: &str = "PINGORA_CACHE_FAULTS_SERVE";
/// The `Host` of every request: the cache key holds it, so it must not change with the
/// proxy's port across restarts.
const HOST: &str = "faults.test";
/// How long any single wait may take before the test fails; generous, for loaded machines.
const TIMEOUT: Duration = Duration::from_secs(60);
/// How often a condition is checked while waiting for it.
const POLL: Duration = Duration::from_millis(5);
/// The origin sends bodies in pieces of this size...
const PIECE: usize = 16 << 10;
/// ...this far apart, so that a body takes tens of milliseconds.
const PIECE_PAUSE: Duration = Duration::from_millis(3);

/// Waits until `cond` holds, failing with `what` after [`TIMEOUT`].
pub(crate) fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(POLL);
    }
}

// === bodies ===

/// The body of object `id`: 64 KiB to 320 KiB of pseudo-random bytes.
pub(crate) fn body_of(id: u32) -> Vec<u8> {
    let spread = (u64::from(id) * 0x9E37_79B9) % (256 << 10);
    let len = (64 << 10) + usize::try_from(spread).expect("below 256 KiB");
    pseudo_random(len, u64::from(id) + 1)
}

/// Odd objects come chunked from the origin, even ones with a Content-Length.
fn chunked(id: u32) -> bool {
    id % 2 == 1
}

// === the origin ===

/// What the origin did.
#[derive(Debug, Default)]
pub(crate) struct OriginStats {
    /// Responses whose body is past its half and not over yet.
    pub(crate) midway: AtomicUsize,
    /// Responses sent whole.
    pub(crate) finished: AtomicUsize,
    /// Requests per object.
    fetches: Mutex<HashMap<u32, usize>>,
}

impl OriginStats {
    /// How many times object `id` was requested.
    pub(crate) fn fetches(&self, id: u32) -> usize {
        self.fetches.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

/// An origin serving `/obj/<id>` slowly with [`body_of`] and a long freshness lifetime, one
/// request per connection.
pub(crate) struct SlowOrigin {
    pub(crate) addr: SocketAddr,
    pub(crate) stats: Arc<OriginStats>,
    _runtime: tokio::runtime::Runtime,
}

impl SlowOrigin {
    pub(crate) fn start() -> SlowOrigin {
        let runtime = pingora_test_support::runtime();
        let stats = Arc::new(OriginStats::default());
        let shared = Arc::clone(&stats);
        let origin = runtime.block_on(Origin::start(move |conn, _| {
            serve(conn, Arc::clone(&shared))
        }));
        SlowOrigin {
            addr: origin.addr,
            stats,
            _runtime: runtime,
        }
    }
}

async fn serve(mut conn: RawConn, stats: Arc<OriginStats>) {
    let Some(req) = conn.read_request().await else {
        return;
    };
    let Some(id) = object_id(req.head.target()) else {
        let _ = conn
            .try_send("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    *stats.fetches.lock().unwrap().entry(id).or_default() += 1;
    let body = body_of(id);
    let framing = if chunked(id) {
        "Transfer-Encoding: chunked".to_string()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nCache-Control: public, max-age=3600\r\nContent-Type: \
         application/octet-stream\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    if conn.try_send(head).await.is_err() {
        return;
    }
    let mut midway = false;
    for (i, piece) in body.chunks(PIECE).enumerate() {
        let mut bytes = Vec::with_capacity(piece.len() + 16);
        if chunked(id) {
            bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            bytes.extend_from_slice(piece);
            bytes.extend_from_slice(b"\r\n");
        } else {
            bytes.extend_from_slice(piece);
        }
        if conn.try_send(bytes).await.is_err() {
            break;
        }
        if !midway && (i + 1) * PIECE * 2 >= body.len() {
            midway = true;
            stats.midway.fetch_add(1, Ordering::SeqCst);
        }
        tokio::time::sleep(PIECE_PAUSE).await;
    }
    let whole = !chunked(id) || conn.try_send("0\r\n\r\n").await.is_ok();
    if midway {
        stats.midway.fetch_sub(1, Ordering::SeqCst);
    }
    if whole {
        stats.finished.fetch_add(1, Ordering::SeqCst);
    }
}

fn object_id(target: &str) -> Option<u32> {
    target.strip_prefix("/obj/")?.parse().ok()
}

// === the proxy process ===

/// The `cache` example as a child process: this test binary run with [`SERVE_ENV`].
pub(crate) struct ProxyProcess {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Where it listens.
    pub(crate) addr: SocketAddr,
}

/// What the disk store reported at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rebuilt {
    pub(crate) kept: usize,
    pub(crate) discarded: usize,
    pub(crate) temp_removed: usize,
}

impl ProxyProcess {
    /// Starts the proxy with its cache in `dir` (`--disk`, plus `--tiered` if asked) in front
    /// of `origin`, and waits until it listens.
    pub(crate) fn start(dir: &Path, origin: SocketAddr, tiered: bool) -> ProxyProcess {
        let mut proxy = ProxyProcess::spawn(dir, origin, tiered, &[]);
        proxy.wait_listening();
        proxy
    }

    /// Starts the proxy as [`start`](Self::start) does with `extra` arguments (`-u` for the
    /// new process of a graceful upgrade), without waiting for it to listen.
    pub(crate) fn spawn(
        dir: &Path,
        origin: SocketAddr,
        tiered: bool,
        extra: &[&str],
    ) -> ProxyProcess {
        let conf = dir.with_extension("conf.yaml");
        let text = format!(
            "---\nversion: 1\nthreads: 2\npid_file: {0}.pid\nupgrade_sock: {0}.sock\n",
            dir.display()
        );
        std::fs::write(&conf, text).expect("write the server configuration");
        let mut args = vec![
            "-c".to_string(),
            conf.display().to_string(),
            "--listen".to_string(),
            "127.0.0.1:0".to_string(),
            "--origin".to_string(),
            origin.to_string(),
            "--disk".to_string(),
            dir.display().to_string(),
        ];
        if tiered {
            args.push("--tiered".to_string());
        }
        args.extend(extra.iter().map(|a| a.to_string()));
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args(&args)
            .env(SERVE_ENV, "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the proxy");
        let stderr = child.stderr.take().expect("piped stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        ProxyProcess {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Waits until the proxy listens; records where.
    pub(crate) fn wait_listening(&mut self) {
        let line = self.wait_line("listening on ");
        self.addr = line["listening on ".len()..]
            .trim()
            .parse()
            .expect("the proxy's address");
    }

    /// Sends SIGQUIT (a graceful upgrade: hand the listeners over, then stop).
    pub(crate) fn quit(&self) {
        let status = Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "SIGQUIT the proxy");
    }

    /// Waits for the process to exit; whether it exited with success.
    pub(crate) fn wait_exit(mut self) -> bool {
        self.child.wait().expect("wait for the proxy").success()
    }

    /// What the disk store found at start.
    pub(crate) fn rebuilt(&self) -> Rebuilt {
        let line = self.wait_line("disk cache ");
        let number = |label: &str| -> usize {
            let at = line
                .find(label)
                .unwrap_or_else(|| panic!("{label:?} in {line:?}"));
            let rest = &line[at + label.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("a number")
        };
        Rebuilt {
            kept: number("kept "),
            discarded: number("discarded "),
            temp_removed: number("temporary files removed "),
        }
    }

    /// Kills the process with SIGKILL and reaps it.
    pub(crate) fn kill9(mut self) {
        self.child.kill().expect("SIGKILL the proxy");
        self.child.wait().expect("reap the proxy");
    }

    /// Waits for a line of standard error starting with `prefix`; returns it.
    pub(crate) fn wait_line(&self, prefix: &str) -> String {
        let mut found = None;
        wait_until(&format!("a line {prefix:?} from the proxy"), || {
            found = self.find_line(prefix);
            found.is_some()
        });
        found.unwrap_or_default()
    }

    fn find_line(&self, prefix: &str) -> Option<String> {
        let lines = self.lines.lock().unwrap();
        lines.iter().find(|l| l.starts_with(prefix)).cloned()
    }

    /// Everything printed on standard error so far.
    pub(crate) fn output(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        // A failed test must not leave proxies behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// === the client ===

/// What a request for an object got.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A whole response (its framing complete) with the object's exact bytes.
    Whole { hit: bool },
    /// No connection: the proxy is not running.
    Refused,
    /// No whole response: the connection ended early; never served as whole.
    Broken(String),
    /// A whole response that is not the object: the failure these tests look for.
    Corrupt(String),
}

/// `GET /obj/<id>` on a new connection to `proxy`, checked against [`body_of`].
pub(crate) fn fetch(proxy: SocketAddr, id: u32) -> Outcome {
    match exchange(proxy, id) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Outcome::Refused,
        Err(e) => Outcome::Broken(e.to_string()),
        Ok(resp) if resp.status != 200 => {
            Outcome::Corrupt(format!("object {id}: status {}", resp.status))
        }
        Ok(resp) => {
            let expected = body_of(id);
            if resp.body == expected {
                Outcome::Whole {
                    hit: resp.cache_status.starts_with("pingora; hit"),
                }
            } else {
                let differs = resp.body.iter().zip(&expected).position(|(a, b)| a != b);
                Outcome::Corrupt(format!(
                    "object {id}: {} bytes (expected {}), first difference at {differs:?}, \
                     Cache-Status {:?}",
                    resp.body.len(),
                    expected.len(),
                    resp.cache_status
                ))
            }
        }
    }
}

struct Response {
    status: u16,
    cache_status: String,
    body: Vec<u8>,
}

/// One request and its response. The request keeps the connection open, so that the proxy
/// must frame the body (a body delimited by the close could not be told from a cut one).
fn exchange(proxy: SocketAddr, id: u32) -> io::Result<Response> {
    let stream = TcpStream::connect_timeout(&proxy, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream);
    let request = format!("GET /obj/{id} HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    reader.get_mut().write_all(request.as_bytes())?;
    let status_line = line(&mut reader)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("status line {status_line:?}")))?;
    let (mut length, mut is_chunked, mut cache_status) = (None, false, String::new());
    loop {
        let header = line(&mut reader)?;
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((&header, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => is_chunked = value.to_ascii_lowercase().contains("chunked"),
            "cache-status" => cache_status = value.trim().to_string(),
            _ => {}
        }
    }
    let body = if is_chunked {
        chunked_body(&mut reader)?
    } else {
        let length = length.ok_or_else(|| bad("a body without framing".into()))?;
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        body
    };
    Ok(Response {
        status,
        cache_status,
        body,
    })
}

fn chunked_body(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let size_line = line(reader)?;
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| bad(format!("chunk size {size_line:?}")))?;
        if size == 0 {
            while !line(reader)?.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if !line(reader)?.is_empty() {
            return Err(bad("chunk data not followed by CRLF".into()));
        }
    }
}

/// A line without its CRLF; an error if the connection ends first.
fn line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 || !line.ends_with('\n') {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

// === the cache directory from outside ===

/// The object files under `dir/objects`, by path.
pub(crate) fn object_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(shards) = std::fs::read_dir(dir.join("objects")) else {
        return out;
    };
    for shard in shards.flatten() {
        if let Ok(files) = std::fs::read_dir(shard.path()) {
            out.extend(files.flatten().map(|f| f.path()));
        }
    }
    out.sort();
    out
}

/// The number of temporary files (writes in progress) under `dir/tmp`.
pub(crate) fn temp_files(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("tmp")).map_or(0, |d| d.count())
}

/// Waits until no write is in progress and `objects` objects are on disk.
pub(crate) fn settle(dir: &Path, objects: usize) {
    wait_until(
        &format!("{objects} objects on disk, no write in progress"),
        || temp_files(dir) == 0 && object_files(dir).len() == objects,
    );
}
