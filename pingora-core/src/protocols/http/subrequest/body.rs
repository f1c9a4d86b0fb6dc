//! The two halves of a subrequest's body handling: reading the request body from the tasks the
//! [`SubrequestHandle`](super::server::SubrequestHandle) sends, and keeping track of how much
//! of the response body may still be written.

use bytes::Bytes;
use http::HeaderMap;
use log::warn;
use pingora_error::{Error, ErrorType, Result};
use pingora_http_codec::h1::Framing;
use tokio::sync::{mpsc, oneshot};

use crate::protocols::http::HttpTask;

/// The error of a body that ended before the length its header announced.
pub(crate) const PREMATURE_BODY_END: ErrorType = ErrorType::new("PrematureBodyEnd");

/// Where the request body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// This many bytes are still to come (`Content-Length`).
    Length(usize),
    /// The body ends with an explicit end: a task with its end flag, `Trailer` or `Done`.
    /// The handle going away first is an error, like a chunked body cut short.
    UntilEnd,
    /// The body ends with an explicit end or when the handle stops sending (after a protocol
    /// switch, where the byte stream ends when its sender closes).
    UntilClose,
    /// No more body.
    Done,
}

/// Reads the subrequest's request body from the handle's task channel.
#[derive(Debug)]
pub(super) struct BodyReader {
    state: ReadState,
    /// Whether the request announced any body at all.
    has_body: bool,
    /// Request body bytes read so far.
    read: usize,
    /// Told (once) when the subrequest first asks for body, so the handle's owner knows to
    /// start feeding it.
    wants_body: Option<oneshot::Sender<()>>,
    trailers: Option<Box<HeaderMap>>,
}

impl BodyReader {
    /// A reader for a request body delimited by `framing`.
    pub(super) fn new(framing: Framing, wants_body: oneshot::Sender<()>) -> Self {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => ReadState::Done,
            Framing::Length(n) => ReadState::Length(usize::try_from(n).unwrap_or(usize::MAX)),
            Framing::Chunked => ReadState::UntilEnd,
            Framing::UntilClose => ReadState::UntilClose,
        };
        BodyReader {
            has_body: state != ReadState::Done,
            state,
            read: 0,
            wants_body: Some(wants_body),
            trailers: None,
        }
    }

    /// Whether the whole body was read.
    pub(super) fn is_done(&self) -> bool {
        self.state == ReadState::Done
    }

    /// Whether the request has no body.
    pub(super) fn is_empty(&self) -> bool {
        !self.has_body
    }

    /// Request body bytes read so far.
    pub(super) fn bytes_read(&self) -> usize {
        self.read
    }

    /// Treats the request as having no body, whatever is still to come.
    pub(super) fn close(&mut self) {
        if self.read == 0 {
            self.has_body = false;
        }
        self.state = ReadState::Done;
    }

    /// After a protocol switch: what follows is a byte stream that ends when the handle stops
    /// sending.
    pub(super) fn switch_to_until_close(&mut self) {
        self.has_body = true;
        self.state = ReadState::UntilClose;
    }

    /// The request trailers, once the body ended with them.
    pub(super) fn take_trailers(&mut self) -> Option<Box<HeaderMap>> {
        self.trailers.take()
    }

    /// Reads the next piece of the body from `rx`; `None` at its end.
    ///
    /// # Errors
    /// A body that ends before its announced length or before an explicit end, a `Failed`
    /// task (passed on), or a task that has no place in a request body.
    pub(super) async fn read(
        &mut self,
        rx: &mut mpsc::Receiver<HttpTask>,
    ) -> Result<Option<Bytes>> {
        if self.state == ReadState::Done {
            return Ok(None);
        }
        if let Some(wants_body) = self.wants_body.take() {
            // Nobody listening is fine: the body may be fed without waiting for the signal.
            let _ = wants_body.send(());
        }
        loop {
            let (data, end) = match rx.recv().await {
                Some(HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end)) => (data, end),
                Some(HttpTask::Trailer(trailers)) => {
                    self.trailers = trailers;
                    (None, true)
                }
                Some(HttpTask::Done) => (None, true),
                Some(HttpTask::Failed(e)) => {
                    self.state = ReadState::Done;
                    return Err(e.into_down());
                }
                Some(HttpTask::Header(..)) => {
                    self.state = ReadState::Done;
                    return Error::e_explain(
                        ErrorType::InternalError,
                        "subrequest: a response header was sent as request body",
                    );
                }
                None => return self.on_closed(),
            };
            let data = data.filter(|d| !d.is_empty());
            if data.is_none() && !end {
                continue;
            }
            return self.take_piece(data, end);
        }
    }

    /// Accounts for one piece of body (`end`: nothing follows it).
    fn take_piece(&mut self, data: Option<Bytes>, end: bool) -> Result<Option<Bytes>> {
        let mut data = data;
        if let ReadState::Length(remaining) = self.state {
            let len = data.as_ref().map_or(0, Bytes::len);
            if len > remaining {
                warn!(
                    "subrequest: {} request body bytes past Content-Length dropped",
                    len - remaining
                );
                data = data.map(|d| d.slice(..remaining));
            }
            let left = remaining - len.min(remaining);
            if left > 0 && end {
                self.state = ReadState::Done;
                return Error::e_explain(
                    PREMATURE_BODY_END,
                    format!("subrequest: request body ended {left} bytes short of Content-Length"),
                )
                .map_err(Error::into_down);
            }
            self.state = if left == 0 {
                ReadState::Done
            } else {
                ReadState::Length(left)
            };
        } else if end {
            self.state = ReadState::Done;
        }
        self.read += data.as_ref().map_or(0, Bytes::len);
        Ok(data)
    }

    /// The handle stopped sending before the body ended.
    fn on_closed(&mut self) -> Result<Option<Bytes>> {
        let state = std::mem::replace(&mut self.state, ReadState::Done);
        match state {
            ReadState::UntilClose | ReadState::Done => Ok(None),
            ReadState::Length(left) => Error::e_explain(
                ErrorType::ConnectionClosed,
                format!(
                    "subrequest: request body sender closed {left} bytes short of Content-Length"
                ),
            )
            .map_err(Error::into_down),
            ReadState::UntilEnd => Error::e_explain(
                ErrorType::ConnectionClosed,
                "subrequest: request body sender closed before the end of the body",
            )
            .map_err(Error::into_down),
        }
    }
}

/// Where the response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriteState {
    /// No final response header was written yet.
    NoHeader,
    /// The header was written and body may follow: at most this many bytes if it announced a
    /// length.
    Body(Option<usize>),
    /// The response ended with an end task.
    Ended,
    /// The response ended with a failure (or was cut short).
    Failed,
}

impl WriteState {
    /// The state after writing a final header announcing a body delimited by `framing`.
    pub(super) fn after_header(framing: Framing) -> Self {
        match framing {
            Framing::Empty => WriteState::Ended,
            Framing::Length(n) => WriteState::Body(Some(usize::try_from(n).unwrap_or(usize::MAX))),
            Framing::Chunked | Framing::UntilClose => WriteState::Body(None),
        }
    }

    /// Whether the response is over, cleanly or not.
    pub(super) fn is_over(self) -> bool {
        matches!(self, WriteState::Ended | WriteState::Failed)
    }
}
