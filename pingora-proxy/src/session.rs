//! [`Session`]: one request as the proxy sees it.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use bytes::Bytes;
use http::header::HeaderName;
use http::HeaderMap;
use pingora_cache::HttpCache;
use pingora_core::modules::http::{HttpModuleCtx, HttpModules};
use pingora_core::protocols::http::compression::ResponseCompressionCtx;
use pingora_core::protocols::http::{HttpTask, ServerSession};
use pingora_core::protocols::Stream;
use pingora_error::Result;
use pingora_http::ResponseHeader;

use crate::observe::RequestTimings;
use crate::proxy_cache::CacheCtx;
use crate::subrequest::{Ctx as SubrequestCtx, SubrequestSpawner};

/// One client request in the proxy: the client's HTTP session (this derefs to it), the state of
/// the downstream modules, and what the proxy learnt about the upstream.
///
/// Responses written through this type (rather than through the HTTP session directly) pass
/// through the downstream modules.
#[derive(Debug)]
pub struct Session {
    /// The client's HTTP session.
    pub downstream_session: Box<ServerSession>,
    /// The per-request state of the downstream modules.
    pub downstream_modules_ctx: HttpModuleCtx,
    /// Compression of the upstream's response, before the cache stores it and before the
    /// downstream modules see it (off by default): turn it on (for example in
    /// `request_filter`) to store compressed variants or to transcode. The cache then keys
    /// the variants of a response that varies on `Accept-Encoding` by the coding this context
    /// negotiates (br, zstd, gzip or identity), not by the raw field.
    pub upstream_compression: ResponseCompressionCtx,
    /// The per-request state of the upstream modules: they see the request sent upstream
    /// and the upstream's response before `upstream_compression` (and the cache) do.
    #[cfg(feature = "upstream_modules")]
    pub upstream_modules_ctx: HttpModuleCtx,
    /// The request's cache state: off unless `request_cache_filter` enables it.
    pub cache: HttpCache,
    /// Serve the whole response even when the client asks for a range (the cache's range
    /// filter then does nothing).
    pub ignore_downstream_range: bool,
    /// What the proxy's cache phases remember about the request.
    pub(crate) cache_ctx: CacheCtx,
    /// Set when this request is a subrequest: what its spawner gave it.
    pub subrequest_ctx: Option<Box<SubrequestCtx>>,
    /// Starts subrequests of this request, when `allow_spawning_subrequest` allowed it.
    pub subrequest_spawner: Option<SubrequestSpawner>,
    /// Bytes of response body received from the upstream.
    pub(crate) upstream_body_bytes_received: usize,
    /// The server is shutting down: the connection will not be kept.
    pub(crate) shutting_down: bool,
    /// The request's `tracing` span (disabled when no subscriber wants it).
    pub(crate) span: tracing::Span,
    /// The request's id, when the proxy has request ids on.
    pub(crate) request_id: Option<String>,
    /// The response field to write the request id to.
    pub(crate) request_id_header: Option<HeaderName>,
    /// The field of the request sent upstream to write the request id to.
    pub(crate) request_id_upstream_header: Option<HeaderName>,
    /// When the parts of the request happened.
    pub(crate) timings: RequestTimings,
    /// Upstream attempts after the first.
    pub(crate) retries: usize,
    /// Time the last upstream connection spent waiting for its socket to take writes.
    pub(crate) upstream_write_pending_time: Duration,
}

impl Session {
    /// A session over `downstream_session`, with the downstream modules of `modules` (and,
    /// with the `upstream_modules` feature, the upstream modules of `upstream_modules`).
    pub fn new(
        downstream_session: impl Into<Box<ServerSession>>,
        modules: &HttpModules,
        #[cfg(feature = "upstream_modules")] upstream_modules: &HttpModules,
    ) -> Self {
        Session {
            downstream_session: downstream_session.into(),
            downstream_modules_ctx: modules.build_ctx(),
            upstream_compression: ResponseCompressionCtx::new(0, false, false),
            #[cfg(feature = "upstream_modules")]
            upstream_modules_ctx: upstream_modules.build_ctx(),
            cache: HttpCache::new(),
            ignore_downstream_range: false,
            cache_ctx: CacheCtx::default(),
            subrequest_ctx: None,
            subrequest_spawner: None,
            upstream_body_bytes_received: 0,
            shutting_down: false,
            span: tracing::Span::none(),
            request_id: None,
            request_id_header: None,
            request_id_upstream_header: None,
            timings: RequestTimings::default(),
            retries: 0,
            upstream_write_pending_time: Duration::ZERO,
        }
    }

    /// A session over an HTTP/1 connection, without modules (the request is not read yet).
    pub fn new_h1(stream: Stream) -> Self {
        Self::new_h1_with_modules(stream, &HttpModules::new())
    }

    /// A session over an HTTP/1 connection with `modules` (the request is not read yet).
    pub fn new_h1_with_modules(stream: Stream, modules: &HttpModules) -> Self {
        Self::new(
            Box::new(ServerSession::new_http1(stream)),
            modules,
            #[cfg(feature = "upstream_modules")]
            &HttpModules::new(),
        )
    }

    /// The client's HTTP session.
    pub fn as_downstream(&self) -> &ServerSession {
        &self.downstream_session
    }

    /// The client's HTTP session, mutably.
    pub fn as_downstream_mut(&mut self) -> &mut ServerSession {
        &mut self.downstream_session
    }

    /// Answers with an empty error response of status `code`, through the modules.
    pub async fn respond_error(&mut self, code: u16) -> Result<()> {
        self.respond_error_with_body(code, Bytes::new()).await
    }

    /// Answers with an error response of status `code` and `body`, through the modules.
    pub async fn respond_error_with_body(&mut self, code: u16, body: Bytes) -> Result<()> {
        if self.downstream_session.response_written().is_some() {
            return Ok(());
        }
        let mut resp = ServerSession::generate_error(code);
        if !body.is_empty() {
            resp.set_content_length(body.len())?;
        }
        if !self.downstream_session.is_body_done() {
            // The rest of the request body will not be read: the connection cannot be reused.
            self.downstream_session.set_keepalive(None);
        }
        let end = body.is_empty();
        self.write_response_header(Box::new(resp), end).await?;
        if !end {
            self.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }

    /// Writes the response head, through the modules; `end_of_stream` if no body follows.
    pub async fn write_response_header(
        &mut self,
        mut resp: Box<ResponseHeader>,
        end_of_stream: bool,
    ) -> Result<()> {
        self.downstream_modules_ctx
            .response_header_filter(&mut resp, end_of_stream)
            .await?;
        if let (Some(name), Some(id)) = (&self.request_id_header, &self.request_id) {
            if !resp.status.is_informational() {
                // A generated or validated id is always a valid value.
                let _ = resp.insert_header(name.clone(), id.as_str());
            }
        }
        if self.timings.first_byte.is_none() {
            self.timings.first_byte = Some(self.timings.start.elapsed());
        }
        self.downstream_session.write_response_header(resp).await?;
        if end_of_stream {
            self.downstream_session.finish_body().await?;
        }
        Ok(())
    }

    /// Writes a copy of `resp` as the response head, through the modules.
    pub async fn write_response_header_ref(
        &mut self,
        resp: &ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        self.write_response_header(Box::new(resp.clone()), end_of_stream)
            .await
    }

    /// Writes a piece of response body, through the modules; `end_of_stream` on the last.
    pub async fn write_response_body(
        &mut self,
        mut data: Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        self.downstream_modules_ctx
            .response_body_filter(&mut data, end_of_stream)?;
        if end_of_stream {
            if let Some(extra) = self.downstream_modules_ctx.response_done_filter()? {
                data = Some(match data {
                    Some(d) if !d.is_empty() => [d, extra].concat().into(),
                    _ => extra,
                });
            }
        }
        self.downstream_session
            .write_response_body(data.unwrap_or_default(), end_of_stream)
            .await
    }

    /// Ends the response with `trailers`, through the modules. A module may turn the trailers
    /// into body bytes (the gRPC-web bridge does): those end the body and the trailers are
    /// not sent. Final bytes of the modules' done filters (an encoder's last block) go before
    /// the trailers.
    pub async fn write_response_trailers(&mut self, trailers: HeaderMap) -> Result<()> {
        let mut trailers = Some(Box::new(trailers));
        let as_body = self
            .downstream_modules_ctx
            .response_trailer_filter(&mut trailers)?;
        let done = self.downstream_modules_ctx.response_done_filter()?;
        let converted = as_body.is_some();
        let tail = match (as_body, done) {
            (Some(a), Some(b)) => Some(Bytes::from([a, b].concat())),
            (a, b) => a.or(b),
        };
        match trailers {
            Some(trailers) if !converted => {
                if let Some(tail) = tail {
                    self.downstream_session
                        .write_response_body(tail, false)
                        .await?;
                }
                self.downstream_session
                    .write_response_trailers(*trailers)
                    .await
            }
            _ => {
                self.downstream_session
                    .write_response_body(tail.unwrap_or_default(), true)
                    .await
            }
        }
    }

    /// Writes response tasks, through the modules. Returns whether the response ended.
    pub async fn write_response_tasks(&mut self, tasks: Vec<HttpTask>) -> Result<bool> {
        let mut ended = false;
        for task in tasks {
            ended = match task {
                HttpTask::Header(resp, end) => {
                    self.write_response_header(resp, end).await?;
                    end
                }
                HttpTask::Body(data, end) | HttpTask::UpgradedBody(data, end) => {
                    self.write_response_body(data, end).await?;
                    end
                }
                HttpTask::Trailer(Some(trailers)) => {
                    self.write_response_trailers(*trailers).await?;
                    true
                }
                HttpTask::Trailer(None) | HttpTask::Done => {
                    self.write_response_body(None, true).await?;
                    true
                }
                HttpTask::Failed(e) => return Err(e),
            };
        }
        Ok(ended)
    }

    /// Runs the upstream modules' response filters on one task from the upstream. Body bytes
    /// their trailer or done filters return replace the task (the trailers are then dropped).
    #[cfg(feature = "upstream_modules")]
    pub async fn upstream_modules_filter_task(&mut self, task: &mut HttpTask) -> Result<()> {
        let modules = &mut self.upstream_modules_ctx;
        match task {
            HttpTask::Header(resp, end) => modules.response_header_filter(resp, *end).await?,
            HttpTask::Body(body, end) | HttpTask::UpgradedBody(body, end) => {
                modules.response_body_filter(body, *end)?
            }
            HttpTask::Trailer(trailers) => {
                if let Some(body) = modules.response_trailer_filter(trailers)? {
                    *task = HttpTask::Body(Some(body), true);
                }
            }
            HttpTask::Done => {
                if let Some(body) = modules.response_done_filter()? {
                    *task = HttpTask::Body(Some(body), true);
                }
            }
            HttpTask::Failed(_) => {}
        }
        Ok(())
    }

    /// Bytes of response body received from the upstream so far.
    pub fn upstream_body_bytes_received(&self) -> usize {
        self.upstream_body_bytes_received
    }

    /// The request's id: taken from a trusted peer or generated, when the proxy has request
    /// ids on (`HttpProxy::request_id`).
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// When the parts of the request happened: the upstream connection, the upstream's
    /// response head, the first byte to the client.
    pub fn timings(&self) -> &RequestTimings {
        &self.timings
    }

    /// The request's `tracing` span, to record fields of the application's own or to create
    /// child spans under (disabled when no subscriber listens).
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The time the last upstream connection spent waiting for its socket to accept writes
    /// (a slow upstream reading the request); zero for HTTP/2 upstreams.
    pub fn upstream_write_pending_time(&self) -> Duration {
        self.upstream_write_pending_time
    }

    /// Whether the server is shutting down (the client connection will then not be kept).
    pub fn is_process_shutting_down(&self) -> bool {
        self.shutting_down
    }
}

impl AsRef<ServerSession> for Session {
    fn as_ref(&self) -> &ServerSession {
        &self.downstream_session
    }
}

impl AsMut<ServerSession> for Session {
    fn as_mut(&mut self) -> &mut ServerSession {
        &mut self.downstream_session
    }
}

impl Deref for Session {
    type Target = ServerSession;

    fn deref(&self) -> &Self::Target {
        &self.downstream_session
    }
}

impl DerefMut for Session {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.downstream_session
    }
}
