//! The response compression module: a [`ResponseCompressionCtx`] per request, as an
//! [`HttpModule`].
//!
//! Pingora's proxy installs it on every service, switched off
//! ([`ResponseCompressionBuilder::enable(0)`](ResponseCompressionBuilder::enable)); a request
//! turns it on by reaching the module through `session.downstream_modules_ctx` and adjusting
//! the level. It runs late among modules (order `i16::MIN / 2`), so it compresses what the
//! other modules produced.

use std::any::Any;
use std::ops::{Deref, DerefMut};

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use super::{HttpModule, HttpModuleBuilder, Module, ModuleBuilder};
use crate::protocols::http::compression::ResponseCompressionCtx;

/// The compression module of one request; derefs to its [`ResponseCompressionCtx`].
#[derive(Debug)]
pub struct ResponseCompression(ResponseCompressionCtx);

impl ResponseCompression {
    /// The request head filter, which never waits: [`HttpModuleCtx`](super::HttpModuleCtx)
    /// calls it directly.
    pub(super) fn filter_request(&mut self, req: &mut RequestHeader) {
        self.0.request_filter(req);
    }

    /// The response head filter, which never waits (see [`filter_request`](Self::filter_request)).
    pub(super) fn filter_response(&mut self, resp: &mut ResponseHeader, end_of_stream: bool) {
        self.0.response_header_filter(resp, end_of_stream);
    }
}

impl Deref for ResponseCompression {
    type Target = ResponseCompressionCtx;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for ResponseCompression {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

#[async_trait]
impl HttpModule for ResponseCompression {
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        self.filter_request(req);
        Ok(())
    }

    async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        self.filter_response(resp, end_of_stream);
        Ok(())
    }

    fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        if !self.0.is_enabled() {
            return Ok(());
        }
        // An encoder error fails the response: the bytes already sent were encoded, so
        // passing the rest as they are would hand the client a corrupt body.
        if let Some(encoded) = self
            .0
            .try_response_body_filter(body.as_ref(), end_of_stream)?
        {
            *body = Some(encoded);
        }
        Ok(())
    }

    fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        if !self.0.is_enabled() {
            return Ok(None);
        }
        // The encoder's last bytes, when the body did not end through the body filter.
        Ok(self
            .0
            .try_response_body_filter(None, true)?
            .filter(|b| !b.is_empty()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Builds [`ResponseCompression`] modules at one compression level.
#[derive(Debug)]
pub struct ResponseCompressionBuilder {
    level: u32,
}

impl ResponseCompressionBuilder {
    /// A builder of modules compressing at `level` with every algorithm (0: switched off
    /// until a request adjusts it), without decompression, weakening `ETag`s.
    pub fn enable(level: u32) -> ModuleBuilder {
        Box::new(ResponseCompressionBuilder { level })
    }
}

impl HttpModuleBuilder for ResponseCompressionBuilder {
    fn init(&self) -> Module {
        Box::new(ResponseCompression(ResponseCompressionCtx::new(
            self.level, false, false,
        )))
    }

    /// Late among modules, so it compresses what the others produced.
    fn order(&self) -> i16 {
        i16::MIN / 2
    }
}
