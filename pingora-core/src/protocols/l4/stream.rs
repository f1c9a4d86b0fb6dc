//! The L4 stream: a TCP, Unix-domain or [virtual](super::virt) connection with its digests
//! and an optional write buffer.

use std::io::{self, IoSlice};
use std::os::unix::io::{AsRawFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use crate::protocols::digest::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, ProxyDigest, SocketDigest, TimingDigest,
};
use crate::protocols::{Peek, Shutdown, Ssl, UniqueID, UniqueIDType};

use super::virt::{VirtualSockOpt, VirtualSocketStream};

/// Buffer sizes of an L4 stream.
///
/// Reads are not buffered here: the protocol layers above keep their own read buffers, so a
/// second copy would only cost time. `read` is kept for compatibility and as a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L4BufferSettings {
    /// Read buffer size hint.
    pub read: Option<usize>,
    /// Write buffer size: writes smaller than this are gathered until a flush or until the
    /// buffer is full. `None` or 0 writes straight through.
    pub write: Option<usize>,
}

impl L4BufferSettings {
    /// Settings with the given sizes.
    pub fn new(read: Option<usize>, write: Option<usize>) -> Self {
        L4BufferSettings { read, write }
    }

    /// No buffering: every write goes straight to the socket.
    pub fn unbuffered() -> Self {
        L4BufferSettings {
            read: None,
            write: None,
        }
    }
}

impl Default for L4BufferSettings {
    /// 64 KiB read hint and a write buffer of one TCP segment (1460 bytes), so that small
    /// writes followed by a flush leave in one packet.
    fn default() -> Self {
        L4BufferSettings {
            read: Some(64 * 1024),
            write: Some(1460),
        }
    }
}

#[derive(Debug)]
enum RawStream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Virtual(VirtualSocketStream),
}

macro_rules! with_raw {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            RawStream::Tcp($s) => $body,
            RawStream::Unix($s) => $body,
            RawStream::Virtual($s) => $body,
        }
    };
}

impl RawStream {
    /// The file descriptor; `-1` for a virtual stream, which has none.
    fn fd(&self) -> RawFd {
        match self {
            RawStream::Tcp(s) => s.as_raw_fd(),
            RawStream::Unix(s) => s.as_raw_fd(),
            RawStream::Virtual(_) => -1,
        }
    }
}

/// A TCP, Unix-domain or [virtual](super::virt) connection.
///
/// A virtual stream has no file descriptor: [`as_raw_fd`](AsRawFd::as_raw_fd) and
/// [`id`](UniqueID::id) are `-1`, and it has no socket digest until one is set.
///
/// Writes go through a small buffer when [`L4BufferSettings::write`] is set: call `flush` after
/// writing a message, as with any buffered writer. Dropping the stream discards unflushed data.
#[derive(Debug)]
pub struct Stream {
    raw: RawStream,
    write_buf: BytesMut,
    write_buf_cap: usize,
    established_ts: SystemTime,
    socket_digest: Option<Arc<SocketDigest>>,
    proxy_digest: Option<Arc<ProxyDigest>>,
    write_pending: PendingTime,
}

/// Time spent with writes pending: from a write that could not proceed to the one that did.
/// The clock is read only on those transitions, never on a write that proceeds at once.
#[derive(Debug, Default)]
struct PendingTime {
    since: Option<std::time::Instant>,
    total: std::time::Duration,
}

impl PendingTime {
    fn track<T>(&mut self, poll: Poll<T>) -> Poll<T> {
        match (&poll, self.since) {
            (Poll::Pending, None) => self.since = Some(std::time::Instant::now()),
            (Poll::Ready(_), Some(since)) => {
                self.total += since.elapsed();
                self.since = None;
            }
            _ => {}
        }
        poll
    }
}

impl Stream {
    fn from_raw(raw: RawStream) -> Self {
        let socket_digest = match &raw {
            RawStream::Virtual(_) => None,
            socket => Some(Arc::new(SocketDigest::from_raw_fd(socket.fd()))),
        };
        Stream {
            raw,
            write_buf: BytesMut::new(),
            write_buf_cap: 0,
            established_ts: SystemTime::now(),
            socket_digest,
            proxy_digest: None,
            write_pending: PendingTime::default(),
        }
    }

    /// Applies buffer settings. Data already buffered is kept.
    pub fn set_buffer(&mut self, settings: L4BufferSettings) {
        self.write_buf_cap = settings.write.unwrap_or(0);
        if self.write_buf_cap > 0 && self.write_buf.capacity() < self.write_buf_cap {
            self.write_buf
                .reserve(self.write_buf_cap - self.write_buf.len());
        }
    }

    /// Turns Nagle's algorithm off: on a TCP stream, or as [`VirtualSockOpt::NoDelay`] on a
    /// virtual one. Nothing on a Unix-domain stream.
    pub fn set_nodelay(&mut self) -> pingora_error::Result<()> {
        use pingora_error::{ErrorType, OrErr};
        match &self.raw {
            RawStream::Tcp(s) => s
                .set_nodelay(true)
                .or_err(ErrorType::SocketError, "failed to set TCP_NODELAY"),
            RawStream::Virtual(s) => s.set_socket_option(VirtualSockOpt::NoDelay).or_err(
                ErrorType::SocketError,
                "failed to set no-delay on a virtual socket",
            ),
            RawStream::Unix(_) => Ok(()),
        }
    }

    /// Turns keepalive probing on: on a TCP stream, or as [`VirtualSockOpt::KeepAlive`] on a
    /// virtual one. Nothing on a Unix-domain stream.
    pub fn set_keepalive(&mut self, ka: &super::ext::TcpKeepalive) -> pingora_error::Result<()> {
        use pingora_error::{ErrorType, OrErr};
        match &self.raw {
            RawStream::Tcp(s) => super::ext::set_tcp_keepalive(s, ka),
            RawStream::Virtual(s) => s
                .set_socket_option(VirtualSockOpt::KeepAlive(ka.clone()))
                .or_err(
                    ErrorType::SocketError,
                    "failed to set keepalive on a virtual socket",
                ),
            RawStream::Unix(_) => Ok(()),
        }
    }

    /// When the connection was established (accepted or connected).
    pub fn established_ts(&self) -> SystemTime {
        self.established_ts
    }

    /// The TCP stream, if this is one.
    pub fn as_tcp(&self) -> Option<&TcpStream> {
        match &self.raw {
            RawStream::Tcp(s) => Some(s),
            RawStream::Unix(_) | RawStream::Virtual(_) => None,
        }
    }

    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.write_buf.is_empty() {
            let n =
                ready!(with_raw!(&mut self.raw, s => Pin::new(s).poll_write(cx, &self.write_buf)))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.write_buf.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl From<TcpStream> for Stream {
    fn from(s: TcpStream) -> Self {
        Stream::from_raw(RawStream::Tcp(s))
    }
}

impl From<UnixStream> for Stream {
    fn from(s: UnixStream) -> Self {
        Stream::from_raw(RawStream::Unix(s))
    }
}

impl From<VirtualSocketStream> for Stream {
    /// A stream over a virtual socket, established now, with no socket digest.
    fn from(s: VirtualSocketStream) -> Self {
        Stream::from_raw(RawStream::Virtual(s))
    }
}

impl AsRawFd for Stream {
    /// The socket's file descriptor, or `-1` for a virtual stream.
    fn as_raw_fd(&self) -> RawFd {
        self.raw.fd()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        with_raw!(&mut self.get_mut().raw, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = this.write_inner(cx, buf);
        this.write_pending.track(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = this.write_vectored_inner(cx, bufs);
        this.write_pending.track(poll)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = this.flush_inner(cx);
        this.write_pending.track(poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        with_raw!(&mut this.raw, s => Pin::new(s).poll_shutdown(cx))
    }
}

impl Stream {
    fn write_inner(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.write_buf_cap == 0 {
            return with_raw!(&mut self.raw, s => Pin::new(s).poll_write(cx, buf));
        }
        if self.write_buf.len() + buf.len() > self.write_buf_cap {
            ready!(self.poll_drain(cx))?;
        }
        if buf.len() >= self.write_buf_cap {
            return with_raw!(&mut self.raw, s => Pin::new(s).poll_write(cx, buf));
        }
        self.write_buf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn write_vectored_inner(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if self.write_buf_cap > 0 && self.write_buf.len() + total <= self.write_buf_cap {
            for b in bufs {
                self.write_buf.extend_from_slice(b);
            }
            return Poll::Ready(Ok(total));
        }
        ready!(self.poll_drain(cx))?;
        with_raw!(&mut self.raw, s => Pin::new(s).poll_write_vectored(cx, bufs))
    }

    fn flush_inner(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        with_raw!(&mut self.raw, s => Pin::new(s).poll_flush(cx))
    }
}

#[async_trait]
impl Shutdown for Stream {
    async fn shutdown(&mut self) {
        if let Err(e) = AsyncWriteExt::shutdown(self).await {
            log::debug!("error shutting down L4 stream: {e}");
        }
    }
}

impl UniqueID for Stream {
    /// The file descriptor, or `-1` for a virtual stream: not unique among virtual streams.
    fn id(&self) -> UniqueIDType {
        self.raw.fd()
    }
}

impl Ssl for Stream {}

impl GetTimingDigest for Stream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        vec![Some(TimingDigest {
            established_ts: self.established_ts,
        })]
    }

    fn get_write_pending_time(&self) -> std::time::Duration {
        self.write_pending.total
    }
}

impl GetProxyDigest for Stream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.proxy_digest.clone()
    }

    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.proxy_digest = Some(Arc::new(digest));
    }
}

impl GetSocketDigest for Stream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.socket_digest.clone()
    }

    fn set_socket_digest(&mut self, socket_digest: SocketDigest) {
        self.socket_digest = Some(Arc::new(socket_digest));
    }
}

#[async_trait]
impl Peek for Stream {
    /// Waits for data, then peeks once. Returns `Ok(true)` if `buf` was filled. Only TCP
    /// streams can peek; others return `Ok(false)` at once.
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        match &mut self.raw {
            RawStream::Tcp(s) => Ok(s.peek(buf).await? == buf.len()),
            RawStream::Unix(_) | RawStream::Virtual(_) => Ok(false),
        }
    }

    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &self.raw {
            RawStream::Tcp(s) => s.poll_read_ready(cx),
            RawStream::Unix(s) => s.poll_read_ready(cx),
            RawStream::Virtual(_) => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    async fn pair() -> (Stream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (Stream::from(server), client)
    }

    #[tokio::test]
    async fn buffered_writes_wait_for_flush() {
        let (mut stream, mut client) = pair().await;
        stream.set_buffer(L4BufferSettings::default());
        stream.write_all(b"hello ").await.unwrap();
        stream.write_all(b"world").await.unwrap();
        // Nothing is sent before the flush.
        let mut byte = [0u8; 1];
        let early =
            tokio::time::timeout(std::time::Duration::from_millis(50), client.read(&mut byte))
                .await;
        assert!(early.is_err(), "data arrived before flush");
        stream.flush().await.unwrap();
        let mut buf = [0u8; 11];
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello world");
    }

    #[tokio::test]
    async fn large_and_vectored_writes() {
        let (mut stream, mut client) = pair().await;
        stream.set_buffer(L4BufferSettings::default());
        stream.write_all(b"head").await.unwrap();
        let big = vec![7u8; 10_000];
        stream.write_all(&big).await.unwrap();
        let bufs = [IoSlice::new(b"a"), IoSlice::new(b"b")];
        let n = stream.write_vectored(&bufs).await.unwrap();
        assert_eq!(n, 2);
        stream.flush().await.unwrap();
        let mut out = vec![0u8; 4 + 10_000 + 2];
        client.read_exact(&mut out).await.unwrap();
        assert_eq!(&out[..4], b"head");
        assert!(out[4..10_004].iter().all(|&b| b == 7));
        assert_eq!(&out[10_004..], b"ab");
    }

    #[tokio::test]
    async fn unbuffered_and_digests() {
        let (mut stream, mut client) = pair().await;
        stream.write_all(b"x").await.unwrap();
        let mut b = [0u8; 1];
        client.read_exact(&mut b).await.unwrap();
        let digest = stream.get_socket_digest().unwrap();
        assert_eq!(
            digest.local_addr().and_then(|a| a.as_inet().copied()),
            client.peer_addr().ok()
        );
        assert_eq!(
            digest.peer_addr().and_then(|a| a.as_inet().copied()),
            client.local_addr().ok()
        );
        assert!(stream.id() > 0);
        assert_eq!(stream.get_timing_digest().len(), 1);
        client.write_all(b"peek").await.unwrap();
        let mut peek = [0u8; 4];
        assert!(stream.try_peek(&mut peek).await.unwrap());
        let mut read = [0u8; 4];
        stream.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"peek");
    }

    /// Polls `stream`'s read readiness once, without waiting.
    fn read_ready_now(stream: &mut Stream) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        stream.poll_read_ready(&mut cx).is_ready()
    }

    #[tokio::test]
    async fn read_readiness_waits_for_bytes_or_the_end() {
        let (mut stream, mut client) = pair().await;
        // Nothing sent: once a read has found nothing, readiness waits.
        let mut buf = [0u8; 8];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut read = ReadBuf::new(&mut buf);
        assert!(Pin::new(&mut stream)
            .poll_read(&mut cx, &mut read)
            .is_pending());
        assert!(!read_ready_now(&mut stream));
        client.write_all(b"GET").await.unwrap();
        std::future::poll_fn(|cx| stream.poll_read_ready(cx))
            .await
            .unwrap();
        let mut got = [0u8; 3];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"GET");
        // The peer's close makes it ready too (the read then returns 0).
        drop(client);
        std::future::poll_fn(|cx| stream.poll_read_ready(cx))
            .await
            .unwrap();
        assert_eq!(stream.read(&mut got).await.unwrap(), 0);
    }
}
