//! Echo applications: raw bytes over TCP or a Unix socket, and HTTP.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::BytesMut;
use http::{header, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::apps::ServerApp;
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
            body = format!("{} {}\n", req.method, req.uri).into_bytes();
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
