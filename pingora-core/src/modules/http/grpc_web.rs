//! The gRPC-web bridge module: lets browsers (gRPC-web clients) call gRPC servers through the
//! proxy. See [`GrpcWebCtx`] for what it changes.
//!
//! Add the [`GrpcWeb`] builder to the downstream modules, then enable the bridge for the
//! requests that should be bridged:
//!
//! ```
//! use pingora_core::modules::http::grpc_web::{GrpcWeb, GrpcWebBridge};
//! use pingora_core::modules::http::HttpModules;
//!
//! let mut modules = HttpModules::new();
//! modules.add_module(Box::new(GrpcWeb));
//!
//! // Per request, before the modules see the request head (in a proxy:
//! // `early_request_filter`, through `session.downstream_modules_ctx`):
//! let mut ctx = modules.build_ctx();
//! ctx.get_mut::<GrpcWebBridge>().expect("added above").init();
//! ```
//!
//! The upstream must speak gRPC, that is HTTP/2 (h2c or TLS with ALPN `h2`).

use std::any::Any;
use std::ops::{Deref, DerefMut};

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use super::{HttpModule, HttpModuleBuilder, Module};
use crate::protocols::http::bridge::grpc_web::GrpcWebCtx;

/// The gRPC-web bridge of one request, as a module. It dereferences to its [`GrpcWebCtx`]: call
/// [`init`](GrpcWebCtx::init) on it to bridge the request.
#[derive(Debug, Default)]
pub struct GrpcWebBridge(GrpcWebCtx);

impl Deref for GrpcWebBridge {
    type Target = GrpcWebCtx;

    fn deref(&self) -> &GrpcWebCtx {
        &self.0
    }
}

impl DerefMut for GrpcWebBridge {
    fn deref_mut(&mut self) -> &mut GrpcWebCtx {
        &mut self.0
    }
}

#[async_trait]
impl HttpModule for GrpcWebBridge {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        self.0.request_header_filter(req);
        Ok(())
    }

    async fn request_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        self.0.request_body_filter(body, end_of_stream)
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        self.0.response_header_filter(resp);
        Ok(())
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        self.0.response_body_filter(body, end_of_stream)
    }

    fn response_trailer_filter(
        &mut self,
        trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        match trailers {
            Some(trailers) => self.0.response_trailer_filter(trailers),
            None => Ok(None),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Builds the [`GrpcWebBridge`] module of each request (disabled until
/// [`init`](GrpcWebCtx::init)ed). Its order is the default, 0: modules of a lower order, such
/// as response compression, run after it and see the gRPC-web response, trailer frame included.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcWeb;

impl HttpModuleBuilder for GrpcWeb {
    fn init(&self) -> Module {
        Box::new(GrpcWebBridge::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::http::HttpModules;

    /// Records the response body bytes and content type it sees.
    #[derive(Default)]
    struct Recorder {
        content_type: Option<String>,
        body: Vec<u8>,
    }

    #[async_trait]
    impl HttpModule for Recorder {
        async fn response_header_filter(
            &mut self,
            resp: &mut ResponseHeader,
            _end_of_stream: bool,
        ) -> Result<()> {
            self.content_type = resp.headers["content-type"].to_str().ok().map(Into::into);
            Ok(())
        }

        fn response_body_filter(&mut self, body: &mut Option<Bytes>, _end: bool) -> Result<()> {
            self.body
                .extend_from_slice(body.as_deref().unwrap_or_default());
            Ok(())
        }

        fn as_any(&self) -> &dyn Any {
            self
        }

        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    }

    struct RecorderBuilder;

    impl HttpModuleBuilder for RecorderBuilder {
        fn order(&self) -> i16 {
            -1
        }

        fn init(&self) -> Module {
            Box::new(Recorder::default())
        }
    }

    #[tokio::test]
    async fn other_modules_see_the_grpc_web_response() {
        let mut modules = HttpModules::new();
        // Added first, but of a lower order: it runs after the bridge.
        modules.add_module(Box::new(RecorderBuilder));
        modules.add_module(Box::new(GrpcWeb));
        let mut ctx = modules.build_ctx();
        ctx.get_mut::<GrpcWebBridge>().unwrap().init();

        let mut req = RequestHeader::build("POST", b"/s/m", None).unwrap();
        req.insert_header("content-type", "application/grpc-web")
            .unwrap();
        ctx.request_header_filter(&mut req).await.unwrap();
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("content-type", "application/grpc")
            .unwrap();
        ctx.response_header_filter(&mut resp, false).await.unwrap();
        let mut body = Some(Bytes::from_static(b"\0\0\0\0\0"));
        ctx.response_body_filter(&mut body, false).unwrap();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let frame = ctx
            .response_trailer_filter(&mut Some(Box::new(trailers)))
            .unwrap()
            .unwrap();
        assert_eq!(&frame[..], b"\x80\0\0\0\x10grpc-status: 0\r\n");

        let recorder = ctx.get::<Recorder>().unwrap();
        assert_eq!(
            recorder.content_type.as_deref(),
            Some("application/grpc-web")
        );
        assert_eq!(
            recorder.body,
            [&b"\0\0\0\0\0"[..], &frame[..]].concat(),
            "the trailer frame went through the later module's body filter"
        );
    }
}
