//! A small local origin so that every example runs offline.
//!
//! `GET /json` answers a fixed JSON document; anything else is answered with a line naming the
//! origin, the method and the path, and the request body (if any) after it.

use async_trait::async_trait;
use http::{header, Response};
use pingora_core::apps::http_app::ServeHttp;
use pingora_core::protocols::http::ServerSession;

/// The JSON document of `GET /json`.
pub const JSON: &str = r#"{"name":"pingora","ports":[6188,6189],"tls":false}"#;

/// A named origin.
#[derive(Debug)]
pub struct Origin {
    pub name: &'static str,
}

#[async_trait]
impl ServeHttp for Origin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let mut body = Vec::new();
        while let Ok(Some(chunk)) = session.read_request_body().await {
            body.extend_from_slice(&chunk);
            if body.len() > 1 << 20 {
                break;
            }
        }
        let req = session.req_header();
        let (content_type, body) = if req.uri.path() == "/json" {
            ("application/json", JSON.as_bytes().to_vec())
        } else {
            let mut text = format!("{} {} {}\n", self.name, req.method, req.uri).into_bytes();
            text.extend_from_slice(&body);
            ("text/plain", text)
        };
        Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .header("x-origin", self.name)
            .body(body)
            .expect("valid response")
    }
}

/// A listening service running an [`Origin`] named `name` on `addr`.
pub fn origin_service(
    name: &'static str,
    addr: &str,
) -> pingora_core::services::listening::Service<pingora_core::apps::http_app::HttpServer<Origin>> {
    let app = pingora_core::apps::http_app::HttpServer::new_app(Origin { name });
    let mut service =
        pingora_core::services::listening::Service::new(format!("origin {name}"), app);
    service.add_tcp(addr);
    service
}
