//! The simplest HTTP application: a function from a request to a whole response.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::{header, Response};
use log::{debug, error};
use pingora_error::{ErrorType, Result};
use pingora_http::ResponseHeader;

use super::{HttpPersistentSettings, HttpServerApp, HttpServerOptions, ReusedHttpStream};
use crate::modules::http::{HttpModuleCtx, HttpModules, ModuleBuilder};
use crate::protocols::http::v2::server::H2Options;
use crate::protocols::http::ServerSession;
use crate::shutdown::ShutdownWatch;

/// An application that answers each request with a whole response.
///
/// ```no_run
/// use async_trait::async_trait;
/// use pingora_core::apps::http_app::{HttpServer, ServeHttp};
/// use pingora_core::protocols::http::ServerSession;
///
/// struct Hello;
///
/// #[async_trait]
/// impl ServeHttp for Hello {
///     async fn response(&self, _session: &mut ServerSession) -> http::Response<Vec<u8>> {
///         http::Response::new(b"hello\n".to_vec())
///     }
/// }
///
/// let app = HttpServer::new_app(Hello);
/// ```
#[async_trait]
pub trait ServeHttp {
    /// The response to the request in `session` (its head is read; its body may be read with
    /// [`ServerSession::read_request_body`]). A `Content-Length` is added when missing.
    async fn response(&self, http_session: &mut ServerSession) -> Response<Vec<u8>>;
}

/// Runs a [`ServeHttp`] application, with HTTP modules around it.
pub struct HttpServer<SV> {
    app: SV,
    modules: HttpModules,
    /// Options for serving connections.
    pub server_options: Option<HttpServerOptions>,
    /// Settings of HTTP/2 connections; `None` for the defaults.
    pub h2_options: Option<H2Options>,
}

impl<SV> std::fmt::Debug for HttpServer<SV> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("modules", &self.modules)
            .field("server_options", &self.server_options)
            .finish()
    }
}

impl<SV> HttpServer<SV> {
    /// Runs `app`.
    pub fn new_app(app: SV) -> Self {
        HttpServer {
            app,
            modules: HttpModules::new(),
            server_options: None,
            h2_options: None,
        }
    }

    /// Adds an HTTP module.
    pub fn add_module(&mut self, module: ModuleBuilder) {
        self.modules.add_module(module)
    }

    /// The application.
    pub fn app(&self) -> &SV {
        &self.app
    }
}

/// Serves one request of `http` with `app`, through the modules of `modules`; hands the
/// connection back when it can serve another.
async fn serve_one<SV>(
    app: &SV,
    mut http: ServerSession,
    mut modules: HttpModuleCtx,
    shutdown: &ShutdownWatch,
) -> Option<ReusedHttpStream>
where
    SV: ServeHttp + Send + Sync,
{
    match http.read_request().await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            respond_to_bad_request(&mut http, &e).await;
            return None;
        }
    }
    if *shutdown.borrow() {
        http.set_keepalive(None);
    }
    if let Err(e) = respond(app, &mut http, &mut modules, shutdown).await {
        error!(
            "HTTP server failed to respond: {e}, {}",
            http.request_summary()
        );
        if http.response_written().is_none() {
            let _ = http.respond_error(500).await;
        }
        http.shutdown().await;
        return None;
    }
    let settings = HttpPersistentSettings::for_session(&http);
    match http.finish().await {
        Ok(Some(stream)) => Some(ReusedHttpStream::new(stream, Some(settings))),
        Ok(None) => None,
        Err(e) => {
            debug!("HTTP session did not finish cleanly: {e}");
            None
        }
    }
}

/// Writes `app`'s response to the request of `http`, through `modules`.
async fn respond<SV>(
    app: &SV,
    http: &mut ServerSession,
    modules: &mut HttpModuleCtx,
    shutdown: &ShutdownWatch,
) -> Result<()>
where
    SV: ServeHttp + Send + Sync,
{
    modules.request_header_filter(http.req_header_mut()).await?;
    let (parts, body) = app.response(http).await.into_parts();
    let mut resp = ResponseHeader::from(parts);
    let chunked = resp.headers.contains_key(header::TRANSFER_ENCODING);
    if !chunked && !resp.headers.contains_key(header::CONTENT_LENGTH) {
        resp.set_content_length(body.len())?;
    }
    let mut body = Some(Bytes::from(body));
    let empty = body.as_ref().is_none_or(Bytes::is_empty);
    modules.response_header_filter(&mut resp, empty).await?;
    if *shutdown.borrow() {
        // Say so in this response rather than closing after it unannounced.
        http.set_keepalive(None);
    }
    http.write_response_header(Box::new(resp)).await?;
    modules.response_body_filter(&mut body, true)?;
    if let Some(extra) = modules.response_done_filter()? {
        body = Some(match body {
            Some(b) => [b, extra].concat().into(),
            None => extra,
        });
    }
    http.write_response_body(body.unwrap_or_default(), true)
        .await
}

#[async_trait]
impl<SV> HttpServerApp for HttpServer<SV>
where
    SV: ServeHttp + Send + Sync,
{
    async fn process_new_http(
        self: &Arc<Self>,
        http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        serve_one(&self.app, http, self.modules.build_ctx(), shutdown).await
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.server_options.as_ref()
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.h2_options.clone()
    }
}

/// A [`ServeHttp`] application is an HTTP application by itself (as in Pingora), without
/// modules and with the default server options: `Service::new(name, MyApp)` serves it. Wrap it
/// in an [`HttpServer`] to add modules or options.
#[async_trait]
impl<SV> HttpServerApp for SV
where
    SV: ServeHttp + Send + Sync + 'static,
{
    async fn process_new_http(
        self: &Arc<Self>,
        http: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        serve_one(&**self, http, HttpModuleCtx::empty(), shutdown).await
    }
}

/// Answers a request whose head could not be read with the status the error carries (for
/// malformed requests), then closes the connection.
pub async fn respond_to_bad_request(http: &mut ServerSession, e: &pingora_error::Error) {
    if let ErrorType::HTTPStatus(code) = e.etype() {
        debug!("rejecting request: {e}");
        http.set_keepalive(None);
        let resp = ServerSession::generate_error(*code);
        if let Some(h1) = http.as_http1_mut() {
            let _ = h1.write_response_header(Box::new(resp)).await;
            let _ = h1.finish_body().await;
        }
    } else {
        debug!("failed to read request: {e}");
    }
    http.shutdown().await;
}
