use std::collections::HashSet;
use std::sync::Mutex as StdMutex;

use async_trait::async_trait;
use pingora_core::services::background::BackgroundService;
use pingora_core::services::ServiceReadyNotifier;
use pingora_error::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::*;
use crate::discovery::Static;
use crate::health_check::{HttpHealthCheck, TcpHealthCheck};
use crate::selection::RoundRobin;

fn backend(addr: &str) -> Backend {
    Backend::new(addr).unwrap()
}

/// Static discovery the test keeps a handle on.
struct Shared(Arc<Static>);

#[async_trait]
impl ServiceDiscovery for Shared {
    async fn discover(&self) -> Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        self.0.discover().await
    }
}

fn shared(addrs: &[&str]) -> (Arc<Static>, Backends) {
    let set = addrs.iter().map(|a| backend(a)).collect();
    let discovery: Arc<Static> = Arc::from(Static::new(set));
    let backends = Backends::new(Box::new(Shared(Arc::clone(&discovery))));
    (discovery, backends)
}

/// A check whose verdicts the test sets: backends in `down` fail.
#[derive(Default)]
struct Scripted {
    down: StdMutex<HashSet<String>>,
    changes: StdMutex<Vec<(String, bool)>>,
    threshold: usize,
}

impl Scripted {
    fn set_down(&self, addr: &str, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(addr.to_string());
        } else {
            set.remove(addr);
        }
    }
}

#[async_trait]
impl HealthCheck for Scripted {
    async fn check(&self, target: &Backend) -> Result<()> {
        if self.down.lock().unwrap().contains(&target.to_string()) {
            return Error::e_explain(ErrorType::ConnectRefused, "scripted down");
        }
        Ok(())
    }
    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        self.changes
            .lock()
            .unwrap()
            .push((target.to_string(), healthy));
    }
    fn health_threshold(&self, _success: bool) -> usize {
        self.threshold.max(1)
    }
}

#[test]
fn backend_identity_ignores_ext() {
    let mut a = backend("127.0.0.1:80");
    a.ext.insert(42u32);
    let b = backend("127.0.0.1:80");
    assert_eq!(a, b);
    assert_eq!(a.hash_key(), b.hash_key());
    let heavy = Backend::new_with_weight("127.0.0.1:80", 2).unwrap();
    assert_ne!(a, heavy);
    assert_ne!(a.hash_key(), heavy.hash_key());
    assert!(backend("127.0.0.1:80") < backend("127.0.0.2:80"));
    assert!(Backend::new("not an address").is_err());
    assert_eq!(a.to_string(), "127.0.0.1:80");
    assert_eq!(a.as_inet().unwrap().port(), 80);
}

#[tokio::test]
async fn update_keeps_health_and_calls_back_on_change() {
    let (discovery, backends) = shared(&["127.0.0.1:1", "127.0.0.1:2"]);
    let calls = AtomicUsize::new(0);
    let count = |_: Arc<BTreeSet<Backend>>| {
        calls.fetch_add(1, Ordering::SeqCst);
    };
    backends.update(count).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    backends.update(count).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1, "no change, no callback");

    backends.set_enable(&backend("127.0.0.1:1"), false);
    assert!(!backends.ready(&backend("127.0.0.1:1")));
    discovery.add(backend("127.0.0.1:3"));
    backends.update(count).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(backends.get_backend().len(), 3);
    assert!(
        !backends.ready(&backend("127.0.0.1:1")),
        "a surviving backend keeps its state"
    );
    assert!(backends.ready(&backend("127.0.0.1:3")));
    discovery.remove(&backend("127.0.0.1:3"));
    backends.update(count).await.unwrap();
    assert_eq!(backends.get_backend().len(), 2);
}

#[tokio::test]
async fn readiness_with_and_without_checks() {
    let (_d, mut backends) = shared(&["127.0.0.1:1"]);
    // Without health checks, unknown backends are ready (nothing says otherwise)...
    assert!(backends.ready(&backend("127.0.0.9:9")));
    backends.set_health_check(Box::<Scripted>::default());
    // ...with them, only known and healthy ones.
    assert!(!backends.ready(&backend("127.0.0.9:9")));
    backends.update(|_| {}).await.unwrap();
    assert!(
        backends.ready(&backend("127.0.0.1:1")),
        "new backends start healthy"
    );
}

#[tokio::test]
async fn health_flips_after_consecutive_results() {
    let (_d, mut backends) = shared(&["127.0.0.1:1", "127.0.0.1:2"]);
    let check = Arc::new(Scripted {
        threshold: 2,
        ..Scripted::default()
    });
    backends.set_health_check(Box::new(Arc::clone(&check)));
    backends.update(|_| {}).await.unwrap();
    let one = backend("127.0.0.1:1");

    check.set_down("127.0.0.1:1", true);
    backends.run_health_check(false).await;
    assert!(
        backends.ready(&one),
        "one failure is below the threshold of 2"
    );
    backends.run_health_check(true).await;
    assert!(!backends.ready(&one));
    assert!(backends.ready(&backend("127.0.0.1:2")));

    check.set_down("127.0.0.1:1", false);
    backends.run_health_check(true).await;
    assert!(!backends.ready(&one));
    // A failure in between resets the count.
    check.set_down("127.0.0.1:1", true);
    backends.run_health_check(true).await;
    check.set_down("127.0.0.1:1", false);
    backends.run_health_check(true).await;
    assert!(!backends.ready(&one));
    backends.run_health_check(true).await;
    assert!(backends.ready(&one));
    assert_eq!(
        *check.changes.lock().unwrap(),
        [
            ("127.0.0.1:1".to_string(), false),
            ("127.0.0.1:1".to_string(), true)
        ]
    );
}

#[tokio::test]
async fn select_skips_unready_backends() {
    let mut lb =
        LoadBalancer::<RoundRobin>::try_from_iter(["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"])
            .unwrap();
    let check = Arc::new(Scripted::default());
    lb.set_health_check(Box::new(Arc::clone(&check)));
    lb.update().await.unwrap();
    assert!(lb.last_update_timing().is_some());
    check.set_down("127.0.0.1:2", true);
    lb.backends().run_health_check(false).await;
    let mut seen = HashSet::new();
    for _ in 0..300 {
        let chosen = lb.select(b"", 10).unwrap();
        assert_ne!(chosen.to_string(), "127.0.0.1:2");
        seen.insert(chosen.to_string());
    }
    assert_eq!(seen.len(), 2);
    // `select_with` may accept unhealthy ones, and sees the readiness.
    let unhealthy = lb.select_with(b"", 10, |b, ready| !ready && b.to_string() == "127.0.0.1:2");
    assert_eq!(unhealthy.unwrap().to_string(), "127.0.0.1:2");
    // All down: nothing is selected.
    check.set_down("127.0.0.1:1", true);
    check.set_down("127.0.0.1:3", true);
    lb.backends().run_health_check(true).await;
    assert!(lb.select(b"", 10).is_none());
    // `max_iterations` bounds the search.
    check.set_down("127.0.0.1:3", false);
    lb.backends().run_health_check(true).await;
    let found = (0..30).filter(|_| lb.select(b"", 1).is_some()).count();
    assert!(
        found > 0 && found < 30,
        "with 1 iteration only the first candidate counts: {found}"
    );
}

#[tokio::test]
async fn tcp_health_check_against_real_sockets() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = Backend::from_inet(listener.local_addr().unwrap(), 1);
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = Backend::from_inet(closed.local_addr().unwrap(), 1);
    drop(closed);
    let check = TcpHealthCheck::new();
    check.check(&up).await.unwrap();
    let err = check.check(&down).await.unwrap_err();
    assert_eq!(err.etype(), &ErrorType::ConnectRefused);
    assert_eq!(check.health_threshold(true), 1);
}

/// An HTTP origin answering each connection's first request with `status`; counts requests
/// and records the Host header of the last one.
async fn origin(status: u16) -> (std::net::SocketAddr, Arc<StdMutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(StdMutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n @ 1..) = conn.read(&mut buf).await else {
                        return;
                    };
                    got.extend_from_slice(&buf[..n]);
                }
                seen.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&got).to_string());
                let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok");
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, requests)
}

#[tokio::test]
async fn http_health_check_statuses_and_validator() {
    let (ok_addr, requests) = origin(200).await;
    let (bad_addr, _) = origin(503).await;
    let check = HttpHealthCheck::new("health.example", false);
    check.check(&Backend::from_inet(ok_addr, 1)).await.unwrap();
    let sent = requests.lock().unwrap()[0].clone();
    assert!(sent.starts_with("GET / HTTP/1.1\r\n"), "{sent}");
    assert!(sent.contains("Host: health.example\r\n"), "{sent}");
    let err = check
        .check(&Backend::from_inet(bad_addr, 1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");

    let mut lenient = HttpHealthCheck::new("h", false);
    lenient.validator = Some(Box::new(|resp| {
        if resp.status.is_server_error() && resp.status != 503 {
            Error::e_explain(ErrorType::InternalError, "5xx")
        } else {
            Ok(())
        }
    }));
    lenient
        .check(&Backend::from_inet(bad_addr, 1))
        .await
        .unwrap();

    // The port can be overridden: check `ok_addr`'s port on a backend that names another.
    let mut overridden = HttpHealthCheck::new("h", false);
    overridden.port_override = Some(ok_addr.port());
    overridden
        .check(&Backend::from_inet(bad_addr, 1))
        .await
        .unwrap();
}

#[tokio::test]
async fn background_service_ejects_a_dead_backend() {
    let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live_addr = live.local_addr().unwrap();
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let mut lb = LoadBalancer::<RoundRobin>::try_from_iter([live_addr, dead_addr]).unwrap();
    lb.set_health_check(TcpHealthCheck::new());
    lb.health_check_frequency = Some(Duration::from_millis(50));
    let lb = Arc::new(lb);

    let (stop, shutdown) = watch::channel(false);
    let (ready_tx, mut ready_rx) = watch::channel(false);
    let task = {
        let lb = Arc::clone(&lb);
        tokio::spawn(async move {
            lb.start_with_ready_notifier(shutdown, ServiceReadyNotifier::new(ready_tx))
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(5), ready_rx.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();
    // Once ready, the first check has run: the dead backend is never chosen.
    for _ in 0..20 {
        assert_eq!(lb.select(b"", 4).unwrap().as_inet(), Some(&live_addr));
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the service stops on shutdown")
        .unwrap();
    drop(live);
}
