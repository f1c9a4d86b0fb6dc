//! Virtual streams over a real byte stream (a tokio duplex pipe): reading, writing, socket
//! options, what they say about themselves, and how the connectors and the pool treat them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

use pingora_error::{ErrorType, Result};
use pingora_pool::{IdleCheck, IdleState};

use super::*;
use crate::connectors::{L4Connect, TransportConnector};
use crate::protocols::l4::socket::SocketAddr;
use crate::protocols::l4::stream::{L4BufferSettings, Stream};
use crate::protocols::{GetSocketDigest, GetTimingDigest, Peek, UniqueID};
use crate::upstreams::peer::{HttpPeer, Peer};

/// Bound on anything that should happen at once.
const PROMPTLY: Duration = Duration::from_secs(5);

/// The options a [`Pipe`] was asked to set, in order.
type Options = Arc<Mutex<Vec<String>>>;

/// One end of a duplex pipe as a virtual socket, recording the options set on it.
#[derive(Debug)]
struct Pipe {
    end: DuplexStream,
    options: Options,
    /// Refuse every option with this error kind.
    refuse: Option<std::io::ErrorKind>,
    /// Claim vectored writes (a duplex pipe has none), counting them.
    vectored: Option<Arc<AtomicUsize>>,
}

impl Pipe {
    /// A virtual socket and the far end of its pipe.
    fn pair() -> (Pipe, DuplexStream, Options) {
        let (near, far) = tokio::io::duplex(64 * 1024);
        let options = Options::default();
        let pipe = Pipe {
            end: near,
            options: Arc::clone(&options),
            refuse: None,
            vectored: None,
        };
        (pipe, far, options)
    }
}

impl AsyncRead for Pipe {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.end).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pipe {
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
        if let Some(count) = &self.vectored {
            count.fetch_add(1, Ordering::SeqCst);
        }
        // Writes every slice, as a vectored socket write would.
        let joined: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        Pin::new(&mut self.end).poll_write(cx, &joined)
    }

    fn is_write_vectored(&self) -> bool {
        self.vectored.is_some()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.end).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.end).poll_shutdown(cx)
    }
}

impl VirtualSocket for Pipe {
    fn set_socket_option(&self, opt: VirtualSockOpt) -> io::Result<()> {
        if let Some(kind) = self.refuse {
            return Err(kind.into());
        }
        let name = match opt {
            VirtualSockOpt::NoDelay => "nodelay".to_string(),
            VirtualSockOpt::KeepAlive(ka) => format!("keepalive {ka}"),
        };
        self.options.lock().unwrap().push(name);
        Ok(())
    }
}

fn stream_of(pipe: Pipe) -> Stream {
    Stream::from(VirtualSocketStream::new(Box::new(pipe)))
}

fn keepalive() -> TcpKeepalive {
    TcpKeepalive {
        idle: Duration::from_secs(30),
        interval: Duration::from_secs(5),
        count: 3,
        user_timeout: Duration::ZERO,
    }
}

#[tokio::test]
async fn bytes_pass_both_ways_and_shutdown_reaches_the_far_end() {
    let (pipe, mut far, _) = Pipe::pair();
    let mut stream = stream_of(pipe);
    stream.write_all(b"ping").await.unwrap();
    stream.flush().await.unwrap();
    let mut got = [0u8; 4];
    far.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"ping");

    far.write_all(b"pong").await.unwrap();
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"pong");

    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    assert_eq!(far.read_to_end(&mut rest).await.unwrap(), 0);
    drop(far);
    assert_eq!(stream.read(&mut got).await.unwrap(), 0, "end of stream");
}

#[tokio::test]
async fn buffered_writes_wait_for_flush() {
    let (pipe, mut far, _) = Pipe::pair();
    let mut stream = stream_of(pipe);
    stream.set_buffer(L4BufferSettings::default());
    stream.write_all(b"hello ").await.unwrap();
    stream.write_all(b"world").await.unwrap();
    let mut byte = [0u8; 1];
    let early = tokio::time::timeout(Duration::from_millis(50), far.read(&mut byte)).await;
    assert!(early.is_err(), "data arrived before the flush");
    stream.flush().await.unwrap();
    let mut got = [0u8; 11];
    far.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"hello world");
}

#[tokio::test]
async fn vectored_writes_go_to_the_socket() {
    let (mut pipe, mut far, _) = Pipe::pair();
    let count = Arc::new(AtomicUsize::new(0));
    pipe.vectored = Some(Arc::clone(&count));
    let wrapped = VirtualSocketStream::new(Box::new(pipe));
    assert!(wrapped.is_write_vectored());
    let mut stream = Stream::from(wrapped);
    let bufs = [IoSlice::new(b"head "), IoSlice::new(b"body")];
    assert_eq!(stream.write_vectored(&bufs).await.unwrap(), 9);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    let mut got = [0u8; 9];
    far.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"head body");

    let (plain, _far, _) = Pipe::pair();
    assert!(!VirtualSocketStream::new(Box::new(plain)).is_write_vectored());
}

#[tokio::test]
async fn nodelay_and_keepalive_become_socket_options() {
    let (pipe, _far, options) = Pipe::pair();
    let wrapped = VirtualSocketStream::new(Box::new(pipe));
    wrapped.set_socket_option(VirtualSockOpt::NoDelay).unwrap();
    let mut stream = Stream::from(wrapped);
    stream.set_nodelay().unwrap();
    stream.set_keepalive(&keepalive()).unwrap();
    assert_eq!(
        *options.lock().unwrap(),
        ["nodelay", "nodelay", "keepalive 30s/5s/3/0ns"]
    );
}

#[tokio::test]
async fn refused_options_are_socket_errors() {
    let (mut pipe, _far, options) = Pipe::pair();
    pipe.refuse = Some(io::ErrorKind::Unsupported);
    let wrapped = VirtualSocketStream::new(Box::new(pipe));
    let e = wrapped
        .set_socket_option(VirtualSockOpt::NoDelay)
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported);
    let mut stream = Stream::from(wrapped);
    assert_eq!(
        stream.set_nodelay().unwrap_err().etype(),
        &ErrorType::SocketError
    );
    let e = stream.set_keepalive(&keepalive()).unwrap_err();
    assert_eq!(e.etype(), &ErrorType::SocketError);
    assert!(options.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_virtual_stream_has_no_fd_and_no_socket_digest() {
    let (pipe, mut far, _) = Pipe::pair();
    let mut stream = stream_of(pipe);
    assert_eq!(std::os::unix::io::AsRawFd::as_raw_fd(&stream), -1);
    assert_eq!(stream.id(), -1);
    assert!(stream.as_tcp().is_none());
    assert!(stream.get_socket_digest().is_none());
    assert_eq!(stream.get_timing_digest().len(), 1);
    far.write_all(b"data").await.unwrap();
    let mut peek = [0u8; 4];
    assert!(!stream.try_peek(&mut peek).await.unwrap(), "cannot peek");
    let mut got = [0u8; 4];
    stream.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"data", "nothing was consumed by the peek");

    // A digest recorded for it (as the connectors do) answers without a socket.
    stream.set_socket_digest(crate::protocols::SocketDigest::from_raw_fd(stream.id()));
    let digest = stream.get_socket_digest().unwrap();
    assert!(digest.peer_addr().is_none());
    assert!(digest.local_addr().is_none());
    assert!(digest.original_dst().is_none());
    assert!(digest.tcp_info().is_none());
    assert!(digest.get_recv_buf().is_none());
}

// === through the connectors ===

/// Makes every connection a pipe whose far end goes to `far_ends`.
#[derive(Debug)]
struct PipeConnector {
    far_ends: tokio::sync::mpsc::UnboundedSender<DuplexStream>,
    options: Options,
    connects: AtomicUsize,
}

#[async_trait]
impl L4Connect for PipeConnector {
    async fn connect(&self, _addr: &SocketAddr) -> Result<Stream> {
        self.connects.fetch_add(1, Ordering::SeqCst);
        let (mut pipe, far, _) = Pipe::pair();
        pipe.options = Arc::clone(&self.options);
        // A closed receiver only means the test is over.
        let _ = self.far_ends.send(far);
        Ok(stream_of(pipe))
    }
}

/// A peer at an address nothing listens on, reached through a [`PipeConnector`].
fn piped_peer() -> (
    HttpPeer,
    Arc<PipeConnector>,
    tokio::sync::mpsc::UnboundedReceiver<DuplexStream>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let connector = Arc::new(PipeConnector {
        far_ends: tx,
        options: Options::default(),
        connects: AtomicUsize::new(0),
    });
    let mut peer = HttpPeer::new("192.0.2.1:80", false, String::new());
    peer.options.custom_l4 = Some(Arc::clone(&connector) as Arc<dyn L4Connect + Send + Sync>);
    peer.options.tcp_keepalive = Some(keepalive());
    (peer, connector, rx)
}

#[tokio::test]
async fn connectors_apply_options_and_record_the_peer_address() {
    let (peer, connector, mut far_ends) = piped_peer();
    let mut stream = TransportConnector::new(None)
        .new_stream(&peer)
        .await
        .unwrap();
    assert_eq!(
        *connector.options.lock().unwrap(),
        ["keepalive 30s/5s/3/0ns", "nodelay"]
    );
    let digest = stream.get_socket_digest().unwrap();
    assert_eq!(digest.peer_addr(), Some(peer.address()));
    assert!(digest.local_addr().is_none());
    assert_eq!(stream.id(), -1);
    let mut far = far_ends.recv().await.unwrap();
    stream.write_all(b"x").await.unwrap();
    stream.flush().await.unwrap();
    let mut got = [0u8; 1];
    far.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"x");
}

#[tokio::test]
async fn idle_virtual_streams_are_pooled_reused_and_dropped_when_closed() {
    let (peer, connector, mut far_ends) = piped_peer();
    let transport = TransportConnector::new(None);
    let key = peer.reuse_hash();

    // Two connections idle at once, both with id -1: each is kept and handed out once.
    let (first, reused) = transport.get_stream(&peer).await.unwrap();
    assert!(!reused);
    let (second, reused) = transport.get_stream(&peer).await.unwrap();
    assert!(!reused);
    let mut fars = vec![
        far_ends.recv().await.unwrap(),
        far_ends.recv().await.unwrap(),
    ];
    transport.release_stream(first, key, None);
    transport.release_stream(second, key, None);
    let (mut a, reused_a) = transport.get_stream(&peer).await.unwrap();
    let (mut b, reused_b) = transport.get_stream(&peer).await.unwrap();
    assert!(reused_a && reused_b);
    assert_eq!(connector.connects.load(Ordering::SeqCst), 2);
    // They are the two pipes made before, one each.
    a.write_all(b"a").await.unwrap();
    a.flush().await.unwrap();
    b.write_all(b"b").await.unwrap();
    b.flush().await.unwrap();
    let mut seen = Vec::new();
    for far in &mut fars {
        let mut byte = [0u8; 1];
        far.read_exact(&mut byte).await.unwrap();
        seen.push(byte[0]);
    }
    seen.sort_unstable();
    assert_eq!(seen, b"ab");

    // A connection whose far end closed while idle is not handed out again.
    transport.release_stream(a, key, None);
    drop(fars);
    let (_fresh, reused) = tokio::time::timeout(PROMPTLY, transport.get_stream(&peer))
        .await
        .unwrap()
        .unwrap();
    assert!(!reused, "a closed virtual connection was reused");
    assert_eq!(connector.connects.load(Ordering::SeqCst), 3);
    drop(b);
}

#[tokio::test]
async fn the_idle_check_of_a_virtual_stream_needs_no_socket() {
    let (pipe, mut far, _) = Pipe::pair();
    let mut stream: crate::protocols::Stream = Box::new(stream_of(pipe));
    assert!(matches!(stream.check_idle(true), IdleState::Clean));
    far.write_all(b"!").await.unwrap();
    assert!(matches!(stream.check_idle(true), IdleState::Data));

    let (pipe, far, _) = Pipe::pair();
    let mut stream: crate::protocols::Stream = Box::new(stream_of(pipe));
    drop(far);
    assert!(matches!(stream.check_idle(false), IdleState::Closed));
}
