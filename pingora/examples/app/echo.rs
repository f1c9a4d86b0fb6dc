//! Echo applications: raw bytes over TCP or a Unix socket, and HTTP.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use http::{header, Response, StatusCode};
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::apps::{HttpServerOptions, ServerApp};
use pingora::protocols::http::v2::server::default_options;
use pingora::protocols::http::ServerSession;
use pingora::protocols::Stream;
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes back every byte it reads, until the client closes the connection.
#[derive(Debug, Default)]
pub struct EchoApp;

#[async_trait]
impl ServerApp for EchoApp {
    async fn process_new(
        self: &Arc<Self>,
        mut io: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let mut buf = BytesMut::with_capacity(16 * 1024);
        loop {
            if *shutdown.borrow() {
                // Stop serving at a request boundary once the server shuts down.
                return None;
            }
            buf.clear();
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {
                    io.write_all(&buf).await.ok()?;
                    io.flush().await.ok()?;
                }
            }
        }
    }
}

/// The largest request body [`HttpEchoApp`] echoes; larger ones get a 413.
pub const MAX_ECHO_BODY: usize = 16 * 1024 * 1024;

/// Answers each HTTP request with its own body, or with its method and path when it has none.
#[derive(Debug, Default)]
pub struct HttpEchoApp;

#[async_trait]
impl ServeHttp for HttpEchoApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_ECHO_BODY {
                        return plain(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            b"request body too large\n".to_vec(),
                        );
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n").into_bytes()),
            }
        }
        if body.is_empty() {
            let req = session.req_header();
            body = format!(
                "{} {}\n",
                req.method,
                String::from_utf8_lossy(req.raw_path())
            )
            .into_bytes();
        }
        plain(StatusCode::OK, body)
    }
}

fn plain(status: StatusCode, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    resp
}

/// [`HttpEchoApp`] served over HTTP/1 and over h2c (HTTP/2 without TLS, "prior knowledge"),
/// on the same port: connections starting with the HTTP/2 preface speak HTTP/2, one task per
/// stream. Its HTTP/2 connections allow 200 concurrent streams and 2 MiB stream windows.
pub fn h2c_http_echo() -> HttpServer<HttpEchoApp> {
    let mut server = HttpServer::new_app(HttpEchoApp);
    let mut options = HttpServerOptions::default();
    options.h2c = true;
    server.server_options = Some(options);
    let mut h2 = default_options();
    h2.max_concurrent_streams(200).initial_window_size(2 << 20);
    server.h2_options = Some(h2);
    server
}
