//! HTTP modules in a proxy: an access-control module of our own, and the response
//! compression module turned on for every request.

use std::any::Any;

use async_trait::async_trait;
use pingora_core::modules::http::compression::ResponseCompressionBuilder;
use pingora_core::modules::http::{HttpModule, HttpModuleBuilder, HttpModules, Module};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::{ProxyHttp, Session};

/// The per-request state of the access-control module: the `Authorization` value it accepts.
struct AclCtx {
    expected: String,
}

#[async_trait]
impl HttpModule for AclCtx {
    /// Refuses (403) a request without the right `Authorization` before any upstream work.
    async fn request_header_filter(&mut self, req: &mut RequestHeader) -> Result<()> {
        match req.headers.get(http::header::AUTHORIZATION) {
            Some(value) if value.as_bytes() == self.expected.as_bytes() => Ok(()),
            Some(_) => Error::e_explain(ErrorType::HTTPStatus(403), "wrong credential"),
            None => Error::e_explain(ErrorType::HTTPStatus(403), "no credential"),
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The access-control module, attached once to the proxy; builds an [`AclCtx`] per request.
pub struct Acl {
    /// The credential clients must send as `Authorization: Basic <credential>`.
    pub credential: String,
}

impl HttpModuleBuilder for Acl {
    /// Early: nothing else should run for a refused request.
    fn order(&self) -> i16 {
        100
    }

    fn init(&self) -> Module {
        Box::new(AclCtx {
            expected: format!("Basic {}", self.credential),
        })
    }
}

/// A proxy to one origin, guarded by [`Acl`], compressing responses at level 6.
pub struct ModuleProxy {
    pub origin: std::net::SocketAddr,
    pub credential: String,
}

#[async_trait]
impl ProxyHttp for ModuleProxy {
    type CTX = ();
    fn new_ctx(&self) {}

    /// Called once when the service starts. Overriding it replaces the default set (the
    /// compression module, off), so the compression module is added back, on.
    fn init_downstream_modules(&self, modules: &mut HttpModules) {
        modules.add_module(Box::new(Acl {
            credential: self.credential.clone(),
        }));
        modules.add_module(ResponseCompressionBuilder::enable(6));
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.origin, false, String::new())))
    }
}
