//! The process tests.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;

use crate::support::*;
use crate::wrk::{established_to, Wrk};

/// The tests, by name.
pub(crate) const TESTS: &[(&str, fn())] = &[
    ("graceful_upgrade_under_load", graceful_upgrade_under_load),
    ("graceful_upgrade_under_wrk", graceful_upgrade_under_wrk),
    (
        "upgrade_ends_keepalive_on_the_old_process",
        upgrade_ends_keepalive_on_the_old_process,
    ),
    ("sigterm_drains_then_exits", sigterm_drains_then_exits),
    (
        "sigterm_closes_idle_keepalive_connections",
        sigterm_closes_idle_keepalive_connections,
    ),
    ("sigint_stops_at_once", sigint_stops_at_once),
    (
        "upgrade_without_old_process_exits_1",
        upgrade_without_old_process_exits_1,
    ),
    (
        "upgrade_hands_over_a_listener_started_before_the_bootstrap",
        upgrade_hands_over_a_listener_started_before_the_bootstrap,
    ),
    ("daemon_detaches_and_logs", daemon_detaches_and_logs),
    (
        "daemon_set_up_failure_is_reported",
        daemon_set_up_failure_is_reported,
    ),
    (
        "daemon_upgrade_like_a_systemd_reload",
        daemon_upgrade_like_a_systemd_reload,
    ),
];

/// The pause the old process keeps accepting after the hand-over (the server's
/// `CLOSE_TIMEOUT`).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// `grace_period_seconds` in the test configuration.
const GRACE: Duration = Duration::from_secs(20);

/// The old process hands its socket to a new one while clients keep sending requests, on
/// kept-alive and on fresh connections, and a long response streams: nothing fails, nothing
/// is refused, and the old process exits once it has finished its requests.
fn graceful_upgrade_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "");
    let mut old = ServerProcess::start(&["-c", &conf]);
    let (addr, old_pid) = parse_ready(&old.wait_line("ready "));
    assert_eq!(old_pid, old.pid());

    let load = Load::start(addr, 2, 1);
    // 100 chunks 100 ms apart: about 10 s, past the hand-over pause and into the drain.
    let long = LongResponse::start(addr, 100, 100);
    wait_until("load on the old process", || load.stats.ok() >= 20);

    // The new process listens on the upgrade socket first; then the old one is told.
    let mut new = ServerProcess::start(&["-u", "-c", &conf]);
    let upgrade_sock = dir.path().join("upgrade.sock");
    wait_until("the new process's upgrade socket", || upgrade_sock.exists());
    let upgrade_started = Instant::now();
    old.signal(Signal::SIGQUIT);

    let (new_addr, new_pid) = parse_ready(&new.wait_line("ready "));
    assert_eq!(new_addr, addr, "the new process took the same socket over");
    assert_ne!(new_pid, old_pid);

    let status = old.wait_exit(CLOSE_TIMEOUT + GRACE + Duration::from_secs(30));
    let old_took = upgrade_started.elapsed();
    println!("    old process exited {old_took:.1?} after SIGQUIT");
    assert!(
        status.success(),
        "old process: {status:?}\n{}",
        old.output()
    );
    assert!(
        old_took < CLOSE_TIMEOUT + GRACE,
        "the old process took {old_took:?} to exit"
    );
    let body = long.finish().expect("the long response completes");
    check_stream(&body, 100, old_pid);

    // The load goes on against the new process alone.
    let after_old = load.stats.ok();
    wait_until("load on the new process", || {
        load.stats.ok() >= after_old + 30
    });
    let stats = load.stop();
    println!("    upgrade load: {}", stats.summary());
    assert!(
        stats.failures.lock().unwrap().is_empty(),
        "{}",
        stats.summary()
    );
    assert_eq!(stats.refused(), 0, "{}", stats.summary());
    let pids = stats.pids.lock().unwrap().clone();
    assert!(
        pids.contains(&old_pid) && pids.contains(&new_pid),
        "{pids:?}"
    );

    let old_log = old.output();
    for phase in [
        "phase GracefulUpgradeTransferringFds",
        "phase GracefulUpgradeCloseTimeout",
        "phase ShutdownGracePeriod",
        "phase Terminated",
    ] {
        assert!(old_log.contains(phase), "{phase} missing from:\n{old_log}");
    }
    assert!(
        new.output()
            .contains("took over 1 listening sockets from the old process"),
        "{}",
        new.output()
    );

    new.signal(Signal::SIGTERM);
    let status = new.wait_exit(GRACE + Duration::from_secs(30));
    assert!(status.success(), "new process: {status:?}");
}

/// wrk's keepalive connections through a graceful upgrade: wrk sends each connection's next
/// request the moment a response ends, so a connection of the old process closed under a
/// request already sent would be a socket error. None may happen: after the hand-over, each
/// connection of the old process answers its next request with `Connection: close` (and wrk
/// reconnects, to the new process), and every response is a 200.
fn graceful_upgrade_under_wrk() {
    const CONNECTIONS: usize = 20;
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "");
    let mut old = ServerProcess::start(&["-c", &conf]);
    let (addr, old_pid) = parse_ready(&old.wait_line("ready "));

    // About 6 s to the old process's exit (the 5 s hand-over pause while it still accepts,
    // then the drain); the rest on the new process alone.
    let wrk = Wrk::start(dir.path(), addr, 2, CONNECTIONS, Duration::from_secs(12));
    wait_until("wrk's connections to the old process", || {
        established_to(addr) >= CONNECTIONS
    });
    let mut new = ServerProcess::start(&["-u", "-c", &conf]);
    let upgrade_sock = dir.path().join("upgrade.sock");
    wait_until("the new process's upgrade socket", || upgrade_sock.exists());
    old.signal(Signal::SIGQUIT);
    let (_, new_pid) = parse_ready(&new.wait_line("ready "));

    let status = old.wait_exit(CLOSE_TIMEOUT + GRACE);
    assert!(
        status.success(),
        "old process: {status:?}\n{}",
        old.output()
    );
    let left = wrk.remaining();
    println!("    old process exited with {left:.1?} of the wrk run left");
    assert!(
        left > Duration::from_secs(1),
        "the old process took too long to exit for the new one to be loaded alone"
    );

    let report = wrk.finish();
    println!("    wrk: {}", report.summary());
    assert_eq!(report.errors(), 0, "socket errors:\n{}", report.output);
    assert_eq!(
        report.non_2xx, None,
        "non-2xx responses:\n{}",
        report.output
    );
    // The old process serves until the hand-over (then one last response per connection):
    // at least each connection's; the new one carries the rest of the run.
    for (pid, name, least) in [
        (old_pid, "old", CONNECTIONS as u64),
        (new_pid, "new", 1_000),
    ] {
        let served = report.per_pid.get(&pid).copied().unwrap_or_default();
        assert!(
            served >= least,
            "the {name} process served {served}:\n{}",
            report.output
        );
    }
    assert_eq!(
        report.per_pid.values().sum::<u64>(),
        report.requests,
        "every response came from one of the two processes:\n{}",
        report.output
    );
    // Each of the old process's connections ended with a `Connection: close` response.
    assert!(
        report.closes >= CONNECTIONS as u64,
        "{} responses with Connection: close:\n{}",
        report.closes,
        report.output
    );

    new.signal(Signal::SIGTERM);
    let status = new.wait_exit(GRACE + Duration::from_secs(30));
    assert!(status.success(), "new process: {status:?}");
}

/// Once the old process has handed its sockets over, its keepalive connections stop being
/// kept alive at once, not when it stops accepting ([`CLOSE_TIMEOUT`] later): a busy one
/// answers its next request with `Connection: close`, an idle one is closed within the
/// server's half-second linger. Clients move to the new process instead of sending more
/// requests to one about to exit.
fn upgrade_ends_keepalive_on_the_old_process() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "");
    let mut old = ServerProcess::start(&["-c", &conf]);
    let (addr, old_pid) = parse_ready(&old.wait_line("ready "));
    let mut busy = HttpConn::connect(addr).unwrap();
    let mut idle = HttpConn::connect(addr).unwrap();
    for conn in [&mut busy, &mut idle] {
        let (head, body) = conn.get("/").unwrap();
        assert!(!head.close, "kept alive before the upgrade");
        assert_eq!(body_pid(&body), Some(old_pid));
    }

    let mut new = ServerProcess::start(&["-u", "-c", &conf]);
    let upgrade_sock = dir.path().join("upgrade.sock");
    wait_until("the new process's upgrade socket", || upgrade_sock.exists());
    old.signal(Signal::SIGQUIT);
    let upgrade_started = Instant::now();
    parse_ready(&new.wait_line("ready "));
    // Half the time the old process still accepts: well before it stops.
    let deadline = upgrade_started + CLOSE_TIMEOUT / 2;

    // The busy connection: answered by the old process, then told to close.
    loop {
        let (head, body) = busy.get("/").unwrap();
        assert_eq!(body_pid(&body), Some(old_pid));
        if head.close {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old process still keeps connections alive {:?} after SIGQUIT",
            upgrade_started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "    Connection: close {:.1?} after SIGQUIT",
        upgrade_started.elapsed()
    );
    // The idle connection: closed cleanly, with nothing sent.
    idle.expect_closed().unwrap();
    let idle_closed = upgrade_started.elapsed();
    println!("    idle connection closed {idle_closed:.1?} after SIGQUIT");
    assert!(
        idle_closed < CLOSE_TIMEOUT / 2,
        "idle connection closed {idle_closed:?} after SIGQUIT"
    );

    assert!(old.wait_exit(CLOSE_TIMEOUT + GRACE).success());
    new.signal(Signal::SIGTERM);
    assert!(new.wait_exit(GRACE).success());
}

/// `SIGTERM`: the listener closes at once (new connections are refused from then on), the
/// requests in flight complete, and the process exits with status 0.
fn sigterm_drains_then_exits() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "");
    let mut server = ServerProcess::start(&["-c", &conf]);
    let (addr, pid) = parse_ready(&server.wait_line("ready "));

    let load = Load::start(addr, 1, 1);
    let long = LongResponse::start(addr, 50, 100);
    wait_until("load before the signal", || load.stats.ok() >= 10);
    server.signal(Signal::SIGTERM);

    // The listener is closed while the long response is still streaming.
    wait_until("a refused connection", || load.stats.refused() > 0);
    assert!(
        server.is_running(),
        "the process must still be draining its requests"
    );
    let body = long.finish().expect("the long response completes");
    check_stream(&body, 50, pid);
    let status = server.wait_exit(GRACE + Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "{}", server.output());

    let stats = load.stop();
    println!("    sigterm load: {}", stats.summary());
    // Every connection accepted was answered in full; none was accepted after the first
    // refusal.
    assert!(
        stats.failures.lock().unwrap().is_empty(),
        "{}",
        stats.summary()
    );
    assert_eq!(
        stats
            .ok_after_refused
            .load(std::sync::atomic::Ordering::SeqCst),
        0,
        "{}",
        stats.summary()
    );
    let log = server.output();
    for phase in ["phase GracefulTerminate", "phase Terminated"] {
        assert!(log.contains(phase), "{phase} missing from:\n{log}");
    }
}

/// How many idle connections [`sigterm_closes_idle_keepalive_connections`] opens: the
/// `IDLE_CONNS` environment variable (`bench/idle-shutdown.sh` sets 8000), 2000 by default.
fn idle_connection_count() -> usize {
    match std::env::var("IDLE_CONNS") {
        Ok(n) => n.parse().expect("IDLE_CONNS: a number of connections"),
        Err(_) => 2_000,
    }
}

/// Thousands of idle keepalive connections (each served one request, then left waiting), then
/// `SIGTERM`: the server closes every one of them cleanly (each client reads EOF, nothing
/// sent, no reset) well within the grace period, then exits with status 0.
fn sigterm_closes_idle_keepalive_connections() {
    const OPENERS: usize = 8;
    let count = idle_connection_count();
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "");
    let mut server = ServerProcess::start(&["-c", &conf]);
    let (addr, pid) = parse_ready(&server.wait_line("ready "));

    let opening = Instant::now();
    let openers: Vec<_> = (0..OPENERS)
        .map(|i| {
            let share = count / OPENERS + usize::from(i < count % OPENERS);
            std::thread::spawn(move || open_idle_connections(addr, share, pid))
        })
        .collect();
    let groups: Vec<Vec<HttpConn>> = openers
        .into_iter()
        .map(|opener| opener.join().expect("an opening thread panicked"))
        .collect();
    assert_eq!(groups.iter().map(Vec::len).sum::<usize>(), count);
    println!(
        "    {count} keepalive connections served and idle after {:.1?}",
        opening.elapsed()
    );

    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    let watchers: Vec<_> = groups
        .into_iter()
        .map(|group| {
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for mut conn in group {
                    if let Err(e) = conn.expect_closed() {
                        failures.push(e);
                    }
                }
                failures
            })
        })
        .collect();
    let failures: Vec<String> = watchers
        .into_iter()
        .flat_map(|w| w.join().expect("a watching thread panicked"))
        .collect();
    let closing = signalled.elapsed();
    let status = server.wait_exit(GRACE + Duration::from_secs(30));
    let exiting = signalled.elapsed();
    println!(
        "    {count} idle connections closed {closing:.2?} after SIGTERM; the process exited \
         after {exiting:.2?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {count} connections not closed cleanly, e.g. {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(
        closing < GRACE / 4,
        "closing the idle connections took {closing:?}, the grace period is {GRACE:?}"
    );
    assert_eq!(status.code(), Some(0), "{}", server.output());
    let log = server.output();
    for phase in ["phase GracefulTerminate", "phase Terminated"] {
        assert!(log.contains(phase), "{phase} missing from:\n{log}");
    }
}

/// Opens `count` connections to `addr`, each serving one request answered in full by `pid`
/// and kept alive.
fn open_idle_connections(addr: SocketAddr, count: usize, pid: u32) -> Vec<HttpConn> {
    (0..count)
        .map(|i| {
            let mut conn = HttpConn::connect(addr)
                .unwrap_or_else(|e| panic!("connection {i} of {count}: {e}"));
            let (head, body) = conn
                .get("/")
                .unwrap_or_else(|e| panic!("request on connection {i} of {count}: {e}"));
            assert_eq!(head.status, 200);
            assert!(!head.close, "the connection is kept alive");
            assert_eq!(body, format!("hello from pid {pid}\n").into_bytes());
            conn
        })
        .collect()
}

/// `SIGINT`: the process exits at once, cutting the requests in flight.
fn sigint_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "");
    let mut server = ServerProcess::start(&["-c", &conf]);
    let (addr, _) = parse_ready(&server.wait_line("ready "));
    // A minute of streaming: only a fast shutdown ends it early.
    let long = LongResponse::start(addr, 600, 100);
    let signalled = Instant::now();
    server.signal(Signal::SIGINT);
    let status = server.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", server.output());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(long.finish().is_err(), "the long response was cut");
    let log = server.output();
    assert!(!log.contains("phase ShutdownGracePeriod"), "{log}");
    assert!(log.contains("phase Terminated"), "{log}");
}

/// `-u` with nobody to take over from: the new process says why and exits with status 1.
fn upgrade_without_old_process_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "upgrade_sock_connect_accept_max_retries: 1\n");
    let mut server = ServerProcess::start(&["-u", "-c", &conf]);
    let status = server.wait_exit(TIMEOUT);
    assert_eq!(status.code(), Some(1), "{}", server.output());
    let log = server.output();
    assert!(log.contains("graceful upgrade (--upgrade) failed"), "{log}");
    assert!(log.contains("no old process"), "{log}");
    assert!(server.find_line("ready ").is_none(), "{log}");
}

/// Bootstrapped as a service that the listening service does not wait for (the shape of
/// Pingora's `graceful_upgrade` example): the listener may start first, and its socket must
/// still be handed over on `SIGQUIT` (it once was not: the new process found no socket, and
/// the port went dark).
fn upgrade_hands_over_a_listener_started_before_the_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), "bootstrap_as_a_service: true\n");
    let mut old = ServerProcess::start(&["-c", &conf]);
    let (addr, old_pid) = parse_ready(&old.wait_line("ready "));
    let (_, body) = HttpConn::connect(addr).unwrap().get("/").unwrap();
    assert_eq!(body_pid(&body), Some(old_pid));

    let mut new = ServerProcess::start(&["-u", "-c", &conf]);
    let upgrade_sock = dir.path().join("upgrade.sock");
    wait_until("the new process's upgrade socket", || upgrade_sock.exists());
    old.signal(Signal::SIGQUIT);
    let (new_addr, new_pid) = parse_ready(&new.wait_line("ready "));
    assert_eq!(new_addr, addr, "the new process took the same socket over");
    let status = old.wait_exit(CLOSE_TIMEOUT + GRACE + Duration::from_secs(30));
    assert!(
        status.success(),
        "old process: {status:?}\n{}",
        old.output()
    );
    assert!(
        !old.output().contains("no listening sockets to hand over"),
        "{}",
        old.output()
    );
    let (_, body) = HttpConn::connect(addr).unwrap().get("/").unwrap();
    assert_eq!(body_pid(&body), Some(new_pid));
    new.signal(Signal::SIGINT);
    new.wait_exit(TIMEOUT);
}

/// `-d`: the launching process exits once the daemon is ready; the daemon runs in its own
/// session, in its working directory, with its pid in the pid file (the previous one kept as
/// `.old`) and its standard error in the error log.
fn daemon_detaches_and_logs() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    // As root, also switch to an unprivileged user.
    let drop_to = nobody_if_root();
    let user_line = drop_to
        .as_ref()
        .map(|u| format!("user: {}\n", u.name))
        .unwrap_or_default();
    let conf = write_conf(
        dir.path(),
        &format!(
            "daemon_wait_for_ready: true\nworking_directory: {}\n{user_line}",
            work.display()
        ),
    );
    let pid_file = dir.path().join("server.pid");
    std::fs::write(&pid_file, "999999\n").unwrap();

    let mut launcher = ServerProcess::start(&["-d", "-c", &conf]);
    let status = launcher.wait_exit(TIMEOUT);
    assert!(
        status.success(),
        "launcher: {status:?}\n{}",
        launcher.output()
    );
    let daemon_pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .expect("a pid in the pid file");
    assert_ne!(daemon_pid, launcher.pid());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("server.pid.old")).unwrap(),
        "999999\n"
    );
    let daemon = Pid::from_raw(daemon_pid as i32);
    assert_eq!(
        nix::unistd::getsid(Some(daemon)).unwrap(),
        daemon,
        "own session"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{daemon_pid}/cwd")).unwrap(),
        work
    );

    if let Some(user) = &drop_to {
        assert_runs_as(daemon_pid, user);
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(&pid_file).unwrap().uid(),
            user.uid.as_raw()
        );
        println!("    daemon runs as {}", user.name);
    }

    // Standard error goes to the error log: the example prints its address there.
    let error_log = dir.path().join("error.log");
    let ready = wait_for_log_line(&error_log, "ready ");
    let (addr, logged_pid) = parse_ready(&ready);
    assert_eq!(logged_pid, daemon_pid);
    let mut conn = HttpConn::connect(addr).expect("connect to the daemon");
    let (head, body) = conn.get("/").expect("the daemon answers");
    assert_eq!(head.status, 200);
    assert_eq!(body, format!("hello from pid {daemon_pid}\n").into_bytes());
    drop(conn);

    send_signal(daemon_pid, Signal::SIGTERM);
    assert_eq!(wait_daemon_exit(daemon_pid), 0);
    wait_for_log_line(&error_log, "phase Terminated");
}

/// A daemon that cannot set itself up after forking (here, a missing working directory) says
/// why on the terminal and in the error log, and its waiting parent exits with status 1.
fn daemon_set_up_failure_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let conf = write_conf(
        dir.path(),
        &format!(
            "daemon_wait_for_ready: true\nworking_directory: {}\n",
            missing.display()
        ),
    );
    let mut launcher = ServerProcess::start(&["-d", "-c", &conf]);
    assert_eq!(launcher.wait_exit(TIMEOUT).code(), Some(1));
    launcher.wait_line("the daemon (pid ");
    let reason = format!(
        "cannot change to the working directory {}",
        missing.display()
    );
    let logged = std::fs::read_to_string(dir.path().join("error.log")).unwrap();
    assert!(logged.contains(&reason), "{logged}");
    assert!(launcher.output().contains(&reason), "{}", launcher.output());
}

/// The upgrade a systemd `ExecReload` performs: `SIGQUIT` to the running daemon, then a new
/// daemon started with `-u -d`, whose launcher returns once it is ready.
fn daemon_upgrade_like_a_systemd_reload() {
    let dir = tempfile::tempdir().unwrap();
    // As root, the daemons switch to an unprivileged user, as a hardened unit would: the old
    // daemon then connects to the upgrade socket as that user, the new process as root.
    let drop_to = nobody_if_root();
    let user_line = match &drop_to {
        Some(user) => {
            use std::os::unix::fs::PermissionsExt;
            let search_only = std::fs::Permissions::from_mode(0o711);
            std::fs::set_permissions(dir.path(), search_only).unwrap();
            format!("user: {}\n", user.name)
        }
        None => String::new(),
    };
    let conf = write_conf(
        dir.path(),
        &format!("daemon_wait_for_ready: true\n{user_line}"),
    );
    let pid_file = dir.path().join("server.pid");
    let error_log = dir.path().join("error.log");
    let read_pid = || read_pid(&pid_file);

    let mut launcher = ServerProcess::start(&["-d", "-c", &conf]);
    assert!(
        launcher.wait_exit(TIMEOUT).success(),
        "{}",
        launcher.output()
    );
    let old_pid = read_pid();
    if let Some(user) = &drop_to {
        assert_runs_as(old_pid, user);
    }
    let (addr, _) = parse_ready(&wait_for_log_line(&error_log, "ready "));

    // Signal first, then start the new process: the old one retries until it can connect.
    send_signal(old_pid, Signal::SIGQUIT);
    let mut launcher = ServerProcess::start(&["-u", "-d", "-c", &conf]);
    assert!(
        launcher.wait_exit(TIMEOUT).success(),
        "{}",
        launcher.output()
    );
    let new_pid = read_pid();
    assert_ne!(new_pid, old_pid);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("server.pid.old")).unwrap(),
        format!("{old_pid}\n")
    );
    let new_ready = wait_for_log_line(&error_log, &format!("ready {addr} pid {new_pid}"));
    assert_eq!(parse_ready(&new_ready), (addr, new_pid));

    assert_eq!(
        wait_daemon_exit(old_pid),
        0,
        "the old daemon drains and exits"
    );
    let mut conn = HttpConn::connect(addr).expect("connect after the upgrade");
    let (_, body) = conn.get("/").expect("the new daemon answers");
    assert_eq!(body, format!("hello from pid {new_pid}\n").into_bytes());
    drop(conn);
    send_signal(new_pid, Signal::SIGTERM);
    assert_eq!(wait_daemon_exit(new_pid), 0);
}

/// The pid in the pid file at `path`.
pub(crate) fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .expect("a pid in the pid file")
}

/// Checks that process `pid` runs as `user` (real, effective, saved and file-system ids).
fn assert_runs_as(pid: u32, user: &nix::unistd::User) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uids = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .expect("a Uid line");
    let expected = user.uid.to_string();
    assert!(
        uids.split_whitespace().skip(1).all(|id| id == expected),
        "{uids}"
    );
}

/// The `nobody` user when the tests run as root (and it exists).
fn nobody_if_root() -> Option<nix::unistd::User> {
    if !nix::unistd::Uid::current().is_root() {
        return None;
    }
    nix::unistd::User::from_name("nobody").ok().flatten()
}

/// Waits for a daemon to exit; returns its exit status.
pub(crate) fn wait_daemon_exit(pid: u32) -> i32 {
    let daemon = Pid::from_raw(pid as i32);
    // This test process is a subreaper, so an orphaned daemon is its child.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match waitpid(daemon, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::StillAlive) => {}
            Ok(other) => panic!("the daemon ended with {other:?}"),
            // Not our child (no subreaper support): watch /proc instead.
            Err(_) if !Path::new(&format!("/proc/{pid}")).exists() => return 0,
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "daemon {pid} did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for a line starting with `prefix` in the file at `path`; returns it.
pub(crate) fn wait_for_log_line(path: &Path, prefix: &str) -> String {
    let mut found = None;
    wait_until(&format!("{prefix:?} in {}", path.display()), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        found = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .map(str::to_string);
        found.is_some()
    });
    found.expect("found")
}
