//! The `sentry` feature across processes: a daemon reports its panics (its Sentry client
//! started after the fork), and so does the new process of a graceful upgrade.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use nix::sys::signal::Signal;

use crate::cases::{read_pid, wait_daemon_exit, wait_for_log_line};
use crate::support::*;

/// The tests of this file, by name.
pub(crate) const TESTS: &[(&str, fn())] = &[(
    "sentry_daemons_report_panics_across_an_upgrade",
    sentry_daemons_report_panics_across_an_upgrade,
)];

/// A daemon's panicking request is reported by the daemon itself; after a graceful upgrade,
/// the new daemon reports its own. One report per panic, each naming its request.
fn sentry_daemons_report_panics_across_an_upgrade() {
    let endpoint = SentryEndpoint::start();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(
        dir.path(),
        &format!(
            "daemon_wait_for_ready: true\nsentry_dsn: http://public@{}/7\n",
            endpoint.addr
        ),
    );
    let pid_file = dir.path().join("server.pid");
    let error_log = dir.path().join("error.log");

    let mut launcher = ServerProcess::start(&["-d", "-c", &conf]);
    assert!(
        launcher.wait_exit(TIMEOUT).success(),
        "{}",
        launcher.output()
    );
    let old_pid = read_pid(&pid_file);
    let (addr, _) = parse_ready(&wait_for_log_line(&error_log, "ready "));
    panic_once(addr, &endpoint, 1, old_pid);

    send_signal(old_pid, Signal::SIGQUIT);
    let mut launcher = ServerProcess::start(&["-u", "-d", "-c", &conf]);
    assert!(
        launcher.wait_exit(TIMEOUT).success(),
        "{}",
        launcher.output()
    );
    let new_pid = read_pid(&pid_file);
    assert_ne!(new_pid, old_pid);
    wait_for_log_line(&error_log, &format!("ready {addr} pid {new_pid}"));
    assert_eq!(
        wait_daemon_exit(old_pid),
        0,
        "the old daemon drains and exits"
    );
    panic_once(addr, &endpoint, 2, new_pid);

    send_signal(new_pid, Signal::SIGTERM);
    assert_eq!(wait_daemon_exit(new_pid), 0);
    // Both daemons sent what they had before exiting: nothing more came.
    assert_eq!(endpoint.received().len(), 2);
}

/// Requests `/panic` from the daemon `pid` at `addr`: the connection closes, the endpoint gets
/// its `count`th report, from that daemon, and the daemon still serves.
fn panic_once(addr: SocketAddr, endpoint: &SentryEndpoint, count: usize, pid: u32) {
    let mut conn = HttpConn::connect(addr).expect("connect to the daemon");
    assert!(
        conn.get("/panic").is_err(),
        "a panicking request gets no response"
    );
    wait_until("a crash report", || endpoint.received().len() >= count);
    let report = endpoint.received()[count - 1].clone();
    assert!(
        report.contains(&format!("panic requested in pid {pid}")),
        "{report}"
    );
    assert!(report.contains(r#""path":"/panic""#), "{report}");
    let mut conn = HttpConn::connect(addr).expect("connect to the daemon");
    let (head, body) = conn.get("/").expect("the daemon still serves");
    assert_eq!(head.status, 200);
    assert_eq!(body, format!("hello from pid {pid}\n").into_bytes());
}

/// A Sentry endpoint on `127.0.0.1:0`: keeps the body of every request it gets.
struct SentryEndpoint {
    addr: SocketAddr,
    bodies: Arc<Mutex<Vec<String>>>,
}

impl SentryEndpoint {
    fn start() -> SentryEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&bodies);
        thread::spawn(move || {
            for conn in listener.incoming().map_while(Result::ok) {
                let sink = Arc::clone(&sink);
                thread::spawn(move || serve_reports(conn, &sink));
            }
        });
        SentryEndpoint { addr, bodies }
    }

    fn received(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

/// Answers every request of `conn` with `200 {}`, keeping its body in `sink`.
fn serve_reports(conn: TcpStream, sink: &Mutex<Vec<String>>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    loop {
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        sink.lock()
            .unwrap()
            .push(String::from_utf8_lossy(&body).into_owned());
        let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
    }
}
