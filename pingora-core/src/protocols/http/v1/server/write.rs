//! Writing the response of an HTTP/1 server session: interim responses, the head, the body
//! (with its framing) and trailers.

use super::*;

// === impl HttpSession: writing the response ===

impl HttpSession {
    /// Sends `100 Continue`, unless a response or a 100 was already sent.
    pub async fn write_continue_response(&mut self) -> Result<()> {
        if self.continue_sent || self.response.is_some() {
            return Ok(());
        }
        self.continue_sent = true;
        self.send(&mut [b"HTTP/1.1 100 Continue\r\n\r\n"]).await
    }

    /// Writes a response head. A 1xx head is sent at once and may be followed by others; a
    /// second final head is ignored with a warning.
    ///
    /// `Date` is added when missing, and `Connection` set to say whether the connection stays
    /// open.
    pub async fn write_response_header(&mut self, header: Box<ResponseHeader>) -> Result<()> {
        let status = header.status;
        let is_switch = status == StatusCode::SWITCHING_PROTOCOLS && self.upgrade_requested;
        if status.is_informational() && !is_switch {
            return self.write_informational(&header).await;
        }
        if self.response.is_some() {
            warn!("response head already written; ignoring another {status}");
            return Ok(());
        }
        let mut header = header;
        let request_method = self
            .request
            .as_ref()
            .map_or(Method::GET, |r| r.method.clone());
        let tunnel = is_switch
            || (self.allow_connect && request_method == Method::CONNECT && status.is_success());
        let mut framing = if tunnel {
            Framing::UntilClose
        } else {
            head::response_framing(
                &request_method,
                status,
                head::outgoing_framing(&header.headers),
            )
        };
        let http10_client = self
            .request
            .as_ref()
            .is_some_and(|r| r.version == Version::HTTP_10);
        if framing == Framing::Chunked && http10_client {
            // HTTP/1.0 has no chunked coding: the body ends when the connection closes.
            header.remove_header(&header::TRANSFER_ENCODING);
            framing = Framing::UntilClose;
        }
        if tunnel {
            self.upgraded = true;
            self.keepalive = Keepalive::Off;
        }
        if framing == Framing::UntilClose && !tunnel {
            // Only closing the connection can end this body.
            self.keepalive = Keepalive::Off;
        }
        if !self.is_body_done() && self.close_on_response_before_downstream_finish && !tunnel {
            self.keepalive = Keepalive::Off;
        }
        if fields::ConnectionTokens::from_headers(&header.headers).close {
            self.keepalive = Keepalive::Off;
        }
        self.fill_response_headers(&mut header, tunnel);
        if let Framing::Length(n) = framing {
            // The head waits for a body that fits with it in one write (below): room for both
            // now, rather than growing the buffer, and copying the head, when the body comes.
            let body = usize::try_from(n).unwrap_or(usize::MAX);
            if body <= COALESCE_LIMIT {
                self.pending
                    .reserve(HEAD_ROOM + header.headers.len() * 32 + body);
            }
        }
        head::write_response_head(&header, &mut self.pending);
        self.encoder = Some(BodyEncoder::new(framing));
        self.response = Some(header);
        // A head announcing a body of known length waits for that body, so both go out in one
        // write; any other head is sent now so the client sees it without delay.
        if !matches!(framing, Framing::Length(n) if n > 0) {
            self.flush_pending().await?;
        }
        Ok(())
    }

    /// Like [`HttpSession::write_response_header`], from a borrowed head.
    pub async fn write_response_header_ref(&mut self, header: &ResponseHeader) -> Result<()> {
        self.write_response_header(Box::new(header.clone())).await
    }

    async fn write_informational(&mut self, header: &ResponseHeader) -> Result<()> {
        let is_continue = header.status == StatusCode::CONTINUE;
        if self.response.is_some() || (is_continue && self.continue_sent) {
            return Ok(());
        }
        if self.ignore_info_resp && !(is_continue && self.expect_continue) {
            return Ok(());
        }
        if self
            .request
            .as_ref()
            .is_some_and(|r| r.version == Version::HTTP_10)
        {
            // HTTP/1.0 clients do not understand 1xx (RFC 9110 section 15.2).
            return Ok(());
        }
        self.continue_sent |= is_continue;
        let mut out = BytesMut::new();
        head::write_response_head(header, &mut out);
        self.send(&mut [&out]).await
    }

    /// Adds `Date` and sets `Connection` on a final response head.
    fn fill_response_headers(&self, header: &mut ResponseHeader, tunnel: bool) {
        if !header.headers.contains_key(header::DATE) {
            let _ = header.insert_header(header::DATE, get_cached_date());
        }
        if tunnel {
            // A 101 keeps the client's `Connection: upgrade`; a CONNECT tunnel needs nothing.
            return;
        }
        let value = if self.will_keepalive() {
            "keep-alive"
        } else {
            "close"
        };
        let _ = header.insert_header(header::CONNECTION, value);
    }

    /// The response head written, if any.
    pub fn response_written(&self) -> Option<&ResponseHeader> {
        self.response.as_deref()
    }

    /// Writes a piece of response body. Returns the number of body bytes accepted (`None` if
    /// the response has ended).
    ///
    /// # Errors
    /// Writing before the response head, past the announced `Content-Length`, or a write that
    /// fails or times out; the connection is then not reused.
    pub async fn write_body(&mut self, data: &[u8]) -> Result<Option<usize>> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Error::e_explain(ErrorType::InternalError, "response body before its head");
        };
        if encoder.is_finished() {
            return Ok(None);
        }
        let frame = encoder
            .encode(data.len())
            .inspect_err(|_| self.broken = true)?;
        if frame.wire_len() == 0 && self.pending.is_empty() {
            return Ok(Some(0));
        }
        let data = &data[..frame.data_len];
        if self.pending.len() + frame.wire_len() <= COALESCE_LIMIT {
            self.pending.extend_from_slice(frame.prefix());
            self.pending.extend_from_slice(data);
            self.pending.extend_from_slice(frame.suffix);
            self.flush_pending().await?;
        } else {
            let pending = std::mem::take(&mut self.pending);
            self.send(&mut [&pending, frame.prefix(), data, frame.suffix])
                .await?;
            self.pending = pending;
            self.pending.clear();
        }
        Ok(Some(frame.data_len))
    }

    /// Ends the response body. Returns the number of body bytes written.
    ///
    /// # Errors
    /// A body shorter than its `Content-Length`, or a failed write; the connection is then not
    /// reused.
    pub async fn finish_body(&mut self) -> Result<Option<usize>> {
        self.finish_body_with_trailers(None).await
    }

    /// Ends the response body, with `trailers` when the body is chunked.
    pub async fn finish_body_with_trailers(
        &mut self,
        trailers: Option<&http::HeaderMap>,
    ) -> Result<Option<usize>> {
        let Some(encoder) = self.encoder.as_mut() else {
            return Ok(None);
        };
        if encoder.is_finished() {
            return Ok(Some(encoder.written() as usize));
        }
        let mut tail = Vec::new();
        let result = encoder.finish(trailers, &mut tail);
        let written = encoder.written() as usize;
        if result.is_err() {
            self.broken = true;
        }
        self.pending.extend_from_slice(&tail);
        self.flush_pending().await?;
        result.map(|()| Some(written))
    }

    /// Bytes of response body written.
    pub fn body_bytes_sent(&self) -> usize {
        self.encoder.as_ref().map_or(0, |e| e.written() as usize)
    }

    /// Whether the connection switched to another protocol (101) or became a CONNECT tunnel.
    pub fn was_upgraded(&self) -> bool {
        self.upgraded
    }

    /// Writes a batch of response tasks with as few writes as possible. Returns whether the
    /// response ended.
    pub async fn response_duplex_vec(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        let mut ended = false;
        for task in tasks {
            ended = match task {
                HttpTask::Header(header, end) => {
                    self.write_response_header(header).await?;
                    if end {
                        self.finish_body().await?;
                    }
                    end
                }
                HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                    if let Some(data) = data {
                        self.write_body(&data).await?;
                    }
                    if end {
                        self.finish_body().await?;
                    }
                    end
                }
                HttpTask::Trailer(trailers) => {
                    self.finish_body_with_trailers(trailers.as_deref()).await?;
                    true
                }
                HttpTask::Done => {
                    self.finish_body().await?;
                    true
                }
                HttpTask::Failed(e) => return Err(e),
            };
        }
        Ok(ended)
    }

    async fn flush_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let result = self.send(&mut [&pending]).await;
        self.pending = pending;
        self.pending.clear();
        result
    }

    /// Writes `parts` and flushes, within the write deadline.
    async fn send(&mut self, parts: &mut [&[u8]]) -> Result<()> {
        let len = parts.iter().map(|p| p.len()).sum();
        let deadline = write_deadline(self.write_timeout, self.min_send_rate, len);
        let result = with_timeout(
            deadline,
            ErrorType::WriteTimedout,
            write_all_vectored(&mut self.stream, parts),
        )
        .await;
        result.map_err(|e| {
            self.broken = true;
            e.into_down()
        })
    }
}
