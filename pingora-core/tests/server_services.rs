//! Services run by a server: Unix-socket endpoints, background services, dependencies between
//! services, and the grace period.

use std::fs::Permissions;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::{Server, ShutdownSignal, ShutdownWatch};
use pingora_core::services::background::{background_service, BackgroundService};
use pingora_core::services::listening::Service;
use pingora_core::services::ServiceReadyNotifier;
use pingora_test_support::apps::{echo_round_trip, ByteEcho};
use pingora_test_support::server::{phase_name, TestServer};
use pingora_test_support::{current_thread_runtime, TIMEOUT};
use tokio::net::UnixStream;
use tokio::sync::{mpsc, oneshot};

fn conf() -> ServerConf {
    ServerConf {
        grace_period_seconds: Some(60),
        graceful_shutdown_timeout_seconds: Some(1),
        ..ServerConf::new().unwrap()
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pingora-it-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn unix_socket_echo_with_permissions() {
    let dir = temp_dir("uds");
    let private = dir.join("private.sock");
    let public = dir.join("public.sock");
    let mut server = Server::new_with_opt_and_conf(None, conf());
    let echo = ByteEcho::default();
    let stats = Arc::clone(&echo.stats);
    let mut service = Service::new("uds echo".to_string(), echo);
    service.add_uds(
        private.to_str().unwrap(),
        Some(Permissions::from_mode(0o600)),
    );
    service.add_listener(
        ListenerConfig::uds(public.to_str().unwrap()).l4_buffer(L4BufferSettings::default()),
    );
    let addrs = service.local_addrs();
    server.add_service(service);
    let mut running = TestServer::run(server);

    current_thread_runtime().block_on(async {
        let bound = tokio::time::timeout(TIMEOUT, addrs.wait())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(bound[0].to_string(), format!("unix:{}", private.display()));
        running.wait_phase("Running").await;
        for path in [&private, &public] {
            let mut client = UnixStream::connect(path).await.unwrap();
            echo_round_trip(&mut client, b"over a unix socket").await;
        }
    });
    assert_eq!(std::fs::metadata(&private).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&public).unwrap().mode() & 0o777, 0o666);

    running.signal(ShutdownSignal::GracefulTerminate);
    running.join();
    assert_eq!(
        stats.connections.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    assert_eq!(stats.cleanups.load(std::sync::atomic::Ordering::SeqCst), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Runs until shutdown, reporting its start and its end.
struct Worker {
    events: mpsc::UnboundedSender<&'static str>,
}

#[async_trait]
impl BackgroundService for Worker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let _ = self.events.send("started");
        let _ = shutdown.wait_for(|stopping| *stopping).await;
        let _ = self.events.send("stopped");
    }
}

#[test]
fn background_service_runs_until_shutdown() {
    let mut server = Server::new_with_opt_and_conf(None, conf());
    let (events, mut rx) = mpsc::unbounded_channel();
    let service = background_service("worker", Worker { events });
    assert_eq!(
        pingora_core::services::ServiceWithDependents::name(&service),
        "BG worker"
    );
    assert_eq!(service.threads, Some(1));
    let task = service.task();
    server.add_service(service);
    let mut running = TestServer::run(server);
    current_thread_runtime().block_on(async {
        assert_eq!(rx.recv().await, Some("started"));
        running.wait_phase("Running").await;
    });
    let signalled = Instant::now();
    running.signal(ShutdownSignal::GracefulTerminate);
    running.join();
    // The service stopped on the shutdown signal, which ended the grace period early.
    assert_eq!(rx.try_recv(), Ok("stopped"));
    assert!(signalled.elapsed() < Duration::from_secs(30));
    // The task is shared, and the service no longer holds it.
    assert_eq!(Arc::strong_count(&task), 1);
}

/// Ignores the shutdown signal.
struct Stubborn;

#[async_trait]
impl BackgroundService for Stubborn {
    async fn start(&self, _shutdown: ShutdownWatch) {
        std::future::pending::<()>().await;
    }
}

#[test]
fn grace_period_ends_a_shutdown_that_services_ignore() {
    let mut server = Server::new_with_opt_and_conf(
        None,
        ServerConf {
            grace_period_seconds: Some(1),
            graceful_shutdown_timeout_seconds: Some(0),
            ..ServerConf::new().unwrap()
        },
    );
    server.add_service(background_service("stubborn", Stubborn));
    let mut running = TestServer::run(server);
    current_thread_runtime().block_on(async {
        running.wait_phase("Running").await;
    });
    let signalled = Instant::now();
    running.signal(ShutdownSignal::GracefulTerminate);
    let rest = running.join();
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "the grace period was cut short"
    );
    assert!(signalled.elapsed() < Duration::from_secs(30));
    assert_eq!(
        rest,
        [
            "GracefulTerminate",
            "ShutdownStarted",
            "ShutdownGracePeriod",
            "ShutdownRuntimes",
            "Terminated"
        ]
    );
}

/// A service that is ready only when the test says so.
struct Gated {
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    ready: Arc<AtomicBool>,
    started: mpsc::UnboundedSender<&'static str>,
}

#[async_trait]
impl BackgroundService for Gated {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        notifier: ServiceReadyNotifier,
    ) {
        let _ = self.started.send("gated started");
        let gate = self.gate.lock().unwrap().take().expect("started once");
        tokio::select! {
            _ = gate => {
                self.ready.store(true, Ordering::SeqCst);
                notifier.notify_ready();
            }
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let _ = shutdown.wait_for(|s| *s).await;
    }
}

/// Reports whether its dependency was ready when it started.
struct Dependent {
    dependency_ready: Arc<AtomicBool>,
    started: mpsc::UnboundedSender<&'static str>,
}

#[async_trait]
impl BackgroundService for Dependent {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let event = if self.dependency_ready.load(Ordering::SeqCst) {
            "dependent started after its dependency was ready"
        } else {
            "dependent started too early"
        };
        let _ = self.started.send(event);
        let _ = shutdown.wait_for(|s| *s).await;
    }
}

#[test]
fn dependents_start_after_their_dependencies_are_ready() {
    let mut server = Server::new_with_opt_and_conf(None, conf());
    let (started, mut events) = mpsc::unbounded_channel();
    let (open_gate, gate) = oneshot::channel();
    let ready = Arc::new(AtomicBool::new(false));

    // Added first, so only the dependency, not the order of addition, can delay it.
    let dependent = server.add_service(background_service(
        "dependent",
        Dependent {
            dependency_ready: Arc::clone(&ready),
            started: started.clone(),
        },
    ));
    let mut listening = Service::new("listening".to_string(), ByteEcho::default());
    listening.add_tcp("127.0.0.1:0");
    let listening_addrs = listening.local_addrs();
    let listening = server.add_service(listening);
    let gated = server.add_service(background_service(
        "gated",
        Gated {
            gate: Mutex::new(Some(gate)),
            ready: Arc::clone(&ready),
            started,
        },
    ));
    dependent.add_dependency(&gated);
    listening.add_dependencies([&dependent, &gated]);

    let mut running = TestServer::run(server);
    current_thread_runtime().block_on(async {
        assert_eq!(events.recv().await, Some("gated started"));
        running.wait_phase("Running").await;
        // Nothing that depends on the gated service has started.
        assert_eq!(events.try_recv().ok(), None);
        assert_eq!(listening_addrs.get(), None);

        open_gate.send(()).unwrap();
        let event = tokio::time::timeout(TIMEOUT, events.recv()).await.unwrap();
        assert_eq!(
            event,
            Some("dependent started after its dependency was ready")
        );
        // The listening service binds once both its dependencies are ready.
        tokio::time::timeout(TIMEOUT, listening_addrs.wait())
            .await
            .unwrap()
            .unwrap();
    });
    running.signal(ShutdownSignal::GracefulTerminate);
    running.join();
}

#[test]
fn dependents_of_a_service_never_ready_do_not_start() {
    let mut server = Server::new_with_opt_and_conf(None, conf());
    let (started, mut events) = mpsc::unbounded_channel();
    let (_gate_kept_closed, gate) = oneshot::channel();
    let ready = Arc::new(AtomicBool::new(false));
    let gated = server.add_service(background_service(
        "gated",
        Gated {
            gate: Mutex::new(Some(gate)),
            ready: Arc::clone(&ready),
            started: started.clone(),
        },
    ));
    let dependent = server.add_service(background_service(
        "dependent",
        Dependent {
            dependency_ready: ready,
            started,
        },
    ));
    dependent.add_dependency(&gated);
    let mut running = TestServer::run(server);
    current_thread_runtime().block_on(async {
        assert_eq!(events.recv().await, Some("gated started"));
        running.wait_phase("Running").await;
    });
    let signalled = Instant::now();
    running.signal(ShutdownSignal::GracefulTerminate);
    running.join();
    // The gated service gave up without being ready, and its dependent never started; both
    // finished, so the grace period ended early.
    assert_eq!(events.try_recv().ok(), None);
    assert!(signalled.elapsed() < Duration::from_secs(30));
}

#[test]
fn dependency_cycles_are_refused_and_the_server_still_runs() {
    let mut server = Server::new_with_opt_and_conf(None, conf());
    let (events, mut rx) = mpsc::unbounded_channel();
    let a = server.add_service(background_service(
        "a",
        Worker {
            events: events.clone(),
        },
    ));
    let b = server.add_service(background_service("b", Worker { events }));
    a.add_dependency(&b);
    let err = b.try_add_dependency(&a).unwrap_err();
    assert!(
        err.to_string().contains("cycle BG b -> BG a -> BG b"),
        "{err}"
    );
    // The logging form refuses the same way, without panicking.
    b.add_dependency(&a);

    let mut running = TestServer::run(server);
    current_thread_runtime().block_on(async {
        assert_eq!(rx.recv().await, Some("started"));
        assert_eq!(rx.recv().await, Some("started"));
        running.wait_phase("Running").await;
    });
    running.signal(ShutdownSignal::FastShutdown);
    assert_eq!(running.join().last(), Some(&"Terminated"));
}

#[test]
fn bootstrap_as_a_service() {
    let mut server = Server::new_with_opt_and_conf(None, conf());
    let mut phases = server.watch_execution_phase();
    let bootstrap = server.bootstrap_as_a_service();
    let mut service = Service::new("echo".to_string(), ByteEcho::default());
    service.add_tcp("127.0.0.1:0");
    let addrs = service.local_addrs();
    let echo = server.add_service(service);
    echo.add_dependency(&bootstrap);
    let mut running = TestServer::run(server);
    current_thread_runtime().block_on(async {
        tokio::time::timeout(TIMEOUT, addrs.wait())
            .await
            .unwrap()
            .unwrap();
        running.wait_phase("Running").await;
    });
    running.signal(ShutdownSignal::FastShutdown);
    running.join();
    let mut names = Vec::new();
    while let Ok(phase) = phases.try_recv() {
        names.push(phase_name(&phase));
    }
    let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
    assert!(pos("Bootstrap") < pos("BootstrapComplete"), "{names:?}");
}

/// A `ServeHttp` type that counts its requests.
struct Counted(Arc<std::sync::atomic::AtomicUsize>);

#[async_trait]
impl pingora_core::apps::http_app::ServeHttp for Counted {
    async fn response(
        &self,
        session: &mut pingora_core::protocols::http::ServerSession,
    ) -> http::Response<Vec<u8>> {
        let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
        let path = session.req_header().uri.path().to_string();
        http::Response::new(format!("{n} {path}").into_bytes())
    }
}

#[tokio::test]
async fn a_serve_http_type_is_a_service_app_by_itself() {
    // `Service::new(name, app)` with a bare `ServeHttp` type, as Pingora allows.
    let server = pingora_test_support::TestService::start(Counted(Default::default())).await;
    let mut conn = server.connect().await;
    for (n, path) in [(1, "/a"), (2, "/b")] {
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await;
        let resp = conn.response().await;
        assert_eq!(resp.head.line, "HTTP/1.1 200 OK");
        let body = format!("{n} {path}");
        assert_eq!(
            resp.header("Content-Length"),
            Some(&*body.len().to_string())
        );
        assert_eq!(
            resp.body,
            body.as_bytes(),
            "kept alive: the same connection"
        );
    }
    // A malformed request gets its 400 from the same serving path as `HttpServer`'s.
    let mut conn = server.connect().await;
    conn.send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
        .await;
    assert_eq!(conn.response().await.head.line, "HTTP/1.1 400 Bad Request");
    server.stop().await;
}

/// Refuses every connection while `refuse` is set; remembers the addresses it was asked about.
#[derive(Debug, Default)]
struct Gatekeeper {
    refuse: AtomicBool,
    seen: Mutex<Vec<Option<std::net::SocketAddr>>>,
}

#[async_trait]
impl pingora_core::listeners::ConnectionFilter for Gatekeeper {
    async fn should_accept(&self, addr: Option<&std::net::SocketAddr>) -> bool {
        self.seen.lock().unwrap().push(addr.copied());
        !self.refuse.load(Ordering::SeqCst)
    }
}

/// Sends `bytes` on a new TCP connection to `addr` and returns all the server sends back.
async fn reply_to(addr: std::net::SocketAddr, bytes: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    // A reset (the server closed with the request unread) ends the reply as well as an EOF.
    let _ = pingora_test_support::within("the reply", conn.read_to_end(&mut reply)).await;
    reply
}

/// The server side's TLS handshakes so far: (completed, failed). Only one test of this file
/// makes TLS connections, so the process-wide counts are its own.
fn downstream_tls_handshakes() -> (u64, u64) {
    use pingora_core::metrics::{families, Samples};
    let count = |name: &str| {
        let family = families().into_iter().find(|f| f.name == name).unwrap();
        match family.samples {
            Samples::Counters(samples) => samples
                .iter()
                .find(|(side, _)| *side == "downstream")
                .map(|(_, c)| c.get())
                .unwrap(),
            _ => panic!("{name} is a counter"),
        }
    };
    (
        count("pingora_tls_handshakes_total"),
        count("pingora_tls_handshake_failures_total"),
    )
}

#[tokio::test]
async fn refused_connections_reach_neither_the_app_nor_the_tls_handshake() {
    use pingora_core::listeners::tls::TlsSettings;
    use pingora_test_support::tls::{connector, peer, Pki};

    let filter = Arc::new(Gatekeeper::default());
    filter.refuse.store(true, Ordering::SeqCst);
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let provider = pingora_rustls::provider();
    let pki = Pki::new("connection-filter");
    let leaf = pki.server(&["localhost"]);

    let mut plain = Service::new("plain".to_string(), Counted(Arc::clone(&served)));
    plain.set_connection_filter(filter.clone());
    plain.add_tcp("127.0.0.1:0");
    let plain = pingora_test_support::TestService::run(plain).await.unwrap();
    let mut tls = Service::new("tls".to_string(), Counted(Arc::clone(&served)));
    // Set before the endpoint is added: it applies to every endpoint all the same.
    tls.set_connection_filter(filter.clone());
    let mut settings = TlsSettings::with_cert_key(Arc::clone(&leaf.cert_key)).unwrap();
    settings.set_provider(Arc::clone(&provider));
    tls.add_tls_with_settings("127.0.0.1:0", None, settings);
    let tls = pingora_test_support::TestService::run(tls).await.unwrap();

    // Refused: closed without a byte, the request unread; a TLS client gets no handshake at
    // all (the server's handshake counters do not move).
    let handshakes = downstream_tls_handshakes();
    let get = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_eq!(reply_to(plain.addr, get).await, b"");
    let tls_peer = peer(tls.addr, "localhost", &pki);
    let refused = connector(&provider).new_stream(&tls_peer).await;
    assert!(refused.is_err(), "a refused TLS client connected");
    assert_eq!(
        served.load(Ordering::SeqCst),
        0,
        "a refused client was served"
    );
    assert_eq!(
        downstream_tls_handshakes(),
        handshakes,
        "a refused client was handshaken"
    );
    {
        let seen = filter.seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen
            .iter()
            .all(|addr| addr.is_some_and(|a| a.ip().is_loopback())));
    }

    // Accepted: served as usual, and the TLS handshake runs.
    filter.refuse.store(false, Ordering::SeqCst);
    let reply = reply_to(plain.addr, get).await;
    assert!(reply.starts_with(b"HTTP/1.1 200 OK"), "{reply:?}");
    let mut stream = connector(&provider).new_stream(&tls_peer).await.unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream.write_all(get).await.unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).await.unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 200 OK"), "{reply:?}");
    }
    // The server answered, so it counted its handshake.
    assert_eq!(
        downstream_tls_handshakes(),
        (handshakes.0 + 1, handshakes.1)
    );
    assert_eq!(served.load(Ordering::SeqCst), 2);
    plain.stop().await;
    tls.stop().await;
}
