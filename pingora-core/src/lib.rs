//! The core of the Pingora framework: the server and its process lifecycle, services,
//! listeners, protocols (L4, HTTP/1) and the application traits that services run.
//!
//! Most users reach this crate through the `pingora` facade crate and its prelude.
//!
//! # Cancel safety
//! The futures of protocol sessions (reading a request, writing a response) leave the
//! connection in an unknown state when dropped half-way: an HTTP/1 connection whose exchange was
//! cancelled is closed, never reused.
// Library code reports failures as errors; tests may unwrap.
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod apps;
pub mod connectors;
pub mod listeners;
pub mod metrics;
pub mod modules;
pub mod protocols;
#[cfg(feature = "sentry")]
mod reporting;
pub mod server;
pub mod services;
mod shutdown;
pub mod upstreams;
pub mod utils;

pub use pingora_error::{ErrorType::*, *};

/// The `sentry` crate this crate reports panics with (feature `sentry`), for building the
/// [`ClientOptions`](sentry::ClientOptions) of
/// [`Server::set_sentry_config`](server::Server::set_sentry_config) with the same version.
#[cfg(feature = "sentry")]
pub use sentry;

/// TLS: the backend-neutral API and the choice of backend. Same as [`protocols::tls`].
pub use protocols::tls;

/// The items most programs need.
pub mod prelude {
    pub use crate::server::configuration::Opt;
    pub use crate::server::Server;
    pub use crate::services::background::background_service;
    pub use crate::upstreams::peer::HttpPeer;
    pub use pingora_error::{ErrorType::*, *};
}
