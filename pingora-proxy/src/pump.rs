//! The exchange with one upstream: the request head, then the request body and the response
//! pumped at the same time, each through its filters.
//!
//! This is written once against the version-neutral sessions on both sides
//! ([`ServerSession`](pingora_core::protocols::http::ServerSession) for the client,
//! [`HttpSession`] for the upstream), so every combination of HTTP versions goes through the
//! same code.
//!
//! Both directions run in one task: a `select!` waits on "next piece of request body" and "next
//! piece of response" and handles whichever comes first. Both reads are cancel-safe (bytes read
//! stay in the sessions' buffers), so losing the race loses nothing. Memory stays bounded: at
//! most one piece of each direction is held at a time, and a slow side slows the other down
//! (TCP back-pressure) instead of making the proxy buffer.

use std::time::Instant;

use bytes::Bytes;
use http::{Method, StatusCode};
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::compression::ResponseCompressionCtx;
use pingora_core::protocols::http::{ClientEvent, HttpTask};
use pingora_error::{Error, Result};
use pingora_http::ResponseHeader;

use crate::headers;
use crate::metrics;
use crate::observe;
use crate::proxy_cache::admit;
use crate::proxy_trait::ProxyHttp;
use crate::Session;

/// Request body queued for the upstream beyond which no more is read from the client.
const QUEUE_LIMIT: usize = 64 * 1024;
/// Most response body read from the upstream at a time when the client's side bounds what
/// it takes (HTTP/2).
const READ_SIZE: usize = 128 * 1024;

/// How an exchange ended.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// The client connection may serve another request.
    pub(crate) downstream_reusable: bool,
    /// The upstream connection may go back to the pool.
    pub(crate) upstream_reusable: bool,
    pub(crate) error: Option<Box<Error>>,
}

/// Runs the exchange of `session`'s request with the upstream behind `client`.
pub(crate) async fn exchange<SV>(
    app: &SV,
    session: &mut Session,
    client: &mut HttpSession,
    ctx: &mut SV::CTX,
) -> Outcome
where
    SV: ProxyHttp + Send + Sync,
    SV::CTX: Send + Sync,
{
    let mut state = Exchange {
        request_done: false,
        response_done: false,
        response_started: false,
        upgraded: false,
        diverted: false,
        client_gone: None,
        downstream_closed: false,
        sent_at: None,
    };
    match state.run(app, session, client, ctx).await {
        Ok(()) => Outcome {
            downstream_reusable: !state.downstream_closed,
            upstream_reusable: state.request_done && state.response_done && !state.upgraded,
            error: None,
        },
        Err(mut e) => {
            if state.response_started {
                // Part of the response reached the client: the request cannot be tried again.
                e.retry = pingora_error::RetryType::Decided(false);
            }
            Outcome {
                downstream_reusable: false,
                upstream_reusable: false,
                error: Some(e),
            }
        }
    }
}

struct Exchange {
    request_done: bool,
    response_done: bool,
    /// A final response head was sent to the client: the exchange can no longer be retried.
    response_started: bool,
    upgraded: bool,
    /// The upstream's response is read but not forwarded: the stored response answers.
    diverted: bool,
    /// The client left while the response was being stored: the rest is read for the cache
    /// only.
    client_gone: Option<Box<Error>>,
    /// The client connection cannot be reused.
    downstream_closed: bool,
    /// When the request head went upstream.
    sent_at: Option<Instant>,
}

impl Exchange {
    async fn run<SV>(
        &mut self,
        app: &SV,
        session: &mut Session,
        client: &mut HttpSession,
        ctx: &mut SV::CTX,
    ) -> Result<()>
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        let body_expected = !session.downstream_session.is_body_empty();
        let upgrade_requested = session.downstream_session.is_upgrade_req();
        let mut upstream_req = headers::upstream_request(session.req_header(), body_expected);
        observe::set_upstream_request_id(session, &mut upstream_req);
        admit::upstream_request_filter(session, &mut upstream_req);
        app.upstream_request_filter(session, &mut upstream_req, ctx)
            .await?;
        #[cfg(feature = "upstream_modules")]
        session
            .upstream_modules_ctx
            .request_header_filter(&mut upstream_req)
            .await?;
        client.write_request_header(Box::new(upstream_req)).await?;
        self.sent_at = Some(Instant::now());

        // A retried request replays the body already read from the client.
        if let Some(replay) = session.downstream_session.get_retry_buffer() {
            let end = session.downstream_session.is_body_done();
            self.send_request_body(app, session, client, ctx, Some(replay), end)
                .await?;
        } else if !body_expected && !upgrade_requested {
            self.send_request_body(app, session, client, ctx, None, true)
                .await?;
        }
        if !self.request_done && session.downstream_session.is_expect_continue_req() {
            // Told now, rather than from inside a read that the pump may cancel.
            session.downstream_session.write_continue_response().await?;
        }

        while !self.response_done {
            // Before an upgrade is answered there is nothing to read from the client but its
            // hanging up; after a 101 its bytes belong to the new protocol.
            let idle = self.request_done || (upgrade_requested && !body_expected && !self.upgraded);
            // Read more of the request only while little of it waits to be written upstream;
            // otherwise wait for the queue to drain (it drains as the response is read).
            let queue_room = client.queued_request_body_len() < QUEUE_LIMIT;
            let drained = (!queue_room).then(|| client.notify_queue_below(QUEUE_LIMIT / 2));
            // Where the client's side bounds how much response it takes (an HTTP/2 stream's
            // window and send buffer), read no more than that from the upstream, and none
            // while it is full: a slow client's response waits in the upstream's socket, not
            // in our memory.
            let want = client
                .response_body_left()
                .unwrap_or(READ_SIZE)
                .clamp(1, READ_SIZE);
            let room = self.response_room(session, want);
            let want_room = room == Some(0);
            let client_waits = (queue_room || idle || want_room) && self.client_gone.is_none();
            tokio::select! {
                _ = async { drained.as_ref().expect("armed when there is no room").notified().await }, if !queue_room => {}
                event = session.downstream_session.read_body_or_room(idle || !queue_room, want_room.then_some(want)), if client_waits => {
                    let body = match event {
                        Ok(ClientEvent::Body(body)) => body,
                        Ok(ClientEvent::ResponseRoom(_)) => continue,
                        Err(e) if self.request_done && admit::storing(session) => {
                            // The client left, but the response is being stored: finish
                            // reading it for the cache.
                            self.client_gone = Some(e);
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    let end = body.is_none() || session.downstream_session.is_body_done();
                    self.send_request_body(app, session, client, ctx, body, end).await?;
                }
                task = read_upstream(client, room), if !want_room => {
                    let task = task?;
                    let final_head = matches!(&task, HttpTask::Header(h, _) if !h.status.is_informational());
                    self.forward_upstream_task(app, session, ctx, task).await?;
                    if final_head && upgrade_requested && !self.upgraded && !body_expected {
                        // The upgrade was refused: the request had no body after all.
                        self.send_request_body(app, session, client, ctx, None, true).await?;
                    }
                }
            }
        }
        if !self.request_done {
            // The upstream answered without waiting for the whole request body (an early
            // error, for example): this upstream connection is done.
            self.upgraded = true;
        }
        if let Some(e) = self.client_gone.take() {
            self.downstream_closed = true;
            if !session.cache_ctx.head_as_get {
                // The client left before its response ended (a HEAD's ended with its head).
                return Err(e);
            }
        }
        Ok(())
    }

    /// How much response body the client can take now, when its side bounds that and a
    /// body is being forwarded to it.
    fn response_room(&self, session: &mut Session, want: usize) -> Option<usize> {
        if !self.response_started
            || self.response_done
            || self.diverted
            || self.client_gone.is_some()
        {
            return None;
        }
        session.downstream_session.response_room(want)
    }

    async fn send_request_body<SV>(
        &mut self,
        app: &SV,
        session: &mut Session,
        client: &mut HttpSession,
        ctx: &mut SV::CTX,
        mut body: Option<Bytes>,
        end: bool,
    ) -> Result<()>
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        if self.request_done {
            return Ok(());
        }
        session
            .downstream_modules_ctx
            .request_body_filter(&mut body, end)
            .await?;
        app.request_body_filter(session, &mut body, end, ctx)
            .await?;
        #[cfg(feature = "upstream_modules")]
        session
            .upstream_modules_ctx
            .request_body_filter(&mut body, end)
            .await?;
        let data = body.unwrap_or_default();
        // The client's trailers, once its body ended, go after the body and end the request.
        let trailers = if end {
            session.downstream_session.read_request_trailers().await?
        } else {
            None
        };
        match trailers.and_then(|t| headers::upstream_trailers(*t)) {
            Some(trailers) => {
                if !data.is_empty() {
                    client.queue_request_body(&data, false)?;
                }
                client.queue_request_trailers(trailers)?;
            }
            // Written while the response is read, so neither direction waits on the other.
            None if !data.is_empty() || end => client.queue_request_body(&data, end)?,
            None => {}
        }
        if end {
            self.request_done = true;
        }
        Ok(())
    }

    /// The upstream's side of a response task: the upstream modules, then
    /// `upstream_compression`, then on to the cache and the client.
    async fn forward_upstream_task<SV>(
        &mut self,
        app: &SV,
        session: &mut Session,
        ctx: &mut SV::CTX,
        mut task: HttpTask,
    ) -> Result<()>
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        #[cfg(feature = "upstream_modules")]
        {
            if let HttpTask::Header(resp, end) = &task {
                app.adjust_upstream_modules(session, resp, *end, ctx)
                    .await?;
            }
            session.upstream_modules_filter_task(&mut task).await?;
        }
        let compression = &mut session.upstream_compression;
        if compression.is_enabled() {
            if let HttpTask::Trailer(_) = task {
                // The encoder's last bytes go before the trailers.
                let tail = compression.try_response_body_filter(None, true)?;
                if let Some(tail) = tail.filter(|t| !t.is_empty()) {
                    let body = HttpTask::Body(Some(tail), false);
                    self.forward_response(app, session, ctx, body).await?;
                }
            } else {
                compress(compression, &mut task)?;
            }
        }
        self.forward_response(app, session, ctx, task).await
    }

    async fn forward_response<SV>(
        &mut self,
        app: &SV,
        session: &mut Session,
        ctx: &mut SV::CTX,
        task: HttpTask,
    ) -> Result<()>
    where
        SV: ProxyHttp + Send + Sync,
        SV::CTX: Send + Sync,
    {
        match task {
            HttpTask::Header(mut resp, end) => {
                if resp.status.is_informational() && resp.status != StatusCode::SWITCHING_PROTOCOLS
                {
                    return self.forward_informational(session, resp).await;
                }
                if resp.status == StatusCode::SWITCHING_PROTOCOLS {
                    // From now on both sides carry raw bytes of the new protocol.
                    self.upgraded = true;
                }
                if let Some(sent_at) = self.sent_at {
                    let waited = sent_at.elapsed();
                    session.timings.upstream_response_header = Some(waited);
                    metrics::upstream_response_header(waited);
                }
                let method = session.req_header().method.clone();
                app.upstream_response_filter(session, &mut resp, ctx)
                    .await?;
                let forward = admit::upstream_response_header(app, session, ctx, &mut resp).await?;
                if forward == admit::Forward::ServeStored {
                    // The stored response answers the client once this exchange ends.
                    self.diverted = true;
                    if end {
                        self.response_done = true;
                    }
                    return Ok(());
                }
                if end {
                    admit::upstream_body(session, None, true).await;
                }
                headers::downstream_response(&mut resp, &method);
                if method == Method::CONNECT && resp.status.is_success() {
                    self.upgraded = true;
                }
                app.response_filter(session, &mut resp, ctx).await?;
                self.response_started = true;
                if self.client_gone.is_none() {
                    session.write_response_header(resp, end).await?;
                }
                if end {
                    self.response_done = true;
                }
            }
            HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                if let Some(d) = &data {
                    session.upstream_body_bytes_received += d.len();
                }
                if self.diverted {
                    self.response_done = end;
                    return Ok(());
                }
                let mut data = admit::upstream_body(session, data, end).await;
                if let Some(delay) =
                    app.upstream_response_body_filter(session, &mut data, end, ctx)?
                {
                    pingora_timeout::sleep(delay).await;
                }
                if self.client_gone.is_some() {
                    self.response_done = end;
                    return Ok(());
                }
                if let Some(delay) = app.response_body_filter(session, &mut data, end, ctx)? {
                    pingora_timeout::sleep(delay).await;
                }
                session.write_response_body(data, end).await?;
                if end {
                    self.response_done = true;
                }
            }
            HttpTask::Trailer(trailers) => {
                if self.diverted {
                    self.response_done = true;
                    return Ok(());
                }
                admit::upstream_body(session, None, true).await;
                if self.client_gone.is_some() {
                    self.response_done = true;
                    return Ok(());
                }
                let mut trailers = trailers.map(|t| *t).unwrap_or_default();
                app.upstream_response_trailer_filter(session, &mut trailers, ctx)?;
                match app
                    .response_trailer_filter(session, &mut trailers, ctx)
                    .await?
                {
                    Some(as_body) => session.write_response_body(Some(as_body), true).await?,
                    None => session.write_response_trailers(trailers).await?,
                }
                self.response_done = true;
            }
            HttpTask::Done => {
                if self.diverted {
                    self.response_done = true;
                    return Ok(());
                }
                let data = admit::upstream_body(session, None, true).await;
                if self.client_gone.is_none() {
                    session.write_response_body(data, true).await?;
                }
                self.response_done = true;
            }
            HttpTask::Failed(e) => return Err(e),
        }
        Ok(())
    }

    /// Passes a 1xx on to the client, except `100 Continue`: the client's session answers
    /// `Expect: 100-continue` itself when the body is wanted.
    async fn forward_informational(
        &mut self,
        session: &mut Session,
        resp: Box<ResponseHeader>,
    ) -> Result<()> {
        if resp.status == StatusCode::CONTINUE {
            return Ok(());
        }
        if session.downstream_session.is_http2() {
            return Ok(());
        }
        session.downstream_session.write_response_header(resp).await
    }
}

/// Reads the upstream's next response task, taking at most `room` bytes of body off its
/// connection when set.
async fn read_upstream(client: &mut HttpSession, room: Option<usize>) -> Result<HttpTask> {
    match room {
        Some(room) => client.read_response_task_at_most(room).await,
        None => client.read_response_task().await,
    }
}

/// Runs `task` through `compression`, surfacing encoder errors (they fail the exchange: a
/// half-encoded body must not reach the cache or the client as if whole).
fn compress(compression: &mut ResponseCompressionCtx, task: &mut HttpTask) -> Result<()> {
    match task {
        HttpTask::Header(resp, end) => compression.response_header_filter(resp, *end),
        HttpTask::Body(data, end) => {
            if let Some(out) = compression.try_response_body_filter(data.as_ref(), *end)? {
                *data = Some(out);
            }
        }
        HttpTask::Done => {
            if let Some(out) = compression.try_response_body_filter(None, true)? {
                *task = HttpTask::Body(Some(out), true);
            }
        }
        HttpTask::UpgradedBody(..) | HttpTask::Trailer(_) | HttpTask::Failed(_) => {}
    }
    Ok(())
}
