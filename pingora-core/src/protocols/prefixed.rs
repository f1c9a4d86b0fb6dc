//! A stream with bytes pushed back in front of it.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Peek, Stream};

/// A [`Stream`] whose first reads return `prefix`: bytes that were read from it already but
/// belong to whoever reads it next (the start of a pipelined request, or the HTTP/2 preface
/// after HTTP/1 parsing looked at it).
#[derive(Debug)]
pub struct PrefixedStream {
    prefix: Bytes,
    inner: Stream,
}

impl PrefixedStream {
    /// `inner`, with `prefix` to be read first.
    ///
    /// If `inner` is itself a `PrefixedStream`, the prefixes are joined rather than nested.
    pub fn prepend(inner: Stream, prefix: Bytes) -> Stream {
        if prefix.is_empty() {
            return inner;
        }
        if inner.as_any().is::<PrefixedStream>() {
            let mut existing = inner
                .into_any()
                .downcast::<PrefixedStream>()
                .expect("type checked just above");
            if existing.prefix.is_empty() {
                existing.prefix = prefix;
            } else {
                let mut joined = Vec::with_capacity(prefix.len() + existing.prefix.len());
                joined.extend_from_slice(&prefix);
                joined.extend_from_slice(&existing.prefix);
                existing.prefix = joined.into();
            }
            return existing;
        }
        Box::new(PrefixedStream { prefix, inner })
    }

    /// The stream under the prefix, and what is left of the prefix.
    pub fn into_parts(self) -> (Stream, Bytes) {
        (self.inner, self.prefix)
    }
}

impl AsyncRead for PrefixedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PrefixedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

crate::protocols::forward_stream_facts!(PrefixedStream, inner);

#[async_trait]
impl Peek for PrefixedStream {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        if self.prefix.len() >= buf.len() {
            buf.copy_from_slice(&self.prefix[..buf.len()]);
            return Ok(true);
        }
        Ok(false)
    }

    fn poll_read_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.prefix.is_empty() {
            self.inner.poll_read_ready(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn prefix_is_read_first_and_joins() {
        let (a, mut b) = tokio::io::duplex(64);
        let stream = PrefixedStream::prepend(Box::new(a), Bytes::from_static(b"world"));
        let mut stream = PrefixedStream::prepend(stream, Bytes::from_static(b"hello "));
        assert!(stream.as_any().is::<PrefixedStream>());
        b.write_all(b"!").await.unwrap();
        let mut out = [0u8; 12];
        stream.read_exact(&mut out).await.unwrap();
        assert_eq!(&out, b"hello world!");
        let unchanged = PrefixedStream::prepend(Box::new(tokio::io::duplex(1).0), Bytes::new());
        assert!(!unchanged.as_any().is::<PrefixedStream>());
    }
}
