//! A server run end to end: a TCP echo service, then each kind of shutdown, checking the
//! execution phases, connections in flight and refused connections.

mod server_support;

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownSignal};
use pingora_core::services::listening::Service;
use server_support::*;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// A bootstrapped server with one echo service on `127.0.0.1:0`, running.
fn start_echo_server(conf: ServerConf) -> (RunningServer, SocketAddr, Arc<EchoStats>) {
    let mut server = Server::new_with_opt_and_conf(None, conf);
    let echo = Echo::default();
    let stats = Arc::clone(&echo.stats);
    let mut service = Service::new("echo".to_string(), echo);
    service.add_tcp("127.0.0.1:0");
    let addrs = service.local_addrs();
    server.add_service(service);
    let running = RunningServer::start(server);
    let addr = client_runtime().block_on(async {
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
    let rt = client_runtime();
    let mut server = Server::new_with_opt_and_conf(None, conf());
    let mut phases = server.watch_execution_phase();
    server.bootstrap();
    let echo = Echo::default();
    let stats = Arc::clone(&echo.stats);
    let mut service = Service::new("echo".to_string(), echo);
    service.add_tcp("127.0.0.1:0");
    let addrs = service.local_addrs();
    server.add_service(service);
    let mut running = RunningServer::start(server);

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
    let rt = client_runtime();
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
fn graceful_upgrade_without_handover_shuts_down_gracefully() {
    let rt = client_runtime();
    let (mut running, addr, stats) = start_echo_server(conf());
    rt.block_on(async {
        running.wait_phase("Running").await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut client, b"x").await;
    });
    running.signal(ShutdownSignal::GracefulUpgrade);
    let rest = running.join();
    // No socket was handed over, so no hand-over phases.
    assert_eq!(
        rest,
        [
            "ShutdownStarted",
            "ShutdownGracePeriod",
            "ShutdownRuntimes",
            "Terminated"
        ]
    );
    assert_eq!(stats.cleanups.load(Ordering::SeqCst), 1);
}

#[test]
fn daemon_request_runs_in_the_foreground() {
    let rt = client_runtime();
    let (mut running, addr, _stats) = start_echo_server(ServerConf {
        daemon: true,
        ..conf()
    });
    rt.block_on(async {
        running.wait_phase("Running").await;
        let mut client = TcpStream::connect(addr).await.unwrap();
        echo_round_trip(&mut client, b"still here").await;
    });
    running.signal(ShutdownSignal::FastShutdown);
    assert_eq!(running.join().last(), Some(&"Terminated"));
}

#[test]
fn no_steal_runtimes_and_parallel_accept_tasks() {
    let rt = client_runtime();
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
