//! The request body of an HTTP/2 stream: queued by the caller, sent as the server's
//! flow-control window allows, while the response is read.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::SendStream;
use log::debug;
use pingora_error::{Error, ErrorType, OrErr, Result};
use tokio::sync::Notify;

use crate::protocols::http::v1::io::with_timeout;

/// The request body not sent yet, and the stream it goes out on.
#[derive(Default)]
pub(super) struct BodyQueue {
    pub(super) writer: Option<SendStream<Bytes>>,
    pub(super) pieces: VecDeque<Bytes>,
    pub(super) queued_len: usize,
    /// The end of the body was queued.
    pub(super) end_queued: bool,
    /// Trailers to end the request with, once the queued body is sent.
    pub(super) trailers: Option<http::HeaderMap>,
    /// `END_STREAM` was sent.
    pub(super) end_sent: bool,
    /// Sending failed (the server reset the stream): what is queued is discarded.
    pub(super) failed: bool,
    pub(super) sent: usize,
    pub(super) watch: Option<(Arc<Notify>, usize)>,
}

impl BodyQueue {
    pub(super) fn queue(&mut self, data: Bytes, end: bool) {
        if self.end_queued || self.failed {
            return;
        }
        if !data.is_empty() {
            self.queued_len += data.len();
            self.pieces.push_back(data);
        }
        self.end_queued = end;
    }

    /// Queues the end of the body with `trailers`, sent after the body queued before them.
    pub(super) fn queue_trailers(&mut self, trailers: http::HeaderMap) {
        if self.end_queued || self.failed {
            return;
        }
        self.trailers = Some(trailers);
        self.end_queued = true;
    }

    pub(super) fn notify_below(&mut self, len: usize) -> Arc<Notify> {
        let notify = Arc::new(Notify::new());
        if self.queued_len <= len {
            notify.notify_one();
        } else {
            self.watch = Some((notify.clone(), len));
        }
        notify
    }

    /// Whether there is something to send.
    pub(super) fn pending(&self) -> bool {
        !self.failed && (self.queued_len > 0 || (self.end_queued && !self.end_sent))
    }

    pub(super) fn discard(&mut self) {
        self.failed = true;
        self.pieces.clear();
        self.trailers = None;
        self.queued_len = 0;
        self.wake_watcher();
    }

    fn wake_watcher(&mut self) {
        if let Some((notify, below)) = &self.watch {
            if self.queued_len <= *below {
                notify.notify_one();
                self.watch = None;
            }
        }
    }

    /// Sends what is queued as the window allows; resolves once all is sent.
    ///
    /// Cancel-safe: a piece is removed from the queue only once handed to the stream.
    pub(super) async fn flush(&mut self) -> Result<()> {
        while self.pending() {
            if let Err(e) = self.send_some().await {
                self.discard();
                return Err(e);
            }
        }
        Ok(())
    }

    async fn send_some(&mut self) -> Result<()> {
        let writer = self.writer.as_mut().expect("queued only with a stream");
        let Some(piece) = self.pieces.front_mut() else {
            // Only the end is left.
            match self.trailers.take() {
                Some(trailers) => writer
                    .send_trailers(trailers)
                    .or_err(ErrorType::WriteError, "writing HTTP/2 request trailers")?,
                None => writer
                    .send_data(Bytes::new(), true)
                    .or_err(ErrorType::WriteError, "ending the HTTP/2 request body")?,
            }
            self.end_sent = true;
            return Ok(());
        };
        writer.reserve_capacity(self.queued_len);
        let mut granted = writer.capacity();
        if granted == 0 {
            granted = match poll_fn(|cx| writer.poll_capacity(cx)).await {
                Some(Ok(n)) => n,
                Some(Err(e)) => {
                    return Err(Error::because(
                        ErrorType::WriteError,
                        "waiting for HTTP/2 flow-control window",
                        e,
                    ))
                }
                None => return Error::e_explain(ErrorType::WriteError, "the HTTP/2 stream closed"),
            };
            if granted == 0 {
                return Ok(());
            }
        }
        let data = if granted >= piece.len() {
            self.pieces.pop_front().expect("looked at it")
        } else {
            piece.split_to(granted)
        };
        let len = data.len();
        let end = self.end_queued && self.pieces.is_empty() && self.trailers.is_none();
        writer
            .send_data(data, end)
            .or_err(ErrorType::WriteError, "writing the HTTP/2 request body")?;
        self.queued_len -= len;
        self.sent += len;
        self.end_sent |= end;
        self.wake_watcher();
        Ok(())
    }
}

/// Runs `read` while sending the queued request body. `read_limit` bounds the time without
/// progress: each piece of body sent starts it again, so a long upload is not cut short while
/// the server reads it before answering. `write_limit` bounds how long the queued body may
/// wait for flow-control window: a server that gives none for that long fails the read with
/// [`ErrorType::WriteTimedout`].
pub(super) async fn while_flushing<T>(
    body: &mut BodyQueue,
    read_limit: Option<Duration>,
    write_limit: Option<Duration>,
    read: impl Future<Output = T>,
) -> Result<T> {
    let mut read = pin!(read);
    loop {
        let step = async {
            if !body.pending() {
                return Ok(Some(read.as_mut().await));
            }
            let send = with_timeout(write_limit, ErrorType::WriteTimedout, body.send_some());
            tokio::select! {
                biased;
                out = read.as_mut() => Ok(Some(out)),
                sent = send => {
                    match sent {
                        Err(e) if e.etype() == &ErrorType::WriteTimedout => return Err(e),
                        Err(e) => {
                            debug!("request body not sent in full: {e}");
                            body.discard();
                        }
                        Ok(()) => {}
                    }
                    Ok(None)
                }
            }
        };
        if let Some(out) = with_timeout(read_limit, ErrorType::ReadTimedout, step).await? {
            return Ok(out);
        }
    }
}
