//! A server run end to end: a TCP echo service, then each kind of shutdown, checking the
//! execution phases, connections in flight and refused connections.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora_core::server::configuration::{Opt, ServerConf};
use pingora_core::server::{Server, ShutdownSignal};
use pingora_core::services::listening::Service;
use pingora_test_support::apps::{echo_round_trip, ByteEcho, EchoStats};
use pingora_test_support::server::{phase_name, TestServer};
use pingora_test_support::{current_thread_runtime, TIMEOUT};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A bootstrapped server with one echo service on `127.0.0.1:0`, running.
fn start_echo_server(conf: ServerConf) -> (TestServer, SocketAddr, Arc<EchoStats>) {
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let echo = ByteEcho::default();
    let stats = Arc::clone(&echo.stats);
    let mut service = Service::new("echo".to_string(), echo);
    service.add_tcp("127.0.0.1:0");
    let addrs = service.local_addrs();
    server.add_service(service);
    let running = TestServer::run(server);
    let addr = current_thread_runtime().block_on(async {
        tokio::time::timeout(TIMEOUT, addrs.wait())
            .await
            .unwrap()
            .unwrap()
    });
    (running, *addr[0].as_inet().unwrap(), stats)
}

fn conf() -> ServerConf {
    ServerConf {
        threads: 2,
        grace_period_seconds: Some(60),
        graceful_shutdown_timeout_seconds: Some(5),
        ..ServerConf::new().unwrap()
    }
}

#[test]
fn graceful_shutdown_finishes_connections_in_flight() {
    let rt = current_thread_runtime();
    let mut server = Server::new_with_opt_and_conf(None, conf());
    let mut phases = server.watch_execution_phase();
    server.bootstrap();
    let echo = ByteEcho::default();
    let stats = Arc::clone(&echo.stats);
    let mut service = Service::new("echo".to_string(), echo);
    service.add_tcp("127.0.0.1:0");
    let addrs = service.local_addrs();
    server.add_service(service);
    let mut running = TestServer::run(server);

    let (client, signalled) = rt.block_on(async {
        let addr = *tokio::time::timeout(TIMEOUT, addrs.wait())
            .await
            .unwrap()
            .unwrap()[0]
            .as_inet()
            .unwrap();
        running.wait_phase("Running").await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut client, b"before").await;

        let signalled = Instant::now();
        running.signal(ShutdownSignal::GracefulTerminate);
        tokio::time::timeout(TIMEOUT, stats.cleaned.notified())
            .await
            .unwrap();
        // Accepting stopped and the listening socket is closed.
        let err = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        // The connection in flight is still served.
        echo_round_trip(&mut client, b"during shutdown").await;
        (client, signalled)
    });
    assert_eq!(stats.cleanups.load(Ordering::SeqCst), 1);
    // Closing the last connection ends the service, which ends the grace period early.
    drop(client);
    let rest = running.join();
    assert!(
        signalled.elapsed() < Duration::from_secs(30),
        "the server waited for the whole grace period"
    );

    let mut all = Vec::new();
    while let Ok(phase) = phases.try_recv() {
        all.push(phase_name(&phase));
    }
    assert_eq!(
        all,
        [
            "Bootstrap",
            "BootstrapComplete",
            "Running",
            "GracefulTerminate",
            "ShutdownStarted",
            "ShutdownGracePeriod",
            "ShutdownRuntimes",
            "Terminated"
        ]
    );
    assert_eq!(rest.last(), Some(&"Terminated"));
    assert_eq!(stats.connections.load(Ordering::SeqCst), 1);
}

#[test]
fn fast_shutdown_drops_everything() {
    let rt = current_thread_runtime();
    let (mut running, addr, stats) = start_echo_server(conf());
    let mut client = rt.block_on(async {
        running.wait_phase("Running").await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut client, b"hi").await;
        client
    });
    running.signal(ShutdownSignal::FastShutdown);
    let rest = running.join();
    assert_eq!(rest, ["ShutdownStarted", "ShutdownRuntimes", "Terminated"]);
    // No graceful steps: the app was not cleaned up, and its connection is dropped (by the
    // runtime's threads, which a zero shutdown timeout does not wait for, so whether the
    // listening socket is closed yet is not known here).
    assert_eq!(stats.cleanups.load(Ordering::SeqCst), 0);
    rt.block_on(async {
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(TIMEOUT, client.read(&mut buf))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    });
}

#[test]
fn failed_graceful_upgrade_keeps_serving() {
    let rt = current_thread_runtime();
    let dir = tempfile::tempdir().unwrap();
    let (mut running, addr, stats) = start_echo_server(ServerConf {
        upgrade_sock: dir.path().join("nobody.sock").display().to_string(),
        upgrade_sock_connect_accept_max_retries: Some(1),
        ..conf()
    });
    rt.block_on(async {
        running.wait_phase("Running").await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut client, b"x").await;
        // No new process listens on the upgrade socket: the server says so and stays up.
        running.signal(ShutdownSignal::GracefulUpgrade);
        running.wait_phase("GracefulUpgradeTransferringFds").await;
        echo_round_trip(&mut client, b"still served").await;
        let mut fresh = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut fresh, b"and accepting").await;
    });
    running.signal(ShutdownSignal::GracefulTerminate);
    let rest = running.join();
    assert!(!rest.contains(&"GracefulUpgradeCloseTimeout"), "{rest:?}");
    assert_eq!(rest.last(), Some(&"Terminated"));
    assert_eq!(stats.cleanups.load(Ordering::SeqCst), 1);
}

/// An old server running an echo service, and a new server that has taken the old one's
/// listening socket over during its bootstrap (the old one was sent `SIGQUIT`).
struct Upgrade {
    old: TestServer,
    old_stats: Arc<EchoStats>,
    /// A connection the old server accepted before the upgrade.
    early_client: TcpStream,
    addr: SocketAddr,
    new: Server,
    _dir: tempfile::TempDir,
}

/// The configuration both servers of an upgrade use, with its upgrade socket in `dir`.
fn upgrade_conf(dir: &std::path::Path) -> ServerConf {
    ServerConf {
        upgrade_sock: dir.join("upgrade.sock").display().to_string(),
        upgrade_sock_connect_accept_max_retries: Some(30),
        ..conf()
    }
}

/// Starts the old server of an upgrade; returns it with its stats, address and a connection
/// it accepted.
fn start_old(
    rt: &tokio::runtime::Runtime,
    conf: ServerConf,
) -> (TestServer, Arc<EchoStats>, SocketAddr, TcpStream) {
    // Bootstrapped, so its listening socket is recorded for the hand-over.
    let mut old = Server::new_with_opt_and_conf(None, conf);
    old.bootstrap();
    let old_echo = ByteEcho::default();
    let old_stats = Arc::clone(&old_echo.stats);
    let mut service = Service::new("echo".to_string(), old_echo);
    service.add_tcp("127.0.0.1:0");
    let old_addrs = service.local_addrs();
    old.add_service(service);
    let mut old = TestServer::run(old);
    let (addr, early_client) = rt.block_on(async {
        let addr = *tokio::time::timeout(TIMEOUT, old_addrs.wait())
            .await
            .unwrap()
            .unwrap()[0]
            .as_inet()
            .unwrap();
        old.wait_phase("Running").await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut client, b"old").await;
        (addr, client)
    });
    (old, old_stats, addr, early_client)
}

/// Waits until the new server listens on the upgrade socket in `dir`.
fn wait_for_upgrade_sock(dir: &std::path::Path) {
    let upgrade_sock = dir.join("upgrade.sock");
    let deadline = Instant::now() + TIMEOUT;
    while !upgrade_sock.exists() {
        assert!(Instant::now() < deadline, "the new server never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn upgrade_opt() -> Opt {
    Opt {
        upgrade: true,
        ..Opt::default()
    }
}

fn start_upgrade(rt: &tokio::runtime::Runtime) -> Upgrade {
    let dir = tempfile::tempdir().unwrap();
    let (old, old_stats, addr, early_client) = start_old(rt, upgrade_conf(dir.path()));

    // The new server waits on the upgrade socket while bootstrapping.
    let mut new = Server::new_with_opt_and_conf(upgrade_opt(), upgrade_conf(dir.path()));
    let bootstrapping = std::thread::spawn(move || {
        let outcome = new.try_bootstrap();
        (new, outcome)
    });
    wait_for_upgrade_sock(dir.path());
    old.signal(ShutdownSignal::GracefulUpgrade);
    let (new, outcome) = bootstrapping.join().unwrap();
    outcome.unwrap();
    Upgrade {
        old,
        old_stats,
        early_client,
        addr,
        new,
        _dir: dir,
    }
}

#[test]
fn bootstrap_service_takes_the_sockets_over_before_its_dependents_bind() {
    let rt = current_thread_runtime();
    let dir = tempfile::tempdir().unwrap();
    let (old, _old_stats, addr, early_client) = start_old(&rt, upgrade_conf(dir.path()));

    // The new server bootstraps as a service; the echo service depends on it, so it starts
    // once the sockets have arrived and takes the old one over.
    let mut new = Server::new_with_opt_and_conf(upgrade_opt(), upgrade_conf(dir.path()));
    let bootstrap = new.bootstrap_as_a_service();
    let mut service = Service::new("echo".to_string(), ByteEcho::default());
    service.add_tcp("127.0.0.1:0");
    let new_addrs = service.local_addrs();
    let echo = new.add_service(service);
    echo.add_dependency(&bootstrap);
    let mut new = TestServer::run(new);
    wait_for_upgrade_sock(dir.path());
    assert!(new_addrs.get().is_none(), "bound before the bootstrap");
    old.signal(ShutdownSignal::GracefulUpgrade);
    rt.block_on(async {
        let bound = tokio::time::timeout(TIMEOUT, new_addrs.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*bound[0].as_inet().unwrap(), addr);
        new.wait_phase("Running").await;
    });
    drop(early_client);
    assert_eq!(old.join().last(), Some(&"Terminated"));
    new.signal(ShutdownSignal::GracefulTerminate);
    assert_eq!(new.join().last(), Some(&"Terminated"));
}

#[test]
fn graceful_upgrade_hands_the_listening_socket_to_a_new_server() {
    let rt = current_thread_runtime();
    let Upgrade {
        mut old,
        old_stats,
        mut early_client,
        addr,
        mut new,
        _dir,
    } = start_upgrade(&rt);

    // Same configured address: the new server takes the old socket over instead of binding.
    let new_echo = ByteEcho::default();
    let new_stats = Arc::clone(&new_echo.stats);
    let mut service = Service::new("echo".to_string(), new_echo);
    service.add_tcp("127.0.0.1:0");
    let new_addrs = service.local_addrs();
    new.add_service(service);
    let mut new = TestServer::run(new);
    rt.block_on(async {
        let bound = tokio::time::timeout(TIMEOUT, new_addrs.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*bound[0].as_inet().unwrap(), addr);
        new.wait_phase("Running").await;
        old.wait_phase("GracefulUpgradeCloseTimeout").await;
        // The old server still serves its connection while it drains.
        echo_round_trip(&mut early_client, b"still old").await;
    });
    drop(early_client);
    let old_rest = old.join();
    assert_eq!(
        old_rest,
        [
            "ShutdownStarted",
            "ShutdownGracePeriod",
            "ShutdownRuntimes",
            "Terminated"
        ]
    );
    assert_eq!(old_stats.cleanups.load(Ordering::SeqCst), 1);

    // The old server is gone; the socket lives on in the new one.
    rt.block_on(async {
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut client, b"new").await;
    });
    assert!(new_stats.connections.load(Ordering::SeqCst) >= 1);
    new.signal(ShutdownSignal::GracefulTerminate);
    assert_eq!(new.join().last(), Some(&"Terminated"));
}

#[test]
fn fast_shutdown_cuts_the_upgrade_overlap_short() {
    let rt = current_thread_runtime();
    let mut upgrade = start_upgrade(&rt);
    // The new server, once running (it has no services, so it is ready at once), confirms.
    let new = TestServer::run(upgrade.new);
    rt.block_on(upgrade.old.wait_phase("GracefulUpgradeCloseTimeout"));
    let signalled = Instant::now();
    upgrade.old.signal(ShutdownSignal::FastShutdown);
    let rest = upgrade.old.join();
    assert_eq!(rest, ["ShutdownStarted", "ShutdownRuntimes", "Terminated"]);
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "waited out the overlap: {:?}",
        signalled.elapsed()
    );
    assert_eq!(upgrade.old_stats.cleanups.load(Ordering::SeqCst), 0);
    // The socket was handed over: it still accepts connections, queued for the new server.
    rt.block_on(async {
        TcpStream::connect(upgrade.addr).await.unwrap();
    });
    drop(upgrade.early_client);
    new.signal(ShutdownSignal::FastShutdown);
    new.join();
}

#[test]
fn new_server_failing_before_it_serves_leaves_the_old_one_serving() {
    let rt = current_thread_runtime();
    let Upgrade {
        mut old,
        old_stats,
        mut early_client,
        addr,
        new,
        _dir,
    } = start_upgrade(&rt);
    // The new server took the sockets but stops before serving: it never confirms.
    drop(new);
    rt.block_on(async {
        old.wait_phase("GracefulUpgradeTransferringFds").await;
        // Still serving its connections, and accepting new ones.
        echo_round_trip(&mut early_client, b"still here").await;
        let mut fresh = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut fresh, b"still accepting").await;
    });
    old.signal(ShutdownSignal::GracefulTerminate);
    drop(early_client);
    let rest = old.join();
    assert!(!rest.contains(&"GracefulUpgradeCloseTimeout"), "{rest:?}");
    assert_eq!(rest.last(), Some(&"Terminated"));
    assert_eq!(old_stats.cleanups.load(Ordering::SeqCst), 1);
}

#[test]
fn no_steal_runtimes_and_parallel_accept_tasks() {
    let rt = current_thread_runtime();
    let (mut running, addr, stats) = start_echo_server(ServerConf {
        work_stealing: false,
        threads: 3,
        listener_tasks_per_fd: 4,
        max_blocking_threads: Some(4),
        blocking_threads_ttl_seconds: Some(1),
        ..conf()
    });
    rt.block_on(async {
        running.wait_phase("Running").await;
        let mut clients = Vec::new();
        for i in 0..20u8 {
            let mut client = TcpStream::connect(addr).await.unwrap();
            echo_round_trip(&mut client, &[b'a' + i; 5]).await;
            clients.push(client);
        }
    });
    running.signal(ShutdownSignal::GracefulTerminate);
    running.join();
    assert_eq!(stats.connections.load(Ordering::SeqCst), 20);
    assert_eq!(stats.cleanups.load(Ordering::SeqCst), 1);
}
