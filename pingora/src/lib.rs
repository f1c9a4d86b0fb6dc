//! # Pingora
//!
//! A framework for building fast, reliable and programmable network services, above all HTTP
//! proxies. This crate gathers the framework's crates behind one dependency:
//!
//! * everything of `pingora-core` at the root: [`server`] (the process, its configuration and
//!   signals), [`services`], [`listeners`], [`apps`], [`protocols`] and [`modules`];
//! * [`http`]: request and response heads that keep header-name case (`pingora-http`);
//! * `proxy` (feature `proxy`): the programmable HTTP proxy (`pingora-proxy`);
//! * `lb` (feature `lb`): load balancing (`pingora-load-balancing`);
//! * `time` (feature `time`): cheap timeouts (`pingora-timeout`), nothing else;
//! * [`tls`]: TLS listeners and upstreams through the backend chosen by the features below;
//! * [`prelude`]: what most programs need, for `use pingora::prelude::*;`.
//!
//! Pingora's `cache` module will join them with the `pingora-cache` crate.
//!
//! ## A first server
//!
//! ```no_run
//! use async_trait::async_trait;
//! use pingora::apps::http_app::{HttpServer, ServeHttp};
//! use pingora::prelude::*;
//! use pingora::protocols::http::ServerSession;
//! use pingora::services::listening::Service;
//!
//! struct Hello;
//!
//! #[async_trait]
//! impl ServeHttp for Hello {
//!     async fn response(&self, _session: &mut ServerSession) -> http::Response<Vec<u8>> {
//!         http::Response::new(b"hello\n".to_vec())
//!     }
//! }
//!
//! let mut server = Server::new(Some(Opt::parse_args())).unwrap();
//! server.bootstrap();
//! let mut hello = Service::new("hello".to_string(), HttpServer::new_app(Hello));
//! hello.add_tcp("127.0.0.1:6145");
//! server.add_service(hello);
//! server.run_forever();
//! ```
//!
//! ## Features
//!
//! None is on by default: plaintext HTTP/1 and HTTP/2 servers, clients and the prelude need no
//! feature.
//!
//! The list below is generated from the comments in this crate's `Cargo.toml` when the docs are
//! built with the `document-features` feature (as docs.rs builds them). The modules are `time`,
//! `proxy` and `lb`, one feature each, and the TLS backends are `openssl`, `boringssl`, `s2n`
//! and `rustls`; `sentry` reports panics to Sentry (`docs/user_guide/panic.md`).
#![cfg_attr(feature = "document-features", doc = document_features::document_features!())]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub use pingora_core::*;

/// HTTP request and response heads that keep the case of header names: `pingora-http`.
///
/// Always present.
pub mod http {
    pub use pingora_http::*;
}

/// The programmable HTTP proxy: `pingora-proxy`. Implement [`proxy::ProxyHttp`] and serve it
/// with [`proxy::http_proxy_service`].
///
/// Needs the `proxy` feature, which also puts `pingora_proxy::prelude` in [`prelude`].
#[cfg(feature = "proxy")]
#[cfg_attr(docsrs, doc(cfg(feature = "proxy")))]
pub mod proxy {
    pub use pingora_proxy::*;
}

/// Load balancing: `pingora-load-balancing` (backends, service discovery, health checks,
/// selection algorithms).
///
/// Needs the `lb` feature, which also puts `pingora_load_balancing::prelude` in [`prelude`]
/// and implies `proxy`.
#[cfg(feature = "lb")]
#[cfg_attr(docsrs, doc(cfg(feature = "lb")))]
pub mod lb {
    pub use pingora_load_balancing::*;
}

/// HTTP caching: `pingora-cache` (storage, cache lock, eviction, the RFC 9111 policy). A
/// proxy turns the cache on per request in `ProxyHttp::request_cache_filter`; see
/// `docs/user_guide/cache.md`.
///
/// Needs the `cache` feature, which implies `proxy`.
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub mod cache {
    pub use pingora_cache::*;
}

/// Cheap timeouts and sleeps: `pingora-timeout`, and nothing else.
///
/// Needs the `time` feature. The prelude has the same items without it.
///
/// The module holds `pingora-timeout`'s items only; the proxy and load-balancing preludes are
/// in [`prelude`]:
///
/// ```compile_fail
/// use pingora::time::ProxyHttp; // not here: `pingora::prelude::ProxyHttp`
/// ```
#[cfg(feature = "time")]
#[cfg_attr(docsrs, doc(cfg(feature = "time")))]
pub mod time {
    pub use pingora_timeout::*;
}

/// What most programs need: `use pingora::prelude::*;`.
///
/// Always present: the server and its command line ([`Server`](prelude::Server),
/// [`Opt`](prelude::Opt)), [`background_service`](prelude::background_service),
/// [`HttpPeer`](prelude::HttpPeer), every error type and helper, the request and response heads
/// and the timeouts of `pingora-timeout`. With the `proxy` feature, the proxy prelude
/// (`ProxyHttp`, `Session`, `http_proxy_service`, ...); with `lb`, the load-balancing prelude
/// (`LoadBalancer`, `RoundRobin`, `TcpHealthCheck`, ...).
pub mod prelude {
    pub use pingora_core::prelude::*;
    pub use pingora_http::prelude::*;
    pub use pingora_timeout::*;

    #[cfg(feature = "proxy")]
    #[cfg_attr(docsrs, doc(cfg(feature = "proxy")))]
    pub use pingora_proxy::prelude::*;

    #[cfg(feature = "lb")]
    #[cfg_attr(docsrs, doc(cfg(feature = "lb")))]
    pub use pingora_load_balancing::prelude::*;
}
