//! Support for the fault-injection tests: a proxy app, a scripted origin that misbehaves on
//! cue, and a harness that runs both on the test's runtime and checks after each case that
//! the proxy is back to where it was (tasks, descriptors, heap, no panic).

// Each of the two test binaries that include this module uses a part of it.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::HttpServerOptions;
use pingora_core::server::configuration::ServerConf;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use pingora_test_support::leaks::{self, Baseline};
use pingora_test_support::origin::Origin;
use pingora_test_support::proxy::ProxyUnderTest;
use pingora_test_support::raw::{get, ok_response, Head};
use pingora_test_support::{dead_addr, within, RawConn, TestService};
use tokio::sync::{mpsc, MutexGuard, Notify};

// === the proxy app ===

/// How a request ended, as `logging` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The status of the response head sent to the client, if one was.
    pub status: Option<u16>,
    /// The type of the final error, if the request failed.
    pub error: Option<String>,
}

/// Proxies to the origin. The peer has the configured read and write timeouts; connection failures are
/// marked retryable. By request field:
/// * `x-dead-first`: the first attempt goes to a port where nothing listens;
/// * `x-timeouts-504`: `fail_to_proxy` answers upstream timeouts with 504 instead of 502.
struct Faults {
    origin: SocketAddr,
    dead: SocketAddr,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
    peer_calls: Arc<AtomicUsize>,
    logged: mpsc::UnboundedSender<Logged>,
}

#[async_trait]
impl ProxyHttp for Faults {
    type CTX = usize;

    fn new_ctx(&self) -> usize {
        0
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        attempt: &mut usize,
    ) -> Result<Box<HttpPeer>> {
        self.peer_calls.fetch_add(1, Ordering::SeqCst);
        let dead_first = session.get_header("x-dead-first").is_some();
        let addr = if dead_first && *attempt == 0 {
            self.dead
        } else {
            self.origin
        };
        *attempt += 1;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.read_timeout = self.read_timeout;
        peer.options.write_timeout = self.write_timeout;
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _: &mut Session,
        _: &HttpPeer,
        _: &mut usize,
        mut e: Box<Error>,
    ) -> Box<Error> {
        e.set_retry(true);
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, _: &mut usize) -> FailToProxy {
        let timed_out = matches!(
            e.etype(),
            ErrorType::ReadTimedout | ErrorType::WriteTimedout | ErrorType::ConnectTimedout
        );
        if timed_out && session.get_header("x-timeouts-504").is_some() {
            // "504 only by configuration": the override a user would write.
            let _ = session.respond_error(504).await;
            return FailToProxy {
                error_code: 504,
                can_reuse_downstream: false,
            };
        }
        Defaults.fail_to_proxy(session, e, &mut 0).await
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, _: &mut usize) {
        let _ = self.logged.send(Logged {
            status: session.response_written().map(|r| r.status.as_u16()),
            error: e.map(|e| format!("{:?}", e.etype())),
        });
    }
}

/// Only the required callbacks, to call the trait's default `fail_to_proxy`.
struct Defaults;

#[async_trait]
impl ProxyHttp for Defaults {
    type CTX = usize;
    fn new_ctx(&self) -> usize {
        0
    }
    async fn upstream_peer(&self, _: &mut Session, _: &mut usize) -> Result<Box<HttpPeer>> {
        Error::e_explain(ErrorType::InternalError, "unused")
    }
}

// === the origin ===

/// A record of what the origin saw: `"K METHOD path"` when connection `K` reads a request
/// head, `"K end"` when connection `K` is over (closed by either side).
pub type Log = Arc<Mutex<Vec<String>>>;

/// An origin on the test's runtime that answers by request path:
/// * `/hello`: 200 "hello", keeping the connection;
/// * `/close`: 200 "bye" with `Connection: close`, then closes;
/// * `/head-rst`, `/head-fin`: part of a response head, then a reset or a close;
/// * `/hints-rst`, `/hints-fin`: a 103 (Early Hints), then a reset or a close;
/// * `/body-rst`, `/body-fin`: a head with `Content-Length: 100` and 7 bytes of body; on
///   [`FaultOrigin::go`] a reset or a close;
/// * `/chunk-rst`, `/chunk-fin`: a chunked head, a whole chunk and part of the next; on
///   [`FaultOrigin::go`] a reset or a close;
/// * `/unframed-rst`, `/unframed-fin`: a head without framing (the body ends with the
///   connection) and 4 bytes of body; on [`FaultOrigin::go`] a reset (the body is cut
///   short) or a close (the body is complete);
/// * `/silent`: reads the request and says nothing until the proxy closes;
/// * `/silent-unread`: reads only the request head and says nothing; on
///   [`FaultOrigin::go`] reads until the proxy closes;
/// * `/early-413`: 413 (kept alive) as soon as the head is read, the body left unread;
///   then reads until the proxy closes;
/// * `/early-close`: 200 "early" with `Connection: close` as soon as the head is read, then
///   half-closes and reads until the proxy closes;
/// * `/upload`: reads the body, answers 200 with its length;
/// * `/upload-rst`: reads 16 KiB of the body, then resets;
/// * `/download`: `Content-Length` of 1 GiB, written as fast as it is read until a write
///   fails;
/// * `/slow-download`: a chunked body, one small chunk every 20 ms until a write fails.
pub struct FaultOrigin {
    origin: Origin,
    /// What it saw.
    pub log: Log,
    alive: Arc<AtomicUsize>,
    go: Arc<Notify>,
}

/// Decrements the live connections and logs the end of connection `index` when dropped.
struct Alive {
    index: usize,
    log: Log,
    alive: Arc<AtomicUsize>,
}

impl Drop for Alive {
    fn drop(&mut self) {
        push(&self.log, format!("{} end", self.index));
        self.alive.fetch_sub(1, Ordering::SeqCst);
    }
}

fn push(log: &Log, event: String) {
    log.lock().expect("log lock").push(event);
}

impl FaultOrigin {
    async fn start() -> FaultOrigin {
        let log = Log::default();
        let alive = Arc::new(AtomicUsize::new(0));
        let go = Arc::new(Notify::new());
        let (l, a, g) = (log.clone(), alive.clone(), go.clone());
        let origin = Origin::start(move |conn, index| {
            a.fetch_add(1, Ordering::SeqCst);
            let guard = Alive {
                index,
                log: l.clone(),
                alive: a.clone(),
            };
            serve(conn, guard, g.clone())
        })
        .await;
        FaultOrigin {
            origin,
            log,
            alive,
            go,
        }
    }

    /// Lets the scripts waiting for the test's cue go on.
    pub fn go(&self) {
        self.go.notify_one();
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.origin.connection_count()
    }

    /// What the origin saw, emptied.
    pub fn take_log(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().expect("log lock"))
    }

    /// Waits until every connection is over.
    pub async fn all_closed(&self) {
        within("the origin's connections to close", async {
            while self.alive.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }

    /// Checks that the origin got `request` ("METHOD path") exactly once, and waits for
    /// the connection it came on to end (closed by either side). Returns that connection.
    pub async fn got_once_on_a_closed_connection(&self, request: &str, what: &str) -> usize {
        let on: Vec<usize> = {
            let log = self.log.lock().expect("log lock");
            log.iter()
                .filter_map(|e| e.split_once(' '))
                .filter(|(_, r)| *r == request)
                .map(|(k, _)| k.parse().expect("a connection index"))
                .collect()
        };
        assert_eq!(
            on.len(),
            1,
            "{what}: the origin got {request:?} on connections {on:?}"
        );
        self.saw(&format!("{} end", on[0])).await;
        on[0]
    }

    /// Waits until a connection got `request` ("METHOD path").
    pub async fn saw_request(&self, request: &str) {
        within(&format!("the origin to get {request:?}"), async {
            loop {
                let seen = self
                    .log
                    .lock()
                    .expect("log lock")
                    .iter()
                    .any(|e| e.split_once(' ').is_some_and(|(_, r)| r == request));
                if seen {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }

    /// Waits until the log holds `event`.
    pub async fn saw(&self, event: &str) {
        within(&format!("the origin to see {event:?}"), async {
            while !self
                .log
                .lock()
                .expect("log lock")
                .iter()
                .any(|e| e == event)
            {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }
}

/// One connection of the origin.
async fn serve(mut conn: RawConn, guard: Alive, go: Arc<Notify>) {
    let index = guard.index;
    // A pooled connection may sit idle for as long as a case takes: no deadline until the
    // next request starts (its head, once started, must come in time).
    while conn.wait_idle().await {
        let Some(head) = conn.read_head().await else {
            break;
        };
        push(
            &guard.log,
            format!("{index} {} {}", head.method(), head.target()),
        );
        match respond(&mut conn, &head, &go).await {
            Next::Request => {}
            Next::Close => return,
            Next::Reset => return conn.reset(),
        }
    }
}

/// What a connection of the origin does after a response.
enum Next {
    /// Reads the next request.
    Request,
    /// Closes (FIN).
    Close,
    /// Resets (RST).
    Reset,
}

/// `Request` if sending worked, else `Close`.
fn next(sent: std::io::Result<()>) -> Next {
    match sent {
        Ok(()) => Next::Request,
        Err(_) => Next::Close,
    }
}

/// Answers one request (see [`FaultOrigin`]).
async fn respond(conn: &mut RawConn, head: &Head, go: &Notify) -> Next {
    let path = head.target().to_string();
    let fault_end = if path.ends_with("-rst") {
        Next::Reset
    } else {
        Next::Close
    };
    match path.as_str() {
        "/hello" => next(conn.try_send(ok_response(b"hello")).await),
        "/close" => {
            let bye = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbye";
            let _ = conn.try_send(bye).await;
            Next::Close
        }
        "/head-rst" | "/head-fin" => {
            let _ = conn.try_send("HTTP/1.1 200 OK\r\nContent-Le").await;
            fault_end
        }
        "/hints-rst" | "/hints-fin" => {
            let _ = conn
                .try_send("HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n")
                .await;
            fault_end
        }
        "/body-rst" | "/body-fin" => {
            let _ = conn
                .try_send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                .await;
            go.notified().await;
            fault_end
        }
        "/chunk-rst" | "/chunk-fin" => {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = conn
                .try_send(format!("{head}5\r\nhello\r\n10\r\npart"))
                .await;
            go.notified().await;
            fault_end
        }
        "/unframed-rst" | "/unframed-fin" => {
            let _ = conn.try_send("HTTP/1.1 200 OK\r\n\r\nsome").await;
            go.notified().await;
            fault_end
        }
        "/silent-unread" => {
            go.notified().await;
            let _ = conn.read_to_close().await;
            Next::Close
        }
        "/silent" => {
            let _ = conn.read_body(head).await;
            let _ = conn.read_to_close().await;
            Next::Close
        }
        "/early-413" => {
            let resp = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n";
            let _ = conn.try_send(resp).await;
            let _ = conn.read_to_close().await;
            Next::Close
        }
        "/early-close" => {
            let resp = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nearly";
            let _ = conn.try_send(resp).await;
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut conn.stream).await;
            let _ = conn.read_to_close().await;
            Next::Close
        }
        "/upload-rst" => {
            let _ = conn.try_read_exact(16 * 1024).await;
            Next::Reset
        }
        "/upload" => match conn.read_body(head).await {
            Some(body) => next(
                conn.try_send(ok_response(body.len().to_string().as_bytes()))
                    .await,
            ),
            None => Next::Close,
        },
        "/download" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n";
            let piece = vec![b'd'; 64 * 1024];
            let mut sent = conn.try_send(head).await;
            while sent.is_ok() {
                sent = conn.try_send(&piece).await;
            }
            Next::Close
        }
        "/slow-download" => {
            let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
            let mut sent = conn.try_send(head).await;
            while sent.is_ok() {
                sent = conn.try_send("4\r\ndata\r\n").await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Next::Close
        }
        _ => next(
            conn.try_send("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                .await,
        ),
    }
}

// === the harness ===

/// A proxy (a task of the test's runtime) in front of a [`FaultOrigin`], warmed up, with the
/// baseline its cases must come back to. Holds [`leaks::serial`] for its whole life: the
/// counts are process-wide.
pub struct Harness {
    /// The proxy.
    pub proxy: TestService,
    /// The origin.
    pub origin: FaultOrigin,
    /// Calls of `upstream_peer`.
    pub peer_calls: Arc<AtomicUsize>,
    logged: mpsc::UnboundedReceiver<Logged>,
    baseline: Baseline,
    panics: usize,
    _serial: MutexGuard<'static, ()>,
}

/// How the harness's proxy is set up.
#[derive(Default)]
pub struct Setup {
    /// The peer's read timeout.
    pub read_timeout: Option<Duration>,
    /// The peer's write timeout.
    pub write_timeout: Option<Duration>,
    /// The server's retry bound (`ServerConf::max_retries`); the default when `None`.
    pub max_retries: Option<usize>,
    /// How client connections are served.
    pub options: Option<HttpServerOptions>,
}

impl Harness {
    /// Starts the origin and the proxy, warms them up (a request kept alive upstream, then
    /// one that closes the upstream connection: the pool's sweeper runs, the pool is empty),
    /// and takes the baseline.
    pub async fn start(setup: Setup) -> Harness {
        let serial = leaks::serial().await;
        let panics = leaks::panic_count();
        let origin = FaultOrigin::start().await;
        let peer_calls = Arc::new(AtomicUsize::new(0));
        let (tx, logged) = mpsc::unbounded_channel();
        let app = Faults {
            origin: origin.origin.addr,
            dead: dead_addr(),
            read_timeout: setup.read_timeout,
            write_timeout: setup.write_timeout,
            peer_calls: peer_calls.clone(),
            logged: tx,
        };
        let mut conf = ServerConf::default();
        if let Some(max) = setup.max_retries {
            conf.max_retries = max;
        }
        let proxy = ProxyUnderTest::new(app)
            .conf(conf)
            .server_options(setup.options)
            .serve()
            .await;
        let mut harness = Harness {
            proxy,
            origin,
            peer_calls,
            logged,
            baseline: Baseline::local(),
            panics,
            _serial: serial,
        };
        harness.drain_pool().await;
        harness.quiet().await;
        harness.origin.take_log();
        harness.peer_calls.store(0, Ordering::SeqCst);
        harness.baseline = Baseline::take().with_tasks(&tokio::runtime::Handle::current());
        harness
    }

    /// A new client connection to the proxy.
    pub async fn client(&self) -> RawConn {
        self.proxy.connect().await
    }

    /// Waits for the next request to be logged by the proxy.
    pub async fn logged(&mut self) -> Logged {
        within("logging", self.logged.recv())
            .await
            .expect("the proxy app is alive")
    }

    /// Checks that a new request is served through a new upstream connection (the one the
    /// fault broke was not pooled), then closes that one too so that the pool is empty again.
    pub async fn next_request_uses_a_fresh_connection(&mut self, what: &str) {
        let fresh = self.origin.connections();
        let mut client = self.client().await;
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!(resp.status(), 200, "{what}: the next request");
        assert_eq!(resp.text(), "hello", "{what}: the next request");
        self.logged().await;
        let log = self.origin.take_log();
        assert_eq!(
            log.last().map(String::as_str),
            Some(format!("{fresh} GET /hello").as_str()),
            "{what}: the next request went to a reused connection: {log:?}"
        );
        drop(client);
        self.drain_pool().await;
    }

    /// A request that reuses the pooled upstream connection, if any, and closes it.
    async fn drain_pool(&mut self) {
        let mut client = self.client().await;
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!(resp.text(), "hello");
        let resp = client.roundtrip(get("/close", "")).await;
        assert_eq!(resp.text(), "bye");
        self.logged().await;
        self.logged().await;
    }

    /// Waits until no client is connected to the proxy and no upstream connection is open.
    async fn quiet(&self) {
        let port = self.proxy.addr.port();
        within("the proxy's client connections to close", async {
            while leaks::server_sockets(port) > 1 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
        self.origin.all_closed().await;
    }

    /// Ends a case: nothing panicked, and tasks, descriptors and heap come back to the
    /// baseline (the origin's log is emptied first).
    pub async fn settle(&mut self, what: &str) {
        self.origin.take_log();
        self.peer_calls.store(0, Ordering::SeqCst);
        self.baseline.settle(what).await;
        assert_eq!(
            leaks::panic_count(),
            self.panics,
            "{what}: something panicked"
        );
    }
}
