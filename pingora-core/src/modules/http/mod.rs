//! HTTP modules: filters that see every request and response of an HTTP service, in order.
//!
//! A module is built once per request from its [`HttpModuleBuilder`], so it can keep
//! per-request state; the application reaches that state through [`HttpModuleCtx::get`] and
//! [`HttpModuleCtx::get_mut`].
//!
//! Modules run in one order for every filter, requests and responses alike: higher
//! [`order`](HttpModuleBuilder::order) first, equal orders in the order they were added (as in
//! Pingora). A module with a low order, such as [`compression`], therefore sees the response
//! body last, after every other module changed it. Body bytes a module returns from its trailer
//! or done filter go through the body filters of the modules after it.

pub mod compression;

pub mod grpc_web;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderMap;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

/// A filter over one request and its response. Every method defaults to doing nothing.
#[async_trait]
pub trait HttpModule {
    /// Sees (and may change) the request head.
    async fn request_header_filter(&mut self, _req: &mut RequestHeader) -> Result<()> {
        Ok(())
    }

    /// Sees (and may change or drop) a piece of the request body.
    async fn request_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Sees (and may change) the response head.
    async fn response_header_filter(
        &mut self,
        _resp: &mut ResponseHeader,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Sees (and may change or drop) a piece of the response body.
    fn response_body_filter(
        &mut self,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
    ) -> Result<()> {
        Ok(())
    }

    /// Sees the response trailers; may return body bytes to send before them.
    fn response_trailer_filter(
        &mut self,
        _trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// Called when the response is complete; may return final body bytes.
    fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        Ok(None)
    }

    /// This module as [`Any`], for typed access.
    fn as_any(&self) -> &dyn Any;

    /// This module as mutable [`Any`], for typed access.
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// A boxed [`HttpModule`].
pub type Module = Box<dyn HttpModule + 'static + Send + Sync>;

/// Builds a module for each request.
pub trait HttpModuleBuilder {
    /// Where the module runs among others: higher runs first, for requests and responses.
    /// Default 0.
    fn order(&self) -> i16 {
        0
    }

    /// A new module for one request.
    fn init(&self) -> Module;
}

/// A boxed [`HttpModuleBuilder`].
pub type ModuleBuilder = Box<dyn HttpModuleBuilder + 'static + Send + Sync>;

/// The modules of a service.
#[derive(Default)]
pub struct HttpModules {
    builders: Vec<ModuleBuilder>,
    index: OnceLock<Arc<HashMap<TypeId, usize>>>,
}

impl std::fmt::Debug for HttpModules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpModules")
            .field("modules", &self.builders.len())
            .finish()
    }
}

impl HttpModules {
    /// No modules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a module. Modules must be added before the first request is served; one added
    /// later is ignored with an error logged.
    pub fn add_module(&mut self, builder: ModuleBuilder) {
        if self.index.get().is_some() {
            log::error!("HTTP module added after the first request was served; ignored");
            return;
        }
        self.builders.push(builder);
        // Stable sort: equal orders keep the order they were added in.
        self.builders.sort_by_key(|b| std::cmp::Reverse(b.order()));
    }

    /// Builds the modules for one request.
    pub fn build_ctx(&self) -> HttpModuleCtx {
        let modules: Vec<Module> = self.builders.iter().map(|b| b.init()).collect();
        let index = self
            .index
            .get_or_init(|| {
                let mut index = HashMap::with_capacity(modules.len());
                for (i, module) in modules.iter().enumerate() {
                    let previous = index.insert(module.as_any().type_id(), i);
                    if previous.is_some() {
                        log::error!(
                            "two HTTP modules of the same type; only the last is reachable by type"
                        );
                    }
                }
                Arc::new(index)
            })
            .clone();
        HttpModuleCtx { modules, index }
    }
}

/// The built-in compression module, if `module` is it. Every proxy has one, on every
/// request, and its filters never wait, so they are called directly rather than through the
/// boxed futures of [`HttpModule`]'s async methods (an allocation each).
#[inline]
fn built_in(module: &mut Module) -> Option<&mut compression::ResponseCompression> {
    module.as_any_mut().downcast_mut()
}

/// The modules of one request, run in order.
pub struct HttpModuleCtx {
    modules: Vec<Module>,
    index: Arc<HashMap<TypeId, usize>>,
}

impl std::fmt::Debug for HttpModuleCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpModuleCtx")
            .field("modules", &self.modules.len())
            .finish()
    }
}

impl HttpModuleCtx {
    /// No modules.
    pub fn empty() -> Self {
        HttpModuleCtx {
            modules: Vec::new(),
            index: Arc::default(),
        }
    }

    /// The module of type `T`, if there is one.
    pub fn get<T: 'static>(&self) -> Option<&T> {
        let i = *self.index.get(&TypeId::of::<T>())?;
        self.modules.get(i)?.as_any().downcast_ref()
    }

    /// The module of type `T`, to modify, if there is one.
    pub fn get_mut<T: 'static>(&mut self) -> Option<&mut T> {
        let i = *self.index.get(&TypeId::of::<T>())?;
        self.modules.get_mut(i)?.as_any_mut().downcast_mut()
    }

    /// Runs every module's request head filter, in order.
    pub async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        for module in &mut self.modules {
            match built_in(module) {
                Some(compression) => compression.filter_request(req),
                None => module.request_header_filter(req).await?,
            }
        }
        Ok(())
    }

    /// Runs every module's request body filter, in order.
    pub async fn request_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        for module in &mut self.modules {
            // The built-in compression module leaves request bodies alone.
            if built_in(module).is_none() {
                module.request_body_filter(body, end_of_stream).await?;
            }
        }
        Ok(())
    }

    /// Runs every module's response head filter, in order.
    pub async fn response_header_filter(
        &mut self,
        resp: &mut ResponseHeader,
        end_of_stream: bool,
    ) -> Result<()> {
        for module in self.modules.iter_mut() {
            match built_in(module) {
                Some(compression) => compression.filter_response(resp, end_of_stream),
                None => module.response_header_filter(resp, end_of_stream).await?,
            }
        }
        Ok(())
    }

    /// Runs every module's response body filter, in order.
    pub fn response_body_filter(
        &mut self,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) -> Result<()> {
        for module in self.modules.iter_mut() {
            module.response_body_filter(body, end_of_stream)?;
        }
        Ok(())
    }

    /// Runs every module's trailer filter, in order. Body bytes returned by a module are
    /// passed through the body filters of the modules after it.
    pub fn response_trailer_filter(
        &mut self,
        trailers: &mut Option<Box<HeaderMap>>,
    ) -> Result<Option<Bytes>> {
        let mut extra: Option<Bytes> = None;
        for module in self.modules.iter_mut() {
            if extra.is_some() {
                module.response_body_filter(&mut extra, false)?;
            }
            if let Some(more) = module.response_trailer_filter(trailers)? {
                extra = Some(match extra {
                    Some(prev) => [prev, more].concat().into(),
                    None => more,
                });
            }
        }
        Ok(extra)
    }

    /// Runs every module's done filter, in order; returns the final body bytes they produce
    /// (those of a module passed through the body filters of the modules after it).
    pub fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
        let mut extra: Option<Bytes> = None;
        for module in self.modules.iter_mut() {
            if extra.is_some() {
                module.response_body_filter(&mut extra, true)?;
            }
            if let Some(more) = module.response_done_filter()? {
                extra = Some(match extra {
                    Some(prev) => [prev, more].concat().into(),
                    None => more,
                });
            }
        }
        Ok(extra)
    }

    /// Whether there are no modules.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tagger {
        tag: &'static str,
        seen: usize,
    }

    #[async_trait]
    impl HttpModule for Tagger {
        async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
            self.seen += 1;
            req.append_header("x-order", self.tag)?;
            Ok(())
        }

        async fn response_header_filter(
            &mut self,
            resp: &mut ResponseHeader,
            _end: bool,
        ) -> Result<()> {
            resp.append_header("x-order", self.tag)?;
            Ok(())
        }

        fn response_done_filter(&mut self) -> Result<Option<Bytes>> {
            Ok(Some(Bytes::from_static(self.tag.as_bytes())))
        }

        fn as_any(&self) -> &dyn Any {
            self
        }

        fn as_any_mut(&mut self) -> &mut dyn Any {
            self
        }
    }

    struct TaggerBuilder(&'static str, i16);

    impl HttpModuleBuilder for TaggerBuilder {
        fn order(&self) -> i16 {
            self.1
        }

        fn init(&self) -> Module {
            Box::new(Tagger {
                tag: self.0,
                seen: 0,
            })
        }
    }

    #[tokio::test]
    async fn order_and_typed_access() {
        let mut modules = HttpModules::new();
        modules.add_module(Box::new(TaggerBuilder("low", -1)));
        modules.add_module(Box::new(TaggerBuilder("high", 10)));
        let mut ctx = modules.build_ctx();
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        ctx.request_header_filter(&mut req).await.unwrap();
        let order: Vec<_> = req.headers.get_all("x-order").iter().collect();
        assert_eq!(order, ["high", "low"]);

        let mut resp = ResponseHeader::build(200, None).unwrap();
        ctx.response_header_filter(&mut resp, false).await.unwrap();
        let order: Vec<_> = resp.headers.get_all("x-order").iter().collect();
        assert_eq!(order, ["high", "low"]);

        // Both modules have the same type: typed access reaches one of them.
        assert_eq!(ctx.get::<Tagger>().unwrap().seen, 1);
        ctx.get_mut::<Tagger>().unwrap().seen = 5;
        assert_eq!(ctx.get::<Tagger>().unwrap().seen, 5);
        assert!(ctx.get::<String>().is_none());

        assert_eq!(ctx.response_done_filter().unwrap().unwrap(), "highlow");
        assert!(HttpModuleCtx::empty().is_empty());
    }
}
