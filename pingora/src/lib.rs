//! # Pingora
//!
//! A framework for building fast, reliable and programmable network services, above all HTTP
//! proxies. This crate gathers the framework's crates behind one dependency:
//!
//! * everything of `pingora-core` at the root: [`server`] (the process, its configuration and
//!   signals), [`services`], [`listeners`], [`apps`], [`protocols`] and [`modules`];
//! * [`http`]: request and response heads that keep header-name case (`pingora-http`);
//! * `time` (feature `time`): cheap timeouts (`pingora-timeout`);
//! * `proxy` (feature `proxy`): the programmable HTTP proxy (`pingora-proxy`);
//! * `lb` (feature `lb`): load balancing (`pingora-load-balancing`);
//! * [`tls`]: TLS listeners and upstreams through the backend chosen by the features below;
//! * [`prelude`]: what most programs need, for `use pingora::prelude::*;`.
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
//! | feature | what it adds |
//! |---|---|
//! | `time` | `time`: `pingora-timeout` (`timeout`, `sleep`, `fast_timeout`) |
//! | `proxy` | `proxy`: `pingora-proxy` (`ProxyHttp`, `http_proxy_service`), in the prelude too |
//! | `lb` | `lb`: `pingora-load-balancing` (`LoadBalancer`, `RoundRobin`, `TcpHealthCheck`), in the prelude too |
//! | `openssl` | the system OpenSSL 3 TLS backend (`pingora-openssl`) |
//! | `boringssl` | the BoringSSL TLS backend (`pingora-boringssl`); not together with `openssl` |
//! | `s2n` | the s2n-tls TLS backend (`pingora-s2n`) |
//! | `rustls` | the rustls TLS backend, ring provider (`pingora-rustls`) |
//!
//! Without a TLS feature, plaintext works and TLS listeners or upstreams fail with a "no TLS
//! backend" error. With several, [`tls::default_provider`] picks one in a documented order, or
//! the program chooses with [`tls::Backend`] and [`tls::install_default_provider`].

pub use pingora_core::*;

/// HTTP request and response heads that keep the case of header names (`pingora-http`).
pub mod http {
    pub use pingora_http::*;
}

/// The programmable HTTP proxy (`pingora-proxy`): implement [`proxy::ProxyHttp`] and serve it
/// with [`proxy::http_proxy_service`].
#[cfg(feature = "proxy")]
pub mod proxy {
    pub use pingora_proxy::*;
}

/// Load balancing (`pingora-load-balancing`): backends, health checks, selection algorithms.
#[cfg(feature = "lb")]
pub mod lb {
    pub use pingora_load_balancing::*;
}

/// Cheap timeouts and sleeps (`pingora-timeout`).
#[cfg(feature = "time")]
pub mod time {
    pub use pingora_timeout::*;

    #[cfg(feature = "proxy")]
    pub use pingora_proxy::prelude::*;

    #[cfg(feature = "lb")]
    pub use pingora_load_balancing::prelude::*;
}

/// What most programs need: `use pingora::prelude::*;`.
///
/// The server and its command line ([`Server`](prelude::Server), [`Opt`](prelude::Opt)),
/// [`background_service`](prelude::background_service), every error type and helper, the
/// request and response heads, and the timeouts of `pingora-timeout`.
pub mod prelude {
    pub use pingora_core::prelude::*;
    pub use pingora_http::prelude::*;
    pub use pingora_timeout::*;

    #[cfg(feature = "proxy")]
    pub use pingora_proxy::prelude::*;

    #[cfg(feature = "lb")]
    pub use pingora_load_balancing::prelude::*;
}
