//! Rewriting a response body: the origin's JSON is buffered whole and sent on as YAML.

use std::net::SocketAddr;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, OrErr, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{ProxyHttp, Session};

/// The largest JSON body converted; a bigger one fails the request rather than being buffered.
pub const MAX_JSON: usize = 1 << 20;

/// Converts the origin's JSON responses to YAML.
#[derive(Debug)]
pub struct Json2Yaml {
    pub origin: SocketAddr,
}

/// The JSON body buffered so far.
#[derive(Debug, Default)]
pub struct Buffer {
    json: BytesMut,
}

#[async_trait]
impl ProxyHttp for Json2Yaml {
    type CTX = Buffer;

    fn new_ctx(&self) -> Buffer {
        Buffer::default()
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut Buffer,
    ) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        _ctx: &mut Buffer,
    ) -> Result<()> {
        upstream_request.set_uri(http::Uri::from_static("/json"));
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        _ctx: &mut Buffer,
    ) -> Result<()> {
        // The body changes, so its length is unknown until the end: send it chunked.
        upstream_response.remove_header("Content-Length");
        upstream_response.insert_header("Transfer-Encoding", "chunked")?;
        upstream_response.insert_header("Content-Type", "application/yaml")?;
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Buffer,
    ) -> Result<Option<std::time::Duration>> {
        if let Some(piece) = body.take() {
            if ctx.json.len() + piece.len() > MAX_JSON {
                return Error::e_explain(
                    ErrorType::InternalError,
                    "JSON body too large to convert",
                );
            }
            ctx.json.extend_from_slice(&piece);
        }
        if end_of_stream {
            let value: serde_json::Value = serde_json::from_slice(&ctx.json)
                .or_err(ErrorType::InternalError, "origin sent invalid JSON")?;
            let yaml = serde_yaml::to_string(&value)
                .or_err(ErrorType::InternalError, "YAML conversion")?;
            *body = Some(Bytes::from(yaml));
        }
        Ok(None)
    }
}
