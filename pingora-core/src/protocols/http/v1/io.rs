//! Reading and writing a [`Stream`] with optional deadlines, shared by the client and server
//! sessions.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::BytesMut;
use pin_project_lite::pin_project;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_timeout::fast_timeout::FastTimeout;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::protocols::Stream;

/// How much to grow the read buffer by when it is full, for message heads.
pub(crate) const READ_CHUNK: usize = 4096;

/// How much to grow the read buffer by when it is full, for bodies: large reads mean fewer
/// system calls for large bodies. Pieces handed out keep only what they hold.
pub(crate) const BODY_READ_CHUNK: usize = 64 * 1024;

/// Runs `fut`, bounded by `limit` if set. Expiry is an error of kind `on_timeout`.
///
/// A future rather than an `async fn`: an `async fn` would keep `fut` as an argument beside
/// the copy it awaits, doubling the size of every read and write future that goes through
/// here, and with them every future that awaits those (they are moved at each `.await`).
pub(crate) fn with_timeout<T, F>(
    limit: Option<Duration>,
    on_timeout: ErrorType,
    fut: F,
) -> WithTimeout<F>
where
    F: Future<Output = Result<T>>,
{
    match limit {
        None => WithTimeout::Unbounded { fut },
        Some(limit) => WithTimeout::Bounded {
            timed: pingora_timeout::timeout(limit, fut),
            limit,
            on_timeout,
        },
    }
}

pin_project! {
    /// The future of [`with_timeout`].
    #[project = WithTimeoutProj]
    pub(crate) enum WithTimeout<F> {
        Unbounded { #[pin] fut: F },
        Bounded {
            #[pin]
            timed: pingora_timeout::Timeout<F, FastTimeout>,
            limit: Duration,
            on_timeout: ErrorType,
        },
    }
}

impl<T, F> Future for WithTimeout<F>
where
    F: Future<Output = Result<T>>,
{
    type Output = Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        match self.project() {
            WithTimeoutProj::Unbounded { fut } => fut.poll(cx),
            WithTimeoutProj::Bounded {
                timed,
                limit,
                on_timeout,
            } => Poll::Ready(match ready!(timed.poll(cx)) {
                Ok(result) => result,
                Err(_) => {
                    Error::e_explain(on_timeout.clone(), format!("timed out after {limit:?}"))
                }
            }),
        }
    }
}

/// Reads whatever is available into `buf`, growing it if needed. Returns the number of bytes
/// read; 0 means the peer closed its side.
pub(crate) async fn read_more(stream: &mut Stream, buf: &mut BytesMut) -> Result<usize> {
    read_more_sized(stream, buf, READ_CHUNK).await
}

/// [`read_more`], making room for about `chunk` bytes.
pub(crate) async fn read_more_sized(
    stream: &mut Stream,
    buf: &mut BytesMut,
    chunk: usize,
) -> Result<usize> {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
    stream
        .read_buf(buf)
        .await
        .or_err(ErrorType::ReadError, "while reading")
}

/// Reads at most `limit` bytes into `buf`. An empty buffer short of room is replaced by one of
/// `limit` bytes rather than grown: pieces of the old one may still be queued elsewhere, and a
/// small read should not pin a large allocation while they are.
pub(crate) async fn read_at_most(
    stream: &mut Stream,
    buf: &mut BytesMut,
    limit: usize,
) -> Result<usize> {
    make_room_for(buf, limit);
    stream
        .take(limit as u64)
        .read_buf(buf)
        .await
        .or_err(ErrorType::ReadError, "while reading")
}

/// Makes room in `buf` for a read of at most `limit` bytes (see [`read_at_most`]).
pub(crate) fn make_room_for(buf: &mut BytesMut, limit: usize) {
    if buf.capacity() - buf.len() >= (limit / 4).max(1) {
        return;
    }
    if buf.is_empty() {
        *buf = BytesMut::with_capacity(limit);
    } else {
        buf.reserve(limit);
    }
}

/// Writes every byte of `parts`, with as few system calls as the stream allows, then flushes.
pub(crate) async fn write_all_vectored(stream: &mut Stream, parts: &mut [&[u8]]) -> Result<()> {
    let mut first = 0;
    while first < parts.len() {
        if parts[first].is_empty() {
            first += 1;
            continue;
        }
        let mut slices = [IoSlice::new(&[]); 8];
        let mut count = 0;
        for part in parts[first..]
            .iter()
            .filter(|p| !p.is_empty())
            .take(slices.len())
        {
            slices[count] = IoSlice::new(part);
            count += 1;
        }
        let mut written = stream
            .write_vectored(&slices[..count])
            .await
            .or_err(ErrorType::WriteError, "while writing")?;
        if written == 0 {
            return Error::e_explain(ErrorType::WriteError, "connection closed while writing");
        }
        while written > 0 {
            let part = &mut parts[first];
            let n = written.min(part.len());
            *part = &part[n..];
            written -= n;
            if part.is_empty() {
                first += 1;
            }
        }
    }
    stream
        .flush()
        .await
        .or_err(ErrorType::WriteError, "while flushing")
}

/// The time allowed for writing `len` bytes: the write timeout, stretched so that a peer
/// reading at `min_send_rate` bytes per second is not cut off.
pub(crate) fn write_deadline(
    write_timeout: Option<Duration>,
    min_send_rate: Option<usize>,
    len: usize,
) -> Option<Duration> {
    let by_rate = min_send_rate
        .filter(|&rate| rate > 0)
        .map(|rate| Duration::from_secs_f64(len as f64 / rate as f64));
    match (write_timeout, by_rate) {
        (Some(t), Some(r)) => Some(t.max(r)),
        (t, r) => t.or(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn vectored_write_survives_partial_writes() {
        // A tiny duplex buffer forces many partial writes.
        let (a, mut b) = tokio::io::duplex(7);
        let mut stream: Stream = Box::new(a);
        let reader = tokio::spawn(async move {
            let mut out = Vec::new();
            b.read_to_end(&mut out).await.unwrap();
            out
        });
        let big = vec![b'x'; 100];
        let mut parts: Vec<&[u8]> = vec![b"head ", b"", &big, b" tail"];
        write_all_vectored(&mut stream, &mut parts).await.unwrap();
        drop(stream);
        let out = reader.await.unwrap();
        assert_eq!(out.len(), 5 + 100 + 5);
        assert!(out.starts_with(b"head x"));
        assert!(out.ends_with(b"x tail"));
    }

    #[test]
    fn deadlines() {
        let s = Duration::from_secs;
        assert_eq!(write_deadline(None, None, 10), None);
        assert_eq!(write_deadline(Some(s(1)), None, 10), Some(s(1)));
        assert_eq!(write_deadline(None, Some(10), 100), Some(s(10)));
        assert_eq!(write_deadline(Some(s(20)), Some(10), 100), Some(s(20)));
        assert_eq!(write_deadline(Some(s(1)), Some(10), 100), Some(s(10)));
    }

    #[tokio::test]
    async fn timeout_maps_to_error_kind() {
        let r: Result<()> = with_timeout(
            Some(Duration::from_millis(10)),
            ErrorType::ReadTimedout,
            std::future::pending(),
        )
        .await;
        assert_eq!(r.unwrap_err().etype(), &ErrorType::ReadTimedout);
    }
}
