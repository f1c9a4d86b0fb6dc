//! Upstream connections that are not sockets: requests for `Host: virtual.test` go to an
//! origin that lives in this process, reached through an in-memory pipe that a custom L4
//! connector hands to the proxy as a virtual socket; other requests go to a TCP origin.
//!
//! The pieces:
//! * [`PipeSocket`]: one end of a `tokio::io::duplex` pipe as a
//!   [`VirtualSocket`](pingora_core::protocols::l4::virt::VirtualSocket);
//! * [`InMemoryConnector`]: an [`L4Connect`] that makes a pipe per connection, serves the far
//!   end with the in-process origin, and returns the near end as an L4 `Stream`;
//! * [`VirtualProxy`]: the proxy, which sets the connector as the `custom_l4` of the peers of
//!   `virtual.test`.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora_core::apps::http_app::HttpServer;
use pingora_core::apps::ServerApp;
use pingora_core::connectors::L4Connect;
use pingora_core::protocols::l4::socket::SocketAddr as L4SocketAddr;
use pingora_core::protocols::l4::stream::Stream;
use pingora_core::protocols::l4::virt::{VirtualSockOpt, VirtualSocket, VirtualSocketStream};
use pingora_core::upstreams::peer::{HttpPeer, PeerOptions, Scheme};
use pingora_error::Result;
use pingora_proxy::{ProxyHttp, Session};
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};

use super::origin::Origin;

/// The `Host` whose requests go over virtual sockets.
pub const VIRTUAL_HOST: &str = "virtual.test";

/// The address of the virtual peer. Nothing ever connects to it: the custom connector
/// ignores it. It still names the peer, in logs and in the connection pool's checks.
pub const VIRTUAL_PEER: &str = "192.0.2.1:80";

// === the virtual socket ===

/// One end of an in-memory pipe, standing in for a socket.
#[derive(Debug)]
pub struct PipeSocket {
    end: DuplexStream,
}

impl AsyncRead for PipeSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.end).poll_read(cx, buf)
    }
}

impl AsyncWrite for PipeSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.end).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.end).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.end).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.end).poll_shutdown(cx)
    }
}

impl VirtualSocket for PipeSocket {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()> {
        // A pipe neither delays small writes nor goes quiet on a network: the options the
        // connectors set (no-delay, keepalive when the peer asks for it) have nothing to do.
        match opt {
            VirtualSockOpt::NoDelay | VirtualSockOpt::KeepAlive(_) => Ok(()),
            // Options added later are not understood either.
            _ => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

// === the connector ===

/// Connects to the in-process origin: each connection is a new pipe whose far end the origin
/// serves for as long as the proxy keeps the near end.
#[derive(Debug)]
pub struct InMemoryConnector {
    origin: Arc<HttpServer<Origin>>,
    connections: AtomicUsize,
}

impl InMemoryConnector {
    /// A connector to an origin named `virtual`.
    pub fn new() -> Self {
        InMemoryConnector {
            origin: Arc::new(HttpServer::new_app(Origin { name: "virtual" })),
            connections: AtomicUsize::new(0),
        }
    }

    /// How many connections it made.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Default for InMemoryConnector {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl L4Connect for InMemoryConnector {
    async fn connect(&self, _addr: &L4SocketAddr) -> Result<Stream> {
        self.connections.fetch_add(1, Ordering::SeqCst);
        let (near, far) = tokio::io::duplex(64 * 1024);
        let origin = Arc::clone(&self.origin);
        tokio::spawn(async move {
            // The origin is never asked to shut down: it serves the pipe until the proxy
            // closes it.
            let (_keep_running, shutdown) = tokio::sync::watch::channel(false);
            let mut stream: pingora_core::protocols::Stream = Box::new(far);
            while let Some(kept) = origin.process_new(stream, &shutdown).await {
                stream = kept;
            }
        });
        Ok(Stream::from(VirtualSocketStream::new(Box::new(
            PipeSocket { end: near },
        ))))
    }
}

// === the proxy ===

/// Sends `Host: virtual.test` over virtual sockets to the in-process origin, the rest over
/// TCP to `tcp_origin`.
#[derive(Debug)]
pub struct VirtualProxy {
    pub connector: Arc<InMemoryConnector>,
    pub tcp_origin: SocketAddr,
}

impl VirtualProxy {
    pub fn new(tcp_origin: SocketAddr) -> Self {
        VirtualProxy {
            connector: Arc::new(InMemoryConnector::new()),
            tcp_origin,
        }
    }
}

#[async_trait]
impl ProxyHttp for VirtualProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let host = session.get_header("host").and_then(|h| h.to_str().ok());
        if host.is_some_and(|h| h.split(':').next() == Some(VIRTUAL_HOST)) {
            let mut options = PeerOptions::new();
            options.custom_l4 =
                Some(Arc::clone(&self.connector) as Arc<dyn L4Connect + Send + Sync>);
            let peer = HttpPeer {
                _address: L4SocketAddr::Inet(VIRTUAL_PEER.parse().expect("a socket address")),
                scheme: Scheme::HTTP,
                sni: String::new(),
                proxy: None,
                client_cert_key: None,
                // Connections made by this connector are kept apart from any other peer's.
                group_key: 0x7669_7274,
                options,
            };
            return Ok(Box::new(peer));
        }
        Ok(Box::new(HttpPeer::new(
            self.tcp_origin,
            false,
            String::new(),
        )))
    }
}
