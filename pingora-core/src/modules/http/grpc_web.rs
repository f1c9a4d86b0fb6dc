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
/// [`init`](GrpcWebCtx::init)ed).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcWeb;

impl HttpModuleBuilder for GrpcWeb {
    fn init(&self) -> Module {
        Box::new(GrpcWebBridge::default())
    }
}
