//! Upstream connections over virtual L4 sockets, end to end through a real proxy: the peer's
//! custom `L4Connect` hands the proxy `Stream::from(VirtualSocketStream::new(..))` wrapping
//! either a TCP connection it opened itself to an in-process origin, or one end of an
//! in-memory pipe whose other end an in-process hyper origin serves.
//!
//! The peer's own address is a loopback port nothing listens on: a connection that did not go
//! through the custom connector would be refused.
//!
//! Keepalive: a virtual connection left idle and clean goes back to the pool like a TCP one
//! and is reused (it has no file descriptor, so the pool can only check it through reads: a
//! close it has not been told of yet is found when the request fails, and the request is
//! retried on a new connection).

mod e2e;

use std::convert::Infallible;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;
use e2e::*;
use http::Response;
use hyper_util::rt::TokioIo;
use pingora_core::connectors::L4Connect;
use pingora_core::protocols::l4::socket::SocketAddr as L4SocketAddr;
use pingora_core::protocols::l4::stream::Stream;
use pingora_core::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora_core::protocols::Digest;
use pingora_core::protocols::TcpKeepalive;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{ErrorType, OrErr, Result};
use pingora_proxy::{ProxyHttp, Session};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

// === virtual sockets ===

/// What the virtual sockets of one connector were asked, in order.
type Options = Arc<Mutex<Vec<String>>>;

/// A virtual socket over any byte stream, recording the options set on it.
#[derive(Debug)]
struct Recorded<S> {
    inner: S,
    options: Options,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S> VirtualSocket for Recorded<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug,
{
    fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()> {
        let name = match opt {
            VirtualSockOpt::NoDelay => "nodelay".to_string(),
            VirtualSockOpt::KeepAlive(ka) => format!("keepalive {}s", ka.idle.as_secs()),
            _ => "other".to_string(),
        };
        self.options.lock().expect("options").push(name);
        Ok(())
    }
}

// === connectors ===

/// Where a connector's virtual sockets lead.
#[derive(Debug)]
enum Leads {
    /// A TCP connection, opened by the connector, to this origin.
    Tcp(SocketAddr),
    /// A pipe whose other end the hyper origin with the standard routes serves.
    Pipe,
}

/// Makes virtual sockets, counting them.
#[derive(Debug)]
struct VirtualConnector {
    leads: Leads,
    connects: AtomicUsize,
    options: Options,
}

impl VirtualConnector {
    fn new(leads: Leads) -> Arc<Self> {
        Arc::new(VirtualConnector {
            leads,
            connects: AtomicUsize::new(0),
            options: Options::default(),
        })
    }

    fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }

    fn socket<S>(&self, inner: S) -> Stream
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + Sync + std::fmt::Debug + 'static,
    {
        let socket = Recorded {
            inner,
            options: Arc::clone(&self.options),
        };
        Stream::from(VirtualSocketStream::new(Box::new(socket)))
    }
}

#[async_trait]
impl L4Connect for VirtualConnector {
    async fn connect(&self, _addr: &L4SocketAddr) -> Result<Stream> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        match self.leads {
            Leads::Tcp(origin) => {
                let tcp = TcpStream::connect(origin)
                    .await
                    .or_err(ErrorType::ConnectError, "virtual socket to the origin")?;
                Ok(self.socket(tcp))
            }
            Leads::Pipe => {
                let (near, far) = tokio::io::duplex(64 * 1024);
                tokio::spawn(serve_standard_routes(far));
                Ok(self.socket(near))
            }
        }
    }
}

/// Serves HTTP/1 on `end` with the standard routes of the hyper origin until it closes.
async fn serve_standard_routes(end: DuplexStream) {
    let service = hyper::service::service_fn(|req| async move {
        Ok::<Response<Body>, Infallible>(standard_routes(req).await)
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(end), service)
        .await;
}

// === the proxy ===

/// Proxies everything to `peer_addr` through `connector`, recording how each request was
/// connected and signalling each request's end.
struct ViaVirtual {
    connector: Arc<VirtualConnector>,
    peer_addr: SocketAddr,
    /// (max, min) HTTP versions.
    versions: (u8, u8),
    log: Log,
    logged: mpsc::UnboundedSender<()>,
}

#[async_trait]
impl ProxyHttp for ViaVirtual {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _: &mut Session, _: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.peer_addr, false, String::new());
        peer.options.custom_l4 =
            Some(Arc::clone(&self.connector) as Arc<dyn L4Connect + Send + Sync>);
        peer.options.tcp_keepalive = Some(TcpKeepalive {
            idle: std::time::Duration::from_secs(60),
            interval: std::time::Duration::from_secs(5),
            count: 3,
            user_timeout: std::time::Duration::ZERO,
        });
        peer.options
            .set_http_version(self.versions.0, self.versions.1);
        peer.options.max_h2_streams = 8;
        Ok(Box::new(peer))
    }

    async fn connected_to_upstream(
        &self,
        _: &mut Session,
        reused: bool,
        _: &HttpPeer,
        fd: std::os::unix::io::RawFd,
        digest: Option<&Digest>,
        _: &mut (),
    ) -> Result<()> {
        let remote = digest
            .and_then(|d| d.socket_digest.as_ref())
            .and_then(|s| s.peer_addr().cloned())
            .map_or_else(|| "none".to_string(), |a| a.to_string());
        let remote = if remote == self.peer_addr.to_string() {
            "peer"
        } else {
            &remote
        };
        record(
            &self.log,
            format!("reused={reused} fd={fd} remote={remote}"),
        );
        Ok(())
    }

    async fn logging(&self, _: &mut Session, _: Option<&pingora_error::Error>, _: &mut ()) {
        let _ = self.logged.send(());
    }
}

/// A proxy through `connector`, the log of its connections and the channel of its requests'
/// ends.
fn start(
    connector: &Arc<VirtualConnector>,
    versions: (u8, u8),
) -> (TestServer, SocketAddr, Log, mpsc::UnboundedReceiver<()>) {
    let log = Log::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let app = ViaVirtual {
        connector: Arc::clone(connector),
        peer_addr: dead_addr(),
        versions,
        log: Arc::clone(&log),
        logged: tx,
    };
    let (server, addr) = start_proxy(app);
    (server, addr, log, rx)
}

/// Waits for the end (the logging phase) of one more request: by then its upstream
/// connection is back in the pool.
async fn ended(logged: &mut mpsc::UnboundedReceiver<()>) {
    within("the request's end", logged.recv())
        .await
        .expect("the proxy is alive");
}

const FRESH: &str = "reused=false fd=-1 remote=peer";
const REUSED: &str = "reused=true fd=-1 remote=peer";

// === tests ===

#[test]
fn http1_over_a_virtual_tcp_connection_is_kept_and_reused() {
    let rt = runtime();
    let (origin, seen) = echo_origin(&rt, false, false);
    let connector = VirtualConnector::new(Leads::Tcp(origin.addr));
    let (_proxy, addr, log, mut logged) = start(&connector, (1, 1));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/1", "")).await;
        assert_eq!((resp.head.status(), resp.text().as_str()), (200, "empty"));
        ended(&mut logged).await;
        let resp = client
            .roundtrip(post("/2", b"through the virtual socket"))
            .await;
        assert_eq!(resp.text(), "through the virtual socket");
        ended(&mut logged).await;
        // Another client connection shares the pooled upstream connection.
        let mut other = RawConn::connect(addr).await;
        let resp = other.roundtrip(post("/3", b"again")).await;
        assert_eq!(resp.text(), "again");
        ended(&mut logged).await;
    });
    assert_eq!(events(&log), [FRESH, REUSED, REUSED]);
    assert_eq!(connector.connects(), 1);
    assert_eq!(origin.connection_count(), 1);
    assert_eq!(
        *seen.lock().expect("seen"),
        [
            "0 GET ",
            "0 POST through the virtual socket",
            "0 POST again"
        ]
    );
    assert_eq!(
        *connector.options.lock().expect("options"),
        ["keepalive 60s", "nodelay"],
        "the peer's socket options reached the virtual socket"
    );
}

#[test]
fn virtual_connections_the_origin_closes_are_replaced() {
    let rt = runtime();
    let (origin, seen) = echo_origin(&rt, true, false);
    let connector = VirtualConnector::new(Leads::Tcp(origin.addr));
    let (_proxy, addr, log, mut logged) = start(&connector, (1, 1));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        for body in ["one", "two", "three"] {
            let resp = client.roundtrip(post("/", body.as_bytes())).await;
            assert_eq!((resp.head.status(), resp.text()), (200, body.to_string()));
            ended(&mut logged).await;
        }
    });
    // Each origin connection served one request; whether the proxy noticed a close before
    // reusing the connection or only when the request failed on it, it made a new one.
    assert_eq!(origin.connection_count(), 3);
    assert_eq!(connector.connects(), 3);
    assert_eq!(
        *seen.lock().expect("seen"),
        ["0 POST one", "1 POST two", "2 POST three"]
    );
    let log = events(&log);
    assert_eq!(log.iter().filter(|e| *e == FRESH).count(), 3, "{log:?}");
}

#[test]
fn http1_over_an_in_memory_pipe_to_an_in_process_origin() {
    let rt = runtime();
    let connector = VirtualConnector::new(Leads::Pipe);
    let (_proxy, addr, log, mut logged) = start(&connector, (1, 1));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        let resp = client.roundtrip(get("/hello", "")).await;
        assert_eq!((resp.head.status(), resp.text().as_str()), (200, "hello"));
        ended(&mut logged).await;

        // Bodies larger than the pipe's buffer, both ways, fixed length and chunked.
        let resp = client.roundtrip(get("/download/200000", "")).await;
        assert_eq!(resp.head.status(), 200);
        assert!(
            resp.body == pattern_vec(200_000),
            "the download arrived intact"
        );
        ended(&mut logged).await;
        let resp = client.roundtrip(get("/download-chunked/100000", "")).await;
        assert!(
            resp.body == pattern_vec(100_000),
            "the chunked download arrived intact"
        );
        ended(&mut logged).await;
        let resp = client
            .roundtrip(post("/upload", &pattern_vec(150_000)))
            .await;
        assert_eq!(resp.text(), "150000 OK");
        ended(&mut logged).await;
    });
    assert_eq!(events(&log), [FRESH, REUSED, REUSED, REUSED]);
    assert_eq!(connector.connects(), 1);
}

#[test]
fn h2c_over_a_virtual_tcp_connection_is_shared() {
    let rt = runtime();
    let origin = h2_origin(
        &rt,
        Arc::new(|req, mut respond| {
            Box::pin(async move {
                let path = req.uri().path().to_string();
                let resp = Response::builder().status(200).body(()).expect("response");
                if let Ok(mut send) = respond.send_response(resp, false) {
                    let _ = send.send_data(Bytes::from(format!("h2 {path}")), true);
                }
            })
        }),
    );
    let connector = VirtualConnector::new(Leads::Tcp(origin.addr));
    let (_proxy, addr, log, mut logged) = start(&connector, (2, 2));
    rt.block_on(async {
        let mut client = RawConn::connect(addr).await;
        for path in ["/a", "/b", "/c"] {
            let resp = client.roundtrip(get(path, "")).await;
            assert_eq!(
                (resp.head.status(), resp.text()),
                (200, format!("h2 {path}"))
            );
            ended(&mut logged).await;
        }
    });
    assert_eq!(origin.accepted(), 1);
    assert_eq!(connector.connects(), 1);
    assert_eq!(events(&log), [FRESH, REUSED, REUSED]);
}
