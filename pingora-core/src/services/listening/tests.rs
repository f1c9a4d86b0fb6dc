use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::services::ServiceWithDependents;

const TIMEOUT: Duration = Duration::from_secs(10);

/// What an [`Echo`] app has done.
#[derive(Default)]
struct Stats {
    connections: AtomicUsize,
    cleanups: AtomicUsize,
    cleaned: Notify,
}

/// Echoes until the peer closes; counts connections and cleanups.
#[derive(Default)]
struct Echo {
    stats: Arc<Stats>,
}

#[async_trait]
impl ServerApp for Echo {
    async fn process_new(self: &Arc<Self>, mut io: Stream, _: &ShutdownWatch) -> Option<Stream> {
        self.stats.connections.fetch_add(1, Ordering::SeqCst);
        let mut buf = [0u8; 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => io.write_all(&buf[..n]).await.ok()?,
            }
            io.flush().await.ok()?;
        }
    }

    async fn cleanup(&self) {
        self.stats.cleanups.fetch_add(1, Ordering::SeqCst);
        self.stats.cleaned.notify_one();
    }
}

async fn echo_round_trip(client: &mut TcpStream, msg: &[u8]) {
    client.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    tokio::time::timeout(TIMEOUT, client.read_exact(&mut buf))
        .await
        .expect("echo timed out")
        .unwrap();
    assert_eq!(buf, msg);
}

/// A running echo service: its address, app statistics, shutdown switch and task.
struct Running {
    addr: std::net::SocketAddr,
    stats: Arc<Stats>,
    shutdown: watch::Sender<bool>,
    ready: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_echo(listeners_per_fd: usize) -> Running {
    let app = Echo::default();
    let stats = Arc::clone(&app.stats);
    let mut service = Service::new("echo".to_string(), app);
    service.add_tcp("127.0.0.1:0");
    let addrs = service.local_addrs();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready) = watch::channel(false);
    let task = tokio::spawn(async move {
        ServiceWithDependents::start_service(
            &mut service,
            None,
            shutdown_rx,
            listeners_per_fd,
            ServiceReadyNotifier::new(ready_tx),
        )
        .await;
    });
    let bound = tokio::time::timeout(TIMEOUT, addrs.wait())
        .await
        .unwrap()
        .unwrap();
    let addr = *bound[0].as_inet().unwrap();
    Running {
        addr,
        stats,
        shutdown,
        ready,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_and_shuts_down_gracefully() {
    let echo = Echo::default();
    let app = Arc::clone(&echo.stats);
    let mut service = Service::new("echo".to_string(), echo);
    service.add_tcp("127.0.0.1:0");
    assert!(service.app_logic().is_some());
    assert!(service.app_logic_mut().is_some());
    let addrs = service.local_addrs();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (ready_tx, mut ready) = watch::channel(false);
    let task = tokio::spawn(async move {
        ServiceWithDependents::start_service(
            &mut service,
            None,
            shutdown_rx,
            2,
            ServiceReadyNotifier::new(ready_tx),
        )
        .await;
        service
    });
    let addr = *tokio::time::timeout(TIMEOUT, addrs.wait())
        .await
        .unwrap()
        .unwrap()[0]
        .as_inet()
        .unwrap();
    tokio::time::timeout(TIMEOUT, ready.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();

    let mut in_flight = TcpStream::connect(addr).await.unwrap();
    echo_round_trip(&mut in_flight, b"hello").await;
    let mut second = TcpStream::connect(addr).await.unwrap();
    echo_round_trip(&mut second, b"again").await;
    drop(second);

    shutdown.send_replace(true);
    tokio::time::timeout(TIMEOUT, app.cleaned.notified())
        .await
        .unwrap();
    assert_eq!(app.cleanups.load(Ordering::SeqCst), 1);
    // The listening socket is closed: new connections are refused.
    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    // The connection in flight is still served, and the service waits for it.
    echo_round_trip(&mut in_flight, b"still here").await;
    assert!(!task.is_finished());
    drop(in_flight);
    let mut service = tokio::time::timeout(TIMEOUT, task).await.unwrap().unwrap();
    assert_eq!(app.connections.load(Ordering::SeqCst), 2);
    assert!(service.app_logic().is_none());

    // A second start does nothing.
    let (_shutdown, shutdown_rx) = watch::channel(false);
    tokio::time::timeout(
        TIMEOUT,
        ServiceTrait::start_service(&mut service, None, shutdown_rx, 1),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn many_accept_tasks_serve_many_connections() {
    let running = start_echo(4).await;
    assert!(*running.ready.borrow());
    let mut clients = Vec::new();
    for i in 0..16u8 {
        let mut c = TcpStream::connect(running.addr).await.unwrap();
        echo_round_trip(&mut c, &[i; 3]).await;
        clients.push(c);
    }
    drop(clients);
    running.shutdown.send_replace(true);
    tokio::time::timeout(TIMEOUT, running.task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.stats.connections.load(Ordering::SeqCst), 16);
    assert_eq!(running.stats.cleanups.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bind_failure_ends_the_service_and_releases_dependents() {
    let mut service = Service::new("broken".to_string(), Echo::default());
    service.add_uds("/nonexistent-dir/broken.sock", None);
    let addrs = service.local_addrs();
    let (_shutdown, shutdown_rx) = watch::channel(false);
    let (ready_tx, ready) = watch::channel(false);
    tokio::time::timeout(
        TIMEOUT,
        ServiceWithDependents::start_service(
            &mut service,
            None,
            shutdown_rx,
            1,
            ServiceReadyNotifier::new(ready_tx),
        ),
    )
    .await
    .unwrap();
    assert!(addrs.wait().await.is_err());
    // The notifier was dropped, which counts as ready: dependents are not blocked forever.
    assert!(*ready.borrow());
}

#[test]
fn connection_errors_are_told_apart() {
    for errno in [
        libc::ECONNABORTED,
        libc::EPROTO,
        libc::EPERM,
        libc::ENETUNREACH,
    ] {
        assert!(
            is_connection_error(&io::Error::from_raw_os_error(errno)),
            "{errno}"
        );
    }
    for errno in [
        libc::EMFILE,
        libc::ENFILE,
        libc::ENOBUFS,
        libc::ENOMEM,
        libc::EINVAL,
    ] {
        assert!(
            !is_connection_error(&io::Error::from_raw_os_error(errno)),
            "{errno}"
        );
    }
}

#[test]
fn debug_output() {
    let mut service = Service::new("dbg".to_string(), Echo::default());
    service.add_tcp("127.0.0.1:0");
    service.threads = Some(2);
    let text = format!("{service:?}");
    assert!(
        text.contains("dbg") && text.contains("127.0.0.1:0"),
        "{text}"
    );
    assert_eq!(ServiceTrait::threads(&service), Some(2));
    assert_eq!(service.endpoints().addresses(), ["127.0.0.1:0"]);
}

/// The environment variable that makes [`emfile_child`] run.
const EMFILE_CHILD: &str = "PINGORA_TEST_EMFILE_CHILD";

/// Runs [`emfile_child`] in a child process with a low file descriptor limit.
#[test]
fn accept_survives_running_out_of_file_descriptors() {
    let exe = std::env::current_exe().unwrap();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 128 && exec \"$0\" \"$@\"")
        .arg(exe)
        .args([
            "--exact",
            "services::listening::tests::emfile_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(EMFILE_CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("EMFILE CHILD OK"),
        "the child test did not run:\n{stdout}"
    );
}

/// The CPU time this process has used, in clock ticks (Linux), read from `/proc/self/stat`
/// opened beforehand (reading must not need a new file descriptor).
fn cpu_ticks(proc_stat: &std::fs::File) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut raw = vec![0u8; 4096];
    let n = proc_stat.read_at(&mut raw, 0).unwrap();
    let stat = String::from_utf8_lossy(&raw[..n]);
    // Fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// With the file descriptor limit reached, accept fails with `EMFILE`: the accept loop must
/// pause instead of spinning, and serve the connection once descriptors are free again.
#[tokio::test(flavor = "current_thread")]
#[ignore = "run by accept_survives_running_out_of_file_descriptors in a child process"]
async fn emfile_child() {
    if std::env::var_os(EMFILE_CHILD).is_none() {
        return;
    }
    let running = start_echo(1).await;
    let client = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let proc_stat = std::fs::File::open("/proc/self/stat").unwrap();

    // Use up every file descriptor.
    let mut hoard = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => hoard.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
    }
    // Connecting needs no new descriptor; the kernel completes it, but accept cannot.
    client.connect(&running.addr.into()).unwrap();
    let before = cpu_ticks(&proc_stat);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let spent = cpu_ticks(&proc_stat) - before;
    assert!(spent < 10, "the accept loop spun for {spent} ticks");

    drop(hoard);
    client.set_nonblocking(true).unwrap();
    let mut client = TcpStream::from_std(client.into()).unwrap();
    echo_round_trip(&mut client, b"served after all").await;
    assert_eq!(running.stats.connections.load(Ordering::SeqCst), 1);
    drop(client);
    running.shutdown.send_replace(true);
    tokio::time::timeout(TIMEOUT, running.task)
        .await
        .unwrap()
        .unwrap();
    println!("EMFILE CHILD OK");
}
