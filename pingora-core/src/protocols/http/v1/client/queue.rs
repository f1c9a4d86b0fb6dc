//! Request body queued while the response is read: an upstream that answers while it reads
//! (a streaming echo, say) must never wait for us while we wait for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use log::debug;
use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::sync::Notify;

use tokio::io::AsyncReadExt;

use super::super::io::{make_room_for, read_at_most, read_more_sized};

use super::HttpSession;

impl HttpSession {
    /// Queues a piece of request body (the end of the body too, with `end`) without waiting
    /// for it to be written: queued bytes are written while the response is read
    /// ([`read_response`](Self::read_response), [`read_body_bytes`](Self::read_body_bytes) and
    /// [`read_response_task`](Self::read_response_task)), so that an upstream answering while
    /// it reads (a streaming echo, say) never waits for us while we wait for it. Check
    /// [`queued_len`](Self::queued_len) to bound the memory used.
    ///
    /// If the upstream stops reading (it answered early and closed), the rest of the body is
    /// discarded and the connection is not reused; the response decides the outcome. If it
    /// takes none of the queued bytes for the [write timeout](Self::write_timeout), the read
    /// writing them fails with [`ErrorType::WriteTimedout`].
    ///
    /// # Errors
    /// As [`write_body`](Self::write_body), for framing errors.
    pub fn queue_body(&mut self, data: &[u8], end: bool) -> Result<()> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "request body before its head");
        };
        if encoder.is_finished() {
            return Ok(());
        }
        if !data.is_empty() && encoder.is_length_complete() && !encoder.is_until_close() {
            self.broken = true;
            return Error::e_explain(
                ErrorType::InternalError,
                "request body longer than its head announced",
            );
        }
        let frame = encoder
            .encode(data.len())
            .inspect_err(|_| self.broken = true)?;
        let mut tail = Vec::new();
        let finished = if end {
            Some(encoder.finish(None, &mut tail))
        } else {
            None
        };
        if !self.queue_failed {
            self.queued.extend_from_slice(frame.prefix());
            self.queued.extend_from_slice(&data[..frame.data_len]);
            self.queued.extend_from_slice(frame.suffix);
            self.queued.extend_from_slice(&tail);
        }
        if let Some(Err(e)) = finished {
            self.broken = true;
            return Err(e);
        }
        if end && self.upgraded {
            self.half_close_queued = true;
        }
        Ok(())
    }

    /// Queues the end of the request body with `trailers`, like
    /// [`queue_body`](Self::queue_body) with `end`: the trailers go after every byte queued
    /// before them. A chunked body ends with them (`0\r\nName: value\r\n\r\n`); a body framed
    /// by `Content-Length` has nowhere to carry them, so they are dropped, as RFC 9110
    /// section 6.5 allows. Nothing is queued if the body already ended.
    ///
    /// The fields are written as given: leave out those that must not travel as trailers.
    ///
    /// # Errors
    /// Before the head; a body shorter than its `Content-Length`.
    pub fn queue_trailers(&mut self, trailers: &http::HeaderMap) -> Result<()> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "request trailers before the head");
        };
        if encoder.is_finished() {
            return Ok(());
        }
        let mut tail = Vec::new();
        let finished = encoder.finish(Some(trailers), &mut tail);
        if !self.queue_failed {
            self.queued.extend_from_slice(&tail);
        }
        if self.upgraded {
            self.half_close_queued = true;
        }
        finished.inspect_err(|_| self.broken = true)
    }

    /// Ends the request body with `trailers` and writes what is still queued. See
    /// [`queue_trailers`](Self::queue_trailers) for when trailers are sent.
    ///
    /// # Errors
    /// As [`queue_trailers`](Self::queue_trailers), and a failed write.
    pub async fn write_trailers(&mut self, trailers: &http::HeaderMap) -> Result<()> {
        self.queue_trailers(trailers)?;
        self.flush_pending().await
    }

    /// Bytes of request queued by [`queue_body`](Self::queue_body) and not written yet.
    pub fn queued_len(&self) -> usize {
        self.queued.len()
    }

    /// A notification given once the queued request body is down to `len` bytes or fewer, as
    /// a response read writes it out: lets a caller that stopped queueing at a limit wait for
    /// room while it also waits for the response.
    pub fn notify_queue_below(&mut self, len: usize) -> Arc<Notify> {
        let notify = match &self.queue_watch {
            Some((notify, _)) => Arc::clone(notify),
            None => Arc::new(Notify::new()),
        };
        self.queue_watch = Some((Arc::clone(&notify), len));
        notify
    }

    /// Reads more of the response into the buffer, writing queued request bytes meanwhile:
    /// about `chunk` bytes, or at most `limit` when set.
    pub(super) async fn read_and_flush(
        &mut self,
        chunk: usize,
        limit: Option<usize>,
    ) -> Result<usize> {
        if self.queued.is_empty() && !self.half_close_queued {
            return match limit {
                Some(limit) => read_at_most(&mut self.stream, &mut self.buf, limit).await,
                None => read_more_sized(&mut self.stream, &mut self.buf, chunk).await,
            };
        }
        std::future::poll_fn(|cx| self.poll_read_and_flush(cx, chunk, limit)).await
    }

    fn poll_read_and_flush(
        &mut self,
        cx: &mut Context<'_>,
        chunk: usize,
        limit: Option<usize>,
    ) -> Poll<Result<usize>> {
        let mut progressed = false;
        while !self.queued.is_empty() {
            match Pin::new(&mut *self.stream).poll_write(cx, &self.queued) {
                Poll::Ready(Ok(n)) if n > 0 => {
                    bytes::Buf::advance(&mut self.queued, n);
                    progressed = true;
                }
                Poll::Ready(result) => {
                    debug!("upstream stopped reading the request body: {result:?}");
                    self.queued.clear();
                    self.queue_failed = true;
                    self.broken = true;
                }
                Poll::Pending => break,
            }
        }
        if let Some((notify, len)) = &self.queue_watch {
            if self.queued.len() <= *len {
                notify.notify_one();
            }
        }
        if let Poll::Ready(e) = self.poll_queue_stall(cx, progressed) {
            return Poll::Ready(Err(e));
        }
        if self.queued.is_empty() {
            // Nothing is buffered in plain TCP; other transports may need the push.
            let _ = Pin::new(&mut *self.stream).poll_flush(cx);
            if self.half_close_queued {
                if let Poll::Ready(result) = Pin::new(&mut *self.stream).poll_shutdown(cx) {
                    if let Err(e) = result {
                        debug!("failed to half-close an upgraded connection: {e}");
                    }
                    self.half_close_queued = false;
                }
            }
        }
        let read = match limit {
            Some(limit) => {
                make_room_for(&mut self.buf, limit);
                let mut limited = (&mut self.stream).take(limit as u64);
                std::pin::pin!(limited.read_buf(&mut self.buf)).poll(cx)
            }
            None => {
                if self.buf.capacity() - self.buf.len() < chunk / 4 {
                    self.buf.reserve(chunk);
                }
                std::pin::pin!(self.stream.read_buf(&mut self.buf)).poll(cx)
            }
        };
        read.map(|r| r.or_err(ErrorType::ReadError, "while reading"))
    }

    /// Bounds, by the write timeout, how long queued request bytes may wait for the upstream
    /// to take any of them; each byte taken starts the wait again. Ready with the error once
    /// the time is up.
    fn poll_queue_stall(&mut self, cx: &mut Context<'_>, progressed: bool) -> Poll<Box<Error>> {
        let Some(limit) = self.write_timeout.filter(|_| !self.queued.is_empty()) else {
            self.queue_stall = None;
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::now() + limit;
        let stall = match &mut self.queue_stall {
            Some(stall) => {
                if progressed {
                    stall.as_mut().reset(deadline);
                }
                stall
            }
            None => self
                .queue_stall
                .insert(Box::pin(tokio::time::sleep_until(deadline))),
        };
        if stall.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.queue_stall = None;
        self.broken = true;
        let why = format!("the upstream took none of the request body for {limit:?}");
        Poll::Ready(Error::explain(ErrorType::WriteTimedout, why).into_up())
    }
}
