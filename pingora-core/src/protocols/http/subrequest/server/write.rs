//! Writing the response of a subrequest: every piece becomes an [`HttpTask`] on the handle's
//! channel.

use super::*;

// === impl HttpSession: writing the response ===

impl HttpSession {
    /// Writes a response header. A 1xx header (other than a 101 answering an upgrade request)
    /// is passed on at once and may be followed by others; a second final header is ignored
    /// with a warning. The task ends the response when no body can follow the header.
    ///
    /// # Errors
    /// The handle's receiver is gone ([`ErrorType::WriteError`]) or the write timeout expired.
    pub async fn write_response_header(&mut self, header: Box<ResponseHeader>) -> Result<()> {
        let status = header.status;
        let is_switch = status == StatusCode::SWITCHING_PROTOCOLS && self.upgrade_requested;
        if status.is_informational() && !is_switch {
            if self.response.is_some() {
                warn!("subrequest: response header already written; ignoring a {status}");
                return Ok(());
            }
            return self.send(HttpTask::Header(header, false)).await;
        }
        if self.response.is_some() {
            warn!("subrequest: response header already written; ignoring another {status}");
            return Ok(());
        }
        let framing = if is_switch {
            Framing::UntilClose
        } else {
            head::response_framing(
                &self.request.method,
                status,
                head::outgoing_framing(&header.headers),
            )
        };
        let state = WriteState::after_header(framing);
        self.send(HttpTask::Header(header.clone(), state.is_over()))
            .await?;
        self.response = Some(header);
        self.write_state = state;
        if is_switch {
            debug!("subrequest: switched protocols");
            self.upgraded = true;
            self.body_reader.switch_to_until_close();
        }
        Ok(())
    }

    /// [`HttpSession::write_response_header`] from a borrowed header.
    ///
    /// # Errors
    /// As [`HttpSession::write_response_header`].
    pub async fn write_response_header_ref(&mut self, header: &ResponseHeader) -> Result<()> {
        self.write_response_header(Box::new(header.clone())).await
    }

    /// Sends a `100 Continue` header, unless a response or a 100 was already written.
    ///
    /// # Errors
    /// As [`HttpSession::write_response_header`].
    pub async fn write_continue_response(&mut self) -> Result<()> {
        if self.continue_sent || self.response.is_some() {
            return Ok(());
        }
        self.continue_sent = true;
        let header = ResponseHeader::build(StatusCode::CONTINUE, Some(0))?;
        self.send(HttpTask::Header(Box::new(header), false)).await
    }

    /// The final response header written, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.response.as_deref()
    }

    /// Whether a 101 answered the upgrade request: the body pieces both ways are then the
    /// new protocol's bytes (sent as [`HttpTask::UpgradedBody`]).
    pub fn was_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Writes a piece of response body. Returns the number of bytes accepted (`None` if the
    /// response has ended).
    ///
    /// # Errors
    /// Writing before the response header, or past its `Content-Length` (the response then
    /// fails), the handle's receiver gone, or the write timeout expired.
    pub async fn write_body(&mut self, data: Bytes) -> Result<Option<usize>> {
        let remaining = match self.write_state {
            WriteState::NoHeader => {
                return Error::e_explain(
                    ErrorType::InternalError,
                    "subrequest: response body before its header",
                )
            }
            WriteState::Ended | WriteState::Failed => return Ok(None),
            WriteState::Body(remaining) => remaining,
        };
        let len = data.len();
        if len == 0 {
            return Ok(Some(0));
        }
        if let Some(remaining) = remaining {
            if len > remaining {
                let e = Error::explain(
                    ErrorType::InternalError,
                    format!("subrequest: {len} response body bytes with {remaining} left of Content-Length"),
                );
                return Err(self.fail(e));
            }
        }
        let task = if self.upgraded {
            HttpTask::UpgradedBody(Some(data), false)
        } else {
            HttpTask::Body(Some(data), false)
        };
        self.send(task).await?;
        self.body_bytes_sent += len;
        self.write_state = WriteState::Body(remaining.map(|r| r - len));
        Ok(Some(len))
    }

    /// Ends the response body with `Done`. Returns the number of body bytes written, `None`
    /// if no header was written or the response already ended. After a protocol switch this
    /// also ends the request side.
    ///
    /// # Errors
    /// A body shorter than its `Content-Length` (the response then fails), the handle's
    /// receiver gone, or the write timeout expired.
    pub async fn finish(&mut self) -> Result<Option<usize>> {
        match self.write_state {
            WriteState::NoHeader | WriteState::Ended | WriteState::Failed => Ok(None),
            WriteState::Body(remaining) => {
                self.check_complete(remaining)?;
                self.send(HttpTask::Done).await?;
                self.write_state = WriteState::Ended;
                if self.upgraded {
                    self.body_reader.close();
                }
                Ok(Some(self.body_bytes_sent))
            }
        }
    }

    /// Ends the response with `trailers`.
    ///
    /// # Errors
    /// As [`HttpSession::finish`]; also trailers before the response header.
    pub async fn write_trailers(&mut self, trailers: Option<Box<HeaderMap>>) -> Result<()> {
        match self.write_state {
            WriteState::NoHeader => Error::e_explain(
                ErrorType::InternalError,
                "subrequest: response trailers before the header",
            ),
            WriteState::Ended | WriteState::Failed => {
                warn!("subrequest: response already ended; trailers ignored");
                Ok(())
            }
            WriteState::Body(remaining) => {
                self.check_complete(remaining)?;
                self.send(HttpTask::Trailer(trailers)).await?;
                self.write_state = WriteState::Ended;
                Ok(())
            }
        }
    }

    /// Bytes of response body written.
    pub fn body_bytes_sent(&self) -> usize {
        self.body_bytes_sent
    }

    /// Writes a batch of response tasks in order. Returns whether the response ended.
    ///
    /// # Errors
    /// The first failing write, or the error of a `Failed` task (the response then stays
    /// incomplete, and is reported as failed when the session ends).
    pub async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        for task in tasks {
            match task {
                HttpTask::Header(header, end) => {
                    self.write_response_header(header).await?;
                    if end {
                        self.finish().await?;
                    }
                }
                HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                    if let Some(data) = data {
                        self.write_body(data).await?;
                    }
                    if end {
                        self.finish().await?;
                    }
                }
                HttpTask::Trailer(trailers) => self.write_trailers(trailers).await?,
                HttpTask::Done => {
                    self.finish().await?;
                }
                HttpTask::Failed(e) => return Err(e),
            }
        }
        Ok(self.write_state.is_over())
    }

    /// Fails the response if the body is short of its `Content-Length`.
    fn check_complete(&mut self, remaining: Option<usize>) -> Result<()> {
        match remaining {
            Some(left) if left > 0 => {
                let e = Error::explain(
                    PREMATURE_BODY_END,
                    format!("subrequest: response body ended {left} bytes short of Content-Length"),
                );
                Err(self.fail(e))
            }
            _ => Ok(()),
        }
    }

    /// Sends one task, within the write timeout.
    async fn send(&mut self, task: HttpTask) -> Result<()> {
        let Some(tx) = self.tx.as_ref() else {
            return self.after_shutdown();
        };
        let send = async {
            tx.send(task).await.map_err(|_| {
                Error::explain(
                    ErrorType::WriteError,
                    "subrequest: the handle stopped reading the response",
                )
            })
        };
        with_timeout(self.write_timeout, ErrorType::WriteTimedout, send)
            .await
            .map_err(|e| {
                self.write_state = WriteState::Failed;
                e.into_down()
            })
    }

    /// Marks the response failed and tells the handle, if its channel has room; returns `e`
    /// (as a downstream error) for the caller.
    fn fail(&mut self, e: BError) -> BError {
        self.write_state = WriteState::Failed;
        if let Some(tx) = self.tx.as_ref() {
            let _ = tx.try_send(HttpTask::Failed(Error::explain(
                e.etype().clone(),
                e.context()
                    .unwrap_or("subrequest response failed")
                    .to_owned(),
            )));
        }
        e.into_down()
    }

    /// Tells the handle the response will not be completed, unless it was.
    pub(super) fn fail_unfinished(&mut self) {
        if self.write_state.is_over() {
            return;
        }
        let e = Error::explain(
            ErrorType::ConnectionClosed,
            "subrequest ended before its response was complete",
        );
        let _ = self.fail(e);
    }
}
